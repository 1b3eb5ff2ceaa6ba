"""Keyframe detection and the keyframe transform with parallel-gripper yaw wrapping."""

import numpy as np
import pytest

from jaxlab.robosplat import keyframes

_PI = np.pi


def _rz(a):
  return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _rx(a):
  return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _pose(rotation, position=(0.5, 0.1, 0.2)):
  pose = np.eye(4)
  pose[:3, :3] = rotation
  pose[:3, 3] = position
  return pose


_TOP_DOWN = _rx(_PI)  # Hand z (approach) points down, x along world x.


def test_find_keyframes():
  np.testing.assert_array_equal(keyframes.find_keyframes([1, 1, 0, 0, 0, 1, 1]), [2, 5, 6])
  np.testing.assert_array_equal(keyframes.find_keyframes([1, 1, 1]), [2])
  np.testing.assert_array_equal(keyframes.find_keyframes([1, 0]), [1])  # No duplicate.
  np.testing.assert_array_equal(
      keyframes.find_keyframes([0.08, 0.08, 0.01], threshold=0.05), [2])
  with pytest.raises(ValueError, match="non-empty"):
    keyframes.find_keyframes([])
  with pytest.raises(ValueError, match="non-finite"):
    keyframes.find_keyframes([1.0, np.nan])


@pytest.mark.parametrize("theta, wrapped_yaw", [
    (3 * _PI / 4, -_PI / 4), (-3 * _PI / 4, _PI / 4), (_PI / 4, _PI / 4), (-_PI / 3, -_PI / 3),
    (_PI, 0.0), (0.6 * _PI, -0.4 * _PI)])
def test_yaw_wraps_top_down(theta, wrapped_yaw):
  out = np.asarray(keyframes.transform_keyframe(_pose(_TOP_DOWN), np.zeros(3), theta))
  # For a top-down grasp the result is the XYZ-Euler rebuild with the wrapped yaw.
  np.testing.assert_allclose(out[:3, :3], _rz(wrapped_yaw) @ _TOP_DOWN, atol=1e-6)
  assert float(keyframes.gripper_yaw(out[:3, :3])) == pytest.approx(wrapped_yaw, abs=1e-6)
  np.testing.assert_allclose(out[:3, 2], [0, 0, -1], atol=1e-6)  # Still pointing down.


def test_position_offset_and_identity():
  pose = _pose(_rz(0.3) @ _TOP_DOWN, (0.4, -0.2, 0.05))
  out = np.asarray(keyframes.transform_keyframe(pose, [0.1, 0.2, 0.0], 0.0))
  np.testing.assert_allclose(out[:3, 3], [0.5, 0.0, 0.05], atol=1e-6)
  np.testing.assert_allclose(out[:3, :3], pose[:3, :3], atol=1e-6)
  np.testing.assert_array_equal(out[3], [0, 0, 0, 1])
  same = np.asarray(keyframes.transform_keyframe(pose, np.zeros(3), 0.0))
  np.testing.assert_allclose(same, pose, atol=1e-6)
  # A pose whose yaw is already outside [-π/2, π/2] comes back half-turned about its approach.
  outside = _pose(_rz(2.5) @ _TOP_DOWN)
  flipped = np.asarray(keyframes.transform_keyframe(outside, np.zeros(3), 0.0))
  np.testing.assert_allclose(flipped[:3, :3], outside[:3, :3] @ np.diag([-1, -1, 1]), atol=1e-6)


def test_tilted_grasp_keeps_approach_axis():
  rng = np.random.default_rng(0)
  for _ in range(20):
    tilt = _rx(_PI + rng.uniform(-0.6, 0.6)) @ _rz(rng.uniform(-_PI, _PI))
    key = _pose(_rz(rng.uniform(-_PI, _PI)) @ tilt)
    theta = rng.uniform(-_PI, _PI)
    out = np.asarray(keyframes.transform_keyframe(key, np.zeros(3), theta), np.float64)
    rotated = _rz(theta) @ key[:3, :3]
    r = out[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(r[:, 2], rotated[:, 2], atol=1e-5)  # Same approach direction.
    # Same finger line (closing axis up to sign) and the yaw is in range.
    assert abs(abs(r[:, 1] @ rotated[:, 1]) - 1.0) < 1e-5
    assert abs(float(keyframes.gripper_yaw(r))) <= _PI / 2 + 1e-6


def test_batched_thetas():
  thetas = np.array([0.0, 3 * _PI / 4, -3 * _PI / 4])
  out = np.asarray(keyframes.transform_keyframe(_pose(_TOP_DOWN), np.zeros((3, 3)), thetas))
  assert out.shape == (3, 4, 4)
  np.testing.assert_allclose(keyframes.gripper_yaw(out[:, :3, :3]), [0, -_PI / 4, _PI / 4],
                             atol=1e-6)


def test_euler_round_trip():
  rpy = np.array([[0.3, -0.4, 1.2], [-2.0, 1.0, -3.0], [3.0, 0.1, 0.2]])
  r = keyframes.matrix_from_euler_xyz(rpy)
  np.testing.assert_allclose(r[0], _rz(1.2) @ np.array(
      [[np.cos(-0.4), 0, np.sin(-0.4)], [0, 1, 0], [-np.sin(-0.4), 0, np.cos(-0.4)]]) @ _rx(0.3),
                             atol=1e-6)
  np.testing.assert_allclose(keyframes.euler_xyz_from_matrix(r), rpy, atol=1e-5)


def test_pre_grasp():
  pose = _pose(_rz(0.4) @ _TOP_DOWN, (0.5, 0.0, 0.02))
  above = np.asarray(keyframes.pre_grasp(pose))
  np.testing.assert_allclose(above[:3, 3], [0.5, 0.0, 0.14], atol=1e-6)
  np.testing.assert_allclose(above[:3, :3], pose[:3, :3], atol=1e-6)
  np.testing.assert_allclose(np.asarray(keyframes.pre_grasp(pose, 0.3))[2, 3], 0.32, atol=1e-6)
