"""Minimal covering frame sets on hand-built scenes: boards on a wall seen by cameras at known heights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxlab.spatial import coverage
from jaxlab.spatial.scene import Frame, SceneError, SceneObject, StaticScene

H, W = 48, 64
K = np.array([[100.0, 0.0, 32.0], [0.0, 100.0, 24.0], [0.0, 0.0, 1.0]])
WALL_X = 3.0
# At 3 m a camera sees 3 * 24 / 100 = 0.72 m above and below its own height, 0.96 m to each side.


def look_pose(position, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
  """cam_to_world of an OpenCV camera at `position` looking at (yaw, pitch) in the z-up world, no roll."""
  yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
  forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
  right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
  pose[:3, 3] = position
  return pose


def wall_frame(name: str, height: float, yaw_deg: float = 0.0, occlude_rows: int = 0) -> Frame:
  """A camera at (0, 0, height) and the depth of the wall x = WALL_X; the top rows can hold a near occluder."""
  pose = look_pose([0.0, 0.0, height], yaw_deg)
  cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
  rays_cam = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], -1)
  rays_world = rays_cam @ pose[:3, :3].T
  with np.errstate(divide="ignore"):
    depth = (WALL_X - pose[0, 3]) / rays_world[..., 0]
  depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)
  depth[:occlude_rows] = np.where(depth[:occlude_rows] > 0, 1.0, 0.0)
  return Frame(name, np.zeros((H, W, 3), np.uint8), depth.astype(np.float32), K, pose)


def board(object_id: int, label: str, y_range, z_range, step=0.05):
  """A thin board on the wall: the object and its front-face points (on the wall plane)."""
  ys = np.arange(y_range[0], y_range[1] + 1e-9, step)
  zs = np.arange(z_range[0], z_range[1] + 1e-9, step)
  yy, zz = np.meshgrid(ys, zs)
  points = np.stack([np.full(yy.size, WALL_X), yy.ravel(), zz.ravel()], axis=1)
  extent = np.array([0.02, y_range[1] - y_range[0], z_range[1] - z_range[0]])
  center = np.array([WALL_X + 0.01, np.mean(y_range), np.mean(z_range)])
  return SceneObject(object_id, label, center, extent), points


def scene_of(frames, boards):
  rng = np.random.default_rng(0)
  wall_points = np.stack([np.full(200, WALL_X), rng.uniform(-3, 3, 200), rng.uniform(0, 3, 200)], axis=1)
  points = [wall_points] + [p for _, p in boards]
  ids = [np.zeros(len(wall_points), np.int32)] + [np.full(len(p), o.id, np.int32) for o, p in boards]
  return StaticScene("hand", tuple(frames), tuple(o for o, _ in boards), np.concatenate(points),
                     np.concatenate(ids))


def tall_scene(occlude_top_of_a: int = 0) -> StaticScene:
  # A 3 m board; camera A (index 1) sees its top only, B (index 3) its bottom only, C (index 0) the
  # middle, D (index 2) looks away.
  frames = [wall_frame("C", 1.5), wall_frame("A", 2.5, occlude_rows=occlude_top_of_a),
            wall_frame("D", 1.5, yaw_deg=180.0), wall_frame("B", 0.5)]
  return scene_of(frames, [board(1, "door", (-0.5, 0.5), (0.0, 3.0))])


def test_tall_object_needs_top_and_bottom_frames():
  scene = tall_scene()
  assert coverage.covering_sets(scene, 1, "height") == [(1, 3)]
  # allowed bigger sets, still only the minimal one: {A, B, C} holds {A, B}
  assert coverage.covering_sets(scene, 1, "height", max_k=3) == [(1, 3)]
  # one frame at a time never shows the whole height
  assert coverage.covering_sets(scene, 1, "height", max_k=1) == []


def test_length_of_the_tall_object_is_seen_by_each_facing_frame():
  # The board's length (1 m, along world y) fits in every frame facing it; single frames, no pairs.
  scene = tall_scene()
  assert coverage.covering_sets(scene, 1, "length") == [(0,), (1,), (3,)]
  assert coverage.covering_sets(scene, 1, "length", max_sets=2) == [(0,), (1,)]


def test_candidate_cap_keeps_frames_spread_over_the_video():
  # Candidates are frames 0, 1 and 3; keeping two keeps the first and the last.
  scene = tall_scene()
  assert coverage.covering_sets(scene, 1, "length", max_candidates=2) == [(0,), (3,)]
  assert coverage.covering_sets(scene, 1, "height", max_candidates=2) == []


def test_occluded_top_breaks_the_cover():
  # A near occluder over camera A's top rows hides the board's top: no frame set shows the full height.
  scene = tall_scene(occlude_top_of_a=20)
  assert coverage.covering_sets(scene, 1, "height", max_k=3) == []


def test_box_seen_fully_by_one_frame():
  frames = [wall_frame("full", 1.0), wall_frame("away", 1.0, yaw_deg=180.0), wall_frame("above", 2.2),
            wall_frame("top_edge", 1.85)]
  scene = scene_of(frames, [board(2, "box", (-0.2, 0.2), (0.8, 1.2), step=0.02)])
  # "top_edge" sees a strip of the box's top (a candidate), but only "full" shows the whole box.
  assert coverage.covering_sets(scene, 2, "height") == [(0,)]
  assert coverage.covering_sets(scene, 2, "height", max_k=3) == [(0,)]
  assert coverage.covering_sets(scene, 2, "length") == [(0,), (3,)]


def test_two_objects_are_kept_apart():
  frames = [wall_frame("low", 0.5), wall_frame("high", 2.5)]
  scene = scene_of(frames, [board(1, "door", (-0.5, 0.5), (0.0, 3.0)),
                            board(3, "picture", (0.6, 0.9), (2.3, 2.7))])
  assert coverage.covering_sets(scene, 1, "height") == [(0, 1)]
  assert coverage.covering_sets(scene, 3, "height") == [(1,)]


@pytest.mark.parametrize("extent,want", [((2.0, 1.0, 0.5), {"height": 2, "length": 0, "width": 1}),
                                         ((0.4, 1.5, 0.5), {"height": 2, "length": 1, "width": 0}),
                                         ((1.0, 1.0, 0.5), {"height": 2, "length": 0, "width": 1})])
def test_dimension_axis(extent, want):
  for dimension, axis in want.items():
    assert coverage.dimension_axis(extent, dimension) == axis


def test_bad_requests_raise():
  scene = tall_scene()
  with pytest.raises(SceneError, match="no object 9"):
    coverage.covering_sets(scene, 9, "height")
  with pytest.raises(ValueError, match="dimension"):
    coverage.covering_sets(scene, 1, "depth")
  pointless = StaticScene("p", scene.frames, scene.objects, scene.points_world_n3,
                          np.zeros_like(scene.point_object_ids_n))
  with pytest.raises(SceneError, match="no points"):
    coverage.covering_sets(pointless, 1, "height")
