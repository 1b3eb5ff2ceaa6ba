"""RMSNorm in plain jnp: the XLA implementation and the ground truth for the kernels."""

import jax
import jax.numpy as jnp
from jax import lax

# Where the output is rounded to x's dtype:
#   "float32":      y = round(x * rstd * scale), the whole product in float32, rounded once.
#   "transformers": y = round(round(x * rstd) * round(scale)): the normalized x is rounded to x's
#                   dtype first and multiplied by the scale in x's dtype, as transformers'
#                   Llama-family RMSNorm does (so converted checkpoints give its logits).
# The two agree in float32 and differ in the last bit of some bfloat16 / float16 outputs.
ROUNDINGS = ("float32", "transformers")


def check_rounding(rounding: str) -> None:
  if rounding not in ROUNDINGS:
    raise ValueError(f"rms_norm rounding must be one of {ROUNDINGS}, got {rounding!r}")


def rms_norm_reference(x: jax.Array, scale: jax.Array, *, eps: float = 1e-6, rounding: str = "float32") -> jax.Array:
  """y = x * rsqrt(mean(x^2, last axis) + eps) * scale, the normalization in float32.

  Args:
    x: [..., D] input, any floating dtype.
    scale: [D] per-feature gain.
    eps: added to the mean square before the reciprocal square root.
    rounding: "float32" or "transformers" (see `ROUNDINGS`).

  Returns:
    [..., D] in x.dtype. Differentiable by autodiff in x and scale.
  """
  check_rounding(rounding)
  x_f32 = x.astype(jnp.float32)
  mean_square = jnp.mean(jnp.square(x_f32), axis=-1, keepdims=True)
  normalized = x_f32 * lax.rsqrt(mean_square + eps)
  if rounding == "transformers":
    return scale.astype(x.dtype) * normalized.astype(x.dtype)
  return (normalized * scale.astype(jnp.float32)).astype(x.dtype)
