"""Camera presets: from dataset cameras (exact pose and field of view), orbits that look at the centre,
and robust bounds of a point cloud."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from jaxlab.splat import Camera, look_at, stack_cameras
from jaxlab.view.presets import CameraPreset, orbit_presets, presets_around, presets_from_cameras

WIDTH, HEIGHT = 40, 30


def _camera(eye, fx, fy):
  pose_44 = np.asarray(look_at(np.asarray(eye, np.float64), np.zeros(3), up_3=np.array([0.0, 0.0, 1.0])), np.float64)
  return pose_44, Camera.from_opencv(pose_44, fx=fx, fy=fy, cx=WIDTH / 2, cy=HEIGHT / 2, width=WIDTH, height=HEIGHT)


def _assert_rigid(pose_44):
  rotation = pose_44[:3, :3]
  assert_allclose(rotation.T @ rotation, np.eye(3), atol=2e-6)
  assert np.linalg.det(rotation) == pytest.approx(1.0)
  assert_allclose(pose_44[3], [0.0, 0.0, 0.0, 1.0])


def test_presets_from_cameras_invert_the_extrinsics_and_keep_fov_and_names():
  eyes = [(3.0, 0.5, 1.0), (-2.0, 2.0, 0.5), (0.3, -4.0, 2.0)]
  focals = [(30.0, 36.0), (50.0, 45.0), (20.0, 20.0)]
  poses, cameras = zip(*(_camera(eye, fx, fy) for eye, (fx, fy) in zip(eyes, focals)))
  names = ["test/r_0.png", "train/r_1.png", "train/r_2.png"]
  presets = presets_from_cameras(stack_cameras(cameras), names)
  assert [p.name for p in presets] == names
  for preset, pose_44, camera, (_, fy) in zip(presets, poses, cameras, focals):
    assert preset.camera_to_world_44.dtype == np.float64
    assert_allclose(preset.camera_to_world_44, np.linalg.inv(np.asarray(camera.world_to_camera, np.float64)), atol=2e-6)
    assert_allclose(preset.camera_to_world_44, pose_44, atol=1e-5)  # the pose the camera was made from
    assert preset.fov_y == pytest.approx(2.0 * math.atan(HEIGHT / (2.0 * fy)))
  # A single (unbatched) camera works too; a name count that does not match is refused.
  assert len(presets_from_cameras(cameras[0], ["one"])) == 1
  with pytest.raises(ValueError, match="3 cameras but 2 names"):
    presets_from_cameras(stack_cameras(cameras), names[:2])


@pytest.mark.parametrize("up", [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.3, -0.2, 0.9)])
def test_orbit_presets_look_at_the_centre_from_the_radius(up):
  center, radius = np.array([1.0, -2.0, 0.5]), 3.0
  up_unit = np.asarray(up) / np.linalg.norm(up)
  presets = orbit_presets(center, radius, up_3=up, fov_y=math.radians(40.0))
  assert [p.name for p in presets] == ["front", "right", "back", "left", "top"]
  for preset in presets:
    pose_44 = preset.camera_to_world_44
    _assert_rigid(pose_44)
    eye, forward = pose_44[:3, 3], pose_44[:3, 2]
    assert np.linalg.norm(eye - center) == pytest.approx(radius, abs=1e-5)  # float32 poses (jaxlab.splat.look_at)
    assert_allclose(forward, (center - eye) / radius, atol=2e-6)  # +z points at the centre
    assert preset.fov_y == pytest.approx(math.radians(40.0))
  by_name = {p.name: p.camera_to_world_44 for p in presets}
  for name in ("front", "right", "back", "left"):
    eye = by_name[name][:3, 3]
    assert np.dot(eye - center, up_unit) / radius == pytest.approx(math.sin(math.radians(30.0)), abs=1e-6)  # 30 degrees up
    assert np.dot(by_name[name][:3, 1], up_unit) < 0  # image y (down) points away from world up
  assert_allclose(by_name["top"][:3, 3], center + radius * up_unit, atol=2e-6)
  front_right = by_name["front"][:3, 0]
  assert np.dot(by_name["right"][:3, 3] - center, front_right) == pytest.approx(radius * math.cos(math.radians(30.0)), abs=1e-5)
  assert_allclose(by_name["back"][:3, 3] - center, _mirror(by_name["front"][:3, 3] - center, up_unit), atol=2e-6)


def _mirror(offset, up):
  """The offset turned half-way around `up`: horizontal part negated, vertical kept."""
  vertical = np.dot(offset, up) * up
  return vertical - (offset - vertical)


def test_orbit_conventions_match_jaxlab_look_at_and_common_fronts():
  z_up = {p.name: p.camera_to_world_44 for p in orbit_presets(np.zeros(3), 2.0)}
  eye = z_up["right"][:3, 3]
  assert_allclose(z_up["right"], np.asarray(look_at(eye, np.zeros(3), up_3=np.array([0.0, 0.0, 1.0]))), atol=1e-6)
  assert z_up["front"][1, 3] < 0 and abs(z_up["front"][0, 3]) < 1e-12  # z-up: the front camera is on -y
  y_up = {p.name: p.camera_to_world_44 for p in orbit_presets(np.zeros(3), 2.0, up_3=(0.0, 1.0, 0.0))}
  assert y_up["front"][2, 3] > 0 and abs(y_up["front"][0, 3]) < 1e-12  # y-up: on +z


def test_presets_around_uses_median_and_90th_percentile():
  rng = np.random.default_rng(0)
  center = np.array([4.0, -1.0, 2.0])
  points = center + rng.normal(size=(950, 3))
  stray = center + np.array([500.0, 0.0, 0.0]) + rng.normal(size=(50, 3))  # 5% far away: ignored
  cloud = np.concatenate([points, stray, [[np.nan, 0.0, 0.0]]])
  presets = presets_around(cloud, fov_y=math.radians(60.0))
  finite = cloud[np.all(np.isfinite(cloud), axis=1)]
  median = np.median(finite, axis=0)
  radius = 2.2 * np.percentile(np.linalg.norm(finite - median, axis=1), 90)
  top = presets[-1].camera_to_world_44
  assert_allclose(top[:3, 3], median + radius * np.array([0.0, 0.0, 1.0]), atol=1e-9)
  assert np.linalg.norm(median - center) < 0.5 and radius < 10.0
  assert presets[0].fov_y == pytest.approx(math.radians(60.0))
  # No points: an orbit of radius 1 around the origin.
  assert_allclose(presets_around(np.zeros((0, 3)))[-1].camera_to_world_44[:3, 3], [0.0, 0.0, 1.0])


def test_preset_is_checked_and_copied():
  pose = np.eye(4)
  preset = CameraPreset("a", pose, 1.0)
  pose[0, 3] = 5.0
  assert preset.camera_to_world_44[0, 3] == 0.0 and not preset.camera_to_world_44.flags.writeable
  with pytest.raises(ValueError, match="camera_to_world_44"):
    CameraPreset("b", np.eye(3), 1.0)
  with pytest.raises(ValueError, match="fov_y"):
    CameraPreset("c", np.eye(4), math.pi)
  with pytest.raises(ValueError, match="radius"):
    orbit_presets(np.zeros(3), 0.0)
