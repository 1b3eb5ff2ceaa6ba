"""Dropless dispatch by sorting: every (token, slot) pair becomes one row, rows grouped by expert.

With T tokens and k experts per token there are R = T * k rows. Sorting the rows by expert id
gives contiguous groups for `jaxlab.ops.grouped_matmul`; no token is ever dropped and no
capacity factor is needed. `combine` undoes the sort and sums each token's k outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Dispatch(NamedTuple):
  """Where each sorted row comes from.

  Attributes:
    order_r: [R] int32; sorted row r is the flattened (token, slot) pair order_r[r], i.e. token
      order_r[r] // k, slot order_r[r] % k. Stable: rows of one expert keep token order.
    group_sizes_e: [E] int32 rows per expert (sums to R).
    token_of_row_r: [R] int32 token of each sorted row.
  """

  order_r: jax.Array
  group_sizes_e: jax.Array
  token_of_row_r: jax.Array


def sort_by_expert(experts_tk: jax.Array, num_experts: int) -> Dispatch:
  """Sorts the T * k (token, slot) pairs by expert id (stable).

  Args:
    experts_tk: [T, k] integer expert ids in [0, num_experts).
    num_experts: E.
  """
  if experts_tk.ndim != 2:
    raise ValueError(f"experts_tk must have shape [T, k], got shape {experts_tk.shape}")
  if not jnp.issubdtype(experts_tk.dtype, jnp.integer):
    raise TypeError(f"experts_tk must be an integer array, got {experts_tk.dtype}")
  if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
    raise ValueError(f"num_experts must be a positive int, got {num_experts!r}")
  top_k = experts_tk.shape[1]
  experts_r = experts_tk.reshape(-1).astype(jnp.int32)
  order_r = jnp.argsort(experts_r, stable=True).astype(jnp.int32)
  group_sizes_e = jnp.bincount(experts_r, length=num_experts).astype(jnp.int32)
  return Dispatch(order_r, group_sizes_e, order_r // top_k)


def permute(x_td: jax.Array, dispatch: Dispatch) -> jax.Array:
  """[T, D] tokens -> [R, D] rows sorted by expert (each token repeated once per slot)."""
  if x_td.ndim != 2:
    raise ValueError(f"x_td must have shape [T, D], got shape {x_td.shape}")
  return jnp.take(x_td, dispatch.token_of_row_r, axis=0)


def combine(y_rd: jax.Array, dispatch: Dispatch, weights_tk: jax.Array) -> jax.Array:
  """Sums each token's k expert outputs, weighted: y[t] = sum_j weights[t, j] * y_rd[row of (t, j)].

  Unsorts with the inverse permutation (a gather, so no scatter-add races) and accumulates in
  float32.

  Args:
    y_rd: [R, D] expert outputs in sorted row order (R = T * k).
    dispatch: from `sort_by_expert`.
    weights_tk: [T, k] routing weights, the same [T, k] as the ids given to `sort_by_expert` (only
      T * k = R can be checked here).

  Returns:
    [T, D] in y_rd's dtype.
  """
  num_rows = dispatch.order_r.shape[0]
  if y_rd.ndim != 2 or y_rd.shape[0] != num_rows:
    raise ValueError(f"y_rd must have shape [R={num_rows}, D], got shape {y_rd.shape}")
  if weights_tk.ndim != 2 or weights_tk.size != num_rows:
    raise ValueError(f"weights_tk must have shape [T, k] with T * k = {num_rows}, got shape {weights_tk.shape}")
  inverse_r = jnp.zeros_like(dispatch.order_r).at[dispatch.order_r].set(jnp.arange(num_rows, dtype=jnp.int32))
  y_tkd = jnp.take(y_rd, inverse_r, axis=0).reshape(*weights_tk.shape, y_rd.shape[1])
  y_td = jnp.einsum(
      "tkd,tk->td", y_tkd.astype(jnp.float32), weights_tk.astype(jnp.float32),
      precision=jax.lax.Precision.HIGHEST,
  )
  return y_td.astype(y_rd.dtype)
