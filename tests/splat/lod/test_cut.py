"""The footprint cut: exactly one cluster on every path through the hierarchy, the ends of the
tau range, instance transforms, overflow, and one compile for every tau and camera."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Camera, look_at, render
from jaxlab.splat.lod import (
    SelectionOverflowError, compose_scene, gather_selected, make_instances, place_bundle, render_cut, select,
    transform_gaussians)
from numpy.testing import assert_allclose

WIDTH, HEIGHT = 32, 24


def _camera(eye, target=(0.0, 0.0, 0.0), focal=40.0, width=WIDTH, height=HEIGHT):
  pose = look_at(np.asarray(eye, np.float64), np.asarray(target, np.float64), up_3=np.array([0.0, 0.0, 1.0]))
  return Camera.from_opencv(pose, fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height)


def _random_instances(rng, num, num_assets=1, spread=6.0):
  quat = rng.normal(size=(num, 4))
  return make_instances(rng.integers(0, num_assets, num), rng.uniform(0.5, 2.0, num), quat,
                        rng.uniform(-spread, spread, (num, 3)))


def _paths_cross_once(bundle, selected_c) -> bool:
  """True iff every path LOD0 -> top (cluster, then a cluster made from its parent group, ...)
  holds exactly one selected cluster."""
  level = np.asarray(bundle.level)
  key = lambda centers, radii, c: tuple(np.asarray(centers[c]).tolist()) + (float(radii[c]),)
  made_from = {}
  for c in range(len(level)):
    made_from.setdefault(key(bundle.child_center, bundle.child_radius, c), []).append(c)
  counts = {}
  for c in sorted(range(len(level)), key=lambda c: -level[c]):  # coarsest first
    above = made_from.get(key(bundle.parent_center, bundle.parent_radius, c), []) if level[c] < level.max() else []
    upper = set().union(*(counts[a] for a in above)) if above else {0}
    counts[c] = {int(selected_c[c]) + n for n in upper}
  return all(counts[c] == {1} for c in np.flatnonzero(level == 0))


@pytest.mark.parametrize("which", ["blob_bundle", "donut_bundle"])
def test_every_path_crosses_the_cut_exactly_once(which, request):
  bundle, _ = request.getfixturevalue(which)
  rng = np.random.default_rng(0)
  scene = compose_scene([bundle], _random_instances(rng, 3))
  select_jit = jax.jit(select)
  levels_seen = set()
  for trial in range(24):
    direction = rng.normal(size=3)
    eye = 60.0 * rng.uniform(1.0, 3.0) * direction / np.linalg.norm(direction)
    camera = _camera(eye, target=rng.uniform(-4, 4, 3))
    tau = float(np.exp(rng.uniform(math.log(1e-2), math.log(1e3))))
    selection = select_jit(scene, camera, tau)
    selected = np.asarray(selection.on_cut)
    assert int(selection.num_gaussians) <= scene.full_detail_size()
    row_instance, row_cluster = np.asarray(scene.row_instance), np.asarray(scene.row_cluster)
    for i in range(3):
      per_cluster = np.zeros(bundle.num_clusters, bool)
      per_cluster[row_cluster[row_instance == i]] = selected[row_instance == i]
      assert _paths_cross_once(bundle, per_cluster), f"trial {trial}, instance {i}, tau {tau}"
      levels_seen |= set(np.asarray(bundle.level)[per_cluster].tolist())
  assert len(levels_seen) >= 3  # the cameras and taus exercise mid-hierarchy cuts, not only the ends


def test_path_check_catches_a_hole_and_a_double(blob_bundle):
  bundle, _ = blob_bundle
  lod0 = np.asarray(bundle.level) == 0
  assert _paths_cross_once(bundle, lod0)
  hole = lod0.copy()
  hole[np.flatnonzero(lod0)[0]] = False
  assert not _paths_cross_once(bundle, hole)
  double = lod0 | (np.asarray(bundle.level) == 1)
  assert not _paths_cross_once(bundle, double)


def test_tau_zero_selects_lod0_and_draws_what_the_asset_draws(donut_bundle):
  bundle, _ = donut_bundle
  instances = make_instances([0, 0], [1.0, 0.7], [[1, 0, 0, 0], [0.9, 0.1, 0.3, 0.2]], [[0, 0, 0], [2.5, 0.5, 0.3]])
  scene = compose_scene([bundle], instances)
  camera = _camera((1.0, -7.0, 4.0), target=(1.2, 0.2, 0.0))
  level0 = np.asarray(bundle.level)[np.asarray(scene.row_cluster)] == 0
  np.testing.assert_array_equal(np.asarray(select(scene, camera, 0.0).on_cut), level0)
  asset = bundle.level_gaussians(0)
  placed = [transform_gaussians(jax.tree.map(jnp.asarray, asset), instances.scale[i], instances.quat[i], instances.translation[i])
            for i in range(2)]
  direct_scene = jax.tree.map(lambda *xs: jnp.concatenate(xs), *placed)
  direct = render(direct_scene, camera, capacity=16384)
  cut = render_cut(scene, camera, 0.0, gaussian_capacity=scene.full_detail_size(), intersection_capacity=16384)
  assert int(cut.selection.num_gaussians) == scene.full_detail_size() == 2 * asset.num
  assert not bool(cut.overflow) and float(direct.alpha.mean()) > 0.05
  assert_allclose(cut.image.rgb, direct.rgb, atol=1e-5, rtol=0)
  assert_allclose(cut.image.alpha, direct.alpha, atol=1e-5, rtol=0)


def test_a_large_tau_selects_only_the_top_level(blob_bundle):
  bundle, _ = blob_bundle
  scene = compose_scene([bundle], _random_instances(np.random.default_rng(1), 4))
  selected = np.asarray(select(scene, _camera((0.0, -30.0, 5.0)), 1e12).on_cut)
  top = np.asarray(bundle.level)[np.asarray(scene.row_cluster)] == np.asarray(bundle.level).max()
  np.testing.assert_array_equal(selected, top)


def test_placing_instances_commutes_with_placing_the_bundle_first(blob_bundle):
  """Selecting from the asset-space bundle with an instance transform equals selecting from
  a bundle moved into the world beforehand (V3DG's way) with the identity instance."""
  bundle, _ = blob_bundle
  scale, quat, translation = 1.7, np.array([0.3, -0.5, 0.7, 0.4]), np.array([3.0, -2.0, 1.0])
  lazy = compose_scene([bundle], make_instances([0], [scale], [quat], [translation]))
  eager = compose_scene([place_bundle(bundle, scale, quat, translation)], make_instances([0], [1.0], [[1, 0, 0, 0]], [[0, 0, 0]]))
  camera = _camera((5.0, -40.0, 12.0), target=(3.0, -2.0, 1.0))
  for tau in (0.5, 5.0, 50.0):
    lazy_sel, eager_sel = select(lazy, camera, tau), select(eager, camera, tau)
    assert_allclose(lazy_sel.child_footprint, eager_sel.child_footprint, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(lazy_sel.selected), np.asarray(eager_sel.selected))
    lazy_g, _ = gather_selected(lazy, lazy_sel, 600)
    eager_g, _ = gather_selected(eager, eager_sel, 600)
    for name in ("means", "log_scales", "opacity_logits", "sh", "active"):
      assert_allclose(getattr(lazy_g, name), getattr(eager_g, name), atol=1e-4, rtol=1e-5)
    # A quaternion and its negative are one rotation.
    dots = np.abs(np.sum(np.asarray(lazy_g.rotations()) * np.asarray(eager_g.rotations()), axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)


def test_overflow_is_reported_never_dropped_silently(blob_bundle):
  bundle, _ = blob_bundle
  scene = compose_scene([bundle], make_instances([0], [1.0], [[1, 0, 0, 0]], [[0, 0, 0]]))
  camera = _camera((0.0, -20.0, 3.0))
  with pytest.raises(Exception, match="LOD cut overflow: 600 Gaussians selected but gaussian_capacity=100"):
    jax.block_until_ready(render_cut(scene, camera, 0.0, gaussian_capacity=100, intersection_capacity=2048))
  out = render_cut(scene, camera, 0.0, gaussian_capacity=100, intersection_capacity=2048, on_overflow="ignore")
  assert bool(out.overflow) and int(out.selection.num_gaussians) == 600
  assert int(jnp.sum(out.image.radii > 0)) <= 100


def test_changing_tau_and_camera_does_not_recompile(blob_bundle):
  bundle, _ = blob_bundle
  scene = compose_scene([bundle], _random_instances(np.random.default_rng(2), 2))
  kwargs = dict(gaussian_capacity=scene.full_detail_size(), intersection_capacity=4096)
  before = render_cut._cache_size()
  counts = set()
  for tau, eye in ((0.0, (0, -25, 5)), (3.0, (4, -30, 2)), (40.0, (-9, -50, 8)), (1e9, (0, -25, 5))):
    out = render_cut(scene, _camera(eye), tau, **kwargs)
    counts.add(int(out.selection.num_gaussians))
  assert render_cut._cache_size() == before + 1
  assert len(counts) >= 3


def test_culling_skips_clusters_out_of_view_and_keeps_the_image(donut_bundle):
  bundle, _ = donut_bundle
  rng = np.random.default_rng(5)
  translation = np.concatenate([rng.uniform(-12, 12, (12, 2)), np.zeros((12, 1))], axis=1)
  scene = compose_scene([bundle], make_instances(np.zeros(12, int), np.ones(12), np.tile([1.0, 0, 0, 0], (12, 1)), translation))
  camera = _camera((0.0, -16.0, 3.0), target=(0.0, 0.0, 0.0))
  culled = select(scene, camera, 20.0)
  kept = select(scene, camera, 20.0, cull=False)
  assert int(culled.num_gaussians) < int(kept.num_gaussians)
  np.testing.assert_array_equal(np.asarray(culled.on_cut), np.asarray(kept.on_cut))
  kwargs = dict(gaussian_capacity=scene.full_detail_size(), intersection_capacity=1 << 15)
  with_cull = render_cut(scene, camera, 20.0, **kwargs)
  without = render_cut(scene, camera, 20.0, cull=False, **kwargs)
  assert float(without.image.alpha.mean()) > 0.05
  # Only Gaussians the rasterizer would cull are skipped: same image, same Gaussians drawn.
  assert int(jnp.sum(with_cull.image.radii > 0)) == int(jnp.sum(without.image.radii > 0))
  assert_allclose(with_cull.image.rgb, without.image.rgb, atol=1e-5, rtol=0)
