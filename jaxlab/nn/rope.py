"""Rotary position embeddings (RoFormer), rotating halves of each head vector.

Both forms pair dimension i with i + k/2 (the "rotate half" layout of Llama and Qwen checkpoints).
`rope_cos_sin` + `apply_rotary` compute as transformers does: inverse frequencies rounded once
from float64, cos/sin in float32 cast to the compute dtype, rotation in that dtype; the
transformers-exact models use them. `apply_rope` rotates in float32 and returns x's dtype.
"""

import jax
import jax.numpy as jnp
import numpy as np


def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
  """[hd/2] float32 inverse frequencies 1 / theta^(2i/hd), rounded once from float64."""
  return (1.0 / (float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))).astype(np.float32)


def rope_cos_sin(positions_bt: jax.Array, head_dim: int, theta: float, dtype) -> tuple[jax.Array, jax.Array]:
  """cos, sin of shape [B, T, hd] (both halves repeat the hd/2 angles), computed in float32, cast to dtype.

  Positions may be fractional (V2PE); they are used as float32 numbers, never rounded.
  """
  freqs_btf = positions_bt.astype(jnp.float32)[..., None] * jnp.asarray(rope_inv_freq(head_dim, theta))
  angles_btk = jnp.concatenate([freqs_btf, freqs_btf], axis=-1)
  return jnp.cos(angles_btk).astype(dtype), jnp.sin(angles_btk).astype(dtype)


def apply_rotary(x_bthk: jax.Array, cos_btk: jax.Array, sin_btk: jax.Array) -> jax.Array:
  """x * cos + rotate_half(x) * sin, with rotate_half(x) = concat(-x2, x1), in x's dtype."""
  half = x_bthk.shape[-1] // 2
  rotated = jnp.concatenate([-x_bthk[..., half:], x_bthk[..., :half]], axis=-1)
  return x_bthk * cos_btk[:, :, None, :] + rotated * sin_btk[:, :, None, :]


def apply_rope(x_bthk: jax.Array, positions_bt: jax.Array, *, base: float = 10_000.0) -> jax.Array:
  """Rotates query or key vectors by their positions, in float32.

  Args:
    x_bthk: [batch, time, heads, head_dim] with an even head_dim.
    positions_bt: [batch, time] integer (or fractional) positions.
    base: the frequency base.

  Returns:
    The rotated vectors, same shape and dtype as `x_bthk`.
  """
  head_dim = x_bthk.shape[-1]
  if head_dim % 2:
    raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
  half = head_dim // 2
  inv_freq_f = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle_btf = positions_bt.astype(jnp.float32)[..., None] * inv_freq_f
  sin_bt1f = jnp.sin(angle_btf)[:, :, None, :]
  cos_bt1f = jnp.cos(angle_btf)[:, :, None, :]
  x = x_bthk.astype(jnp.float32)
  x1, x2 = x[..., :half], x[..., half:]
  rotated = jnp.concatenate([x1 * cos_bt1f - x2 * sin_bt1f, x2 * cos_bt1f + x1 * sin_bt1f], axis=-1)
  return rotated.astype(x_bthk.dtype)
