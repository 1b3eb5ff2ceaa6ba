"""Rigid-body grouping of point tracks on bodies with known, different rigid motions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxlab.spatial import rigid_groups as rg

T = 5


def _body(rng, center, n, rotvec_per_frame, shift_per_frame):
  """[T, n, 3] points of one rigid body turning about its centre and moving, frame by frame."""
  local = rng.uniform(-0.3, 0.3, size=(n, 3))
  frames = []
  for t in range(T):
    rot = Rotation.from_rotvec(np.asarray(rotvec_per_frame) * t)
    frames.append(rot.apply(local) + np.asarray(center) + t * np.asarray(shift_per_frame))
  return np.stack(frames)


def _scene(seed=0):
  rng = np.random.default_rng(seed)
  # The bodies drift apart, so every cross-body distance changes by well over 0.01 m a frame (the method
  # ignores slower changes, so two points on different bodies that keep their distance look rigid).
  body_a = _body(rng, [0, 0, 1], 40, [0, 0, np.radians(10)], [-0.15, 0.0, 0.0])
  body_b = _body(rng, [2, 0, 1], 30, [np.radians(-8), 0, 0], [0.3, 0.05, 0.05])
  small = _body(rng, [-1, 1.5, 1], 5, [0, np.radians(15), 0], [-0.1, 0.3, 0.1])
  hidden = _body(rng, [0, 0, 1], 4, [0, 0, 0], [0.2, 0.2, 0.0])
  points = np.concatenate([body_a, body_b, small, hidden], axis=1)
  labels = np.repeat([0, 1, 2, 3], [40, 30, 5, 4])
  # Tracking noise well under the 0.01 m floor: a pair's distance moves by at most 4 * 0.0012 * sqrt(3).
  points = points + rng.uniform(-0.0012, 0.0012, size=points.shape)
  visible = np.ones(points.shape[:2], bool)
  visible[:, labels == 3] = False
  points[:, labels == 3] = np.nan  # never seen: no position at all
  # Some body points drop out for a frame or two and still belong to their body.
  visible[1, np.flatnonzero(labels == 0)[:5]] = False
  visible[3:, np.flatnonzero(labels == 1)[:4]] = False
  # Shuffle so that bodies are not contiguous index ranges.
  order = rng.permutation(points.shape[1])
  return points[:, order], visible[:, order], labels[order]


def test_two_rigid_bodies_come_out_as_two_groups():
  points, visible, labels = _scene()
  groups = rg.rigid_groups(points, visible)
  assert len(groups) == 2
  got = sorted(tuple(np.sort(g).tolist()) for g in groups)
  want = sorted(tuple(np.flatnonzero(labels == b).tolist()) for b in (0, 1))
  assert got == want
  # ordered by their smallest index, ascending indices inside
  assert [int(g[0]) for g in groups] == sorted(int(g[0]) for g in groups)
  assert all(np.all(np.diff(g) > 0) for g in groups)


def test_small_group_is_dropped_and_kept_with_a_lower_minimum():
  points, visible, labels = _scene()
  small = set(np.flatnonzero(labels == 2).tolist())
  assert not any(small & set(g.tolist()) for g in rg.rigid_groups(points, visible))
  groups = rg.rigid_groups(points, visible, min_size=5)
  assert len(groups) == 3
  assert any(set(g.tolist()) == small for g in groups)


def test_never_visible_points_are_excluded():
  points, visible, labels = _scene()
  hidden = set(np.flatnonzero(labels == 3).tolist())
  for min_size in (1, 6):
    for g in rg.rigid_groups(points, visible, min_size=min_size):
      assert not hidden & set(g.tolist())


@pytest.mark.parametrize("seed", [1, 2])
def test_other_draws(seed):
  points, visible, labels = _scene(seed)
  groups = rg.rigid_groups(points, visible)
  got = sorted(tuple(np.sort(g).tolist()) for g in groups)
  assert got == sorted(tuple(np.flatnonzero(labels == b).tolist()) for b in (0, 1))


def test_distance_change_ignores_noise_and_hidden_frames():
  # Point 2 "jumps" 1 m and back while hidden in frame 1; point 1 drifts 5 mm a frame (noise).
  pts = np.zeros((3, 3, 3))
  pts[:, 1, 0] = [1.0, 1.005, 1.010]
  pts[:, 2, 1] = [1.0, 2.0, 1.0]
  vis = np.ones((3, 3), bool)
  vis[1, 2] = False
  change = rg.accumulated_distance_change(pts, vis)  # pairs (0,1), (0,2), (1,2)
  np.testing.assert_allclose(change, [0.0, 0.0, 0.0], atol=1e-12)
  # Seen in every frame the jump counts twice (there and back) for both pairs it touches.
  change_seen = rg.accumulated_distance_change(pts, np.ones((3, 3), bool))
  assert change_seen[0] == 0.0 and change_seen[1] == pytest.approx(2.0)
  assert change_seen[2] > 1.0


def test_distance_change_bridges_gaps_and_marks_unknown_pairs():
  # Point 0 is hidden in frame 1, point 1 in frame 2: they are seen together in frames 0 and 3 only.
  pts = np.zeros((4, 3, 3))
  pts[:, 1, 0] = [1.0, 1.5, 2.0, 2.5]  # moves away from point 0
  pts[:, 2, 2] = [1.0, 1.0, 1.0, 1.0]
  vis = np.ones((4, 3), bool)
  vis[1, 0] = False
  vis[2, 1] = False
  vis[1:, 2] = False  # point 2 is seen once only
  change = rg.accumulated_distance_change(pts, vis)
  assert change[0] == pytest.approx(1.5)  # frames 0 -> 3
  assert np.isnan(change[1]) and np.isnan(change[2])


def test_points_hidden_at_complementary_times_stay_with_their_bodies():
  points, visible, labels = _scene(3)
  a, b = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
  # 6 points of each body, each set hidden while the other is seen: no pair across the sets is ever
  # compared, which must not make them one rigid body of their own.
  visible[:3, a[-6:]] = False
  visible[3:, b[-6:]] = False
  groups = rg.rigid_groups(points, visible)
  got = sorted(tuple(np.sort(g).tolist()) for g in groups)
  assert got == sorted([tuple(a.tolist()), tuple(b.tolist())])


def test_a_point_seen_in_one_frame_cannot_be_placed():
  points, visible, labels = _scene(4)
  lone = int(np.flatnonzero(labels == 0)[0])
  visible[1:, lone] = False
  groups = rg.rigid_groups(points, visible)
  assert len(groups) == 2 and not any(lone in g for g in groups)


def test_static_scene_is_one_body_and_empty_inputs():
  rng = np.random.default_rng(0)
  still = np.repeat(rng.normal(size=(1, 12, 3)), 4, axis=0)
  groups = rg.rigid_groups(still, np.ones((4, 12), bool))
  assert len(groups) == 1 and groups[0].tolist() == list(range(12))
  assert rg.rigid_groups(still, np.zeros((4, 12), bool)) == []


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"\[T, N, 3\]"):
    rg.rigid_groups(np.zeros((3, 4, 2)), np.ones((3, 4), bool))
  with pytest.raises(ValueError, match="NaN"):
    rg.accumulated_distance_change(np.full((2, 3, 3), np.nan), np.ones((2, 3), bool))


def test_exactly_rigid_tracks_with_tied_changes_group_without_error():
  """Noise-free bodies give many exactly equal distance changes (scipy's linkage once failed on them)."""
  from jaxlab.spatial.rooms import make_track_scene

  scene = make_track_scene(5, "room_objects")
  groups = rg.rigid_groups(scene.points_world_tn3, scene.visible_tn)
  assert groups and all(len(g) >= 6 for g in groups)
  points = np.concatenate(groups)
  assert len(points) == len(set(points.tolist()))
