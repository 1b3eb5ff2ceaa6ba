"""Dtype-dependent tolerances and a comparison that says how far apart two arrays are.

Kernels compute in float32 and round their outputs to the input dtype, so two correct
implementations can differ by about one unit in the last place of that dtype.
"""

import jax.numpy as jnp
import numpy as np

# (rtol, atol) by output dtype: bfloat16 keeps 8 mantissa bits (2^-8 relative), float16 11.
TOLERANCES = {
    jnp.dtype(jnp.float32): (2e-5, 2e-5),
    jnp.dtype(jnp.bfloat16): (1.6e-2, 1.6e-2),
    jnp.dtype(jnp.float16): (2e-3, 2e-3),
}


def tolerance(dtype) -> tuple[float, float]:
  """(rtol, atol) for comparing outputs of `dtype` against a float32 reference."""
  dtype = jnp.dtype(dtype)
  if dtype not in TOLERANCES:
    raise ValueError(f"no tolerance for dtype {dtype}; known: {', '.join(map(str, TOLERANCES))}")
  return TOLERANCES[dtype]


def assert_close(actual, expected, dtype, what: str, *, atol_scale: float = 1.0) -> None:
  """Asserts `actual` ≈ `expected` within the tolerance of `dtype`; reports max/mean diff."""
  rtol, atol = tolerance(dtype)
  actual = np.asarray(actual, np.float32)
  expected = np.asarray(expected, np.float32)
  diff = np.abs(actual - expected)
  close = np.isclose(actual, expected, rtol=rtol, atol=atol * atol_scale)
  np.testing.assert_allclose(
      actual,
      expected,
      rtol=rtol,
      atol=atol * atol_scale,
      err_msg=f"{what}: max abs diff {diff.max():.3g}, mean abs diff {diff.mean():.3g}, {100 * close.mean():.1f}% close",
  )
