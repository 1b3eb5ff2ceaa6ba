"""Bundle structure after a build, and the bundle file: round trip and refusals that name the fault."""

import dataclasses

import numpy as np
import pytest

from jaxlab.splat.lod import BUNDLE_VERSION, BundleError, check_bundle, load_bundle, save_bundle
from jaxlab.splat.lod.bundle import bundle_from_arrays


@pytest.mark.parametrize("which", ["blob_bundle", "donut_bundle"])
def test_each_level_holds_about_half_of_the_one_below(which, request):
  bundle, report = request.getfixturevalue(which)
  sizes = bundle.gaussians_per_level()
  assert len(sizes) >= 3 and report.gaussians_per_level == sizes
  for finer, coarser in zip(sizes, sizes[1:]):
    groups_bound = 8 * report.groups_per_level[sizes.index(coarser)]  # one extra per non-empty octant
    assert finer // 2 <= coarser <= finer // 2 + groups_bound
  assert report.clusters_per_level[-1] <= 2 < report.clusters_per_level[-2]


def test_sphere_metadata_links_the_levels(blob_bundle):
  bundle, _ = blob_bundle
  level = np.asarray(bundle.level)
  top = level.max()
  assert np.all(bundle.child_radius[level == 0] == -1)
  assert np.all(np.isposinf(bundle.parent_radius[level == top]))
  middle = (level > 0) & (level < top)
  assert np.all(bundle.parent_radius[middle] >= bundle.child_radius[middle])
  # Nested: each child sphere lies inside its parent sphere.
  gap = np.linalg.norm(bundle.parent_center[middle] - bundle.child_center[middle], axis=1) + bundle.child_radius[middle]
  assert np.all(bundle.parent_radius[middle] >= gap * (1 - 1e-6))
  # Each group's sphere bounds its finer Gaussians.
  for c in np.flatnonzero(level < top):
    rows = slice(int(bundle.start[c]), int(bundle.start[c] + bundle.count[c]))
    distance = np.linalg.norm(bundle.gaussians.means[rows] - bundle.parent_center[c], axis=1)
    assert distance.max() <= bundle.parent_radius[c] * (1 + 1e-6)


def test_bounding_spheres_hold_every_gaussian_to_three_sigma(blob_bundle):
  bundle, _ = blob_bundle
  means, scales = np.asarray(bundle.gaussians.means), np.exp(np.asarray(bundle.gaussians.log_scales)).max(axis=1)
  for c in range(bundle.num_clusters):
    rows = slice(int(bundle.start[c]), int(bundle.start[c] + bundle.count[c]))
    reach = np.linalg.norm(means[rows] - bundle.bound_center[c], axis=1) + 3 * scales[rows]
    assert reach.max() <= bundle.bound_radius[c]


def test_round_trip_keeps_every_array(blob_bundle, tmp_path):
  bundle, _ = blob_bundle
  save_bundle(tmp_path / "b.npz", bundle)
  loaded = load_bundle(tmp_path / "b.npz")
  for field in dataclasses.fields(bundle):
    if field.name == "gaussians":
      for name in ("means", "log_scales", "quats", "opacity_logits", "sh", "active"):
        np.testing.assert_array_equal(getattr(loaded.gaussians, name), getattr(bundle.gaussians, name))
    else:
      np.testing.assert_array_equal(getattr(loaded, field.name), getattr(bundle, field.name))


def test_damaged_file_is_named(blob_bundle, tmp_path):
  bundle, _ = blob_bundle
  path = tmp_path / "b.npz"
  save_bundle(path, bundle)
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(BundleError, match=str(path)):
    load_bundle(path)




def _rewrite(path, bundle, **changes):
  from jaxlab.splat.lod.bundle import _as_arrays
  arrays = {**_as_arrays(bundle), **changes}
  np.savez(path, **arrays)
  return path


def test_other_version_and_foreign_files_are_refused(blob_bundle, tmp_path):
  bundle, _ = blob_bundle
  with pytest.raises(BundleError, match=f"version {BUNDLE_VERSION + 1}"):
    load_bundle(_rewrite(tmp_path / "v.npz", bundle, version=np.asarray(BUNDLE_VERSION + 1)))
  with pytest.raises(BundleError, match="not a jaxlab LOD bundle"):
    load_bundle(_rewrite(tmp_path / "f.npz", bundle, format=np.asarray("something else")))


def test_inconsistent_metadata_is_refused_naming_the_rule(blob_bundle, tmp_path):
  bundle, _ = blob_bundle
  from jaxlab.splat.lod.bundle import _as_arrays
  arrays = _as_arrays(bundle)
  level = arrays["level"]
  cases = {
      "do not tile": {"count": arrays["count"] + np.eye(len(level), dtype=np.int32)[0]},
      "child_radius": {"child_radius": np.where(level == 0, 0.5, arrays["child_radius"]).astype(np.float32)},
      "parent_radius": {"parent_radius": np.where(level == level.max(), 1.0, arrays["parent_radius"]).astype(np.float32)},
      "not the child spheres": {"parent_center": (arrays["parent_center"] + (level == 0)[:, None] * 0.5).astype(np.float32)},
      "bound_radius": {"bound_radius": np.where(level == 0, -1.0, arrays["bound_radius"]).astype(np.float32)},
      "non-finite": {"means": np.where(np.arange(len(arrays["means"]))[:, None] == 3, np.nan, arrays["means"]).astype(np.float32)},
  }
  for message, change in cases.items():
    with pytest.raises(BundleError, match=message):
      check_bundle(bundle_from_arrays({**arrays, **change}))
    with pytest.raises(BundleError, match="bad.npz"):
      load_bundle(_rewrite(tmp_path / "bad.npz", bundle, **change))
