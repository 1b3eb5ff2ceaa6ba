"""Tests for `jaxlab.mxmoe.sensitivity` on a toy MoE decoder layer that honours `act_quant`.

The layer is x + sum_e gate_e(x) * expert_e(x) + shared(x), written twice: in jnp (dense over
experts, jittable) for `block_sensitivities`, and as a float64 numpy loop over tokens for the
independent reference, with weights quantized by the numpy restatement of the RTN spec.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.mxmoe import block_sensitivities, expert_frequencies, workload_rows
from jaxlab.quant_formats import fake_quantize_activations, parse_scheme
from tests.quant import numpy_reference

E, D, F, FS, TOP_K = 3, 128, 128, 128, 2
N, S = 2, 12


def _params(seed=0):
  rng = np.random.default_rng(seed)
  w = lambda *shape: jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[-2]), jnp.float32)
  return {"router": w(D, E), "moe": {"gate_up": w(E, D, 2 * F), "down": w(E, F, D),
                                     "shared_gate_up": w(1, D, 2 * FS), "shared_down": w(1, FS, D)}}


def _calibration(seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(N, S, D)), jnp.float32)


def toy_layer(params, x_nsd, act_quant=None):
  """jnp layer: top-k softmax routing, SwiGLU experts computed densely, shared expert, residual."""
  act_quant = act_quant or {}
  x = x_nsd.reshape(-1, D)
  probs = jax.nn.softmax(x @ params["router"], axis=-1)
  top_w, top_e = jax.lax.top_k(probs, TOP_K)
  gate_te = jnp.sum(jax.nn.one_hot(top_e, E) * (top_w / top_w.sum(-1, keepdims=True))[..., None], axis=1)
  moe = params["moe"]
  experts = [(e, moe["gate_up"][e], moe["down"][e], gate_te[:, e:e + 1]) for e in range(E)]
  experts.append((E, moe["shared_gate_up"][0], moe["shared_down"][0], 1.0))
  y = x
  for e, gate_up, down, weight in experts:
    x_in = fake_quantize_activations(x, *act_quant[(e, "gate_up")]) if (e, "gate_up") in act_quant else x
    h = x_in @ gate_up
    width = h.shape[-1] // 2
    a = jax.nn.silu(h[:, :width]) * h[:, width:]
    a = fake_quantize_activations(a, *act_quant[(e, "down")]) if (e, "down") in act_quant else a
    y = y + weight * (a @ down)
  return y.reshape(x_nsd.shape)


def _fake_act_np(x_d, bits):
  """Per-token symmetric fake quantization of one row, in float64 (the spec's formula)."""
  q_max = 2 ** (bits - 1) - 1
  scale = np.abs(x_d).max() / q_max
  scale = scale if scale > 0 else 1.0
  return np.clip(np.round(x_d / scale), -q_max, q_max) * scale


def _fake_weight_np(w_kn, scheme):
  scheme = parse_scheme(scheme)
  if not scheme.quantizes_weights:
    return np.asarray(w_kn, np.float64)
  q, scale, zero = numpy_reference.quantize(np.asarray(w_kn), scheme.w_bits, scheme.group_size, scheme.symmetric)
  return numpy_reference.dequantize(q, scale, zero).astype(np.float64)


def _naive_layer(params, x_nsd, block=None, scheme=None):
  """float64 loop over tokens; `block` (expert, kind) gets `scheme`'s weights and activation rounding."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  moe = p["moe"]
  mats = {(e, "gate_up"): moe["gate_up"][e] for e in range(E)} | {(e, "down"): moe["down"][e] for e in range(E)}
  mats |= {(E, "gate_up"): moe["shared_gate_up"][0], (E, "down"): moe["shared_down"][0]}
  a_bits = None
  if block is not None:
    mats[block] = _fake_weight_np(np.asarray(mats[block], np.float32), scheme)
    a_bits = parse_scheme(scheme).a_bits if parse_scheme(scheme).quantizes_activations else None
  x_td = np.asarray(x_nsd, np.float64).reshape(-1, D)
  out = np.array(x_td)
  for t, x in enumerate(x_td):
    logits = x @ p["router"]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    chosen = np.argsort(-probs, kind="stable")[:TOP_K]
    weights = {int(e): probs[e] / probs[chosen].sum() for e in chosen}
    weights[E] = 1.0
    for e, weight in weights.items():
      x_in = _fake_act_np(x, a_bits) if a_bits and block == (e, "gate_up") else x
      h = x_in @ mats[(e, "gate_up")]
      half = h.shape[0] // 2
      a = h[:half] / (1 + np.exp(-h[:half])) * h[half:]
      a = _fake_act_np(a, a_bits) if a_bits and block == (e, "down") else a
      out[t] += weight * (a @ mats[(e, "down")])
  return out


def _naive_delta(params, x, block, scheme):
  return float(np.linalg.norm(_naive_layer(params, x, block, scheme) - _naive_layer(params, x)))


WEIGHT_ONLY_MENU = ["bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w2a16_g128_asym"]
WA_BLOCKS = [(2, "gate_up"), (0, "down"), (E, "down")]


@pytest.fixture(scope="module")
def measured():
  """(deltas, act_quant arguments seen): weight-only schemes on every block, w4a4 on WA_BLOCKS."""
  seen = []

  def recording_layer(params, x, **kwargs):
    seen.append(kwargs.get("act_quant", "absent"))  # Runs while tracing: once per compiled variant.
    return toy_layer(params, x, **kwargs)

  deltas = block_sensitivities(recording_layer, _params(), _calibration(), None, WEIGHT_ONLY_MENU)
  deltas |= block_sensitivities(recording_layer, _params(), _calibration(), WA_BLOCKS, ["w4a4_g-1_sym"])
  return deltas, seen


def test_every_block_and_scheme_is_measured(measured):
  deltas, _ = measured
  blocks = [(e, kind) for e in range(E + 1) for kind in ("gate_up", "down")]
  want = {(*b, s) for b in blocks for s in WEIGHT_ONLY_MENU} | {(*b, "w4a4_g-1_sym") for b in WA_BLOCKS}
  assert set(deltas) == want


def test_bf16_is_exactly_zero_and_delta_grows_as_bits_shrink(measured):
  deltas, _ = measured
  for e in range(E + 1):
    for kind in ("gate_up", "down"):
      assert deltas[(e, kind, "bf16")] == 0.0
      by_bits = [deltas[(e, kind, s)] for s in WEIGHT_ONLY_MENU[1:]]
      assert 0 < by_bits[0] and all(a < b for a, b in zip(by_bits, by_bits[1:])), (e, kind, by_bits)


@pytest.mark.parametrize("block,scheme", [((1, "down"), "w4a16_g128_asym"), ((E, "gate_up"), "w2a16_g128_asym"),
                                          ((0, "gate_up"), "w8a16_g-1_asym")])
def test_weight_only_matches_naive_layer(measured, block, scheme):
  want = _naive_delta(_params(), _calibration(), block, scheme)
  assert measured[0][(*block, scheme)] == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("block", WA_BLOCKS)
def test_activation_hook_is_honoured(measured, block):
  """w4a4 Delta includes the block's 4-bit activation rounding, and only that block's."""
  want = _naive_delta(_params(), _calibration(), block, "w4a4_g-1_sym")
  weights_only = _naive_delta(_params(), _calibration(), block, "w4a16_g-1_sym")
  got = measured[0][(*block, "w4a4_g-1_sym")]
  assert got == pytest.approx(want, rel=2e-2)
  assert abs(got - weights_only) > 0.1 * weights_only


def test_act_quant_keyword_contract(measured):
  """layer_fn gets act_quant={(expert, kind): (bits, group_size)} for W-A schemes and no keyword otherwise."""
  _, seen = measured
  assert "absent" in seen
  for block in WA_BLOCKS:
    assert {block: (4, -1)} in seen
  assert all(a == "absent" or (isinstance(a, dict) and len(a) == 1) for a in seen)


def test_chunked_calibration_sums_over_all_tokens():
  x = _calibration()
  blocks, menu = [(1, "down")], ["w3a16_g128_asym"]
  whole = block_sensitivities(toy_layer, _params(), x, blocks, menu)
  chunked = block_sensitivities(toy_layer, _params(), [x[:1], x[1:]], blocks, menu)
  assert chunked[(1, "down", "w3a16_g128_asym")] == pytest.approx(whole[(1, "down", "w3a16_g128_asym")], rel=1e-6)
  first = block_sensitivities(toy_layer, _params(), x[:1], blocks, menu)[(1, "down", "w3a16_g128_asym")]
  second = block_sensitivities(toy_layer, _params(), x[1:], blocks, menu)[(1, "down", "w3a16_g128_asym")]
  assert whole[(1, "down", "w3a16_g128_asym")] == pytest.approx(np.hypot(first, second), rel=1e-6)


def test_bad_arguments():
  params, x = _params(), _calibration()
  with pytest.raises(ValueError, match=r"expert must be in 0..2, or 3 for the shared experts"):
    block_sensitivities(toy_layer, params, x, [(4, "down")], ["bf16"])
  with pytest.raises(ValueError, match="kind in"):
    block_sensitivities(toy_layer, params, x, [(0, "up")], ["bf16"])
  moe = params["moe"]
  no_shared = {"router": params["router"], "moe": {"gate_up": moe["gate_up"], "down": moe["down"]}}
  with pytest.raises(ValueError, match="no shared experts"):
    block_sensitivities(toy_layer, no_shared, x, [(E, "down")], ["bf16"])
  with pytest.raises(ValueError, match="moe/gate_up"):
    block_sensitivities(toy_layer, {"moe": {}}, x, None, ["bf16"])
  with pytest.raises(ValueError, match=r"\[N, S, D\]"):
    block_sensitivities(toy_layer, params, x[0], None, ["bf16"])


def test_frequencies_and_workload_rows():
  counts = np.asarray([[3, 1, 0, 4], [2, 2, 2, 2]])  # 4 traced tokens, top-2: 8 assignments per layer.
  f = expert_frequencies(counts)
  np.testing.assert_allclose(f, counts / 8)
  rows = workload_rows(f, batch_tokens=100, top_k=2)
  traced_tokens = 4
  np.testing.assert_array_equal(rows, (100 * counts) // traced_tokens)  # MxMoE: int(B * count_e / N_traced).
  # Exact multiples stay exact despite floating point: 3/10 * 10 * 1 = 3.
  assert workload_rows(expert_frequencies([3, 7]), batch_tokens=10, top_k=1).tolist() == [3, 7]
  with pytest.raises(ValueError, match="sums to 0"):
    expert_frequencies([[0, 0]])
  with pytest.raises(ValueError, match="sum to 1"):
    workload_rows([0.5, 0.2], batch_tokens=10, top_k=1)
  with pytest.raises(ValueError, match="top_k"):
    workload_rows([0.5, 0.5], batch_tokens=10, top_k=0)
