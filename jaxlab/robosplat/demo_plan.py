"""A new pick-and-place demonstration from the source one, for a moved (or replaced) object.

The source demonstration's keyframes (grasp: the gripper closes; release: it opens; the last
frame) fix the plan. For an object displaced by Δp with yaw θ:

    grasp'     = transform_keyframe(grasp, Δp, θ)      (yaw wrapped for the parallel gripper)
    pre-grasp' = grasp' raised 0.12 m
    lift'      = grasp' raised 0.12 m
    release', last' = the source's (the tray did not move)

and the arm moves INIT → pre-grasp' → grasp' → (close, 3 steps) → lift' → release' →
(open, hold) with straight end-effector segments solved by inverse kinematics, each segment
as long as in the source, so a generated demonstration has the source's length and rhythm.
While grasped the object moves rigidly with the hand; released, it drops onto the tray floor.

An unreachable waypoint makes the plan fail with a reason; the caller skips and counts it.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxlab.robosplat import kinematics, urdf
from jaxlab.robosplat.keyframes import PRE_GRASP_HEIGHT, find_keyframes, pre_grasp, transform_keyframe
from jaxlab.robosplat.motion import GRIPPER_CLOSE_STEPS as CLOSE_STEPS
from jaxlab.robosplat.motion import plan_segment
from jaxlab.robosplat.sim.world import FINGER_OPEN

LIFT_HEIGHT = PRE_GRASP_HEIGHT


@dataclasses.dataclass(frozen=True)
class SourceTrajectory:
  """What a demonstration plan needs from the source demonstration.

  Attributes:
    state_t8: 7 arm joints + gripper width per step.
    action_t8: 7 joint targets + gripper command (1 open, 0 closed).
    ee_pose_t44: end-effector pose per step.
    object_pose_t44: object pose per step.
    object_xy_yaw: where the source object started (grasp-point x, y and yaw).
  """

  state_t8: np.ndarray
  action_t8: np.ndarray
  ee_pose_t44: np.ndarray
  object_pose_t44: np.ndarray
  object_xy_yaw: np.ndarray

  @classmethod
  def from_demo(cls, demo) -> SourceTrajectory:
    """From a `jaxlab.robosplat.sim.source_demo.SourceDemo`."""
    return cls(demo.state_t8, demo.action_t8, demo.ee_pose_t44, demo.object_pose_t44,
               np.asarray(demo.object_xy_yaw, np.float64))

  @property
  def keyframes(self) -> tuple[int, int, int]:
    """(grasp, release, last): first closed step, first re-opened step, last step."""
    keys = find_keyframes(self.action_t8[:, 7])
    if len(keys) != 3 or self.action_t8[keys[0], 7] >= 0.5:
      raise ValueError(f"the source demonstration must close the gripper once and open it once; keyframes {keys}")
    return int(keys[0]), int(keys[1]), int(keys[2])


@dataclasses.dataclass(frozen=True)
class PlannedDemo:
  """A planned demonstration (T steps; observation t, then action t).

  Attributes:
    ok: False when a waypoint is out of reach; then `reason` says which and nothing else
      is meaningful.
    qpos_t9: joint positions observed at each step (7 arm + 2 fingers).
    state_t8, action_t8: as the simulator logs them.
    object_pose_t44: the object's pose at each step.
    reason: why the plan failed ("" when ok).
  """

  ok: bool
  qpos_t9: np.ndarray
  state_t8: np.ndarray
  action_t8: np.ndarray
  object_pose_t44: np.ndarray
  reason: str = ""


def _segments(source: SourceTrajectory, descend_steps: int, lift_steps: int) -> dict[str, int]:
  grasp, release, last = source.keyframes
  steps = {"approach": grasp - descend_steps, "descend": descend_steps, "close": CLOSE_STEPS, "lift": lift_steps,
           "transport": release - grasp - CLOSE_STEPS - lift_steps, "hold": last + 1 - release}
  bad = [k for k, v in steps.items() if v < 1]
  if bad:
    raise ValueError(f"the source demonstration is too short for segments {bad} ({steps})")
  return steps


def plan_demo(source: SourceTrajectory, model: urdf.RobotModel, object_xy_yaw, *, object_start_pose_44,
              grasp_height_offset: float = 0.0, tray_floor_pose_z: float | None = None, descend_steps: int = 12,
              lift_steps: int = 12, init_qpos_9=None) -> PlannedDemo:
  """Plans the demonstration for an object whose grasp point starts at `object_xy_yaw`.

  Args:
    source: the source demonstration.
    model: the robot (forward and inverse kinematics).
    object_xy_yaw: (x, y, yaw) of the new object's grasp point.
    object_start_pose_44: the new object's frame pose at that placement.
    grasp_height_offset: added to the grasp height (another object type grasps higher or
      lower than the source's).
    tray_floor_pose_z: the object frame's z once dropped in the tray; None: the source
      object's final z.
    descend_steps, lift_steps: lengths of the pre-grasp → grasp and grasp → lift segments.
    init_qpos_9: the robot's home joints, where the demonstration starts (None: the Panda's
      `kinematics.INIT_QPOS`); another embodiment passes its own (embodiment replacement:
      the same end-effector keyframes, reached by this robot's inverse kinematics).
  """
  grasp_k, release_k, last_k = source.keyframes
  steps = _segments(source, descend_steps, lift_steps)
  xy_yaw = np.asarray(object_xy_yaw, np.float64)
  delta = np.array([xy_yaw[0] - source.object_xy_yaw[0], xy_yaw[1] - source.object_xy_yaw[1], grasp_height_offset])
  theta = xy_yaw[2] - source.object_xy_yaw[2]
  grasp = np.asarray(transform_keyframe(source.ee_pose_t44[grasp_k], delta, theta), np.float64)
  approach_target = np.asarray(pre_grasp(grasp), np.float64)
  lift_target = np.asarray(pre_grasp(grasp, LIFT_HEIGHT), np.float64)
  release = source.ee_pose_t44[release_k]

  home_7 = np.asarray(kinematics.INIT_QPOS if init_qpos_9 is None else init_qpos_9, np.float64)[:7]
  q = jnp.asarray(np.concatenate([home_7, [FINGER_OPEN, FINGER_OPEN]]), jnp.float32)
  arm_targets, failures = [], []
  for name, target in (("approach", approach_target), ("descend", grasp), ("close", None), ("lift", lift_target),
                       ("transport", release), ("hold", None)):
    if target is None:
      arm_targets.append(np.repeat(np.asarray(q)[None], steps[name], 0))
      continue
    qpos, ok = plan_segment(model, q, jnp.asarray(target, jnp.float32), steps[name])
    if not bool(ok):
      failures.append(name)
      break
    arm_targets.append(np.asarray(qpos))
    q = qpos[-1]
  if failures:
    return PlannedDemo(False, *(np.zeros(0),) * 4, reason=f"unreachable: the {failures[0]} segment's waypoints")
  targets_tj = np.concatenate(arm_targets)  # action t's joint targets
  num = len(targets_tj)
  gripper_command = np.ones(num)
  gripper_command[grasp_k:release_k] = 0.0
  action_t8 = np.concatenate([targets_tj[:, :7], gripper_command[:, None]], 1)

  # Observations: the arm reaches each target in one control step (the simulator's
  # kinematic control); the fingers close over CLOSE_STEPS to the narrowest width seen.
  held_width = float(source.state_t8[:, 7].min())
  widths = np.empty(num)
  width = 2 * FINGER_OPEN
  step = 2 * FINGER_OPEN / CLOSE_STEPS
  for t in range(num):
    widths[t] = width
    target = held_width if gripper_command[t] < 0.5 else 2 * FINGER_OPEN
    width = width + np.clip(target - width, -step, step)
  arm_t7 = np.concatenate([home_7[None], targets_tj[:-1, :7]])
  state_t8 = np.concatenate([arm_t7, widths[:, None]], 1)
  qpos_t9 = np.concatenate([arm_t7, widths[:, None] / 2, widths[:, None] / 2], 1)

  # The object: still until the close command acts, then rigid with the hand, then dropped.
  ee_t44 = np.asarray(kinematics.end_effector_pose(model, jnp.asarray(qpos_t9, jnp.float32)), np.float64)
  start = np.asarray(object_start_pose_44, np.float64)
  hand_to_object = np.linalg.inv(ee_t44[grasp_k]) @ start
  object_t44 = np.repeat(start[None], num, 0)
  object_t44[grasp_k + 1:release_k + 1] = ee_t44[grasp_k + 1:release_k + 1] @ hand_to_object
  dropped = object_t44[release_k].copy()
  dropped[2, 3] = source.object_pose_t44[last_k][2, 3] if tray_floor_pose_z is None else tray_floor_pose_z
  object_t44[release_k + 1:] = dropped
  return PlannedDemo(True, qpos_t9.astype(np.float32), state_t8.astype(np.float32), action_t8.astype(np.float32),
                     object_t44.astype(np.float32))
