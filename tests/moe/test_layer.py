"""Tests for `moe_ffn` and `MoEFeedForward` against naive per-token and dense references."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe import MoEFeedForward, moe_ffn
from tests.moe import naive

B, S, D, E, F, K = 2, 8, 8, 6, 12, 2


def _x(seed=0, shape=(B, S, D)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _init(layer, x, seed=0):
  """Random parameters of the layer's shapes, drawn in numpy (no compiled init: keeps tests fast)."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(layer.init, jax.random.key(0), x))["params"]
  # Fan-in is the second-to-last dim of every parameter here; this keeps activations O(1).
  draw = lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(s.shape[-2]), s.dtype)
  return jax.tree.map(draw, shapes)


def _shared_np(params, x_td):
  """The shared SwiGLU from its [1, D, 2Fs] / [1, Fs, D] one-expert layout, through the naive reference."""
  gate_up_df2 = np.asarray(params["shared_gate_up"])[0]
  fs = gate_up_df2.shape[1] // 2
  down_fd = np.asarray(params["shared_down"])[0]
  return naive.shared_np(x_td, gate_up_df2[:, :fs], gate_up_df2[:, fs:], down_fd, params.get("shared_gate"))


def _naive_layer_np(params, x, layer):
  x_td = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
  y_td, experts_tk, probs_te = naive.moe_loop_np(
      x_td, params["router"], params["gate_up"], params["down"], layer.top_k, layer.renormalize
  )
  if layer.num_shared_experts:
    y_td = y_td + _shared_np(params, x_td)
  return y_td.reshape(x.shape), experts_tk, probs_te


CASES = {
    "renorm": dict(renormalize=True),
    "raw_probs": dict(renormalize=False),
    "shared_token_input": dict(renormalize=True, num_shared_experts=2),
    "qwen_shared_gate": dict(renormalize=False, num_shared_experts=1, shared_d_ff=20, shared_expert_gate=True),
}


@pytest.mark.parametrize("case", CASES)
def test_layer_matches_per_token_loop(case):
  layer = MoEFeedForward(E, K, F, implementation="xla", **CASES[case])
  # Inputs may be [B, S, D] or [T, D].
  x = _x(1, (B * S, D) if case == "shared_token_input" else (B, S, D))
  params = _init(layer, x)
  y, aux = jax.jit(layer.apply)({"params": params}, x)
  want, experts_tk, probs_te = _naive_layer_np(params, x, layer)
  assert y.shape == x.shape and y.dtype == jnp.float32
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(aux.tokens_per_expert, np.bincount(experts_tk.ravel(), minlength=E))
  assert aux.tokens_per_expert.dtype == jnp.int32
  np.testing.assert_allclose(aux.router_probs_mean, probs_te.mean(axis=0), rtol=1e-5)
  np.testing.assert_allclose(aux.load_balancing_loss, naive.balance_loss_np(probs_te, experts_tk, E), rtol=1e-5)
  logits_te = np.asarray(x, np.float64).reshape(-1, D) @ np.asarray(params["router"], np.float64)
  lse_t = np.log(np.exp(logits_te).sum(-1))
  np.testing.assert_allclose(aux.router_z_loss, np.mean(lse_t**2), rtol=1e-5)


def test_layer_parameter_shapes_and_shared_width_default():
  layer = MoEFeedForward(E, K, F, num_shared_experts=2, shared_expert_gate=True, implementation="xla")
  boxed = jax.eval_shape(layer.init, jax.random.key(0), _x())["params"]
  params = nn.unbox(boxed)
  assert params["router"].shape == (D, E)
  assert params["gate_up"].shape == (E, D, 2 * F)
  assert params["down"].shape == (E, F, D)
  # One shared SwiGLU of width num_shared_experts * d_ff, stored as a single expert.
  assert params["shared_gate_up"].shape == (1, D, 2 * 2 * F)
  assert params["shared_down"].shape == (1, 2 * F, D)
  assert params["shared_gate"].shape == (D, 1)
  assert "shared_experts" not in params
  assert boxed["gate_up"].names == ("expert", "embed", "mlp")
  assert boxed["down"].names == ("expert", "mlp", "embed")
  assert boxed["shared_gate_up"].names == (None, "embed", "mlp")
  assert boxed["shared_down"].names == (None, "mlp", "embed")
  assert boxed["router"].names == ("embed", None)


@pytest.mark.parametrize("renormalize", [True, False])
def test_gradients_match_dense_reference(renormalize):
  x_td = _x(3, (B * S, D))
  layer = MoEFeedForward(E, K, F, renormalize=renormalize, implementation="xla")
  params = _init(layer, x_td)
  target_td = _x(4, (B * S, D))

  def loss_layer(p):
    y, aux = layer.apply({"params": p}, x_td)
    return jnp.sum((y - target_td) ** 2) + 0.1 * aux.load_balancing_loss + 0.01 * aux.router_z_loss

  def loss_dense(p):
    y, probs_te, logits_te = naive.moe_dense_jnp(x_td, p["router"], p["gate_up"], p["down"], K, renormalize)
    experts_tk = jnp.argsort(-probs_te, axis=-1, stable=True)[:, :K]
    fraction_e = jnp.mean(jnp.sum(jax.nn.one_hot(experts_tk, E), axis=1), axis=0)
    balance = E * jnp.sum(fraction_e * jnp.mean(probs_te, axis=0))
    z = jnp.mean(jax.nn.logsumexp(logits_te, axis=-1) ** 2)
    return jnp.sum((y - target_td) ** 2) + 0.1 * balance + 0.01 * z

  got = jax.jit(jax.grad(loss_layer))(params)
  want = jax.jit(jax.grad(loss_dense))(params)
  for name in ("router", "gate_up", "down"):
    scale = np.abs(np.asarray(want[name])).max()
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5 * scale, err_msg=name)
  assert np.abs(np.asarray(got["router"])).max() > 0  # Routing weights carry gradient to the router.


def test_pure_moe_ffn_matches_loop():
  rng = np.random.default_rng(5)
  x_td = rng.normal(size=(10, D)).astype(np.float32)
  router = rng.normal(size=(D, E)).astype(np.float32)
  gate_up = (rng.normal(size=(E, D, 2 * F)) / np.sqrt(D)).astype(np.float32)
  down = (rng.normal(size=(E, F, D)) / np.sqrt(F)).astype(np.float32)
  y_td, _ = jax.jit(lambda *a: moe_ffn(*a, top_k=3, renormalize=False, implementation="xla"))(
      x_td, router, gate_up, down
  )
  want, _, _ = naive.moe_loop_np(x_td, router, gate_up, down, 3, False)
  np.testing.assert_allclose(y_td, want, rtol=1e-5, atol=1e-5)


def test_quantized_experts_run_through_moe_ffn():
  """Mixed-precision experts: the layer equals the per-token loop over their dequantized weights."""
  from jaxlab.quant import rtn
  from jaxlab.quant_formats import dequantize_experts

  rng = np.random.default_rng(8)
  d, f, e = 128, 128, 4
  x_td = rng.normal(size=(12, d)).astype(np.float32)
  router = rng.normal(size=(d, e)).astype(np.float32)
  gate_up = rtn.quantize_experts(rng.normal(size=(e, d, 2 * f)) / np.sqrt(d),
                                 ["w4a16_g128_asym", "w8a16_g-1_asym", "w2a16_g128_asym", "w4a16_g128_asym"])
  down = rtn.quantize_experts(rng.normal(size=(e, f, d)) / np.sqrt(f), "w3a16_g128_asym")
  y_td, aux = jax.jit(lambda *a: moe_ffn(*a, top_k=2, renormalize=True, implementation="xla"))(
      x_td, router, gate_up, down
  )
  want, _, _ = naive.moe_loop_np(
      x_td, router, np.asarray(dequantize_experts(gate_up)), np.asarray(dequantize_experts(down)), 2, True
  )
  np.testing.assert_allclose(y_td, want, rtol=1e-4, atol=1e-4)
  assert int(aux.tokens_per_expert.sum()) == 12 * 2


def test_layer_runs_quantized_expert_weights_given_as_params():
  """ExpertWeights in the params (routed and shared) are used as stored: same as their dequantized floats."""
  from jaxlab.quant import rtn
  from jaxlab.quant_formats import dequantize_experts

  d, f, fs, e = 128, 128, 128, 4
  layer = MoEFeedForward(e, 2, f, renormalize=False, num_shared_experts=1, shared_d_ff=fs, shared_expert_gate=True,
                         implementation="xla")
  x = _x(9, (2, 6, d))
  params = _init(layer, x, seed=9)
  quantized = dict(params)
  quantized["gate_up"] = rtn.quantize_experts(params["gate_up"], ["w4a16_g128_asym", "w8a16_g-1_sym"] * 2)
  quantized["down"] = rtn.quantize_experts(params["down"], "w3a16_g128_asym")
  quantized["shared_gate_up"] = rtn.quantize_experts(params["shared_gate_up"], "w4a16_g128_sym")
  quantized["shared_down"] = rtn.quantize_experts(params["shared_down"], "w8a16_g-1_asym")
  expert_names = ("gate_up", "down", "shared_gate_up", "shared_down")
  dequantized = {k: (dequantize_experts(v) if k in expert_names else v) for k, v in quantized.items()}
  y_q, _ = jax.jit(layer.apply)({"params": quantized}, x)
  y_deq, _ = jax.jit(layer.apply)({"params": dequantized}, x)
  np.testing.assert_allclose(y_q, y_deq, rtol=1e-5, atol=1e-5)
  want, _, _ = _naive_layer_np(dequantized, x, layer)
  np.testing.assert_allclose(y_q, want.reshape(x.shape), rtol=1e-4, atol=1e-4)
  y_float, _ = jax.jit(layer.apply)({"params": params}, x)
  assert not np.allclose(y_q, y_float, atol=1e-3)  # Quantization changed the output.
  wrong = dict(quantized, down=rtn.quantize_experts(params["down"][:3], "w3a16_g128_asym"))
  with pytest.raises(ValueError, match="'down'.*expected"):
    layer.apply({"params": wrong}, x)


def test_dense_swiglu_rejects_more_than_one_group():
  from jaxlab.moe.layer import dense_swiglu

  with pytest.raises(ValueError, match="gate_up must hold exactly one SwiGLU"):
    dense_swiglu(jnp.zeros((4, D)), jnp.zeros((2, D, 2 * F)), jnp.zeros((1, F, D)))
  with pytest.raises(ValueError, match="down must hold exactly one SwiGLU"):
    dense_swiglu(jnp.zeros((4, D)), jnp.zeros((1, D, 2 * F)), jnp.zeros((F, D)))


def test_layer_bfloat16_compute_close_to_reference():
  x = _x(6)
  layer = MoEFeedForward(E, K, F, num_shared_experts=1, dtype=jnp.bfloat16, implementation="xla")
  params = _init(layer, x)
  y16, aux16 = jax.jit(layer.apply)({"params": params}, x)
  assert y16.dtype == jnp.bfloat16 and aux16.router_probs_mean.dtype == jnp.float32
  want, _, _ = _naive_layer_np(params, x, layer)
  np.testing.assert_allclose(np.asarray(y16, np.float32), want, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize(
    "kwargs, x_shape, error, match",
    [
        (dict(num_experts=4, top_k=5, d_ff=F), (S, D), ValueError, "top_k"),
        (dict(num_experts=0, top_k=1, d_ff=F), (S, D), ValueError, "num_experts"),
        (dict(num_experts=E, top_k=K, d_ff=F, shared_expert_gate=True), (S, D), ValueError, "num_shared"),
        (dict(num_experts=E, top_k=K, d_ff=F, shared_d_ff=8), (S, D), ValueError, "num_shared_experts"),
        (dict(num_experts=E, top_k=K, d_ff=F, expert_parallel=3), (S, D), TypeError, "expert_parallel"),
        (dict(num_experts=E, top_k=K, d_ff=F), (1, B, S, D), ValueError, r"\[B, S, D\]"),
        (dict(num_experts=E, top_k=K, d_ff=F, expert_parallel=True), (S, D), ValueError, "jax.set_mesh"),
    ],
)
def test_layer_rejects_bad_configuration(kwargs, x_shape, error, match):
  with pytest.raises(error, match=match):
    jax.eval_shape(MoEFeedForward(**kwargs).init, jax.random.key(0), jnp.zeros(x_shape))


def test_moe_ffn_rejects_router_expert_mismatch():
  with pytest.raises(ValueError, match="router has 5 experts"):
    moe_ffn(jnp.zeros((4, D)), jnp.zeros((D, 5)), jnp.zeros((E, D, 2 * F)), jnp.zeros((E, F, D)), top_k=1)
  with pytest.raises(ValueError, match="router must have shape"):
    moe_ffn(jnp.zeros((4, D)), jnp.zeros((D + 1, E)), jnp.zeros((E, D, 2 * F)), jnp.zeros((E, F, D)), top_k=1)
