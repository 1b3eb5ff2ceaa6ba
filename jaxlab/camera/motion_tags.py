"""Camera-motion tags per frame of a trajectory, and the weighted F1 that compares two trajectories.

This is the motion segmentation behind GenDoP's F1-Score (the same tagging labels DataDoP's
captions). `segment` turns a camera-to-world trajectory [N, 4, 4] (OpenCV camera axes: x right,
y down, z forward) into N-1 class indices of `motion_classes` (`translation * 7 + rotation`);
label k describes the motion from pose k to pose k+1.

1. Camera-frame steps. For consecutive poses the step D_k = inv(P_k) @ P_{k+1} is pose k+1 seen
   from camera k. Moving the whole world rigidly (P -> G @ P) leaves every D_k unchanged, so the
   tags are invariant to a global rigid transform. Translation velocity v_k = fps * t(D_k), in world
   units per second. Angular step w_k = rotation vector (axis times angle) of R(D_k), in radians
   per frame: it is NOT multiplied by fps (the official evaluation does not either), so the
   thresholds live in different units, see 2 and 3.
2. Translation tag, per camera axis: an axis moves when |v_a| > `static` (0.02 units/s, i.e.
   6.7e-4 units per frame at 30 fps). Of the moving axes, one whose speed falls short of the
   fastest axis by more than `diff` relatively, (max|v| - |v_a|) / max|v| > diff, is dropped: with
   0.4 an axis slower than 60% of the fastest is not named. Each kept axis takes its sign, giving
   one of the 27 translation classes.
3. Rotation tag: static unless the largest |w_a| exceeds `angular_static` (0.005 rad per frame,
   8.6 deg/s at 30 fps); then the single dominant axis names it (an exact tie between the top two
   axes counts as static): +x tilt up, -x tilt down, +y pan right, -y pan left, +z roll clockwise
   (the camera's x axis turns toward its y axis, clockwise as the camera looks), -z roll
   counter-clockwise. Only one rotation is named per frame (7 classes).
4. Frame label = translation * 7 + rotation.
5. Cleaning, repeated until few runs are left. Start with `window` = 15 and `min_chunk` = 10:
   a. mode filter of the RAW labels of step 4 (each pass starts again from them, not from the
      previous pass): each label becomes the most frequent label in the centred window of
      window // 2 labels on each side, clipped at the ends; a trajectory with fewer labels than
      `window` is left as it is. Ties go to the label that comes first in the official class
      numbering (OpenGL axes, see below), which is what the official code's `mode` does.
   b. short-chunk removal: repeatedly take the shortest run of equal labels (the first of
      several), and while it is shorter than `min_chunk` hand its frames to its neighbours: all to
      the only neighbour at either end, otherwise the larger half (odd lengths) to the left run and
      the rest to the right. Neighbours that end up with the same label stay separate runs until
      the pass ends (as in the official code; it changes which run is the shortest next).
   c. if more than `max_segments` (4) runs remain, widen `window` and `min_chunk` by `grow` (5)
      and go back to a. Once `min_chunk` exceeds the length a single run survives, so it stops.
6. `weighted_f1`: per class c, F1_c = 2 TP / (2 TP + FP + FN) (0 when the class appears in
   neither), averaged with weights equal to each class's support in the reference labels. A
   class only predicted has weight 0, but its frames still count as misses of the reference
   class. The official number pools the frames of the whole test set before this computation (it
   is not a mean of per-trajectory F1s): give `trajectory_f1` a batch, or concatenate labels.

Axes. The official code tags DataDoP's stored poses, which use OpenGL camera axes (x right, y up,
z back), and names classes in those axes (e.g. "move forward" is -z, "yaw left" is +y). The
OpenCV names used here describe the same physical motions, so the frame labels correspond one to
one and the F1 is unchanged; only the numbering differs, and step 5a breaks ties by the official
numbering so that the cleaning is the same too.

Scale. There is no normalization: translation thresholds are absolute, so translation tags change
with the world scale while rotation tags do not. Compare trajectories at the scale meant to be
tagged (GenDoP's evaluation tags generated trajectories at their normalized scale).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial.transform import Rotation

from jaxlab.camera.motion_classes import (
    NUM_CLASSES,
    NUM_ROTATION,
    ROTATIONS,
    TRANSLATION_SIGNS,
    translation_index,
)
from jaxlab.camera.trajectory import TrajectoryError, check_trajectory, resample

# Rotation class for (axis, sign) of the dominant camera-frame rotation axis (OpenCV axes).
_ROTATION_OF_AXIS = {
    (0, 1): "tilt_up", (0, -1): "tilt_down",
    (1, 1): "pan_right", (1, -1): "pan_left",
    (2, 1): "roll_cw", (2, -1): "roll_ccw",
}
# Rotation position in the official numbering: pitch up, pitch down, yaw left, yaw right, roll left
# (counter-clockwise), roll right (clockwise).
_OFFICIAL_ROTATION = {"static": 0, "tilt_up": 1, "tilt_down": 2, "pan_left": 3, "pan_right": 4,
                      "roll_ccw": 5, "roll_cw": 6}


def _translation_table() -> np.ndarray:
  """Translation class for each sign triple, indexed by (sx+1)*9 + (sy+1)*3 + (sz+1)."""
  table = np.empty(27, np.int64)
  for sx in (-1, 0, 1):
    for sy in (-1, 0, 1):
      for sz in (-1, 0, 1):
        table[(sx + 1) * 9 + (sy + 1) * 3 + (sz + 1)] = translation_index((sx, sy, sz))
  return table


def _official_rank() -> np.ndarray:
  """Our class index -> the official class index (used only to break ties like the official code)."""
  digit = {0: 0, 1: 1, -1: 2}  # the official enumerates each axis as 0, +1, -1
  rank = np.empty(NUM_CLASSES, np.int64)
  for t, (sx, sy, sz) in enumerate(TRANSLATION_SIGNS):
    # OpenCV -> OpenGL camera axes flips y and z.
    official_t = 9 * digit[sx] + 3 * digit[-sy] + digit[-sz]
    for r, name in enumerate(ROTATIONS):
      rank[t * NUM_ROTATION + r] = official_t * NUM_ROTATION + _OFFICIAL_ROTATION[name]
  return rank


_TRANSLATION_TABLE = _translation_table()
_ROTATION_TABLE = np.array([ROTATIONS.index(_ROTATION_OF_AXIS[(a, s)]) for a in range(3) for s in (1, -1)])
_OFFICIAL_RANK = _official_rank()
_FROM_OFFICIAL_RANK = np.argsort(_OFFICIAL_RANK)


def _camera_steps(c2w_n44: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
  """Translation velocity [N-1, 3] (units/s) and rotation vector [N-1, 3] (rad/frame), camera k's axes."""
  rot_n33, pos_n3 = c2w_n44[:, :3, :3], c2w_n44[:, :3, 3]
  step_rot_n33 = np.einsum("nji,njk->nik", rot_n33[:-1], rot_n33[1:])
  step_pos_n3 = np.einsum("nji,nj->ni", rot_n33[:-1], pos_n3[1:] - pos_n3[:-1])
  return fps * step_pos_n3, Rotation.from_matrix(step_rot_n33).as_rotvec()


def _translation_classes(vel_n3: np.ndarray, static: float, diff: float) -> np.ndarray:
  speed_n3 = np.abs(vel_n3)
  fastest_n1 = speed_n3.max(axis=1, keepdims=True)
  moving_n3 = speed_n3 > static
  # Compare against the fastest axis, which moves whenever any axis does.
  close_n3 = (fastest_n1 - speed_n3) <= diff * fastest_n1
  signs_n3 = np.where(moving_n3 & close_n3, np.sign(vel_n3), 0).astype(np.int64)
  return _TRANSLATION_TABLE[(signs_n3 + 1) @ np.array([9, 3, 1])]


def _rotation_classes(rotvec_n3: np.ndarray, angular_static: float) -> np.ndarray:
  size_n3 = np.abs(rotvec_n3)
  axis_n = np.argmax(size_n3, axis=1)
  top2_n2 = np.sort(size_n3, axis=1)[:, -2:]
  # Static below the threshold, and on an exact tie between the two strongest axes.
  turning_n = (top2_n2[:, 1] > angular_static) & (top2_n2[:, 1] > top2_n2[:, 0])
  sign_n = rotvec_n3[np.arange(len(axis_n)), axis_n] < 0  # 0 for +, 1 for -
  return np.where(turning_n, _ROTATION_TABLE[2 * axis_n + sign_n], ROTATIONS.index("static"))


def _mode_filter(labels_n: np.ndarray, window: int) -> np.ndarray:
  """Most frequent label in a clipped centred window; ties go to the smallest label value."""
  n = len(labels_n)
  if n < window:
    return labels_n.copy()
  half = window // 2
  values, inverse = np.unique(labels_n, return_inverse=True)  # sorted, so argmax picks the smallest
  counts_nc = np.zeros((n + 1, len(values)), np.int64)
  counts_nc[np.arange(1, n + 1), inverse] = 1
  counts_nc = np.cumsum(counts_nc, axis=0)
  index = np.arange(n)
  in_window_nc = counts_nc[np.minimum(index + half + 1, n)] - counts_nc[np.maximum(index - half, 0)]
  return values[np.argmax(in_window_nc, axis=1)]


def _runs(labels_n: np.ndarray) -> list[list[int]]:
  """[label, length] for each run of equal labels, in order."""
  if len(labels_n) == 0:
    return []
  starts = np.flatnonzero(np.diff(labels_n)) + 1
  bounds = np.concatenate([[0], starts, [len(labels_n)]])
  return [[int(labels_n[a]), int(b - a)] for a, b in itertools.pairwise(bounds)]


def _remove_short_chunks(labels_n: np.ndarray, min_chunk: int) -> np.ndarray:
  """Gives runs shorter than `min_chunk` to their neighbours, shortest first (step 5b)."""
  runs = _runs(labels_n)
  while len(runs) > 1:
    shortest = int(np.argmin([length for _, length in runs]))
    length = runs[shortest][1]
    if length >= min_chunk:
      break
    if shortest == 0:
      runs[1][1] += length
    elif shortest == len(runs) - 1:
      runs[-2][1] += length
    else:
      runs[shortest - 1][1] += (length + 1) // 2
      runs[shortest + 1][1] += length // 2
    runs.pop(shortest)
  return np.repeat([label for label, _ in runs], [length for _, length in runs]).astype(labels_n.dtype)


def _clean(raw_n: np.ndarray, window: int, min_chunk: int, grow: int, max_segments: int) -> np.ndarray:
  """Step 5: mode filter of the raw labels, short-chunk removal, both widened until few runs remain."""
  while True:
    labels_n = _remove_short_chunks(_mode_filter(raw_n, window), min_chunk)
    if len(_runs(labels_n)) <= max_segments:
      return labels_n
    window, min_chunk = window + grow, min_chunk + grow


def _check_params(fps, static, diff, angular_static, window, min_chunk, grow, max_segments) -> None:
  if not (np.isfinite(fps) and fps > 0):
    raise ValueError(f"fps must be a positive number, got {fps}")
  for name, value in (("static", static), ("angular_static", angular_static)):
    if not (np.isfinite(value) and value >= 0):
      raise ValueError(f"{name} must be a finite threshold >= 0, got {value}")
  if not 0 <= diff <= 1:
    raise ValueError(f"diff is a relative speed difference and must be in [0, 1], got {diff}")
  for name, value in (("window", window), ("min_chunk", min_chunk), ("grow", grow), ("max_segments", max_segments)):
    if int(value) != value or value < 1:
      raise ValueError(f"{name} must be an integer >= 1, got {value}")


def segment(c2w_n44, *, fps: float = 30.0, static: float = 0.02, diff: float = 0.4,
            angular_static: float = 0.005, smooth: bool = True, window: int = 15, min_chunk: int = 10,
            grow: int = 5, max_segments: int = 4) -> np.ndarray:
  """Motion class (`translation * 7 + rotation`) of each step of a trajectory (steps 1-5 above).

  Args:
    c2w_n44: camera-to-world poses [N, 4, 4], OpenCV axes, N >= 2; checked (and slightly
      non-orthonormal rotations repaired) by `trajectory.check_trajectory`.
    fps: frame rate; translation velocities are per second.
    static: translation speed (units/s) at or below which an axis is static.
    diff: relative shortfall from the fastest axis beyond which a moving axis is dropped.
    angular_static: rotation (rad per frame, not scaled by fps) at or below which there is none.
    smooth: False returns the raw labels of step 4 (no step 5).
    window, min_chunk, grow, max_segments: the cleaning of step 5.

  Returns:
    int64 [N-1]; label k is the motion from pose k to pose k+1.

  Raises:
    TrajectoryError: malformed poses (named frame) or fewer than 2 frames.
    ValueError: a parameter out of range.
  """
  _check_params(fps, static, diff, angular_static, window, min_chunk, grow, max_segments)
  c2w_n44 = check_trajectory(c2w_n44, min_frames=2)
  vel_n3, rotvec_n3 = _camera_steps(c2w_n44, float(fps))
  raw_n = _translation_classes(vel_n3, static, diff) * NUM_ROTATION + _rotation_classes(rotvec_n3, angular_static)
  if not smooth:
    return raw_n
  # Clean in the official numbering so that ties resolve as they do there, then map back.
  return _FROM_OFFICIAL_RANK[_clean(_OFFICIAL_RANK[raw_n], window, min_chunk, grow, max_segments)]


def weighted_f1(pred_labels, true_labels) -> float:
  """Multiclass F1 averaged over classes with weights = support in `true_labels` (step 6).

  Raises:
    ValueError: the label arrays are not 1-D integer arrays of the same non-zero length.
  """
  pred_n, true_n = np.asarray(pred_labels), np.asarray(true_labels)
  if pred_n.ndim != 1 or true_n.ndim != 1 or len(pred_n) != len(true_n) or len(true_n) == 0:
    raise ValueError(f"weighted_f1 needs two 1-D label arrays of the same non-zero length, "
                     f"got shapes {pred_n.shape} and {true_n.shape}")
  for name, labels in (("pred_labels", pred_n), ("true_labels", true_n)):
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
  classes = np.union1d(pred_n, true_n)
  hit_n = pred_n == true_n
  tp_c = np.array([np.sum(hit_n & (true_n == c)) for c in classes], np.float64)
  pred_count_c = np.array([np.sum(pred_n == c) for c in classes], np.float64)
  support_c = np.array([np.sum(true_n == c) for c in classes], np.float64)
  # 2TP + FP + FN = predicted + true counts; > 0 for every class present in either.
  f1_c = 2.0 * tp_c / (pred_count_c + support_c)
  return float(np.sum(support_c * f1_c) / np.sum(support_c))


def _as_batch(c2w, name: str) -> np.ndarray:
  c2w = np.asarray(c2w, dtype=np.float64)
  if c2w.ndim == 3:
    c2w = c2w[None]
  if c2w.ndim != 4 or c2w.shape[-2:] != (4, 4):
    raise TrajectoryError(f"{name} must be [N, 4, 4] or [B, N, 4, 4], got shape {c2w.shape}")
  return c2w


def trajectory_f1(generated_c2w, reference_c2w, *, num: int | None = None, **segment_kw) -> float:
  """Weighted F1 of the generated trajectory's tags against the reference's, frame by frame.

  Args:
    generated_c2w, reference_c2w: [N, 4, 4] or a batch [B, N, 4, 4] (same B); a batch pools the
      frames of all pairs into one F1, as the official evaluation does over a test set.
    num: if given, every trajectory is first resampled to `num` frames (`trajectory.resample`);
      GenDoP compares at 120 frames. Velocities are per frame, so the frame count matters.
    **segment_kw: passed to `segment` for both.

  Raises:
    TrajectoryError: malformed poses, or frame or batch counts that differ while `num` is None.
  """
  generated, reference = _as_batch(generated_c2w, "generated_c2w"), _as_batch(reference_c2w, "reference_c2w")
  if len(generated) != len(reference):
    raise TrajectoryError(f"batch sizes differ: {len(generated)} generated, {len(reference)} reference")
  if num is None and generated.shape[1] != reference.shape[1]:
    raise TrajectoryError(f"frame counts differ: {generated.shape[1]} generated, {reference.shape[1]} reference; "
                          "pass num= to resample both")
  pred, true = [], []
  for gen_n44, ref_n44 in zip(generated, reference):
    if num is not None:
      gen_n44, ref_n44 = resample(gen_n44, num=num), resample(ref_n44, num=num)
    pred.append(segment(gen_n44, **segment_kw))
    true.append(segment(ref_n44, **segment_kw))
  return weighted_f1(np.concatenate(pred), np.concatenate(true))


def dominant_motions(c2w_n44, **segment_kw) -> list[tuple[int, int, int, int]]:
  """The runs of `segment` as (translation, rotation, start, end): labels[start:end] share the
  class, i.e. the camera makes that motion from pose `start` to pose `end`. In time order."""
  labels_n = segment(c2w_n44, **segment_kw)
  motions, start = [], 0
  for label, length in _runs(labels_n):
    translation, rotation = divmod(label, NUM_ROTATION)
    motions.append((translation, rotation, start, start + length))
    start += length
  return motions
