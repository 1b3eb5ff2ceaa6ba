"""One multi-identity video clip: frames, structure (depth, normals), identity masks, 2-D poses, cameras.

Conventions (shared by the generator, the on-disk reader and the training records):

  rgb_fhwc          float32 [F, H, W, 3] in [0, 1]
  depth_fhw         float32 [F, H, W] metres along the camera's +z, > 0 (None when the source has none)
  normal_fhwc       float32 [F, H, W, 3] unit normals in camera coordinates, OpenCV axes (x right,
                    y down, z forward), facing the camera (n . view ray <= 0) (None when the source has none)
  masks_fhw         int32 [F, H, W]: 0 background, n in 1..N the pixels of identity n
  poses_fpk3        float32 [F, P, 18, 3]: (x, y, confidence) in pixels (x right, y down, pixel
                    centres at +0.5) of the OpenPose-18 body keypoints (DWPose's body layout) of person
                    p = identity p + 1; confidence 0 marks a keypoint that is absent or out of view
  intrinsics_f33    float32 [F, 3, 3] pinhole intrinsics in pixels
  cam_to_world_f44  float32 [F, 4, 4] camera-to-world, OpenCV camera axes
  reference_hwc     float32 [H, W, 3] in [0, 1]: the image to animate (frame 0 for generated clips)
  num_identities    N, the identity slots; P <= N persons carry poses

`VideoClip` checks every field on construction and raises `ClipError` naming the field and
the frame, so bad data fails before training or sampling, not inside a jitted step.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# OpenPose-18 body keypoints, in order (DWPose's body output uses this layout).
KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# Limbs as keypoint index pairs, drawn into pose maps.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
_UNIT_TOLERANCE = 1e-2


class ClipError(ValueError):
  """A clip whose fields disagree or hold values no renderer could have produced."""


def _frame_of_first(bad_f: np.ndarray) -> int:
  return int(np.argmax(bad_f))


@dataclasses.dataclass(frozen=True, eq=False)
class VideoClip:
  """A clip as described in the module docstring; `name` says where it came from (in errors)."""

  rgb_fhwc: np.ndarray
  masks_fhw: np.ndarray
  poses_fpk3: np.ndarray
  intrinsics_f33: np.ndarray
  cam_to_world_f44: np.ndarray
  reference_hwc: np.ndarray
  num_identities: int
  depth_fhw: np.ndarray | None = None
  normal_fhwc: np.ndarray | None = None
  name: str = "clip"

  def __post_init__(self):
    set_ = lambda field, value: object.__setattr__(self, field, value)
    rgb = np.asarray(self.rgb_fhwc, np.float32)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or min(rgb.shape[:3]) < 1:
      raise ClipError(f"{self.name}: rgb must be [F, H, W, 3] with F, H, W >= 1, got shape {rgb.shape}")
    f, h, w, _ = rgb.shape
    self._check_finite_range("rgb", rgb, 0.0, 1.0)
    set_("rgb_fhwc", rgb)

    n = self.num_identities
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
      raise ClipError(f"{self.name}: num_identities must be an int >= 1, got {n!r}")
    set_("num_identities", int(n))

    masks = np.asarray(self.masks_fhw)
    if masks.shape != (f, h, w):
      raise ClipError(f"{self.name}: masks must be [F, H, W] = {(f, h, w)} like the video, got {masks.shape}")
    if not np.issubdtype(masks.dtype, np.integer):
      raise ClipError(f"{self.name}: masks must hold integer identity labels, got dtype {masks.dtype}")
    too_high_f = (masks > n).reshape(f, -1).any(axis=1)
    if too_high_f.any() or (masks < 0).any():
      frame = _frame_of_first(too_high_f | (masks < 0).reshape(f, -1).any(axis=1))
      raise ClipError(f"{self.name}: mask labels must lie in [0, N = {n}] (0 = background); frame {frame} holds "
                      f"labels in [{int(masks[frame].min())}, {int(masks[frame].max())}]")
    set_("masks_fhw", masks.astype(np.int32))

    poses = np.asarray(self.poses_fpk3, np.float32)
    if poses.ndim != 4 or poses.shape[2:] != (NUM_KEYPOINTS, 3):
      raise ClipError(f"{self.name}: poses must be [F, P, {NUM_KEYPOINTS}, 3] (x, y, confidence), got {poses.shape}")
    if poses.shape[0] != f:
      raise ClipError(f"{self.name}: the pose sequence has {poses.shape[0]} frames but the video has {f}")
    if poses.shape[1] > n:
      raise ClipError(f"{self.name}: {poses.shape[1]} posed persons but only N = {n} identity slots")
    self._check_finite_range("poses", poses)
    if (poses[..., 2] < 0).any() or (poses[..., 2] > 1).any():
      raise ClipError(f"{self.name}: pose confidences must lie in [0, 1]")
    set_("poses_fpk3", poses)

    intrinsics = np.asarray(self.intrinsics_f33, np.float32)
    if intrinsics.shape != (f, 3, 3):
      raise ClipError(f"{self.name}: intrinsics must be [F, 3, 3] = {(f, 3, 3)}, got {intrinsics.shape}")
    self._check_finite_range("intrinsics", intrinsics)
    if (intrinsics[:, 0, 0] <= 0).any() or (intrinsics[:, 1, 1] <= 0).any():
      raise ClipError(f"{self.name}: focal lengths must be > 0 (frame {_frame_of_first(intrinsics[:, 0, 0] <= 0)})")
    set_("intrinsics_f33", intrinsics)

    c2w = np.asarray(self.cam_to_world_f44, np.float32)
    if c2w.shape != (f, 4, 4):
      raise ClipError(f"{self.name}: cam_to_world must be [F, 4, 4] = {(f, 4, 4)}, got {c2w.shape}")
    self._check_finite_range("cam_to_world", c2w)
    rot = c2w[:, :3, :3].astype(np.float64)
    error_f = np.abs(np.einsum("fij,fkj->fik", rot, rot) - np.eye(3)).reshape(f, -1).max(axis=1)
    if (error_f > _UNIT_TOLERANCE).any() or (np.linalg.det(rot) <= 0).any():
      frame = _frame_of_first((error_f > _UNIT_TOLERANCE) | (np.linalg.det(rot) <= 0))
      raise ClipError(f"{self.name}: cam_to_world rotation of frame {frame} is not a rotation "
                      f"(|R R^T - I| = {error_f[frame]:.3g})")
    set_("cam_to_world_f44", c2w)

    reference = np.asarray(self.reference_hwc, np.float32)
    if reference.shape != (h, w, 3):
      raise ClipError(f"{self.name}: the reference image is {reference.shape[:2]} but the video is {(h, w)}; "
                      "resize one of them")
    self._check_finite_range("reference", reference, 0.0, 1.0)
    set_("reference_hwc", reference)

    if self.depth_fhw is not None:
      depth = np.asarray(self.depth_fhw, np.float32)
      if depth.shape != (f, h, w):
        raise ClipError(f"{self.name}: depth must be [F, H, W] = {(f, h, w)}, got {depth.shape}")
      bad_f = ~(np.isfinite(depth) & (depth > 0)).reshape(f, -1).all(axis=1)
      if bad_f.any():
        raise ClipError(f"{self.name}: depth must be finite and > 0 everywhere; frame {_frame_of_first(bad_f)} is not")
      set_("depth_fhw", depth)
    if self.normal_fhwc is not None:
      normal = np.asarray(self.normal_fhwc, np.float32)
      if normal.shape != (f, h, w, 3):
        raise ClipError(f"{self.name}: normals must be [F, H, W, 3] = {(f, h, w, 3)}, got {normal.shape}")
      self._check_finite_range("normals", normal)
      length_fhw = np.linalg.norm(normal, axis=-1)
      bad_f = (np.abs(length_fhw - 1.0) > _UNIT_TOLERANCE).reshape(f, -1).any(axis=1)
      if bad_f.any():
        raise ClipError(f"{self.name}: normals must be unit vectors; frame {_frame_of_first(bad_f)} is not")
      set_("normal_fhwc", normal)

  def _check_finite_range(self, field: str, value: np.ndarray, low: float | None = None,
                          high: float | None = None) -> None:
    if not np.isfinite(value).all():
      raise ClipError(f"{self.name}: {field} holds NaN or inf")
    if low is not None and (value.min() < low or value.max() > high):
      raise ClipError(f"{self.name}: {field} must lie in [{low}, {high}], got [{value.min():.3g}, {value.max():.3g}]")

  @property
  def num_frames(self) -> int:
    return self.rgb_fhwc.shape[0]

  @property
  def height(self) -> int:
    return self.rgb_fhwc.shape[1]

  @property
  def width(self) -> int:
    return self.rgb_fhwc.shape[2]

  @property
  def num_persons(self) -> int:
    return self.poses_fpk3.shape[1]
