"""Tests for `jaxlab.camera.trajectory`: checks and repairs, quaternions, slerp, resampling, cleaning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from jaxlab.camera import trajectory as tj


def _axis_angle(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k  # Rodrigues


def _random_rotations(rng, n):
  return np.stack([_axis_angle(rng.normal(size=3), rng.uniform(0, np.pi)) for _ in range(n)])


def _random_trajectory(rng, n):
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, :3] = _random_rotations(rng, n)
  c2w[:, :3, 3] = rng.normal(size=(n, 3))
  return c2w


def _angle_between(r_a, r_b):
  cos = (np.trace(np.swapaxes(r_a, -1, -2) @ r_b, axis1=-2, axis2=-1) - 1) / 2
  return np.arccos(np.clip(cos, -1, 1))


def test_quaternion_known_values_and_round_trip():
  # 90 degrees about z: x goes to y; q = (cos 45, 0, 0, sin 45).
  r_z90 = _axis_angle([0, 0, 1], np.pi / 2)
  np.testing.assert_allclose(tj.matrix_to_quaternion(r_z90), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-12)
  np.testing.assert_allclose(tj.quaternion_to_matrix([np.sqrt(0.5), 0, 0, np.sqrt(0.5)]) @ [1, 0, 0], [0, 1, 0],
                             atol=1e-12)
  rng = np.random.default_rng(0)
  # Random rotations plus the pivot cases: identity and 180-degree turns about each axis.
  rots = np.concatenate([_random_rotations(rng, 50), np.eye(3)[None], np.diag([1.0, -1, -1])[None],
                         np.diag([-1.0, 1, -1])[None], np.diag([-1.0, -1, 1])[None]])
  q = tj.matrix_to_quaternion(rots)
  assert q.shape == (54, 4)
  assert (q[:, 0] >= 0).all()
  np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-12)
  np.testing.assert_allclose(tj.quaternion_to_matrix(q), rots, atol=1e-12)
  # Unnormalized input is normalized first.
  np.testing.assert_allclose(tj.quaternion_to_matrix(3 * q), rots, atol=1e-12)


def test_check_trajectory_accepts_and_returns_float64():
  rng = np.random.default_rng(1)
  c2w = _random_trajectory(rng, 5)
  out = tj.check_trajectory(c2w.astype(np.float32))
  assert out.dtype == np.float64 and out.shape == (5, 4, 4)
  np.testing.assert_allclose(out, c2w, atol=1e-6)


def test_check_trajectory_repairs_small_deviation_and_logs_count(caplog):
  rng = np.random.default_rng(2)
  c2w = _random_trajectory(rng, 6)
  bent = c2w.copy()
  for i in (1, 3, 4):
    bent[i, :3, :3] += 1e-3 * rng.normal(size=(3, 3))
  with caplog.at_level(logging.WARNING, logger="jaxlab.camera.trajectory"):
    out = tj.check_trajectory(bent)
  records = [r for r in caplog.records if r.name == "jaxlab.camera.trajectory"]
  assert len(records) == 1 and "3 of 6" in records[0].getMessage()
  rot = out[:, :3, :3]
  np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1, atol=1e-12)
  np.testing.assert_allclose(out[[0, 2, 5]], c2w[[0, 2, 5]], atol=1e-12)  # good frames untouched
  assert np.abs(out[[1, 3, 4], :3, :3] - c2w[[1, 3, 4], :3, :3]).max() < 1e-2  # nearest rotation
  np.testing.assert_array_equal(out[:, :3, 3], bent[:, :3, 3])


@pytest.mark.parametrize("frame", [0, 2])
def test_check_trajectory_errors_name_the_frame(frame):
  rng = np.random.default_rng(3)
  c2w = _random_trajectory(rng, 4)
  big = c2w.copy()
  big[frame, :3, :3] *= 1.1
  with pytest.raises(tj.TrajectoryError, match=rf"frame {frame}: rotation is not orthonormal"):
    tj.check_trajectory(big)
  mirror = c2w.copy()
  mirror[frame, :3, 0] *= -1  # a reflection: orthonormal but det -1
  with pytest.raises(tj.TrajectoryError, match=rf"frame {frame}: rotation has determinant -1"):
    tj.check_trajectory(mirror)
  nan = c2w.copy()
  nan[frame, 1, 3] = np.nan
  with pytest.raises(tj.TrajectoryError, match=rf"frame {frame} holds NaN"):
    tj.check_trajectory(nan)
  row = c2w.copy()
  row[frame, 3, 0] = 0.5
  with pytest.raises(tj.TrajectoryError, match=rf"frame {frame}: last row"):
    tj.check_trajectory(row)


def test_check_trajectory_shape_and_length_errors():
  with pytest.raises(tj.TrajectoryError, match="shape"):
    tj.check_trajectory(np.zeros((3, 3, 4)))
  with pytest.raises(tj.TrajectoryError, match="3 frames, at least 117"):
    tj.check_trajectory(np.tile(np.eye(4), (3, 1, 1)), min_frames=117)


def test_slerp_stays_on_the_manifold_at_constant_speed():
  rng = np.random.default_rng(4)
  q0, q1 = tj.matrix_to_quaternion(_random_rotations(rng, 2))
  t = np.linspace(0, 1, 11)
  q_t = tj.slerp(q0, q1, t)
  np.testing.assert_allclose(np.linalg.norm(q_t, axis=1), 1, atol=1e-12)
  r_t = tj.quaternion_to_matrix(q_t)
  np.testing.assert_allclose(r_t @ r_t.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (11, 3, 3)), atol=1e-12)
  r0, r1 = tj.quaternion_to_matrix(q0), tj.quaternion_to_matrix(q1)
  total = _angle_between(r0, r1)
  np.testing.assert_allclose(_angle_between(r0, r_t), t * total, atol=1e-9)  # along the geodesic
  np.testing.assert_allclose(_angle_between(r_t, r1), (1 - t) * total, atol=1e-9)
  # -q1 is the same rotation: the same (shorter) path.
  np.testing.assert_allclose(tj.quaternion_to_matrix(tj.slerp(q0, -q1, t)), r_t, atol=1e-12)
  # Nearly equal rotations take the linear branch without NaN.
  assert np.isfinite(tj.slerp(q0, q0 + 1e-9, 0.5)).all()


def test_resample_hits_original_poses_and_interpolates_between():
  rng = np.random.default_rng(5)
  n = 41
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, :3] = np.stack([_axis_angle([0.3, 1, 0.2], 0.05 * i) @ _axis_angle([1, 0, 0], 0.3) for i in range(n)])
  c2w[:, :3, 3] = np.cumsum(rng.normal(size=(n, 3)), axis=0)
  out = tj.resample(c2w, num=121)  # 3 samples per input step: every third sample is an input frame
  assert out.shape == (121, 4, 4)
  np.testing.assert_allclose(out[::3], c2w, atol=1e-9)
  np.testing.assert_allclose(out[1, :3, 3], c2w[0, :3, 3] + (c2w[1, :3, 3] - c2w[0, :3, 3]) / 3, atol=1e-9)
  rot = out[:, :3, :3]
  np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (121, 3, 3)), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1, atol=1e-12)
  # Rotation one third of the way between frames 0 and 1 (0.05 rad apart about a fixed axis).
  np.testing.assert_allclose(_angle_between(c2w[0, :3, :3], rot[1]), 0.05 / 3, atol=1e-9)
  np.testing.assert_allclose(tj.resample(c2w[:1], num=4), np.repeat(c2w[:1], 4, axis=0))


def test_clean_keeps_constant_velocity_and_reduces_jitter():
  n = 90
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, :3] = _axis_angle([0, 1, 0], 0.4)
  c2w[:, :3, 3] = np.arange(n)[:, None] * np.array([0.1, -0.02, 0.05])
  out = tj.clean(c2w, num=120, smooth=2.0)
  assert out.shape == (120, 4, 4)
  np.testing.assert_allclose(out, tj.resample(c2w, 120), atol=1e-9)  # a line, ends included, is kept
  rng = np.random.default_rng(6)
  noisy = c2w.copy()
  noisy[:, :3, 3] += 0.05 * rng.normal(size=(n, 3))
  cleaned = tj.clean(noisy, num=n, smooth=2.0)
  err_before = np.abs(noisy[:, :3, 3] - c2w[:, :3, 3]).mean()
  err_after = np.abs(cleaned[:, :3, 3] - c2w[:, :3, 3]).mean()
  assert err_after < 0.6 * err_before
  np.testing.assert_allclose(tj.clean(noisy, num=n, smooth=0), noisy, atol=1e-12)  # smoothing off


def test_clean_refuses_nan_frames():
  c2w = np.tile(np.eye(4), (10, 1, 1))
  c2w[7, 0, 3] = np.nan
  with pytest.raises(tj.TrajectoryError, match="frame 7 holds NaN"):
    tj.clean(c2w)
