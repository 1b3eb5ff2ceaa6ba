"""Tile binning: every (Gaussian, tile) intersection, sorted by tile then depth, in static shapes.

Each visible Gaussian (radius > 0) covers the tiles that its box `mean ± radius` touches,
clipped to the image. The intersections are listed in a fixed-capacity buffer:

1. Gaussians are sorted front to back by depth (one 32-bit integer key).
2. An exclusive cumulative sum of per-Gaussian tile counts gives each Gaussian's slice of
   the buffer; slot k finds its Gaussian by binary search and its tile inside the rectangle.
3. One stable sort by tile id (again one 32-bit key) groups the slots by tile; stability
   keeps the depth order inside each tile. Unused slots carry tile id `num_tiles` and sort
   after every real entry.
4. `tile_ranges[t] = [start, end)` comes from binary search on the sorted tile ids.

Single 32-bit keys matter on GPU: XLA hands them to a radix sort, about 20x faster than a
two-key (tile, depth) comparison sort.

If the true intersection count exceeds the capacity, only the first `capacity` slots (the
nearest Gaussians' intersections) are binned and `overflow` is set: the caller must report it.
Counts are int32: from about 2**31 intersections on, `num_intersections` saturates at
2**31 - 1, nothing is binned and `overflow` is set.
"""

from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxlab import _compat

_CAPACITY_QUANTUM = 1024
# Counts are summed in int32. A float32 sum past this bound (2**31 less a margin for the float
# sum's rounding) means the int32 sum may have wrapped.
_INT32_LIMIT = 0.999 * 2.0**31


@flax.struct.dataclass
class TileBins:
  """Gaussian–tile intersections grouped by tile, front to back inside each tile.

  Attributes:
    gaussian_ids: [K] int32 Gaussian index per intersection, sorted by (tile, depth); entries
      past the binned count are padding (index 0) and belong to no tile range.
    tile_ranges: [num_tiles, 2] int32 [start, end) into `gaussian_ids` per row-major tile.
    num_intersections: int32 scalar, the true intersection count (may exceed K).
    overflow: bool scalar, num_intersections > K: the ranges then hold only what fit.
    tile_size: tile edge in pixels.
    tiles_x: tiles per image row, ceil(width / tile_size).
    tiles_y: tile rows, ceil(height / tile_size).
  """

  gaussian_ids: jax.Array
  tile_ranges: jax.Array
  num_intersections: jax.Array
  overflow: jax.Array
  tile_size: int = flax.struct.field(pytree_node=False)
  tiles_x: int = flax.struct.field(pytree_node=False)
  tiles_y: int = flax.struct.field(pytree_node=False)

  @property
  def num_tiles(self) -> int:
    return self.tiles_x * self.tiles_y

  @property
  def capacity(self) -> int:
    return self.gaussian_ids.shape[0]


def tile_grid(width: int, height: int, tile_size: int = 16) -> tuple[int, int]:
  """(tiles_x, tiles_y) covering a width x height image; partial edge tiles included."""
  return -(-width // tile_size), -(-height // tile_size)


def _check_positive_int(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_geometry(means2d, radii, *, width, height, tile_size) -> None:
  _check_positive_int("width", width)
  _check_positive_int("height", height)
  _check_positive_int("tile_size", tile_size)
  if means2d.ndim != 2 or means2d.shape[1] != 2:
    raise ValueError(f"means2d must have shape [N, 2], got {means2d.shape}")
  if radii.shape != means2d.shape[:1]:
    raise ValueError(f"radii must have shape [N] = {means2d.shape[:1]} (from means2d), got {radii.shape}")


def _tile_rectangles(xp, means2d, radii, *, tiles_x: int, tiles_y: int, tile_size: int):
  """Per-Gaussian tile rectangle [x0, x1) x [y0, y1) and its tile count, culled ones empty.

  Written once for NumPy (host capacity estimates) and jax.numpy (binning) so both count
  exactly the same tiles: all arithmetic is float32 and clipped before the integer cast.
  """
  means2d = means2d.astype(xp.float32)
  radius = radii.astype(xp.float32)
  x, y = means2d[:, 0], means2d[:, 1]
  visible = (radii > 0) & xp.isfinite(x) & xp.isfinite(y)
  x = xp.where(visible, x, 0.0)
  y = xp.where(visible, y, 0.0)
  size = xp.float32(tile_size)

  def clipped(value, upper):
    return xp.clip(value, 0, upper).astype(xp.int32)

  x0 = clipped(xp.floor((x - radius) / size), tiles_x)
  x1 = clipped(xp.ceil((x + radius) / size), tiles_x)
  y0 = clipped(xp.floor((y - radius) / size), tiles_y)
  y1 = clipped(xp.ceil((y + radius) / size), tiles_y)
  counts = xp.where(visible, (x1 - x0) * (y1 - y0), 0).astype(xp.int32)
  return x0, x1, y0, y1, counts


def _depth_sort_key(depths_n: jax.Array) -> jax.Array:
  """int32 key whose integer order is the float order of `depths_n` (NaN last, -NaN first).

  Positive floats already compare correctly as integers; for negative ones the magnitude
  bits are flipped so larger magnitudes sort lower.
  """
  bits = lax.bitcast_convert_type(depths_n.astype(jnp.float32), jnp.int32)
  return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def bin_gaussians(
    means2d: jax.Array,
    radii: jax.Array,
    depths: jax.Array,
    *,
    width: int,
    height: int,
    tile_size: int = 16,
    capacity: int,
) -> TileBins:
  """Lists each visible Gaussian's tile intersections, sorted by (tile, depth).

  Works under jit (all shapes are static: K = capacity) and vmap. Gaussians with equal depth
  keep their index order.

  Args:
    means2d: [N, 2] pixel-space centres (x = column, y = row; pixel centres at +0.5).
    radii: [N] integer radii in pixels; 0 marks a culled Gaussian.
    depths: [N] camera-space depth, front to back = ascending.
    width, height: image size in pixels.
    tile_size: tile edge in pixels.
    capacity: K, intersections reserved (static); see `estimate_capacity`.

  Returns:
    TileBins; `overflow` is True when the true count exceeds `capacity`.
  """
  _check_geometry(means2d, radii, width=width, height=height, tile_size=tile_size)
  _check_positive_int("capacity", capacity)
  if depths.shape != radii.shape:
    raise ValueError(f"depths must have shape [N] = {radii.shape} (from radii), got {depths.shape}")
  return _bin_gaussians(means2d, radii, depths, width=width, height=height, tile_size=tile_size, capacity=capacity)


# Jitted so eager calls compile once per shape instead of once per op; inlined under an outer jit.
@functools.partial(jax.jit, static_argnames=("width", "height", "tile_size", "capacity"))
def _bin_gaussians(means2d, radii, depths, *, width, height, tile_size, capacity) -> TileBins:
  tiles_x, tiles_y = tile_grid(width, height, tile_size)
  num_tiles = tiles_x * tiles_y
  num_gaussians = radii.shape[0]
  if num_gaussians == 0:
    return TileBins(
        gaussian_ids=jnp.zeros((capacity,), jnp.int32),
        tile_ranges=jnp.zeros((num_tiles, 2), jnp.int32),
        num_intersections=jnp.int32(0),
        overflow=jnp.bool_(False),
        tile_size=tile_size,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )

  x0, x1, y0, y1, counts = _tile_rectangles(
      jnp, means2d, radii, tiles_x=tiles_x, tiles_y=tiles_y, tile_size=tile_size
  )

  # Front to back: intersections are generated in depth order so a stable tile sort keeps it.
  index_n = jnp.arange(num_gaussians, dtype=jnp.int32)
  _, order_n = lax.sort((_depth_sort_key(depths), index_n), num_keys=1, is_stable=True)
  counts_sorted = counts[order_n]
  ends_n = jnp.cumsum(counts_sorted, dtype=jnp.int32)  # Inclusive: Gaussian i owns [end - count, end).
  starts_n = ends_n - counts_sorted
  total = ends_n[-1]
  wrapped = jnp.sum(counts.astype(jnp.float32)) >= _INT32_LIMIT
  num_intersections = jnp.where(wrapped, jnp.int32(2**31 - 1), total)

  slot_k = jnp.arange(capacity, dtype=jnp.int32)
  # Zero-count Gaussians own empty slices; side="right" skips past them.
  owner_k = jnp.minimum(jnp.searchsorted(ends_n, slot_k, side="right"), num_gaussians - 1).astype(jnp.int32)
  gaussian_k = order_n[owner_k]
  local_k = slot_k - starts_n[owner_k]
  rect_width_k = jnp.maximum(x1[gaussian_k] - x0[gaussian_k], 1)
  tile_x_k = x0[gaussian_k] + local_k % rect_width_k
  tile_y_k = y0[gaussian_k] + local_k // rect_width_k
  is_real_k = (slot_k < total) & ~wrapped
  tile_k = jnp.where(is_real_k, tile_y_k * tiles_x + tile_x_k, num_tiles)
  gaussian_k = jnp.where(is_real_k, gaussian_k, 0)

  sorted_tile_k, sorted_gaussian_k = lax.sort((tile_k, gaussian_k), num_keys=1, is_stable=True)
  tile_ids = jnp.arange(num_tiles, dtype=jnp.int32)
  range_start = jnp.searchsorted(sorted_tile_k, tile_ids, side="left")
  range_end = jnp.searchsorted(sorted_tile_k, tile_ids, side="right")
  return TileBins(
      gaussian_ids=sorted_gaussian_k.astype(jnp.int32),
      tile_ranges=jnp.stack([range_start, range_end], axis=-1).astype(jnp.int32),
      num_intersections=num_intersections.astype(jnp.int32),
      overflow=num_intersections > capacity,
      tile_size=tile_size,
      tiles_x=tiles_x,
      tiles_y=tiles_y,
  )


def count_intersections(radii, means2d, *, width: int, height: int, tile_size: int = 16) -> int:
  """Exact number of Gaussian–tile intersections `bin_gaussians` would list; host side."""
  if any(isinstance(a, _compat.Tracer) for a in (radii, means2d)):
    raise ValueError(
        "count_intersections runs on the host and needs concrete arrays, not traced values (call it outside jit)"
    )
  radii = np.asarray(radii)
  means2d = np.asarray(means2d, np.float32)
  _check_geometry(means2d, radii, width=width, height=height, tile_size=tile_size)
  tiles_x, tiles_y = tile_grid(width, height, tile_size)
  with np.errstate(invalid="ignore"):
    *_, counts = _tile_rectangles(np, means2d, radii, tiles_x=tiles_x, tiles_y=tiles_y, tile_size=tile_size)
  return int(counts.sum(dtype=np.int64))


def estimate_capacity(
    radii, means2d, *, width: int, height: int, tile_size: int = 16, margin: float = 1.25
) -> int:
  """Intersection capacity for `bin_gaussians`: exact count x margin, in multiples of 1024.

  Host side: needs concrete arrays (call it outside jit, e.g. on a first frame's projection).

  Args:
    radii: [N] integer radii (0 = culled).
    means2d: [N, 2] pixel-space centres.
    width, height, tile_size: as for `bin_gaussians`.
    margin: headroom factor >= 1 for scenes that change after the estimate.

  Returns:
    A positive multiple of 1024, at least 1024.
  """
  if not margin >= 1.0:
    raise ValueError(f"margin must be >= 1 (a headroom factor), got {margin!r}")
  count = count_intersections(radii, means2d, width=width, height=height, tile_size=tile_size)
  needed = max(1, math.ceil(count * margin))
  return _CAPACITY_QUANTUM * max(1, -(-needed // _CAPACITY_QUANTUM))
