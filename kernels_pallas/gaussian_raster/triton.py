"""Tile-based Gaussian splatting rasterization as Pallas kernels lowered through Triton.

Layout and reasoning: README.md. In short: one program per image tile; the tile's
`tile_size**2` pixels are one vector; the program walks its tile's depth-sorted run of
intersections one Gaussian at a time (front to back in the forward, back to front in the
backward). Per-intersection attributes are gathered by XLA into one packed float32
`[K, NUM_FEATURES]` array before the kernels, so each step loads one contiguous row.
Per-pixel buffers are tile-major (`[num_tiles, ..., tile_size**2]`): every load and store
of a program is one contiguous, unmasked run; XLA converts to and from `[H, W]` images.

Image formation (INRIA 3DGS / gsplat), per pixel centre p = (col + 0.5, row + 0.5):
  d = mean - p;  sigma = 0.5 (a dx² + c dy²) + b dx dy;  skip if sigma < 0
  alpha = min(0.99, opacity · exp(-sigma));  skip if alpha < 1/255
  next_T = T (1 - alpha);  if next_T < 1e-4 the pixel stops (this Gaussian not composited)
  else  rgb += alpha T color,  depth_sum += alpha T depth,  T = next_T
  rgb += T_final · background;  alpha_out = 1 - T_final.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from jaxlab import _compat
from kernels_pallas.gaussian_raster.config import GaussianRasterConfig, check_tile_size

plgpu = _compat.pallas_triton()

# Columns of the packed per-intersection attributes, and of the per-Gaussian gradient rows.
MEAN_X, MEAN_Y, CONIC_A, CONIC_B, CONIC_C, OPACITY, RED, GREEN, BLUE, DEPTH = range(10)
NUM_FEATURES = 10

MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4


class _Gaussian(NamedTuple):
  """One intersection's attributes as float32 scalars (a row of the packed array)."""

  mean_x: jax.Array
  mean_y: jax.Array
  conic_a: jax.Array
  conic_b: jax.Array
  conic_c: jax.Array
  opacity: jax.Array
  red: jax.Array
  green: jax.Array
  blue: jax.Array
  depth: jax.Array


class _Footprint(NamedTuple):
  """A Gaussian evaluated at the tile's pixel centres ([P] vectors)."""

  dx: jax.Array
  dy: jax.Array
  falloff: jax.Array  # exp(-sigma)
  raw_alpha: jax.Array  # opacity * exp(-sigma), before the clamp
  alpha: jax.Array
  visible: jax.Array  # sigma >= 0 and alpha >= 1/255


class ForwardTiles(NamedTuple):
  """The forward kernel's outputs, tile-major (P = tile_size**2 pixels per tile, T tiles).

  Attributes:
    rgb_t3p: colour including the background term.
    transmittance_tp: T_final per pixel (1 where nothing was composited).
    depth_sum_tp: sum of alpha·T·depth per pixel (not normalised).
    last_contrib_tp: int32 index into the intersections of the last one composited at each
      pixel, -1 where none was (and for pixels outside the image).
    visited_t: int32 intersections each program walked before stopping (a multiple of the
      chunk, capped at the range's end); less than the range length means the program
      stopped early because every pixel had finished.
    attributes_kf: the packed per-intersection attributes the kernels read.
  """

  rgb_t3p: jax.Array
  transmittance_tp: jax.Array
  depth_sum_tp: jax.Array
  last_contrib_tp: jax.Array
  visited_t: jax.Array
  attributes_kf: jax.Array


class _Static(NamedTuple):
  """Non-array arguments, hashable, passed to the custom_vjp as one nondiff argument."""

  width: int
  height: int
  tile_size: int
  config: GaussianRasterConfig
  interpret: bool

  @property
  def tiles_x(self) -> int:
    return -(-self.width // self.tile_size)

  @property
  def tiles_y(self) -> int:
    return -(-self.height // self.tile_size)

  @property
  def num_tiles(self) -> int:
    return self.tiles_x * self.tiles_y

  @property
  def pixels(self) -> int:
    return self.tile_size * self.tile_size


# ----------------------------------------------------------------------------- kernel pieces


def _load_gaussian(attributes_ref, index) -> _Gaussian:
  """Scalar loads of one packed row; all ten come from the same 40 contiguous bytes."""
  return _Gaussian(*(attributes_ref[index, feature] for feature in range(NUM_FEATURES)))


def _pixel_centres(tile, *, tile_size: int, tiles_x: int, width: int, height: int):
  """Pixel-centre coordinates [P] of `tile` (row-major inside the tile) and an in-image mask."""
  pixel = jnp.arange(tile_size * tile_size, dtype=jnp.int32)
  col = (tile % tiles_x) * tile_size + pixel % tile_size
  row = (tile // tiles_x) * tile_size + pixel // tile_size
  inside = (col < width) & (row < height)
  return col.astype(jnp.float32) + 0.5, row.astype(jnp.float32) + 0.5, inside


def _footprint(gaussian: _Gaussian, px, py) -> _Footprint:
  """Alpha of one Gaussian at every pixel, with the 3DGS skip rules."""
  dx = gaussian.mean_x - px
  dy = gaussian.mean_y - py
  sigma = 0.5 * (gaussian.conic_a * dx * dx + gaussian.conic_c * dy * dy) + gaussian.conic_b * dx * dy
  falloff = jnp.exp(-sigma)
  raw_alpha = gaussian.opacity * falloff
  alpha = jnp.minimum(MAX_ALPHA, raw_alpha)
  visible = (sigma >= 0.0) & (alpha >= MIN_ALPHA)
  return _Footprint(dx, dy, falloff, raw_alpha, alpha, visible)


def _any(mask) -> jax.Array:
  """True if any element of a bool vector is set (Triton has max, not or, reductions)."""
  return jnp.max(mask.astype(jnp.int32)) > 0


# ----------------------------------------------------------------------------- forward kernel


class _Accumulators(NamedTuple):
  transmittance: jax.Array
  done: jax.Array
  red: jax.Array
  green: jax.Array
  blue: jax.Array
  depth_sum: jax.Array
  last_contrib: jax.Array


def _forward_kernel(
    ranges_ref, attributes_ref, background_ref,
    rgb_ref, transmittance_ref, depth_sum_ref, last_contrib_ref, visited_ref,
    *, width: int, height: int, tile_size: int, tiles_x: int, chunk: int,
):
  """One program: one tile, front to back over its intersections [start, end)."""
  tile = pl.program_id(0)
  pixels = tile_size * tile_size
  num_rows = attributes_ref.shape[0]
  px, py, inside = _pixel_centres(tile, tile_size=tile_size, tiles_x=tiles_x, width=width, height=height)
  start = ranges_ref[tile, 0]
  end = ranges_ref[tile, 1]

  def composite_one(_, carry):
    index, gaussian, acc = carry
    # Issue the next row's loads before this step's math so their latency overlaps it.
    upcoming = _load_gaussian(attributes_ref, jnp.minimum(index + 1, num_rows - 1))
    fp = _footprint(gaussian, px, py)
    live = fp.visible & ~acc.done & (index < end)
    next_transmittance = acc.transmittance * (1.0 - fp.alpha)
    stop = live & (next_transmittance < MIN_TRANSMITTANCE)
    take = live & ~stop
    weight = jnp.where(take, fp.alpha * acc.transmittance, 0.0)
    acc = _Accumulators(
        transmittance=jnp.where(take, next_transmittance, acc.transmittance),
        done=acc.done | stop,
        red=acc.red + weight * gaussian.red,
        green=acc.green + weight * gaussian.green,
        blue=acc.blue + weight * gaussian.blue,
        depth_sum=acc.depth_sum + weight * gaussian.depth,
        last_contrib=jnp.where(take, index, acc.last_contrib),
    )
    return index + 1, upcoming, acc

  # The "any pixel still active" reduction runs at the end of each chunk and is carried as
  # a scalar, so the loop condition itself only compares scalars.
  def some_pixel_active(carry):
    index, _, _, active = carry
    return (index < end) & active

  def composite_chunk(carry):
    index, gaussian, acc, _ = carry
    index, gaussian, acc = lax.fori_loop(0, chunk, composite_one, (index, gaussian, acc))
    return index, gaussian, acc, _any(~acc.done)

  zeros = jnp.zeros((pixels,), jnp.float32)
  initial = _Accumulators(
      transmittance=jnp.ones((pixels,), jnp.float32),
      done=~inside,  # pixels past the image edge never hold the program back
      red=zeros, green=zeros, blue=zeros, depth_sum=zeros,
      last_contrib=jnp.full((pixels,), -1, jnp.int32),
  )
  first = _load_gaussian(attributes_ref, jnp.minimum(start, num_rows - 1))
  # Every tile has a pixel inside the image, so some pixel starts active.
  index, _, acc, _ = lax.while_loop(some_pixel_active, composite_chunk, (start, first, initial, True))

  row = pl.ds(0, pixels)
  for channel, value in enumerate((acc.red, acc.green, acc.blue)):
    plgpu.store(rgb_ref.at[tile, pl.ds(channel * pixels, pixels)], value + acc.transmittance * background_ref[channel])
  plgpu.store(transmittance_ref.at[tile, row], acc.transmittance)
  plgpu.store(depth_sum_ref.at[tile, row], acc.depth_sum)
  plgpu.store(last_contrib_ref.at[tile, row], acc.last_contrib)
  visited_ref[tile] = jnp.minimum(index, end) - start


# ----------------------------------------------------------------------------- backward kernel


class _Suffix(NamedTuple):
  """Per-pixel state walking back to front: T after the current Gaussian, and the
  colour/depth composited behind it (sum over later Gaussians of weight·value)."""

  transmittance: jax.Array
  red: jax.Array
  green: jax.Array
  blue: jax.Array
  depth: jax.Array


def _backward_kernel(
    ranges_ref, attributes_ref, gaussian_ids_ref, transmittance_ref, last_contrib_ref,
    grad_rgb_ref, grad_alpha_ref, grad_depth_sum_ref, background_ref, grads_zeros_ref,
    grads_ref,
    *, width: int, height: int, tile_size: int, tiles_x: int,
):
  """One program: one tile, back to front from its last composited intersection.

  With T_i the transmittance in front of Gaussian i, w_i = alpha_i T_i, and S_i, S^d_i the
  colour and depth composited behind it (sums of w_j color_j, w_j depth_j over later j):
    dL/dcolor_i = w_i g_rgb,   dL/ddepth_i = w_i g_depth
    dL/dalpha_i = T_i (g_rgb·color_i + g_depth·depth_i)
                  - (g_rgb·S_i + g_depth·S^d_i + T_final (bg·g_rgb - g_alpha)) / (1 - alpha_i)
  (the last term: the background seen through T_final, and alpha_out = 1 - T_final). T_i is
  recovered walking backwards as T_{i+1} / (1 - alpha_i), starting from the saved T_final.
  Then through alpha = opacity·exp(-sigma) (no gradient where clamped) to opacity and
  sigma, and through sigma's quadratic form to the mean and conic. Each Gaussian's sums
  over the tile's pixels go to row `gaussian_id` of the gradient buffer by atomic adds.
  """
  del grads_zeros_ref  # Aliased to grads_ref: the zeros the atomic adds land on.
  tile = pl.program_id(0)
  pixels = tile_size * tile_size
  num_rows = attributes_ref.shape[0]
  px, py, _ = _pixel_centres(tile, tile_size=tile_size, tiles_x=tiles_x, width=width, height=height)
  start = ranges_ref[tile, 0]
  row = pl.ds(0, pixels)
  transmittance_final = plgpu.load(transmittance_ref.at[tile, row])
  last_contrib = plgpu.load(last_contrib_ref.at[tile, row])
  grad_red, grad_green, grad_blue = (plgpu.load(grad_rgb_ref.at[tile, pl.ds(c * pixels, pixels)]) for c in range(3))
  grad_depth = plgpu.load(grad_depth_sum_ref.at[tile, row])
  grad_alpha = plgpu.load(grad_alpha_ref.at[tile, row])
  background_dot_grad = (
      background_ref[0] * grad_red + background_ref[1] * grad_green + background_ref[2] * grad_blue
  )
  # What stays behind every Gaussian: the background seen through T_final, and the alpha
  # output (1 - T_final), whose derivative w.r.t. alpha_i is T_final / (1 - alpha_i).
  behind_all = transmittance_final * (background_dot_grad - grad_alpha)

  highest = jnp.max(last_contrib)  # -1 when nothing in this tile was composited

  def load_at(index):
    clamped = jnp.clip(index, 0, num_rows - 1)
    return _load_gaussian(attributes_ref, clamped), gaussian_ids_ref[clamped]

  def undo_one(step, carry):
    gaussian, gaussian_id, suffix = carry
    index = highest - step
    upcoming, upcoming_id = load_at(index - 1)
    fp = _footprint(gaussian, px, py)
    take = fp.visible & (index <= last_contrib)
    one_minus_alpha = 1.0 - fp.alpha
    transmittance = jnp.where(take, suffix.transmittance / one_minus_alpha, suffix.transmittance)
    weight = jnp.where(take, fp.alpha * transmittance, 0.0)
    front = (
        grad_red * gaussian.red + grad_green * gaussian.green + grad_blue * gaussian.blue
        + grad_depth * gaussian.depth
    )
    behind = (
        grad_red * suffix.red + grad_green * suffix.green + grad_blue * suffix.blue
        + grad_depth * suffix.depth + behind_all
    )
    grad_alpha_i = transmittance * front - behind / one_minus_alpha
    # Where the clamp at 0.99 bites, alpha passes no gradient to opacity or sigma; `where`
    # (not a product with a mask) also keeps inf·0 out of pixels that were skipped.
    flows = take & (fp.raw_alpha <= MAX_ALPHA)
    grad_sigma = jnp.where(flows, -grad_alpha_i * fp.raw_alpha, 0.0)
    grad_opacity = jnp.where(flows, grad_alpha_i * fp.falloff, 0.0)

    def accumulate():
      per_pixel = {
          MEAN_X: grad_sigma * (gaussian.conic_a * fp.dx + gaussian.conic_b * fp.dy),
          MEAN_Y: grad_sigma * (gaussian.conic_b * fp.dx + gaussian.conic_c * fp.dy),
          CONIC_A: 0.5 * grad_sigma * fp.dx * fp.dx,
          CONIC_B: grad_sigma * fp.dx * fp.dy,
          CONIC_C: 0.5 * grad_sigma * fp.dy * fp.dy,
          OPACITY: grad_opacity,
          RED: weight * grad_red,
          GREEN: weight * grad_green,
          BLUE: weight * grad_blue,
          DEPTH: weight * grad_depth,
      }
      for feature, value in per_pixel.items():
        plgpu.atomic_add(grads_ref, gaussian_id * NUM_FEATURES + feature, jnp.sum(value))

    # Many listed Gaussians touch no pixel of the tile above 1/255: skip their reductions.
    lax.cond(_any(take), accumulate, lambda: None)
    suffix = _Suffix(
        transmittance=transmittance,
        red=suffix.red + weight * gaussian.red,
        green=suffix.green + weight * gaussian.green,
        blue=suffix.blue + weight * gaussian.blue,
        depth=suffix.depth + weight * gaussian.depth,
    )
    return upcoming, upcoming_id, suffix

  zeros = jnp.zeros((pixels,), jnp.float32)
  first, first_id = load_at(highest)
  initial = (first, first_id, _Suffix(transmittance_final, zeros, zeros, zeros, zeros))
  lax.fori_loop(0, jnp.maximum(highest - start + 1, 0), undo_one, initial)


# ----------------------------------------------------------------------------- pallas_calls


def _pack_attributes(means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k) -> jax.Array:
  """Per-intersection attributes [max(K, 1), NUM_FEATURES] float32, in sorted order."""
  per_gaussian_nf = jnp.concatenate(
      [means2d_n2, conics_n3, opacities_n[:, None], colors_n3, depths_n[:, None]], axis=1
  ).astype(jnp.float32)
  # Kernels clamp prefetch indices into [0, rows): keep at least one row to clamp to.
  if per_gaussian_nf.shape[0] == 0:
    per_gaussian_nf = jnp.zeros((1, NUM_FEATURES), jnp.float32)
  if gaussian_ids_k.shape[0] == 0:
    gaussian_ids_k = jnp.zeros((1,), jnp.int32)
  # Padding ids past the real count may be anything: clip keeps the gather in bounds.
  return jnp.take(per_gaussian_nf, gaussian_ids_k, axis=0, mode="clip")


def _nonempty_ids(gaussian_ids_k: jax.Array) -> jax.Array:
  ids = gaussian_ids_k.astype(jnp.int32)
  return ids if ids.shape[0] else jnp.zeros((1,), jnp.int32)


def _forward(arrays, static: _Static) -> ForwardTiles:
  means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3 = arrays
  attributes_kf = _pack_attributes(means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k)
  num_tiles, pixels = static.num_tiles, static.pixels
  kernel = functools.partial(
      _forward_kernel, width=static.width, height=static.height, tile_size=static.tile_size,
      tiles_x=static.tiles_x, chunk=static.config.gaussians_per_chunk,
  )
  outputs = pl.pallas_call(
      kernel,
      out_shape=(
          jax.ShapeDtypeStruct((num_tiles, 3 * pixels), jnp.float32),
          jax.ShapeDtypeStruct((num_tiles, pixels), jnp.float32),
          jax.ShapeDtypeStruct((num_tiles, pixels), jnp.float32),
          jax.ShapeDtypeStruct((num_tiles, pixels), jnp.int32),
          jax.ShapeDtypeStruct((num_tiles,), jnp.int32),
      ),
      grid=(num_tiles,),
      compiler_params=_compat.triton_compiler_params(
          num_warps=static.config.num_warps, num_stages=static.config.num_stages
      ),
      interpret=static.interpret,
      name="gaussian_raster_forward",
  )(tile_ranges_t2.astype(jnp.int32), attributes_kf, background_3.astype(jnp.float32))
  rgb_t3p, *rest = outputs
  return ForwardTiles(rgb_t3p.reshape(num_tiles, 3, pixels), *rest, attributes_kf=attributes_kf)


def _backward(
    attributes_kf, gaussian_ids_k, tile_ranges_t2, background_3, transmittance_tp, last_contrib_tp,
    grad_rgb_t3p, grad_alpha_tp, grad_depth_sum_tp, num_gaussians: int, static: _Static,
) -> jax.Array:
  """Per-Gaussian gradients [N, NUM_FEATURES], accumulated by the kernel's atomic adds."""
  # One spare row when N == 0 keeps the buffer non-empty; no intersection points at it then.
  rows = max(num_gaussians, 1)
  kernel = functools.partial(
      _backward_kernel, width=static.width, height=static.height, tile_size=static.tile_size,
      tiles_x=static.tiles_x,
  )
  grads_flat = pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((rows * NUM_FEATURES,), jnp.float32),
      grid=(static.num_tiles,),
      input_output_aliases={9: 0},
      compiler_params=_compat.triton_compiler_params(
          num_warps=static.config.backward_num_warps, num_stages=static.config.num_stages
      ),
      interpret=static.interpret,
      name="gaussian_raster_backward",
  )(
      tile_ranges_t2.astype(jnp.int32),
      attributes_kf,
      _nonempty_ids(gaussian_ids_k),
      transmittance_tp,
      last_contrib_tp,
      grad_rgb_t3p.reshape(static.num_tiles, 3 * static.pixels),
      grad_alpha_tp,
      grad_depth_sum_tp,
      background_3.astype(jnp.float32),
      jnp.zeros((rows * NUM_FEATURES,), jnp.float32),  # index 9, aliased to the output
  )
  return grads_flat.reshape(rows, NUM_FEATURES)[:num_gaussians]


# ----------------------------------------------------------------------------- layout (XLA)


def _tiles_to_image(x_tcp: jax.Array, static: _Static) -> jax.Array:
  """[T, C, P] tile-major -> [H, W, C] image (edge-tile padding cropped)."""
  ts, channels = static.tile_size, x_tcp.shape[1]
  x = x_tcp.reshape(static.tiles_y, static.tiles_x, channels, ts, ts).transpose(0, 3, 1, 4, 2)
  return x.reshape(static.tiles_y * ts, static.tiles_x * ts, channels)[: static.height, : static.width]


def _image_to_tiles(x_hwc: jax.Array, static: _Static) -> jax.Array:
  """[H, W, C] image -> [T, C, P] tile-major, zero past the image edge."""
  ts, channels = static.tile_size, x_hwc.shape[2]
  x = jnp.pad(x_hwc, ((0, static.tiles_y * ts - static.height), (0, static.tiles_x * ts - static.width), (0, 0)))
  x = x.reshape(static.tiles_y, ts, static.tiles_x, ts, channels).transpose(0, 2, 4, 1, 3)
  return x.reshape(static.num_tiles, channels, static.pixels)


def _images(tiles: ForwardTiles, static: _Static):
  rgb_hw3 = _tiles_to_image(tiles.rgb_t3p, static)
  transmittance_hw = _tiles_to_image(tiles.transmittance_tp[:, None], static)[..., 0]
  depth_sum_hw = _tiles_to_image(tiles.depth_sum_tp[:, None], static)[..., 0]
  return rgb_hw3, 1.0 - transmittance_hw, depth_sum_hw


# ----------------------------------------------------------------------------- custom_vjp


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _rasterize(means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2,
               background_3, static: _Static):
  arrays = (means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3)
  return _images(_forward(arrays, static), static)


def _rasterize_fwd(means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2,
                   background_3, static: _Static):
  arrays = (means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3)
  tiles = _forward(arrays, static)
  residuals = (arrays, tiles.attributes_kf, tiles.transmittance_tp, tiles.last_contrib_tp)
  return _images(tiles, static), residuals


def _float0_like(x: jax.Array) -> np.ndarray:
  return np.zeros(x.shape, dtype=jax.dtypes.float0)


def _rasterize_bwd(static: _Static, residuals, cotangents):
  arrays, attributes_kf, transmittance_tp, last_contrib_tp = residuals
  means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3 = arrays
  grad_rgb_hw3, grad_alpha_hw, grad_depth_sum_hw = (c.astype(jnp.float32) for c in cotangents)
  grads_nf = _backward(
      attributes_kf, gaussian_ids_k, tile_ranges_t2, background_3, transmittance_tp, last_contrib_tp,
      _image_to_tiles(grad_rgb_hw3, static),
      _image_to_tiles(grad_alpha_hw[..., None], static)[:, 0],
      _image_to_tiles(grad_depth_sum_hw[..., None], static)[:, 0],
      means2d_n2.shape[0], static,
  )
  transmittance_hw = _tiles_to_image(transmittance_tp[:, None], static)[..., 0]
  grad_background_3 = jnp.sum(transmittance_hw[..., None] * grad_rgb_hw3, axis=(0, 1))
  return (
      grads_nf[:, MEAN_X:MEAN_Y + 1].astype(means2d_n2.dtype),
      grads_nf[:, CONIC_A:CONIC_C + 1].astype(conics_n3.dtype),
      grads_nf[:, RED:BLUE + 1].astype(colors_n3.dtype),
      grads_nf[:, OPACITY].astype(opacities_n.dtype),
      grads_nf[:, DEPTH].astype(depths_n.dtype),
      _float0_like(gaussian_ids_k),
      _float0_like(tile_ranges_t2),
      grad_background_3.astype(background_3.dtype),
  )


_rasterize.defvjp(_rasterize_fwd, _rasterize_bwd)


# ----------------------------------------------------------------------------- entry points


def _check_inputs(means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2,
                  background_3, static: _Static) -> None:
  if static.width < 1 or static.height < 1:
    raise ValueError(f"width and height must be >= 1, got {static.width}x{static.height}")
  check_tile_size(static.tile_size)
  if not isinstance(static.config, GaussianRasterConfig):
    raise ValueError(f"config must be a GaussianRasterConfig, got {type(static.config).__name__}")
  num = means2d_n2.shape[0] if means2d_n2.ndim == 2 else -1
  expected = {
      "means2d": (means2d_n2, (num, 2)),
      "conics": (conics_n3, (num, 3)),
      "colors": (colors_n3, (num, 3)),
      "opacities": (opacities_n, (num,)),
      "depths": (depths_n, (num,)),
      "tile_ranges": (tile_ranges_t2, (static.num_tiles, 2)),
      "background": (background_3, (3,)),
  }
  for name, (array, shape) in expected.items():
    if tuple(array.shape) != shape:
      raise ValueError(
          f"{name} must have shape {shape} (N = len(means2d), {static.num_tiles} tiles), got {array.shape}"
      )
  if gaussian_ids_k.ndim != 1:
    raise ValueError(f"gaussian_ids must be one-dimensional [K], got shape {gaussian_ids_k.shape}")
  for name, array in (("gaussian_ids", gaussian_ids_k), ("tile_ranges", tile_ranges_t2)):
    if not jnp.issubdtype(array.dtype, jnp.integer):
      raise ValueError(f"{name} must be an integer array, got {array.dtype}")


def _static(width, height, tile_size, config, interpret) -> _Static:
  config = GaussianRasterConfig.heuristic(tile_size) if config is None else config
  return _Static(int(width), int(height), int(tile_size), config, bool(interpret))


def _prepare(inputs, width, height, tile_size, config, interpret):
  """Static settings plus the inputs as arrays (black background if None), checked."""
  static = _static(width, height, tile_size, config, interpret)
  *rest, background_3 = inputs
  if background_3 is None:
    background_3 = jnp.zeros((3,), jnp.float32)
  arrays = tuple(jnp.asarray(a) for a in (*rest, background_3))
  _check_inputs(*arrays, static)
  return arrays, static


def rasterize(
    means2d_n2: jax.Array,
    conics_n3: jax.Array,
    colors_n3: jax.Array,
    opacities_n: jax.Array,
    depths_n: jax.Array,
    gaussian_ids_k: jax.Array,
    tile_ranges_t2: jax.Array,
    background_3: jax.Array | None,
    *,
    width: int,
    height: int,
    tile_size: int = 16,
    config: GaussianRasterConfig | None = None,
    interpret: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Composites depth-sorted, tile-binned Gaussians into an image; differentiable.

  Args:
    means2d_n2, conics_n3, colors_n3, opacities_n, depths_n: projected Gaussians.
    gaussian_ids_k: int [K] intersections sorted by (tile, depth); entries outside every
      tile range are never read as Gaussians (any value).
    tile_ranges_t2: int [tiles_y * tiles_x, 2] half-open [start, end) into gaussian_ids.
    background_3: [3] colour seen through the final transmittance (None = black).
    width, height, tile_size: image and tile size in pixels (tile_size in
      `config.SUPPORTED_TILE_SIZES`; row-major tiles, partial edge tiles allowed).
    config: launch settings; None picks `GaussianRasterConfig.heuristic(tile_size)`.
    interpret: run both kernels in the Pallas interpreter (any backend).

  Returns:
    rgb_hw3 (float32, background included), alpha_hw = 1 - T_final, and depth_sum_hw =
    sum of alpha·T·depth (divide by alpha for the expected depth). Gradients flow to the
    five float inputs and the background; the integer inputs get float0 cotangents.
  """
  arrays, static = _prepare((means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3), width, height, tile_size, config, interpret)
  return _rasterize(*arrays, static)


def render_tiles(
    means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3,
    *, width: int, height: int, tile_size: int = 16, config: GaussianRasterConfig | None = None,
    interpret: bool = False,
) -> ForwardTiles:
  """The forward kernel's raw tile-major outputs (for tests and benchmarks; not differentiable)."""
  arrays, static = _prepare((means2d_n2, conics_n3, colors_n3, opacities_n, depths_n, gaussian_ids_k, tile_ranges_t2, background_3), width, height, tile_size, config, interpret)
  return _forward(arrays, static)
