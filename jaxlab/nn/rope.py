"""Rotary position embeddings (RoFormer), rotating halves of each head vector."""

import jax
import jax.numpy as jnp


def apply_rope(x_bthk: jax.Array, positions_bt: jax.Array, *, base: float = 10_000.0) -> jax.Array:
  """Rotates query or key vectors by their positions.

  Pairs dimension i with i + k/2 (the "rotate half" layout used by Llama and Qwen checkpoints).

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
