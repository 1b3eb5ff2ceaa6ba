"""The 3DGS cameras.json: written here as the INRIA code writes it, read back into the right poses."""

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from jaxlab.view.errors import SourceError
from jaxlab.view.inria_cameras import read_inria_cameras


def _rotation(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _inria_entry(index, name, world_to_camera_44, width, height, fov_x, fov_y):
  """`utils/camera_utils.py:camera_to_JSON` of 3DGS, for a camera with these COLMAP extrinsics."""
  # 3DGS keeps R = (w2c rotation)^T and T = w2c translation; camera_to_JSON rebuilds Rt = w2c and inverts it.
  big_r, big_t = world_to_camera_44[:3, :3].T, world_to_camera_44[:3, 3]
  rt = np.zeros((4, 4))
  rt[:3, :3] = big_r.transpose()
  rt[:3, 3] = big_t
  rt[3, 3] = 1.0
  w2c = np.linalg.inv(rt)  # (3DGS's name; it is camera-to-world)
  fov2focal = lambda fov, pixels: pixels / (2 * math.tan(fov / 2))
  return {"id": index, "img_name": name, "width": width, "height": height, "position": w2c[:3, 3].tolist(),
          "rotation": [x.tolist() for x in w2c[:3, :3]], "fy": fov2focal(fov_y, height), "fx": fov2focal(fov_x, width)}


def _world_to_camera(rotation_33, translation_3):
  pose = np.eye(4)
  pose[:3, :3], pose[:3, 3] = rotation_33, translation_3
  return pose


def test_inria_cameras_json_reads_into_camera_to_world_poses(tmp_path):
  w2c_a = _world_to_camera(_rotation([0.2, 1.0, -0.3], 0.7), [0.5, -1.0, 4.0])
  w2c_b = _world_to_camera(_rotation([1.0, 0.0, 0.4], -2.1), [-2.0, 0.3, 1.5])
  entries = [_inria_entry(0, "DSC0001", w2c_a, 1297, 840, 1.1, 0.8), _inria_entry(1, "DSC0002", w2c_b, 640, 480, 0.9, 0.7)]
  path = tmp_path / "cameras.json"
  path.write_text(json.dumps(entries))
  presets = read_inria_cameras(path)
  assert [p.name for p in presets] == ["DSC0001", "DSC0002"]
  for preset, w2c, fov_y in zip(presets, (w2c_a, w2c_b), (0.8, 0.7)):
    assert_allclose(preset.camera_to_world_44, np.linalg.inv(w2c), atol=1e-12)
    # The camera centre is -R^T t, and a point on the optical axis maps to camera-space (0, 0, d).
    assert_allclose(preset.camera_to_world_44[:3, 3], -w2c[:3, :3].T @ w2c[:3, 3], atol=1e-12)
    on_axis = preset.camera_to_world_44 @ np.array([0.0, 0.0, 2.5, 1.0])
    assert_allclose((w2c @ on_axis)[:3], [0.0, 0.0, 2.5], atol=1e-12)
    assert preset.fov_y == pytest.approx(fov_y)


def _valid_entry():
  return {"id": 0, "img_name": "a", "width": 10, "height": 8, "position": [0, 0, 0],
          "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "fx": 9.0, "fy": 9.0}


@pytest.mark.parametrize("content,pattern", [
    ("{not json", "not valid UTF-8 JSON"),
    (json.dumps({"cameras": []}), "must hold a JSON list"),
    (json.dumps([_valid_entry(), 3]), r"entry 1 is not an object"),
    (json.dumps([_valid_entry(), {**_valid_entry(), "rotation": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]}]),
     r"entry 1: rotation .* is not a rotation matrix"),
    (json.dumps([{**_valid_entry(), "rotation": [[1, 0], [0, 1]]}]), r"entry 0: rotation must be 3 rows of 3"),
    (json.dumps([{**_valid_entry(), "position": [0, "x", 0]}]), r"entry 0: position must be 3 finite numbers"),
    (json.dumps([{k: v for k, v in _valid_entry().items() if k != "fy"}]), r"entry 0: fy must be a positive number"),
    (json.dumps([{**_valid_entry(), "width": 10.5}]), r"entry 0: width must be a positive integer"),
])
def test_bad_cameras_json_names_file_and_entry(tmp_path, content, pattern):
  path = tmp_path / "cameras.json"
  path.write_text(content)
  with pytest.raises(SourceError, match=pattern) as info:
    read_inria_cameras(path)
  assert str(path) in str(info.value)


def test_missing_cameras_json_names_the_file(tmp_path):
  with pytest.raises(SourceError, match="nowhere.json"):
    read_inria_cameras(tmp_path / "nowhere.json")
