"""Camera trajectory <-> 300 discrete tokens, the GenDoP pose vocabulary.

Encoding: frames 0, 4, ..., 116 give 30 poses; each is re-expressed relative to frame 0
(inv(c2w_0) @ c2w_i) and the translations are divided by s = max_i ||t_i|| + 1e-5. Each pose gives
10 values, [qw, qx, qy, qz, tx, ty, tz, fx/W, fy/H, log10-scale]; the focal ratios are taken after
rescaling the image to 512 x 512 (fx * 512 / W over 512, i.e. fx / W), the scale is the same in every
pose. Each value falls in one of 256 bins (indices clipped to [0, 256], so 257 values occur):
  quaternion, translation: floor((v + 1) / 2 * 256)
  focal ratio:             floor(v / 10 * 256)
  scale:                   floor((log10 s + 2) / 4 * 256)      (s in [0.01, 100])
and OFFSET = 3 is added (PAD = 0, BOS = 1, EOS = 2), so pose tokens lie in [3, 259] of a
260-token vocabulary.

Decoding maps a token to the left edge of its bin (q, t = k / 128 - 1; focal = k / 25.6) and the scale
to 10 ** (k / 256 * 4 - 2): the encoder used log10, so exp here would be wrong (GenDoP's released
inference code decodes with exp).

Axes: poses here are OpenCV c2w (x right, y down, z forward). GenDoP tokenizes DataDoP's stored
OpenGL-axis poses, so for the same shot its ty, tz, qy and qz values have the opposite sign of ours
(magnitudes equal). Quaternions here always have w >= 0; GenDoP's conversion may give w < 0 for
rotations near 180 degrees. Values are computed in float64 (GenDoP: float32), so a value lying on a
bin edge may fall one bin apart.
"""

from __future__ import annotations

import math

import numpy as np

from jaxlab.camera.trajectory import (TrajectoryError, check_trajectory, matrix_to_quaternion,
                                      quaternion_to_matrix)

PAD, BOS, EOS, OFFSET = 0, 1, 2, 3
NUM_BINS = 256
VOCAB_SIZE = OFFSET + NUM_BINS + 1  # 260: bin indices run 0..256 inclusive after clipping
NUM_POSES = 30
VALUES_PER_POSE = 10
POSE_TOKENS = NUM_POSES * VALUES_PER_POSE  # 300
_STRIDE = 4  # frames between selected poses: 120 // NUM_POSES
_MIN_FRAMES = (NUM_POSES - 1) * _STRIDE + 1  # 117: the last selected frame is 116
_TARGET_SIZE = 512  # image size the focal lengths are rescaled to
_FOCAL_RANGE = 10.0  # focal ratios in [0, 10]
_LOG10_SCALE_MIN, _LOG10_SCALE_SPAN = -2.0, 4.0  # s in [10**-2, 10**2]
_SCALE_EPS = 1e-5


def select_poses(c2w_n44) -> np.ndarray:
  """Frames 0, 4, ..., 116 of a trajectory of at least 117 frames (DataDoP shots have 120) -> [30, 4, 4].

  Raises:
    TrajectoryError: fewer than 117 frames, or a bad frame (see `check_trajectory`).
  """
  c2w = check_trajectory(c2w_n44, min_frames=_MIN_FRAMES)
  return c2w[0:_MIN_FRAMES:_STRIDE]


def _normalize_poses(c2w_p44: np.ndarray, enabled: bool) -> tuple[np.ndarray, float]:
  if not enabled:
    return c2w_p44.copy(), 1.0
  rel = np.linalg.inv(c2w_p44[0]) @ c2w_p44
  rel[:, 3, :] = (0.0, 0.0, 0.0, 1.0)  # exact, not inv's rounding
  scale = float(np.linalg.norm(rel[:, :3, 3], axis=-1).max() + _SCALE_EPS)
  rel[:, :3, 3] /= scale
  return rel, scale


def normalize(c2w_30, *, enabled: bool = True) -> tuple[np.ndarray, float]:
  """(poses relative to pose 0 with translations divided by s, s), s = max ||t_i|| + 1e-5.

  With `enabled=False` (the "no normalization" ablation) the poses come back as given and s = 1.
  The result is the same for any rigid motion of the world, and scaling all positions by k scales s
  by k only.
  """
  c2w = check_trajectory(c2w_30)
  return _normalize_poses(c2w, enabled)


def _bins(values, lo: float, span: float) -> np.ndarray:
  """Bin index floor((v - lo) / span * 256), clipped to [0, 256]."""
  index = np.floor((np.asarray(values, dtype=np.float64) - lo) / span * NUM_BINS)
  return np.clip(index, 0, NUM_BINS).astype(np.int32)


def encode(c2w_n44, fl_x: float, fl_y: float, width: float, height: float, *,
           normalize: bool = True) -> np.ndarray:
  """Tokens int32 [300] (OFFSET included) of a trajectory of >= 117 frames with its intrinsics.

  `fl_x`, `fl_y`, `width`, `height` in pixels, one set for the whole shot. `normalize=False` is the
  ablation without relative poses or scale (tokens of translations outside [-1, 1] clip).

  Raises:
    TrajectoryError: too few frames, a bad frame, or intrinsics that are not positive and finite.
  """
  for name, value in (("fl_x", fl_x), ("fl_y", fl_y), ("width", width), ("height", height)):
    try:
      ok = np.ndim(value) == 0 and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
      ok = False
    if not ok:
      raise TrajectoryError(f"{name} must be a positive finite number, got {value!r}")
  poses = select_poses(c2w_n44)
  rel, scale = _normalize_poses(poses, normalize)
  quat_p4 = matrix_to_quaternion(rel[:, :3, :3])
  trans_p3 = rel[:, :3, 3]
  # Rescaling the image to 512 x 512 multiplies fx by 512 / W; dividing by 512 leaves fx / W.
  focal_2 = np.array([fl_x * _TARGET_SIZE / width, fl_y * _TARGET_SIZE / height]) / _TARGET_SIZE
  values = np.concatenate([
      _bins(np.concatenate([quat_p4, trans_p3], axis=1), -1.0, 2.0),
      np.broadcast_to(_bins(focal_2, 0.0, _FOCAL_RANGE), (NUM_POSES, 2)),
      np.broadcast_to(_bins(np.log10(scale), _LOG10_SCALE_MIN, _LOG10_SCALE_SPAN), (NUM_POSES, 1)),
  ], axis=1)
  return (values.reshape(-1) + OFFSET).astype(np.int32)


def _check_tokens(tokens_300) -> np.ndarray:
  tokens = np.asarray(tokens_300)
  if tokens.shape != (POSE_TOKENS,):
    raise TrajectoryError(f"expected {POSE_TOKENS} pose tokens, got shape {list(tokens.shape)}")
  if tokens.dtype.kind not in "iu":
    raise TrajectoryError(f"pose tokens must be integers, got dtype {tokens.dtype}")
  bad = np.flatnonzero((tokens < OFFSET) | (tokens > OFFSET + NUM_BINS))
  if bad.size:
    raise TrajectoryError(f"token {int(tokens[bad[0]])} at position {bad[0]} is not a pose token "
                          f"(pose tokens lie in [{OFFSET}, {OFFSET + NUM_BINS}]); {bad.size} such token(s)")
  return tokens.astype(np.int64)


def decode(tokens_300) -> tuple[np.ndarray, np.ndarray, float]:
  """(c2w [30, 4, 4] relative to pose 0 with the scale multiplied back into the translations,
  focal ratios [30, 2] (fx / W, fy / H), scale s).

  Inverse maps to the bins' left edges: q, t = k / 128 - 1, focal = k / 25.6, and
  s = 10 ** (k / 256 * 4 - 2) (10 **, not exp: the encoder used log10). The quaternion is normalized;
  s is read from pose 0 (the encoder repeats it in every pose).

  Raises:
    TrajectoryError: wrong shape or dtype, a token outside [OFFSET, OFFSET + 256] (PAD, BOS, EOS
      included), or a quaternion that decodes to zero (the pose is named).
  """
  values = (_check_tokens(tokens_300) - OFFSET).reshape(NUM_POSES, VALUES_PER_POSE).astype(np.float64)
  quat_p4 = values[:, 0:4] / (NUM_BINS / 2) - 1.0
  trans_p3 = values[:, 4:7] / (NUM_BINS / 2) - 1.0
  focal_p2 = values[:, 7:9] / (NUM_BINS / _FOCAL_RANGE)
  scale = float(10.0 ** (values[0, 9] / NUM_BINS * _LOG10_SCALE_SPAN + _LOG10_SCALE_MIN))
  norm_p = np.linalg.norm(quat_p4, axis=1)
  if (norm_p < 1e-6).any():
    i = int(np.argmax(norm_p < 1e-6))
    raise TrajectoryError(f"pose {i}: quaternion tokens decode to zero, no rotation")
  c2w = np.tile(np.eye(4), (NUM_POSES, 1, 1))
  c2w[:, :3, :3] = quaternion_to_matrix(quat_p4)
  c2w[:, :3, 3] = trans_p3 * scale
  return c2w, focal_p2, scale


def training_sequence(tokens_300) -> tuple[np.ndarray, np.ndarray]:
  """(input_ids [301] = [BOS] + tokens, targets [301] = tokens + [EOS]), int32: the model reads
  input_ids and predicts targets at the same positions."""
  tokens = _check_tokens(tokens_300).astype(np.int32)
  input_ids = np.concatenate([np.array([BOS], np.int32), tokens])
  targets = np.concatenate([tokens, np.array([EOS], np.int32)])
  return input_ids, targets
