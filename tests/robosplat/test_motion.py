"""Straight-line segments through IK, pose interpolation and the gripper ramp."""

import numpy as np
import pytest

from jaxlab.robosplat import ik, keyframes, kinematics, motion

pytest.importorskip("pybullet")

_STEPS = 25


def _target(start_44, delta_p, theta):
  return np.asarray(keyframes.transform_keyframe(start_44, delta_p, theta))


def test_segment_reaches_target_smoothly():
  model = kinematics.panda_model()
  start = np.asarray(kinematics.end_effector_pose(model, kinematics.INIT_QPOS))
  # Down to the table and sideways with a yaw: a typical grasp approach.
  target = _target(start, [0.08, -0.15, -0.2], 0.9)
  qpos, ok = motion.plan_segment(model, kinematics.INIT_QPOS, target, _STEPS)
  assert qpos.shape == (_STEPS, 9) and bool(ok)
  reached = np.asarray(kinematics.end_effector_pose(model, qpos[-1]))
  assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 2e-3
  _, rotation_error = ik.pose_error(reached, target)
  assert float(rotation_error) < 0.01
  path = np.concatenate([kinematics.INIT_QPOS[None], np.asarray(qpos)])
  assert np.abs(np.diff(path, axis=0)).max() < 0.3
  np.testing.assert_array_equal(path[:, 7:], np.broadcast_to(kinematics.INIT_QPOS[7:], (26, 2)))
  # The hand follows the straight line: waypoint k sits k/T of the way along.
  positions = np.asarray(kinematics.end_effector_pose(model, qpos))[:, :3, 3]
  fractions = np.arange(1, _STEPS + 1)[:, None] / _STEPS
  line = start[:3, 3] + fractions * (target[:3, 3] - start[:3, 3])
  assert np.linalg.norm(positions - line, axis=-1).max() < 5e-3


def test_unreachable_target_not_ok():
  model = kinematics.panda_model()
  start = np.asarray(kinematics.end_effector_pose(model, kinematics.INIT_QPOS))
  target = _target(start, [3.0, 0.0, 0.0], 0.0)
  _, ok = motion.plan_segment(model, kinematics.INIT_QPOS, target, _STEPS)
  assert not bool(ok)


def test_interpolate_poses():
  start = np.eye(4)
  end = np.eye(4)
  end[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z.
  end[:3, 3] = [1.0, 2.0, -2.0]
  poses = np.asarray(motion.interpolate_poses(start, end, [0.0, 0.5, 1.0]))
  np.testing.assert_allclose(poses[0], start, atol=1e-6)
  np.testing.assert_allclose(poses[2], end, atol=1e-6)
  np.testing.assert_allclose(poses[1, :3, 3], [0.5, 1.0, -1.0], atol=1e-6)
  half = np.cos(np.pi / 4)
  np.testing.assert_allclose(poses[1, :3, :3], [[half, -half, 0], [half, half, 0], [0, 0, 1]],
                             atol=1e-6)


def test_gripper_ramp():
  np.testing.assert_allclose(motion.gripper_ramp(0.08, 0.02), [0.06, 0.04, 0.02], atol=1e-7)
  np.testing.assert_allclose(motion.gripper_ramp(0.0, 0.08, steps=4), [0.02, 0.04, 0.06, 0.08],
                             atol=1e-7)
  with pytest.raises(ValueError, match="steps"):
    motion.gripper_ramp(0.0, 1.0, steps=0)
