"""Tests for `jaxlab.ops.rms_norm`: every implementation against the jnp reference.

The same cases run for `xla` and for `pallas_triton` in the Pallas interpreter (small
shapes: interpretation is slow). The reference itself is checked against float64 NumPy.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import ops
from kernels_pallas.rms_norm.config import RmsNormBlockConfig
from jaxlab.ops.rms_norm_op.reference import rms_norm_reference
from jaxlab.testing import assert_close

# (implementation, interpret): every implementation that can run on a CPU test machine.
IMPLEMENTATIONS = [
    pytest.param("xla", False, id="xla"),
    pytest.param("pallas_triton", True, id="pallas_triton-interpret"),
]

# (leading shape, row length, dtype, eps). Row lengths include non-powers of two, and
# eps is large in some cases so that dropping it would fail the comparison.
CASES = [
    pytest.param((4,), 100, jnp.float32, 0.5, id="4x100-f32-eps0.5"),
    pytest.param((2, 3), 257, jnp.float32, 1e-6, id="2x3x257-f32"),
    pytest.param((), 64, jnp.float32, 1e-6, id="64-f32-single-row"),
    pytest.param((3, 5), 100, jnp.bfloat16, 0.1, id="3x5x100-bf16-eps0.1"),
    pytest.param((9,), 257, jnp.bfloat16, 1e-6, id="9x257-bf16"),
]

def _inputs(leading, row_length, dtype, seed=0):
  """x with rows of very different scales, scale away from 1, and a cotangent.

  Drawn with NumPy: each eager jax.random op would cost a compile on CPU.
  """
  rng = np.random.default_rng(seed)
  shape = (*leading, row_length)
  row_scale = np.exp(rng.standard_normal((*leading, 1)))
  x = rng.standard_normal(shape) * row_scale + 0.3
  scale = 1.0 + 0.5 * rng.standard_normal(row_length)
  dy = rng.standard_normal(shape)
  return tuple(jnp.asarray(np.asarray(a, dtype=dtype)) for a in (x, scale, dy))


def _value_and_vjp(fn, x, scale, dy):
  """(y, dx, dscale) for cotangent dy, jitted: one compile is cheaper than many eager ops."""

  def run(x, scale, dy):
    y, vjp = jax.vjp(fn, x, scale)
    return (y, *vjp(dy))

  return jax.jit(run)(x, scale, dy)


@pytest.mark.parametrize("leading, row_length, dtype, eps", CASES)
@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_values_and_gradients_match_reference(implementation, interpret, leading, row_length, dtype, eps):
  x, scale, dy = _inputs(leading, row_length, dtype)
  fn = lambda a, b: ops.rms_norm(a, b, eps=eps, implementation=implementation, interpret=interpret)
  y, dx, dscale = _value_and_vjp(fn, x, scale, dy)
  y_ref, dx_ref, dscale_ref = _value_and_vjp(lambda a, b: rms_norm_reference(a, b, eps=eps), x, scale, dy)

  assert y.dtype == dx.dtype == x.dtype and dscale.dtype == scale.dtype
  assert y.shape == dx.shape == x.shape and dscale.shape == scale.shape
  assert_close(y, y_ref, dtype, "y")
  assert_close(dx, dx_ref, dtype, "dx")
  # dscale sums over every row; in bfloat16 it is one rounded sum, so scale atol by sqrt(rows).
  num_rows = int(np.prod(leading))
  assert_close(dscale, dscale_ref, dtype, "dscale", atol_scale=np.sqrt(num_rows))


def _transformers_formula(x, scale, eps):
  """transformers' Llama-family RMSNorm: normalize in float32, cast to x's dtype, then times the weight."""
  x32 = x.astype(jnp.float32)
  variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
  return scale.astype(x.dtype) * (x32 * jax.lax.rsqrt(variance + eps)).astype(x.dtype)


# (x dtype, scale dtype): a float32 gain as the models store it, and a gain already in x's dtype.
ROUNDING_DTYPES = [
    pytest.param(jnp.bfloat16, jnp.float32, id="bf16-f32scale"),
    pytest.param(jnp.bfloat16, jnp.bfloat16, id="bf16-bf16scale"),
    pytest.param(jnp.float32, jnp.float32, id="f32"),
]


@pytest.mark.parametrize("dtype, scale_dtype", ROUNDING_DTYPES)
@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_transformers_rounding_equals_the_transformers_formula_bit_for_bit(
    implementation, interpret, dtype, scale_dtype
):
  x, _, _ = _inputs((3, 7), 257, dtype, seed=9)
  _, scale, _ = _inputs((3, 7), 257, scale_dtype, seed=10)
  fn = lambda a, b: ops.rms_norm(a, b, eps=1e-6, rounding="transformers", implementation=implementation,
                                 interpret=interpret)
  y = jax.jit(fn)(x, scale)
  want = jax.jit(lambda a, b: _transformers_formula(a, b, 1e-6))(x, scale)
  assert y.dtype == want.dtype == dtype
  if implementation != "xla" and dtype == jnp.float32:
    # The kernel sums the mean square in another order; float32 keeps that last-bit difference.
    assert_close(y, want, dtype, "y")
  else:
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(want, np.float32))


@pytest.mark.parametrize("leading, row_length, dtype, eps", [CASES[0], CASES[3], CASES[4]])
@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_transformers_rounding_gradients_match_reference_autodiff(implementation, interpret, leading, row_length,
                                                                   dtype, eps):
  x, scale, dy = _inputs(leading, row_length, dtype, seed=11)
  fn = lambda a, b: ops.rms_norm(a, b, eps=eps, rounding="transformers", implementation=implementation,
                                 interpret=interpret)
  y, dx, dscale = _value_and_vjp(fn, x, scale, dy)
  reference = lambda a, b: rms_norm_reference(a, b, eps=eps, rounding="transformers")
  y_ref, dx_ref, dscale_ref = _value_and_vjp(reference, x, scale, dy)
  assert (y.dtype, dx.dtype, dscale.dtype) == (dtype, dtype, scale.dtype)
  assert_close(y, y_ref, dtype, "y")
  assert_close(dx, dx_ref, dtype, "dx")
  num_rows = int(np.prod(leading))
  assert_close(dscale, dscale_ref, dtype, "dscale", atol_scale=np.sqrt(num_rows))


@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_the_two_roundings_differ_in_bfloat16_and_agree_in_float32(implementation, interpret):
  outputs = {}
  for dtype in (jnp.bfloat16, jnp.float32):
    x, scale, _ = _inputs((4,), 100, dtype, seed=12)
    for rounding in ("float32", "transformers"):
      fn = lambda a, b: ops.rms_norm(a, b, rounding=rounding, implementation=implementation, interpret=interpret)
      outputs[dtype, rounding] = np.asarray(jax.jit(fn)(x, scale), np.float32)
  assert np.any(outputs[jnp.bfloat16, "float32"] != outputs[jnp.bfloat16, "transformers"])
  np.testing.assert_array_equal(outputs[jnp.float32, "float32"], outputs[jnp.float32, "transformers"])


def test_unknown_rounding_is_value_error():
  with pytest.raises(ValueError, match="rounding"):
    ops.rms_norm(jnp.ones((2, 4)), jnp.ones(4), rounding="bfloat16")
  with pytest.raises(ValueError, match="rounding"):
    ops.resolve_rms_norm(jnp.ones((2, 4)), jnp.ones(4), rounding="hf")
  assert ops.resolve_rms_norm(jnp.ones((2, 4)), jnp.ones(4), rounding="transformers") == "xla"


@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_under_jit_grad_and_vmap(implementation, interpret):
  # vmap over a batch of (x, scale) pairs, each with several rows; grad of a nonlinear loss.
  x, _, _ = _inputs((3, 4), 100, jnp.float32, seed=1)
  scale = jnp.asarray(1.0 + 0.5 * np.random.default_rng(2).standard_normal((3, 100)), jnp.float32)

  def loss(norm):
    return lambda a, b: jnp.sum(jnp.sin(jax.vmap(norm)(a, b)))

  fn = lambda a, b: ops.rms_norm(a, b, eps=0.1, implementation=implementation, interpret=interpret)
  got = jax.jit(jax.value_and_grad(loss(fn), argnums=(0, 1)))(x, scale)
  want = jax.jit(jax.value_and_grad(loss(lambda a, b: rms_norm_reference(a, b, eps=0.1)), argnums=(0, 1)))(x, scale)
  for g, w, what in zip(jax.tree.leaves(got), jax.tree.leaves(want), ("loss", "dx", "dscale")):
    assert_close(g, w, jnp.float32, what)


@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_bfloat16_x_with_float32_scale(implementation, interpret):
  x, _, dy = _inputs((6,), 100, jnp.bfloat16, seed=6)
  _, scale, _ = _inputs((6,), 100, jnp.float32, seed=7)
  fn = lambda a, b: ops.rms_norm(a, b, eps=0.1, implementation=implementation, interpret=interpret)
  y, dx, dscale = _value_and_vjp(fn, x, scale, dy)
  y_ref, dx_ref, dscale_ref = _value_and_vjp(lambda a, b: rms_norm_reference(a, b, eps=0.1), x, scale, dy)
  assert (y.dtype, dx.dtype, dscale.dtype) == (jnp.bfloat16, jnp.bfloat16, jnp.float32)
  assert_close(y, y_ref, jnp.bfloat16, "y")
  assert_close(dx, dx_ref, jnp.bfloat16, "dx")
  assert_close(dscale, dscale_ref, jnp.float32, "dscale")


def test_pallas_triton_with_explicit_block_config_and_row_tail():
  # 11 rows in blocks of 4 (a partial last block), backward split over 2 programs.
  x, scale, dy = _inputs((11,), 100, jnp.float32, seed=3)
  config = RmsNormBlockConfig(block_rows=4, num_warps=4, max_backward_programs=2)
  fn = lambda a, b: ops.rms_norm(a, b, eps=0.1, implementation="pallas_triton", interpret=True, block_config=config)
  got = _value_and_vjp(fn, x, scale, dy)
  want = _value_and_vjp(lambda a, b: rms_norm_reference(a, b, eps=0.1), x, scale, dy)
  for g, w, what in zip(got, want, ("y", "dx", "dscale")):
    assert_close(g, w, jnp.float32, what)


def test_reference_matches_float64_numpy_values_and_gradients():
  x, scale, dy = _inputs((5,), 37, jnp.float32, seed=4)
  eps = 0.25
  x64, s64, dy64 = (np.asarray(a, np.float64) for a in (x, scale, dy))
  rstd = 1.0 / np.sqrt(np.mean(x64**2, axis=-1, keepdims=True) + eps)
  x_hat = x64 * rstd
  g = dy64 * s64
  y_np = x_hat * s64
  dx_np = rstd * (g - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True))
  dscale_np = np.sum(dy64 * x_hat, axis=0)

  y, dx, dscale = _value_and_vjp(lambda a, b: rms_norm_reference(a, b, eps=eps), x, scale, dy)
  np.testing.assert_allclose(y, y_np, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, dx_np, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dscale, dscale_np, rtol=1e-5, atol=1e-5)


def test_default_on_cpu_is_xla_and_works_under_jit_grad(caplog):
  x, scale, _ = _inputs((2, 3), 48, jnp.bfloat16, seed=5)
  assert ops.resolve_rms_norm(x, scale) == "xla"
  loss = lambda a, b: jnp.sum(ops.rms_norm(a, b, eps=1e-5).astype(jnp.float32) ** 2)
  with caplog.at_level(logging.INFO, logger="jaxlab.ops"):
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, scale)
  assert any("rms_norm: running xla" in r.getMessage() for r in caplog.records)
  reference_loss = lambda a, b: jnp.sum(rms_norm_reference(a, b, eps=1e-5).astype(jnp.float32) ** 2)
  want = jax.jit(jax.grad(reference_loss, argnums=(0, 1)))(x, scale)
  for g, w in zip(grads, want):
    assert_close(g, w, jnp.bfloat16, "grad")


def test_pallas_triton_without_interpret_on_cpu_says_why():
  x, scale, _ = _inputs((2,), 64, jnp.float32)
  with pytest.raises(ops.NoImplementationError, match=r"pallas_triton.*needs a GPU.*interpret=True"):
    ops.rms_norm(x, scale, implementation="pallas_triton")
  assert ops.resolve_rms_norm(x, scale, implementation=("pallas_triton", "xla")) == "xla"
  assert ops.resolve_rms_norm(x, scale, implementation=("pallas_triton", "xla"), interpret=True) == "pallas_triton"


def test_pallas_triton_declines_rows_too_long_for_one_tile():
  x = jax.ShapeDtypeStruct((2, 70_000), jnp.float32)
  scale = jax.ShapeDtypeStruct((70_000,), jnp.float32)
  assert ops.resolve_rms_norm(x, scale, implementation=("pallas_triton", "xla"), interpret=True) == "xla"
  with pytest.raises(ops.NoImplementationError, match="70000"):
    ops.resolve_rms_norm(x, scale, implementation="pallas_triton", interpret=True)


@pytest.mark.parametrize(
    "x_shape, scale_shape", [((4, 8), (7,)), ((4, 8), (1, 8)), ((), (1,))], ids=["wrong-length", "2d-scale", "scalar-x"]
)
def test_bad_shapes_are_value_errors(x_shape, scale_shape):
  with pytest.raises(ValueError, match="rms_norm"):
    ops.rms_norm(jnp.ones(x_shape), jnp.ones(scale_shape))


def test_unknown_implementation_is_value_error():
  with pytest.raises(ValueError, match="pallas_triton"):
    ops.rms_norm(jnp.ones((2, 4)), jnp.ones(4), implementation="triton")


def test_package_exports_the_function_even_after_importing_the_subpackage():
  import kernels_pallas.rms_norm.config  # noqa: F401  Loading the subpackage must not shadow the function.

  from jaxlab.ops import rms_norm

  assert callable(rms_norm) and rms_norm is ops.rms_norm


def test_inside_a_linen_module_under_jit_and_grad():
  import flax.linen as nn

  class Norm(nn.Module):
    @nn.compact
    def __call__(self, x_btd):
      scale_d = self.param("scale", nn.initializers.ones, (x_btd.shape[-1],), jnp.float32)
      return ops.rms_norm(x_btd, scale_d, eps=1e-5)

  x_btd, _, _ = _inputs((2, 3), 40, jnp.bfloat16, seed=8)
  module = Norm()
  params = module.init(jax.random.key(0), x_btd)
  loss = lambda p, x: jnp.mean(module.apply(p, x).astype(jnp.float32) ** 2)
  grads = jax.jit(jax.grad(loss))(params, x_btd)
  scale_d = params["params"]["scale"]
  want = jax.grad(lambda s: jnp.mean(rms_norm_reference(x_btd, s, eps=1e-5).astype(jnp.float32) ** 2))(scale_d)
  assert_close(grads["params"]["scale"], want, jnp.float32, "dscale")
