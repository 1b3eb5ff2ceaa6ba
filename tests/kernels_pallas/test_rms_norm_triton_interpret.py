"""The RMSNorm kernels' transformers rounding, run in the Pallas interpreter.

Forward outputs in bfloat16 / float16 must follow transformers' rounding (normalize in float32, cast
to x's dtype, then multiply by the weight in that dtype) bit for bit, given the kernel's rstd; gradients must match the jnp reference's
autodiff within the dtype's tolerance. Blocks are small so the row tail, a partial last block and
a backward split over several programs are all exercised.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.ops.rms_norm_op.reference import rms_norm_reference
from jaxlab.testing import assert_close
from kernels_pallas.rms_norm import triton as rms_norm_triton
from kernels_pallas.rms_norm.config import RmsNormBlockConfig

CONFIG = RmsNormBlockConfig(block_rows=4, num_warps=4, max_backward_programs=2)


def _transformers_formula(x, scale, eps):
  x32 = x.astype(jnp.float32)
  variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
  return scale.astype(x.dtype) * (x32 * jax.lax.rsqrt(variance + eps)).astype(x.dtype)


def _inputs(num_rows, row_length, dtype, scale_dtype, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((num_rows, row_length)) * np.exp(rng.standard_normal((num_rows, 1))) + 0.3
  scale = 1.0 + 0.5 * rng.standard_normal(row_length)
  dy = rng.standard_normal((num_rows, row_length))
  return jnp.asarray(x, dtype), jnp.asarray(scale, scale_dtype), jnp.asarray(dy, dtype)


def _kernel(rounding, eps):
  return lambda x, scale: rms_norm_triton.rms_norm_rows(x, scale, eps, rounding, CONFIG, True)


@pytest.mark.parametrize("dtype, scale_dtype", [(jnp.bfloat16, jnp.float32), (jnp.bfloat16, jnp.bfloat16),
                                                (jnp.float16, jnp.float32)])
def test_forward_rounds_as_the_transformers_formula_bit_for_bit(dtype, scale_dtype):
  # The kernel sums squares over a padded tile, in another order than XLA's mean, so its rstd
  # may differ from the formula's in the last bit (by the machine's vector width). The
  # rounding sequence is checked bit for bit from the kernel's own rstd, and rstd to 2 ulp.
  x, scale, _ = _inputs(11, 100, dtype, scale_dtype, seed=0)
  y, rstd = jax.jit(lambda a, b: rms_norm_triton._forward(a, b, 1e-6, "transformers", CONFIG, True))(x, scale)
  assert y.dtype == dtype
  x32 = np.asarray(x, np.float32)
  want_rstd = 1.0 / np.sqrt(np.mean(np.square(x32.astype(np.float64)), axis=-1) + 1e-6)
  np.testing.assert_allclose(rstd, want_rstd, rtol=2 * np.finfo(np.float32).eps)
  x_hat = jnp.asarray(x32 * np.asarray(rstd)[:, None], jnp.float32)
  want = scale.astype(dtype) * x_hat.astype(dtype)
  np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(want, np.float32))
  assert_close(y, jax.jit(lambda a, b: _transformers_formula(a, b, 1e-6))(x, scale), dtype, "y")


def test_float32_forward_is_the_default_rounding_bit_for_bit():
  # In float32 the two roundings are one computation. The formula's mean square sums in another
  # order than the kernel's padded tile, so it agrees only to the last bit of rstd.
  x, scale, _ = _inputs(11, 100, jnp.float32, jnp.float32, seed=0)
  y = jax.jit(_kernel("transformers", 1e-6))(x, scale)
  np.testing.assert_array_equal(y, jax.jit(_kernel("float32", 1e-6))(x, scale))
  assert_close(y, jax.jit(lambda a, b: _transformers_formula(a, b, 1e-6))(x, scale), jnp.float32, "y")


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_gradients_match_reference_autodiff(dtype):
  x, scale, dy = _inputs(11, 100, dtype, jnp.float32, seed=1)

  def value_and_vjp(fn):
    def run(x, scale, dy):
      y, vjp = jax.vjp(fn, x, scale)
      return (y, *vjp(dy))

    return jax.jit(run)(x, scale, dy)

  y, dx, dscale = value_and_vjp(_kernel("transformers", 0.1))
  y_ref, dx_ref, dscale_ref = value_and_vjp(lambda a, b: rms_norm_reference(a, b, eps=0.1, rounding="transformers"))
  assert (dx.dtype, dscale.dtype) == (dtype, jnp.float32)
  assert_close(y, y_ref, dtype, "y")
  assert_close(dx, dx_ref, dtype, "dx")
  assert_close(dscale, dscale_ref, dtype, "dscale", atol_scale=np.sqrt(11))


def test_transformers_rounding_is_not_the_default_in_bfloat16():
  x, scale, _ = _inputs(11, 100, jnp.bfloat16, jnp.float32, seed=2)
  by_transformers = np.asarray(jax.jit(_kernel("transformers", 1e-6))(x, scale), np.float32)
  by_default = np.asarray(jax.jit(_kernel("float32", 1e-6))(x, scale), np.float32)
  assert np.any(by_transformers != by_default)
