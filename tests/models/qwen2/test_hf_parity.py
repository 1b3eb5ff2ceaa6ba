"""Qwen2 checkpoints: save/load without torch, then parity with transformers' Qwen2ForCausalLM on CPU torch.

The transformers tests build tiny random models (tied and untied embeddings), save them, load them
into Qwen2LM and compare logits on a left-padded batch, greedy generation, fractional positions,
and the round trip of jaxlab's own export back into transformers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM, generate, load_pretrained, save_pretrained
from jaxlab.sharding import logical_rules, make_mesh

from . import random_params

SMALL = Qwen2Config(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, max_position_embeddings=64, eos_token_id=(3, 4))


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.shape == y.shape and x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


# Without torch.


@pytest.mark.parametrize("tied", [False, True])
def test_save_then_load_is_exact(tied, tmp_path):
  config = dataclasses.replace(SMALL, tie_word_embeddings=tied)
  params = random_params(config, seed=1)
  save_pretrained({"params": params}, config, tmp_path / "out")
  assert sorted(os.listdir(tmp_path)) == ["out"]
  assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]
  loaded_config, loaded = load_pretrained(tmp_path / "out")
  assert loaded_config == config
  _assert_trees_equal(loaded, params)
  tensors = load_file(tmp_path / "out" / "model.safetensors")
  assert ("lm_head.weight" in tensors) == (not tied)
  np.testing.assert_array_equal(tensors["model.layers.1.self_attn.k_proj.weight"],
                                np.asarray(params["layers_1"]["attention"]["k"]["kernel"]).T)
  np.testing.assert_array_equal(tensors["model.layers.0.mlp.down_proj.weight"],
                                np.asarray(params["layers_0"]["mlp"]["down"]["kernel"]).T)


def test_sharded_checkpoint_loads_onto_a_mesh_in_bfloat16(tmp_path):
  params = random_params(SMALL, seed=2)
  save_pretrained(params, SMALL, tmp_path / "out", max_shard_bytes=4000)
  files = sorted(os.listdir(tmp_path / "out"))
  assert "model.safetensors.index.json" in files and len([f for f in files if f.endswith(".safetensors")]) > 1
  mesh = make_mesh({"fsdp": 4, "tensor": 2})
  config, loaded = load_pretrained(tmp_path / "out", mesh=mesh, rules=logical_rules(("fsdp", "tensor")),
                                   dtype=jnp.bfloat16)
  assert config.dtype == "bfloat16"
  q = loaded["layers_0"]["attention"]["q"]["kernel"]
  assert q.dtype == jnp.bfloat16 and tuple(q.sharding.spec) == ("fsdp", "tensor")
  np.testing.assert_array_equal(np.asarray(q, np.float32),
                                np.asarray(params["layers_0"]["attention"]["q"]["kernel"].astype(jnp.bfloat16),
                                           np.float32))


def test_checkpoint_mismatches_name_the_tensors(tmp_path):
  params = random_params(SMALL, seed=3)
  save_pretrained(params, SMALL, tmp_path / "good")
  tensors = load_file(tmp_path / "good" / "model.safetensors")
  tensors.pop("model.layers.1.mlp.up_proj.weight")
  tensors["model.layers.1.mlp.extra.weight"] = np.zeros((2,), np.float32)
  tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.zeros((4,), np.float32)  # Ignored, as in transformers.
  os.makedirs(tmp_path / "bad")
  save_file(tensors, tmp_path / "bad" / "model.safetensors", metadata={"format": "pt"})
  with open(tmp_path / "good" / "config.json") as f:
    hf_config = json.load(f)
  with open(tmp_path / "bad" / "config.json", "w") as f:
    json.dump(hf_config, f)
  with pytest.raises(ValueError, match=r"1 missing tensor\(s\): \['model.layers.1.mlp.up_proj.weight'\]; "
                                       r"1 unexpected tensor\(s\): \['model.layers.1.mlp.extra.weight'\]"):
    load_pretrained(tmp_path / "bad")
  with open(tmp_path / "bad" / "config.json", "w") as f:
    json.dump(dict(hf_config, intermediate_size=20), f)
  save_file(load_file(tmp_path / "good" / "model.safetensors"), tmp_path / "bad" / "model.safetensors",
            metadata={"format": "pt"})
  with pytest.raises(ValueError, match=r"model.layers.0.mlp.gate_proj.weight: shape \[24, 16\], expected \[20, 16\]"):
    load_pretrained(tmp_path / "bad")
  with open(tmp_path / "bad" / "config.json", "w") as f:
    json.dump(dict(hf_config, rope_scaling={"type": "yarn", "factor": 4.0}), f)
  with pytest.raises(ValueError, match="yarn"):
    load_pretrained(tmp_path / "bad")


def test_save_refuses_bad_params_and_foreign_directories(tmp_path):
  params = random_params(SMALL, seed=4)
  broken = dict(params, layers_0={k: v for k, v in params["layers_0"].items() if k != "mlp"})
  with pytest.raises(ValueError, match="layers_0/mlp/down/kernel"):
    save_pretrained(broken, SMALL, tmp_path / "a")
  (tmp_path / "foreign").mkdir()
  (tmp_path / "foreign" / "notes.txt").write_text("keep")
  with pytest.raises(ValueError, match="overwrite=True"):
    save_pretrained(params, SMALL, tmp_path / "foreign")
  assert (tmp_path / "foreign" / "notes.txt").exists()
  save_pretrained(params, SMALL, tmp_path / "a")
  save_pretrained(params, SMALL, tmp_path / "a")  # An earlier export is replaced without overwrite=True.
  with pytest.raises(TypeError, match="Qwen2Config"):
    save_pretrained(params, SMALL.to_hf_dict(), tmp_path / "b")


# Parity with transformers.


def _randomize(torch, model) -> None:
  """Every parameter random at an O(1)-activation scale: norms and biases too (init makes them 1 and 0)."""
  torch.manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1:
        p.copy_((1.0 if "norm" in name else 0.0) + 0.2 * torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)  # torch layout: fan-in is the last dim.


TOKENS = np.random.default_rng(1).integers(0, 128, size=(3, 10))
MASK = np.ones((3, 10), np.int64)
MASK[0, :3] = 0
MASK[2, :7] = 0
POSITIONS = np.maximum(np.cumsum(MASK, axis=1) - 1, 0)
NEW_TOKENS = 20


@pytest.fixture(scope="module", params=["untied", "tied"])
def hf_case(request, tmp_path_factory):
  """(torch, transformers model, checkpoint dir, its logits on the left-padded batch)."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  config = transformers.Qwen2Config(
      vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
      num_key_value_heads=2, max_position_embeddings=64, rope_theta=10_000.0,
      tie_word_embeddings=request.param == "tied",
  )
  model = transformers.Qwen2ForCausalLM(config).eval()
  _randomize(torch, model)
  root = tmp_path_factory.mktemp(request.param)
  model.save_pretrained(root / "hf")
  with torch.no_grad():
    logits = model(torch.as_tensor(TOKENS), attention_mask=torch.as_tensor(MASK),
                   position_ids=torch.as_tensor(POSITIONS)).logits.numpy()
  return torch, model, root, logits


@functools.lru_cache(maxsize=None)
def _forward(config):
  return jax.jit(Qwen2LM(config).apply)


def _jax_logits(config, params, positions=None):
  logits, _ = _forward(config)({"params": params}, jnp.asarray(TOKENS, jnp.int32), attention_mask_bt=jnp.asarray(MASK),
                               positions_bt=None if positions is None else jnp.asarray(positions))
  return np.asarray(logits)


def test_logits_match_transformers_on_real_tokens(hf_case):
  _, model, root, want = hf_case
  config, params = load_pretrained(root / "hf")
  assert config.tie_word_embeddings == model.config.tie_word_embeddings and config.dtype == "float32"
  assert ("lm_head" in params) != config.tie_word_embeddings
  valid = MASK.astype(bool)
  assert np.std(want[valid]) > 0.3
  np.testing.assert_allclose(_jax_logits(config, params)[valid], want[valid], rtol=1e-4, atol=1e-4)


def test_fractional_positions_match_transformers(hf_case):
  torch, model, root, _ = hf_case
  positions = (POSITIONS * 0.5 + 0.25).astype(np.float32)  # V2PE-style half steps.
  with torch.no_grad():
    want = model(torch.as_tensor(TOKENS), attention_mask=torch.as_tensor(MASK),
                 position_ids=torch.as_tensor(positions)).logits.numpy()
  config, params = load_pretrained(root / "hf")
  valid = MASK.astype(bool)
  np.testing.assert_allclose(_jax_logits(config, params, positions)[valid], want[valid], rtol=1e-4, atol=1e-4)


def test_greedy_generation_matches_transformers(hf_case):
  torch, model, root, _ = hf_case
  with torch.no_grad():
    out = model.generate(torch.as_tensor(TOKENS), attention_mask=torch.as_tensor(MASK), max_new_tokens=NEW_TOKENS,
                         min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0, eos_token_id=None)
  want = out[:, TOKENS.shape[1]:].numpy()
  assert want.shape == (3, NEW_TOKENS)
  config, params = load_pretrained(root / "hf")
  got = generate(Qwen2LM(config), params, jnp.asarray(TOKENS, jnp.int32), jnp.asarray(MASK),
                 max_new_tokens=NEW_TOKENS)
  np.testing.assert_array_equal(got, want)


def test_export_reloads_in_transformers_with_the_same_logits(hf_case, tmp_path):
  torch, model, root, want = hf_case
  config, params = load_pretrained(root / "hf")
  save_pretrained(params, config, tmp_path / "export")
  reloaded, info = type(model).from_pretrained(tmp_path / "export", output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  assert reloaded.config.tie_word_embeddings == model.config.tie_word_embeddings
  with torch.no_grad():
    got = reloaded.eval()(torch.as_tensor(TOKENS), attention_mask=torch.as_tensor(MASK),
                          position_ids=torch.as_tensor(POSITIONS)).logits.numpy()
  np.testing.assert_array_equal(got, want)
  for name, p in model.state_dict().items():
    torch.testing.assert_close(reloaded.state_dict()[name], p, rtol=0, atol=0, msg=name)
