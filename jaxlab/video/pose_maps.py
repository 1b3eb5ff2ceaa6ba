"""OpenPose-style skeleton images from 2-D keypoints: the pose guider's input.

Every limb of `clip.LIMBS` is a hard line segment of `thickness` pixels in its own colour (OpenPose's
limb colours at 60 % intensity, as its renderer blends them), every keypoint a dot of diameter
1.5 * thickness in its full keypoint colour, on black. A pixel is lit by an element whose segment or
point lies within the half-width of its centre (pixel centres at +0.5).

Where elements overlap: dots cover limbs; among limbs (and among dots) the nearest wins, ties going
to the lower limb (keypoint) index, so the map does not depend on the order of the persons.
A limb with either end at confidence 0 is skipped, as is a keypoint at confidence 0.
"""

from __future__ import annotations

import numpy as np

from jaxlab.video.clip import LIMBS, NUM_KEYPOINTS

# OpenPose's 18 colours (RGB): limb i and keypoint i use colour i.
OPENPOSE_COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]], np.float32) / 255.0
LIMB_INTENSITY = 0.6
DOT_DIAMETER = 1.5  # times the thickness
_LIMB_A = np.array([a for a, _ in LIMBS])
_LIMB_B = np.array([b for _, b in LIMBS])


def _nearest_lit(dist_ns: np.ndarray, half_width: float, colors_s3: np.ndarray):
  """(lit [N], colour [N, 3]) of the nearest element within `half_width` of each pixel; elements
  are in priority order, so argmin's first-index tie rule gives the lower index."""
  dist_ns = np.where(dist_ns <= half_width, dist_ns, np.inf)
  nearest_n = np.argmin(dist_ns, axis=1)
  lit_n = np.isfinite(dist_ns[np.arange(len(dist_ns)), nearest_n])
  return lit_n, colors_s3[nearest_n]


def draw_pose_maps(poses_fpk3: np.ndarray, height: int, width: int, *, thickness: float = 1.0) -> np.ndarray:
  """float32 [F, H, W, 3] in [0, 1]: the skeletons of all persons of each frame (module docstring).

  poses_fpk3: [F, P, 18, 3] (x, y, confidence) in pixels, as in `VideoClip.poses_fpk3`.
  """
  poses = np.asarray(poses_fpk3, np.float64)
  if poses.ndim != 4 or poses.shape[2:] != (NUM_KEYPOINTS, 3):
    raise ValueError(f"poses must be [F, P, {NUM_KEYPOINTS}, 3] (x, y, confidence), got shape {poses.shape}")
  if not np.isfinite(poses).all():
    raise ValueError("poses hold NaN or inf")
  if not thickness > 0:
    raise ValueError(f"thickness must be > 0 pixels, got {thickness}")
  num_frames, num_persons = poses.shape[:2]
  v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
  pix_n2 = np.stack([u.ravel(), v.ravel()], axis=1)
  maps = np.zeros((num_frames, height * width, 3), np.float32)
  if num_persons == 0:
    return maps.reshape(num_frames, height, width, 3)
  # Element order: limb-major (limb l of every person, then limb l + 1), so ties never depend on persons.
  limb_colors_s3 = np.repeat(OPENPOSE_COLORS[:len(LIMBS)] * LIMB_INTENSITY, num_persons, axis=0)
  dot_colors_s3 = np.repeat(OPENPOSE_COLORS[:NUM_KEYPOINTS], num_persons, axis=0)
  for f in range(num_frames):
    xy_pk2, conf_pk = poses[f, :, :, :2], poses[f, :, :, 2]
    a_s2 = xy_pk2[:, _LIMB_A].transpose(1, 0, 2).reshape(-1, 2)
    b_s2 = xy_pk2[:, _LIMB_B].transpose(1, 0, 2).reshape(-1, 2)
    limb_ok_s = ((conf_pk[:, _LIMB_A] > 0) & (conf_pk[:, _LIMB_B] > 0)).T.reshape(-1)
    ab_s2 = b_s2 - a_s2
    length2_s = (ab_s2 * ab_s2).sum(axis=1)
    along_ns = ((pix_n2[:, None, :] - a_s2) * ab_s2).sum(axis=-1) / np.maximum(length2_s, 1e-12)
    closest_ns2 = a_s2 + np.clip(along_ns, 0.0, 1.0)[..., None] * ab_s2
    limb_dist_ns = np.where(limb_ok_s, np.linalg.norm(pix_n2[:, None, :] - closest_ns2, axis=-1), np.inf)
    lit_limb_n, limb_rgb_n3 = _nearest_lit(limb_dist_ns, thickness / 2, limb_colors_s3)
    dots_s2 = xy_pk2.transpose(1, 0, 2).reshape(-1, 2)
    dot_ok_s = (conf_pk > 0).T.reshape(-1)
    dot_dist_ns = np.where(dot_ok_s, np.linalg.norm(pix_n2[:, None, :] - dots_s2, axis=-1), np.inf)
    lit_dot_n, dot_rgb_n3 = _nearest_lit(dot_dist_ns, DOT_DIAMETER * thickness / 2, dot_colors_s3)
    maps[f] = np.where(lit_dot_n[:, None], dot_rgb_n3, np.where(lit_limb_n[:, None], limb_rgb_n3, 0.0))
  return maps.reshape(num_frames, height, width, 3)
