"""Layout files: a round trip, V3DG's key names, and refusals that name the asset and instance."""

import json

import numpy as np
import pytest

from jaxlab.splat.lod import LayoutError, compose_scene, donut_sea_instances, read_layout, save_bundle, write_layout


@pytest.fixture
def bundle_file(blob_bundle, tmp_path):
  path = tmp_path / "bundles" / "blob.npz"
  path.parent.mkdir()
  save_bundle(path, blob_bundle[0])
  return path


def _write(tmp_path, assets):
  path = tmp_path / "layout.json"
  path.write_text(json.dumps(assets))
  return path


def test_round_trip_and_compose(bundle_file, tmp_path):
  instances = donut_sea_instances(10, seed=2)
  write_layout(tmp_path / "layout.json", ["blob"], [str(bundle_file)], instances)
  layout = read_layout(tmp_path / "layout.json")
  assert layout.names == ["blob"] and layout.bundle_paths == [str(bundle_file)]
  for name in ("asset", "scale", "quat", "translation"):
    np.testing.assert_allclose(getattr(layout.instances, name), getattr(instances, name), rtol=1e-6)
  scene = compose_scene(layout.load_bundles(), layout.instances, names=layout.names)
  assert scene.num_rows == 10 * layout.load_bundles()[0].num_clusters


def test_v3dg_key_names_and_a_bare_list_are_read(bundle_file, tmp_path):
  path = _write(tmp_path, [{"name": "blob", "bundle": "bundles/blob.npz",
                            "instances": [{"scale": 2, "quaternions": [0, 0, 0, 2], "positions": [1, 2, 3]}]}])
  layout = read_layout(path)
  np.testing.assert_allclose(layout.instances.quat[0], [0, 0, 0, 1])
  np.testing.assert_allclose(layout.instances.translation[0], [1, 2, 3])


@pytest.mark.parametrize("instance,message", [
    ({"scale": 0, "quaternion": [1, 0, 0, 0], "translation": [0, 0, 0]}, "asset 'blob', instance 1: scale 0"),
    ({"scale": -2, "quaternion": [1, 0, 0, 0], "translation": [0, 0, 0]}, "instance 1: scale -2"),
    ({"scale": 1, "quaternion": [0, 0, 0, 0], "translation": [0, 0, 0]}, "instance 1: quaternion .* non-zero"),
    ({"scale": 1, "quaternion": [1, float("nan"), 0, 0], "translation": [0, 0, 0]}, "instance 1: quaternion .* finite"),
    ({"scale": 1, "quaternion": [1, 0, 0], "translation": [0, 0, 0]}, "instance 1: quaternion must be 4 numbers"),
    ({"scale": 1, "quaternion": [1, 0, 0, 0], "translation": [0, float("inf"), 0]}, "instance 1: translation"),
])
def test_bad_instances_are_named(bundle_file, tmp_path, instance, message):
  good = {"scale": 1, "quaternion": [1, 0, 0, 0], "translation": [0, 0, 0]}
  path = _write(tmp_path, {"assets": [{"name": "blob", "bundle": "bundles/blob.npz", "instances": [good, instance]}]})
  with pytest.raises(LayoutError, match=message):
    read_layout(path)


def test_missing_and_empty_assets_are_named(bundle_file, tmp_path):
  one = [{"scale": 1, "quaternion": [1, 0, 0, 0], "translation": [0, 0, 0]}]
  with pytest.raises(LayoutError, match="asset 'tree': bundle file .*tree.npz does not exist"):
    read_layout(_write(tmp_path, {"assets": [{"name": "tree", "bundle": "bundles/tree.npz", "instances": one}]}))
  with pytest.raises(LayoutError, match="asset 'blob': has no instances"):
    read_layout(_write(tmp_path, {"assets": [{"name": "blob", "bundle": "bundles/blob.npz", "instances": []}]}))
  with pytest.raises(LayoutError, match="non-empty list of assets"):
    read_layout(_write(tmp_path, {"assets": []}))
  (tmp_path / "bundles" / "empty.npz").write_bytes(b"")
  layout = read_layout(_write(tmp_path, {"assets": [{"name": "empty", "bundle": "bundles/empty.npz", "instances": one}]}))
  with pytest.raises(ValueError, match="empty.npz"):
    layout.load_bundles()
