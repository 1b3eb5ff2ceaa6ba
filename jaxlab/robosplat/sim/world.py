"""A pybullet tabletop: a robot arm (the Franka Panda by default), a table, a tray and one object.

The simulator stands in for the real world: its camera images are the photographs the
Gaussian scene is fitted to, and policies are checked in it closed-loop. Frames follow the
RoboSplat conventions: metres, z up, the table top at z = 0, the Panda's fixed base at the
origin facing +x. Layout (top view):

    robot base (0, 0) ──> +x
    object source (0.42, -0.08): the generation grid x ∈ [0.36, 0.66], y ∈ [-0.30, 0.10]
    tray centre (0.42, 0.36): footprint 0.30 m square, y ∈ [0.21, 0.51]

so every grid position is reachable with a top-down grasp and a cube on the grid's edge
nearest the tray is still 8 cm from it.

Control is kinematic: `step` sets the seven arm joints to their targets, moves the
fingers toward open (0.04 m each) or closed, attaches the object rigidly to the hand when
the gripper closes with the object centre within `GRASP_RADIUS` of the grasp point, and
releases it when the gripper opens; physics steps between control steps let a released
object fall and settle. The robot is any `jaxlab.robosplat.embodiments` entry (7 arm joints
and the Panda hand, so states and actions keep one layout). pybullet is imported inside
functions only (optional extra).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from jaxlab.robosplat.embodiments import EE_LINK, HAND_LINK, Embodiment, get_embodiment

# Spec: the Panda's home configuration (7 arm joints, 2 finger joints).
INIT_QPOS = get_embodiment("panda").init_qpos_9
# pybullet joint indices of the Panda's arm and fingers in panda.urdf.
ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
FINGER_OPEN = 0.04
# Fingers move at most this far per control step, so closing takes 3 steps (spec).
FINGER_STEP = FINGER_OPEN / 3 + 1e-6
# Object centre within this distance (m) of the grasp point when closing: it is grasped.
GRASP_RADIUS = 0.025
CONTROL_HZ = 22.0
PHYSICS_HZ = 240.0
SUBSTEPS = int(round(PHYSICS_HZ / CONTROL_HZ))  # 11 physics steps per control step
EE_LINK_NAME = EE_LINK  # the same link names on every embodiment
HAND_LINK_NAME = HAND_LINK
RESET_SETTLE_SUBSTEPS = 120  # 0.5 s
# Where hidden bodies are parked: far below the floor, beyond every camera's far plane.
_PARKED_POSITION = (0.0, 0.0, -500.0)


@dataclasses.dataclass(frozen=True)
class ObjectAsset:
  """An object that can be picked.

  Attributes:
    name: registry key.
    kind: "urdf" (pybullet_data URDF `source`), "mesh" (visual mesh `source` and
      `collision_mesh`, both pybullet_data-relative OBJ files, centre of mass at the centre
      of the mesh's bounding box, a third of the way up), "box" or "cylinder" (`size`).
    source: the URDF or visual mesh path ("" for primitives).
    scale: `globalScaling` for a URDF, the mesh scale for a mesh.
    grasp_height: height (m) of the grasp point above the table for a top-down grasp.
    textured: whether its look comes from a texture (True) or a flat colour (False).
    rgba: colour multiplied onto the visual (None keeps the file's).
    size: (hx, hy, hz) half extents of a box; (radius, height) of a cylinder.
    collision_mesh: the collision mesh of a "mesh" object.
    rest_rpy: orientation (roll, pitch, yaw) in which it rests on the table at yaw 0
      (measured: where it settles), so a reset starts it at rest.
    mass: kg (everything but URDFs, which carry their own).
  """

  name: str
  kind: str
  source: str
  scale: float
  grasp_height: float
  textured: bool
  rgba: tuple[float, float, float, float] | None = None
  size: tuple[float, ...] = ()
  collision_mesh: str = ""
  rest_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
  mass: float = 0.1


OBJECTS: dict[str, ObjectAsset] = {
    # The source object: pybullet_data's 5 cm cube, tinted red so it stands out on the table.
    "cube": ObjectAsset("cube", "urdf", "cube_small.urdf", 1.0, grasp_height=0.025, textured=False,
                        rgba=(0.9, 0.15, 0.1, 1.0)),
    # Yellow lego brick scaled 1.5x: 5.0 x 5.0 x 3.6 cm.
    "lego": ObjectAsset("lego", "urdf", "lego/lego.urdf", 1.5, grasp_height=0.02, textured=False),
    # The textured duck, 5.4 x 5.1 x 4.0 cm. Built from its meshes rather than
    # duck_vhacd.urdf, whose centre of mass sits off the feet so the duck tips over.
    "duck": ObjectAsset("duck", "mesh", "duck.obj", 0.03, grasp_height=0.022, textured=True,
                        collision_mesh="duck_vhacd.obj", rest_rpy=(-0.201, 0.037, 0.0)),
    # A blue cylinder, 4.4 cm across and 6 cm tall.
    "cylinder": ObjectAsset("cylinder", "cylinder", "", 1.0, grasp_height=0.03, textured=False,
                            rgba=(0.15, 0.3, 0.9, 1.0), size=(0.022, 0.06)),
}


def _obj_bounds(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Bounding box of an OBJ file's vertices."""
  vertices = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
  if not vertices:
    raise ValueError(f"{path}: no vertices")
  vertices = np.asarray(vertices, np.float64)
  return vertices.min(0), vertices.max(0)


@dataclasses.dataclass(frozen=True)
class Light:
  """TinyRenderer lighting used for every render of a world (see `getCameraImage`)."""

  direction_3: tuple[float, float, float] = (0.4, -0.5, 0.75)
  color_3: tuple[float, float, float] = (1.0, 1.0, 1.0)
  ambient: float = 0.55
  diffuse: float = 0.45
  specular: float = 0.05
  shadow: bool = False


@dataclasses.dataclass(frozen=True)
class TabletopSpec:
  """Where everything stands. Positions are world metres; the table top is z = 0.

  Attributes:
    table_xy: centre of the pybullet_data table (1.5 x 1.0 m top, 0.625 m tall).
    tray_xy: centre of the tray; `tray_scale` scales pybullet_data's traybox (0.6 m).
    object_xy_yaw: the source object's centre and yaw.
    floor: whether a floor plane is loaded under the table.
  """

  table_xy: tuple[float, float] = (0.45, 0.05)
  tray_xy: tuple[float, float] = (0.42, 0.36)
  tray_scale: float = 0.5
  object_xy_yaw: tuple[float, float, float] = (0.42, -0.08, 0.0)
  floor: bool = True

  @property
  def table_height(self) -> float:
    return 0.625

  @property
  def tray_half_size(self) -> float:
    """Half the tray's outer footprint (m)."""
    return 0.3 * self.tray_scale

  @property
  def tray_rim_height(self) -> float:
    """Height of the tray's rim above the table (m); the tray stands on the table."""
    return 0.138 * self.tray_scale


# ----------------------------------------------------------------------------- pose helpers


def pose_from_pybullet(position_3: Sequence[float], quat_xyzw: Sequence[float]) -> np.ndarray:
  """4x4 pose from a pybullet (position, (x, y, z, w) quaternion) pair."""
  x, y, z, w = quat_xyzw
  pose = np.eye(4)
  pose[:3, :3] = [
      [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
  ]
  pose[:3, 3] = position_3
  return pose


def pose_to_pybullet(pose_44: np.ndarray) -> tuple[list[float], list[float]]:
  """(position, (x, y, z, w) quaternion) of a 4x4 pose."""
  r = np.asarray(pose_44, np.float64)[:3, :3]
  trace = np.trace(r)
  # Shepperd's method: branch on the largest diagonal term for a stable square root.
  if trace > 0:
    s = 2.0 * math.sqrt(trace + 1.0)
    q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
  elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
    s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
    q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
  elif r[1, 1] > r[2, 2]:
    s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
    q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
  else:
    s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
    q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
  q = np.asarray(q) / np.linalg.norm(q)
  return [float(v) for v in np.asarray(pose_44)[:3, 3]], [float(v) for v in q]


def rotation_z(yaw: float) -> np.ndarray:
  c, s = math.cos(yaw), math.sin(yaw)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _check_vector(name: str, value: Any, size: int) -> np.ndarray:
  array = np.asarray(value, np.float64)
  if array.shape != (size,):
    raise ValueError(f"{name} must have shape ({size},); got {array.shape}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} has non-finite values: {array}")
  return array


def _pybullet():
  try:
    import pybullet  # noqa: PLC0415
    import pybullet_data  # noqa: PLC0415
  except ImportError as error:  # an optional extra
    raise ImportError("jaxlab.robosplat.sim needs pybullet: pip install 'jaxlab[robot]'") from error
  return pybullet, pybullet_data


# ----------------------------------------------------------------------------- the world


class World:
  """A pybullet DIRECT client holding the tabletop. Use as a context manager (or `close`).

  After `reset`, `robot`, `table`, `tray`, `object`, `floor` are the pybullet body ids and
  `link_index` maps robot link names to pybullet link indices (-1 = the base link).
  `embodiment` is the robot (`jaxlab.robosplat.embodiments`); `reset` can switch it.
  """

  def __init__(self, spec: TabletopSpec | None = None, embodiment: str = "panda"):
    self.spec = spec or TabletopSpec()
    self.embodiment: Embodiment = get_embodiment(embodiment)
    self._arm_joints: tuple[int, ...] = ARM_JOINTS
    self._finger_joints: tuple[int, ...] = FINGER_JOINTS
    self._p, pybullet_data = _pybullet()
    self._data = pathlib.Path(pybullet_data.getDataPath())
    self._client = self._p.connect(self._p.DIRECT)
    self.light = Light()
    self._texture: np.ndarray | None = None  # the table texture, re-applied after resets
    self.object_name = ""
    self.robot = self.table = self.tray = self.object = self.floor = -1
    self.link_index: dict[str, int] = {}
    self._attached: np.ndarray | None = None  # object pose in the hand frame while grasped
    self._finger = np.full(2, FINGER_OPEN)
    self._arm = INIT_QPOS[:7].copy()
    self._object_center_local = np.zeros(3)  # bounding-box centre in the object's URDF frame
    self._object_half_extents = np.zeros(3)  # in the object's URDF frame
    self._object_inertial = np.eye(4)  # URDF frame -> pybullet base (centre of mass) frame
    self.reset()

  # --------------------------------------------------------------------------- lifecycle

  def close(self) -> None:
    if self._client is not None:
      self._p.disconnect(self._client)
      self._client = None

  def __enter__(self) -> World:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # interpreter shutdown: modules may be gone
      pass

  def _call(self, fn, *args, **kwargs):
    return fn(*args, physicsClientId=self._client, **kwargs)

  def reset(self, object_name: str = "cube", object_xy_yaw: Sequence[float] | None = None,
            qpos: Sequence[float] | None = None, embodiment: str | None = None) -> None:
    """Rebuilds the scene from scratch (deterministic: same arguments, same world).

    Args:
      object_name: a key of `OBJECTS`.
      object_xy_yaw: the object's bounding-box centre (x, y) on the table and yaw (rad);
        None: the spec's source pose.
      qpos: 9 joint positions (7 arm + 2 fingers); None: the embodiment's home.
      embodiment: switch to this robot; None: keep the current one.
    """
    if object_name not in OBJECTS:
      raise ValueError(f"unknown object {object_name!r}; choose one of {sorted(OBJECTS)}")
    if embodiment is not None:
      self.embodiment = get_embodiment(embodiment)
    xy_yaw = _check_vector("object_xy_yaw", self.spec.object_xy_yaw if object_xy_yaw is None else object_xy_yaw, 3)
    qpos = _check_vector("qpos", self.embodiment.init_qpos_9 if qpos is None else qpos, 9)
    p = self._p
    self._call(p.resetSimulation)
    self._call(p.setGravity, 0, 0, -9.81)
    self._call(p.setTimeStep, 1.0 / PHYSICS_HZ)
    self._call(p.setPhysicsEngineParameter, deterministicOverlappingPairs=1)
    spec = self.spec
    if spec.floor:
      self.floor = self._call(p.loadURDF, str(self._data / "plane.urdf"), [0, 0, -spec.table_height], useFixedBase=True)
    self.table = self._call(p.loadURDF, str(self._data / "table" / "table.urdf"),
                            [spec.table_xy[0], spec.table_xy[1], -spec.table_height], useFixedBase=True)
    # The traybox mesh dips 1 cm below its origin (scaled): lift it onto the table.
    self.tray = self._call(p.loadURDF, str(self._data / "tray" / "traybox.urdf"),
                           [spec.tray_xy[0], spec.tray_xy[1], 0.01 * spec.tray_scale],
                           globalScaling=spec.tray_scale, useFixedBase=True)
    self.robot = self._call(p.loadURDF, self.embodiment.urdf_path(), [0, 0, 0], useFixedBase=True)
    self.link_index = {self.embodiment.base_link: -1}
    joint_index = {}
    for j in range(self._call(p.getNumJoints, self.robot)):
      info = self._call(p.getJointInfo, self.robot, j)
      self.link_index[info[12].decode()] = j
      joint_index[info[1].decode()] = j
    self._arm_joints = tuple(joint_index[n] for n in self.embodiment.arm_joints)
    self._finger_joints = tuple(joint_index[n] for n in self.embodiment.finger_joints)
    self._load_object(object_name, xy_yaw)
    if self._texture is not None:
      self._apply_table_texture()
    self._attached = None
    self.set_arm(qpos)
    # Let the object come to rest (a mesh object may tilt onto its collision hull's feet),
    # so the first observation is a resting scene.
    self._physics(RESET_SETTLE_SUBSTEPS)

  def _load_object(self, name: str, xy_yaw: np.ndarray) -> None:
    p = self._p
    asset = OBJECTS[name]
    if asset.kind == "urdf":
      body = self._call(p.loadURDF, str(self._data / asset.source), _PARKED_POSITION, globalScaling=asset.scale)
    else:
      if asset.kind == "mesh":
        scale = [asset.scale] * 3
        visual = self._call(p.createVisualShape, p.GEOM_MESH, fileName=str(self._data / asset.source),
                            meshScale=scale)
        collision = self._call(p.createCollisionShape, p.GEOM_MESH, fileName=str(self._data / asset.collision_mesh),
                               meshScale=scale)
        lower, upper = (asset.scale * v for v in _obj_bounds(self._data / asset.source))
        middle = 0.5 * (lower + upper)
        center_of_mass = [middle[0], middle[1], lower[2] + (upper[2] - lower[2]) / 3]
      elif asset.kind == "box":
        visual = self._call(p.createVisualShape, p.GEOM_BOX, halfExtents=list(asset.size), rgbaColor=list(asset.rgba))
        collision = self._call(p.createCollisionShape, p.GEOM_BOX, halfExtents=list(asset.size))
        center_of_mass = [0.0, 0.0, 0.0]
      elif asset.kind == "cylinder":
        radius, height = asset.size
        visual = self._call(p.createVisualShape, p.GEOM_CYLINDER, radius=radius, length=height,
                            rgbaColor=list(asset.rgba))
        collision = self._call(p.createCollisionShape, p.GEOM_CYLINDER, radius=radius, height=height)
        center_of_mass = [0.0, 0.0, 0.0]
      else:
        raise ValueError(f"object {name!r}: unknown kind {asset.kind!r}")
      # The visual and collision shapes stay in the body frame; only the inertial frame moves.
      body = self._call(p.createMultiBody, baseMass=asset.mass, baseCollisionShapeIndex=collision,
                        baseVisualShapeIndex=visual, basePosition=_PARKED_POSITION,
                        baseInertialFramePosition=center_of_mass)
    if asset.rgba is not None and asset.kind == "urdf":
      self._call(p.changeVisualShape, body, -1, rgbaColor=list(asset.rgba))
    self._call(p.changeDynamics, body, -1, lateralFriction=1.0, spinningFriction=0.001, rollingFriction=0.0)
    dynamics = self._call(p.getDynamicsInfo, body, -1)
    self._object_inertial = pose_from_pybullet(dynamics[3], dynamics[4])
    self.object, self.object_name = body, name
    # Bounding box at yaw 0 (upright), measured in the URDF frame once.
    lower, upper = (np.asarray(v) for v in self._call(p.getAABB, body))
    frame = self._object_frame_pose()
    corners = np.stack(np.meshgrid(*zip(lower, upper), indexing="ij"), -1).reshape(-1, 3)
    local = (corners - frame[:3, 3]) @ frame[:3, :3]
    self._object_center_local = 0.5 * (local.min(0) + local.max(0))
    self._object_half_extents = 0.5 * (local.max(0) - local.min(0))
    self.set_object_pose(self._object_pose_for(xy_yaw))

  def _object_pose_for(self, xy_yaw: np.ndarray) -> np.ndarray:
    """URDF-frame pose that puts the bounding-box centre at (x, y), resting on the table."""
    rest = self._call(self._p.getQuaternionFromEuler, OBJECTS[self.object_name].rest_rpy)
    pose = np.eye(4)
    pose[:3, :3] = rotation_z(xy_yaw[2]) @ pose_from_pybullet([0, 0, 0], rest)[:3, :3]
    pose[:3, 3] = np.array([xy_yaw[0], xy_yaw[1], 0.0]) - pose[:3, :3] @ self._object_center_local
    pose[2, 3] = 0.0
    # Lift it until its collision shape's lowest point is a hair above the table.
    self.set_object_pose(pose)
    lowest = self._call(self._p.getAABB, self.object)[0][2]
    pose[2, 3] += 1e-4 - lowest
    return pose

  # --------------------------------------------------------------------------- state access

  def _object_frame_pose(self) -> np.ndarray:
    position, quat = self._call(self._p.getBasePositionAndOrientation, self.object)
    # pybullet's base pose is the centre-of-mass frame; the URDF frame is behind the inertial offset.
    return pose_from_pybullet(position, quat) @ np.linalg.inv(self._object_inertial)

  def object_pose(self) -> np.ndarray:
    """4x4 pose of the object's URDF (mesh) frame in the world."""
    return self._object_frame_pose()

  def object_center(self) -> np.ndarray:
    """World position of the object's bounding-box centre (the point grasps aim at)."""
    pose = self.object_pose()
    return pose[:3, :3] @ self._object_center_local + pose[:3, 3]

  @property
  def object_half_extents(self) -> np.ndarray:
    """Half sizes of the object's bounding box in its own (upright) frame."""
    return self._object_half_extents.copy()

  def set_object_pose(self, pose_44: np.ndarray) -> None:
    """Places the object's URDF frame at `pose_44`, at rest."""
    base = np.asarray(pose_44, np.float64) @ self._object_inertial
    position, quat = pose_to_pybullet(base)
    self._call(self._p.resetBasePositionAndOrientation, self.object, position, quat)
    self._call(self._p.resetBaseVelocity, self.object, [0, 0, 0], [0, 0, 0])

  def set_arm(self, qpos_9: Sequence[float]) -> None:
    """Sets the 9 joint positions at once (no physics); a grasped object follows the hand."""
    qpos = _check_vector("qpos_9", qpos_9, 9)
    self._arm = qpos[:7].copy()
    self._finger = np.clip(qpos[7:], 0.0, FINGER_OPEN)
    self._hold_robot()
    if self._attached is not None:
      self.set_object_pose(self.link_pose(HAND_LINK_NAME) @ self._attached)

  def _hold_robot(self) -> None:
    p = self._p
    for joint, value in zip((*self._arm_joints, *self._finger_joints), (*self._arm, *self._finger)):
      self._call(p.resetJointState, self.robot, joint, float(value), 0.0)
    # Motors hold the pose during physics steps (a kinematic arm): strong position control.
    joints = [*self._arm_joints, *self._finger_joints]
    self._call(p.setJointMotorControlArray, self.robot, joints, p.POSITION_CONTROL,
               targetPositions=[*self._arm, *self._finger], forces=[1e4] * len(joints))

  def qpos(self) -> np.ndarray:
    """The 9 joint positions."""
    return np.concatenate([self._arm, self._finger])

  def state(self) -> np.ndarray:
    """Proprioception: 7 arm joints + gripper width (sum of the finger joints, m)."""
    return np.concatenate([self._arm, [self._finger.sum()]])

  def link_pose(self, name: str) -> np.ndarray:
    """World pose (URDF link frame) of a robot link."""
    if name not in self.link_index:
      raise ValueError(f"unknown robot link {name!r}; links: {sorted(self.link_index)}")
    index = self.link_index[name]
    if index < 0:
      # pybullet reports the base's centre-of-mass frame; the URDF frame is behind its inertial offset.
      position, quat = self._call(self._p.getBasePositionAndOrientation, self.robot)
      dynamics = self._call(self._p.getDynamicsInfo, self.robot, -1)
      return pose_from_pybullet(position, quat) @ np.linalg.inv(pose_from_pybullet(dynamics[3], dynamics[4]))
    state = self._call(self._p.getLinkState, self.robot, index, computeForwardKinematics=True)
    return pose_from_pybullet(state[4], state[5])  # the URDF link frame, not the inertial one

  def link_states(self) -> dict[str, np.ndarray]:
    """World poses (URDF link frames, 4x4) of every robot link, keyed by link name."""
    return {name: self.link_pose(name) for name in self.link_index}

  def ee_pose(self) -> np.ndarray:
    """World pose of the end effector (`EE_LINK_NAME`, between the fingertips)."""
    return self.link_pose(EE_LINK_NAME)

  @property
  def attached(self) -> bool:
    """Whether the object is grasped (rigidly following the hand)."""
    return self._attached is not None

  # --------------------------------------------------------------------------- control

  def _finger_stop(self) -> float:
    """Per-finger opening where closing fingers meet the grasped object (0: nothing held)."""
    if self._attached is None:
      return 0.0
    # The fingers close along the hand's y axis: the object's half width along it.
    finger_axis_obj = self._attached[:3, :3].T @ np.array([0.0, 1.0, 0.0])
    return float(min(FINGER_OPEN, np.abs(finger_axis_obj) @ self._object_half_extents))

  def step(self, action_8: Sequence[float]) -> np.ndarray:
    """Applies one 22 Hz control step and returns the new 8-D state.

    Args:
      action_8: 7 absolute arm joint targets (clipped to the joint limits) and the gripper
        command (>= 0.5: open, < 0.5: close).
    """
    action = _check_vector("action_8", action_8, 8)
    p = self._p
    low = np.array([self._call(p.getJointInfo, self.robot, j)[8] for j in self._arm_joints])
    high = np.array([self._call(p.getJointInfo, self.robot, j)[9] for j in self._arm_joints])
    self._arm = np.clip(action[:7], low, high)
    close = action[7] < 0.5
    self._hold_robot()
    if close and self._attached is None:
      if np.linalg.norm(self.object_center() - self.ee_pose()[:3, 3]) <= GRASP_RADIUS:
        self._attach()
    elif not close and self._attached is not None:
      self._release()
    target = self._finger_stop() if close else FINGER_OPEN
    self._finger = self._finger + np.clip(target - self._finger, -FINGER_STEP, FINGER_STEP)
    self._hold_robot()
    self._physics(SUBSTEPS)
    return self.state()

  def settle(self, num_steps: int = 22) -> None:
    """Physics only for `num_steps` control steps (the arm holds still)."""
    self._physics(num_steps * SUBSTEPS)

  def _physics(self, substeps: int) -> None:
    hand_to_object = None
    if self._attached is not None:
      hand_to_object = self.link_pose(HAND_LINK_NAME) @ self._attached
      self.set_object_pose(hand_to_object)
    for _ in range(substeps):
      self._call(self._p.stepSimulation)
      if hand_to_object is not None:  # rigid follow: the grasped object does not fall
        self.set_object_pose(hand_to_object)
    self._hold_robot()  # exact joint values, whatever the motors did

  def _set_robot_object_collision(self, enabled: bool) -> None:
    for index in self.link_index.values():
      self._call(self._p.setCollisionFilterPair, self.robot, self.object, index, -1, int(enabled))

  def _attach(self) -> None:
    self._attached = np.linalg.inv(self.link_pose(HAND_LINK_NAME)) @ self.object_pose()
    self._set_robot_object_collision(False)  # held: the fingers must not push it around

  def _release(self) -> None:
    self._attached = None
    self._call(self._p.resetBaseVelocity, self.object, [0, 0, 0], [0, 0, 0])
    self._set_robot_object_collision(True)

  def success(self) -> bool:
    """Object released, its centre inside the tray's footprint and below the tray's rim."""
    if self._attached is not None:
      return False
    center = self.object_center()
    half = self.spec.tray_half_size
    inside = (abs(center[0] - self.spec.tray_xy[0]) < half and abs(center[1] - self.spec.tray_xy[1]) < half)
    return bool(inside and center[2] < self.spec.tray_rim_height)

  # --------------------------------------------------------------------------- appearance

  def set_light(self, direction_3: Sequence[float] = Light.direction_3, color_3: Sequence[float] = Light.color_3,
                ambient: float = Light.ambient, diffuse: float = Light.diffuse, *,
                specular: float = Light.specular, shadow: bool = False) -> None:
    """Sets the light every render of this world uses."""
    direction = _check_vector("direction_3", direction_3, 3)
    color = _check_vector("color_3", color_3, 3)
    if np.linalg.norm(direction) < 1e-9:
      raise ValueError("direction_3 must be non-zero")
    self.light = Light(tuple(direction), tuple(color), float(ambient), float(diffuse), float(specular), bool(shadow))

  def set_table_texture(self, image_hw3: np.ndarray | None) -> None:
    """Textures the table (uint8 [H, W, 3]), now and after every reset; None: its own texture."""
    if image_hw3 is not None:
      image_hw3 = np.asarray(image_hw3)
      if image_hw3.ndim != 3 or image_hw3.shape[2] != 3 or image_hw3.dtype != np.uint8:
        raise ValueError(f"image_hw3 must be uint8 [H, W, 3]; got {image_hw3.dtype} {image_hw3.shape}")
      image_hw3 = image_hw3.copy()
    self._texture = image_hw3
    self._apply_table_texture()

  def _apply_table_texture(self) -> None:
    if self._texture is None:
      texture = self._call(self._p.loadTexture, str(self._data / "table" / "table.png"))
    else:
      import imageio.v3 as iio  # noqa: PLC0415

      # pybullet loads textures from files only: a temporary PNG, gone once loaded.
      with tempfile.TemporaryDirectory(prefix="jaxlab_sim_texture_") as folder:
        path = os.path.join(folder, "table.png")
        iio.imwrite(path, self._texture)
        texture = self._call(self._p.loadTexture, path)
    self._call(self._p.changeVisualShape, self.table, -1, textureUniqueId=texture)

  @contextmanager
  def hidden(self, body_ids: Sequence[int]) -> Iterator[None]:
    """Moves the given bodies out of sight (far below the floor) and puts them back."""
    p = self._p
    saved = []
    for body in body_ids:
      saved.append((body, self._call(p.getBasePositionAndOrientation, body)))
      self._call(p.resetBasePositionAndOrientation, body, _PARKED_POSITION, [0, 0, 0, 1])
    try:
      yield
    finally:
      for body, (position, quat) in saved:
        self._call(p.resetBasePositionAndOrientation, body, position, quat)
      if self.robot in body_ids:
        self._hold_robot()

  @property
  def body_ids(self) -> dict[str, int]:
    """Named pybullet body ids ("floor" is -1 without a floor)."""
    return {"robot": self.robot, "table": self.table, "tray": self.tray, "object": self.object, "floor": self.floor}

  @property
  def client(self) -> int:
    return self._client

  @property
  def pybullet(self):
    """The pybullet module (for renders and scripted IK on this world's client)."""
    return self._p
