"""The op's convention for rows and groups: negative sizes read as 0, groups cut at the last row.

The kernel keeps its own copy in its schedule (`kernels_pallas/grouped_matmul/schedule.py`) so
that it imports nothing from `jaxlab.ops`; the interpret-mode tests hold the two to one answer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cut_at_rows(group_sizes_g: jax.Array, num_rows: int) -> jax.Array:
  """Group sizes with negative sizes read as 0 and the groups cut at row `num_rows`."""
  ends_g = jnp.minimum(jnp.cumsum(jnp.maximum(group_sizes_g.astype(jnp.int32), 0)), num_rows)
  return jnp.diff(ends_g, prepend=0).astype(jnp.int32)


def group_ids_of_rows(group_sizes_g: jax.Array, num_rows: int) -> jax.Array:
  """[M] int32: the group owning each row; rows past sum(group_sizes) get G (no group)."""
  ends_g = jnp.cumsum(group_sizes_g.astype(jnp.int32))
  return jnp.searchsorted(ends_g, jnp.arange(num_rows, dtype=jnp.int32), side="right").astype(jnp.int32)
