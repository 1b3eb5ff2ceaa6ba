"""Tile schedule of the grouped-matmul kernel: which output tile program t computes.

Program t of the one-dimensional grid computes one output tile of one local expert: rows
[row_start, row_start + block_m) ∩ [row_start, row_end) and columns [col_start, col_start +
block_n), with its expert's scheme and tile shape. `locate_tile` finds that tile from the group
sizes alone, with vector ops over the (few) experts that run both inside the kernel (each
program locates its own tile: no XLA kernels before the launch) and in XLA (`build_schedule`,
for tests and the XLA side of the backward pass).

Groups are cut at row M: group g owns rows [min(S_g, M), min(S_g + size_g, M)) with S_g the
sum of the sizes before it, so sizes summing past M lose their last rows (the op's convention;
`cut_at_rows`). `group_ids_of_rows` gives each row its group, for the XLA work around a launch
and for the op's reference.

Experts run in the order of their weight stack (scheme), then of their index: in a launch of
several schemes, the programs in flight together mostly run one scheme's code path.

Within an expert, tiles run in bands of `group_m` row tiles: a band is walked column block by
column block, its row tiles fastest, then the next band starts. Programs in flight together
then share a few weight column blocks and a few lhs row blocks in L2. group_m = 1 walks one row
tile across all columns; a group_m above the expert's row tiles walks whole columns, which
re-reads every lhs row once per column block (costly for experts with thousands of rows).

The grid size must be static while the group sizes are not, so the grid is sized by a bound
that holds for every split of M rows among the experts:
  sum_e ceil(M_e / bm_e) * nt_e  <=  M * max_e(nt_e / bm_e) + sum_e nt_e.
Programs past the real tiles find `stack = -1` and return at once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Rows of the packed schedule array (`build_schedule`).
STACK, SLOT, ROW_START, ROW_END, COL_START = range(5)
NUM_FIELDS = 5

# Rows of the static per-expert table (`expert_table`).
TABLE_STACK, TABLE_SLOT, TABLE_BLOCK_M, TABLE_BLOCK_N, TABLE_ORDER = range(5)


class ExpertTiling(NamedTuple):
  """Static per-local-expert facts the schedule needs (tuples of Python ints, length L)."""

  stack: tuple[int, ...]  # Which weight stack (scheme) holds the expert.
  slot: tuple[int, ...]  # Index of the expert within its stack.
  block_m: tuple[int, ...]
  block_n: tuple[int, ...]
  group_m: int = 8  # Row tiles per band of the tile order (see the module docstring).


class TileLocation(NamedTuple):
  """Program t's tile (int32 scalars); stack is -1 for programs past the real tiles."""

  stack: jax.Array
  slot: jax.Array
  row_start: jax.Array
  row_end: jax.Array
  col_start: jax.Array


def _next_power_of_two(x: int) -> int:
  return 1 << max(0, x - 1).bit_length()


def num_column_tiles(out_features: int, block_n: int) -> int:
  return -(-out_features // block_n)


def grid_bound(num_rows: int, out_features: int, tiling: ExpertTiling) -> int:
  """Static number of programs: enough for any split of `num_rows` rows among the experts."""
  col_tiles = [num_column_tiles(out_features, bn) for bn in tiling.block_n]
  densest = max(nt / bm for nt, bm in zip(col_tiles, tiling.block_m))
  return max(1, math.ceil(num_rows * densest) + sum(col_tiles))


def local_width(num_local: int) -> int:
  """Length of the per-expert vectors: a power of two (Triton tensors), at least 16."""
  return max(16, _next_power_of_two(num_local))


def all_width(num_groups: int) -> int:
  """Length of the vector holding every group's size: a power of two, at least 16."""
  return max(16, _next_power_of_two(num_groups))


def padded_sizes_length(num_groups: int, num_local: int) -> int:
  """Length `group_sizes` is zero-padded to, so that both of the kernel's reads stay inside:
  every group ([0, all_width)) and the local experts' ([offset, offset + local_width))."""
  return max(all_width(num_groups), num_groups - num_local + local_width(num_local))


def pad_sizes(group_sizes_g: jax.Array, num_local: int) -> jax.Array:
  """[padded_sizes_length] int32 group sizes, zero-padded (no op when already that long)."""
  sizes = group_sizes_g.astype(jnp.int32)
  extra = padded_sizes_length(sizes.shape[0], num_local) - sizes.shape[0]
  return jnp.pad(sizes, (0, extra)) if extra else sizes


def execution_order(tiling: ExpertTiling) -> list[int]:
  """Local expert indices in the order their tiles run: by stack, then by index."""
  return sorted(range(len(tiling.stack)), key=lambda e: (tiling.stack[e], e))


def expert_table(tiling: ExpertTiling) -> np.ndarray:
  """[5, local_width] int32 static table: stack, slot, block_m, block_n per local expert, and in
  row TABLE_ORDER the local expert that runs o-th (padding entries last, in place).

  Padding entries get block sizes of 1 (never divided by zero; they own no rows).
  """
  num_local = len(tiling.stack)
  width = local_width(num_local)
  table = np.ones((5, width), np.int32)
  table[TABLE_STACK, :] = -1
  table[TABLE_ORDER, :] = np.arange(width)
  for row, values in ((TABLE_STACK, tiling.stack), (TABLE_SLOT, tiling.slot), (TABLE_BLOCK_M, tiling.block_m),
                      (TABLE_BLOCK_N, tiling.block_n), (TABLE_ORDER, execution_order(tiling))):
    table[row, :num_local] = values
  return table


def _ceil_div(a, b):
  # Operands are >= 0 here, so truncating division is floor division (and lowers in Triton).
  return lax.div(a + b - 1, b)


def _banded_tile(local_t, row_tiles, col_tiles, group_m: int):
  """(row tile, column tile) of an expert's tile number `local_t` in the banded order."""
  band_tiles = group_m * col_tiles
  first_row = lax.div(local_t, band_tiles) * group_m
  rows_in_band = jnp.maximum(jnp.minimum(row_tiles - first_row, group_m), 1)
  within = lax.rem(local_t, band_tiles)
  return first_row + lax.rem(within, rows_in_band), lax.div(within, rows_in_band)


def locate_tile(t, all_sizes_a, local_sizes_l, group_offset, table, *, num_rows: int, out_features: int,
                num_local: int, group_m: int) -> TileLocation:
  """Program t's tile, by vector ops over the experts (runs inside a Triton kernel and in XLA).

  Args:
    t: int32 scalar program id.
    all_sizes_a: [all_width(G)] int32 sizes of every group, zero-padded.
    local_sizes_l: [local_width(L)] int32 sizes of groups offset .. offset + width - 1 (entries
      past the L local experts are ignored).
    group_offset: int32 scalar, global index of the first local expert.
    table: the `expert_table` rows as five [local_width(L)] int32 vectors.
  """
  stack_l, slot_l, block_m_l, block_n_l, order_l = table
  index_a = jnp.arange(all_sizes_a.shape[0], dtype=jnp.int32)
  index_l = jnp.arange(local_sizes_l.shape[0], dtype=jnp.int32)
  zeros_l = jnp.zeros_like(local_sizes_l)
  sizes_l = jnp.where(index_l < num_local, jnp.maximum(local_sizes_l, 0), zeros_l)
  rows_before = jnp.sum(jnp.where(index_a < group_offset, jnp.maximum(all_sizes_a, 0), 0))
  ends_l = rows_before + jnp.cumsum(sizes_l)
  # Cut at row M: a group reaching past M keeps only its rows below M.
  cut_ends_l = jnp.minimum(ends_l, num_rows)
  cut_starts_l = jnp.minimum(ends_l - sizes_l, num_rows)
  row_tiles_l = _ceil_div(cut_ends_l - cut_starts_l, block_m_l)
  col_tiles_l = _ceil_div(jnp.full_like(block_n_l, out_features), block_n_l)
  tiles_l = row_tiles_l * col_tiles_l
  # Tiles per expert in execution order: tiles_o[o] = tiles_l[order_l[o]], by a one-hot sum (a
  # gather Triton can run).
  runs_o_l = order_l[:, None] == index_l[None, :]
  tiles_o = jnp.sum(jnp.where(runs_o_l, tiles_l[None, :], zeros_l[None, :]), axis=1)
  tile_ends_o = jnp.cumsum(tiles_o)

  position = jnp.sum((tile_ends_o <= t).astype(jnp.int32))  # Experts wholly before tile t.
  local_t = t - jnp.sum(jnp.where(index_l < position, tiles_o, zeros_l))
  expert = jnp.sum(jnp.where(index_l == position, order_l, zeros_l))
  valid = position < num_local

  def pick(values_l):
    return jnp.sum(jnp.where(index_l == expert, values_l, zeros_l))

  row_tile, col_tile = _banded_tile(local_t, pick(row_tiles_l), pick(col_tiles_l), group_m)
  return TileLocation(
      stack=jnp.where(valid, pick(stack_l), -1),
      slot=pick(slot_l),
      row_start=pick(cut_starts_l) + row_tile * pick(block_m_l),
      row_end=pick(cut_ends_l),
      col_start=col_tile * pick(block_n_l),
  )


def build_schedule(group_sizes_g, group_offset, num_rows: int, out_features: int, tiling: ExpertTiling) -> jax.Array:
  """[NUM_FIELDS, grid_bound] int32: `locate_tile` for every program, in XLA.

  Args:
    group_sizes_g: [G] int rows per group (cut at num_rows here).
    group_offset: global index of the first local expert (int or int32 scalar).
    num_rows: M.
    out_features: N.
    tiling: static per-local-expert stack, slot and tile shape.
  """
  num_local = len(tiling.stack)
  sizes = pad_sizes(group_sizes_g, num_local)
  offset = jnp.asarray(group_offset, jnp.int32)
  all_sizes = sizes[:all_width(group_sizes_g.shape[0])]
  local_sizes = lax.dynamic_slice_in_dim(sizes, offset, local_width(num_local))
  table = tuple(jnp.asarray(expert_table(tiling)))

  def one(t):
    return locate_tile(t, all_sizes, local_sizes, offset, table, num_rows=num_rows, out_features=out_features,
                       num_local=num_local, group_m=tiling.group_m)

  programs = jnp.arange(grid_bound(num_rows, out_features, tiling), dtype=jnp.int32)
  return jnp.stack(jax.vmap(one)(programs)).astype(jnp.int32)


def cut_at_rows(group_sizes_g: jax.Array, num_rows: int) -> jax.Array:
  """Group sizes with negative sizes read as 0 and the groups cut at row `num_rows`."""
  ends_g = jnp.minimum(jnp.cumsum(jnp.maximum(group_sizes_g.astype(jnp.int32), 0)), num_rows)
  return jnp.diff(ends_g, prepend=0).astype(jnp.int32)


def group_ids_of_rows(group_sizes_g: jax.Array, num_rows: int) -> jax.Array:
  """[M] int32: the group owning each row; rows past sum(group_sizes) get G (no group)."""
  ends_g = jnp.cumsum(group_sizes_g.astype(jnp.int32))
  return jnp.searchsorted(ends_g, jnp.arange(num_rows, dtype=jnp.int32), side="right").astype(jnp.int32)


def schedule_numpy(group_sizes, group_offset: int, num_rows: int, out_features: int, tiling: ExpertTiling):
  """The same schedule as plain Python tuples (stack, slot, row_start, row_end, col_start), valid
  tiles only: an independent statement of what `build_schedule` must produce, for tests."""
  ends = np.minimum(np.cumsum(np.maximum(np.asarray(group_sizes, np.int64), 0)), num_rows)
  starts = np.concatenate([[0], ends[:-1]])
  tiles = []
  for e in execution_order(tiling):
    g = group_offset + e
    bm, bn = tiling.block_m[e], tiling.block_n[e]
    row_tiles = -(-int(ends[g] - starts[g]) // bm)
    for first_row in range(0, row_tiles, tiling.group_m):
      for col_tile in range(num_column_tiles(out_features, bn)):
        for row_tile in range(first_row, min(first_row + tiling.group_m, row_tiles)):
          tiles.append((tiling.stack[e], tiling.slot[e], int(starts[g]) + row_tile * bm, int(ends[g]),
                        col_tile * bn))
  return tiles
