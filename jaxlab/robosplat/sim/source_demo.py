"""The one source demonstration: a scripted pick-and-place played in the simulator.

A script plays the teleoperator: end-effector waypoints (home → 0.12 m above the object →
down to the grasp → close over 3 steps → lift → over the tray → a little lower → open →
settle), interpolated at 22 Hz and turned into joint targets with pybullet's own
inverse kinematics (null space pulled toward `INIT_QPOS`, so the arm keeps its posture).
The world records what a real robot logs: joint positions, the 8-D state and action, the
end-effector and object poses per step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxlab.robosplat.keyframes import PRE_GRASP_HEIGHT, find_keyframes
from jaxlab.robosplat.sim.cameras import render
from jaxlab.robosplat.sim.world import (
    ARM_JOINTS,
    CONTROL_HZ,
    EE_LINK_NAME,
    FINGER_JOINTS,
    INIT_QPOS,
    OBJECTS,
    TabletopSpec,
    World,
    _pybullet,
    pose_to_pybullet,
    rotation_z,
)

TRANSPORT_HEIGHT = 0.16  # end-effector height while carrying over to the tray
RELEASE_HEIGHT = 0.11  # end-effector height at which the object is let go over the tray
# Steps per segment (22 Hz): 82 in all, about 3.7 s.
SEGMENT_STEPS = {"approach": 22, "descend": 12, "close": 3, "lift": 12, "transport": 20, "lower": 6, "open": 3,
                 "hold": 4}
# Top-down end-effector orientation at home: x along world x, fingers (y) along -y, z down.
TOP_DOWN_33 = np.diag([1.0, -1.0, -1.0])


@dataclasses.dataclass(frozen=True, eq=False)
class SourceDemo:
  """One demonstration, T control steps at 22 Hz (observation t, then action t).

  Attributes:
    qpos_t9: joint positions (7 arm + 2 fingers) observed at each step.
    state_t8: 7 arm joints + gripper width (m).
    action_t8: 7 absolute joint targets + gripper command (1 open, 0 closed).
    ee_pose_t44: world pose of the end-effector link (`EE_LINK_NAME`).
    object_pose_t44: world pose of the object's URDF frame.
    keyframes: steps where the gripper command toggles, plus the last step.
    object_name: the `OBJECTS` key.
    object_xy_yaw: the object's start (bounding-box centre x, y and yaw).
    success: whether the object ended in the tray.
    spec: the world layout.
  """

  qpos_t9: np.ndarray
  state_t8: np.ndarray
  action_t8: np.ndarray
  ee_pose_t44: np.ndarray
  object_pose_t44: np.ndarray
  keyframes: np.ndarray
  object_name: str
  object_xy_yaw: np.ndarray
  success: bool
  spec: TabletopSpec

  @property
  def num_steps(self) -> int:
    return len(self.action_t8)

  @property
  def timestamps_t(self) -> np.ndarray:
    return np.arange(self.num_steps) / CONTROL_HZ


class PandaIK:
  """pybullet inverse kinematics for the Panda's end effector, on a private client."""

  def __init__(self):
    self._p, pybullet_data = _pybullet()
    self._client = self._p.connect(self._p.DIRECT)
    self._robot = self._p.loadURDF(f"{pybullet_data.getDataPath()}/franka_panda/panda.urdf", [0, 0, 0],
                                   useFixedBase=True, physicsClientId=self._client)
    self._ee = next(j for j in range(self._p.getNumJoints(self._robot, physicsClientId=self._client))
                    if self._p.getJointInfo(self._robot, j, physicsClientId=self._client)[12].decode() == EE_LINK_NAME)
    infos = [self._p.getJointInfo(self._robot, j, physicsClientId=self._client) for j in (*ARM_JOINTS, *FINGER_JOINTS)]
    self._lower = [info[8] for info in infos]
    self._upper = [info[9] for info in infos]

  def close(self) -> None:
    if self._client is not None:
      self._p.disconnect(self._client)
      self._client = None

  def __enter__(self) -> PandaIK:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _set(self, q7: np.ndarray) -> None:
    for joint, value in zip(ARM_JOINTS, q7):
      self._p.resetJointState(self._robot, joint, float(value), physicsClientId=self._client)

  def ee_position_error(self, q7: np.ndarray, position_3: np.ndarray) -> float:
    self._set(q7)
    state = self._p.getLinkState(self._robot, self._ee, computeForwardKinematics=True, physicsClientId=self._client)
    return float(np.linalg.norm(np.asarray(state[4]) - position_3))

  def solve(self, pose_44: np.ndarray, seed_q7: Sequence[float], *, iterations: int = 8) -> np.ndarray:
    """7 arm joints that put the end effector at `pose_44` (refined from `seed_q7`)."""
    position, quat = pose_to_pybullet(pose_44)
    q7 = np.asarray(seed_q7, np.float64).copy()
    rest = [*INIT_QPOS[:7], 0.04, 0.04]
    ranges = [u - l for l, u in zip(self._lower, self._upper)]
    for _ in range(iterations):  # pybullet's IK takes one damped step per call from the current state
      self._set(q7)
      solution = self._p.calculateInverseKinematics(
          self._robot, self._ee, position, quat, lowerLimits=self._lower, upperLimits=self._upper,
          jointRanges=ranges, restPoses=rest, maxNumIterations=100, residualThreshold=1e-6,
          physicsClientId=self._client)
      q7 = np.clip(np.asarray(solution[:7]), self._lower[:7], self._upper[:7])
    return q7


def grasp_rotation(object_yaw: float) -> np.ndarray:
  """Top-down EE rotation aligned with a box-like object's faces, yaw wrapped into [-π/4, π/4]."""
  yaw = (object_yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4
  return rotation_z(yaw) @ TOP_DOWN_33


def _pose(position_3: np.ndarray, rotation_33: np.ndarray) -> np.ndarray:
  pose = np.eye(4)
  pose[:3, :3], pose[:3, 3] = rotation_33, position_3
  return pose


def _slerp_rotation(a_33: np.ndarray, b_33: np.ndarray, s: float) -> np.ndarray:
  """Rotation s of the way from a to b (about the axis of a^T b)."""
  relative = a_33.T @ b_33
  angle = math.acos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0))
  if angle < 1e-9:
    return a_33.copy()
  axis = np.array([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]])
  axis /= np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  theta = s * angle
  return a_33 @ (np.eye(3) + math.sin(theta) * k + (1 - math.cos(theta)) * k @ k)


def scripted_waypoints(start_pose_44: np.ndarray, object_center_3: np.ndarray, object_yaw: float,
                       grasp_height: float, spec: TabletopSpec) -> list[tuple[np.ndarray, float]]:
  """(EE pose, gripper command) per control step of the pick-and-place script."""
  grasp_r = grasp_rotation(object_yaw)
  grasp_p = np.array([object_center_3[0], object_center_3[1], grasp_height])
  pre_p = grasp_p + np.array([0.0, 0.0, PRE_GRASP_HEIGHT])
  lift_p = np.array([grasp_p[0], grasp_p[1], TRANSPORT_HEIGHT])
  over_tray_p = np.array([spec.tray_xy[0], spec.tray_xy[1], TRANSPORT_HEIGHT])
  release_p = np.array([spec.tray_xy[0], spec.tray_xy[1], RELEASE_HEIGHT])
  steps: list[tuple[np.ndarray, float]] = []

  def move(name, p0, p1, r0, r1, gripper):
    n = SEGMENT_STEPS[name]
    for i in range(1, n + 1):
      s = 0.5 - 0.5 * math.cos(math.pi * i / n)  # ease in and out
      steps.append((_pose((1 - s) * p0 + s * p1, _slerp_rotation(r0, r1, s)), gripper))

  start_p, start_r = start_pose_44[:3, 3], start_pose_44[:3, :3]
  move("approach", start_p, pre_p, start_r, grasp_r, 1.0)
  move("descend", pre_p, grasp_p, grasp_r, grasp_r, 1.0)
  move("close", grasp_p, grasp_p, grasp_r, grasp_r, 0.0)
  move("lift", grasp_p, lift_p, grasp_r, grasp_r, 0.0)
  move("transport", lift_p, over_tray_p, grasp_r, TOP_DOWN_33, 0.0)
  move("lower", over_tray_p, release_p, TOP_DOWN_33, TOP_DOWN_33, 0.0)
  move("open", release_p, release_p, TOP_DOWN_33, TOP_DOWN_33, 1.0)
  move("hold", release_p, release_p, TOP_DOWN_33, TOP_DOWN_33, 1.0)
  return steps


def record_source_demo(world_spec: TabletopSpec | None = None, *, object_name: str = "cube",
                       object_xy_yaw: Sequence[float] | None = None, settle_steps: int = 22) -> SourceDemo:
  """Plays the scripted pick-and-place in a fresh world and records it.

  Args:
    world_spec: the layout; None: `TabletopSpec()`.
    object_name: a key of `OBJECTS`.
    object_xy_yaw: the object's start; None: the spec's source pose.
    settle_steps: control steps of physics after the script before success is judged.
  """
  spec = world_spec or TabletopSpec()
  if object_name not in OBJECTS:
    raise ValueError(f"unknown object {object_name!r}; choose one of {sorted(OBJECTS)}")
  xy_yaw = np.asarray(spec.object_xy_yaw if object_xy_yaw is None else object_xy_yaw, np.float64)
  with World(spec) as world, PandaIK() as ik:
    world.reset(object_name, xy_yaw, INIT_QPOS)
    waypoints = scripted_waypoints(world.ee_pose(), world.object_center(), float(xy_yaw[2]),
                                   OBJECTS[object_name].grasp_height, spec)
    q7 = INIT_QPOS[:7].copy()
    qpos, states, actions, ee_poses, object_poses = [], [], [], [], []
    for pose, gripper in waypoints:
      q7 = ik.solve(pose, q7)
      qpos.append(world.qpos())
      states.append(world.state())
      ee_poses.append(world.ee_pose())
      object_poses.append(world.object_pose())
      action = np.concatenate([q7, [gripper]])
      actions.append(action)
      world.step(action)
    world.settle(settle_steps)
    success = world.success()
  action_t8 = np.stack(actions)
  return SourceDemo(
      qpos_t9=np.stack(qpos), state_t8=np.stack(states), action_t8=action_t8, ee_pose_t44=np.stack(ee_poses),
      object_pose_t44=np.stack(object_poses), keyframes=find_keyframes(action_t8[:, 7]),
      object_name=object_name, object_xy_yaw=xy_yaw, success=success, spec=spec)


def replay_actions(action_t8: np.ndarray, *, spec: TabletopSpec | None = None, object_name: str = "cube",
                   object_xy_yaw: Sequence[float] | None = None, settle_steps: int = 22,
                   embodiment: str = "panda") -> bool:
  """Plays actions open-loop in a fresh world with `embodiment`'s robot at its home; True if
  the object ends in the tray."""
  with World(spec, embodiment=embodiment) as world:
    world.reset(object_name, object_xy_yaw)
    for action in np.asarray(action_t8):
      world.step(action)
    world.settle(settle_steps)
    return world.success()


def demo_images(demo: SourceDemo, cameras: Sequence[Any], *, light: Any = None) -> dict[str, np.ndarray]:
  """The demonstration's camera images: {camera name: uint8 [T, H, W, 3]}, observation t before action t.

  The actions are replayed in a fresh world (the simulator is deterministic, so the states
  are the recorded ones) and every camera rendered at every step.
  """
  frames: dict[str, list[np.ndarray]] = {camera.name: [] for camera in cameras}
  with World(demo.spec) as world:
    world.reset(demo.object_name, demo.object_xy_yaw, INIT_QPOS)
    for action in demo.action_t8:
      for camera in cameras:
        frames[camera.name].append(render(world, camera, light=light).rgb_hw3)
      world.step(action)
  return {name: np.stack(images) for name, images in frames.items()}
