"""The engine: every subtask from generated scenes, answers checked against the geometry by other routes,
counted skips where no valid question exists, and a deterministic source."""

from __future__ import annotations

import collections
import pickle
import re

import numpy as np
import pytest

from jaxlab.spatial import geometry
from jaxlab.spatial.engine import build_question, plan_scene, scene_subtasks
from jaxlab.spatial.plans import EngineConfig, StaticPlan
from jaxlab.spatial.rooms import make_room_scene, make_track_scene
from jaxlab.spatial.sample import Skip
from jaxlab.spatial.scene import Frame, SceneObject, StaticScene, TrackScene
from jaxlab.spatial.scoring import extract_answer, is_correct
from jaxlab.spatial.source import MultiSpaSource
from jaxlab.spatial.subtasks import OBJECT_MOVEMENT_KINDS, STATIC_SUBTASKS, object_movement_subtask
from tests.spatial.test_geometry import K, look_pose, wall_frame

CONFIG = EngineConfig(dot_radius=2)


@pytest.fixture(scope="module")
def room_plan():
  return plan_scene(make_room_scene(3), CONFIG, seed=0)


@pytest.fixture(scope="module")
def track_plan():
  return plan_scene(make_track_scene(2, "room_objects"), CONFIG, seed=0)


def _draw(plan, subtask, tries=20):
  for attempt in range(tries):
    try:
      return build_question(plan, subtask, np.random.default_rng(attempt), f"q{attempt}", CONFIG)
    except Skip:
      continue
  raise AssertionError(f"no {subtask} question in {tries} draws")


def test_all_26_subtasks_and_every_reference_answer_scores_correct(room_plan, track_plan):
  figures = plan_scene(make_track_scene(2, "room_figures"), CONFIG, seed=0)
  names = set()
  for plan in (room_plan, track_plan, figures):
    for subtask in scene_subtasks(plan):
      for k in range(3):
        sample = _draw(plan, subtask, tries=20 + k)
        qa = sample.qa
        names.add(qa.subtask)
        assert qa.subtask == subtask and len(sample.images) == len(qa.images) == qa.question.count("<image>")
        assert is_correct(qa, qa.answer), (qa.subtask, qa.answer, qa.gt_value)
        assert extract_answer(qa.answer) is not None
  assert len(names) == 26


def test_depth_value_is_the_depth_map_under_the_dot(room_plan):
  for seed in range(5):
    sample = build_question(room_plan, "depth_value_dot", np.random.default_rng(seed), "d", CONFIG)
    frame = next(f for f in room_plan.scene.frames if f.name == sample.qa.meta["frames"][0])
    u, v = sample.qa.meta["uv"]
    assert sample.qa.gt_value == pytest.approx(round(1000 * float(frame.depth_hw[int(v), int(u)])))
    # The dot is drawn there: the pixel changed to a colour the plain frame does not have at that spot.
    assert np.any(sample.images[0][int(v), int(u)] != frame.rgb_hw3[int(v), int(u)])


def test_depth_comparison_names_the_closer_point(room_plan):
  for seed in range(6):
    sample = build_question(room_plan, "depth_compare_dot", np.random.default_rng(seed), "c", CONFIG)
    near, far = sorted(sample.qa.meta["depths_mm"])
    assert far - near >= CONFIG.min_depth_gap * near - 1  # Rounded to millimetres.
    closer = "A" if sample.qa.meta["depths_mm"][0] < sample.qa.meta["depths_mm"][1] else "B"
    assert sample.qa.gt_value == closer


def test_correspondence_points_are_one_world_point(room_plan):
  """Unproject image 1's point by its depth map, project into frame 2: the answer's pixel (another route
  than the engine's surface points)."""
  frames = {f.name: f for f in room_plan.scene.frames}
  for seed in range(8):
    sample = build_question(room_plan, "correspondence_coord", np.random.default_rng(seed), "m", CONFIG)
    f1, f2 = (frames[n] for n in sample.qa.meta["frames"])
    (u1, v1), (u2, v2) = sample.qa.meta["uv"]
    world = geometry.unproject(u1, v1, float(f1.depth_hw[int(v1), int(u1)]), f1.intrinsics_33, f1.cam_to_world_44)
    (uv,), _ = geometry.project(world[None], f2.intrinsics_33, f2.cam_to_world_44)
    assert np.hypot(uv[0] - u2, uv[1] - v2) < 3.0  # Pixel quantisation of the depth lookup.
    x, y = geometry.normalized_coords(u2, v2, f2.width, f2.height)
    assert sample.qa.gt_value == (float(x), float(y))


def test_correspondence_choice_letter_sits_at_the_true_point(room_plan):
  for seed in range(4):
    sample = build_question(room_plan, "correspondence_mcq", np.random.default_rng(seed), "m", CONFIG)
    assert sample.qa.gt_value in "ABCD"
    (_, _), (u2, v2) = sample.qa.meta["uv"]
    image2 = sample.images[1]
    frame2 = next(f for f in room_plan.scene.frames if f.name == sample.qa.meta["frames"][1])
    changed = np.any(image2 != frame2.rgb_hw3, axis=-1)
    assert changed[int(v2), int(u2)]  # A dot is drawn on the true point (with three distractors elsewhere).
    assert changed.sum() > 4 * 4


def _pair_plan(pose_2):
  """Two frames facing a wall, the second at pose_2; the pair is forced into the plan."""
  f1, f2 = wall_frame(look_pose([0, 0, 1.5], 0.0), name="a"), wall_frame(pose_2, name="b")
  scene = StaticScene("pair", (f1, f2), (), np.zeros((1, 3)), np.zeros(1, np.int32))
  return StaticPlan(scene, np.ones((2, 1), bool), ((0, 1, 0.2),))


@pytest.mark.parametrize("pose_2, expected", [
    (look_pose([0, -0.5, 1.5], 0.0), {"camera_left_right": "right", "camera_distance": 500.0}),
    (look_pose([0, 0.5, 1.5], 0.0), {"camera_left_right": "left"}),
    (look_pose([0, 0, 1.1], 0.0), {"camera_up_down": "down"}),
    (look_pose([0.6, 0, 1.5], 0.0), {"camera_forward_backward": "forward", "camera_vector": (0.0, 0.0, 600.0)}),
    (look_pose([0, 0, 1.5], 20.0), {"camera_yaw_direction": "left", "camera_yaw_degrees": 20.0}),
    (look_pose([0, 0, 1.5], 0.0, 12.0), {"camera_pitch_direction": "up", "camera_pitch_degrees": 12.0}),
])
def test_camera_answers_on_constructed_pairs(pose_2, expected):
  """Swaps happen at random: answers are checked in whichever order the question shows the frames."""
  plan = _pair_plan(pose_2)
  flipped = {"right": "left", "left": "right", "up": "down", "down": "up", "forward": "backward"}
  for seed in range(6):
    for subtask, value in expected.items():
      qa = build_question(plan, subtask, np.random.default_rng(seed), "c", CONFIG).qa
      swapped = qa.meta["frames"] == ["b", "a"]
      if isinstance(value, str) and swapped:
        value = flipped[value]
      if subtask == "camera_vector" and swapped:
        value = tuple(-c for c in value)
      assert qa.gt_value == pytest.approx(value, abs=1.0), (subtask, swapped)


def test_direction_questions_below_the_threshold_are_skipped():
  plan = _pair_plan(look_pose([0, -0.01, 1.5], 0.0))
  with pytest.raises(Skip, match="too small"):
    build_question(plan, "camera_left_right", np.random.default_rng(0), "c", CONFIG)


def test_object_size_answers_the_box_and_shows_a_covering_set(room_plan):
  scene = room_plan.scene
  for dimension in ("height", "width", "length"):
    sample = _draw(room_plan, f"object_size_{dimension}")
    obj = scene.object_by_id(sample.qa.meta["object_id"])
    assert sample.qa.gt_value == round(1000 * getattr(obj, dimension))
    assert re.search(rf"\b{obj.label}\b", sample.qa.question)
    assert 1 <= len(sample.images) <= CONFIG.max_cover_images


def _translating_box_tracks(shift_m_per_frame):
  """Two rigid clusters of points: one static, one sliding along world +x; a fixed camera looking along +x."""
  rng = np.random.default_rng(0)
  t = 4
  moving = rng.uniform([2.5, -0.3, 1.2], [2.8, 0.3, 1.8], (30, 3))
  static = rng.uniform([3.5, -1.0, 0.5], [3.6, 1.0, 2.0], (30, 3))
  points = np.stack([np.concatenate([moving + [k * shift_m_per_frame, 0, 0], static]) for k in range(t)])
  pose = look_pose([0, 0, 1.5], 0.0)
  return TrackScene("slide", "room_objects", np.zeros((t, 48, 64, 3), np.uint8), K, np.stack([pose] * t),
                    points, np.ones(points.shape[:2], bool))


def test_object_movement_distance_and_vector_on_a_known_motion():
  scene = _translating_box_tracks(0.1)
  plan = plan_scene(scene, CONFIG, seed=0)
  assert sorted(len(g) for g in plan.groups) == [30, 30]
  for kind in OBJECT_MOVEMENT_KINDS:
    qa = _draw(plan, object_movement_subtask("room_objects", kind)).qa
    t1, t2 = qa.meta["frames"]
    shift = 100.0 * (t2 - t1)
    if kind.startswith("distance"):
      assert qa.gt_value == pytest.approx(abs(shift), abs=1)
    else:  # World +x is the camera's forward (z) axis.
      assert qa.gt_value == pytest.approx((0.0, 0.0, shift), abs=1)


def test_static_tracks_give_counted_skips_not_zero_answers():
  plan = plan_scene(_translating_box_tracks(0.0), CONFIG, seed=0)
  with pytest.raises(Skip):
    build_question(plan, object_movement_subtask("room_objects", "distance_dot"), np.random.default_rng(0), "s",
                   CONFIG)


def test_a_scene_with_no_pair_in_range_yields_counted_skips():
  """Identical frames overlap 100 %: no pair in [6 %, 35 %]; pair questions are skipped with the reason."""
  frame = wall_frame(look_pose([0, 0, 1.5], 0.0))
  points = np.array([[3.0, y, z] for y in np.linspace(-0.5, 0.5, 8) for z in np.linspace(1.2, 1.8, 8)])
  scene = StaticScene("same", (frame, Frame("g", frame.rgb_hw3, frame.depth_hw, K, frame.cam_to_world_44)),
                      (SceneObject(1, "box", [3, 0, 1.5], [0.1, 0.1, 0.1]),), points, np.zeros(len(points), np.int32))
  plan = plan_scene(scene, CONFIG, seed=0)
  assert plan.pairs == ()
  with pytest.raises(Skip, match="no frame pair in the overlap range"):
    build_question(plan, "camera_distance", np.random.default_rng(0), "x", CONFIG)


def test_wrong_subtask_for_the_scene_kind_is_an_error(room_plan, track_plan):
  with pytest.raises(ValueError, match="static scene"):
    build_question(room_plan, "object_movement_room_objects_distance_dot", np.random.default_rng(0), "x", CONFIG)
  with pytest.raises(ValueError, match="track scene"):
    build_question(track_plan, "camera_distance", np.random.default_rng(0), "x", CONFIG)


def test_source_is_deterministic_across_copies_and_counts_skips():
  source = MultiSpaSource([("room", 1), ("track", 1, "room_figures")], items_per_scene=20, config=CONFIG,
                          height=48, width=64, num_frames=8)
  copy = pickle.loads(pickle.dumps(source))
  for index in (0, 7, 19, 20, 33):
    a, b = source[index], copy[index]
    assert a["subtask"] == b["subtask"] and a["skips"] == b["skips"]
    if a["sample"] is not None:
      assert a["sample"].qa == b["sample"].qa
      assert all(np.array_equal(x, y) for x, y in zip(a["sample"].images, b["sample"].images))
  counts = collections.Counter(source.subtask_of(i) for i in range(20))
  assert set(counts) == set(STATIC_SUBTASKS)  # Subtasks cycle within a scene.
  with pytest.raises(IndexError):
    source[len(source)]
