"""Tests for `jaxlab.quant.rtn` and `jaxlab.quant_formats.decode`: RTN quantization of one matrix and its
inverse against a NumPy restatement of the spec."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.quant import rtn
from jaxlab.quant_formats import decode
from jaxlab.quant_formats.scheme import SUPPORTED_SCHEMES, parse_scheme
from tests.quant import numpy_reference

QUANTIZED = [name for name in SUPPORTED_SCHEMES if parse_scheme(name).w_bits < 16]
K, N = 256, 12


def _weights(shape=(K, N), seed=0):
  """Columns with different offsets and spreads, so min-max scales differ per group and column."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=shape) * rng.uniform(0.05, 2.0, size=shape[-1]) + rng.uniform(-1, 1, size=shape[-1])
  return w.astype(np.float32)


@pytest.mark.parametrize("name", QUANTIZED)
def test_matches_numpy_spec_and_error_bound(name):
  scheme = parse_scheme(name)
  w = _weights(seed=len(name))
  qw = rtn.quantize_weight(jnp.asarray(w), scheme)
  groups = K // 128 if scheme.group_size == 128 else 1
  bits = scheme.w_bits

  # Storage: shapes and dtypes of the contract.
  expected_dtype = jnp.int8 if (bits == 8 and scheme.symmetric) else jnp.uint8
  assert qw.packed.dtype == expected_dtype and qw.packed.shape == (K * bits // 8, N)
  assert qw.scale.dtype == jnp.float16 and qw.scale.shape == (groups, N)
  if scheme.symmetric:
    assert qw.zero is None
  else:
    assert qw.zero.dtype == jnp.float16 and qw.zero.shape == (groups, N)
  assert (qw.in_features, qw.out_features, qw.scheme) == (K, N, scheme)

  # Bytes against the element-wise NumPy layout and quantizer.
  q_ref, scale_ref, zero_ref = numpy_reference.quantize(w, bits, scheme.group_size, scheme.symmetric)
  np.testing.assert_array_equal(np.asarray(qw.scale), scale_ref)
  if zero_ref is not None:
    np.testing.assert_array_equal(np.asarray(qw.zero), zero_ref)
  stored_ref = q_ref + (2 ** (bits - 1) if scheme.symmetric and bits < 8 else 0)
  if bits == 8:
    np.testing.assert_array_equal(np.asarray(qw.packed).astype(np.int64), stored_ref)
  else:
    np.testing.assert_array_equal(np.asarray(qw.packed), numpy_reference.pack_codes(stored_ref, bits))
  assert stored_ref.min() >= (-127 if bits == 8 and scheme.symmetric else 0)
  assert stored_ref.max() <= (127 if bits == 8 and scheme.symmetric else 2**bits - 1)

  # Dequantization: exactly q * s (+ z) with the stored values.
  deq = np.asarray(decode.dequantize_weight(qw))
  assert deq.dtype == np.float32
  np.testing.assert_allclose(deq, numpy_reference.dequantize(q_ref, scale_ref, zero_ref), rtol=1e-6, atol=1e-7)

  # Error bound: half a step, plus the float16 rounding of scale and zero (which can push the
  # group's extreme values just past the last code).
  rows = K // groups
  scale_kn = np.repeat(scale_ref.astype(np.float64), rows, axis=0)
  amax_kn = np.repeat(np.abs(w).reshape(groups, rows, N).max(axis=1), rows, axis=0)
  err = np.abs(w.astype(np.float64) - deq)
  assert np.all(err <= scale_kn / 2 + 2e-3 * amax_kn + 1e-7)


@pytest.mark.parametrize("name", ["w4a16_g128_asym", "w3a16_g-1_sym", "w8a8_g-1_sym", "w2a16_g128_sym"])
def test_float32_scales_give_a_tight_half_step_bound(name):
  w = _weights(seed=3)
  qw = rtn.quantize_weight(jnp.asarray(w), name, scale_dtype=jnp.float32)
  assert qw.scale.dtype == jnp.float32
  groups = qw.scale.shape[0]
  scale_kn = np.repeat(np.asarray(qw.scale, np.float64), K // groups, axis=0)
  err = np.abs(w - np.asarray(decode.dequantize_weight(qw), np.float64))
  assert np.all(err <= scale_kn / 2 * (1 + 1e-5) + 1e-7)
  # The half step is reached (nearly): the scale is not larger than it needs to be.
  assert err.max() > 0.3 * scale_kn.max()


@pytest.mark.parametrize("group_size", [128, -1])
@pytest.mark.parametrize("symmetric", [False, True])
def test_error_decreases_with_bits(group_size, symmetric):
  w = _weights(seed=4)
  suffix = f"g{group_size}_{'sym' if symmetric else 'asym'}"
  errors = []
  for bits in (2, 3, 4, 8):
    qw = rtn.quantize_weight(jnp.asarray(w), f"w{bits}a16_{suffix}")
    errors.append(float(np.abs(w - np.asarray(decode.dequantize_weight(qw))).max()))
  assert errors == sorted(errors, reverse=True) and len(set(errors)) == 4, errors


def test_group_128_beats_per_channel():
  w = _weights(seed=5)
  w[:128] *= 10.0  # One block much wider than the other: per-channel scales waste codes on it.
  err = {}
  for name in ("w4a16_g128_asym", "w4a16_g-1_asym"):
    deq = np.asarray(decode.dequantize_weight(rtn.quantize_weight(jnp.asarray(w), name)))
    err[name] = np.abs(w[128:] - deq[128:])
  assert err["w4a16_g128_asym"].max() < err["w4a16_g-1_asym"].max() / 4


@pytest.mark.parametrize(
    "name", ["w4a16_g128_asym", "w2a16_g-1_asym", "w3a16_g128_sym", "w8a16_g128_sym", "w8a8_g-1_sym"]
)
def test_constant_and_zero_groups_are_exact(name):
  """All-zero groups come back as zeros; asymmetric constant groups as their constant (the zero).

  Symmetric constants are only on the grid +-q_max * s, which float16 s need not hit exactly.
  Constants are float16-representable, so the stored zero is the constant itself.
  """
  scheme = parse_scheme(name)
  w = _weights(seed=6)
  w[:128, 0] = 0.75  # A constant group (only a group-128 scheme sees it as one).
  w[:, 1] = -3.0  # A constant column.
  w[:, 2] = 0.0  # An all-zero column.
  qw = rtn.quantize_weight(jnp.asarray(w), name)
  deq = np.asarray(decode.dequantize_weight(qw))
  assert np.all(np.isfinite(deq)) and np.all(np.isfinite(np.asarray(qw.scale)))
  np.testing.assert_array_equal(deq[:, 2], 0.0)
  if not scheme.symmetric:
    np.testing.assert_array_equal(deq[:, 1], w[:, 1])
    if scheme.group_size == 128:
      np.testing.assert_array_equal(deq[:128, 0], w[:128, 0])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_input_and_output_dtype(dtype):
  w32 = _weights(seed=7)
  w = jnp.asarray(w32, dtype)
  qw = rtn.quantize_weight(w, "w8a16_g128_asym")
  ref = numpy_reference.dequantize(*numpy_reference.quantize(np.asarray(w, np.float32), 8, 128, False))
  deq = decode.dequantize_weight(qw, dtype=dtype)
  assert deq.dtype == dtype
  np.testing.assert_allclose(np.asarray(decode.dequantize_weight(qw)), ref, rtol=1e-6, atol=1e-7)


def test_bf16_scheme_keeps_weights_as_given():
  w = jnp.asarray(_weights(seed=8), jnp.bfloat16)
  for name in ("bf16", "w16a16"):
    qw = rtn.quantize_weight(w, name)
    assert qw.packed is w and qw.scale is None and qw.zero is None
    assert qw.scheme.name == "bf16"
  np.testing.assert_array_equal(np.asarray(decode.dequantize_weight(qw)), np.asarray(w, np.float32))
  # bf16 needs no 128-row blocks.
  assert rtn.quantize_weight(jnp.zeros((5, 3)), "bf16").in_features == 5


def test_leading_axes_match_per_matrix_quantization():
  w = _weights(shape=(2, K, N), seed=9)
  # Jitted: a new shape would otherwise compile every op on its own.
  qw = jax.jit(rtn.quantize_weight, static_argnums=1)(jnp.asarray(w), "w3a16_g128_asym")
  assert qw.packed.shape == (2, 3 * K // 8, N) and qw.scale.shape == (2, 2, N) and qw.leading_shape == (2,)
  deq = np.asarray(jax.jit(decode.dequantize_weight)(qw))
  for e in range(2):
    q_ref, scale_ref, zero_ref = numpy_reference.quantize(w[e], 3, 128, False)
    np.testing.assert_array_equal(np.asarray(qw.packed[e]), numpy_reference.pack_codes(q_ref, 3))
    expected = numpy_reference.dequantize(q_ref, scale_ref, zero_ref)
    np.testing.assert_allclose(deq[e], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["w4a16_g128_asym", "w8a8_g128_sym", "w2a16_g-1_sym"])
def test_jit_matches_eager(name):
  w = jnp.asarray(_weights(seed=10))
  eager = rtn.quantize_weight(w, name)
  jitted = jax.jit(rtn.quantize_weight, static_argnums=1)(w, name)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  round_trip = jax.jit(lambda w_kn: decode.dequantize_weight(rtn.quantize_weight(w_kn, name)))(w)
  np.testing.assert_array_equal(np.asarray(round_trip), np.asarray(decode.dequantize_weight(eager)))


def test_errors():
  with pytest.raises(ValueError, match="K=200"):
    rtn.quantize_weight(jnp.zeros((200, 4)), "w4a16_g128_asym")
  with pytest.raises(ValueError, match="128.*K=200"):
    rtn.quantize_weight(jnp.zeros((200, 4)), "w8a16_g-1_asym")  # Per channel too: packing is by block.
  with pytest.raises(TypeError, match="float"):
    rtn.quantize_weight(jnp.zeros((128, 4), jnp.int32), "w4a16_g128_asym")
  with pytest.raises(ValueError, match="shape"):
    rtn.quantize_weight(jnp.zeros((128,)), "w4a16_g128_asym")
  with pytest.raises(ValueError, match="supported: bf16, w1a16"):
    rtn.quantize_weight(jnp.zeros((128, 4)), "w5a16_g128_asym")
  with pytest.raises(TypeError, match="scale_dtype"):
    rtn.quantize_weight(jnp.zeros((128, 4)), "w4a16_g128_asym", scale_dtype=jnp.int8)
  with pytest.raises(TypeError, match="QuantizedWeight"):
    decode.dequantize_weight(jnp.zeros((128, 4)))
