"""Damped-least-squares inverse kinematics in JAX on top of `kinematics.forward_kinematics`.

Each iteration computes the pose error of the end-effector link in the world frame (position
difference and the rotation vector of R_target·Rᵀ), the geometric Jacobian of the joints on
the root-to-end-effector chain, and the step

  dq = Jᵀ (J Jᵀ + damping·I)⁻¹ e      (rows of e and J weighted by position/rotation weight),

clamped to `max_step` radians (or metres) per joint and clipped to the joint limits. Joints
off the chain (the Panda's fingers) keep their initial values. The iteration count is fixed
(`lax.fori_loop`), so the solver is jit- and vmap-friendly (vmap over targets or seeds).
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.robosplat import kinematics, urdf

_HIGHEST = jax.lax.Precision.HIGHEST


class IkResult(NamedTuple):
  """Solution of `solve_ik` (leading dims follow the target's batch dims).

  Attributes:
    qpos: [..., J] joint positions (off-chain joints as given in q_init).
    position_error: [...] metres between the reached and target positions.
    rotation_error: [...] radians between the reached and target orientations.
    converged: [...] bool, both errors under the tolerances given to `solve_ik`.
  """

  qpos: jax.Array
  position_error: jax.Array
  rotation_error: jax.Array
  converged: jax.Array


def _vee(m_33: jax.Array) -> jax.Array:
  """(m - mᵀ)/2 as a vector: sin(θ)·axis for a rotation by θ."""
  return 0.5 * jnp.stack([m_33[..., 2, 1] - m_33[..., 1, 2],
                          m_33[..., 0, 2] - m_33[..., 2, 0],
                          m_33[..., 1, 0] - m_33[..., 0, 1]], axis=-1)


def rotation_angle(r_33: jax.Array) -> jax.Array:
  """[...] angle in [0, π] of rotation matrices (atan2 form: accurate near 0 and π)."""
  sin = jnp.linalg.norm(_vee(r_33), axis=-1)
  cos = 0.5 * (jnp.trace(r_33, axis1=-2, axis2=-1) - 1.0)
  return jnp.arctan2(sin, cos)


def rotation_log(r_33: jax.Array) -> jax.Array:
  """[..., 3] rotation vector (axis·angle, angle in [0, π]) of rotation matrices."""
  v = _vee(r_33)
  sin = jnp.linalg.norm(v, axis=-1)
  cos = 0.5 * (jnp.trace(r_33, axis1=-2, axis2=-1) - 1.0)
  angle = jnp.arctan2(sin, cos)
  # Away from π: axis = v / sin(θ), and θ/sin θ → 1 as θ → 0.
  ratio = jnp.where(sin > 1e-7, angle / jnp.maximum(sin, 1e-7), 1.0)
  regular = v * ratio[..., None]
  # Near π, v vanishes: take the axis from the symmetric part, (R + Rᵀ)/2 − cI = (1 − c)·aaᵀ.
  sym = 0.5 * (r_33 + jnp.swapaxes(r_33, -1, -2)) - cos[..., None, None] * jnp.eye(3)
  outer = sym / jnp.maximum(1.0 - cos, 1e-6)[..., None, None]
  diag = jnp.diagonal(outer, axis1=-2, axis2=-1)
  k = jnp.argmax(diag, axis=-1)
  column = jnp.take_along_axis(outer, k[..., None, None], axis=-1)[..., 0]
  axis = column / jnp.sqrt(jnp.maximum(jnp.take_along_axis(diag, k[..., None], -1), 1e-12))
  axis = jnp.where(jnp.sum(axis * v, axis=-1, keepdims=True) < 0, -axis, axis)
  return jnp.where((cos < -0.9)[..., None], axis * angle[..., None], regular)


def rotation_exp(w_3: jax.Array) -> jax.Array:
  """[..., 3, 3] rotation of rotation vectors (Rodrigues)."""
  w_3 = jnp.asarray(w_3, jnp.float32)
  angle = jnp.linalg.norm(w_3, axis=-1)
  safe = jnp.maximum(angle, 1e-12)
  small = angle < 1e-4
  a = jnp.where(small, 1.0 - angle**2 / 6.0, jnp.sin(angle) / safe)[..., None, None]
  b = jnp.where(small, 0.5 - angle**2 / 24.0, (1.0 - jnp.cos(angle)) / safe**2)[..., None, None]
  zero = jnp.zeros_like(w_3[..., 0])
  cross = jnp.stack([
      jnp.stack([zero, -w_3[..., 2], w_3[..., 1]], -1),
      jnp.stack([w_3[..., 2], zero, -w_3[..., 0]], -1),
      jnp.stack([-w_3[..., 1], w_3[..., 0], zero], -1),
  ], -2)
  return jnp.eye(3) + a * cross + b * jnp.matmul(cross, cross, precision=_HIGHEST)


def pose_error(pose_44: jax.Array, target_44: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(position error [...] metres, rotation error [...] radians) between poses."""
  position = jnp.linalg.norm(target_44[..., :3, 3] - pose_44[..., :3, 3], axis=-1)
  relative = jnp.matmul(target_44[..., :3, :3], jnp.swapaxes(pose_44[..., :3, :3], -1, -2),
                        precision=_HIGHEST)
  return position, rotation_angle(relative)


class _ChainJoint(NamedTuple):
  qpos_index: int
  link_index: int  # The joint's child link: its frame is the joint frame.
  axis_3: np.ndarray
  kind: str


@functools.lru_cache(maxsize=64)
def _chain_joints(model: urdf.RobotModel, ee_link: str) -> tuple[_ChainJoint, ...]:
  qpos_index = {j.name: i for i, j in enumerate(urdf.movable_joints(model))}
  return tuple(
      _ChainJoint(qpos_index[j.name], model.link_index(j.child),
                  np.asarray(j.axis, np.float32), j.type)
      for j in urdf.chain(model, ee_link) if j.type != "fixed")


def chain_qpos_indices(model: urdf.RobotModel, ee_link: str = kinematics.EE_LINK) -> tuple:
  """qpos indices that IK moves: the movable joints between the root and `ee_link`."""
  return tuple(j.qpos_index for j in _chain_joints(model, ee_link))


def _jacobian(poses_l44: jax.Array, ee_index: int, joints: tuple) -> jax.Array:
  """[6, C] geometric Jacobian (linear rows, then angular) of the end-effector link."""
  ee_position = poses_l44[ee_index, :3, 3]
  columns = []
  for joint in joints:
    frame = poses_l44[joint.link_index]
    axis = jnp.matmul(frame[:3, :3], joint.axis_3, precision=_HIGHEST)
    if joint.kind == "prismatic":
      columns.append(jnp.concatenate([axis, jnp.zeros(3)]))
    else:
      columns.append(jnp.concatenate([jnp.cross(axis, ee_position - frame[:3, 3]), axis]))
  return jnp.stack(columns, axis=-1)


def solve_one(model: urdf.RobotModel, target_44: jax.Array, q0_j: jax.Array, num_iters: Any, *,
              damping: Any = 1e-2, position_weight: Any = 1.0, rotation_weight: Any = 0.3,
              max_step: Any = 0.2, joint_limits: bool = True,
              ee_link: str = kinematics.EE_LINK) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One unbatched, unjitted solve; `num_iters` may be traced. Returns (q, pos err, rot err).

  Building block of `solve_ik` and of callers that run IK inside their own loops.
  """
  joints = _chain_joints(model, ee_link)
  index = np.array([j.qpos_index for j in joints])
  movable = urdf.movable_joints(model)
  lower = np.array([movable[i].lower for i in index], np.float32)
  upper = np.array([movable[i].upper for i in index], np.float32)
  ee_index = model.link_index(ee_link)
  weights = jnp.concatenate([jnp.full(3, position_weight, jnp.float32),
                             jnp.full(3, rotation_weight, jnp.float32)])

  def step(_, q):
    poses = kinematics.forward_kinematics(model, q)
    ee = poses[ee_index]
    rotation = jnp.matmul(target_44[:3, :3], ee[:3, :3].T, precision=_HIGHEST)
    e = jnp.concatenate([target_44[:3, 3] - ee[:3, 3], rotation_log(rotation)]) * weights
    jac = _jacobian(poses, ee_index, joints) * weights[:, None]
    jjt = jnp.matmul(jac, jac.T, precision=_HIGHEST) + damping * jnp.eye(6)
    dq = jnp.matmul(jac.T, jnp.linalg.solve(jjt, e), precision=_HIGHEST)
    q_chain = q[index] + jnp.clip(dq, -max_step, max_step)
    if joint_limits:
      q_chain = jnp.clip(q_chain, lower, upper)
    return q.at[index].set(q_chain)

  q = jax.lax.fori_loop(0, num_iters, step, q0_j)
  position_error, rotation_error = pose_error(
      kinematics.forward_kinematics(model, q)[ee_index], target_44)
  return q, position_error, rotation_error


@functools.partial(jax.jit, static_argnames=("model", "num_iters", "joint_limits", "ee_link"))
def solve_ik(model: urdf.RobotModel, target_pose_44: Any, q_init_j: Any, *,
             num_iters: int = 100, damping: float = 1e-2, position_weight: float = 1.0,
             rotation_weight: float = 0.3, max_step: float = 0.2, joint_limits: bool = True,
             ee_link: str = kinematics.EE_LINK, pos_tol: float = 5e-3,
             rot_tol: float = 0.05) -> IkResult:
  """Joint positions that put `ee_link` at a target pose.

  Args:
    model: the robot (static).
    target_pose_44: [..., 4, 4] world target pose(s) of `ee_link`.
    q_init_j: [J] or [..., J] start (broadcast against the targets); joints off the chain keep
      these values.
    num_iters: fixed number of damped Gauss-Newton steps.
    damping: added to the diagonal of J Jᵀ (weighted units); larger = smaller, safer steps.
    position_weight, rotation_weight: weights of metres and radians in the error.
    max_step: largest change of one joint per iteration.
    joint_limits: clip to the URDF limits after every step.
    ee_link: the link to place.
    pos_tol, rot_tol: tolerances (metres, radians) that set `converged`.

  Returns:
    IkResult for every target.
  """
  target = jnp.asarray(target_pose_44, jnp.float32)
  q_init = kinematics.check_qpos(model, q_init_j)
  batch = jnp.broadcast_shapes(target.shape[:-2], q_init.shape[:-1])
  target = jnp.broadcast_to(target, batch + (4, 4)).reshape((-1, 4, 4))
  q_init = jnp.broadcast_to(q_init, batch + q_init.shape[-1:]).reshape((-1, q_init.shape[-1]))

  def solve(target_44, q0):
    return solve_one(model, target_44, q0, num_iters, damping=damping,
                     position_weight=position_weight, rotation_weight=rotation_weight,
                     max_step=max_step, joint_limits=joint_limits, ee_link=ee_link)

  q, position_error, rotation_error = jax.vmap(solve)(target, q_init)
  converged = (position_error < pos_tol) & (rotation_error < rot_tol)
  return IkResult(q.reshape(batch + q.shape[-1:]), position_error.reshape(batch),
                  rotation_error.reshape(batch), converged.reshape(batch))


def ik_reachable(result: IkResult, pos_tol: float = 5e-3, rot_tol: float = 0.05) -> jax.Array:
  """[...] bool: the solution is within `pos_tol` metres and `rot_tol` radians of its target."""
  return (result.position_error < pos_tol) & (result.rotation_error < rot_tol)
