"""Camera trajectories as camera-to-world matrices: validation (with a logged repair of slightly
non-orthonormal rotations), quaternions, slerp, resampling to a fixed frame count, and cleaning.

A trajectory is a float64 array `c2w_n44` [N, 4, 4]; camera axes are OpenCV (x right, y down,
z forward). Quaternions are (w, x, y, z) with w >= 0 (q and -q are the same rotation; one sign
keeps tokens of equal rotations equal).
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

# Deviations ||R R^T - I|| below this are float32 rounding (files store float32 matrices): repaired
# quietly. Larger ones (up to `repair_tolerance`) are repaired and reported in a warning.
_ROUNDING = 1e-5
_SLERP_LINEAR = 1e-6  # below this angle (radians) slerp's 1/sin is ill-conditioned: lerp instead


class TrajectoryError(ValueError):
  """A trajectory that cannot be used; the message names the problem and, where there is one, the frame."""


def check_trajectory(c2w_n44, *, min_frames: int = 1, repair_tolerance: float = 1e-2) -> np.ndarray:
  """The trajectory as float64 [N, 4, 4], checked; rotations re-orthonormalized where slightly off.

  Checks: shape [N, 4, 4] with N >= `min_frames`; every value finite; last row [0, 0, 0, 1]; each
  rotation R has det > 0 and ||R R^T - I||_F < `repair_tolerance`. Rotations within the tolerance are
  replaced by the nearest rotation (SVD: U V^T), and the number of frames repaired beyond float32
  rounding is logged once (a warning).

  Raises:
    TrajectoryError: naming the first bad frame (NaN/inf, bad last row, reflection or degenerate
      rotation, deviation beyond the tolerance), or the shape, or the frame count.
  """
  try:
    c2w = np.array(c2w_n44, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise TrajectoryError(f"trajectory is not a numeric array: {e}") from None
  if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
    raise TrajectoryError(f"trajectory must have shape [N, 4, 4], got {list(c2w.shape)}")
  n = c2w.shape[0]
  if n < min_frames:
    raise TrajectoryError(f"trajectory has {n} frames, at least {min_frames} are needed")
  finite = np.isfinite(c2w).all(axis=(1, 2))
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise TrajectoryError(f"frame {bad[0]} holds NaN or inf ({bad.size} such frame(s) of {n})")
  bottom_error = np.abs(c2w[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
  if (bottom_error > 1e-6).any():
    i = int(np.argmax(bottom_error > 1e-6))
    raise TrajectoryError(f"frame {i}: last row must be [0, 0, 0, 1], got {c2w[i, 3].tolist()}")

  rot_n33 = c2w[:, :3, :3]
  det_n = np.linalg.det(rot_n33)
  if (det_n <= 0).any():
    i = int(np.argmax(det_n <= 0))
    raise TrajectoryError(f"frame {i}: rotation has determinant {det_n[i]:.4g} (a reflection or degenerate "
                          "matrix), not a rotation")
  deviation_n = np.linalg.norm(rot_n33 @ rot_n33.transpose(0, 2, 1) - np.eye(3), axis=(1, 2))
  if (deviation_n >= repair_tolerance).any():
    i = int(np.argmax(deviation_n >= repair_tolerance))
    raise TrajectoryError(f"frame {i}: rotation is not orthonormal, ||R R^T - I|| = {deviation_n[i]:.4g} "
                          f">= repair_tolerance {repair_tolerance:g}")
  fix = deviation_n > 1e-12
  if fix.any():
    u, _, vt = np.linalg.svd(rot_n33[fix])
    c2w[fix, :3, :3] = u @ vt  # det stays +1: the input determinants are positive and close to 1
    c2w[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    repaired = int(np.count_nonzero(deviation_n > _ROUNDING))
    if repaired:
      log.warning("re-orthonormalized %d of %d rotations (largest ||R R^T - I|| = %.3g)",
                  repaired, n, float(deviation_n.max()))
  return c2w


def matrix_to_quaternion(R_n33) -> np.ndarray:
  """Unit quaternions (w, x, y, z), w >= 0, of rotation matrices [..., 3, 3] -> [..., 4].

  Shepperd's method: take the largest of 4w^2, 4x^2, 4y^2, 4z^2 as the pivot, so no division is by
  a small number."""
  m = np.asarray(R_n33, dtype=np.float64)
  if m.shape[-2:] != (3, 3):
    raise TrajectoryError(f"rotations must have shape [..., 3, 3], got {list(m.shape)}")
  m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
  # Row k is 4 q_k q (a multiple of q) written with matrix entries; the pivot row has the largest |q_k|.
  cand = np.stack([
      np.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                m[..., 1, 0] - m[..., 0, 1]], -1),
      np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                m[..., 0, 2] + m[..., 2, 0]], -1),
      np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                m[..., 1, 2] + m[..., 2, 1]], -1),
      np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                1 - m00 - m11 + m22], -1),
  ], -2)  # [..., 4, 4]
  pivot = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                              1 - m00 - m11 + m22], -1), axis=-1)
  q = np.take_along_axis(cand, pivot[..., None, None], axis=-2)[..., 0, :]
  q = q / np.linalg.norm(q, axis=-1, keepdims=True)
  return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q_n4) -> np.ndarray:
  """Rotation matrices [..., 3, 3] of quaternions (w, x, y, z) [..., 4]; q is normalized first."""
  q = np.asarray(q_n4, dtype=np.float64)
  if q.shape[-1] != 4:
    raise TrajectoryError(f"quaternions must have shape [..., 4], got {list(q.shape)}")
  q = q / np.linalg.norm(q, axis=-1, keepdims=True)
  w, x, y, z = np.moveaxis(q, -1, 0)
  rot = np.stack([
      1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
      2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
      2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
  ], -1)
  return rot.reshape(q.shape[:-1] + (3, 3))


def slerp(q0, q1, t) -> np.ndarray:
  """Spherical interpolation from q0 (t = 0) to q1 (t = 1) along the shorter arc; unit quaternions
  out, shapes broadcast ([..., 4] with t [...])."""
  q0 = np.asarray(q0, dtype=np.float64)
  q1 = np.asarray(q1, dtype=np.float64)
  t = np.asarray(t, dtype=np.float64)[..., None]
  q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
  q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
  dot = np.sum(q0 * q1, axis=-1, keepdims=True)
  q1 = np.where(dot < 0, -q1, q1)  # q and -q are one rotation: take the shorter way round
  dot = np.clip(np.abs(dot), 0.0, 1.0)
  angle = np.arccos(dot)
  small = angle < _SLERP_LINEAR
  sin = np.where(small, 1.0, np.sin(angle))
  w0 = np.where(small, 1 - t, np.sin((1 - t) * angle) / sin)
  w1 = np.where(small, t, np.sin(t * angle) / sin)
  q = w0 * q0 + w1 * q1
  return q / np.linalg.norm(q, axis=-1, keepdims=True)


def resample(c2w_n44, num: int = 120) -> np.ndarray:
  """`num` poses at uniform positions over the frame index, first and last frame included
  (linspace(0, N - 1, num)): rotations by slerp between the two neighbouring frames, positions by lerp.

  Where a sample position is an integer the original pose comes back. (DataDoP's own resampler
  takes positions i / num * (N - 1), i < num, so it stops one step short of the last frame; here
  the whole trajectory is covered.)
  """
  if num < 1:
    raise TrajectoryError(f"num must be >= 1, got {num}")
  c2w = check_trajectory(c2w_n44)
  n = c2w.shape[0]
  if n == 1:
    return np.repeat(c2w, num, axis=0)
  pos_m = np.linspace(0.0, n - 1, num)
  left_m = np.clip(np.floor(pos_m).astype(np.int64), 0, n - 2)
  frac_m = pos_m - left_m
  quat_n4 = matrix_to_quaternion(c2w[:, :3, :3])
  quat_m4 = slerp(quat_n4[left_m], quat_n4[left_m + 1], frac_m)
  trans_m3 = (1 - frac_m)[:, None] * c2w[left_m, :3, 3] + frac_m[:, None] * c2w[left_m + 1, :3, 3]
  out = np.tile(np.eye(4), (num, 1, 1))
  out[:, :3, :3] = quaternion_to_matrix(quat_m4)
  out[:, :3, 3] = trans_m3
  return out


def _smooth_positions(pos_n3: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian smoothing along time (sigma in frames). The ends are padded by odd reflection
  (2 x_0 - x_k), so motion at constant velocity, ends included, comes back unchanged."""
  n = pos_n3.shape[0]
  if sigma <= 0 or n < 3:
    return pos_n3.copy()
  radius = min(int(math.ceil(3 * sigma)), n - 1)
  offsets = np.arange(-radius, radius + 1)
  kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
  kernel /= kernel.sum()
  padded = np.pad(pos_n3, ((radius, radius), (0, 0)), mode="reflect", reflect_type="odd")
  return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(3)], axis=1)


def clean(c2w_n44, *, num: int = 120, smooth: float = 1.0) -> np.ndarray:
  """A checked, lightly smoothed trajectory resampled to `num` frames.

  Steps: `check_trajectory` (slightly non-orthonormal rotations repaired and logged; a NaN frame or a
  bad rotation is an error: no frame is dropped); positions smoothed with a Gaussian of `smooth`
  frames (std, in input frames; 0 turns it off), rotations left as they are; `resample` to `num`.

  DataDoP's own cleaning (a constant-velocity Kalman smoother on positions after cutting the
  trajectory at velocity outliers) drops frames; here dropping is left to the caller, and the
  smoothing is a plain Gaussian that keeps constant-velocity motion exact.
  """
  if smooth < 0:
    raise TrajectoryError(f"smooth must be >= 0 frames, got {smooth}")
  c2w = check_trajectory(c2w_n44)
  c2w[:, :3, 3] = _smooth_positions(c2w[:, :3, 3], smooth)
  return resample(c2w, num)
