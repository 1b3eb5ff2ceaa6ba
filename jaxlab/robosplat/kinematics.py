"""Forward kinematics of a URDF tree in JAX, and the Franka Panda constants.

Link frames follow URDF (and pybullet's link frames): a child link's frame is its joint's
frame, placed at the joint origin in the parent frame and then moved by the joint position:
rotated about the joint axis (revolute, continuous) or translated along it (prismatic).

`qpos` holds one value per movable joint in URDF order (`urdf.movable_joints`); for the Panda
that is 7 arm joints and then the 2 finger joints. The model is a static (hashable) argument:
joint origins and axes become constants, so the functions are jit- and vmap-friendly and
accept any leading batch dims on `qpos`.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.robosplat import urdf
from jaxlab.robosplat.embodiments import EMBODIMENTS

PANDA_URDF = "franka_panda/panda.urdf"  # Inside pybullet_data.
# Arm joints 1..7, then the two finger joints (metres each, 0..0.04): the Panda's home.
INIT_QPOS = np.array(EMBODIMENTS["panda"].init_qpos, np.float32)
INIT_QPOS.flags.writeable = False
NUM_ARM_JOINTS = 7
# pybullet_data's panda.urdf has a fixed frame 0.105 m past the hand, between the fingertips,
# with the hand's orientation (z = approach direction, y = finger motion).
EE_LINK = "panda_grasptarget"

_HIGHEST = jax.lax.Precision.HIGHEST  # No TF32 rounding of float32 products on GPUs.


def panda_urdf_path() -> str:
  """Absolute path of pybullet_data's Franka Panda URDF (needs the `robot` extra)."""
  return EMBODIMENTS["panda"].urdf_path()


def panda_model() -> urdf.RobotModel:
  """The parsed Panda (the embodiment's cached model: one object, so jitted functions compile once)."""
  return EMBODIMENTS["panda"].model()


class _Step(NamedTuple):
  """One joint of the tree in evaluation order, with numpy constants."""

  parent_index: int  # Index of the parent link in model.links.
  child_index: int
  origin_44: np.ndarray  # float32 joint origin in the parent frame.
  axis_3: np.ndarray  # float32 unit axis.
  kind: str
  qpos_index: int  # -1 for fixed joints.


@functools.lru_cache(maxsize=64)
def _plan(model: urdf.RobotModel) -> tuple[_Step, ...]:
  """The joints ordered parents-first, with origins computed once in float64."""
  link_index = {name: i for i, name in enumerate(model.link_names)}
  qpos_index = {j.name: i for i, j in enumerate(urdf.movable_joints(model))}
  by_parent: dict[str, list[urdf.Joint]] = {}
  for joint in model.joints:
    by_parent.setdefault(joint.parent, []).append(joint)
  steps, frontier = [], [model.root]
  while frontier:  # Breadth-first from the root: a parent is always posed before its child.
    name = frontier.pop(0)
    for joint in by_parent.get(name, []):
      steps.append(_Step(
          parent_index=link_index[joint.parent], child_index=link_index[joint.child],
          origin_44=joint.origin_44.astype(np.float32),
          axis_3=np.asarray(joint.axis, np.float32), kind=joint.type,
          qpos_index=qpos_index.get(joint.name, -1)))
      frontier.append(joint.child)
  return tuple(steps)


def num_qpos(model: urdf.RobotModel) -> int:
  """The length of qpos: the number of movable joints."""
  return len(urdf.movable_joints(model))


def _axis_rotation(axis_3: np.ndarray, angle: jax.Array) -> jax.Array:
  """Rodrigues rotation [..., 3, 3] about a constant unit axis; exact for coordinate axes."""
  c, s = jnp.cos(angle)[..., None, None], jnp.sin(angle)[..., None, None]
  cross_33 = np.array([[0.0, -axis_3[2], axis_3[1]],
                       [axis_3[2], 0.0, -axis_3[0]],
                       [-axis_3[1], axis_3[0], 0.0]], np.float32)
  outer_33 = np.outer(axis_3, axis_3).astype(np.float32)
  # c·I + s·[a]x + (1 - c)·aaᵀ, written so that zero entries of the constants stay exact.
  return c * np.eye(3, dtype=np.float32) + s * cross_33 + (1.0 - c) * outer_33


def check_qpos(model: urdf.RobotModel, qpos: Any) -> jax.Array:
  """qpos as float32; a ValueError names the joints when its last dim is not J."""
  qpos = jnp.asarray(qpos, jnp.float32)
  expected = num_qpos(model)
  if qpos.ndim < 1 or qpos.shape[-1] != expected:
    names = [j.name for j in urdf.movable_joints(model)]
    raise ValueError(f"qpos must have shape [..., {expected}] (joints {names}); "
                     f"got {qpos.shape}")
  return qpos


@functools.partial(jax.jit, static_argnames=("model",))
def forward_kinematics(model: urdf.RobotModel, qpos_j: Any,
                       base_pose_44: Any = None) -> jax.Array:
  """World poses of every link.

  Args:
    model: the robot (static).
    qpos_j: [..., J] movable-joint positions in URDF order.
    base_pose_44: [4, 4] (or broadcastable [..., 4, 4]) world pose of the root link; identity
      by default (a fixed base at the origin).

  Returns:
    [..., L, 4, 4] float32 world poses, links in `model.links` order.
  """
  qpos = check_qpos(model, qpos_j)
  batch = qpos.shape[:-1]
  if base_pose_44 is None:
    base = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), batch + (4, 4))
  else:
    base = jnp.broadcast_to(jnp.asarray(base_pose_44, jnp.float32), batch + (4, 4))
  # Rotations and translations are kept apart: fewer ops than 4x4 products and scatters.
  rotations: list[Any] = [None] * len(model.links)
  translations: list[Any] = [None] * len(model.links)
  root = model.link_index(model.root)
  rotations[root], translations[root] = base[..., :3, :3], base[..., :3, 3]
  for step in _plan(model):
    r_parent, t_parent = rotations[step.parent_index], translations[step.parent_index]
    r_origin, t_origin = step.origin_44[:3, :3], step.origin_44[:3, 3]
    if step.kind in ("revolute", "continuous"):
      r_origin = jnp.matmul(r_origin, _axis_rotation(step.axis_3, qpos[..., step.qpos_index]),
                            precision=_HIGHEST)
    elif step.kind == "prismatic":
      # The joint slides along its axis, expressed in the parent frame by the origin rotation.
      t_origin = t_origin + qpos[..., step.qpos_index, None] * (r_origin @ step.axis_3)
    rotations[step.child_index] = jnp.matmul(r_parent, r_origin, precision=_HIGHEST)
    translations[step.child_index] = t_parent + jnp.einsum(
        "...ij,...j->...i", r_parent, t_origin, precision=_HIGHEST)
  rotation = jnp.stack(rotations, axis=-3)
  translation = jnp.stack(translations, axis=-2)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], jnp.float32),
                            rotation.shape[:-2] + (1, 4))
  top = jnp.concatenate([rotation, translation[..., None]], axis=-1)
  return jnp.concatenate([top, bottom], axis=-2)


@functools.partial(jax.jit, static_argnames=("model", "link"))
def link_pose(model: urdf.RobotModel, qpos_j: Any, link: str,
              base_pose_44: Any = None) -> jax.Array:
  """[..., 4, 4] world pose of one link."""
  return forward_kinematics(model, qpos_j, base_pose_44)[..., model.link_index(link), :, :]


def end_effector_pose(model: urdf.RobotModel, qpos_j: Any, *, link: str = EE_LINK,
                      base_pose_44: Any = None) -> jax.Array:
  """[..., 4, 4] world pose of the end-effector link (the Panda's grasp target by default)."""
  return link_pose(model, qpos_j, link, base_pose_44)


def gripper_width(qpos_j: Any) -> jax.Array:
  """Panda gripper opening in metres: the sum of the two finger joints (last two entries)."""
  qpos = jnp.asarray(qpos_j, jnp.float32)
  return qpos[..., -2] + qpos[..., -1]
