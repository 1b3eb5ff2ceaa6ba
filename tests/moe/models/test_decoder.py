"""MoEDecoderLM against a float64 numpy forward; layer-wise helpers; quantized expert params; param tree."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe.models import (
    MoEDecoderLM,
    MoELMConfig,
    apply_head,
    apply_layer,
    embed_tokens,
    layer_inputs,
)
from tests.moe import naive
from tests.moe.models import naive_lm

_BASE = dict(vocab_size=96, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
             num_experts=6, top_k=2, moe_intermediate_size=16)
CONFIGS = {
    "mixtral": MoELMConfig("mixtral", **_BASE, rope_theta=1e6, rms_norm_eps=1e-5),
    # Shared expert with gate, q/k/v bias, raw top-k probabilities, a dense layer, tied embeddings.
    "qwen2_moe": MoELMConfig(
        "qwen2_moe", **dict(_BASE, num_layers=3), attention_bias=True, norm_topk_prob=False,
        shared_expert_intermediate_size=24, shared_expert_gate=True, intermediate_size=40, mlp_only_layers=(1,),
        tie_word_embeddings=True,
    ),
    # Per-head q/k RMSNorm, q/k/v/o bias, every second layer MoE.
    "qwen3_moe": MoELMConfig(
        "qwen3_moe", **dict(_BASE, num_heads=4, num_kv_heads=1, head_dim=16), attention_bias=True,
        attention_out_bias=True, qk_norm=True, intermediate_size=20, decoder_sparse_step=2,
    ),
}


@functools.lru_cache(maxsize=None)
def _forward(config):
  """One jitted forward per config, so tests of the same config share its compilations."""
  return jax.jit(MoEDecoderLM(config).apply)


def _tokens(config, seed=0, shape=(2, 12)):
  return jnp.asarray(np.random.default_rng(seed).integers(0, config.vocab_size, size=shape), jnp.int32)


@pytest.mark.parametrize("arch", CONFIGS)
def test_logits_and_routing_match_numpy_reference(arch):
  config = CONFIGS[arch]
  params = naive_lm.random_params(config, seed=1)
  tokens = _tokens(config)
  positions = jnp.asarray(np.random.default_rng(2).integers(0, 50, size=tokens.shape), jnp.int32)
  logits, aux = _forward(config)({"params": params}, tokens, positions)
  want, routing = naive_lm.forward(config, params, tokens, positions)
  assert logits.shape == (*tokens.shape, config.vocab_size) and logits.dtype == jnp.float32
  assert np.std(want) > 0.3  # Not a near-constant output that any tolerance would accept.
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)

  e = config.num_experts
  assert aux.tokens_per_expert.shape == aux.router_probs_mean.shape == (config.num_layers, e)
  want_balance = 0.0
  for i, layer in enumerate(routing):
    assert (layer is None) == (not config.is_moe_layer(i))
    if layer is None:
      np.testing.assert_array_equal(aux.tokens_per_expert[i], 0)  # Dense layer: no routing.
      continue
    experts_tk, probs_te = layer
    np.testing.assert_array_equal(aux.tokens_per_expert[i], np.bincount(experts_tk.ravel(), minlength=e))
    np.testing.assert_allclose(aux.router_probs_mean[i], probs_te.mean(axis=0), rtol=1e-4, atol=1e-6)
    want_balance += naive.balance_loss_np(probs_te, experts_tk, e)
  np.testing.assert_allclose(aux.load_balancing_loss, want_balance, rtol=1e-4)


def test_logits_are_causal_and_default_positions_are_arange():
  config = CONFIGS["qwen2_moe"]
  params = naive_lm.random_params(config, seed=3)
  model = _forward(config)
  tokens = _tokens(config, seed=4)
  changed = tokens.at[:, 7:].set((tokens[:, 7:] + 1) % config.vocab_size)
  a, _ = model({"params": params}, tokens)
  b, _ = model({"params": params}, changed)
  np.testing.assert_allclose(a[:, :7], b[:, :7], rtol=1e-5, atol=1e-5)
  assert not np.allclose(a[:, 7:], b[:, 7:], atol=1e-3)
  explicit, _ = model({"params": params}, tokens, jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape))
  np.testing.assert_allclose(a, explicit, rtol=1e-6, atol=1e-6)


def test_layerwise_helpers_compose_to_the_model():
  config = CONFIGS["qwen2_moe"]  # MoE and dense layers, tied head.
  params = naive_lm.random_params(config, seed=5)
  tokens = _tokens(config, seed=6)
  logits, aux = _forward(config)({"params": params}, tokens)

  inputs = layer_inputs(config, params, tokens)
  assert len(inputs) == config.num_layers
  np.testing.assert_array_equal(inputs[0], embed_tokens(config, params, tokens))
  x = inputs[0]
  for i in range(config.num_layers):
    np.testing.assert_allclose(x, inputs[i], rtol=1e-6, atol=1e-6)
    x, layer_aux = apply_layer(config, params[f"layers_{i}"], x)
    np.testing.assert_array_equal(layer_aux.tokens_per_expert, aux.tokens_per_expert[i])
  np.testing.assert_allclose(apply_head(config, params, x), logits, rtol=1e-5, atol=1e-5)


def test_quantized_expert_weights_in_params_match_their_dequantized_floats():
  from jaxlab.quant import rtn
  from jaxlab.quant_formats import dequantize_experts

  config = MoELMConfig(
      "qwen2_moe", vocab_size=64, hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32,
      num_experts=4, top_k=2, moe_intermediate_size=128, shared_expert_intermediate_size=128,
      shared_expert_gate=True, intermediate_size=128, mlp_only_layers=(1,), attention_bias=True,
  )
  params = naive_lm.random_params(config, seed=7)
  quantized = jax.tree.map(lambda x: x, params)  # A copy of the dict structure.
  moe, mlp = quantized["layers_0"]["moe"], quantized["layers_1"]["mlp"]
  moe["gate_up"] = rtn.quantize_experts(
      params["layers_0"]["moe"]["gate_up"], ["w4a16_g128_asym", "w8a16_g-1_sym"] * 2
  )
  moe["down"] = rtn.quantize_experts(params["layers_0"]["moe"]["down"], "w3a16_g128_asym")
  moe["shared_gate_up"] = rtn.quantize_experts(params["layers_0"]["moe"]["shared_gate_up"], "w4a16_g128_sym")
  moe["shared_down"] = rtn.quantize_experts(params["layers_0"]["moe"]["shared_down"], "w2a16_g128_asym")
  mlp["gate_up"] = rtn.quantize_experts(params["layers_1"]["mlp"]["gate_up"], "w4a16_g-1_asym")
  dequantized = jax.tree.map(lambda x: x, quantized)
  for sub, names in ((dequantized["layers_0"]["moe"], ("gate_up", "down", "shared_gate_up", "shared_down")),
                     (dequantized["layers_1"]["mlp"], ("gate_up",))):
    for name in names:
      sub[name] = dequantize_experts(sub[name])

  # 2-4 bit weights move far from the floats: matching the dequantized model shows they were used.
  moved = dequantized["layers_0"]["moe"]["down"] - params["layers_0"]["moe"]["down"]
  assert np.abs(np.asarray(moved)).max() > 0.02
  tokens = _tokens(config, seed=8)
  model = jax.jit(MoEDecoderLM(config).apply)
  got, _ = model({"params": quantized}, tokens)
  want, _ = model({"params": dequantized}, tokens)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  want_np, _ = naive_lm.forward(config, dequantized, tokens)
  np.testing.assert_allclose(got, want_np, rtol=2e-4, atol=2e-4)


def test_param_tree_shapes_and_logical_axes():
  config = dataclasses.replace(CONFIGS["qwen2_moe"], tie_word_embeddings=False)
  boxed = jax.eval_shape(MoEDecoderLM(config).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
  d, e, f, fs, hd = 32, 6, 16, 24, 8
  want = {
      ("embed", "embedding"): ((96, d), ("vocab", "embed")),
      ("layers_0", "input_norm", "scale"): ((d,), ("embed",)),
      ("layers_0", "attention", "q", "kernel"): ((d, 4 * hd), ("embed", "heads")),
      ("layers_0", "attention", "q", "bias"): ((4 * hd,), ("heads",)),
      ("layers_0", "attention", "k", "kernel"): ((d, 2 * hd), ("embed", "kv_heads")),
      ("layers_0", "attention", "v", "bias"): ((2 * hd,), ("kv_heads",)),
      ("layers_0", "attention", "o", "kernel"): ((4 * hd, d), ("heads", "embed")),
      ("layers_0", "post_attention_norm", "scale"): ((d,), ("embed",)),
      ("layers_0", "moe", "router"): ((d, e), ("embed", None)),
      ("layers_0", "moe", "gate_up"): ((e, d, 2 * f), ("expert", "embed", "mlp")),
      ("layers_0", "moe", "down"): ((e, f, d), ("expert", "mlp", "embed")),
      ("layers_0", "moe", "shared_gate_up"): ((1, d, 2 * fs), (None, "embed", "mlp")),
      ("layers_0", "moe", "shared_down"): ((1, fs, d), (None, "mlp", "embed")),
      ("layers_0", "moe", "shared_gate"): ((d, 1), ("embed", None)),
      ("layers_1", "mlp", "gate_up"): ((1, d, 80), (None, "embed", "mlp")),
      ("layers_1", "mlp", "down"): ((1, 40, d), (None, "mlp", "embed")),
      ("final_norm", "scale"): ((d,), ("embed",)),
      ("lm_head", "kernel"): ((d, 96), ("embed", "vocab")),
  }
  from flax import traverse_util
  flat = traverse_util.flatten_dict(boxed, is_leaf=lambda _, x: isinstance(x, nn.Partitioned))
  for path, (shape, names) in want.items():
    assert flat[path].value.shape == shape, path
    assert tuple(flat[path].names) == names, path
  assert ("layers_0", "attention", "o", "bias") not in flat  # Qwen2-MoE: no output bias.
  assert not any(p[0] == "layers_1" and p[1] == "moe" for p in flat)
  assert len(flat) == 3 + 15 + 11 + 15  # embed, final norm, lm_head; MoE layers 0, 2 (15); dense layer 1 (11)
  tied_model = MoEDecoderLM(CONFIGS["qwen2_moe"])
  tied = jax.eval_shape(tied_model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  assert "lm_head" not in tied["params"]


def test_bfloat16_compute_is_close_to_float32():
  config = CONFIGS["mixtral"]
  params = naive_lm.random_params(config, seed=9)
  tokens = _tokens(config, seed=10)
  positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
  f32, _ = _forward(config)({"params": params}, tokens, positions)
  bf16, _ = _forward(dataclasses.replace(config, dtype="bfloat16"))({"params": params}, tokens, positions)
  assert bf16.dtype == jnp.float32
  # bfloat16 keeps ~3 significant digits; routing may flip for a few near-tied tokens.
  assert np.mean(np.abs(np.asarray(bf16) - np.asarray(f32))) < 0.05 * np.std(np.asarray(f32))


def test_rejects_bad_inputs():
  config = CONFIGS["mixtral"]
  model = MoEDecoderLM(config)
  params = naive_lm.random_params(config, seed=11)
  with pytest.raises(TypeError, match="tokens_bt must be an integer array"):
    model.apply({"params": params}, jnp.zeros((2, 4), jnp.float32))
  with pytest.raises(ValueError, match=r"tokens_bt must be a \[B, T\]"):
    model.apply({"params": params}, jnp.zeros((8,), jnp.int32))
  with pytest.raises(ValueError, match="positions_bt must have tokens_bt's shape"):
    model.apply({"params": params}, jnp.zeros((2, 4), jnp.int32), jnp.zeros((2, 5), jnp.int32))
  with pytest.raises(ValueError, match="must hold 'moe' or 'mlp'"):
    apply_layer(config, params["embed"], jnp.zeros((1, 4, 32)))
  with pytest.raises(ValueError, match=r"x_btd must have shape \[B, T, D=32\]"):
    apply_layer(config, params["layers_0"], jnp.zeros((1, 4, 16)))
