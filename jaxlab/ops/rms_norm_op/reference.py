"""RMSNorm in plain jnp: the XLA implementation and the ground truth for the kernels."""

import jax
import jax.numpy as jnp
from jax import lax


def rms_norm_reference(x: jax.Array, scale: jax.Array, *, eps: float = 1e-6) -> jax.Array:
  """y = x * rsqrt(mean(x^2, last axis) + eps) * scale, computed in float32.

  Args:
    x: [..., D] input, any floating dtype.
    scale: [D] per-feature gain.
    eps: added to the mean square before the reciprocal square root.

  Returns:
    [..., D] in x.dtype. Differentiable by autodiff in x and scale.
  """
  x_f32 = x.astype(jnp.float32)
  mean_square = jnp.mean(jnp.square(x_f32), axis=-1, keepdims=True)
  y = x_f32 * lax.rsqrt(mean_square + eps) * scale.astype(jnp.float32)
  return y.astype(x.dtype)
