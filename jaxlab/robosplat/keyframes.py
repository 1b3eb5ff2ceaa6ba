"""Keyframes of a pick demonstration and their equivariant transform.

A keyframe is a step where the gripper command toggles (open -> closed: the grasp; closed ->
open: the release), plus the last frame. When the object is moved by a planar displacement
Δp and a yaw θ, each end-effector keyframe pose follows it:

  position p' = p + Δp,   rotation R' = Rz(θ)·R_key,

then the gripper's yaw is wrapped into [−π/2, π/2]. A parallel gripper grasps the same way
after a half turn about its approach axis, so we use that freedom to keep the wrist away from
its joint limits:

  yaw = atan2(R'[1, 0], R'[0, 0])        (the yaw of XYZ Euler angles, R = Rz·Ry·Rx: the world
                                          heading of the hand's x axis)
  if yaw ∉ [−π/2, π/2]:  R' ← R'·diag(−1, −1, 1)   (half turn about the hand's own z axis)

The half turn negates the hand's x and y axes and keeps z, the approach direction (the Panda
hand's z points from the wrist to the fingertips, y is the finger motion), so the result is
the same grasp and its yaw is the old one ∓ π, exactly, inside [−π/2, π/2]. For a top-down
grasp (approach = −world z) this is identical to rebuilding the XYZ Euler angles with the
wrapped yaw; for a tilted approach the Euler rebuild would instead mirror the approach
direction, which is not an equivalent grasp, so the half turn about the approach axis is used
in every case. A hand x axis pointing straight up or down has no heading and is left as is.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
PRE_GRASP_HEIGHT = 0.12  # Metres above the grasp (spec).


def find_keyframes(gripper_actions_t: Any, threshold: float = 0.5) -> np.ndarray:
  """Indices of steps whose gripper command differs from the previous step's, plus the last.

  Args:
    gripper_actions_t: [T] gripper commands (1.0 open, 0.0 closed; widths work too: they are
      compared with `threshold`).
    threshold: commands above it count as open.

  Returns:
    Sorted int64 indices; each toggle index is the first step with the new command.
  """
  actions = np.asarray(gripper_actions_t, np.float64)
  if actions.ndim != 1 or actions.size == 0:
    raise ValueError(f"gripper_actions_t must be a non-empty [T] array; got {actions.shape}")
  if not np.all(np.isfinite(actions)):
    raise ValueError("gripper_actions_t has non-finite values")
  is_open = actions > threshold
  toggles = np.nonzero(is_open[1:] != is_open[:-1])[0] + 1
  return np.union1d(toggles, [actions.size - 1]).astype(np.int64)


def rot_z(theta: Any) -> jax.Array:
  """[..., 3, 3] rotation about the world z axis."""
  theta = jnp.asarray(theta, jnp.float32)
  c, s = jnp.cos(theta), jnp.sin(theta)
  zero, one = jnp.zeros_like(theta), jnp.ones_like(theta)
  return jnp.stack([jnp.stack([c, -s, zero], -1), jnp.stack([s, c, zero], -1),
                    jnp.stack([zero, zero, one], -1)], -2)


def euler_xyz_from_matrix(r_33: Any) -> jax.Array:
  """[..., 3] (roll, pitch, yaw) of fixed-axis XYZ Euler angles, R = Rz(yaw)·Ry(pitch)·Rx(roll)."""
  r = jnp.asarray(r_33, jnp.float32)
  yaw = jnp.arctan2(r[..., 1, 0], r[..., 0, 0])
  pitch = jnp.arctan2(-r[..., 2, 0], jnp.hypot(r[..., 0, 0], r[..., 1, 0]))
  roll = jnp.arctan2(r[..., 2, 1], r[..., 2, 2])
  return jnp.stack([roll, pitch, yaw], axis=-1)


def matrix_from_euler_xyz(rpy_3: Any) -> jax.Array:
  """[..., 3, 3] rotation Rz(yaw)·Ry(pitch)·Rx(roll) of fixed-axis XYZ Euler angles."""
  rpy = jnp.asarray(rpy_3, jnp.float32)
  cr, sr = jnp.cos(rpy[..., 0]), jnp.sin(rpy[..., 0])
  cp, sp = jnp.cos(rpy[..., 1]), jnp.sin(rpy[..., 1])
  cy, sy = jnp.cos(rpy[..., 2]), jnp.sin(rpy[..., 2])
  return jnp.stack([
      jnp.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
      jnp.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
      jnp.stack([-sp, cp * sr, cp * cr], -1),
  ], -2)


def gripper_yaw(r_33: Any) -> jax.Array:
  """[...] yaw of the XYZ Euler angles: the world heading of the hand's x axis."""
  r = jnp.asarray(r_33, jnp.float32)
  return jnp.arctan2(r[..., 1, 0], r[..., 0, 0])


def wrap_gripper_yaw(r_33: Any) -> jax.Array:
  """[..., 3, 3] the same parallel-gripper grasp with its yaw in [−π/2, π/2] (module doc)."""
  r = jnp.asarray(r_33, jnp.float32)
  yaw = gripper_yaw(r)
  flip = jnp.abs(yaw) > np.pi / 2
  half_turn = jnp.where(flip[..., None], jnp.array([-1.0, -1.0, 1.0]), 1.0)
  return r * half_turn[..., None, :]  # Right-multiplying by diag(-1, -1, 1) negates columns.


@jax.jit
def transform_keyframe(ee_pose_44: Any, delta_p_3: Any, theta: Any) -> jax.Array:
  """A keyframe pose moved with the object: p + Δp, wrap(Rz(θ)·R) (module doc).

  Args:
    ee_pose_44: [..., 4, 4] end-effector keyframe pose(s).
    delta_p_3: [..., 3] world translation.
    theta: [...] yaw of the object about the world z axis, radians.

  Returns:
    [..., 4, 4] float32 pose(s).
  """
  pose = jnp.asarray(ee_pose_44, jnp.float32)
  delta = jnp.asarray(delta_p_3, jnp.float32)
  rotation = jnp.matmul(rot_z(theta), pose[..., :3, :3], precision=_HIGHEST)
  rotation = wrap_gripper_yaw(rotation)
  batch = jnp.broadcast_shapes(pose.shape[:-2], delta.shape[:-1], rotation.shape[:-2])
  out = jnp.broadcast_to(pose, batch + (4, 4))
  out = out.at[..., :3, :3].set(jnp.broadcast_to(rotation, batch + (3, 3)))
  return out.at[..., :3, 3].add(jnp.broadcast_to(delta, batch + (3,)))


def pre_grasp(ee_pose_44: Any, height: float = PRE_GRASP_HEIGHT) -> jax.Array:
  """The grasp pose raised by `height` metres along world z, same orientation."""
  pose = jnp.asarray(ee_pose_44, jnp.float32)
  return pose.at[..., 2, 3].add(height)
