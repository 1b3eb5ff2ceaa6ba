"""The scenes MultiSPA questions are made from: posted RGB-D frames of a static scene, and 3D point tracks.

Conventions, shared by every reader, the room generator and the engine:

- World: gravity aligned, z up (ScanNet's axis-aligned frame), metres.
- Camera: OpenCV, x right, y down, z forward; `cam_to_world_44` maps camera points to world points.
- Depth: float32 metres along the camera z axis; 0 where nothing was measured.
- Instances: int32 object ids per pixel; 0 where no object is seen.
- Pixels: (u, v) = (column, row), pixel centres at integer + 0.5.

Constructors check shapes and values and raise `SceneError` naming the frame and the problem, so a
malformed scene never reaches the engine.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class SceneError(ValueError):
  """A scene, frame or track that the engine cannot use (the message names which and why)."""


def _check_matrix(name: str, value: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
  value = np.asarray(value, np.float64)
  if value.shape != shape:
    raise SceneError(f"{where}: {name} must have shape {shape}, got {value.shape}")
  if not np.all(np.isfinite(value)):
    raise SceneError(f"{where}: {name} holds NaN or inf")
  return value


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
  """One posed RGB-D view.

  rgb_hw3: uint8 [H, W, 3]. depth_hw: float32 [H, W] metres (0 = unknown). intrinsics_33: pinhole K.
  cam_to_world_44: camera-to-world rigid transform. instances_hw: int32 [H, W] object ids or None.
  """

  name: str
  rgb_hw3: np.ndarray
  depth_hw: np.ndarray
  intrinsics_33: np.ndarray
  cam_to_world_44: np.ndarray
  instances_hw: np.ndarray | None = None

  def __post_init__(self):
    where = f"frame {self.name!r}"
    rgb = np.asarray(self.rgb_hw3)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
      raise SceneError(f"{where}: rgb must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    depth = np.asarray(self.depth_hw, np.float32)
    if depth.shape != rgb.shape[:2]:
      raise SceneError(f"{where}: depth is {depth.shape[1]}x{depth.shape[0]} but the image is "
                       f"{rgb.shape[1]}x{rgb.shape[0]} (resize one to the other before building the frame)")
    if not np.all(np.isfinite(depth)) or np.any(depth < 0):
      raise SceneError(f"{where}: depth must be finite and >= 0 (metres)")
    if depth.max(initial=0.0) > 100.0:
      raise SceneError(f"{where}: depth reaches {depth.max():.0f}, more than 100 m: millimetres given as metres?")
    k = _check_matrix("intrinsics", self.intrinsics_33, (3, 3), where)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
      raise SceneError(f"{where}: intrinsics need positive focal lengths, got fx={k[0, 0]}, fy={k[1, 1]}")
    pose = _check_matrix("cam_to_world", self.cam_to_world_44, (4, 4), where)
    if not np.allclose(pose[3], [0, 0, 0, 1]) or not np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-3):
      raise SceneError(f"{where}: cam_to_world is not a rigid transform")
    object.__setattr__(self, "rgb_hw3", rgb)
    object.__setattr__(self, "depth_hw", depth)
    object.__setattr__(self, "intrinsics_33", k)
    object.__setattr__(self, "cam_to_world_44", pose)
    if self.instances_hw is not None:
      inst = np.asarray(self.instances_hw, np.int32)
      if inst.shape != rgb.shape[:2]:
        raise SceneError(f"{where}: instance mask shape {inst.shape} differs from the image's {rgb.shape[:2]}")
      object.__setattr__(self, "instances_hw", inst)

  @property
  def height(self) -> int:
    return int(self.rgb_hw3.shape[0])

  @property
  def width(self) -> int:
    return int(self.rgb_hw3.shape[1])


@dataclasses.dataclass(frozen=True, eq=False)
class SceneObject:
  """An object with its world axis-aligned 3D box (centre and full extent along x, y, z, metres).

  Sizes as the questions ask them: height = z extent, length = the longer and width = the shorter
  horizontal extent.
  """

  id: int
  label: str
  center_3: np.ndarray
  extent_3: np.ndarray

  def __post_init__(self):
    where = f"object {self.id} ({self.label!r})"
    if int(self.id) <= 0:
      raise SceneError(f"{where}: object ids start at 1 (0 means no object)")
    object.__setattr__(self, "center_3", _check_matrix("center", self.center_3, (3,), where))
    extent = _check_matrix("extent", self.extent_3, (3,), where)
    if np.any(extent <= 0):
      raise SceneError(f"{where}: box extents must be positive, got {extent}")
    object.__setattr__(self, "extent_3", extent)

  @property
  def height(self) -> float:
    return float(self.extent_3[2])

  @property
  def length(self) -> float:
    return float(max(self.extent_3[0], self.extent_3[1]))

  @property
  def width(self) -> float:
    return float(min(self.extent_3[0], self.extent_3[1]))


@dataclasses.dataclass(frozen=True, eq=False)
class StaticScene:
  """Frames of one unchanging scene, its objects, and world surface points (for overlap and coverage).

  points_world_n3: float [N, 3] samples of the scene's surfaces (ScanNet: the mesh vertices).
  point_object_ids_n: int32 [N] the object each point belongs to (0 = none).
  """

  name: str
  frames: tuple[Frame, ...]
  objects: tuple[SceneObject, ...]
  points_world_n3: np.ndarray
  point_object_ids_n: np.ndarray

  def __post_init__(self):
    where = f"scene {self.name!r}"
    object.__setattr__(self, "frames", tuple(self.frames))
    object.__setattr__(self, "objects", tuple(self.objects))
    if not self.frames:
      raise SceneError(f"{where}: no frames")
    points = np.asarray(self.points_world_n3, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
      raise SceneError(f"{where}: points must be finite [N, 3], got {points.shape}")
    ids = np.asarray(self.point_object_ids_n, np.int32)
    if ids.shape != (points.shape[0],):
      raise SceneError(f"{where}: point_object_ids has shape {ids.shape}, expected ({points.shape[0]},)")
    object.__setattr__(self, "points_world_n3", points)
    object.__setattr__(self, "point_object_ids_n", ids)
    if len({o.id for o in self.objects}) != len(self.objects):
      raise SceneError(f"{where}: two objects share an id")

  def object_by_id(self, object_id: int) -> SceneObject:
    for o in self.objects:
      if o.id == object_id:
        return o
    raise KeyError(f"scene {self.name!r} has no object {object_id}")


@dataclasses.dataclass(frozen=True, eq=False)
class TrackScene:
  """A video with 3D point tracks (TAPVid-3D's content, tracks moved to the world frame).

  rgb_thw3: uint8 [T, H, W, 3]. intrinsics_33: one pinhole K for every frame. cam_to_world_t44:
  [T, 4, 4]. points_world_tn3: [T, N, 3] metres. visible_tn: bool [T, N]. source: the dataset the
  tracks come from ("adt", "pstudio", or a generated source's name); object-movement subtasks are
  reported per source.
  """

  name: str
  source: str
  rgb_thw3: np.ndarray
  intrinsics_33: np.ndarray
  cam_to_world_t44: np.ndarray
  points_world_tn3: np.ndarray
  visible_tn: np.ndarray

  def __post_init__(self):
    where = f"track scene {self.name!r}"
    rgb = np.asarray(self.rgb_thw3)
    if rgb.ndim != 4 or rgb.shape[3] != 3 or rgb.dtype != np.uint8:
      raise SceneError(f"{where}: frames must be uint8 [T, H, W, 3], got {rgb.dtype} {rgb.shape}")
    t = rgb.shape[0]
    object.__setattr__(self, "intrinsics_33", _check_matrix("intrinsics", self.intrinsics_33, (3, 3), where))
    poses = np.asarray(self.cam_to_world_t44, np.float64)
    if poses.shape != (t, 4, 4) or not np.all(np.isfinite(poses)):
      raise SceneError(f"{where}: cam_to_world must be finite [{t}, 4, 4], got {poses.shape}")
    points = np.asarray(self.points_world_tn3, np.float64)
    if points.ndim != 3 or points.shape[0] != t or points.shape[2] != 3:
      raise SceneError(f"{where}: tracks must be [{t}, N, 3], got {points.shape}")
    visible = np.asarray(self.visible_tn, bool)
    if visible.shape != points.shape[:2]:
      raise SceneError(f"{where}: visibility has shape {visible.shape}, tracks {points.shape[:2]}")
    if not np.all(np.isfinite(points[visible])):
      raise SceneError(f"{where}: a visible track point is NaN or inf")
    object.__setattr__(self, "rgb_thw3", rgb)
    object.__setattr__(self, "cam_to_world_t44", poses)
    object.__setattr__(self, "points_world_tn3", points)
    object.__setattr__(self, "visible_tn", visible)

  @property
  def num_frames(self) -> int:
    return int(self.rgb_thw3.shape[0])

  @property
  def height(self) -> int:
    return int(self.rgb_thw3.shape[1])

  @property
  def width(self) -> int:
    return int(self.rgb_thw3.shape[2])
