"""grouped_matmul: the Pallas kernel (interpret mode) against the XLA reference, and both
against a plain per-row numpy product; gradients; every quantization scheme; bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.ops import GroupedMatmulConfig, TileShape, grouped_matmul
from jaxlab.quant import rtn
from jaxlab.quant_formats import SUPPORTED_SCHEMES, ExpertWeights, dequantize_experts

# Small tiles keep the interpreter fast and put several tiles, and ragged edges, in each group.
SMALL = GroupedMatmulConfig(default_tile=TileShape(16, 32, 32), weight_grad_tile=TileShape(16, 32, 32))


# The interpreted kernel is a large XLA program that runs for milliseconds: optimising it
# costs more than it saves.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _kernel(lhs, rhs, sizes, **kwargs):
  run = lambda l, r, s: grouped_matmul(l, r, s, implementation="pallas_triton", interpret=True, config=SMALL,
                                       **kwargs)
  if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((lhs, rhs, sizes))):
    return run(lhs, rhs, sizes)  # Inside a caller's jit/grad: it compiles the whole.
  return jax.jit(run).lower(lhs, rhs, sizes).compile(compiler_options=_FAST_COMPILE)(lhs, rhs, sizes)


def _xla(*args, **kwargs):
  return grouped_matmul(*args, implementation="xla", **kwargs)


def _numpy_grouped(lhs_mk, rhs_gkn, sizes, offset=0):
  """Row by row: out[m] = lhs[m] @ W[group(m) - offset], zero outside the local groups."""
  lhs_mk, rhs_gkn = np.asarray(lhs_mk, np.float64), np.asarray(rhs_gkn, np.float64)
  out = np.zeros((lhs_mk.shape[0], rhs_gkn.shape[-1]))
  row = 0
  for g, size in enumerate(np.asarray(sizes)):
    for m in range(row, row + int(size)):
      if offset <= g < offset + rhs_gkn.shape[0]:
        out[m] = lhs_mk[m] @ rhs_gkn[g - offset]
    row += int(size)
  return out


def _problem(seed, num_rows=50, k=96, n=40, num_groups=5, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  sizes = rng.multinomial(num_rows - 7, np.ones(num_groups) / num_groups)
  sizes[0] = 0  # An empty group,
  sizes[-1] = 1  # a single-row group,
  # and 7+ rows past the last group (a ragged tail that belongs to no group).
  lhs = jnp.asarray(rng.normal(size=(num_rows, k)), dtype)
  rhs = jnp.asarray(rng.normal(size=(num_groups, k, n)) / np.sqrt(k), dtype)
  return lhs, rhs, jnp.asarray(sizes, jnp.int32)


@pytest.mark.parametrize("seed, num_rows, k, n", [(0, 50, 96, 40), (1, 33, 32, 16), (2, 64, 200, 70)])
def test_float32_kernel_and_reference_match_numpy(seed, num_rows, k, n):
  lhs, rhs, sizes = _problem(seed, num_rows, k, n)
  expected = _numpy_grouped(lhs, rhs, sizes)
  np.testing.assert_allclose(_xla(lhs, rhs, sizes), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(_kernel(lhs, rhs, sizes), expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_kernel_matches_reference():
  lhs, rhs, sizes = _problem(3, dtype=jnp.bfloat16)
  got = _kernel(lhs, rhs, sizes)
  assert got.dtype == jnp.bfloat16
  # Same bf16 products, float32 accumulation in both; only the final rounding to bf16 differs.
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(_xla(lhs, rhs, sizes), np.float32),
                             rtol=2e-2, atol=2e-2)
  np.testing.assert_allclose(np.asarray(_kernel(lhs, rhs, sizes, preferred_element_type=jnp.float32)),
                             _numpy_grouped(lhs, rhs, sizes), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("offset, num_local", [(1, 3), (0, 2), (3, 2)])
def test_group_offset_computes_only_local_groups(offset, num_local):
  lhs, rhs, sizes = _problem(4)
  local = rhs[offset:offset + num_local]
  expected = _numpy_grouped(lhs, local, sizes, offset)
  np.testing.assert_allclose(_kernel(lhs, local, sizes, group_offset=offset), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(_xla(lhs, local, sizes, group_offset=offset), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("offset, num_local", [(0, 5), (1, 3)])
def test_gradients_match_reference_autodiff(offset, num_local):
  lhs, rhs, sizes = _problem(5)
  local = rhs[offset:offset + num_local]
  cotangent = jnp.asarray(np.random.default_rng(9).normal(size=(lhs.shape[0], rhs.shape[-1])), jnp.float32)

  def grads(matmul):
    loss = lambda l, r: jnp.sum(matmul(l, r, sizes, group_offset=offset) * cotangent)
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(lhs, local)

  for got, want in zip(grads(_kernel), grads(_xla)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gradient_of_an_empty_group_is_zero():
  lhs, rhs, sizes = _problem(6)
  d_rhs = jax.grad(lambda r: jnp.sum(_kernel(lhs, r, sizes) ** 2))(rhs)
  assert sizes[0] == 0 and not np.any(np.asarray(d_rhs[0]))
  assert np.all(np.any(np.asarray(d_rhs[1:]) != 0, axis=(1, 2)))


def test_bfloat16_gradients_match_reference():
  lhs, rhs, sizes = _problem(7, dtype=jnp.bfloat16)

  def grads(matmul):
    loss = lambda l, r: jnp.sum(matmul(l, r, sizes, preferred_element_type=jnp.float32) ** 2)
    return jax.grad(loss, argnums=(0, 1))(lhs, rhs)

  for got, want in zip(grads(_kernel), grads(_xla)):
    assert got.dtype == jnp.bfloat16
    scale = float(np.max(np.abs(np.asarray(want, np.float32))))
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=2e-2 * scale)


# ------------------------------------------------------------------------------- quantized


def _quantized_problem(seed, schemes, num_rows=48, k=256, n=40):
  rng = np.random.default_rng(seed)
  num_groups = len(schemes)
  sizes = rng.multinomial(num_rows - 5, np.ones(num_groups) / num_groups)
  sizes[min(1, num_groups - 1)] = 0
  lhs = jnp.asarray(rng.normal(size=(num_rows, k)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(num_groups, k, n)) / np.sqrt(k), jnp.float32)
  return lhs, rtn.quantize_experts(w, schemes), jnp.asarray(sizes, jnp.int32)


@pytest.mark.parametrize("scheme", SUPPORTED_SCHEMES)
def test_every_scheme_kernel_matches_reference(scheme):
  lhs, experts, sizes = _quantized_problem(10, [scheme] * 4)
  want = _xla(lhs, experts, sizes)
  got = _kernel(lhs, experts, sizes)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(want))))


_WEIGHT_ONLY_MIX = ["w4a16_g128_asym", "w4a16_g-1_sym", "w2a16_g128_sym", "w3a16_g-1_asym", "w8a16_g128_sym"]


@pytest.mark.parametrize("dtype, bitcast_unpack, weights_first", [
    (jnp.bfloat16, True, False), (jnp.bfloat16, True, True), (jnp.float16, True, True),
    (jnp.bfloat16, False, True), (jnp.float32, True, True)])
def test_weight_only_tile_options_match_reference(dtype, bitcast_unpack, weights_first):
  lhs, experts, sizes = _quantized_problem(14, _WEIGHT_ONLY_MIX, num_rows=40)
  lhs = lhs.astype(dtype)
  config = dataclasses.replace(SMALL, bitcast_unpack=bitcast_unpack, weights_first=weights_first)
  run = jax.jit(lambda l, e, s: grouped_matmul(l, e, s, implementation="pallas_triton", interpret=True, config=config,
                                                preferred_element_type=jnp.float32))
  got = run.lower(lhs, experts, sizes).compile(compiler_options=_FAST_COMPILE)(lhs, experts, sizes)
  want = _xla(lhs, experts, sizes, preferred_element_type=jnp.float32)
  # A wrong bias or a transposed tile is off by O(max |out|); rounding of 16-bit operands is not.
  tolerance = 1e-4 if dtype == jnp.float32 else 1e-2
  np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * float(np.max(np.abs(want))))


def test_weight_only_reference_is_the_dequantized_product():
  lhs, experts, sizes = _quantized_problem(11, ["w4a16_g128_asym", "w2a16_g128_asym", "w3a16_g-1_sym", "bf16"])
  dense = dequantize_experts(experts)
  np.testing.assert_allclose(_xla(lhs, experts, sizes), _numpy_grouped(lhs, dense, sizes), rtol=1e-5, atol=1e-5)


def test_weight_activation_reference_quantizes_rows_per_token():
  lhs, experts, sizes = _quantized_problem(12, ["w8a8_g-1_sym"] * 3)
  dense = np.asarray(dequantize_experts(experts), np.float64)
  x = np.asarray(lhs, np.float64)
  scale = np.max(np.abs(x), axis=1, keepdims=True) / 127
  x_fake = np.clip(np.round(x / scale), -127, 127) * scale
  np.testing.assert_allclose(_xla(lhs, experts, sizes), _numpy_grouped(x_fake, dense, sizes), rtol=1e-4, atol=1e-4)


def test_mixed_assignment_matches_reference_with_offset():
  schemes = ["bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w8a8_g-1_sym", "w4a4_g-1_sym", "w4a16_g128_asym"]
  lhs, experts, sizes = _quantized_problem(13, schemes, num_rows=64)
  lhs_bf16 = lhs.astype(jnp.bfloat16)
  # bf16 experts need bf16 lhs; rebuild with bf16 lhs and the bf16 experts cast to match.
  experts = rtn.quantize_experts(dequantize_experts(experts).astype(jnp.bfloat16), schemes)
  want = _xla(lhs_bf16, experts, sizes, preferred_element_type=jnp.float32)
  got = _kernel(lhs_bf16, experts, sizes, preferred_element_type=jnp.float32)
  np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * float(np.max(np.abs(want))))
  local = rtn.quantize_experts(dequantize_experts(experts)[2:5].astype(jnp.bfloat16), schemes[2:5])
  want = _xla(lhs_bf16, local, sizes, group_offset=2, preferred_element_type=jnp.float32)
  got = _kernel(lhs_bf16, local, sizes, group_offset=2, preferred_element_type=jnp.float32)
  np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * float(np.max(np.abs(want))))
  assert not np.any(np.asarray(got)[: int(sizes[:2].sum())])


# ------------------------------------------------------------------------------- bad input


def test_group_sizes_summing_past_rows_is_rejected():
  lhs, rhs, _ = _problem(0)
  with pytest.raises(ValueError, match="sum to 51 > M=50"):
    _xla(lhs, rhs, jnp.asarray([10, 10, 10, 10, 11], jnp.int32))


def test_negative_group_size_is_rejected():
  lhs, rhs, _ = _problem(0)
  with pytest.raises(ValueError, match=">= 0"):
    _xla(lhs, rhs, jnp.asarray([10, -1, 10, 10, 11], jnp.int32))


def test_rows_past_the_groups_are_zero_and_groups_are_cut_under_jit():
  lhs, rhs, _ = _problem(0)
  sizes = jnp.asarray([10, 10, 10, 10, 30], jnp.int32)  # Sums to 70 > 50: cut at row 50 under jit.
  for matmul in (_xla, _kernel):
    got = jax.jit(lambda l, r, s, matmul=matmul: matmul(l, r, s))(lhs, rhs, sizes)
    np.testing.assert_allclose(got, _numpy_grouped(lhs, rhs, [10, 10, 10, 10, 10]), rtol=1e-5, atol=1e-5)


def test_mismatched_dtypes_are_rejected():
  lhs, rhs, sizes = _problem(0)
  with pytest.raises(TypeError, match="one dtype"):
    grouped_matmul(lhs.astype(jnp.bfloat16), rhs, sizes)


def test_mismatched_contraction_is_rejected():
  lhs, rhs, sizes = _problem(0)
  with pytest.raises(ValueError, match="K=96 columns but rhs has K=95"):
    grouped_matmul(lhs, rhs[:, :95], sizes)


def test_group_offset_past_the_groups_is_rejected():
  lhs, rhs, sizes = _problem(0)
  with pytest.raises(ValueError, match="group_offset=3 with 3 local experts exceeds 5 groups"):
    grouped_matmul(lhs, rhs[:3], sizes, group_offset=3)


def test_unsupported_scheme_lists_the_supported_ones():
  with pytest.raises(ValueError, match="supported: bf16, w1a16_g128_asym"):
    rtn.quantize_experts(jnp.zeros((2, 128, 8)), "w5a16_g128_asym")


def test_contraction_not_divisible_by_the_group_size_is_rejected():
  with pytest.raises(ValueError, match="128"):
    rtn.quantize_experts(jnp.zeros((2, 100, 8)), "w4a16_g128_asym")


def test_unquantized_experts_must_match_lhs_dtype():
  experts = rtn.quantize_experts(jnp.zeros((2, 128, 8), jnp.float32), ["bf16", "w4a16_g128_asym"])
  assert isinstance(experts, ExpertWeights)
  with pytest.raises(TypeError, match="unquantized experts are float32 but lhs is bfloat16"):
    grouped_matmul(jnp.zeros((4, 128), jnp.bfloat16), experts, jnp.asarray([2, 2], jnp.int32))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_codes_as_floats_is_exact(dtype, bits):
  from kernels_pallas.grouped_matmul import tiles

  codes = jnp.arange(1 << bits, dtype=jnp.int32)
  bias = tiles.exponent_bias(dtype, bits, bitcast=True)
  floats = tiles.codes_as_floats(codes, dtype, bits, bitcast=True)
  assert floats.dtype == dtype
  np.testing.assert_array_equal(np.asarray(floats, np.float64), np.arange(1 << bits) + bias)
  # The bitcast applies wherever the dtype's mantissa holds the codes.
  mantissa_bits = {jnp.bfloat16: 7, jnp.float16: 10, jnp.float32: -1}[dtype]
  assert (bias > 0) == (bits <= mantissa_bits)
  signed = jnp.arange(-128, 128, dtype=jnp.int32)
  np.testing.assert_array_equal(np.asarray(tiles.codes_as_floats(signed, dtype, 8, True, signed=True), np.float64),
                                np.arange(-128, 128))
