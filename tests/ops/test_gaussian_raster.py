"""Tests for `jaxlab.ops.gaussian_raster`: every implementation, the reference, edge cases.

Ground truths independent of the code under test:
- a brute-force renderer written here that applies the 3DGS image formation literally,
  pixel by pixel, over all Gaussians sorted by depth (no tiles, no binning);
- central finite differences for the reference's gradients;
- closed forms where a scene allows one (a single clamped Gaussian, background algebra).

The same implementation-parameterised cases run for `xla` and for `pallas_triton` in the
Pallas interpreter; those scenes are tiny (interpretation is slow). Kernel gradients are
compared with the reference's autodiff.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import ops
from jaxlab.ops.gaussian_raster_op.reference import gaussian_raster_reference
from jaxlab.splat.binning import bin_gaussians
from jaxlab.testing import assert_close

IMPLEMENTATIONS = [
    pytest.param("xla", False, id="xla"),
    pytest.param("pallas_triton", True, id="pallas_triton-interpret"),
]

FLOAT_INPUTS = ("means2d", "conics", "colors", "opacities", "depths", "background")


# ----------------------------------------------------------------------------- scenes


def _conics_and_extent(scale_x, scale_y, correlation):
  """Conics (a, b, c) of covariances [[sx², ρ sx sy], [ρ sx sy, sy²]], plus the covariance."""
  cov_xx, cov_xy, cov_yy = scale_x**2, correlation * scale_x * scale_y, scale_y**2
  det = cov_xx * cov_yy - cov_xy**2
  conics = np.stack([cov_yy / det, -cov_xy / det, cov_xx / det], axis=1)
  return conics, cov_xx, cov_yy


def _covering_radii(opacities, cov_xx, cov_yy):
  """Integer radii whose box holds every pixel where alpha >= 1/255 (0 if none can)."""
  # alpha >= 1/255 inside the ellipse sigma <= ln(255 opacity), whose half-widths are
  # sqrt(2 ln(255 o) cov_xx) and sqrt(2 ln(255 o) cov_yy).
  level = np.log(np.maximum(255.0 * opacities, 1e-30))
  extent = np.sqrt(2.0 * np.maximum(level, 0.0) * np.maximum(cov_xx, cov_yy))
  return np.where(level > 0, np.ceil(extent) + 1, 0).astype(np.int32)


# Scenes are padded to one Gaussian count and binned with one capacity, and most use one
# image size: calls with equal shapes reuse compiled programs, which keeps this file fast.
NUM_GAUSSIANS = 40
CAPACITY = 1024
WIDTH, HEIGHT = 30, 22  # 2 x 2 tiles of 16, partial in both directions.


def pad_scene(scene, num=NUM_GAUSSIANS):
  """Appends culled Gaussians (radius 0, opacity 0, off-image) up to `num`."""
  extra = num - len(scene["opacities"])
  assert extra >= 0
  padding = dict(
      means2d=np.full((extra, 2), -100.0), conics=np.tile([1.0, 0.0, 1.0], (extra, 1)), colors=np.zeros((extra, 3)),
      opacities=np.zeros(extra), depths=100.0 + np.arange(extra), radii=np.zeros(extra),
  )
  padded = {k: np.concatenate([v, padding[k].astype(v.dtype)]) for k, v in scene.items() if k != "background"}
  return {**padded, "background": scene["background"]}


def make_scene(num_real, **fields):
  """A padded scene from explicit per-Gaussian fields (lists or arrays) and a background."""
  scene = {k: np.asarray(v, np.float32) for k, v in fields.items() if k != "radii"}
  scene["radii"] = np.asarray(fields["radii"], np.int32)
  assert len(scene["opacities"]) == num_real
  return pad_scene(scene)


def random_scene(seed, num, width, height, *, scale=(1.0, 5.0), opacity=(0.2, 0.95)):
  """Random projected Gaussians as float32 NumPy arrays (dict) with covering radii, padded."""
  rng = np.random.default_rng(seed)
  means2d = rng.uniform([-3.0, -3.0], [width + 3.0, height + 3.0], (num, 2))
  scale_x, scale_y = rng.uniform(*scale, (2, num))
  conics, cov_xx, cov_yy = _conics_and_extent(scale_x, scale_y, rng.uniform(-0.6, 0.6, num))
  opacities = rng.uniform(*opacity, num)
  scene = dict(
      means2d=means2d,
      conics=conics,
      colors=rng.uniform(0.0, 1.0, (num, 3)),
      opacities=opacities,
      depths=rng.permutation(np.linspace(1.0, 10.0, num)) if num else np.zeros(0),  # Distinct depths.
      background=rng.uniform(0.0, 1.0, 3),
  )
  scene = {k: np.asarray(v, np.float32) for k, v in scene.items()}
  scene["radii"] = _covering_radii(opacities, cov_xx, cov_yy)
  return pad_scene(scene) if num else scene


def bin_scene(scene, width=WIDTH, height=HEIGHT, tile_size=16):
  bins = bin_gaussians(
      jnp.asarray(scene["means2d"]), jnp.asarray(scene["radii"]), jnp.asarray(scene["depths"]),
      width=width, height=height, tile_size=tile_size, capacity=CAPACITY,
  )
  assert not bool(bins.overflow)
  return bins


def brute_force(scene, width, height):
  """The image-formation rule applied literally in float64: per pixel, all Gaussians front to back.

  Returns (rgb, alpha, depth, weight_n), weight_n being each Gaussian's compositing weight
  summed over the image. Plain Python floats: NumPy scalars would be several times slower.
  """
  order = np.argsort(scene["depths"], kind="stable")
  means2d, conics, colors, opacities, depths = (
      np.asarray(scene[k], np.float64)[order].tolist() for k in FLOAT_INPUTS[:5]
  )
  background = np.asarray(scene["background"], np.float64).tolist()
  rgb = np.zeros((height, width, 3))
  alpha = np.zeros((height, width))
  depth = np.zeros((height, width))
  weight_n = np.zeros(len(depths))
  for row in range(height):
    for col in range(width):
      transmittance, color, depth_sum = 1.0, [0.0, 0.0, 0.0], 0.0
      for i, ((mx, my), (a, b, c), opacity) in enumerate(zip(means2d, conics, opacities)):
        dx, dy = mx - (col + 0.5), my - (row + 0.5)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        if sigma < 0:
          continue
        g_alpha = min(0.99, opacity * math.exp(-sigma))
        if g_alpha < 1.0 / 255.0:
          continue
        next_transmittance = transmittance * (1.0 - g_alpha)
        if next_transmittance < 1e-4:
          break
        weight = g_alpha * transmittance
        color = [acc + weight * channel for acc, channel in zip(color, colors[i])]
        depth_sum += weight * depths[i]
        weight_n[order[i]] += weight
        transmittance = next_transmittance
      rgb[row, col] = [acc + transmittance * channel for acc, channel in zip(color, background)]
      alpha[row, col] = 1.0 - transmittance
      depth[row, col] = depth_sum / max(1.0 - transmittance, 1e-10)
  return rgb, alpha, depth, weight_n


def brute_force_render(scene, width, height):
  """(rgb, alpha, depth) of `brute_force`."""
  return brute_force(scene, width, height)[:3]


def raster_args(scene, bins):
  return tuple(jnp.asarray(scene[k]) for k in FLOAT_INPUTS[:5]) + (bins.gaussian_ids, bins.tile_ranges)


def op_fn(bins, width=WIDTH, height=HEIGHT, tile_size=16, implementation="xla", interpret=False):
  """The op as a function of the six float inputs, bins fixed."""

  def fn(means2d, conics, colors, opacities, depths, background):
    return ops.gaussian_raster(
        means2d, conics, colors, opacities, depths, bins.gaussian_ids, bins.tile_ranges,
        width=width, height=height, tile_size=tile_size, background=background,
        implementation=implementation, interpret=interpret,
    )

  return fn


def reference_fn(bins, width=WIDTH, height=HEIGHT, tile_size=16):
  """The reference plus the expected-depth normalisation, written out here."""

  def fn(means2d, conics, colors, opacities, depths, background):
    rgb, alpha, depth_sum = gaussian_raster_reference(
        means2d, conics, colors, opacities, depths, bins.gaussian_ids, bins.tile_ranges, background,
        width=width, height=height, tile_size=tile_size,
    )
    return rgb, alpha, depth_sum / jnp.maximum(alpha, 1e-10)

  return fn


def float_inputs(scene):
  return [jnp.asarray(scene[k]) for k in FLOAT_INPUTS]


def render(scene, bins, width=WIDTH, height=HEIGHT, **kwargs):
  """(rgb, alpha, depth) of the op on the scene. Eager: the implementations jit themselves."""
  return op_fn(bins, width, height, **kwargs)(*float_inputs(scene))


def value_and_vjp(fn, scene, cotangents):
  """(outputs, gradients of all six float inputs) for the given output cotangents."""
  outputs, vjp = jax.vjp(fn, *float_inputs(scene))
  return outputs, vjp(cotangents)


def gradients(fn, scene, loss_of_outputs):
  return jax.grad(lambda *x: loss_of_outputs(*fn(*x)), argnums=tuple(range(6)))(*float_inputs(scene))


def assert_images_close(actual, expected, what):
  for name, a, e in zip(("rgb", "alpha", "depth"), actual, expected):
    # Depth values reach 10: compare them on a scale of 10.
    assert_close(a, e, jnp.float32, f"{what} {name}", atol_scale=10.0 if name == "depth" else 1.0)


def assert_gradient_close(actual, expected, what, num_pixels):
  """Per-Gaussian gradients are sums over up to all pixels, added in different orders."""
  expected = np.asarray(expected)
  scale = np.sqrt(num_pixels) * max(1.0, float(np.abs(expected).max(initial=0.0)))
  assert_close(actual, expected, jnp.float32, what, atol_scale=scale)


# ------------------------------------------- cases shared by every implementation

# (width, height, tile_size, real Gaussians, seed): sizes not divisible by the tile, a single
# pixel, a small tile; at most 30 x 22 pixels and 40 Gaussians (interpretation is slow).
SHARED_CASES = [
    pytest.param(30, 22, 16, 40, 0, id="30x22-40g"),
    pytest.param(1, 1, 16, 5, 2, id="1x1-5g"),
    pytest.param(20, 12, 8, 16, 3, id="20x12-tile8-16g"),
]


def _shared_scene(seed, num, width, height):
  scene = random_scene(seed, num, width, height)
  if width == 1:  # Gather the Gaussians around the single pixel.
    scene["means2d"][:num] = np.random.default_rng(seed).uniform(-2, 3, (num, 2))
  return scene


@pytest.mark.parametrize("width, height, tile_size, num, seed", SHARED_CASES)
@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_values_and_vjp(implementation, interpret, width, height, tile_size, num, seed):
  """Images against the brute-force renderer; the vjp of all six float inputs against the
  reference's autodiff, with a random cotangent on every output."""
  scene = _shared_scene(seed, num, width, height)
  bins = bin_scene(scene, width, height, tile_size)
  rng = np.random.default_rng(seed + 200)
  shapes = ((height, width, 3), (height, width), (height, width))
  cotangents = tuple(jnp.asarray(rng.standard_normal(shape), jnp.float32) for shape in shapes)
  out, grads = value_and_vjp(op_fn(bins, width, height, tile_size, implementation, interpret), scene, cotangents)
  assert [o.shape for o in out] == [(height, width, 3), (height, width), (height, width)]
  assert all(o.dtype == jnp.float32 for o in out)
  assert_images_close(out, brute_force_render(scene, width, height), implementation)

  _, grads_ref = value_and_vjp(reference_fn(bins, width, height, tile_size), scene, cotangents)
  for name, grad, grad_ref in zip(FLOAT_INPUTS, grads, grads_ref):
    assert grad.shape == scene[name].shape and grad.dtype == jnp.float32, name
    assert np.all(np.isfinite(np.asarray(grad))), name
    assert_gradient_close(grad, grad_ref, f"{implementation} d{name}", width * height)
  # Independent of the reference: light reaches the background through T_final = 1 - alpha.
  expected_dbackground = np.einsum("hwc,hw->c", np.asarray(cotangents[0]), 1.0 - np.asarray(out[1]))
  assert_gradient_close(grads[-1], expected_dbackground, "dbackground closed form", width * height)


@pytest.mark.parametrize("implementation, interpret", IMPLEMENTATIONS)
def test_vmap_over_colors_and_background(implementation, interpret):
  scene = random_scene(7, 10, WIDTH, HEIGHT)
  bins = bin_scene(scene)
  rng = np.random.default_rng(8)
  colors_b = jnp.asarray(rng.uniform(0, 1, (2, NUM_GAUSSIANS, 3)), jnp.float32)
  background_b = jnp.asarray(rng.uniform(0, 1, (2, 3)), jnp.float32)
  fn = op_fn(bins, implementation=implementation, interpret=interpret)
  means2d, conics, _, opacities, depths, _ = float_inputs(scene)
  one = lambda colors, background: fn(means2d, conics, colors, opacities, depths, background)
  batched = jax.vmap(one)(colors_b, background_b)
  for i in range(2):
    item = {**scene, "colors": np.asarray(colors_b[i]), "background": np.asarray(background_b[i])}
    expected = brute_force_render(item, WIDTH, HEIGHT)
    assert_images_close([o[i] for o in batched], expected, f"{implementation} vmap item {i}")


# ------------------------------------------------------------- reference only


def _stacked_scene(num, *, opacity, scale):
  """Many opaque Gaussians over the image centre: transmittance falls below 1e-4."""
  scene = random_scene(20, num, WIDTH, HEIGHT, scale=scale)
  scene["means2d"][:num] = np.random.default_rng(21).normal([WIDTH / 2, HEIGHT / 2], 2.0, (num, 2))
  scene["opacities"][:num] = opacity
  scene["radii"][:num] = 64
  return scene


def test_reference_stops_where_transmittance_runs_out_across_chunks():
  scene = _stacked_scene(30, opacity=0.8, scale=(4.0, 8.0))
  bins = bin_scene(scene)
  expected = brute_force_render(scene, WIDTH, HEIGHT)
  assert expected[1].max() > 1 - 2e-4  # Some pixels reach the stopping rule.
  args = raster_args(scene, bins) + (jnp.asarray(scene["background"]),)
  for chunk_elements in (256 * 7, 1 << 22):  # 7 intersections per chunk, and one chunk.
    rgb, alpha, depth_sum = gaussian_raster_reference(
        *args, width=WIDTH, height=HEIGHT, chunk_elements=chunk_elements
    )
    depth = depth_sum / jnp.maximum(alpha, 1e-10)
    assert_images_close((rgb, alpha, depth), expected, f"chunk_elements={chunk_elements}")


def test_gradients_are_finite_and_zero_behind_the_stopping_point():
  scene = _stacked_scene(30, opacity=0.95, scale=(30.0, 60.0))  # Wider than the image.
  grads = gradients(reference_fn(bin_scene(scene)), scene, lambda *outs: sum(jnp.sum(o) for o in outs))
  for name, grad in zip(FLOAT_INPUTS, grads):
    assert np.all(np.isfinite(np.asarray(grad))), name
  # d sum(rgb) / d colour = the Gaussian's total weight; hidden Gaussians get exactly 0.
  *_, weight_n = brute_force(scene, WIDTH, HEIGHT)
  hidden = weight_n[:30] == 0
  assert 0 < hidden.sum() < len(hidden)  # The stack must hide some Gaussians, not all.
  d_colors = np.asarray(grads[2])
  assert np.all(d_colors[:30][hidden] == 0)
  for channel in range(3):
    assert_close(d_colors[:, channel], weight_n, jnp.float32, f"d colour channel {channel}", atol_scale=10.0)


def test_reference_gradients_match_finite_differences():
  rng = np.random.default_rng(30)
  num = 4
  scale_x, scale_y = rng.uniform(8.0, 12.0, (2, num))
  conics, _, _ = _conics_and_extent(scale_x, scale_y, rng.uniform(-0.5, 0.5, num))
  scene = make_scene(
      num,
      means2d=rng.uniform([10.0, 8.0], [22.0, 16.0], (num, 2)),
      conics=conics,
      colors=rng.uniform(0, 1, (num, 3)),
      opacities=rng.uniform(0.4, 0.7, num),
      depths=[2.0, 4.0, 3.0, 5.0],
      radii=[40] * num,
      background=rng.uniform(0, 1, 3),
  )
  # Smoothness preconditions: every alpha strictly between the thresholds, T far from 1e-4.
  cols, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
  dx = scene["means2d"][:num, 0, None, None] - cols
  dy = scene["means2d"][:num, 1, None, None] - rows
  a, b, c = (scene["conics"][:num, i, None, None] for i in range(3))
  alphas = scene["opacities"][:num, None, None] * np.exp(-(0.5 * (a * dx**2 + c * dy**2) + b * dx * dy))
  assert alphas.min() > 2.0 / 255.0 and alphas.max() < 0.9 and np.prod(1 - alphas, axis=0).min() > 1e-3

  fn = op_fn(bin_scene(scene))
  shapes = ((HEIGHT, WIDTH, 3), (HEIGHT, WIDTH), (HEIGHT, WIDTH))
  weights = [jnp.asarray(rng.standard_normal(shape), jnp.float32) for shape in shapes]
  loss_of_outputs = lambda *outs: sum(jnp.sum(o * w) for o, w in zip(outs, weights))
  grads = gradients(fn, scene, loss_of_outputs)
  inputs = float_inputs(scene)
  steps = dict(means2d=1e-2, conics=2e-4, colors=1e-2, opacities=1e-2, depths=1e-2, background=1e-2)
  for index, name in enumerate(FLOAT_INPUTS):
    for _ in range(2):
      direction = np.zeros(scene[name].shape, np.float32)
      real = slice(None) if name == "background" else slice(0, num)
      direction[real] = rng.standard_normal(direction[real].shape)
      direction /= np.linalg.norm(direction)
      step = steps[name]

      def shifted_loss(sign):
        shifted = [x + sign * step * direction if i == index else x for i, x in enumerate(inputs)]
        return float(loss_of_outputs(*fn(*shifted)))

      finite_difference = (shifted_loss(1.0) - shifted_loss(-1.0)) / (2 * step)
      analytic = float(np.sum(np.asarray(grads[index]) * direction))
      assert abs(finite_difference - analytic) <= 1e-2 * max(1.0, abs(analytic)), (name, finite_difference, analytic)


# ----------------------------------------------------------------------- edge cases


def test_zero_opacity_gaussians_change_nothing():
  scene = random_scene(40, 16, WIDTH, HEIGHT)
  with_zeros = {k: v.copy() for k, v in scene.items()}
  with_zeros["opacities"][:16:2] = 0.0
  with_zeros["radii"][:16:2] = 9  # Still binned.
  without = {k: v.copy() for k, v in scene.items()}
  without["radii"][:16:2] = 0  # Culled instead.
  out_with_zeros = render(with_zeros, bin_scene(with_zeros))
  out_without = render(without, bin_scene(without))
  assert_images_close(out_with_zeros, [np.asarray(o) for o in out_without], "zero-opacity Gaussians")
  assert_images_close(out_with_zeros, brute_force_render(with_zeros, WIDTH, HEIGHT), "zero-opacity vs brute force")


def test_huge_gaussian_is_clamped_and_passes_no_gradient_through_the_clamp():
  scene = make_scene(
      1, means2d=[[10.0, 6.0]], conics=[[1e-6, 0.0, 1e-6]], colors=[[0.2, 0.5, 0.9]], opacities=[1.0],
      depths=[3.0], radii=[100000], background=[1.0, 0.0, 0.0],
  )
  bins = bin_scene(scene)
  rgb, alpha, depth = render(scene, bins)
  np.testing.assert_allclose(alpha, 0.99, rtol=1e-6)
  expected_rgb = 0.99 * scene["colors"][0] + (1 - np.float32(0.99)) * scene["background"]
  np.testing.assert_allclose(rgb, np.broadcast_to(expected_rgb, rgb.shape), rtol=1e-5)
  np.testing.assert_allclose(depth, 3.0, rtol=1e-5)
  grads = gradients(reference_fn(bins), scene, lambda rgb, alpha, depth: jnp.sum(rgb))
  d_means, d_conics, d_colors, d_opacities, _, d_background = map(np.asarray, grads)
  assert np.all(d_opacities == 0) and np.all(d_means == 0) and np.all(d_conics == 0)  # Clamped alpha.
  np.testing.assert_allclose(d_colors[0], 0.99 * WIDTH * HEIGHT, rtol=1e-5)
  np.testing.assert_allclose(d_background, 0.01 * WIDTH * HEIGHT, rtol=1e-4)


def test_tiny_gaussian_lights_one_pixel():
  scene = make_scene(
      1, means2d=[[4.5, 2.5]], conics=[[1e4, 0.0, 1e4]], colors=[[0.9, 0.1, 0.3]], opacities=[0.6],
      depths=[2.0], radii=[1], background=[0.2, 0.2, 0.2],
  )
  rgb, alpha, depth = map(np.asarray, render(scene, bin_scene(scene)))
  lit = np.zeros((HEIGHT, WIDTH), bool)
  lit[2, 4] = True
  np.testing.assert_allclose(alpha, np.where(lit, 0.6, 0.0), atol=1e-7)
  np.testing.assert_allclose(rgb[2, 4], 0.6 * scene["colors"][0] + 0.4 * 0.2, rtol=1e-6)
  np.testing.assert_allclose(rgb[~lit], 0.2, rtol=1e-7)
  assert depth[2, 4] == pytest.approx(2.0) and np.all(depth[~lit] == 0)


@pytest.mark.parametrize("case", ["all-culled", "no-gaussians", "no-slots"])
def test_nothing_to_draw_gives_background_and_finite_gradients(case):
  scene = random_scene(50, 0 if case == "no-gaussians" else 8, WIDTH, HEIGHT)
  if case == "all-culled":
    scene["radii"][:] = 0
  bins = bin_scene(scene)
  ids, ranges = bins.gaussian_ids, bins.tile_ranges
  if case == "no-slots":
    ids = jnp.zeros((0,), jnp.int32)
    ranges = jnp.zeros_like(ranges)
  cotangent = np.random.default_rng(51).standard_normal((HEIGHT, WIDTH, 3)).astype(np.float32)

  def fn(*x):
    return ops.gaussian_raster(*x[:5], ids, ranges, width=WIDTH, height=HEIGHT, background=x[5], implementation="xla")

  rgb, alpha, depth = fn(*float_inputs(scene))
  np.testing.assert_array_equal(rgb, np.broadcast_to(scene["background"], (HEIGHT, WIDTH, 3)))
  assert np.all(np.asarray(alpha) == 0) and np.all(np.asarray(depth) == 0)
  grads = gradients(fn, scene, lambda rgb, alpha, depth: jnp.sum(rgb * cotangent) + jnp.sum(alpha) + jnp.sum(depth))
  for name, grad in zip(FLOAT_INPUTS[:5], grads):
    assert np.all(np.asarray(grad) == 0), name
  np.testing.assert_allclose(grads[5], cotangent.sum(axis=(0, 1)), rtol=1e-5, atol=1e-4)  # A sum of 660 terms.


def test_slots_outside_every_range_are_ignored_whatever_they_hold():
  scene = random_scene(55, 10, WIDTH, HEIGHT)
  bins = bin_scene(scene)
  count = int(bins.num_intersections)
  junk_ids = bins.gaussian_ids.at[count:].set(jnp.int32(123456789))  # Padding slots, in no range.
  junk_bins = bins.replace(gaussian_ids=junk_ids)
  expected = render(scene, bins)
  assert_images_close(render(scene, junk_bins), [np.asarray(o) for o in expected], "junk padding ids")
  grads = gradients(op_fn(junk_bins), scene, lambda *outs: sum(jnp.sum(o) for o in outs))
  assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_background_shows_through_the_remaining_transmittance():
  scene = random_scene(60, 10, WIDTH, HEIGHT)
  bins = bin_scene(scene)
  black = render({**scene, "background": np.zeros(3, np.float32)}, bins)
  coloured = render(scene, bins)
  transmittance = 1.0 - np.asarray(coloured[1])
  assert transmittance.max() > 0.5 and transmittance.min() < 0.5  # Both covered and open pixels.
  np.testing.assert_allclose(
      np.asarray(coloured[0]) - np.asarray(black[0]), transmittance[..., None] * scene["background"], atol=1e-6
  )
  # Default background is black.
  default = ops.gaussian_raster(*raster_args(scene, bins), width=WIDTH, height=HEIGHT)
  assert_images_close(default, [np.asarray(o) for o in black], "background=None")


# ------------------------------------------------------------ validation, dispatch


def _valid_arguments():
  scene = random_scene(70, 5, WIDTH, HEIGHT)
  names = ("means2d_n2", "conics_n3", "colors_n3", "opacities_n", "depths_n", "gaussian_ids_k", "tile_ranges_t2")
  args = dict(zip(names, raster_args(scene, bin_scene(scene))))
  return args, dict(width=WIDTH, height=HEIGHT, tile_size=16, background=jnp.asarray(scene["background"]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, k: a.update(conics_n3=a["conics_n3"][:4]), r"conics_n3 of shape \(40, 3\)"),
        (lambda a, k: a.update(means2d_n2=a["means2d_n2"][:, :1]), r"means2d_n2 of shape"),
        (lambda a, k: a.update(colors_n3=a["colors_n3"].astype(jnp.bfloat16)), "colors_n3 of dtype float32"),
        (lambda a, k: a.update(gaussian_ids_k=a["gaussian_ids_k"].astype(jnp.float32)), "gaussian_ids_k of dtype"),
        (lambda a, k: a.update(tile_ranges_t2=a["tile_ranges_t2"][:1]), r"tile_ranges_t2 of shape \(4, 2\)"),
        (lambda a, k: k.update(background=jnp.zeros(4)), r"background of shape \(3,\)"),
        (lambda a, k: k.update(width=0), "width"),
        (lambda a, k: k.update(tile_size=-16), "tile_size"),
        (lambda a, k: a.update(means2d_n2=a["means2d_n2"].at[a["gaussian_ids_k"][0], 0].set(jnp.nan)), "not finite"),
        (lambda a, k: a.update(gaussian_ids_k=a["gaussian_ids_k"].at[0].set(99)), "outside"),
        (lambda a, k: a.update(tile_ranges_t2=a["tile_ranges_t2"][::-1]), "ascending"),
    ],
)
@pytest.mark.parametrize("implementation", ["xla", "pallas_triton"])
def test_bad_input_raises_before_any_implementation_runs(change, message, implementation):
  args, kwargs = _valid_arguments()
  change(args, kwargs)
  with pytest.raises(ValueError, match=message):
    ops.gaussian_raster(*args.values(), **kwargs, implementation=implementation, interpret=True)


def test_unbinned_non_finite_gaussians_are_allowed():
  # Culled Gaussians may carry anything; only binned ones must be finite.
  args, kwargs = _valid_arguments()
  for name in ("means2d_n2", "conics_n3", "colors_n3", "opacities_n", "depths_n"):
    args[name] = args[name].at[-1].set(jnp.nan)  # The last slot is padding: radius 0, never binned.
  rgb, _, _ = ops.gaussian_raster(*args.values(), **kwargs, implementation="xla")
  assert np.all(np.isfinite(np.asarray(rgb)))


def test_resolve_picks_xla_on_cpu_and_runs_nothing():
  args, kwargs = _valid_arguments()
  shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args.values()]
  assert ops.resolve_gaussian_raster(*shapes, width=WIDTH, height=HEIGHT) == "xla"
  assert ops.resolve_gaussian_raster(*args.values(), **kwargs, implementation=("pallas_triton", "xla")) == "xla"
  with pytest.raises(ops.NoImplementationError, match="pallas_triton"):
    ops.gaussian_raster(*args.values(), **kwargs, implementation="pallas_triton", interpret=False)
