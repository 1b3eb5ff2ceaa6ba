"""Tile schedule of the grouped-matmul kernel, built by XLA from `group_sizes`.

Program t of the one-dimensional grid computes one output tile of one expert: rows
[row_start, row_start + block_m) ∩ [row_start, row_end) and columns [col_start, col_start +
block_n), with its expert's scheme and tile shape.

Within an expert, tiles run in bands of `group_m` row tiles: a band is walked column block by
column block, its row tiles fastest, then the next band starts. Programs in flight together
then share a few weight column blocks and a few lhs row blocks in L2. group_m = 1 walks one row
tile across all columns; a group_m above the expert's row tiles walks whole columns, which
re-reads every lhs row once per column block (costly for experts with thousands of rows).

The grid size must be static while the group sizes are not, so the schedule is padded to a
bound that holds for every split of M rows among the experts:
  sum_e ceil(M_e / bm_e) * nt_e  <=  M * max_e(nt_e / bm_e) + sum_e nt_e.
Programs past the real tiles find `stack = -1` and return at once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Rows of the packed schedule array.
STACK, SLOT, ROW_START, ROW_END, COL_START = range(5)
NUM_FIELDS = 5


class ExpertTiling(NamedTuple):
  """Static per-local-expert facts the schedule needs (tuples of Python ints, length L)."""

  stack: tuple[int, ...]  # Which weight stack (scheme) holds the expert.
  slot: tuple[int, ...]  # Index of the expert within its stack.
  block_m: tuple[int, ...]
  block_n: tuple[int, ...]
  group_m: int = 8  # Row tiles per band of the tile order (see the module docstring).


def num_column_tiles(out_features: int, block_n: int) -> int:
  return -(-out_features // block_n)


def grid_bound(num_rows: int, out_features: int, tiling: ExpertTiling) -> int:
  """Static number of programs: enough for any split of `num_rows` rows among the experts."""
  col_tiles = [num_column_tiles(out_features, bn) for bn in tiling.block_n]
  densest = max(nt / bm for nt, bm in zip(col_tiles, tiling.block_m))
  return max(1, math.ceil(num_rows * densest) + sum(col_tiles))


def _banded_tile(local_t, row_tiles, col_tiles, group_m: int):
  """(row tile, column tile) of an expert's tile number `local_t` in the banded order."""
  band_tiles = group_m * col_tiles
  first_row = (local_t // band_tiles) * group_m
  rows_in_band = jnp.maximum(jnp.minimum(row_tiles - first_row, group_m), 1)
  within = local_t % band_tiles
  return first_row + within % rows_in_band, within // rows_in_band


def build_schedule(group_sizes_g, group_offset, num_rows: int, out_features: int, tiling: ExpertTiling) -> jax.Array:
  """[NUM_FIELDS, T] int32 schedule for the local experts; unused programs have stack -1.

  Args:
    group_sizes_g: [G] int32 rows per group (already cut at num_rows).
    group_offset: global index of the first local expert (int or int32 scalar).
    num_rows: M.
    out_features: N.
    tiling: static per-local-expert stack, slot and tile shape.
  """
  num_local = len(tiling.stack)
  sizes_g = group_sizes_g.astype(jnp.int32)
  starts_g = jnp.cumsum(sizes_g) - sizes_g
  local_sizes = jax.lax.dynamic_slice_in_dim(sizes_g, group_offset, num_local)
  local_starts = jax.lax.dynamic_slice_in_dim(starts_g, group_offset, num_local)

  block_m = jnp.asarray(tiling.block_m, jnp.int32)
  block_n = jnp.asarray(tiling.block_n, jnp.int32)
  col_tiles = jnp.asarray([num_column_tiles(out_features, bn) for bn in tiling.block_n], jnp.int32)
  row_tiles = (local_sizes + block_m - 1) // block_m
  tiles_e = row_tiles * col_tiles
  tile_ends = jnp.cumsum(tiles_e)

  num_programs = grid_bound(num_rows, out_features, tiling)
  t = jnp.arange(num_programs, dtype=jnp.int32)
  # All-pairs compare instead of a binary search: one fused kernel, no device loop (L is small).
  expert_t = jnp.searchsorted(tile_ends, t, side="right", method="compare_all").astype(jnp.int32)
  valid_t = expert_t < num_local
  e = jnp.minimum(expert_t, num_local - 1)
  local_t = t - (tile_ends[e] - tiles_e[e])
  row_tile_t, col_tile_t = _banded_tile(local_t, row_tiles[e], col_tiles[e], tiling.group_m)

  stack_t = jnp.where(valid_t, jnp.asarray(tiling.stack, jnp.int32)[e], -1)
  slot_t = jnp.asarray(tiling.slot, jnp.int32)[e]
  row_start_t = local_starts[e] + row_tile_t * block_m[e]
  row_end_t = local_starts[e] + local_sizes[e]
  col_start_t = col_tile_t * block_n[e]
  return jnp.stack([stack_t, slot_t, row_start_t, row_end_t, col_start_t]).astype(jnp.int32)


def schedule_numpy(group_sizes, group_offset: int, num_rows: int, out_features: int, tiling: ExpertTiling):
  """The same schedule as plain Python tuples (stack, slot, row_start, row_end, col_start), valid
  tiles only: an independent statement of what `build_schedule` must produce, for tests."""
  sizes = np.asarray(group_sizes, np.int64)
  starts = np.cumsum(sizes) - sizes
  tiles = []
  for e in range(len(tiling.stack)):
    g = group_offset + e
    bm, bn = tiling.block_m[e], tiling.block_n[e]
    row_tiles = -(-int(sizes[g]) // bm)
    for first_row in range(0, row_tiles, tiling.group_m):
      for col_tile in range(num_column_tiles(out_features, bn)):
        for row_tile in range(first_row, min(first_row + tiling.group_m, row_tiles)):
          tiles.append((tiling.stack[e], tiling.slot[e], int(starts[g]) + row_tile * bm,
                        int(starts[g] + sizes[g]), col_tile * bn))
  return tiles
