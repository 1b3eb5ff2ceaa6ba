"""motion_tags: per-frame camera-motion classes, their cleaning, and the weighted F1."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxlab.camera import motion_tags
from jaxlab.camera.motion_classes import NUM_CLASSES, ROTATIONS, class_index, translation_index
from jaxlab.camera.trajectory import TrajectoryError

FPS = 30


def _cls(signs, rotation="static") -> int:
  return class_index(translation_index(signs), ROTATIONS.index(rotation))


STATIC = _cls((0, 0, 0))
DOLLY_IN = _cls((0, 0, 1))
PAN_LEFT = _cls((0, 0, 0), "pan_left")
TRUCK_LEFT_PAN_RIGHT = _cls((-1, 0, 0), "pan_right")


def _pose(right, down, forward, position) -> np.ndarray:
  c2w = np.eye(4)
  c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, position
  return c2w


def _base_rotation(seed: int = 0) -> np.ndarray:
  return Rotation.random(random_state=seed).as_matrix()


def _compose(steps, start=None) -> np.ndarray:
  """c2w [len(steps)+1, 4, 4] from camera-frame steps (translation per frame, rotation vector per frame)."""
  c2w = [np.eye(4) if start is None else start]
  for move, turn in steps:
    step = np.eye(4)
    step[:3, :3] = Rotation.from_rotvec(turn).as_matrix()
    step[:3, 3] = move
    c2w.append(c2w[-1] @ step)
  return np.stack(c2w)


def _random_walk(seed: int, n: int = 120) -> np.ndarray:
  """Piecewise-constant random motions plus noise: many classes and boundaries."""
  rng = np.random.default_rng(seed)
  steps = []
  for k in range(n - 1):
    if k % 25 == 0:
      move, turn = rng.normal(0, 0.003, 3), rng.normal(0, 0.008, 3) * (rng.random(3) < 0.5)
    steps.append((move + rng.normal(0, 0.001, 3), turn + rng.normal(0, 0.003, 3)))
  return _compose(steps, start=_pose(*_base_rotation(seed).T, rng.normal(size=3)))


# Constructed motions, built in world coordinates from what each move means physically.

def test_pure_dolly_in_moves_along_the_viewing_direction():
  rotation = _base_rotation(1)
  forward = rotation[:, 2]
  c2w = np.stack([_pose(*rotation.T, 0.01 * k * forward) for k in range(120)])
  assert (motion_tags.segment(c2w, smooth=False) == DOLLY_IN).all()
  assert (motion_tags.segment(c2w) == DOLLY_IN).all()
  # Backwards it is a dolly out.
  assert (motion_tags.segment(c2w[::-1]) == _cls((0, 0, -1))).all()


def test_truck_left_while_panning_right():
  rotation = _base_rotation(2)
  down = rotation[:, 1]
  poses, position = [], np.zeros(3)
  for k in range(120):
    # The view turns toward the camera's right (pan right) by 0.01 rad per frame ...
    forward = rotation @ np.array([np.sin(0.01 * k), 0.0, np.cos(0.01 * k)])
    right = np.cross(down, forward)
    poses.append(_pose(right, down, forward, position))
    position = position - 0.005 * right  # ... while the camera slides to its left.
  labels = motion_tags.segment(np.stack(poses))
  assert labels.shape == (119,)
  assert (labels == TRUCK_LEFT_PAN_RIGHT).all()


def test_tilt_and_roll_directions():
  rotation = _base_rotation(3)
  right, down = rotation[:, 0], rotation[:, 1]
  angles = 0.01 * np.arange(60)
  # Tilt up: the view turns toward -y (the camera's up).
  tilt = [_pose(right, np.cos(a) * down + np.sin(a) * rotation[:, 2],
                -np.sin(a) * down + np.cos(a) * rotation[:, 2], np.zeros(3)) for a in angles]
  assert (motion_tags.segment(np.stack(tilt)) == _cls((0, 0, 0), "tilt_up")).all()
  # Roll clockwise as the camera looks: its right axis turns toward its down axis.
  roll = [_pose(np.cos(a) * right + np.sin(a) * down, -np.sin(a) * right + np.cos(a) * down,
                rotation[:, 2], np.zeros(3)) for a in angles]
  assert (motion_tags.segment(np.stack(roll)) == _cls((0, 0, 0), "roll_cw")).all()


def test_static_and_jitter_below_the_thresholds_are_static():
  still = np.repeat(_pose(*_base_rotation(4).T, np.ones(3))[None], 50, axis=0)
  assert (motion_tags.segment(still) == STATIC).all()
  rng = np.random.default_rng(0)
  jitter = still.copy()
  # Position noise of 1e-4 moves < 3.5e-4 per frame (0.0104 units/s < 0.02); rotation noise of 1e-3
  # per axis turns < 3.5e-3 rad per frame (< 0.005).
  jitter[:, :3, 3] += rng.uniform(-1e-4, 1e-4, (50, 3))
  jitter[:, :3, :3] = Rotation.from_rotvec(rng.uniform(-1e-3, 1e-3, (50, 3))).as_matrix() @ jitter[:, :3, :3]
  assert (motion_tags.segment(jitter, smooth=False) == STATIC).all()
  assert (motion_tags.segment(jitter) == STATIC).all()
  # A 3-frame shake above the thresholds is cleaned away, though the raw tags see it.
  shaken = jitter.copy()
  shaken[20:23, :3, 3] += np.array([[0.01], [-0.01], [0.01]])
  assert (motion_tags.segment(shaken, smooth=False)[19:23] != STATIC).all()
  assert (motion_tags.segment(shaken) == STATIC).all()


def test_two_motions_in_sequence():
  steps = [((0, 0, 0.01), (0, 0, 0))] * 60 + [((0, 0, 0), (0, -0.02, 0))] * 59
  c2w = _compose(steps, start=_pose(*_base_rotation(5).T, np.zeros(3)))
  labels = motion_tags.segment(c2w)
  np.testing.assert_array_equal(labels, [DOLLY_IN] * 60 + [PAN_LEFT] * 59)
  dolly_in, pan_left = divmod(DOLLY_IN, 7), divmod(PAN_LEFT, 7)
  assert motion_tags.dominant_motions(c2w) == [(*dolly_in, 0, 60), (*pan_left, 60, 119)]


def test_diff_threshold_drops_clearly_slower_axes():
  def raw(move):
    return motion_tags.segment(_compose([(np.array(move) / FPS, (0, 0, 0))] * 4), smooth=False)
  # Relative shortfall 0.5 > 0.4: only the fastest axis is named.
  assert (raw((1.0, 0.5, 0.0)) == _cls((1, 0, 0))).all()
  # 0.3 <= 0.4: both are.
  assert (raw((1.0, -0.7, 0.0)) == _cls((1, -1, 0))).all()
  # Three axes: the one at 30% of the fastest goes, the one at 70% stays.
  assert (raw((-0.3, 0.7, 1.0)) == _cls((0, 1, 1))).all()
  # Below `static` (0.02 units/s) nothing moves, however the axes compare.
  assert (raw((0.019, 0.0, 0.0)) == STATIC).all()


def test_short_chunk_removal_merges_a_blip_into_its_neighbours():
  a, b, c = 3, 8, 5
  blip = np.array([a] * 20 + [b] * 2 + [c] * 20)
  np.testing.assert_array_equal(motion_tags._remove_short_chunks(blip, 10), [a] * 21 + [c] * 21)
  # An odd run gives the larger half to the left; a run at an end goes to its only neighbour.
  odd = np.array([a] * 20 + [b] * 3 + [c] * 20)
  np.testing.assert_array_equal(motion_tags._remove_short_chunks(odd, 10), [a] * 22 + [c] * 21)
  np.testing.assert_array_equal(motion_tags._remove_short_chunks(blip[18:], 10), [c] * 24)
  # Equal neighbours stay separate runs during the pass: here the second half of the re-joined
  # `a` run is then shorter than 10 and is split again.
  quirk = np.array([c] * 30 + [a] * 6 + [b] * 2 + [a] * 6 + [c + 1] * 30)
  np.testing.assert_array_equal(motion_tags._remove_short_chunks(quirk, 10), [c] * 34 + [a] * 10 + [c + 1] * 30)


def test_segment_removes_a_two_frame_blip():
  steps = [((0, 0, 0.01), (0, 0, 0))] * 119
  steps[50:52] = [((0.02, 0, 0), (0, 0, 0))] * 2
  c2w = _compose(steps)
  assert (motion_tags.segment(c2w, smooth=False)[50:52] == _cls((1, 0, 0))).all()
  assert (motion_tags.segment(c2w) == DOLLY_IN).all()


def test_cleaning_takes_the_majority_then_widens_until_four_runs():
  a, b, c = 1, 2, 3
  # Fragmented b (b b b a repeated) between a and c: the mode filter (window 15, 7 each side) calls
  # the middle b. Index 41's window holds 8 a and 7 b, index 42's 7 a and 8 b; index 78's window ties
  # 6 b with 6 c, and the tie goes to the smaller label b; from 79 on c leads.
  raw = np.array([a] * 40 + [b, b, b, a] * 10 + [c] * 40)
  np.testing.assert_array_equal(motion_tags._clean(raw, 15, 10, 5, 4), [a] * 42 + [b] * 37 + [c] * 41)
  # Six runs of 20 survive windows 15-25 and chunks 10-20; at chunk 25 the first run goes right,
  # then the run of 3 splits 10/10 between 2 and 4, then 5 splits between 4 and 6: three runs.
  six = np.repeat([1, 2, 3, 4, 5, 6], 20)
  np.testing.assert_array_equal(motion_tags._clean(six, 15, 10, 5, 4), [2] * 50 + [4] * 40 + [6] * 30)
  np.testing.assert_array_equal(motion_tags._clean(six, 15, 10, 5, 6), six)


def _plain_clean(raw, window, min_chunk, grow, max_segments) -> list[int]:
  """Step 5 written as plainly as possible (slow), to check the vectorized version against."""
  raw = [int(x) for x in raw]
  while True:
    half = window // 2
    smoothed = raw if len(raw) < window else [
        min(collections.Counter(raw[max(0, i - half):i + half + 1]).items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for i in range(len(raw))]
    runs = [[label, len(list(group))] for label, group in itertools.groupby(smoothed)]
    while len(runs) > 1:
      lengths = [length for _, length in runs]
      j = lengths.index(min(lengths))
      if lengths[j] >= min_chunk:
        break
      if j == 0:
        runs[1][1] += lengths[j]
      elif j == len(runs) - 1:
        runs[-2][1] += lengths[j]
      else:
        runs[j - 1][1] += lengths[j] - lengths[j] // 2
        runs[j + 1][1] += lengths[j] // 2
      del runs[j]
    out = [label for label, length in runs for _ in range(length)]
    if len(list(itertools.groupby(out))) <= max_segments:
      return out
    # Each pass starts again from the raw labels, with a wider window and a larger minimum.
    window, min_chunk = window + grow, min_chunk + grow


def test_cleaning_matches_a_plain_version():
  rng = np.random.default_rng(0)
  for _ in range(40):
    raw = np.repeat(rng.integers(0, 4, 12), rng.integers(1, 12, 12))
    noisy = np.where(rng.random(len(raw)) < 0.2, rng.integers(0, 4, len(raw)), raw)
    for labels in (raw, noisy):
      np.testing.assert_array_equal(motion_tags._clean(labels, 15, 10, 5, 4), _plain_clean(labels, 15, 10, 5, 4))


def test_rotation_needs_a_single_dominant_axis():
  rotation = motion_tags._rotation_classes(
      np.array([[0.01, 0.01, 0.0], [0.01, -0.02, 0.0], [0.004, 0.0, 0.0], [0.0, 0.0, -0.006]]), 0.005)
  names = [ROTATIONS[r] for r in rotation]
  assert names == ["static", "pan_left", "static", "roll_ccw"]


def test_mode_filter_ties_go_to_the_smallest_label():
  np.testing.assert_array_equal(motion_tags._mode_filter(np.array([7, 7, 2, 2]), 3), [7, 7, 2, 2])
  # Clipped windows at the ends hold one 7 and one 2: the tie goes to 2.
  np.testing.assert_array_equal(motion_tags._mode_filter(np.array([7, 2, 7, 2]), 3), [2, 7, 2, 2])
  # Shorter than the window: unchanged.
  np.testing.assert_array_equal(motion_tags._mode_filter(np.array([7, 2, 7]), 4), [7, 2, 7])


def test_official_numbering_used_for_ties():
  rank = motion_tags._OFFICIAL_RANK
  assert sorted(rank) == list(range(NUM_CLASSES))
  # Official (OpenGL) indices: translation 9 x + 3 y + z with digits 0, +1, -1 per axis, times 7, plus
  # rotation (static, pitch up, pitch down, yaw left, yaw right, roll left, roll right).
  assert rank[DOLLY_IN] == 2 * 7  # "move forward" is -z in OpenGL
  assert rank[_cls((1, 0, 0))] == 9 * 7  # "move right"
  assert rank[_cls((0, -1, 0))] == 3 * 7  # pedestal up is "move up", +y in OpenGL
  assert rank[PAN_LEFT] == 3 and rank[_cls((0, 0, 0), "tilt_up")] == 1
  assert rank[_cls((0, 0, 0), "roll_cw")] == 6


def test_segmentation_invariant_to_rigid_world_transform():
  c2w = _random_walk(6)
  world = _pose(*_base_rotation(7).T, np.array([3.0, -1.0, 2.0]))
  moved = world @ c2w
  raw = motion_tags.segment(c2w, smooth=False)
  assert len(np.unique(raw)) > 5  # a varied trajectory, so the check means something
  np.testing.assert_array_equal(motion_tags.segment(moved, smooth=False), raw)
  np.testing.assert_array_equal(motion_tags.segment(moved), motion_tags.segment(c2w))


def test_segmentation_depends_on_world_scale_for_translation_only():
  # No normalization: a dolly at 0.015 units/s is static, the same path twice as large is not.
  slow = _compose([((0, 0, 0.015 / FPS), (0, 0.01, 0))] * 30)
  scaled = slow.copy()
  scaled[:, :3, 3] *= 2.0
  assert (motion_tags.segment(slow) == _cls((0, 0, 0), "pan_right")).all()
  assert (motion_tags.segment(scaled) == _cls((0, 0, 1), "pan_right")).all()


def test_at_most_four_runs_after_cleaning():
  for seed in range(3):
    labels = motion_tags.segment(_random_walk(seed))
    assert 1 <= len(motion_tags._runs(labels)) <= 4
    assert len(motion_tags.dominant_motions(_random_walk(seed))) == len(motion_tags._runs(labels))


def test_weighted_f1_by_hand():
  # class 0: TP 1, FP 1, FN 0 -> 2/3; class 1: TP 2, FN 1 -> 4/5; class 2: 1. Support 1, 3, 1.
  assert motion_tags.weighted_f1([0, 0, 1, 1, 2], [0, 1, 1, 1, 2]) == pytest.approx((2 / 3 + 3 * 0.8 + 1) / 5)
  # A class only predicted has weight 0, and its frames are misses.
  assert motion_tags.weighted_f1([5, 5, 0], [0, 0, 0]) == pytest.approx(2 * 1 / (1 + 3))
  assert motion_tags.weighted_f1([4, 4], [4, 4]) == 1.0


def test_trajectory_f1_same_and_other_class():
  two = _compose([((0, 0, 0.01), (0, 0, 0))] * 60 + [((0, 0, 0), (0, -0.02, 0))] * 59)
  dolly = _compose([((0, 0, 0.01), (0, 0, 0))] * 119)
  truck_pan = _compose([((-0.01, 0, 0), (0, 0.02, 0))] * 119)
  assert motion_tags.trajectory_f1(two, two) == 1.0
  assert motion_tags.trajectory_f1(truck_pan, dolly) == 0.0
  # Dolly everywhere against dolly-then-pan: F1(dolly) = 120 / 179, weight 60 of 119; pan scores 0.
  score = motion_tags.trajectory_f1(dolly, two)
  assert score == pytest.approx(60 / 119 * 120 / 179)
  assert score < 0.5
  # A batch pools the frames: same as concatenating the labels.
  pooled = motion_tags.trajectory_f1(np.stack([dolly, two]), np.stack([two, two]))
  expected = motion_tags.weighted_f1(np.concatenate([motion_tags.segment(dolly), motion_tags.segment(two)]),
                                     np.concatenate([motion_tags.segment(two)] * 2))
  assert pooled == pytest.approx(expected)


def test_trajectory_f1_resamples_to_a_common_length():
  short = _compose([((0, 0, 0.04), (0, 0, 0))] * 29)  # the same path as 119 steps of 0.01
  long = _compose([((0, 0, 0.01), (0, 0, 0))] * 119)
  with pytest.raises(TrajectoryError, match="frame counts differ: 30 generated, 120 reference"):
    motion_tags.trajectory_f1(short, long)
  assert motion_tags.trajectory_f1(short, long, num=120) == 1.0


def test_bad_input_is_named():
  c2w = _compose([((0, 0, 0.01), (0, 0, 0))] * 9)
  broken = c2w.copy()
  broken[4, 0, 3] = np.nan
  with pytest.raises(TrajectoryError, match="frame 4"):
    motion_tags.segment(broken)
  with pytest.raises(TrajectoryError, match="at least 2"):
    motion_tags.segment(c2w[:1])
  with pytest.raises(ValueError, match="fps"):
    motion_tags.segment(c2w, fps=0)
  with pytest.raises(ValueError, match="diff"):
    motion_tags.segment(c2w, diff=1.5)
  with pytest.raises(ValueError, match="same non-zero length"):
    motion_tags.weighted_f1([1, 2], [1])
  with pytest.raises(ValueError, match="integer"):
    motion_tags.weighted_f1([1.0], [1.0])
  with pytest.raises(TrajectoryError, match="batch sizes differ"):
    motion_tags.trajectory_f1(np.stack([c2w, c2w]), c2w)
