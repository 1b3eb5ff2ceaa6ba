"""Densification invariants with hand-set statistics: exact clone / split / prune counts,
slot placement, untouched rows bit-identical, moments reset, capacity exhaustion; the
view-space gradient statistics; opacity reset; the SH-degree schedule."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Camera, Gaussians, look_at, random_gaussians, render, rotation_matrices
from jaxlab.splat.fit import (
    TRAINABLE_FIELDS,
    DensifyStats,
    FitSettings,
    accumulate_stats,
    densify_and_prune,
    make_optimizer,
    reset_opacity,
    sh_band_mask,
    sh_degree_for_iteration,
    trainable_params,
)

EXTENT = 3.0  # small: max scale <= 0.03; oversized: max scale > 0.3
SETTINGS = FitSettings()
FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")
SMALL, LARGE = math.log(0.01), math.log(0.2)


def _logit(p):
  return math.log(p / (1 - p))


@functools.partial(jax.jit, static_argnames=("settings",))
def _densify(gaussians, opt_state, stats, rng, prune_oversized, settings=SETTINGS):
  return densify_and_prune(gaussians, opt_state, stats, rng, settings=settings, scene_extent=EXTENT, prune_oversized=prune_oversized)


def _moments(opt_state, name):
  adam = opt_state.inner_states[name].inner_state[0]
  return np.asarray(adam.mu[name]), np.asarray(adam.nu[name])


def _busy_opt_state(gaussians):
  """An optimizer state whose every moment entry is non-zero."""
  state = make_optimizer(SETTINGS, EXTENT).init(trainable_params(gaussians))
  rng = np.random.default_rng(0)
  busy = lambda x: jnp.asarray(rng.uniform(0.1, 1.0, x.shape).astype(np.float32)) if np.ndim(x) else x
  return jax.tree.map(busy, state)


def _numpy_gaussians(num, *, sh_coeffs=4, seed=0, scale=0.1):
  rng = np.random.default_rng(seed)
  quats = rng.standard_normal((num, 4)).astype(np.float32)
  return Gaussians(
      means=jnp.asarray(rng.standard_normal((num, 3)).astype(np.float32)),
      log_scales=jnp.full((num, 3), math.log(scale), jnp.float32),
      quats=jnp.asarray(quats / np.linalg.norm(quats, axis=1, keepdims=True)),
      opacity_logits=jnp.zeros((num,), jnp.float32),
      sh=jnp.asarray(rng.standard_normal((num, sh_coeffs, 3)).astype(np.float32)),
      active=jnp.ones((num,), bool),
  )


def _scene(num_active=5, num=12):
  """Slots 0..4: 0 small and hot (clone), 1 large and hot (split), 2 cold, 3 nearly
  transparent (prune), 4 small with a mean gradient exactly at the threshold (clone).
  Slots 5.. up to `num_active` are cold fillers; inactive slots hold conspicuous values
  that must survive untouched."""
  g = _numpy_gaussians(num)
  log_scales = np.full((num, 3), SMALL, np.float32)
  log_scales[1] = [LARGE, SMALL, SMALL]
  log_scales[num_active:] = -1.234
  opacity = np.zeros(num, np.float32)
  opacity[3] = _logit(0.001)
  opacity[num_active:] = 4.321
  active = np.arange(num) < num_active
  g = g.replace(log_scales=jnp.asarray(log_scales), opacity_logits=jnp.asarray(opacity), active=jnp.asarray(active))
  grad_count = np.where(active, 2, 0).astype(np.int32)
  grad_accum = np.zeros(num, np.float32)
  grad_accum[:5] = [6e-4, 1e-3, 2e-4, 1e-4, 4e-4]
  max_radii = np.full(num, 3.0, np.float32)
  stats = DensifyStats(grad_accum=jnp.asarray(grad_accum), grad_count=jnp.asarray(grad_count), max_radii=jnp.asarray(max_radii))
  return g, stats


def _assert_rows_equal(a: Gaussians, b: Gaussians, rows):
  for name in FIELDS + ("active",):
    np.testing.assert_array_equal(np.asarray(getattr(a, name))[rows], np.asarray(getattr(b, name))[rows], err_msg=name)


def test_clone_split_prune_counts_and_placement():
  g, stats = _scene()
  opt_state = _busy_opt_state(g)
  out, new_opt, new_stats, report = _densify(g, opt_state, stats, jax.random.key(1), False)
  assert (int(report.num_cloned), int(report.num_split), int(report.num_pruned), int(report.capacity_exhausted)) == (2, 1, 1, 0)
  # Requests in slot order (0 clone, 1 split, 4 clone) take the free slots in order (5, 6, 7).
  np.testing.assert_array_equal(np.asarray(out.active), [1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0])
  assert int(out.num_active()) == 5 + 3 - 1
  # Clones are exact copies; clone originals and the cold Gaussian are untouched.
  for original, copy in ((0, 5), (4, 7)):
    for name in FIELDS:
      np.testing.assert_array_equal(np.asarray(getattr(out, name))[copy], np.asarray(getattr(g, name))[original])
  _assert_rows_equal(out, g, [0, 2, 4])
  # The pruned slot keeps its values, only `active` drops; never-used slots are untouched.
  _assert_rows_equal(out.replace(active=g.active), g, [3])
  _assert_rows_equal(out, g, list(range(8, 12)))
  # Split: both children (slot 1 in place and slot 6) have scale / 1.6, and the parent's
  # rotation, opacity and colour; their means are new samples.
  for child in (1, 6):
    np.testing.assert_allclose(np.exp(np.asarray(out.log_scales[child])), np.exp(np.asarray(g.log_scales[1])) / 1.6, rtol=1e-6)
    for name in ("quats", "opacity_logits", "sh"):
      np.testing.assert_array_equal(np.asarray(getattr(out, name))[child], np.asarray(getattr(g, name))[1])
  assert not np.allclose(out.means[1], g.means[1]) and not np.allclose(out.means[6], out.means[1])
  # Moments: zero for rewritten and pruned rows, untouched elsewhere.
  zeroed = np.isin(np.arange(12), [1, 3, 5, 6, 7])
  for name in TRAINABLE_FIELDS:
    for got, before in zip(_moments(new_opt, name), _moments(opt_state, name)):
      np.testing.assert_array_equal(got[zeroed], 0, err_msg=name)
      np.testing.assert_array_equal(got[~zeroed], before[~zeroed], err_msg=name)
  # Statistics restart.
  for leaf in jax.tree.leaves(new_stats):
    assert not np.any(np.asarray(leaf))


def test_capacity_exhaustion_drops_and_counts():
  g, stats = _scene(num_active=11)  # one free slot (11) for three requests
  out, _, _, report = _densify(g, _busy_opt_state(g), stats, jax.random.key(1), False)
  assert int(report.capacity_exhausted) == 2
  assert (int(report.num_cloned), int(report.num_split)) == (1, 0)
  np.testing.assert_array_equal(np.asarray(out.active), [1, 1, 1, 0] + [1] * 8)
  for name in FIELDS:
    np.testing.assert_array_equal(np.asarray(getattr(out, name))[11], np.asarray(getattr(g, name))[0])
  # The split that found no slot for its second child leaves the parent whole.
  _assert_rows_equal(out, g, [0, 1, 2, 4, *range(5, 11)])


def test_oversized_pruned_only_after_first_reset():
  g, stats = _scene()
  # Slot 2 drawn 25 px wide (> 20), slot 4 too large in the world (0.5 > 0.1 * extent).
  # Slot 4 made cold too, so it is not split (its children would be oversized as well).
  stats = stats.replace(max_radii=stats.max_radii.at[2].set(25.0), grad_accum=stats.grad_accum.at[4].set(0.0))
  g = g.replace(log_scales=g.log_scales.at[4].set(math.log(0.5)))
  opt_state = _busy_opt_state(g)
  before, _, _, report_before = _densify(g, opt_state, stats, jax.random.key(1), False)
  after, _, _, report_after = _densify(g, opt_state, stats, jax.random.key(1), True)
  assert bool(before.active[2]) and bool(before.active[4])
  assert not bool(after.active[2]) and not bool(after.active[4])
  assert int(report_after.num_pruned) == int(report_before.num_pruned) + 2


def test_split_children_are_samples_of_the_parent():
  """Children offsets, in the parent's frame and units of its scales, are N(0, I) draws."""
  num, half = 12, 6
  g = _numpy_gaussians(num, seed=2, scale=0.2)  # all "large" (> 0.03): every active one splits
  g = g.replace(
      log_scales=g.log_scales * jnp.asarray([1.0, 0.5, 2.0]),  # anisotropic, so the rotation matters
      active=jnp.arange(num) < half)
  stats = DensifyStats(grad_accum=jnp.ones(num), grad_count=jnp.ones(num, jnp.int32), max_radii=jnp.zeros(num))
  opt_state = _busy_opt_state(g)
  rotations = np.asarray(rotation_matrices(g.quats[:half]))
  scales = np.exp(np.asarray(g.log_scales[:half]))
  local = []
  for seed in range(100):  # same shapes as the other tests: no new compilation
    out, _, _, report = _densify(g, opt_state, stats, jax.random.key(seed), False)
    assert int(report.num_split) == half and int(out.num_active()) == num
    for children in (slice(0, half), slice(half, num)):  # in place, and in the free slots (same order)
      offsets = np.asarray(out.means[children]) - np.asarray(g.means[:half])
      local.append(np.einsum("nji,nj->ni", rotations, offsets) / scales)  # R^T offset / scale
  local = np.concatenate(local)
  assert np.all(np.abs(local.mean(axis=0)) < 0.1), local.mean(axis=0)
  np.testing.assert_allclose(local.std(axis=0), 1.0, atol=0.08)


def test_accumulate_stats_in_ndc_units_per_view():
  width, height = 32, 16
  grads_bn2 = jnp.asarray([[[1e-3, 0.0], [0.0, 2e-3], [5.0, 5.0]], [[3e-4, 4e-4], [1e-3, 1e-3], [0.0, 0.0]]])
  radii_bn = jnp.asarray([[2, 4, 0], [7, 0, 0]], jnp.int32)
  stats = accumulate_stats(DensifyStats.zeros(3), grads_bn2, radii_bn, width=width, height=height)
  stats = accumulate_stats(stats, grads_bn2, radii_bn, width=width, height=height)
  # Per-view gradient = B x batch-mean gradient; NDC = pixels x (W/2, H/2).
  ndc = np.asarray(grads_bn2) * np.array([width / 2, height / 2]) * 2
  norms = np.linalg.norm(ndc, axis=-1)
  want_accum = 2 * np.array([norms[0, 0] + norms[1, 0], norms[0, 1], 0.0])
  np.testing.assert_allclose(stats.grad_accum, want_accum, rtol=1e-6)
  np.testing.assert_array_equal(stats.grad_count, [4, 2, 0])
  np.testing.assert_array_equal(stats.max_radii, [7, 4, 0])
  np.testing.assert_allclose(stats.mean_grad(), [want_accum[0] / 4, want_accum[1] / 2, 0.0], rtol=1e-6)


def test_means2d_offset_gradient_matches_finite_differences():
  """`render(..., means2d_offset=)` exposes d loss / d means2d, the quantity densification uses."""
  width = height = 16
  c2w = look_at(jnp.asarray([0.0, 0.0, -4.0]), jnp.zeros(3), up_3=jnp.asarray([0.0, -1.0, 0.0]))
  camera = Camera.from_fov(c2w, fov_x_radians=math.radians(50.0), width=width, height=height)
  g = random_gaussians(jax.random.key(4), 20, sh_degree=0, mean_center=(0.0, 0.0, 0.0), mean_std=0.5, log_scale_mean=-1.5)
  weights = jax.random.uniform(jax.random.key(5), (height, width, 3))

  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda offset_n2: jnp.sum(render(g, camera, capacity=128, means2d_offset=offset_n2).rgb * weights)))
  loss = lambda offset_n2: loss_and_grad(offset_n2)[0]
  zero = jnp.zeros((g.num, 2))
  grad = np.asarray(loss_and_grad(zero)[1])
  assert np.abs(grad).max() > 0
  for index in np.argsort(-np.abs(grad).ravel())[:4]:
    i, axis = divmod(int(index), 2)
    step = 0.1  # pixels: smaller steps meet the alpha cut-offs and float32 rounding
    bump = zero.at[i, axis].set(step)
    numeric = (float(loss(bump)) - float(loss(-bump))) / (2 * step)
    assert numeric == pytest.approx(grad[i, axis], rel=0.05, abs=1e-3)


def test_reset_opacity_caps_active_and_zeroes_opacity_moments():
  g = _numpy_gaussians(5)
  logits = jnp.asarray([-6.0, _logit(0.01), 0.0, 3.0, 5.0], jnp.float32)
  g = g.replace(opacity_logits=logits, active=jnp.asarray([True, True, True, True, False]))
  opt_state = _busy_opt_state(g)
  out, new_opt = jax.jit(functools.partial(reset_opacity, value=0.01))(g, opt_state)
  np.testing.assert_allclose(out.opacities()[:4], [float(jax.nn.sigmoid(-6.0)), 0.01, 0.01, 0.01], rtol=1e-5)
  assert float(out.opacity_logits[4]) == 5.0  # inactive slot untouched
  for name in TRAINABLE_FIELDS:
    for got, before in zip(_moments(new_opt, name), _moments(opt_state, name)):
      np.testing.assert_array_equal(got, 0 if name == "opacity_logits" else before, err_msg=name)


def test_sh_degree_schedule_and_band_mask():
  degrees = [int(sh_degree_for_iteration(i, every=1000, max_degree=3)) for i in (1, 999, 1000, 1999, 2000, 3000, 9000)]
  assert degrees == [0, 0, 1, 1, 2, 3, 3]
  assert int(sh_degree_for_iteration(5000, every=1000, max_degree=1)) == 1
  np.testing.assert_array_equal(sh_band_mask(jnp.int32(0), 16), [1] + [0] * 15)
  np.testing.assert_array_equal(sh_band_mask(jnp.int32(1), 16), [1] * 4 + [0] * 12)
  np.testing.assert_array_equal(sh_band_mask(jnp.int32(2), 16), [1] * 9 + [0] * 7)
  np.testing.assert_array_equal(sh_band_mask(jnp.int32(3), 9), [1] * 9)
