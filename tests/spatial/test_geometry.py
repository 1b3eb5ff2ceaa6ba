"""Projection, the depth test and the camera-motion label conventions on hand-built cameras."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxlab.spatial import geometry
from jaxlab.spatial.scene import Frame

H, W = 48, 64
K = np.array([[100.0, 0.0, 32.0], [0.0, 100.0, 24.0], [0.0, 0.0, 1.0]])


def look_pose(position, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
  """cam_to_world of an OpenCV camera at `position` looking at (yaw, pitch) in the z-up world, no roll."""
  yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
  forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
  right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
  down = np.cross(forward, right)
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, down, forward], axis=1)
  pose[:3, 3] = position
  return pose


def wall_frame(pose: np.ndarray, wall_x: float = 3.0, name: str = "f") -> Frame:
  """A frame whose depth is the ray-cast distance (camera z) to the wall plane world x = wall_x."""
  cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
  rays_cam = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], -1)
  rays_world = rays_cam @ pose[:3, :3].T
  with np.errstate(divide="ignore"):
    depth = (wall_x - pose[0, 3]) / rays_world[..., 0]
  depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)
  return Frame(name, np.zeros((H, W, 3), np.uint8), depth.astype(np.float32), K, pose)


# The convention spelled out: looking along world +x with z up, camera right = world -y,
# camera down = world -z, forward = world +x.
NOTE_POSE = np.eye(4)
NOTE_POSE[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def test_look_pose_helper_matches_the_stated_convention():
  np.testing.assert_allclose(look_pose([0, 0, 0], 0.0)[:3, :3], NOTE_POSE[:3, :3], atol=1e-12)


def test_project_by_hand():
  # World (3, -0.3, 0.6) is 0.3 m to the camera's right, 0.6 m up, 3 m ahead.
  uv, z = geometry.project(np.array([[3.0, -0.3, 0.6]]), K, NOTE_POSE)
  np.testing.assert_allclose(z, [3.0])
  np.testing.assert_allclose(uv, [[100 * 0.3 / 3 + 32, 100 * -0.6 / 3 + 24]])
  # A camera moved up 1 m sees the same point lower in the image (v grows downwards).
  moved = NOTE_POSE.copy()
  moved[2, 3] = 1.0
  uv_moved, _ = geometry.project(np.array([[3.0, -0.3, 0.6]]), K, moved)
  assert uv_moved[0, 1] > uv[0, 1]
  np.testing.assert_allclose(uv_moved[0, 0], uv[0, 0])


def test_project_behind_camera_is_nan():
  uv, z = geometry.project(np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), K, NOTE_POSE)
  np.testing.assert_allclose(z, [-1.0, 0.0, 1.0])
  assert np.all(np.isnan(uv[:2])) and np.all(np.isfinite(uv[2]))


def test_visible_mask_depth_test_on_a_wall():
  frame = wall_frame(NOTE_POSE)
  np.testing.assert_allclose(frame.depth_hw, 3.0, rtol=1e-6)  # a wall facing the camera: constant depth
  points = np.array([
      [2.0, 0.0, 0.0],    # in front of the wall
      [3.0, 0.1, 0.1],    # on the wall itself
      [3.04, 0.0, 0.0],   # just behind, within the tolerance
      [3.2, 0.0, 0.0],    # behind the wall
      [4.0, 0.5, 0.0],    # far behind the wall
      [-1.0, 0.0, 0.0],   # behind the camera
      [3.0, -5.0, 0.0],   # right of the image
      [3.0, 0.0, 5.0],    # above the image
      [3.0, -0.945, 0.0],  # u = 63.5: last column
      [3.0, -0.975, 0.0],  # u = 64.5: just outside
  ])
  expected = [True, True, True, False, False, False, False, False, True, False]
  np.testing.assert_array_equal(geometry.visible_mask(points, frame), expected)
  tight = geometry.visible_mask(points, frame, depth_tolerance=0.01)
  np.testing.assert_array_equal(tight, [True, True, False] + expected[3:])


def test_visible_mask_unknown_depth_sees_nothing():
  frame = wall_frame(NOTE_POSE)
  depth = frame.depth_hw.copy()
  depth[:, 32:] = 0.0  # right half unmeasured
  holed = Frame("holed", frame.rgb_hw3, depth, K, NOTE_POSE)
  points = np.array([[2.0, 0.3, 0.0], [2.0, -0.3, 0.0]])  # left half, right half
  np.testing.assert_array_equal(geometry.visible_mask(points, holed), [True, False])


def test_visible_mask_follows_the_pose():
  # Turned around, the camera sees nothing of the wall points in front of the first one.
  frame = wall_frame(look_pose([0, 0, 0], 180.0), wall_x=-3.0)
  points = np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
  np.testing.assert_array_equal(geometry.visible_mask(points, frame), [False, True])


def test_overlap_iou():
  a = np.array([1, 1, 1, 0, 0], bool)
  b = np.array([0, 1, 1, 1, 0], bool)
  assert geometry.overlap(a, b) == pytest.approx(2 / 4)
  assert geometry.overlap(a, a) == 1.0
  assert geometry.overlap(np.zeros(5, bool), np.zeros(5, bool)) == 0.0
  with pytest.raises(ValueError, match="same length"):
    geometry.overlap(a, b[:3])


def test_relative_pose_composes():
  e1 = look_pose([1.0, 2.0, 1.5], 30.0, -10.0)
  e2 = look_pose([-0.5, 0.7, 1.2], 140.0, 20.0)
  rel = geometry.relative_pose(e1, e2)
  np.testing.assert_allclose(e1 @ rel, e2, atol=1e-12)
  np.testing.assert_allclose(geometry.relative_pose(e1, e1), np.eye(4), atol=1e-12)


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (90.0, 0.0), (-135.0, 25.0), (179.0, -40.0)])
def test_yaw_pitch_of_constructed_cameras(yaw, pitch):
  got_yaw, got_pitch = geometry.yaw_pitch_deg(look_pose([0.3, 0.1, 1.4], yaw, pitch))
  assert got_yaw == pytest.approx(yaw)
  assert got_pitch == pytest.approx(pitch)


def test_note_pose_has_zero_yaw_and_pitch():
  assert geometry.yaw_pitch_deg(NOTE_POSE) == pytest.approx((0.0, 0.0))


@pytest.mark.parametrize("a,want", [(0, 0), (180, 180), (-180, 180), (190, -170), (-190, 170), (540, 180),
                                    (359, -1), (-359, 1), (720.5, 0.5)])
def test_wrap_degrees(a, want):
  assert geometry.wrap_degrees(a) == pytest.approx(want)


def _labels(e1, e2):
  return geometry.direction_labels(geometry.camera_motion(e1, e2))


@pytest.mark.parametrize("yaw1", [0.0, 40.0, -120.0])
def test_translation_labels_in_camera_one_axes(yaw1):
  e1 = look_pose([1.0, -2.0, 1.5], yaw1)
  r1 = e1[:3, :3]
  for axis, sign, key, word in [(0, 1, "camera_left_right", "right"), (0, -1, "camera_left_right", "left"),
                                (1, 1, "camera_up_down", "down"), (1, -1, "camera_up_down", "up"),
                                (2, 1, "camera_forward_backward", "forward"),
                                (2, -1, "camera_forward_backward", "backward")]:
    e2 = e1.copy()
    e2[:3, 3] += sign * 0.4 * r1[:, axis]
    motion = geometry.camera_motion(e1, e2)
    want = np.zeros(3)
    want[axis] = sign * 0.4
    np.testing.assert_allclose(motion.displacement_m_3, want, atol=1e-12)
    assert motion.distance_m == pytest.approx(0.4)
    assert geometry.direction_labels(motion)[key] == word


def test_moving_up_in_the_world_is_up():
  e1 = look_pose([0, 0, 1.0], 25.0)
  e2 = look_pose([0, 0, 1.5], 25.0)
  assert _labels(e1, e2)["camera_up_down"] == "up"
  assert geometry.camera_motion(e1, e2).displacement_m_3[1] == pytest.approx(-0.5)


def test_turning_counter_clockwise_is_yaw_left():
  e1 = look_pose([0, 0, 1.2], 0.0)
  e2 = look_pose([0, 0, 1.2], 30.0)  # forward swings from +x towards +y, camera 1's left
  assert (e2[:3, 2] @ e1[:3, 0]) < 0  # the new forward axis leans to camera 1's left (negative x)
  motion = geometry.camera_motion(e1, e2)
  assert motion.yaw_deg == pytest.approx(30.0)
  assert geometry.direction_labels(motion)["camera_yaw_direction"] == "left"
  assert _labels(e2, e1)["camera_yaw_direction"] == "right"


def test_tilting_up_is_pitch_up():
  e1 = look_pose([0, 0, 1.2], 50.0, 0.0)
  e2 = look_pose([0, 0, 1.2], 50.0, 15.0)
  motion = geometry.camera_motion(e1, e2)
  assert motion.pitch_deg == pytest.approx(15.0)
  assert geometry.direction_labels(motion)["camera_pitch_direction"] == "up"
  assert _labels(e2, e1)["camera_pitch_direction"] == "down"


def test_yaw_wraps_across_180():
  e1 = look_pose([0, 0, 1.2], 170.0)
  e2 = look_pose([0, 0, 1.2], -170.0)  # 20 degrees further counter-clockwise
  motion = geometry.camera_motion(e1, e2)
  assert motion.yaw_deg == pytest.approx(20.0)
  assert geometry.direction_labels(motion)["camera_yaw_direction"] == "left"
  back = geometry.camera_motion(e2, e1)
  assert back.yaw_deg == pytest.approx(-20.0)
  assert geometry.direction_labels(back)["camera_yaw_direction"] == "right"


def test_swapped_reexpresses_in_camera_two():
  # Camera 2 is 1 m ahead of camera 1 and looks 90 degrees to the left (world +y).
  e1 = look_pose([0, 0, 1.0], 0.0)
  e2 = look_pose([1.0, 0, 1.0], 90.0, 10.0)
  motion = geometry.camera_motion(e1, e2)
  np.testing.assert_allclose(motion.displacement_m_3, [0, 0, 1.0], atol=1e-12)
  back = motion.swapped()
  # Camera 1 in camera 2's frame: computed directly from the poses, not by negating.
  want = e2[:3, :3].T @ (e1[:3, 3] - e2[:3, 3])
  np.testing.assert_allclose(back.displacement_m_3, want, atol=1e-12)
  assert want[0] < -0.9  # camera 1 lies to camera 2's left
  assert geometry.direction_labels(back)["camera_left_right"] == "left"
  assert back.distance_m == pytest.approx(motion.distance_m)
  assert back.yaw_deg == pytest.approx(-motion.yaw_deg)
  assert back.pitch_deg == pytest.approx(-motion.pitch_deg)
  direct = geometry.camera_motion(e2, e1)
  np.testing.assert_allclose(back.displacement_m_3, direct.displacement_m_3, atol=1e-12)
  assert back.yaw_deg == pytest.approx(direct.yaw_deg)
  again = back.swapped()
  np.testing.assert_allclose(again.displacement_m_3, motion.displacement_m_3, atol=1e-12)


def test_swapped_at_the_wrap():
  motion = geometry.camera_motion(look_pose([0, 0, 1], 90.0), look_pose([0, 0, 1], -90.0))
  assert motion.yaw_deg == pytest.approx(180.0)
  assert motion.swapped().yaw_deg == pytest.approx(180.0)


def test_millimetres():
  assert geometry.to_millimetres(1.2344) == 1234
  assert geometry.to_millimetres(1.2346) == 1235
  assert geometry.to_millimetres(-0.5) == -500
  assert isinstance(geometry.to_millimetres(0.25), int)


def test_normalized_coords_and_back():
  assert geometry.normalized_coords(0.0, 0.0, W, H) == (0, 0)
  assert geometry.normalized_coords(W - 1e-6, H - 1e-6, W, H) == (999, 999)
  assert geometry.normalized_coords(W / 2, H / 4, W, H) == (500, 250)
  # floor, not round: 0.9 of a cell stays in that cell
  assert geometry.normalized_coords(0.9 * W / 1000, 0.0, W, H) == (0, 0)
  for x in (0, 1, 317, 500, 998, 999):
    u, v = geometry.pixel_from_normalized(x, 999 - x, W, H)
    assert geometry.normalized_coords(u, v, W, H) == (x, 999 - x)
    assert u == pytest.approx((x + 0.5) * W / 1000)
  with pytest.raises(ValueError, match="outside"):
    geometry.normalized_coords(W, 0.0, W, H)
  with pytest.raises(ValueError, match="0..999"):
    geometry.pixel_from_normalized(1000, 0, W, H)


def test_unproject_inverts_project():
  rng = np.random.default_rng(0)
  pose = look_pose([0.5, -1.0, 1.3], 60.0, -12.0)
  points = pose[:3, 3] + rng.normal(size=(20, 3))
  uv, z = geometry.project(points, K, pose)
  for p, (u, v), d in zip(points, uv, z):
    if d > 0:
      np.testing.assert_allclose(geometry.unproject(u, v, d, K, pose), p, atol=1e-9)


def test_unproject_lands_on_the_wall():
  frame = wall_frame(look_pose([0, 0, 1.0], 20.0, 10.0))
  point = geometry.unproject(10.5, 7.5, float(frame.depth_hw[7, 10]), K, frame.cam_to_world_44)
  assert point[0] == pytest.approx(3.0, abs=1e-5)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"\[N, 3\]"):
    geometry.project(np.zeros((4, 2)), K, NOTE_POSE)
  with pytest.raises(ValueError, match="4x4"):
    geometry.relative_pose(np.eye(3), NOTE_POSE)
