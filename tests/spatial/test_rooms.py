"""Tests for the procedural rooms (`jaxlab.spatial.rooms`) and their ray caster (`jaxlab.spatial.raycast`).

The checks recompute what the generator promises from its outputs alone: projections, unprojections
and overlaps use the small helpers below, not the generator's code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxlab.spatial import raycast, rooms
from jaxlab.spatial.scene import Frame, SceneError

SEEDS = (0, 1, 2, 3)
TRACK_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def scenes():
  return {seed: rooms.make_room_scene(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def track_scenes():
  return {(seed, source): rooms.make_track_scene(seed, source) for seed in TRACK_SEEDS for source in rooms.SOURCES}


def _room_bounds(scene):
  """The room's box from the points sampled on its walls, floor and ceiling."""
  walls_n3 = scene.points_world_n3[scene.point_object_ids_n == 0]
  return walls_n3.min(axis=0), walls_n3.max(axis=0)


def _unproject_all(frame):
  """World points [H*W, 3] of every pixel centre at its depth."""
  k, pose = frame.intrinsics_33, frame.cam_to_world_44
  v, u = np.mgrid[0:frame.height, 0:frame.width] + 0.5
  z = frame.depth_hw.astype(np.float64).ravel()
  cam_n3 = np.stack([(u.ravel() - k[0, 2]) / k[0, 0] * z, (v.ravel() - k[1, 2]) / k[1, 1] * z, z], axis=1)
  return cam_n3 @ pose[:3, :3].T + pose[:3, 3]


def _inside_box(points_n3, obj, margin):
  return np.all(np.abs(points_n3 - obj.center_3) <= obj.extent_3 / 2 + margin, axis=1)


def _visible(points_n3, frame, tolerance=0.05):
  """In the image, in front of the camera, and not behind the rendered depth (the engine's test)."""
  pose, k = frame.cam_to_world_44, frame.intrinsics_33
  cam_n3 = (points_n3 - pose[:3, 3]) @ pose[:3, :3]
  z = cam_n3[:, 2]
  ok = z > 1e-6
  safe_z = np.where(ok, z, 1.0)
  u = k[0, 0] * cam_n3[:, 0] / safe_z + k[0, 2]
  v = k[1, 1] * cam_n3[:, 1] / safe_z + k[1, 2]
  ok &= (u >= 0) & (u < frame.width) & (v >= 0) & (v < frame.height)
  depth = frame.depth_hw[np.clip(v.astype(int), 0, frame.height - 1), np.clip(u.astype(int), 0, frame.width - 1)]
  return ok & (depth > 0) & (z < depth + tolerance)


def test_same_seed_gives_identical_scenes_and_other_seeds_differ():
  a, b, c = rooms.make_room_scene(11), rooms.make_room_scene(11), rooms.make_room_scene(12)
  for fa, fb in zip(a.frames, b.frames, strict=True):
    for name in ("rgb_hw3", "depth_hw", "instances_hw", "cam_to_world_44", "intrinsics_33"):
      np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
  np.testing.assert_array_equal(a.points_world_n3, b.points_world_n3)
  np.testing.assert_array_equal(a.point_object_ids_n, b.point_object_ids_n)
  assert [(o.label, tuple(o.center_3)) for o in a.objects] == [(o.label, tuple(o.center_3)) for o in b.objects]
  assert not np.array_equal(a.frames[0].rgb_hw3, c.frames[0].rgb_hw3)
  assert not np.allclose(_room_bounds(a)[1], _room_bounds(c)[1])
  t1, t2 = rooms.make_track_scene(5, "room_figures"), rooms.make_track_scene(5, "room_figures")
  np.testing.assert_array_equal(t1.rgb_thw3, t2.rgb_thw3)
  np.testing.assert_array_equal(t1.points_world_tn3, t2.points_world_tn3)
  np.testing.assert_array_equal(t1.visible_tn, t2.visible_tn)
  assert not np.array_equal(t1.rgb_thw3, rooms.make_track_scene(6, "room_figures").rgb_thw3)


def test_sizes_follow_the_arguments():
  scene = rooms.make_room_scene(4, height=40, width=56, num_frames=5, name="tiny")
  assert scene.name == "tiny" and len(scene.frames) == 5
  assert all(f.rgb_hw3.shape == (40, 56, 3) for f in scene.frames)
  track = rooms.make_track_scene(4, "room_objects", height=40, width=56, num_frames=6, num_points=90)
  assert track.rgb_thw3.shape == (6, 40, 56, 3) and track.points_world_tn3.shape == (6, 90, 3)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="room_objects.*room_figures"):
    rooms.make_track_scene(0, "drivetrack")
  with pytest.raises(SceneError, match="frames"):
    rooms.make_room_scene(0, num_frames=1)
  with pytest.raises(SceneError, match="pixels"):
    rooms.make_room_scene(0, height=2)


def test_room_and_objects_are_plausible(scenes):
  for scene in scenes.values():
    lo, hi = _room_bounds(scene)
    size = hi - lo
    assert 4.0 <= size[0] <= 8.0 and 3.0 <= size[1] <= 6.0 and 2.6 <= size[2] <= 3.0
    assert 3 <= len(scene.objects) <= 7
    assert [o.id for o in scene.objects] == list(range(1, len(scene.objects) + 1))
    assert len({o.label for o in scene.objects}) == len(scene.objects)
    for obj in scene.objects:
      assert obj.center_3[2] - obj.extent_3[2] / 2 == pytest.approx(lo[2])  # stands on the floor
      assert np.all(obj.center_3 - obj.extent_3 / 2 >= lo) and np.all(obj.center_3 + obj.extent_3 / 2 <= hi)
    for a, b in itertools.combinations(scene.objects, 2):
      gap = np.abs(a.center_3 - b.center_3) - (a.extent_3 + b.extent_3) / 2
      assert np.any(gap[:2] > 0), f"objects {a.id} and {b.id} intersect"


def test_frames_are_valid(scenes):
  for scene in scenes.values():
    ids = {0} | {o.id for o in scene.objects}
    for f in scene.frames:
      Frame(f.name, f.rgb_hw3, f.depth_hw, f.intrinsics_33, f.cam_to_world_44, f.instances_hw)  # checks again
      assert np.all(f.depth_hw > 0)
      assert set(np.unique(f.instances_hw)) <= ids
      assert len(np.unique(f.rgb_hw3.reshape(-1, 3), axis=0)) >= 2  # textured, never one flat colour
      hfov = 2 * np.degrees(np.arctan(f.width / 2 / f.intrinsics_33[0, 0]))
      assert 59.9 <= hfov <= 70.1
    assert len({int(i) for f in scene.frames for i in np.unique(f.instances_hw)} - {0}) >= 1
    assert len({f.name for f in scene.frames}) == len(scene.frames)


def test_depth_and_instances_match_the_geometry(scenes):
  for scene in scenes.values():
    lo, hi = _room_bounds(scene)
    for f in scene.frames:
      points_n3 = _unproject_all(f)
      ids_n = f.instances_hw.ravel()
      for obj in scene.objects:
        sel = ids_n == obj.id
        assert np.all(_inside_box(points_n3[sel], obj, 0.01)), f"{f.name}: object {obj.id} pixels off its box"
      walls_n3 = points_n3[ids_n == 0]
      to_face = np.minimum(np.abs(walls_n3 - lo), np.abs(walls_n3 - hi)).min(axis=1)
      assert np.all(to_face < 0.01), f"{f.name}: room pixels off the walls"
      for obj in scene.objects:
        assert not np.any(_inside_box(walls_n3, obj, -0.01))


def test_camera_path(scenes):
  for scene in scenes.values():
    lo, hi = _room_bounds(scene)
    poses = np.stack([f.cam_to_world_44 for f in scene.frames])
    centres = poses[:, :3, 3]
    assert np.all((centres > lo + 0.3) & (centres < hi - 0.3))
    for obj in scene.objects:
      assert not np.any(_inside_box(centres, obj, 0.1)), f"camera inside object {obj.id}"
    assert np.all((centres[:, 2] >= 1.2) & (centres[:, 2] <= 1.8))
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.all((steps >= 0.1) & (steps <= 0.5)), steps
    forward = poses[:, :3, 2]
    pitch = np.degrees(np.arcsin(forward[:, 2]))
    assert np.all(np.abs(pitch) <= 20.0)
    assert np.allclose(poses[:, 2, 0], 0.0, atol=1e-9)  # camera x stays horizontal: no roll
    yaw = np.unwrap(np.arctan2(forward[:, 1], forward[:, 0]))
    assert np.degrees(np.ptp(yaw)) >= 90.0


def test_surface_points_lie_on_surfaces_uniformly(scenes):
  for scene in scenes.values():
    points_n3, ids_n = scene.points_world_n3, scene.point_object_ids_n
    assert 15000 <= len(points_n3) <= 20000
    lo, hi = _room_bounds(scene)
    walls_n3 = points_n3[ids_n == 0]
    assert np.all(np.minimum(np.abs(walls_n3 - lo), np.abs(walls_n3 - hi)).min(axis=1) < 1e-9)
    total_area = 2 * ((hi - lo)[0] * (hi - lo)[1] + (hi - lo)[2] * ((hi - lo)[0] + (hi - lo)[1]))
    for obj in scene.objects:  # a box's top replaces the floor under it: only its sides add area
      total_area += 2 * obj.extent_3[2] * (obj.extent_3[0] + obj.extent_3[1])
    for obj in scene.objects:
      mine = points_n3[ids_n == obj.id]
      local = np.abs(mine - obj.center_3) - obj.extent_3 / 2
      assert np.all(local <= 1e-9) and np.all(np.abs(local).min(axis=1) < 1e-9)  # on the box's surface
      assert np.all(mine[:, 2] > lo[2] + 1e-9)  # no bottom faces
      area = obj.extent_3[0] * obj.extent_3[1] + 2 * obj.extent_3[2] * (obj.extent_3[0] + obj.extent_3[1])
      expected = area / total_area * len(points_n3)
      assert abs(len(mine) - expected) < 5 * np.sqrt(expected) + 5


def _pair_overlaps(scene):
  masks = [_visible(scene.points_world_n3, f) for f in scene.frames]
  out = []
  for a, b in itertools.combinations(masks, 2):
    union = np.sum(a | b)
    out.append(np.sum(a & b) / union if union else 0.0)
  return np.array(out)


def test_overlaps_span_the_engine_range(scenes):
  for seed, scene in scenes.items():
    overlaps = _pair_overlaps(scene)
    in_range = np.sum((overlaps >= 0.06) & (overlaps <= 0.35))
    assert in_range >= 8, f"seed {seed}: only {in_range} pairs with overlap in [0.06, 0.35]"
    assert overlaps.max() > 0.5 and overlaps.min() < 0.02  # from nearly the same view to disjoint ones


def _rigid_groups(points_tn3, tolerance=1e-6):
  """Point sets whose pairwise distances never change (each point's set must be the same for all members)."""
  dist_tnn = np.linalg.norm(points_tn3[:, :, None] - points_tn3[:, None], axis=-1)
  rigid_nn = np.all(np.abs(dist_tnn - dist_tnn[0]) < tolerance, axis=0)
  groups = {tuple(np.flatnonzero(row)) for row in rigid_nn}
  for group in groups:
    assert np.all(rigid_nn[np.ix_(group, group)]), "rigidity is not transitive: points deform"
  return [np.array(g) for g in groups]


def test_track_points_move_rigidly_per_box(track_scenes):
  for (seed, source), track in track_scenes.items():
    groups = _rigid_groups(track.points_world_tn3)
    assert sum(len(g) for g in groups) == track.points_world_tn3.shape[1]  # the groups partition the points
    steps = {}
    for group in groups:
      assert len(group) >= 6, f"{source} {seed}: a rigid group of {len(group)} points"
      centroid_t3 = track.points_world_tn3[:, group].mean(axis=1)
      steps[tuple(group)] = np.linalg.norm(np.diff(centroid_t3, axis=0), axis=1)
    static = [g for g, s in steps.items() if np.all(s < 1e-9)]
    moving = [s for s in steps.values() if np.any(s >= 1e-9)]
    assert len(static) == 1, f"{source} {seed}: the static points do not form one group"
    assert len(moving) >= (1 if source == "room_objects" else 3)
    assert max(s.max() for s in moving) >= 0.02 and max(s.max() for s in moving) <= 0.5
    if source == "room_objects":  # each box slides a few cm to tens of cm per frame
      assert all(0.01 <= s.mean() <= 0.3 for s in moving)


def test_moving_boxes_yaw_a_few_degrees_per_frame(track_scenes):
  for (seed, source), track in track_scenes.items():
    if source != "room_objects":
      continue
    for group in _rigid_groups(track.points_world_tn3):
      pts_tn3 = track.points_world_tn3[:, group]
      for t in range(track.num_frames - 1):
        a, b = pts_tn3[t] - pts_tn3[t].mean(0), pts_tn3[t + 1] - pts_tn3[t + 1].mean(0)
        u, _, vt = np.linalg.svd(a.T @ b)
        rotation = (u @ vt).T
        angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert angle <= 5.0, f"seed {seed}: a box turns {angle:.1f} degrees in one frame"
        assert abs(rotation[2, 2] - 1) < 1e-6  # boxes on the floor only turn about the vertical


def test_track_visibility_is_consistent(track_scenes):
  for (seed, source), track in track_scenes.items():
    k = track.intrinsics_33
    for t in range(track.num_frames):
      pose = track.cam_to_world_t44[t]
      cam_n3 = (track.points_world_tn3[t] - pose[:3, 3]) @ pose[:3, :3]
      vis = track.visible_tn[t]
      assert np.all(cam_n3[vis, 2] > 0)
      u = k[0, 0] * cam_n3[vis, 0] / cam_n3[vis, 2] + k[0, 2]
      v = k[1, 1] * cam_n3[vis, 1] / cam_n3[vis, 2] + k[1, 2]
      assert np.all((u >= 0) & (u < track.width) & (v >= 0) & (v < track.height))
    assert 0.1 < track.visible_tn.mean() < 0.95  # back faces and occluded points are hidden
    for group in _rigid_groups(track.points_world_tn3):
      seen_in = np.any(track.visible_tn[:, group], axis=1)
      assert seen_in.mean() >= 0.5, f"{source} {seed}: a moving part is out of view in most frames"


def _plain_room():
  look = raycast.Appearance(np.full(3, 0.5), np.full(3, 0.2), "checker", 0.5)
  return raycast.Room(np.zeros(3), np.array([6.0, 4.0, 3.0]), (look,) * 6), look


def test_cast_rays_hits_analytic_surfaces():
  room, look = _plain_room()
  turned = raycast.Box([4.0, 3.0, 1.0], [1.0, 1.0, 1.0], 2, look,
                       np.array([[np.cos(np.pi / 4), -np.sin(np.pi / 4), 0], [np.sin(np.pi / 4), np.cos(np.pi / 4), 0],
                                 [0, 0, 1]]))
  boxes = [raycast.Box([3.0, 1.0, 0.5], [1.0, 1.0, 1.0], 1, look), turned]
  origins = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [1.0, 3.0, 1.0], [1.0, 1.0, 2.0]])
  dirs = np.array([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0], [2.0, 0, 0]])
  depth, ids, normals, hits = raycast.cast_rays(origins, dirs, boxes, room)
  np.testing.assert_allclose(depth, [1.5, 2.5, 3.0 - np.sqrt(0.5), 2.5])
  np.testing.assert_array_equal(ids, [1, 0, 2, 0])
  np.testing.assert_allclose(normals[0], [-1, 0, 0])
  np.testing.assert_allclose(normals[1], [0, 0, -1])
  np.testing.assert_allclose(normals[3], [-1, 0, 0])
  np.testing.assert_allclose(hits[3], [6.0, 1.0, 2.0])


def test_render_depth_is_camera_z():
  room, look = _plain_room()
  k = np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])
  pose = np.eye(4)
  pose[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # looking along +x, image x toward -y
  pose[:3, 3] = [1.0, 2.0, 1.5]
  rgb, depth, ids = raycast.render(k, pose, 30, 40, [], room)
  np.testing.assert_allclose(depth, 5.0)  # a wall facing the camera: the same camera z everywhere
  assert rgb.dtype == np.uint8 and np.all(ids == 0)


def test_points_behind_a_box_are_not_visible():
  room, look = _plain_room()
  k = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
  pose = np.eye(4)
  pose[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
  pose[:3, 3] = [0.5, 2.0, 1.0]
  near = raycast.Box([2.0, 2.0, 1.0], [0.4, 0.4, 0.6], 1, look)
  far = raycast.Box([4.0, 2.0, 1.0], [0.4, 2.0, 1.6], 2, look)
  points = np.array([
      [3.8, 2.0, 1.0],  # the far box's front face, straight behind the near box
      [3.8, 2.7, 1.0],  # the far box's front face, beside the near box
      [4.2, 2.7, 1.0],  # the far box's back face
      [0.2, 2.0, 1.0],  # behind the camera
      [3.8, 3.9, 1.0],  # outside the field of view
  ])
  visible = raycast.ray_visible(points, k, pose, 48, 64, [near, far], room)
  np.testing.assert_array_equal(visible, [False, True, False, False, False])
  np.testing.assert_array_equal(raycast.ray_visible(points, k, pose, 48, 64, [far], room)[:2], [True, True])
