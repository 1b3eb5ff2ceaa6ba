"""load_pretrained / save_pretrained without torch: layouts, dtypes, shards, validation, safe replacement."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxlab.moe.models import MoEDecoderLM, MoELMConfig, load_pretrained, save_pretrained
from tests.moe.models import naive_lm

_BASE = dict(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=8,
             num_experts=4, top_k=2, moe_intermediate_size=12)
CONFIGS = {
    "mixtral": MoELMConfig("mixtral", **_BASE, rope_theta=1e6, rms_norm_eps=1e-5),
    "qwen2_moe": MoELMConfig(
        "qwen2_moe", **dict(_BASE, num_layers=3), attention_bias=True, norm_topk_prob=False,
        shared_expert_intermediate_size=20, shared_expert_gate=True, intermediate_size=24, mlp_only_layers=(1,),
        tie_word_embeddings=True,
    ),
    "qwen3_moe": MoELMConfig("qwen3_moe", **_BASE, attention_bias=True, attention_out_bias=True, qk_norm=True),
}


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.shape == y.shape and x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


def _export(arch, tmp_path, name="export", **kwargs):
  config = CONFIGS[arch]
  params = naive_lm.random_params(config, seed=0)
  path = tmp_path / name
  save_pretrained(params, config, path, **kwargs)
  return config, params, path


def _rewrite(src, dst, edit):
  """Copies checkpoint `src` to `dst`, tensors passed through `edit(dict) -> dict` (written by safetensors)."""
  os.makedirs(dst)
  shutil.copy(os.path.join(src, "config.json"), dst)
  save_file(edit(load_file(os.path.join(src, "model.safetensors"))), os.path.join(dst, "model.safetensors"),
            metadata={"format": "pt"})


@pytest.mark.parametrize("arch", CONFIGS)
def test_save_then_load_is_exact_and_writes_hub_names(arch, tmp_path):
  config, params, path = _export(arch, tmp_path)
  assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
  assert sorted(os.listdir(tmp_path)) == ["export"]  # No temporary directory left behind.
  loaded_config, loaded = load_pretrained(path)
  assert loaded_config == config
  _assert_trees_equal(loaded, params)

  tensors = load_file(os.path.join(path, "model.safetensors"))
  f = config.moe_intermediate_size
  layer0 = params["layers_0"]
  if arch == "mixtral":
    gate_up, down = np.asarray(layer0["moe"]["gate_up"]), np.asarray(layer0["moe"]["down"])
    moe = "model.layers.0.block_sparse_moe"
    np.testing.assert_array_equal(tensors[f"{moe}.experts.3.w1.weight"], gate_up[3][:, :f].T)
    np.testing.assert_array_equal(tensors[f"{moe}.experts.3.w3.weight"], gate_up[3][:, f:].T)
    np.testing.assert_array_equal(tensors[f"{moe}.experts.3.w2.weight"], down[3].T)
    np.testing.assert_array_equal(tensors[f"{moe}.gate.weight"], np.asarray(layer0["moe"]["router"]).T)
    np.testing.assert_array_equal(tensors["lm_head.weight"], np.asarray(params["lm_head"]["kernel"]).T)
  if arch == "qwen2_moe":
    shared = np.asarray(layer0["moe"]["shared_gate_up"])[0]
    np.testing.assert_array_equal(tensors["model.layers.0.mlp.shared_expert.up_proj.weight"], shared[:, 20:].T)
    np.testing.assert_array_equal(tensors["model.layers.0.mlp.shared_expert_gate.weight"],
                                  np.asarray(layer0["moe"]["shared_gate"]).T)
    np.testing.assert_array_equal(tensors["model.layers.1.mlp.down_proj.weight"],
                                  np.asarray(params["layers_1"]["mlp"]["down"])[0].T)
    np.testing.assert_array_equal(tensors["model.layers.0.self_attn.k_proj.bias"],
                                  np.asarray(layer0["attention"]["k"]["bias"]))
    assert "lm_head.weight" not in tensors and "model.layers.0.self_attn.o_proj.bias" not in tensors
  if arch == "qwen3_moe":
    assert tensors["model.layers.1.self_attn.k_norm.weight"].shape == (8,)
    assert tensors["model.layers.1.self_attn.o_proj.bias"].shape == (16,)
  with open(os.path.join(path, "config.json")) as fh:
    assert json.load(fh)["model_type"] == arch


def _fuse(config, layers):
  """Per-expert tensors of `layers` -> transformers 5's fused layout, built straight from the torch layout."""
  e = config.num_experts

  def edit(tensors):
    out = dict(tensors)
    for i in layers:
      if config.architecture == "mixtral":
        old, names = f"model.layers.{i}.block_sparse_moe", ("w1", "w3", "w2")
        out[f"model.layers.{i}.mlp.gate.weight"] = out.pop(f"{old}.gate.weight")
      else:
        old, names = f"model.layers.{i}.mlp", ("gate_proj", "up_proj", "down_proj")
      gate, up, down = (lambda j, n=n: f"{old}.experts.{j}.{n}.weight" for n in names)
      fused = f"model.layers.{i}.mlp.experts"
      out[f"{fused}.gate_up_proj"] = np.stack([np.concatenate([out[gate(j)], out[up(j)]]) for j in range(e)])
      out[f"{fused}.down_proj"] = np.stack([out[down(j)] for j in range(e)])
      for j in range(e):
        for name in (gate(j), up(j), down(j)):
          del out[name]
    return out

  return edit


@pytest.mark.parametrize("arch, fused_layers", [("mixtral", (0, 1)), ("mixtral", (1,)), ("qwen2_moe", (0, 2))])
def test_fused_transformers5_layout_loads_the_same_params(arch, fused_layers, tmp_path):
  config, params, path = _export(arch, tmp_path)
  _rewrite(path, tmp_path / "fused", _fuse(config, fused_layers))
  names = load_file(os.path.join(tmp_path / "fused", "model.safetensors"))
  assert f"model.layers.{fused_layers[0]}.mlp.experts.gate_up_proj" in names
  _, loaded = load_pretrained(tmp_path / "fused")
  _assert_trees_equal(loaded, params)


def test_bfloat16_checkpoint_and_dtype_argument(tmp_path):
  config = CONFIGS["qwen3_moe"]
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), naive_lm.random_params(config, seed=1))
  save_pretrained(params, config, tmp_path / "bf16")
  with open(tmp_path / "bf16" / "config.json") as fh:
    assert json.load(fh)["dtype"] == "bfloat16"
  loaded_config, loaded = load_pretrained(tmp_path / "bf16")
  assert loaded_config.dtype == "bfloat16"
  _assert_trees_equal(loaded, params)
  as_f32_config, as_f32 = load_pretrained(tmp_path / "bf16", dtype=jnp.float32)
  assert as_f32_config.dtype == "float32"
  _assert_trees_equal(as_f32, jax.tree.map(lambda x: x.astype(jnp.float32), params))
  with pytest.raises(ValueError, match="dtype must be one of"):
    load_pretrained(tmp_path / "bf16", dtype="int8")


def test_sharded_export_writes_an_index_and_loads(tmp_path):
  config, params, path = _export("mixtral", tmp_path, max_shard_bytes=8_000)
  files = sorted(os.listdir(path))
  shards = [f for f in files if f.endswith(".safetensors")]
  assert "model.safetensors.index.json" in files and len(shards) > 2
  with open(path / "model.safetensors.index.json") as fh:
    weight_map = json.load(fh)["weight_map"]
  assert set(weight_map.values()) == set(shards)
  assert weight_map["model.layers.1.block_sparse_moe.experts.0.w2.weight"] in shards
  _, loaded = load_pretrained(path)
  _assert_trees_equal(loaded, params)


def _error(path):
  with pytest.raises(ValueError) as info:
    load_pretrained(path)
  return str(info.value)


def test_missing_unexpected_and_misshapen_tensors_are_all_named(tmp_path):
  config, _, path = _export("qwen2_moe", tmp_path)
  gone = ["model.layers.2.mlp.experts.3.down_proj.weight", "model.layers.0.self_attn.q_proj.bias"]
  _rewrite(path, tmp_path / "missing", lambda t: {k: v for k, v in t.items() if k not in gone})
  message = _error(tmp_path / "missing")
  assert "2 missing" in message and all(name in message for name in gone)

  extra = {"model.layers.0.mlp.experts.4.up_proj.weight": np.zeros((12, 16), np.float32),
           "model.layers.0.self_attn.o_proj.bias": np.zeros(16, np.float32)}
  _rewrite(path, tmp_path / "extra", lambda t: {**t, **extra})
  message = _error(tmp_path / "extra")
  assert "2 unexpected" in message and all(name in message for name in extra)

  def misshape(t):
    t["model.layers.1.mlp.up_proj.weight"] = np.zeros((23, 16), np.float32)
    t["model.norm.weight"] = np.zeros(17, np.float32)
    return t

  _rewrite(path, tmp_path / "shape", misshape)
  message = _error(tmp_path / "shape")
  assert "model.layers.1.mlp.up_proj.weight: shape [23, 16], expected [24, 16]" in message
  assert "model.norm.weight: shape [17], expected [16]" in message

  # A checkpoint of another layout than its config.json says (mixtral names under a qwen config).
  _, _, mixtral_path = _export("mixtral", tmp_path, name="mixtral")
  with open(path / "config.json") as fh:
    qwen_json = fh.read()
  (mixtral_path / "config.json").write_text(qwen_json)
  assert "block_sparse_moe" in _error(mixtral_path)


def test_unsupported_model_type_and_missing_files(tmp_path):
  _, _, path = _export("mixtral", tmp_path)
  hf = json.loads((path / "config.json").read_text())
  (path / "config.json").write_text(json.dumps(dict(hf, model_type="deepseek_v3")))
  assert "supported model_type values: ('mixtral', 'qwen2_moe', 'qwen3_moe')" in _error(path)
  os.remove(path / "config.json")
  with pytest.raises(FileNotFoundError, match="config.json"):
    load_pretrained(path)
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "config.json").write_text(json.dumps(hf))
  with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
    load_pretrained(tmp_path / "empty")


def test_save_replaces_only_exports_unless_overwrite(tmp_path):
  config, params, path = _export("mixtral", tmp_path)
  changed = jax.tree.map(lambda x: x + 1, params)
  save_pretrained(changed, config, path)  # An earlier export is replaced without asking.
  _assert_trees_equal(load_pretrained(path)[1], changed)

  other = tmp_path / "notes"
  other.mkdir()
  (other / "README").write_text("keep me")
  with pytest.raises(ValueError, match=r"not a jaxlab MoE export \(it holds \['README'\]\).*overwrite=True"):
    save_pretrained(params, config, other)
  assert (other / "README").read_text() == "keep me"
  save_pretrained(params, config, other, overwrite=True)  # Writes the export next to the README.
  assert sorted(os.listdir(other)) == ["README", "config.json", "model.safetensors"]
  assert (other / "README").read_text() == "keep me"
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="not a directory"):
    save_pretrained(params, config, tmp_path / "file")
  assert sorted(os.listdir(tmp_path)) == ["export", "file", "notes"]


def test_resave_keeps_the_tokenizer_and_other_files_and_drops_stale_shards(tmp_path):
  config, params, path = _export("mixtral", tmp_path, max_shard_bytes=8_000)
  (path / "tokenizer.json").write_text('{"version": "1.0"}')
  (path / "README.md").write_text("# trained on Shakespeare\n")
  (path / "eval").mkdir()
  (path / "eval" / "perplexity.json").write_text('{"perplexity": 7.5}')
  kept = {name: (path / name).read_bytes() for name in ("tokenizer.json", "README.md", "eval/perplexity.json")}
  changed = jax.tree.map(lambda x: x * 2, params)
  for max_shard_bytes, expected in ((5 * 10**9, 1), (30_000, None), (8_000, None)):
    save_pretrained(changed, config, path, max_shard_bytes=max_shard_bytes)
    assert {name: (path / name).read_bytes() for name in kept} == kept
    files = sorted(os.listdir(path))
    shards = [f for f in files if f.endswith(".safetensors")]
    with_index = "model.safetensors.index.json" in files
    assert (len(shards) == 1 and not with_index) if expected == 1 else with_index
    if with_index:  # Every shard file is one the new index names: none is left from the last export.
      weight_map = json.loads((path / "model.safetensors.index.json").read_text())["weight_map"]
      assert set(weight_map.values()) == set(shards)
    _assert_trees_equal(load_pretrained(path)[1], changed)
  assert sorted(os.listdir(tmp_path)) == ["export"]  # Nothing left beside it either.


def test_failed_save_leaves_the_previous_export_and_tokenizer(tmp_path, monkeypatch):
  from jaxlab.models import hf_mapping

  config, params, path = _export("qwen3_moe", tmp_path, max_shard_bytes=8_000)
  (path / "tokenizer.json").write_text('{"version": "1.0"}')
  before = {name: (path / name).read_bytes() for name in os.listdir(path)}
  calls = []
  original = hf_mapping.from_param

  def failing(rule, value):
    calls.append(rule.path)
    if len(calls) > 5:
      raise MemoryError("out of host memory")
    return original(rule, value)

  monkeypatch.setattr(hf_mapping, "from_param", failing)
  changed = jax.tree.map(lambda x: x + 1, params)
  with pytest.raises(MemoryError):
    save_pretrained(changed, config, path, max_shard_bytes=20_000)
  assert len(calls) > 5 and {name: (path / name).read_bytes() for name in os.listdir(path)} == before
  _assert_trees_equal(load_pretrained(path)[1], params)
  monkeypatch.setattr(hf_mapping, "from_param", original)  # The retry succeeds and keeps the tokenizer.
  save_pretrained(changed, config, path, max_shard_bytes=20_000)
  assert (path / "tokenizer.json").read_bytes() == before["tokenizer.json"]
  _assert_trees_equal(load_pretrained(path)[1], changed)


def test_non_finite_weights_and_broken_json_are_named(tmp_path):
  config, params, path = _export("qwen2_moe", tmp_path)
  name = "model.layers.2.mlp.experts.1.up_proj.weight"

  def poison(tensors):
    tensors[name] = tensors[name].copy()
    tensors[name][3, 4] = np.nan
    return tensors

  _rewrite(path, tmp_path / "nan", poison)
  with pytest.raises(ValueError, match=rf"tensor '{re.escape(name)}' in .*nan/model.safetensors holds 1 non-finite"):
    load_pretrained(tmp_path / "nan")
  (path / "config.json").write_text((path / "config.json").read_text().replace('"model_type"', "model_type", 1))
  with pytest.raises(ValueError, match=r"export/config.json is not valid JSON: .* line \d+, column \d+"):
    load_pretrained(path)


def test_save_rejects_quantized_and_mismatched_params(tmp_path):
  from jaxlab.quant import rtn

  config = CONFIGS["mixtral"]
  params = naive_lm.random_params(config, seed=2)
  quantized = jax.tree.map(lambda x: x, params)
  quantized["layers_0"]["moe"]["down"] = rtn.quantize_experts(params["layers_0"]["moe"]["down"], "bf16")
  with pytest.raises(TypeError, match=r"\['layers_0/moe/down'\] are ExpertWeights.*dequantize"):
    save_pretrained(quantized, config, tmp_path / "q")
  broken = jax.tree.map(lambda x: x, params)
  del broken["lm_head"]
  broken["layers_1"]["moe"]["router"] = jnp.zeros((16, 5))
  with pytest.raises(ValueError, match=r"missing: \['lm_head/kernel'\]"):
    save_pretrained(broken, config, tmp_path / "b")
  del broken["layers_1"]
  broken["lm_head"] = params["lm_head"]
  with pytest.raises(ValueError, match="1 missing|missing"):
    save_pretrained(broken, config, tmp_path / "b")
  with pytest.raises(TypeError, match="MoELMConfig"):
    save_pretrained(params, config.to_hf_dict(), tmp_path / "c")
  assert not os.listdir(tmp_path)


def test_load_onto_a_mesh_shards_by_logical_axes(tmp_path):
  from jax.sharding import PartitionSpec as P

  from jaxlab.sharding import logical_rules, make_mesh

  config, params, path = _export("mixtral", tmp_path)
  mesh = make_mesh({"fsdp": 2, "tensor": 2, "expert": 2})
  _, sharded = load_pretrained(path, mesh=mesh, rules=logical_rules(("fsdp", "tensor", "expert")))
  _assert_trees_equal(sharded, params)
  assert sharded["layers_0"]["moe"]["gate_up"].sharding.spec == P("expert", "fsdp", "tensor")
  assert sharded["layers_0"]["attention"]["k"]["kernel"].sharding.spec == P("fsdp", "tensor")
  assert sharded["embed"]["embedding"].sharding.spec == P("tensor", "fsdp")
  # GSPMD runs the same model on the sharded params (no mesh set: single-device MoE path).
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, 40, size=(2, 8)), jnp.int32)
  model = jax.jit(MoEDecoderLM(dataclasses.replace(config, expert_parallel=False)).apply)
  np.testing.assert_allclose(model({"params": sharded}, tokens)[0], model({"params": params}, tokens)[0],
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="rules= needs mesh="):
    load_pretrained(path, rules=logical_rules("fsdp"))


def test_reader_agrees_with_safetensors_and_reads_bfloat16(tmp_path):
  from jaxlab.models.safetensors_io import SafetensorsFile

  rng = np.random.default_rng(4)
  tensors = {"a": rng.normal(size=(3, 5)).astype(np.float32), "b": rng.normal(size=(7,)).astype(np.float16)}
  save_file(tensors, str(tmp_path / "x.safetensors"))
  reader = SafetensorsFile(tmp_path / "x.safetensors")
  for name, value in tensors.items():
    np.testing.assert_array_equal(reader.read(name), value)
    assert reader.read(name).dtype == value.dtype
  from jaxlab.models.safetensors_io import write_file
  bf16 = rng.normal(size=(4, 2)).astype(ml_dtypes.bfloat16)
  write_file(tmp_path / "y.safetensors", {"w": bf16}, {"format": "pt"})
  reader = SafetensorsFile(tmp_path / "y.safetensors")
  assert reader.dtype_name("w") == "BF16" and reader.metadata == {"format": "pt"}
  np.testing.assert_array_equal(reader.read("w"), bf16)
  (tmp_path / "z.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
  with pytest.raises(ValueError, match="not a safetensors file"):
    SafetensorsFile(tmp_path / "z.safetensors")
