"""The Triton-lowered Gaussian rasterization kernels, in interpret mode, against brute force.

Forward outputs are compared with a per-pixel numpy renderer written from the image-formation rule, and
gradients with autodiff of the same renderer written in jnp. Both renderers read the same
per-tile intersection lists as the kernels (built here by a small box-overlap binning), so
any disagreement is the kernels' compositing or their backward. Most tests share one image
and scene size so the interpreted kernels compile once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from kernels_pallas.gaussian_raster.config import SUPPORTED_TILE_SIZES, GaussianRasterConfig
from kernels_pallas.gaussian_raster import triton as raster

# The image-formation constants, restated so the kernels are checked against them.
MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4

# Shared shapes: 32x24 pixels in 16x16 tiles is a 2x2 grid whose bottom row is partial.
NUM_GAUSSIANS = 40
WIDTH, HEIGHT, TILE = 32, 24, 16
# A small chunk makes a program's early exit visible in how many intersections it walked.
CONFIG = GaussianRasterConfig(gaussians_per_chunk=8)


class Scene(NamedTuple):
  means2d: np.ndarray  # [N, 2] float32
  conics: np.ndarray  # [N, 3]
  colors: np.ndarray  # [N, 3]
  opacities: np.ndarray  # [N]
  depths: np.ndarray  # [N], distinct
  background: np.ndarray  # [3]

  def params(self):
    return tuple(jnp.asarray(x, jnp.float32) for x in self)


class Bins(NamedTuple):
  gaussian_ids: np.ndarray  # [capacity] int32, -1 past the real entries
  tile_ranges: np.ndarray  # [T, 2] int32
  lists: np.ndarray  # [T, N] int32 each tile's Gaussians front to back, -1 padded


class Stats(NamedTuple):
  stopped_hw: np.ndarray  # bool: pixels where the 1e-4 transmittance rule fired
  skipped_low_alpha: int  # (pixel, Gaussian) pairs skipped for alpha < 1/255 with sigma >= 0
  composited: set  # Gaussians composited at some pixel
  clamped_everywhere: set  # composited Gaussians whose alpha was clamped at every such pixel


def conics_from_covariances(cov_n22: np.ndarray) -> np.ndarray:
  inverse = np.linalg.inv(cov_n22)
  return np.stack([inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 1]], axis=1).astype(np.float32)


def random_covariances(rng, num, low=1.0, high=12.0) -> np.ndarray:
  """Random SPD 2x2 covariances with eigenvalues (in px²) between low and high, any rotation."""
  angle = rng.uniform(0, np.pi, num)
  rotation = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], 1).reshape(num, 2, 2)
  eigen = rng.uniform(low, high, (num, 2))
  return rotation @ (eigen[:, :, None] * np.eye(2)) @ rotation.transpose(0, 2, 1)


def random_scene(seed: int, *, width=WIDTH, height=HEIGHT, num=NUM_GAUSSIANS, num_faint=5) -> Scene:
  """Gaussians in and just outside the image; `num_faint` of them below the 1/255 alpha floor."""
  rng = np.random.default_rng(seed)
  means = rng.uniform([-3.0, -3.0], [width + 3.0, height + 3.0], (num, 2))
  opacities = rng.uniform(0.3, 0.98, num)
  opacities[:num_faint] = rng.uniform(0.001, 0.0035, num_faint)
  return Scene(
      means2d=means.astype(np.float32),
      conics=conics_from_covariances(random_covariances(rng, num)),
      colors=rng.uniform(0.0, 1.0, (num, 3)).astype(np.float32),
      opacities=opacities.astype(np.float32),
      depths=rng.permutation(np.linspace(1.0, 9.0, num)).astype(np.float32),
      background=np.array([0.2, 0.5, 0.8], np.float32),
  )


def bin_by_boxes(scene: Scene, *, width, height, tile, radius_sigmas=3.0) -> Bins:
  """Each Gaussian joins every tile its (radius_sigmas·σ_max)-box touches, front to back."""
  num = scene.means2d.shape[0]
  tiles_x, tiles_y = -(-width // tile), -(-height // tile)
  a, b, c = scene.conics.astype(np.float64).T
  det = a * c - b * b
  # Covariance = inverse conic = [[c, -b], [-b, a]] / det; its largest eigenvalue:
  mid = 0.5 * (a + c) / det
  largest = mid + np.sqrt(np.maximum(mid * mid - 1.0 / det, 0.0))
  radius = np.ceil(radius_sigmas * np.sqrt(largest))
  order = np.lexsort((np.arange(num), scene.depths))
  lists = np.full((tiles_x * tiles_y, num), -1, np.int32)
  ranges, ids = [], []
  for tile_id in range(tiles_x * tiles_y):
    x0, y0 = (tile_id % tiles_x) * tile, (tile_id // tiles_x) * tile
    mx, my = scene.means2d[order, 0], scene.means2d[order, 1]
    r = radius[order]
    hit = (mx + r > x0) & (mx - r < x0 + tile) & (my + r > y0) & (my - r < y0 + tile)
    members = order[hit]
    lists[tile_id, : members.size] = members
    ranges.append((len(ids), len(ids) + members.size))
    ids.extend(members)
  capacity = num * tiles_x * tiles_y + 3  # slack past the real entries, never read
  gaussian_ids = np.full((capacity,), -1, np.int32)
  gaussian_ids[: len(ids)] = ids
  return Bins(gaussian_ids, np.array(ranges, np.int32).reshape(-1, 2), lists)


def render_numpy(scene: Scene, bins: Bins, *, width, height, tile):
  """Per-pixel float64 compositing straight from the image-formation rule; returns outputs and Stats."""
  tiles_x = -(-width // tile)
  rgb = np.zeros((height, width, 3))
  alpha_out = np.zeros((height, width))
  depth_sum = np.zeros((height, width))
  stopped = np.zeros((height, width), bool)
  skipped, composited, clamped_at, unclamped_at = 0, set(), set(), set()
  for row in range(height):
    for col in range(width):
      members = bins.lists[(row // tile) * tiles_x + col // tile]
      transmittance = 1.0
      for g in members[members >= 0]:
        dx = float(scene.means2d[g, 0]) - (col + 0.5)
        dy = float(scene.means2d[g, 1]) - (row + 0.5)
        a, b, c = (float(v) for v in scene.conics[g])
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        if sigma < 0:
          continue
        raw = float(scene.opacities[g]) * np.exp(-sigma)
        alpha = min(MAX_ALPHA, raw)
        if alpha < MIN_ALPHA:
          skipped += 1
          continue
        next_transmittance = transmittance * (1.0 - alpha)
        if next_transmittance < MIN_TRANSMITTANCE:
          stopped[row, col] = True
          break
        weight = alpha * transmittance
        rgb[row, col] += weight * scene.colors[g]
        depth_sum[row, col] += weight * scene.depths[g]
        transmittance = next_transmittance
        composited.add(int(g))
        (clamped_at if raw > MAX_ALPHA else unclamped_at).add(int(g))
      rgb[row, col] += transmittance * scene.background
      alpha_out[row, col] = 1.0 - transmittance
  stats = Stats(stopped, skipped, composited, clamped_at - unclamped_at)
  return (rgb, alpha_out, depth_sum), stats


@functools.partial(jax.jit, static_argnames=("width", "height", "tile"))
def render_jnp(means2d, conics, colors, opacities, depths, background, lists_tl, *, width, height, tile):
  """The image-formation rule in jnp for autodiff: one scan step per list position, all pixels at once."""
  tiles_x = -(-width // tile)
  rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")
  members_lhw = jnp.moveaxis(lists_tl[(rows // tile) * tiles_x + cols // tile], -1, 0)
  px, py = cols + 0.5, rows + 0.5

  def step(carry, g):
    transmittance, done, rgb, depth_sum = carry
    safe = jnp.maximum(g, 0)
    dx, dy = means2d[safe, 0] - px, means2d[safe, 1] - py
    a, b, c = conics[safe, 0], conics[safe, 1], conics[safe, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = jnp.minimum(MAX_ALPHA, opacities[safe] * jnp.exp(-jnp.maximum(sigma, 0.0)))
    live = (g >= 0) & (sigma >= 0) & (alpha >= MIN_ALPHA) & ~done
    next_transmittance = transmittance * (1.0 - alpha)
    stop = live & (next_transmittance < MIN_TRANSMITTANCE)
    take = live & ~stop
    weight = jnp.where(take, alpha * transmittance, 0.0)
    carry = (
        jnp.where(take, next_transmittance, transmittance),
        done | stop,
        rgb + weight[..., None] * colors[safe],
        depth_sum + weight * depths[safe],
    )
    return carry, None

  zeros = jnp.zeros((height, width), jnp.float32)
  init = (zeros + 1.0, zeros > 0.0, jnp.zeros((height, width, 3), jnp.float32), zeros)
  (transmittance, _, rgb, depth_sum), _ = lax.scan(step, init, members_lhw)
  return rgb + transmittance[..., None] * background, 1.0 - transmittance, depth_sum


@functools.partial(jax.jit, static_argnames=("width", "height", "tile", "config"))
def kernel_outputs_and_grads(params, gaussian_ids, tile_ranges, cotangents, *, width, height, tile, config):
  def render(means2d, conics, colors, opacities, depths, background):
    return raster.rasterize(
        means2d, conics, colors, opacities, depths, gaussian_ids, tile_ranges, background,
        width=width, height=height, tile_size=tile, config=config, interpret=True,
    )

  outputs, vjp = jax.vjp(render, *params)
  return outputs, vjp(cotangents)


@functools.partial(jax.jit, static_argnames=("width", "height", "tile"))
def reference_outputs_and_grads(params, lists_tl, cotangents, *, width, height, tile):
  render = functools.partial(render_jnp, lists_tl=lists_tl, width=width, height=height, tile=tile)
  outputs, vjp = jax.vjp(render, *params)
  return outputs, vjp(cotangents)


def random_cotangents(seed, width, height):
  rng = np.random.default_rng(seed)
  return (
      jnp.asarray(rng.normal(size=(height, width, 3)), jnp.float32),
      jnp.asarray(rng.normal(size=(height, width)), jnp.float32),
      jnp.asarray(rng.normal(size=(height, width)), jnp.float32),
  )


def assert_close(actual, expected, what, *, rtol=1e-4, atol=1e-5):
  """Float32 agreement; atol scales with the largest expected magnitude (gradients reach ~100)."""
  expected = np.asarray(expected, np.float64)
  scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol * scale, err_msg=what)


GRAD_NAMES = ("means2d", "conics", "colors", "opacities", "depths", "background")
OUTPUT_NAMES = ("rgb", "alpha", "depth_sum")


class Checked(NamedTuple):
  bins: Bins
  stats: Stats
  outputs: tuple  # the kernel's (rgb, alpha, depth_sum)
  grads: tuple  # the kernel's gradients, in GRAD_NAMES order


def check_scene(scene: Scene, *, width=WIDTH, height=HEIGHT, tile=TILE, config=CONFIG, seed=0) -> Checked:
  """Kernel outputs vs numpy and kernel gradients vs jnp autodiff, under random cotangents."""
  bins = bin_by_boxes(scene, width=width, height=height, tile=tile)
  expected, stats = render_numpy(scene, bins, width=width, height=height, tile=tile)
  cotangents = random_cotangents(seed, width, height)
  outputs, grads = kernel_outputs_and_grads(
      scene.params(), jnp.asarray(bins.gaussian_ids), jnp.asarray(bins.tile_ranges), cotangents,
      width=width, height=height, tile=tile, config=config,
  )
  for name, actual, want in zip(OUTPUT_NAMES, outputs, expected):
    assert actual.shape == want.shape, name
    assert_close(actual, want, f"forward {name}")
  _, expected_grads = reference_outputs_and_grads(
      scene.params(), jnp.asarray(bins.lists), cotangents, width=width, height=height, tile=tile
  )
  for name, actual, want in zip(GRAD_NAMES, grads, expected_grads):
    assert actual.shape == want.shape, name
    assert_close(actual, want, f"gradient of {name}")
  # Gaussians never composited anywhere receive exactly nothing.
  never = np.setdiff1d(np.arange(scene.means2d.shape[0]), sorted(stats.composited))
  for name, grad in zip(GRAD_NAMES[:5], grads[:5]):
    assert np.all(np.asarray(grad)[never] == 0.0), f"{name} gradient of never-composited Gaussians"
  return Checked(bins, stats, outputs, grads)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "tile, width, height, config",
    [(TILE, WIDTH, HEIGHT, CONFIG), (8, 30, 20, None)],
    ids=["tile16_32x24", "tile8_30x20"],
)
def test_random_scene_matches_brute_force(tile, width, height, config):
  # Neither size is a multiple of the tile: the right and/or bottom tiles are partial.
  assert width % tile or height % tile
  scene = random_scene(1, width=width, height=height)
  stats = check_scene(scene, width=width, height=height, tile=tile, config=config, seed=2).stats
  # The scene exercises the skip rule (faint Gaussians and tails) and composites most Gaussians.
  assert stats.skipped_low_alpha > 0
  assert len(stats.composited) >= NUM_GAUSSIANS // 2


def stacked_scene() -> Scene:
  """30 broad, opaque Gaussians over the top-left tile, distinct depths, then 10 more.

  Those layers drive every pixel of that tile below 1e-4 transmittance, so its pixels stop
  and so does its program. The deepest Gaussian has opacity 1 and a huge extent: wherever
  it is composited (in the tiles the stack leaves open) its alpha is clamped at 0.99.
  """
  rng = np.random.default_rng(5)
  scene = random_scene(6, num_faint=0)
  means = scene.means2d.copy()
  means[:30] = rng.uniform(4.0, 12.0, (30, 2))
  covariances = random_covariances(rng, NUM_GAUSSIANS)
  covariances[:30] = random_covariances(rng, 30, low=60.0, high=120.0)
  opacities = scene.opacities.copy()
  opacities[:30] = rng.uniform(0.9, 0.98, 30)
  depths = np.linspace(1.0, 9.0, NUM_GAUSSIANS).astype(np.float32)
  means[-1] = (24.0, 20.0)
  covariances[-1] = np.eye(2) * 1e5
  opacities[-1] = 1.0
  return scene._replace(
      means2d=means.astype(np.float32), conics=conics_from_covariances(covariances),
      opacities=opacities.astype(np.float32), depths=depths,
  )


def test_opaque_stack_stops_pixels_and_the_whole_program_early():
  scene = stacked_scene()
  bins, stats, _, grads = check_scene(scene, seed=7)
  assert stats.stopped_hw[:TILE, :TILE].all()  # every pixel of tile 0 hit the 1e-4 rule
  tiles = raster.render_tiles(
      *scene.params()[:5], bins.gaussian_ids, bins.tile_ranges, scene.background,
      width=WIDTH, height=HEIGHT, tile_size=TILE, config=CONFIG, interpret=True,
  )
  start, end = (int(v) for v in bins.tile_ranges[0])
  chunk = CONFIG.gaussians_per_chunk
  assert end - start >= 30 and (end - start) % chunk
  # Each pixel of tile 0 composited a prefix of its list; the program walked whole chunks
  # up to the one where its last pixel stopped, and then left the rest of the list alone.
  last = np.asarray(tiles.last_contrib_tp[0])
  assert np.all((last >= start) & (last < end - 1))
  visited = int(tiles.visited_t[0])
  assert visited % chunk == 0 and last.max() - start < visited < end - start
  # Pixels of the partial bottom tiles that lie below the image never composite anything.
  assert np.all(np.asarray(tiles.last_contrib_tp[2]).reshape(TILE, TILE)[HEIGHT - TILE :] == -1)
  # The clamp: the flat opaque Gaussian is composited, always at 0.99, so neither its
  # opacity nor its shape (through sigma) gets any gradient, while its colour does.
  clamped = NUM_GAUSSIANS - 1
  assert clamped in stats.clamped_everywhere
  means_grad, conics_grad, colors_grad, opacities_grad = (np.asarray(g) for g in grads[:4])
  assert opacities_grad[clamped] == 0.0
  assert np.all(means_grad[clamped] == 0.0) and np.all(conics_grad[clamped] == 0.0)
  assert np.any(colors_grad[clamped] != 0.0)


def test_empty_tiles_show_the_background():
  # Small Gaussians confined to the left half: the right column of tiles has no intersections.
  rng = np.random.default_rng(8)
  scene = random_scene(9, num_faint=0)
  scene = scene._replace(
      means2d=rng.uniform([2.0, 2.0], [10.0, 22.0], (NUM_GAUSSIANS, 2)).astype(np.float32),
      conics=conics_from_covariances(random_covariances(rng, NUM_GAUSSIANS, low=0.5, high=1.5)),
  )
  bins, stats, outputs, _ = check_scene(scene, seed=10)
  empty = np.flatnonzero(bins.tile_ranges[:, 0] == bins.tile_ranges[:, 1])
  assert set(empty.tolist()) == {1, 3}
  assert len(stats.composited) > 0
  rgb, alpha, depth_sum = (np.asarray(x) for x in outputs)
  np.testing.assert_array_equal(rgb[:, TILE:], np.broadcast_to(scene.background, (HEIGHT, WIDTH - TILE, 3)))
  assert np.all(alpha[:, TILE:] == 0.0) and np.all(depth_sum[:, TILE:] == 0.0)
  assert alpha[:, :TILE].max() > 0.5


def test_nothing_visible_renders_the_background_and_only_it_gets_gradients():
  scene = random_scene(11)
  scene = scene._replace(opacities=np.full(NUM_GAUSSIANS, 0.5 * MIN_ALPHA, np.float32))
  bins, stats, _, grads = check_scene(scene, seed=12)
  assert not stats.composited and bins.tile_ranges[:, 1].max() > 0  # listed, yet invisible
  for name, grad in zip(GRAD_NAMES[:5], grads[:5]):
    assert np.all(np.asarray(grad) == 0.0), name
  # T_final = 1 everywhere, so d rgb / d background is the identity at every pixel.
  grad_rgb = random_cotangents(12, WIDTH, HEIGHT)[0]
  np.testing.assert_allclose(grads[5], np.asarray(grad_rgb).sum(axis=(0, 1)), rtol=1e-5, atol=1e-4)


def test_no_gaussians_and_no_intersections():
  background = jnp.array([0.3, 0.6, 0.9], jnp.float32)
  size = 20  # 2x2 tiles of 16, all partial but the first

  @jax.jit
  def render_and_grad(background):
    empty2, empty3, empty = jnp.zeros((0, 2)), jnp.zeros((0, 3)), jnp.zeros((0,))

    def render(background):
      return raster.rasterize(
          empty2, empty3, empty3, empty, empty, jnp.zeros((0,), jnp.int32), jnp.zeros((4, 2), jnp.int32),
          background, width=size, height=size, tile_size=TILE, interpret=True,
      )

    outputs, vjp = jax.vjp(render, background)
    return outputs, vjp(tuple(jnp.ones_like(o) for o in outputs))[0]

  (rgb, alpha, depth_sum), grad_background = render_and_grad(background)
  np.testing.assert_array_equal(rgb, np.broadcast_to(background, (size, size, 3)))
  assert np.all(alpha == 0.0) and np.all(depth_sum == 0.0)
  np.testing.assert_allclose(grad_background, np.full(3, size * size))


def test_integer_inputs_get_float0_cotangents():
  scene = random_scene(13)
  bins = bin_by_boxes(scene, width=WIDTH, height=HEIGHT, tile=TILE)

  def grads_of_integer_inputs(ids, ranges):
    def render(ids, ranges):
      return raster.rasterize(
          *scene.params()[:5], ids, ranges, scene.params()[5],
          width=WIDTH, height=HEIGHT, tile_size=TILE, config=CONFIG, interpret=True,
      )

    _, vjp = jax.vjp(render, ids, ranges)
    return vjp(random_cotangents(0, WIDTH, HEIGHT))

  # Abstract evaluation traces the custom_vjp's backward without compiling the kernels.
  grad_ids, grad_ranges = jax.eval_shape(grads_of_integer_inputs, bins.gaussian_ids, bins.tile_ranges)
  assert grad_ids.dtype == jax.dtypes.float0 and grad_ids.shape == bins.gaussian_ids.shape
  assert grad_ranges.dtype == jax.dtypes.float0 and grad_ranges.shape == bins.tile_ranges.shape


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(conics=np.zeros((NUM_GAUSSIANS, 2), np.float32)), "conics"),
        (dict(opacities=np.zeros((NUM_GAUSSIANS, 1), np.float32)), "opacities"),
        (dict(background=np.zeros((4,), np.float32)), "background"),
        (dict(tile_ranges=np.zeros((3, 2), np.int32)), "tile_ranges"),
        (dict(gaussian_ids=np.zeros((5,), np.float32)), "gaussian_ids"),
        (dict(tile_size=12), "tile_size"),
        (dict(width=0), "width"),
    ],
)
def test_bad_inputs_raise_naming_the_problem(change, message):
  scene = random_scene(14)
  bins = bin_by_boxes(scene, width=WIDTH, height=HEIGHT, tile=TILE)
  args = dict(
      means2d=scene.means2d, conics=scene.conics, colors=scene.colors, opacities=scene.opacities,
      depths=scene.depths, gaussian_ids=bins.gaussian_ids, tile_ranges=bins.tile_ranges,
      background=scene.background, width=WIDTH, height=HEIGHT, tile_size=TILE,
  )
  args.update(change)
  statics = {k: args.pop(k) for k in ("width", "height", "tile_size")}
  with pytest.raises(ValueError, match=message):
    raster.rasterize(*args.values(), **statics, interpret=True)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("tile", SUPPORTED_TILE_SIZES)
def test_config_heuristic_gives_about_two_pixels_per_thread(tile):
  config = GaussianRasterConfig.heuristic(tile)
  for warps in (config.num_warps, config.backward_num_warps):
    assert warps & (warps - 1) == 0 and 1 <= warps <= 32
    assert tile * tile / (32 * warps) <= 2 or warps == 32


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_warps=3), "num_warps"),
        (dict(num_warps=64), "num_warps"),
        (dict(backward_num_warps=0), "backward_num_warps"),
        (dict(num_stages=0), "num_stages"),
        (dict(gaussians_per_chunk=0), "gaussians_per_chunk"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
  with pytest.raises(ValueError, match=field):
    GaussianRasterConfig(**kwargs)
  with pytest.raises(ValueError, match="tile_size"):
    GaussianRasterConfig.heuristic(12)


# --------------------------------------------------------------------------- Triton lowering


def _lower_for_cuda(fn, *specs) -> str:
  """Lowering for the "cuda" platform runs Pallas' Triton lowering and its checks on CPU."""
  return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()


def _specs(num, capacity, num_tiles, batch=()):
  f32 = lambda *shape: jax.ShapeDtypeStruct(batch + shape, jnp.float32)
  return (
      f32(num, 2), f32(num, 3), f32(num, 3), f32(num), f32(num),
      jax.ShapeDtypeStruct(batch + (capacity,), jnp.int32), jax.ShapeDtypeStruct(batch + (num_tiles, 2), jnp.int32),
      f32(3),
  )


@pytest.mark.parametrize("tile, width, height", [(16, 1920, 1080), (8, 100, 70), (16, 1, 1)])
def test_forward_and_backward_lower_to_two_triton_calls(tile, width, height):
  num_tiles = -(-width // tile) * -(-height // tile)

  def forward_and_backward(*arrays):
    means2d, conics, colors, opacities, depths, ids, ranges, background = arrays

    def render(means2d, conics, colors, opacities, depths, background):
      return raster.rasterize(
          means2d, conics, colors, opacities, depths, ids, ranges, background,
          width=width, height=height, tile_size=tile,
      )

    outputs, vjp = jax.vjp(render, means2d, conics, colors, opacities, depths, background)
    return outputs, vjp(tuple(jnp.ones_like(o) for o in outputs))

  text = _lower_for_cuda(forward_and_backward, *_specs(1000, 4096, num_tiles))
  assert text.count("xla.gpu.triton") == 2
  assert "gaussian_raster_forward" in text and "gaussian_raster_backward" in text


def test_vmapped_over_cameras_lowers():
  num_tiles = 2 * 2

  def loss(*arrays):
    def one_camera(means2d, conics, colors, opacities, depths, ids, ranges, background):
      rgb, alpha, depth_sum = raster.rasterize(
          means2d, conics, colors, opacities, depths, ids, ranges, background,
          width=WIDTH, height=HEIGHT, tile_size=TILE,
      )
      return jnp.sum(rgb) + jnp.sum(alpha) + jnp.sum(depth_sum)

    batched = jax.vmap(one_camera, in_axes=(0, 0, 0, 0, 0, 0, 0, None))
    return jnp.sum(batched(*arrays))

  specs = _specs(50, 256, num_tiles, batch=(3,))
  specs = specs[:7] + (jax.ShapeDtypeStruct((3,), jnp.float32),)
  text = _lower_for_cuda(jax.grad(loss, argnums=(0, 1, 2, 3, 4, 7)), *specs)
  assert text.count("xla.gpu.triton") == 2
