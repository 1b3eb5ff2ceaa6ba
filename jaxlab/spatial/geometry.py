"""Camera geometry for MultiSPA: projection, the depth test, frame overlap, relative camera motion, labels.

Conventions are those of `jaxlab.spatial.scene`: world z up (metres); camera OpenCV (x right, y down,
z forward); `cam_to_world_44` maps camera points to world points; pixel (u, v) = (column, row) with pixel
centres at integer + 0.5.

Camera motion between two frames follows the method: E_12 = inv(E_1) @ E_2 gives camera 2 in camera 1's
frame, so its translation is the displacement in camera 1's axes (x > 0 right, y > 0 down, z > 0 forward).
Yaw and pitch are read from each camera's forward axis in the gravity-aligned world (no roll): yaw grows
counter-clockwise seen from above (turning left), pitch grows when the camera tilts up.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxlab.spatial.scene import Frame


def _pose(name: str, value) -> np.ndarray:
  pose = np.asarray(value, np.float64)
  if pose.shape != (4, 4):
    raise ValueError(f"{name} must be a 4x4 matrix, got shape {pose.shape}")
  if not np.all(np.isfinite(pose)):
    raise ValueError(f"{name} holds NaN or inf")
  return pose


def _points(name: str, value) -> np.ndarray:
  points = np.asarray(value, np.float64)
  if points.ndim != 2 or points.shape[1] != 3:
    raise ValueError(f"{name} must have shape [N, 3], got {points.shape}")
  return points


def _rigid_inverse(pose_44: np.ndarray) -> np.ndarray:
  # The transpose is the exact inverse of a rotation; np.linalg.inv would add round-off.
  rot_t = pose_44[:3, :3].T
  inv = np.eye(4)
  inv[:3, :3] = rot_t
  inv[:3, 3] = -rot_t @ pose_44[:3, 3]
  return inv


def world_to_camera(points_world_n3, cam_to_world_44) -> np.ndarray:
  """World points [N, 3] in the camera's frame [N, 3] (x right, y down, z forward)."""
  points = _points("points_world_n3", points_world_n3)
  pose = _pose("cam_to_world_44", cam_to_world_44)
  return (points - pose[:3, 3]) @ pose[:3, :3]


def project(points_world_n3, intrinsics_33, cam_to_world_44) -> tuple[np.ndarray, np.ndarray]:
  """Pixel coordinates uv [N, 2] and camera depth z [N] of world points; uv is NaN where z <= 0."""
  k = np.asarray(intrinsics_33, np.float64)
  if k.shape != (3, 3):
    raise ValueError(f"intrinsics_33 must be 3x3, got shape {k.shape}")
  points_cam_n3 = world_to_camera(points_world_n3, cam_to_world_44)
  z_n = points_cam_n3[:, 2].copy()
  in_front = z_n > 0
  homog_n3 = points_cam_n3 @ k.T
  uv_n2 = np.full((len(z_n), 2), np.nan)
  uv_n2[in_front] = homog_n3[in_front, :2] / z_n[in_front, None]
  return uv_n2, z_n


def visible_mask(points_world_n3, frame: Frame, *, depth_tolerance: float = 0.05) -> np.ndarray:
  """bool [N]: the point lands inside the image, in front of the camera, and is not hidden.

  Hidden means behind the measured surface: the method's `0 < z < D(u, v)`, with `depth_tolerance`
  metres of slack so that points on the surface itself count as seen. Pixels with unknown depth (0)
  see nothing.
  """
  uv_n2, z_n = project(points_world_n3, frame.intrinsics_33, frame.cam_to_world_44)
  h, w = frame.depth_hw.shape
  u, v = uv_n2[:, 0], uv_n2[:, 1]
  with np.errstate(invalid="ignore"):
    ok = (z_n > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
  cols = np.zeros(len(z_n), np.int64)
  rows = np.zeros(len(z_n), np.int64)
  cols[ok] = np.minimum(np.floor(u[ok]).astype(np.int64), w - 1)
  rows[ok] = np.minimum(np.floor(v[ok]).astype(np.int64), h - 1)
  depth_n = frame.depth_hw[rows, cols].astype(np.float64)
  return ok & (depth_n > 0) & (z_n < depth_n + depth_tolerance)


def overlap(mask_a_n, mask_b_n) -> float:
  """Intersection over union of two visible point sets (0 when neither sees anything)."""
  a = np.asarray(mask_a_n, bool)
  b = np.asarray(mask_b_n, bool)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"visible masks must be 1-D of the same length, got {a.shape} and {b.shape}")
  union = int(np.count_nonzero(a | b))
  if union == 0:
    return 0.0
  return float(np.count_nonzero(a & b) / union)


def relative_pose(cam_to_world_1, cam_to_world_2) -> np.ndarray:
  """E_12 = inv(E_1) @ E_2: camera 2's pose expressed in camera 1's frame [4, 4]."""
  e1 = _pose("cam_to_world_1", cam_to_world_1)
  e2 = _pose("cam_to_world_2", cam_to_world_2)
  return _rigid_inverse(e1) @ e2


def yaw_pitch_deg(cam_to_world_44) -> tuple[float, float]:
  """Yaw and pitch (degrees) of the camera's forward axis f = R[:, 2] in the z-up world.

  yaw = atan2(f_y, f_x) (counter-clockwise from world +x seen from above), pitch = asin(f_z / |f|).
  """
  f = _pose("cam_to_world_44", cam_to_world_44)[:3, 2]
  norm = float(np.linalg.norm(f))
  if norm == 0:
    raise ValueError("cam_to_world_44 has a zero forward axis")
  yaw = math.degrees(math.atan2(f[1], f[0]))
  pitch = math.degrees(math.asin(max(-1.0, min(1.0, f[2] / norm))))
  return yaw, pitch


def wrap_degrees(a: float) -> float:
  """An angle in degrees moved into (-180, 180]."""
  a = float(a)
  return a - 360.0 * math.ceil((a - 180.0) / 360.0)


@dataclasses.dataclass(frozen=True, eq=False)
class CameraMotion:
  """How camera 2 sits relative to camera 1.

  displacement_m_3: camera 2's position in camera 1's frame (metres; x right, y down, z forward).
  distance_m: its length. yaw_deg: yaw_2 - yaw_1 wrapped to (-180, 180] (> 0: turned left).
  pitch_deg: pitch_2 - pitch_1 (> 0: tilted up). relative_pose_44: E_12, kept so `swapped` can
  re-express the displacement in camera 2's frame.
  """

  displacement_m_3: np.ndarray
  distance_m: float
  yaw_deg: float
  pitch_deg: float
  relative_pose_44: np.ndarray = dataclasses.field(repr=False)

  def swapped(self) -> CameraMotion:
    """The motion from camera 2 to camera 1 (the displacement is re-expressed in camera 2's frame)."""
    back_44 = _rigid_inverse(self.relative_pose_44)
    displacement = back_44[:3, 3].copy()
    return CameraMotion(
        displacement_m_3=displacement,
        distance_m=float(np.linalg.norm(displacement)),
        yaw_deg=wrap_degrees(-self.yaw_deg),
        pitch_deg=-self.pitch_deg,
        relative_pose_44=back_44,
    )


def camera_motion(cam_to_world_1, cam_to_world_2) -> CameraMotion:
  """The motion of camera 2 relative to camera 1 (see `CameraMotion`)."""
  rel_44 = relative_pose(cam_to_world_1, cam_to_world_2)
  yaw_1, pitch_1 = yaw_pitch_deg(cam_to_world_1)
  yaw_2, pitch_2 = yaw_pitch_deg(cam_to_world_2)
  displacement = rel_44[:3, 3].copy()
  return CameraMotion(
      displacement_m_3=displacement,
      distance_m=float(np.linalg.norm(displacement)),
      yaw_deg=wrap_degrees(yaw_2 - yaw_1),
      pitch_deg=float(pitch_2 - pitch_1),
      relative_pose_44=rel_44,
  )


def direction_labels(motion: CameraMotion) -> dict[str, str]:
  """The five direction answers of the camera-movement subtasks, keyed by subtask name."""
  x, y, z = (float(c) for c in motion.displacement_m_3)
  return {
      "camera_left_right": "right" if x > 0 else "left",
      "camera_up_down": "down" if y > 0 else "up",
      "camera_forward_backward": "forward" if z > 0 else "backward",
      "camera_yaw_direction": "left" if motion.yaw_deg > 0 else "right",
      "camera_pitch_direction": "up" if motion.pitch_deg > 0 else "down",
  }


def to_millimetres(metres: float) -> int:
  """Metres as whole millimetres (rounded)."""
  return round(float(metres) * 1000.0)


def normalized_coords(u: float, v: float, width: int, height: int) -> tuple[int, int]:
  """Pixel (u, v) as the paper's 0-999 coordinates: floor(u / W * 1000), floor(v / H * 1000)."""
  if not (0 <= u < width and 0 <= v < height):
    raise ValueError(f"pixel ({u}, {v}) lies outside the {width}x{height} image")
  x = min(math.floor(u / width * 1000.0), 999)
  y = min(math.floor(v / height * 1000.0), 999)
  return x, y


def pixel_from_normalized(x: int, y: int, width: int, height: int) -> tuple[float, float]:
  """The pixel (u, v) at the centre of the 1/1000 cell that 0-999 coordinates (x, y) name."""
  if not (0 <= x <= 999 and 0 <= y <= 999):
    raise ValueError(f"normalised coordinates must lie in 0..999, got ({x}, {y})")
  return (x + 0.5) * width / 1000.0, (y + 0.5) * height / 1000.0


def unproject(u: float, v: float, depth_m: float, intrinsics_33, cam_to_world_44) -> np.ndarray:
  """The world point [3] seen at pixel (u, v) with camera depth `depth_m` (z, not ray length)."""
  k = np.asarray(intrinsics_33, np.float64)
  if k.shape != (3, 3):
    raise ValueError(f"intrinsics_33 must be 3x3, got shape {k.shape}")
  if not depth_m > 0:
    raise ValueError(f"depth must be positive to unproject, got {depth_m}")
  pose = _pose("cam_to_world_44", cam_to_world_44)
  ray_3 = np.linalg.solve(k, np.array([u, v, 1.0]))
  point_cam_3 = ray_3 / ray_3[2] * depth_m
  return pose[:3, :3] @ point_cam_3 + pose[:3, 3]
