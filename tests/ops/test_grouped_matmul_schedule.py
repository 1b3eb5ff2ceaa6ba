"""The tile schedule covers every tile of every local expert exactly once, within the bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas.grouped_matmul import schedule as schedule_lib


def _valid_tiles(schedule):
  schedule = np.asarray(schedule)
  valid = schedule[schedule_lib.STACK] >= 0
  return [tuple(int(v) for v in column) for column in schedule[:, valid].T]


@pytest.mark.parametrize("seed", range(4))
def test_schedule_matches_an_independent_enumeration(seed):
  rng = np.random.default_rng(seed)
  num_groups = int(rng.integers(1, 9))
  num_local = int(rng.integers(1, num_groups + 1))
  offset = int(rng.integers(0, num_groups - num_local + 1))
  sizes = rng.integers(0, 40, size=num_groups)
  sizes[rng.random(num_groups) < 0.3] = 0  # Empty groups.
  # A ragged tail past the groups, or (odd seeds) fewer rows than the sizes claim: groups cut at M.
  num_rows = max(1, int(sizes.sum()) + int(rng.integers(0, 20) if seed % 2 == 0 else -rng.integers(1, 30)))
  out_features = int(rng.integers(1, 100))
  tiling = schedule_lib.ExpertTiling(
      stack=tuple(int(s) for s in rng.integers(0, 3, size=num_local)),
      slot=tuple(range(num_local)),
      block_m=tuple(int(b) for b in rng.choice([16, 32, 64], size=num_local)),
      block_n=tuple(int(b) for b in rng.choice([16, 32], size=num_local)),
      group_m=int(rng.choice([1, 2, 3, 1000])),
  )
  schedule = schedule_lib.build_schedule(jnp.asarray(sizes, jnp.int32), offset, num_rows, out_features, tiling)
  expected = schedule_lib.schedule_numpy(sizes, offset, num_rows, out_features, tiling)
  assert _valid_tiles(schedule) == expected
  assert schedule.shape == (schedule_lib.NUM_FIELDS, schedule_lib.grid_bound(num_rows, out_features, tiling))


def test_band_order_walks_group_m_row_tiles_across_the_columns():
  # One expert, 5 row tiles of 16, 2 column tiles of 16, bands of 2 row tiles.
  tiling = schedule_lib.ExpertTiling(stack=(0,), slot=(0,), block_m=(16,), block_n=(16,), group_m=2)
  schedule = schedule_lib.build_schedule(jnp.asarray([80], jnp.int32), 0, 80, 32, tiling)
  order = [(row_start // 16, col_start // 16) for _, _, row_start, _, col_start in _valid_tiles(schedule)]
  assert order == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1), (4, 0), (4, 1)]


def test_bound_holds_for_the_worst_split():
  # One row per group maximises ceil() waste: every group costs a whole row tile.
  tiling = schedule_lib.ExpertTiling(stack=(0,) * 8, slot=tuple(range(8)), block_m=(64,) * 8, block_n=(32,) * 8)
  sizes = np.ones(8, np.int64)
  tiles = schedule_lib.schedule_numpy(sizes, 0, 8, 100, tiling)
  assert len(tiles) == 8 * 4
  assert schedule_lib.grid_bound(8, 100, tiling) >= len(tiles)


def test_schedule_is_jittable_with_a_traced_offset():
  tiling = schedule_lib.ExpertTiling(stack=(0, 0), slot=(0, 1), block_m=(16, 16), block_n=(16, 16))
  sizes = jnp.asarray([5, 20, 3, 0], jnp.int32)
  build = jax.jit(lambda s, o: schedule_lib.build_schedule(s, o, 28, 20, tiling))
  got = _valid_tiles(build(sizes, jnp.int32(1)))
  assert got == schedule_lib.schedule_numpy(np.asarray(sizes), 1, 28, 20, tiling)


def test_experts_of_one_stack_run_together():
  # Stacks alternate across the experts; the schedule runs stack 0's experts (1 and 3) first.
  tiling = schedule_lib.ExpertTiling(stack=(1, 0, 1, 0), slot=(0, 0, 1, 1), block_m=(16,) * 4, block_n=(16,) * 4)
  schedule = schedule_lib.build_schedule(jnp.asarray([16, 16, 16, 16], jnp.int32), 0, 64, 16, tiling)
  stacks_and_rows = [(stack, row_start) for stack, _, row_start, _, _ in _valid_tiles(schedule)]
  assert stacks_and_rows == [(0, 16), (0, 48), (1, 0), (1, 32)]
