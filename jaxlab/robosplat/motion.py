"""Joint trajectories between keyframe poses: Cartesian straight lines followed by IK.

A segment interpolates the end-effector position linearly and its orientation along the
geodesic (slerp) from the start pose to the target, then solves IK at every waypoint,
warm-started from the previous waypoint's solution (`lax.scan`), so consecutive joint
configurations stay close. There is no collision checking: the tabletop pick-and-place
segments are short and above the table.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.robosplat import ik, kinematics, urdf

_HIGHEST = jax.lax.Precision.HIGHEST
GRIPPER_CLOSE_STEPS = 3  # The gripper closes over 3 control steps (spec).


@jax.jit
def interpolate_poses(start_44: Any, end_44: Any, fractions_t: Any) -> jax.Array:
  """[T, 4, 4] poses at fractions in [0, 1]: lerp of positions, slerp of rotations."""
  start = jnp.asarray(start_44, jnp.float32)
  end = jnp.asarray(end_44, jnp.float32)
  s = jnp.asarray(fractions_t, jnp.float32)
  relative = jnp.matmul(start[:3, :3].T, end[:3, :3], precision=_HIGHEST)
  w = ik.rotation_log(relative)  # Body-frame rotation vector from start to end.
  rotations = jnp.matmul(start[:3, :3], ik.rotation_exp(s[:, None] * w), precision=_HIGHEST)
  positions = start[:3, 3] + s[:, None] * (end[:3, 3] - start[:3, 3])
  poses = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), s.shape + (4, 4))
  poses = poses.at[:, :3, :3].set(rotations)
  return poses.at[:, :3, 3].set(positions)


@functools.partial(jax.jit, static_argnames=("model", "num_steps", "ik_iters", "final_iters",
                                             "ee_link"))
def plan_segment(model: urdf.RobotModel, q_start_j: Any, target_pose_44: Any, num_steps: int,
                 *, ik_iters: int = 20, final_iters: int = 100,
                 ee_link: str = kinematics.EE_LINK, pos_tol: float = 5e-3,
                 rot_tol: float = 0.05) -> tuple[jax.Array, jax.Array]:
  """Joint waypoints that move `ee_link` on a straight line from FK(q_start) to a target.

  Args:
    model: the robot (static).
    q_start_j: [J] start joint positions (off-chain joints such as fingers are kept).
    target_pose_44: [4, 4] world target pose.
    num_steps: number of waypoints (control steps); the start itself is not included.
    ik_iters: IK iterations per intermediate waypoint (warm start keeps this small).
    final_iters: IK iterations at the last waypoint, which must land on the target.
    ee_link: the link that moves along the line.
    pos_tol, rot_tol: reachability tolerances (metres, radians) for every waypoint.

  Returns:
    (qpos [num_steps, J], ok): ok is False when any waypoint is out of reach (the caller
    then skips the episode).
  """
  if num_steps < 1:
    raise ValueError(f"num_steps must be >= 1; got {num_steps}")
  q_start = kinematics.check_qpos(model, q_start_j)
  target = jnp.asarray(target_pose_44, jnp.float32)
  start = kinematics.end_effector_pose(model, q_start, link=ee_link)
  fractions = jnp.arange(1, num_steps + 1, dtype=jnp.float32) / num_steps
  waypoints = interpolate_poses(start, target, fractions)

  # One IK loop for every waypoint (a traced iteration count): the last one gets more
  # iterations because it must land on the target; one compiled loop body instead of two.
  iters = jnp.full(num_steps, ik_iters, jnp.int32).at[-1].set(final_iters)

  def follow(q, waypoint):
    pose_44, num_iters = waypoint
    q, position_error, rotation_error = ik.solve_one(model, pose_44, q, num_iters,
                                                     ee_link=ee_link)
    return q, (q, (position_error < pos_tol) & (rotation_error < rot_tol))

  _, (qpos, reached) = jax.lax.scan(follow, q_start, (waypoints, iters))
  return qpos, jnp.all(reached)


def gripper_ramp(width_from: Any, width_to: Any, steps: int = GRIPPER_CLOSE_STEPS) -> jax.Array:
  """[steps] widths moving linearly from `width_from` (excluded) to `width_to` (the last)."""
  if steps < 1:
    raise ValueError(f"steps must be >= 1; got {steps}")
  fractions = jnp.arange(1, steps + 1, dtype=jnp.float32) / steps
  start = jnp.asarray(width_from, jnp.float32)
  return start + fractions * (jnp.asarray(width_to, jnp.float32) - start)
