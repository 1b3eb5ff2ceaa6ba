"""Composing a scene: row tables, sizes, and refusals that name the asset or instance."""

import jax
import numpy as np
import pytest

from jaxlab.splat.lod import BundleError, compose_scene, make_instances


def test_rows_list_every_cluster_of_every_instance(blob_bundle, donut_bundle):
  blob, donut = blob_bundle[0], donut_bundle[0]
  instances = make_instances([1, 0, 1], [1.0, 2.0, 0.5], np.tile([1.0, 0, 0, 0], (3, 1)), np.zeros((3, 3)))
  scene = compose_scene([blob, donut], instances, names=["blob", "donut"])
  assert scene.num_rows == 2 * donut.num_clusters + blob.num_clusters
  np.testing.assert_array_equal(np.bincount(scene.row_instance), [donut.num_clusters, blob.num_clusters, donut.num_clusters])
  # Instance 1 (the blob) reads the blob's clusters, which come first in the library.
  np.testing.assert_array_equal(scene.row_cluster[scene.row_instance == 1], np.arange(blob.num_clusters))
  np.testing.assert_array_equal(scene.row_cluster[scene.row_instance == 0], blob.num_clusters + np.arange(donut.num_clusters))
  np.testing.assert_array_equal(scene.start[blob.num_clusters:], donut.start + blob.gaussians.num)
  assert scene.full_detail_size() == 2 * donut.gaussians_per_level()[0] + blob.gaussians_per_level()[0]


@pytest.mark.parametrize("field,value,message", [
    ("scale", [1.0, 0.0], "instance 1 \\(asset 'blob'\\) has scale 0"),
    ("scale", [1.0, np.nan], "instance 1 \\(asset 'blob'\\) has scale nan"),
    ("quat", [[1, 0, 0, 0], [0, 0, 0, 0]], "instance 1 .* quaternion .* non-zero"),
    ("asset", [0, 3], "instance 1 names asset 3, but there are 1 asset"),
])
def test_bad_instances_are_named(blob_bundle, field, value, message):
  fields = dict(asset=[0, 0], scale=[1.0, 1.0], quat=[[1, 0, 0, 0], [1, 0, 0, 0]], translation=np.zeros((2, 3)))
  fields[field] = value
  instances = make_instances(**fields)
  if field == "quat":  # make_instances keeps a zero quaternion zero, so the check sees it
    instances = instances.replace(quat=np.asarray(value, np.float32))
  with pytest.raises(ValueError, match=message):
    compose_scene([blob_bundle[0]], instances, names=["blob"])


def test_an_empty_asset_is_refused_by_name(blob_bundle):
  bundle = blob_bundle[0]
  empty = bundle.replace(gaussians=jax.tree.map(lambda x: np.asarray(x)[:0], bundle.gaussians))
  instances = make_instances([0, 1], [1.0, 1.0], [[1, 0, 0, 0]] * 2, np.zeros((2, 3)))
  with pytest.raises(BundleError, match="asset 'hollow': the bundle holds no Gaussians"):
    compose_scene([bundle, empty], instances, names=["blob", "hollow"])
