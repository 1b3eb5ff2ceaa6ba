"""Parity with transformers on CPU torch: tiny random Mixtral / Qwen2-MoE / Qwen3-MoE checkpoints, both ways."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxlab.moe.models import MoEDecoderLM, load_pretrained, save_pretrained  # noqa: E402

_COMMON = dict(vocab_size=128, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
               num_experts_per_tok=2, max_position_embeddings=256)
HF_MODELS = {
    "mixtral": lambda: transformers.MixtralForCausalLM(transformers.MixtralConfig(
        **_COMMON, num_hidden_layers=2, intermediate_size=32, num_local_experts=8)),
    # Shared expert with its gate, q/k/v bias, raw top-k probabilities, a dense middle layer.
    "qwen2_moe": lambda: transformers.Qwen2MoeForCausalLM(transformers.Qwen2MoeConfig(
        **_COMMON, num_hidden_layers=3, moe_intermediate_size=32, shared_expert_intermediate_size=48,
        intermediate_size=56, num_experts=6, mlp_only_layers=[1], norm_topk_prob=False, qkv_bias=True)),
    # Per-head q/k norm, q/k/v/o bias, renormalized top-k, tied embeddings.
    "qwen3_moe": lambda: transformers.Qwen3MoeForCausalLM(transformers.Qwen3MoeConfig(
        **_COMMON, num_hidden_layers=2, moe_intermediate_size=32, intermediate_size=48, num_experts=4,
        head_dim=32, norm_topk_prob=True, attention_bias=True, tie_word_embeddings=True)),
}


def _randomize(model) -> None:
  """Every parameter random at an O(1)-activation scale: norms and biases too (init makes them 1 and 0)."""
  torch.manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1:
        p.copy_((1.0 if "norm" in name else 0.0) + 0.2 * torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)  # torch layout: fan-in is the last dim.


@pytest.fixture(scope="module", params=list(HF_MODELS))
def hf_case(request, tmp_path_factory):
  """(arch, hf model, tokens, HF outputs, per-expert checkpoint dir, fused checkpoint dir)."""
  arch = request.param
  torch.manual_seed(0)
  model = HF_MODELS[arch]().eval()
  _randomize(model)
  root = tmp_path_factory.mktemp(arch)
  model.save_pretrained(root / "hub")  # transformers 5 writes the per-expert hub names by default.
  model.save_pretrained(root / "fused", save_original_format=False)
  tokens = np.random.default_rng(1).integers(0, 128, size=(2, 16))
  with torch.no_grad():
    out = model(torch.as_tensor(tokens), output_router_logits=True)
  return arch, model, tokens, out, root


@functools.lru_cache(maxsize=None)
def _forward(config):
  """One jitted forward per config: both layouts of a checkpoint share its compilation."""
  return jax.jit(MoEDecoderLM(config).apply)


def _jax_logits(config, params, tokens):
  return _forward(config)({"params": params}, jnp.asarray(tokens, jnp.int32))


def test_transformers_writes_the_layouts_we_read(hf_case):
  arch, _, _, _, root = hf_case
  from safetensors import safe_open

  with safe_open(os.path.join(root / "hub", "model.safetensors"), "numpy") as f:
    hub = set(f.keys())
  with safe_open(os.path.join(root / "fused", "model.safetensors"), "numpy") as f:
    fused = {k: f.get_slice(k).get_shape() for k in f.keys()}
  if arch == "mixtral":
    moe = "model.layers.0.block_sparse_moe"
    assert {f"{moe}.gate.weight", f"{moe}.experts.7.w1.weight", f"{moe}.experts.7.w3.weight"} <= hub
    assert fused["model.layers.0.mlp.experts.gate_up_proj"] == [8, 64, 64]  # [E, 2F, D]
    assert fused["model.layers.0.mlp.experts.down_proj"] == [8, 64, 32]  # [E, D, F]
  else:
    assert "model.layers.0.mlp.experts.3.down_proj.weight" in hub
    assert "model.layers.0.mlp.experts.gate_up_proj" in fused
    assert "model.layers.0.mlp.experts.0.up_proj.weight" not in fused


@pytest.mark.parametrize("layout", ["hub", "fused"])
def test_logits_match_transformers(hf_case, layout):
  arch, model, tokens, out, root = hf_case
  config, params = load_pretrained(root / layout)
  assert config.architecture == arch and config.dtype == "float32"
  logits, aux = _jax_logits(config, params, tokens)
  want = out.logits.numpy()
  assert np.std(want) > 0.3
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)

  # Routing statistics against the router logits transformers reports for its MoE layers.
  moe_layers = [i for i in range(config.num_layers) if config.is_moe_layer(i)]
  assert len(out.router_logits) == len(moe_layers)
  e, k = config.num_experts, config.top_k
  for i, router_logits in zip(moe_layers, out.router_logits):
    chosen = torch.topk(torch.softmax(router_logits.float(), -1), k, dim=-1).indices.numpy()
    np.testing.assert_array_equal(aux.tokens_per_expert[i], np.bincount(chosen.ravel(), minlength=e))
  # transformers pools all MoE layers' statistics into one aux_loss; the per-layer fields give it back.
  counts = np.asarray(aux.tokens_per_expert, np.float64)[moe_layers].sum(0) / (len(moe_layers) * tokens.size)
  probs = np.asarray(aux.router_probs_mean, np.float64)[moe_layers].mean(0)
  np.testing.assert_allclose(e * np.sum(counts * probs), out.aux_loss.item(), rtol=1e-5)


def test_exported_checkpoint_loads_in_transformers_with_the_same_logits(hf_case, tmp_path):
  _, model, tokens, out, root = hf_case
  config, params = load_pretrained(root / "fused")
  save_pretrained(params, config, tmp_path / "export")
  reloaded, info = type(model).from_pretrained(tmp_path / "export", output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  with torch.no_grad():
    got = reloaded.eval()(torch.as_tensor(tokens)).logits.numpy()
  np.testing.assert_array_equal(got, out.logits.numpy())
  for name, p in model.state_dict().items():
    torch.testing.assert_close(reloaded.state_dict()[name], p, rtol=0, atol=0, msg=name)
