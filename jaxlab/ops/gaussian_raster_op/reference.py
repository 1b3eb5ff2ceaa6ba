"""Gaussian rasterization in plain JAX: the XLA implementation and the ground truth for kernels.

Per-tile front-to-back compositing without any [H, W, N] array. Intersections (already
sorted by tile, then depth) are processed in chunks of C; for each one and each of its
tile's P = tile_size² pixels the opacity alpha [C, P] is evaluated, and transmittance comes
from a segmented exclusive cumulative sum of log(1 - alpha), one segment per tile. A
per-tile carry of that sum links consecutive chunks, so the stopping rule sees every
Gaussian in front. A chunk's contributions are segment-summed into per-tile accumulators
[num_tiles, P, ...] (image-sized), which are finally laid out as the image.

The chunk body is rematerialised in the backward pass, so reverse-mode autodiff keeps only
the per-chunk carries (a few image-sized arrays per chunk), never all [K, P] intermediates.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# Image-formation constants (3DGS / gsplat).
MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4

# Intersection-pixel pairs evaluated at once: 2^22 float32 values = 16 MiB per [C, P] array.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
  """(tiles_x, tiles_y) covering a width x height image; partial edge tiles included.

  The same grid as `jaxlab.splat.binning.tile_grid`, restated so the op needs no splat import.
  """
  return -(-width // tile_size), -(-height // tile_size)


def gaussian_alpha(delta_x, delta_y, conics_n3, opacities_n):
  """Opacity of Gaussians at pixel offsets (mean - pixel), 0 where 3DGS skips.

  Args:
    delta_x, delta_y: [C, P] offsets mean - pixel centre, in pixels.
    conics_n3: [C, 3] conic (a, b, c) per row.
    opacities_n: [C] opacity per row.

  Returns:
    [C, P] alpha: min(0.99, opacity * exp(-sigma)); 0 where sigma < 0 or alpha < 1/255.
    Gradient-safe: exp never sees a negative sigma, and the clamp passes no gradient.
  """
  a, b, c = conics_n3[:, 0:1], conics_n3[:, 1:2], conics_n3[:, 2:3]
  sigma = 0.5 * (a * delta_x * delta_x + c * delta_y * delta_y) + b * delta_x * delta_y
  in_front = sigma >= 0.0
  # A negative sigma would overflow exp; such pixels are skipped anyway.
  raw = opacities_n[:, None] * jnp.exp(-jnp.where(in_front, sigma, 0.0))
  alpha = jnp.where(raw > MAX_ALPHA, MAX_ALPHA, raw)
  return jnp.where(in_front & (alpha >= MIN_ALPHA), alpha, 0.0)


def _segmented_exclusive_cumsum(values_cp: jax.Array, segment_start_c: jax.Array) -> jax.Array:
  """Exclusive cumulative sum along axis 0 that restarts wherever segment_start_c is True.

  Each sum only ever holds its own segment's terms: a global prefix sum minus offsets would
  grow large and lose float32 precision. A sequential scan over rows (each row a vector of
  P pixels) compiles in a fraction of the time of `lax.associative_scan` and runs as fast
  on CPU.
  """

  def step(running_p, row):
    values_p, starts_segment = row
    running_p = jnp.where(starts_segment, 0.0, running_p)
    return running_p + values_p, running_p

  _, exclusive_cp = lax.scan(step, jnp.zeros(values_cp.shape[1:], values_cp.dtype), (values_cp, segment_start_c))
  return exclusive_cp


def _tiles_to_image(per_tile, *, tiles_x: int, tiles_y: int, tile_size: int, width: int, height: int):
  """[num_tiles, tile², ...] row-major tiles -> [height, width, ...], edge tiles cropped."""
  trailing = per_tile.shape[2:]
  grid = per_tile.reshape(tiles_y, tiles_x, tile_size, tile_size, *trailing)
  grid = jnp.moveaxis(grid, 2, 1)  # [tiles_y, tile rows, tiles_x, tile cols, ...]
  image = grid.reshape(tiles_y * tile_size, tiles_x * tile_size, *trailing)
  return image[:height, :width]


def _background_image(background_3, *, width: int, height: int):
  rgb = jnp.broadcast_to(background_3, (height, width, 3))
  zeros = jnp.zeros((height, width), jnp.float32)
  return rgb, zeros, zeros


# Jitted so eager calls compile once per shape instead of once per op; inlined under an outer jit.
@functools.partial(jax.jit, static_argnames=("width", "height", "tile_size", "chunk_elements"))
def gaussian_raster_reference(
    means2d_n2: jax.Array,
    conics_n3: jax.Array,
    colors_n3: jax.Array,
    opacities_n: jax.Array,
    depths_n: jax.Array,
    gaussian_ids_k: jax.Array,
    tile_ranges_t2: jax.Array,
    background_3: jax.Array | None = None,
    *,
    width: int,
    height: int,
    tile_size: int = 16,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Composites binned Gaussians front to back per tile; float32, differentiable by autodiff.

  Args:
    means2d_n2, conics_n3, colors_n3, opacities_n, depths_n: projected Gaussians.
    gaussian_ids_k: [K] int32 Gaussian index per intersection, sorted by (tile, depth).
    tile_ranges_t2: [num_tiles, 2] int32 [start, end) per row-major tile. Ranges must be
      ascending and disjoint, as `jaxlab.splat.binning.bin_gaussians` makes them.
    background_3: [3] colour where light passes through (None = black).
    width, height, tile_size: image and tile size in pixels.
    chunk_elements: intersection-pixel pairs evaluated at once (bounds memory).

  Returns:
    rgb [H, W, 3] = sum w c + T_final * background; alpha [H, W] = 1 - T_final;
    depth_sum [H, W] = sum w d (un-normalised: expected depth is depth_sum / alpha).
  """
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  means2d_n2, conics_n3, colors_n3, opacities_n, depths_n = map(
      f32, (means2d_n2, conics_n3, colors_n3, opacities_n, depths_n)
  )
  background_3 = jnp.zeros((3,), jnp.float32) if background_3 is None else f32(background_3)
  tiles_x, tiles_y = tile_grid(width, height, tile_size)
  num_tiles = tiles_x * tiles_y
  pixels_per_tile = tile_size * tile_size
  num_slots = gaussian_ids_k.shape[0]
  if num_slots == 0 or means2d_n2.shape[0] == 0:
    return _background_image(background_3, width=width, height=height)

  # Tile of each slot: the first range ending after it, if that range also starts at or before it.
  slot_k = jnp.arange(num_slots, dtype=jnp.int32)
  range_start_t, range_end_t = tile_ranges_t2[:, 0], tile_ranges_t2[:, 1]
  tile_k = jnp.searchsorted(range_end_t, slot_k, side="right").astype(jnp.int32)
  start_k = range_start_t[jnp.minimum(tile_k, num_tiles - 1)]
  valid_k = (tile_k < num_tiles) & (start_k <= slot_k)
  tile_k = jnp.where(valid_k, tile_k, num_tiles)  # num_tiles: out of bounds, dropped by scatters.

  chunk = max(1, min(num_slots, chunk_elements // pixels_per_tile))
  num_chunks = -(-num_slots // chunk)
  pad = num_chunks * chunk - num_slots
  # Slots outside every range may hold any id: point them at Gaussian 0 so gathers stay in bounds.
  ids_k = jnp.pad(jnp.where(valid_k, gaussian_ids_k.astype(jnp.int32), 0), (0, pad))
  tile_k = jnp.pad(tile_k, (0, pad), constant_values=num_tiles)
  valid_k = jnp.pad(valid_k, (0, pad))
  slot_k = jnp.arange(num_chunks * chunk, dtype=jnp.int32)
  # Segments restart at a tile's first slot, at each chunk's first slot (the carry takes
  # over there) and around slots outside every range.
  start_k = jnp.pad(start_k, (0, pad))
  segment_start_k = ~valid_k | (slot_k == start_k) | (slot_k % chunk == 0)

  pixel_p = jnp.arange(pixels_per_tile, dtype=jnp.int32)
  pixel_col_p = (pixel_p % tile_size).astype(jnp.float32) + 0.5
  pixel_row_p = (pixel_p // tile_size).astype(jnp.float32) + 0.5

  def composite_chunk(carry, chunk_inputs):
    log_t_all_tp, log_t_kept_tp, rgb_tp3, depth_sum_tp = carry
    ids_c, tile_c, valid_c, segment_start_c = chunk_inputs
    tile_clipped_c = jnp.minimum(tile_c, num_tiles - 1)
    origin_x_c = ((tile_clipped_c % tiles_x) * tile_size).astype(jnp.float32)
    origin_y_c = ((tile_clipped_c // tiles_x) * tile_size).astype(jnp.float32)
    mean_c2 = means2d_n2[ids_c]
    delta_x = mean_c2[:, 0:1] - (origin_x_c[:, None] + pixel_col_p[None, :])
    delta_y = mean_c2[:, 1:2] - (origin_y_c[:, None] + pixel_row_p[None, :])
    alpha_cp = gaussian_alpha(delta_x, delta_y, conics_n3[ids_c], opacities_n[ids_c])
    alpha_cp = jnp.where(valid_c[:, None], alpha_cp, 0.0)

    log_keep_cp = jnp.log1p(-alpha_cp)  # alpha <= 0.99: finite.
    log_t_before_cp = log_t_all_tp[tile_clipped_c] + _segmented_exclusive_cumsum(log_keep_cp, segment_start_c)
    t_before_cp = jnp.exp(log_t_before_cp)
    # Stop rule: once a Gaussian would take T below 1e-4, it and everything behind it are
    # dropped; T only falls, so "next T >= 1e-4" decides each one independently.
    included_cp = t_before_cp * (1.0 - alpha_cp) >= MIN_TRANSMITTANCE
    weight_cp = jnp.where(included_cp, alpha_cp * t_before_cp, 0.0)

    add = lambda acc, values: acc.at[tile_c].add(values, mode="drop")
    carry = (
        add(log_t_all_tp, log_keep_cp),
        add(log_t_kept_tp, jnp.where(included_cp, log_keep_cp, 0.0)),
        add(rgb_tp3, weight_cp[:, :, None] * colors_n3[ids_c][:, None, :]),
        add(depth_sum_tp, weight_cp * depths_n[ids_c][:, None]),
    )
    return carry, None

  zeros_tp = jnp.zeros((num_tiles, pixels_per_tile), jnp.float32)
  init = (zeros_tp, zeros_tp, jnp.zeros((num_tiles, pixels_per_tile, 3), jnp.float32), zeros_tp)
  as_chunks = lambda x: x.reshape(num_chunks, chunk)
  chunk_inputs = tuple(map(as_chunks, (ids_k, tile_k, valid_k, segment_start_k)))
  if num_chunks == 1:  # Same result; skipping the loop and remat halves compile time.
    (_, log_t_kept_tp, rgb_tp3, depth_sum_tp), _ = composite_chunk(init, tuple(x[0] for x in chunk_inputs))
  else:
    (_, log_t_kept_tp, rgb_tp3, depth_sum_tp), _ = lax.scan(jax.checkpoint(composite_chunk), init, chunk_inputs)

  t_final_tp = jnp.exp(log_t_kept_tp)
  rgb_tp3 = rgb_tp3 + t_final_tp[:, :, None] * background_3
  to_image = lambda x: _tiles_to_image(
      x, tiles_x=tiles_x, tiles_y=tiles_y, tile_size=tile_size, width=width, height=height
  )
  return to_image(rgb_tp3), to_image(1.0 - t_final_tp), to_image(depth_sum_tp)
