"""Two-dimensional rotary position embeddings for tokens laid out on an image grid.

Each head vector is split in two halves. The first half is rotated by the token's row, the
second by its column, each with the 1-D "rotate half" RoPE of `jaxlab.nn.rope` (frequencies
base^(-j / (head_dim / 4)), j < head_dim / 4). A query-key product then depends only on the
row offset and the column offset between the two tokens, so a model using it has no notion of
absolute position and runs on grids of any size.

`ntk_scaled_base` is NTK-aware scaling for sampling past the training grid: it multiplies the
base, slowing every rotation so that far positions fall in angle ranges seen in training.
"""

import numbers

import jax
import jax.numpy as jnp

from jaxlab.nn.rope import apply_rope


def grid_positions(h_tokens: int, w_tokens: int) -> tuple[jax.Array, jax.Array]:
  """Row and column of every token of an h x w grid flattened row-major (token t = r * w + c).

  Returns:
    (rows_t, cols_t): float32 arrays of length h_tokens * w_tokens.
  """
  for name, value in (("h_tokens", h_tokens), ("w_tokens", w_tokens)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
  rows_hw, cols_hw = jnp.meshgrid(
      jnp.arange(h_tokens, dtype=jnp.float32), jnp.arange(w_tokens, dtype=jnp.float32), indexing="ij")
  return rows_hw.reshape(-1), cols_hw.reshape(-1)


def apply_rope_2d(x_bthk: jax.Array, rows_t: jax.Array, cols_t: jax.Array, *, base: float) -> jax.Array:
  """Rotates query or key vectors by their 2-D grid positions.

  Args:
    x_bthk: [batch, tokens, heads, head_dim], head_dim divisible by 4.
    rows_t: [tokens] row of each token; may be fractional (e.g. rescaled positions).
    cols_t: [tokens] column of each token; may be fractional.
    base: the frequency base (theta); larger bases rotate more slowly.

  Returns:
    The rotated vectors, same shape and dtype as `x_bthk` (rotation runs in float32).
  """
  if x_bthk.ndim != 4:
    raise ValueError(f"x_bthk must be [batch, tokens, heads, head_dim], got shape {x_bthk.shape}.")
  b, t, _, head_dim = x_bthk.shape
  if head_dim % 4:
    raise ValueError(f"2-D rotary embeddings need head_dim divisible by 4, got {head_dim}.")
  for name, positions in (("rows_t", rows_t), ("cols_t", cols_t)):
    if positions.shape != (t,):
      raise ValueError(f"{name} must have shape ({t},) (one position per token), got {positions.shape}.")
  if not base > 0:
    raise ValueError(f"base must be > 0, got {base!r}.")
  half = head_dim // 2
  rows_bt = jnp.broadcast_to(rows_t, (b, t))
  cols_bt = jnp.broadcast_to(cols_t, (b, t))
  by_row = apply_rope(x_bthk[..., :half], rows_bt, base=base)
  by_col = apply_rope(x_bthk[..., half:], cols_bt, base=base)
  return jnp.concatenate([by_row, by_col], axis=-1)


def ntk_scaled_base(base: float, ntk_factor: float) -> float:
  """The RoPE base times `ntk_factor` (> 0; 1 leaves it unchanged), as a Python float."""
  if isinstance(ntk_factor, bool) or not isinstance(ntk_factor, numbers.Real) or not ntk_factor > 0:
    raise ValueError(f"ntk_factor must be a number > 0, got {ntk_factor!r}.")
  return float(base) * float(ntk_factor)
