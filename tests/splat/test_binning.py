"""Tests for `jaxlab.splat.binning`: tile rectangles, (tile, depth) order, overflow, capacity.

Expected bins come from hand-derived cases and from a brute-force binning written here
with a different formulation: a Gaussian touches tile (tx, ty) when the open intervals
(mean - radius, mean + radius) and (tile start, tile end) overlap on both axes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat.binning import TileBins, bin_gaussians, count_intersections, estimate_capacity, tile_grid


def _bins_as_lists(bins: TileBins) -> list[list[int]]:
  ids = np.asarray(bins.gaussian_ids)
  return [ids[start:end].tolist() for start, end in np.asarray(bins.tile_ranges)]


def _brute_force_bins(means2d, radii, depths, *, width, height, tile_size=16) -> list[list[int]]:
  """Per tile, the Gaussians whose box overlaps it, nearest first (index breaks depth ties)."""
  tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
  means2d = np.asarray(means2d, np.float64)
  order = sorted(range(len(radii)), key=lambda g: (float(depths[g]), g))
  bins = []
  for ty in range(tiles_y):
    for tx in range(tiles_x):
      hits = []
      for g in order:
        if radii[g] <= 0:
          continue
        (x, y), r = means2d[g], float(radii[g])
        overlaps_x = tx * tile_size < x + r and (tx + 1) * tile_size > x - r
        overlaps_y = ty * tile_size < y + r and (ty + 1) * tile_size > y - r
        if overlaps_x and overlaps_y:
          hits.append(g)
      bins.append(hits)
  return bins


def _random_scene(seed, num, width, height):
  rng = np.random.default_rng(seed)
  means2d = rng.uniform([-20.0, -20.0], [width + 20.0, height + 20.0], (num, 2)).astype(np.float32)
  radii = rng.integers(0, 25, num).astype(np.int32)  # Some zeros: culled.
  depths = rng.uniform(0.5, 5.0, num).astype(np.float32)
  depths[: num // 4] = depths[num // 4 : 2 * (num // 4)]  # Ties: index order must decide.
  return means2d, radii, depths


def _bin(means2d, radii, depths, **kwargs):
  return bin_gaussians(jnp.asarray(means2d), jnp.asarray(radii), jnp.asarray(depths), **kwargs)


def test_one_gaussian_covers_the_tiles_of_its_box():
  # Box x, y in [15, 25] on 16-pixel tiles: columns 0-1, rows 0-1 of a 4 x 3 grid.
  bins = _bin([[20.0, 20.0]], [5], [1.0], width=64, height=48, capacity=16)
  assert (bins.tiles_x, bins.tiles_y, bins.tile_size) == (4, 3, 16)
  covered = {0, 1, 4, 5}
  assert _bins_as_lists(bins) == [[0] if t in covered else [] for t in range(12)]
  assert int(bins.num_intersections) == 4 and not bool(bins.overflow)


def test_small_box_inside_one_tile_touches_only_that_tile():
  bins = _bin([[40.0, 24.0]], [3], [1.0], width=64, height=48, capacity=8)  # Box [37, 43] x [21, 27].
  assert _bins_as_lists(bins) == [[0] if t == 4 + 2 else [] for t in range(12)]


def test_depth_order_inside_a_tile_with_ties_in_index_order():
  depths = [3.0, 1.0, 2.0, 1.0, -0.5]
  bins = _bin([[8.0, 8.0]] * 5, [2] * 5, depths, width=16, height=16, capacity=8)
  assert _bins_as_lists(bins) == [[4, 1, 3, 2, 0]]


@pytest.mark.parametrize("width, height", [(64, 48), (37, 21), (50, 33), (16, 1)])
def test_random_scenes_match_brute_force(width, height):
  means2d, radii, depths = _random_scene(seed=width, num=60, width=width, height=height)
  expected = _brute_force_bins(means2d, radii, depths, width=width, height=height)
  count = sum(map(len, expected))
  bins = _bin(means2d, radii, depths, width=width, height=height, capacity=count + 7)
  assert _bins_as_lists(bins) == expected
  assert int(bins.num_intersections) == count == count_intersections(radii, means2d, width=width, height=height)
  assert not bool(bins.overflow)
  # Ranges tile [0, count) with no gaps; the padding after them is never referenced.
  ranges = np.asarray(bins.tile_ranges)
  assert ranges[0, 0] == 0 and ranges[-1, 1] == count and np.all(ranges[1:, 0] == ranges[:-1, 1])


def test_edge_gaussian_on_size_not_divisible_by_tile():
  # 37 x 21 -> 3 x 2 tiles; a Gaussian at the bottom-right pixel only reaches the last tile.
  bins = _bin([[36.0, 20.0]], [3], [1.0], width=37, height=21, capacity=8)
  assert (bins.tiles_x, bins.tiles_y) == (3, 2)
  assert _bins_as_lists(bins) == [[], [], [], [], [], [0]]


def test_one_pixel_image():
  means2d = [[0.5, 0.5], [-5.0, 0.5], [20.0, 20.0], [0.5, 0.5]]
  bins = _bin(means2d, [1, 2, 1, 4], [2.0, 1.0, 1.0, 1.0], width=1, height=1, capacity=8)
  # Boxes entirely left of or below the single tile miss it; the two at the pixel hit it.
  assert (bins.tiles_x, bins.tiles_y) == (1, 1)
  assert _bins_as_lists(bins) == [[3, 0]]


def test_everything_culled():
  means2d, _, depths = _random_scene(seed=1, num=10, width=32, height=32)
  bins = _bin(means2d, np.zeros(10, np.int32), depths, width=32, height=32, capacity=1024)
  assert int(bins.num_intersections) == 0 and not bool(bins.overflow)
  assert np.all(np.asarray(bins.tile_ranges)[:, 1] == np.asarray(bins.tile_ranges)[:, 0])


def test_empty_scene():
  empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32))
  bins = _bin(*empty, width=40, height=20, capacity=1024)
  assert bins.gaussian_ids.shape == (1024,) and bins.tile_ranges.shape == (6, 2)
  assert int(bins.num_intersections) == 0 and not bool(bins.overflow)
  assert np.all(np.asarray(bins.tile_ranges) == 0)


def test_overflow_reports_true_count_and_bins_nearest_first():
  width, height = 64, 64
  means2d, radii, depths = _random_scene(seed=3, num=400, width=width, height=height)
  expected = _brute_force_bins(means2d, radii, depths, width=width, height=height)
  count = sum(map(len, expected))
  capacity = 1024
  assert count > capacity  # The scene must overflow for this test to mean anything.
  bins = _bin(means2d, radii, depths, width=width, height=height, capacity=capacity)
  assert bool(bins.overflow) and int(bins.num_intersections) == count

  # What fits: the first `capacity` pairs taken Gaussian by Gaussian, nearest first, each
  # Gaussian's tiles in row-major order.
  order = sorted(range(len(radii)), key=lambda g: (float(depths[g]), g))
  by_gaussian = [(g, t) for g in order for t, gs in enumerate(expected) if g in gs]
  kept = set(by_gaussian[:capacity])
  expected_fit = [[g for g in gs if (g, t) in kept] for t, gs in enumerate(expected)]
  got = _bins_as_lists(bins)
  assert got == expected_fit
  assert sum(map(len, got)) == capacity


def test_int32_overflow_of_the_count_is_flagged():
  # 512 Gaussians covering all 2048 x 2048 tiles: exactly 2**31 intersections.
  num = 512
  means2d = np.full((num, 2), 16384.0, np.float32)
  radii, depths = np.full(num, 20000, np.int32), np.arange(num, dtype=np.float32)
  bins = _bin(means2d, radii, depths, width=32768, height=32768, capacity=1024)
  assert bool(bins.overflow) and int(bins.num_intersections) == 2**31 - 1
  assert np.all(np.asarray(bins.tile_ranges)[:, 1] == np.asarray(bins.tile_ranges)[:, 0])


def test_estimate_capacity_rounds_exact_count_times_margin():
  means2d, radii, depths = _random_scene(seed=4, num=300, width=64, height=48)
  count = sum(map(len, _brute_force_bins(means2d, radii, depths, width=64, height=48)))
  capacity = estimate_capacity(jnp.asarray(radii), jnp.asarray(means2d), width=64, height=48, margin=1.5)
  assert capacity % 1024 == 0 and capacity >= count * 1.5 and capacity - 1024 < count * 1.5
  assert not bool(_bin(means2d, radii, depths, width=64, height=48, capacity=capacity).overflow)
  assert estimate_capacity(np.zeros(3, np.int32), np.zeros((3, 2), np.float32), width=8, height=8) == 1024


def test_tile_grid():
  assert tile_grid(1, 1) == (1, 1)
  assert tile_grid(1920, 1080) == (120, 68)
  assert tile_grid(37, 21, tile_size=8) == (5, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(capacity=0), "capacity"),
        (dict(capacity=8, width=0), "width"),
        (dict(capacity=8, tile_size=-16), "tile_size"),
        (dict(capacity=8, radii=np.zeros(3, np.int32)), "radii"),
        (dict(capacity=8, depths=np.zeros(3, np.float32)), "depths"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
  arguments = dict(
      means2d=np.zeros((2, 2), np.float32), radii=np.ones(2, np.int32), depths=np.ones(2, np.float32),
      width=16, height=16,
  )
  arguments.update(kwargs)
  arrays = {k: jnp.asarray(arguments.pop(k)) for k in ("means2d", "radii", "depths")}
  with pytest.raises(ValueError, match=message):
    bin_gaussians(**arrays, **arguments)


def test_estimate_capacity_refuses_traced_values():
  with pytest.raises(ValueError, match="concrete"):
    jax.jit(lambda r, m: estimate_capacity(r, m, width=8, height=8))(jnp.ones(2, jnp.int32), jnp.zeros((2, 2)))
