"""Camera presets: named viewpoints the viewer can jump to.

A preset is an OpenCV camera-to-world pose (x right, y down, z forward, the convention of
`jaxlab.splat.Camera`) and a vertical field of view; the image size is the viewer's.
Presets come from a dataset's cameras (`presets_from_cameras`), from a 3DGS model's
`cameras.json` (`jaxlab.view.inria_cameras`), or from an orbit around the scene
(`orbit_presets`, `presets_around`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np

from jaxlab.splat.camera import Camera, look_at

ORBIT_NAMES = ("front", "right", "back", "left", "top")
ORBIT_ELEVATION = math.radians(30.0)
# presets_around: the orbit radius in 90th-percentile distances of the points from their median.
RADIUS_PER_SPREAD = 2.2
SPREAD_PERCENTILE = 90.0


@dataclasses.dataclass(frozen=True, eq=False)
class CameraPreset:
  """A named viewpoint.

  Attributes:
    name: shown in the viewer (a dataset image name, or "front", "top", ...).
    camera_to_world_44: float64 [4, 4] pose, OpenCV axes; stored as a read-only copy.
    fov_y: vertical field of view in radians, in (0, pi).
  """

  name: str
  camera_to_world_44: np.ndarray
  fov_y: float

  def __post_init__(self):
    pose_44 = np.array(self.camera_to_world_44, np.float64)  # a copy the caller cannot change
    if pose_44.shape != (4, 4) or not np.all(np.isfinite(pose_44)):
      raise ValueError(f"preset {self.name!r}: camera_to_world_44 must be a finite [4, 4] array; got shape {pose_44.shape}")
    fov_y = float(self.fov_y)
    if not 0.0 < fov_y < math.pi:
      raise ValueError(f"preset {self.name!r}: fov_y must be in (0, pi) radians; got {self.fov_y!r}")
    pose_44.flags.writeable = False
    object.__setattr__(self, "camera_to_world_44", pose_44)
    object.__setattr__(self, "fov_y", fov_y)


def presets_from_cameras(cameras: Camera, names: Sequence[str]) -> list[CameraPreset]:
  """One preset per camera of a (batched) `Camera`: pose = inverse of world_to_camera, fov_y = 2 atan(H / (2 fy))."""
  world_to_camera_v44 = np.asarray(jax.device_get(cameras.world_to_camera), np.float64).reshape(-1, 4, 4)
  fy_v = np.asarray(jax.device_get(cameras.fy), np.float64).reshape(-1)
  names = [str(name) for name in names]
  if len(names) != len(world_to_camera_v44):
    raise ValueError(f"presets_from_cameras: {len(world_to_camera_v44)} cameras but {len(names)} names")
  camera_to_world_v44 = np.linalg.inv(world_to_camera_v44)
  fov_y_v = 2.0 * np.arctan(cameras.height / (2.0 * fy_v))
  return [CameraPreset(name, pose_44, float(fov_y))
          for name, pose_44, fov_y in zip(names, camera_to_world_v44, fov_y_v)]


def _unit(vector_3: np.ndarray, what: str) -> np.ndarray:
  norm = float(np.linalg.norm(vector_3))
  if not (math.isfinite(norm) and norm > 0):
    raise ValueError(f"{what} must be a finite non-zero vector; got {vector_3.tolist()}")
  return vector_3 / norm


def _front_direction(up_3: np.ndarray) -> np.ndarray:
  """Unit vector from the centre to the "front" camera, perpendicular to up.

  -y for z-up scenes, +z for y-up ones: of these two hints one always keeps at least
  1/sqrt(2) of its length when projected off `up_3`.
  """
  for hint in ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)):
    flat = np.asarray(hint) - np.dot(hint, up_3) * up_3
    if np.linalg.norm(flat) > 0.5:
      return flat / np.linalg.norm(flat)
  raise AssertionError("unreachable: one hint is always far from up")


def orbit_presets(center_3, radius: float, *, up_3=(0.0, 0.0, 1.0), fov_y: float = math.radians(50.0)) -> list[CameraPreset]:
  """"front", "right", "back", "left" at 30 degrees above the horizon, and "top", all `radius` from `center_3`, looking at it.

  "right" is on the right of the front camera's image; "top" looks down along -up with the
  front side at the bottom of its image.
  """
  center = np.asarray(center_3, np.float64).reshape(3)
  if not np.all(np.isfinite(center)):
    raise ValueError(f"orbit centre must be finite; got {center.tolist()}")
  radius = float(radius)
  if not (math.isfinite(radius) and radius > 0):
    raise ValueError(f"orbit radius must be a finite number > 0; got {radius!r}")
  up = _unit(np.asarray(up_3, np.float64).reshape(3), "up_3")
  front = _front_direction(up)
  right = np.cross(-front, up)  # the front camera's image x axis
  presets = []
  for name, direction in zip(ORBIT_NAMES[:4], (front, right, -front, -right)):
    eye = center + radius * (math.cos(ORBIT_ELEVATION) * direction + math.sin(ORBIT_ELEVATION) * up)
    presets.append(CameraPreset(name, np.asarray(look_at(eye, center, up_3=up), np.float64), fov_y))
  presets.append(CameraPreset("top", np.asarray(look_at(center + radius * up, center, up_3=-front), np.float64), fov_y))
  return presets


def presets_around(points_n3: np.ndarray, **kwargs) -> list[CameraPreset]:
  """`orbit_presets` around the robust bounds of `points_n3`: the median point, and radius 2.2 x the
  90th-percentile distance from it (stray points far out do not shrink the scene to a dot).

  Non-finite points are ignored; with no points the orbit is around the origin at radius 1.
  Keyword arguments go to `orbit_presets` (up_3, fov_y).
  """
  points = np.asarray(points_n3, np.float64).reshape(-1, 3)
  points = points[np.all(np.isfinite(points), axis=1)]
  if len(points) == 0:
    return orbit_presets(np.zeros(3), 1.0, **kwargs)
  center = np.median(points, axis=0)
  spread = float(np.percentile(np.linalg.norm(points - center, axis=1), SPREAD_PERCENTILE))
  radius = RADIUS_PER_SPREAD * spread if spread > 0 else 1.0
  return orbit_presets(center, radius, **kwargs)
