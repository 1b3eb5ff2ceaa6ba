"""Camera jitter: zero ranges, each range on its own, orthonormal look-at poses, presets."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import look_at
from jaxlab.splat.edit import CAMERA_0_JITTER, CAMERA_1_JITTER, SphericalJitter, jitter_camera

LOOK_AT = jnp.array([0.3, -0.1, 0.05])
UP = jnp.array([0.0, 0.0, 1.0])
EYE = jnp.array([1.2, 0.6, 0.8])
C2W = look_at(EYE, LOOK_AT, up_3=UP)
KEYS = jax.random.split(jax.random.key(0), 256)


def _many(jitter, c2w=C2W):
  return np.asarray(jax.jit(jax.vmap(lambda k: jitter_camera(c2w, LOOK_AT, jitter, k)))(KEYS), np.float64)


def _spherical(center):
  offset = center - np.asarray(LOOK_AT)
  r = np.linalg.norm(offset, axis=-1)
  return r, np.arccos(offset[..., 2] / r), np.arctan2(offset[..., 1], offset[..., 0])


def _assert_faces(poses, targets):
  """Every camera's +z axis points at its target."""
  to_target = targets - poses[:, :3, 3]
  to_target /= np.linalg.norm(to_target, axis=-1, keepdims=True)
  np.testing.assert_allclose(poses[:, :3, 2], to_target, atol=2e-5)


def test_zero_ranges_give_the_same_pose():
  np.testing.assert_allclose(jitter_camera(C2W, LOOK_AT, SphericalJitter(), KEYS[0]), C2W, atol=1e-5)
  # Also for a camera that does not face the look-at point exactly.
  tilt = jnp.array([[1.0, 0.0, 0.0], [0.0, math.cos(0.1), -math.sin(0.1)], [0.0, math.sin(0.1), math.cos(0.1)]])
  off_axis = C2W.at[:3, :3].set(C2W[:3, :3] @ tilt)
  np.testing.assert_allclose(jitter_camera(off_axis, LOOK_AT, SphericalJitter(), KEYS[0]), off_axis, atol=1e-5)


def test_look_at_jitter_moves_both_and_keeps_facing():
  poses = _many(SphericalJitter(look_at=0.1))
  shift = poses[:, :3, 3] - np.asarray(EYE)  # r, theta, phi fixed: the camera moves with the point
  assert np.abs(shift).max() <= 0.1 + 1e-6 and np.abs(shift).max() > 0.09
  _assert_faces(poses, np.asarray(LOOK_AT) + shift)


def test_radius_theta_phi_roll_ranges():
  r0, theta0, phi0 = _spherical(np.asarray(EYE))
  r, theta, phi = _spherical(_many(SphericalJitter(radius=0.2))[:, :3, 3])
  assert np.abs(r - r0).max() <= 0.2 + 1e-5 and np.abs(r - r0).max() > 0.18
  np.testing.assert_allclose(theta, theta0, atol=1e-5)
  np.testing.assert_allclose(phi, phi0, atol=1e-5)
  r, theta, phi = _spherical(_many(SphericalJitter(theta=math.pi / 6))[:, :3, 3])
  assert np.abs(theta - theta0).max() <= math.pi / 6 + 1e-5 and np.abs(theta - theta0).max() > 0.45
  np.testing.assert_allclose(r, r0, atol=1e-5)
  r, theta, phi = _spherical(_many(SphericalJitter(phi=math.pi / 12))[:, :3, 3])
  assert np.abs(phi - phi0).max() <= math.pi / 12 + 1e-5 and np.abs(phi - phi0).max() > 0.23
  np.testing.assert_allclose(theta, theta0, atol=1e-5)
  poses = _many(SphericalJitter(roll=math.pi / 6))
  np.testing.assert_allclose(poses[:, :3, 2:], np.broadcast_to(np.asarray(C2W)[:3, 2:], (256, 3, 2)), atol=1e-5)
  angle = np.arccos(np.clip(np.sum(poses[:, :3, 0] * np.asarray(C2W)[:3, 0], axis=-1), -1, 1))
  assert angle.max() <= math.pi / 6 + 1e-3 and angle.max() > 0.45


@pytest.mark.parametrize("jitter", [CAMERA_0_JITTER, CAMERA_1_JITTER])
def test_presets_give_orthonormal_poses_near_the_look_at(jitter):
  poses = _many(jitter)
  rotations = poses[:, :3, :3]
  np.testing.assert_allclose(rotations @ np.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), (256, 3, 3)),
                             atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-5)
  np.testing.assert_array_equal(poses[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (256, 4)))
  # The view ray passes within the look-at box, at the jittered radius.
  center, forward = poses[:, :3, 3], poses[:, :3, 2]
  to_look_at = np.asarray(LOOK_AT) - center
  miss = np.linalg.norm(to_look_at - np.sum(to_look_at * forward, -1, keepdims=True) * forward, axis=-1)
  assert miss.max() <= math.sqrt(3) * jitter.look_at + 1e-5
  r0 = np.linalg.norm(np.asarray(EYE - LOOK_AT))
  slack = jitter.radius + math.sqrt(3) * jitter.look_at
  assert np.all(np.abs(np.linalg.norm(to_look_at, axis=-1) - r0) <= slack + 1e-5)
  assert len({tuple(p.ravel().round(6)) for p in poses}) == 256  # every key differs
  # Without roll, image rows stay level (the camera x axis is horizontal: world z up).
  level = _many(dataclasses.replace(jitter, roll=0.0))
  np.testing.assert_allclose(level[:, 2, 0], 0.0, atol=1e-6)


def test_presets_and_bad_input():
  assert (CAMERA_0_JITTER.look_at, CAMERA_0_JITTER.radius) == (0.1, 0.2)
  assert CAMERA_0_JITTER.theta == CAMERA_0_JITTER.phi == CAMERA_0_JITTER.roll == pytest.approx(math.pi / 6)
  assert (CAMERA_1_JITTER.look_at, CAMERA_1_JITTER.radius) == (0.05, 0.08)
  assert (CAMERA_1_JITTER.theta, CAMERA_1_JITTER.phi, CAMERA_1_JITTER.roll) == pytest.approx(
      (math.pi / 24, math.pi / 12, math.pi / 12))
  with pytest.raises(ValueError, match="radius"):
    SphericalJitter(radius=-0.1)
  with pytest.raises(ValueError, match="look_at_3"):
    jitter_camera(C2W, jnp.zeros(2), CAMERA_0_JITTER, KEYS[0])
  with pytest.raises(ValueError, match="differ from look_at_3"):
    jitter_camera(C2W, EYE, CAMERA_0_JITTER, KEYS[0])
  with pytest.raises(ValueError, match="straight above"):
    jitter_camera(C2W.at[:3, 3].set(LOOK_AT + jnp.array([0.0, 0.0, 1.0])), LOOK_AT, CAMERA_0_JITTER, KEYS[0])


def test_off_axis_camera_keeps_its_offset_from_the_look_at_frame():
  tilt = jnp.array([[math.cos(0.2), 0.0, math.sin(0.2)], [0.0, 1.0, 0.0], [-math.sin(0.2), 0.0, math.cos(0.2)]])
  off_axis = C2W.at[:3, :3].set(C2W[:3, :3] @ tilt)
  poses = _many(SphericalJitter(radius=0.1, theta=0.3, phi=0.3), off_axis)
  frames = np.asarray(jax.vmap(lambda eye: look_at(eye, LOOK_AT, up_3=UP))(jnp.asarray(poses[:, :3, 3], jnp.float32)))
  residuals = np.swapaxes(frames[:, :3, :3], 1, 2) @ poses[:, :3, :3]
  np.testing.assert_allclose(residuals, np.broadcast_to(np.asarray(tilt), (256, 3, 3)), atol=2e-5)
