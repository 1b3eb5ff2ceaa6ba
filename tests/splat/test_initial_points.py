"""Initial points without a point cloud: depth lifting, the masks' visual hull, shared frusta."""

import math

import numpy as np
import pytest

from jaxlab.splat.datasets import SceneData, load_dataset
from jaxlab.splat.initial_points import Views, depth_points, initial_points, shared_frusta_points, visual_hull_points
from jaxlab.testing import mesh_views


@pytest.fixture(scope="module")
def cube_scene(tmp_path_factory) -> SceneData:
  """A rotated 1.6-unit cube seen by 24 cameras on a 5.5-unit sphere (ray-cast meshes, RGBA)."""
  root = mesh_views.write_dataset(tmp_path_factory.mktemp("cube") / "data", object_name="cube", width=32,
                                  num_train=24, num_test=2, supersample=2)
  return load_dataset(root, format="blender", split="train", background=(0.0, 0.0, 0.0))


def _cube_frame_coordinates(points_p3):
  """Points in the cube's own frame (the writer's rotation about (1, 1, 0) by 0.6 rad)."""
  rotation = mesh_views._rotation((1, 1, 0), 0.6)
  return points_p3 @ rotation  # rotation.T maps world to cube frame; row vectors use rotation


def test_visual_hull_points_lie_at_the_object_surface(cube_scene):
  points, (v, r, c) = visual_hull_points(Views.from_cameras(cube_scene.cameras), cube_scene.masks, 4000,
                                         np.random.default_rng(0))
  assert points.shape == (4000, 3) and np.all(cube_scene.masks[v, r, c] >= 0.5)
  local = np.abs(_cube_frame_coordinates(points))
  box_distance = np.max(local, axis=1) - 0.8  # 0 on the cube's faces, < 0 inside
  # The hull of 24 silhouettes hugs a convex object: the points lie on its faces (to about a
  # pixel, 0.07 units here), where the rays through the mask pixels first meet it.
  assert np.all(np.abs(box_distance) < 0.3)
  assert np.mean(np.abs(box_distance) < 0.1) > 0.95
  # The old rule (uniform in the cameras' bounding cube) puts almost no point there.
  centers = np.asarray(cube_scene.cameras.camera_center())
  uniform = np.random.default_rng(0).uniform(centers.min(0), centers.max(0), (4000, 3))
  assert np.mean(np.max(np.abs(_cube_frame_coordinates(uniform)), axis=1) < 1.15) < 0.05


def test_initial_points_prefer_cloud_then_depth_then_masks_then_frusta(cube_scene):
  cameras, images = cube_scene.cameras, cube_scene.images
  names = cube_scene.names
  cloud = np.array([[0.1, 0.2, 0.3]], np.float32)
  with_cloud = SceneData(cameras, images, names, masks=cube_scene.masks, points=cloud, point_colors=np.ones_like(cloud))
  assert initial_points(with_cloud, 100, 0)[2] == "point_cloud"
  depths = np.zeros(cube_scene.masks.shape, np.float32)
  depths[0, 16, 16] = 5.0
  assert initial_points(SceneData(cameras, images, names, masks=cube_scene.masks, depths=depths), 1, 0)[2] == "depth"
  points, colors, rule = initial_points(cube_scene, 500, 0)
  assert rule == "visual_hull" and points.dtype == np.float32 and colors.shape == (500, 3)
  assert np.all((colors >= 0) & (colors <= 1)) and colors.max() > 0.2  # coloured from the images
  opaque = SceneData(cameras, images, names, masks=np.ones_like(cube_scene.masks))  # alpha says nothing
  assert initial_points(opaque, 500, 0)[2] == "shared_frusta"
  assert initial_points(SceneData(cameras, images, names), 500, 0)[2] == "shared_frusta"


def test_depth_points_lift_pixels_onto_the_surface_they_saw():
  # One camera at z = 5 looking down -z (OpenCV: y down, z forward) at the plane z = 0.
  world_to_camera = np.diag([1.0, -1.0, -1.0, 1.0])
  world_to_camera[2, 3] = 5.0
  views = Views(world_to_camera[None], np.array([20.0]), np.array([20.0]), np.array([8.0]), np.array([8.0]), 16, 16)
  depths = np.full((1, 16, 16), 5.0)
  points, (v, r, c) = depth_points(views, depths, 50, np.random.default_rng(0))
  assert np.all(v == 0) and len(set(zip(r, c))) == 50
  np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-9)
  assert np.all(np.abs(points[:, :2]) <= 8 * 5.0 / 20.0)
  with pytest.raises(ValueError, match="no pixel with depth > 0"):
    depth_points(views, np.zeros((1, 16, 16)), 5, np.random.default_rng(0))


def test_shared_frusta_points_are_seen_by_most_cameras():
  poses = mesh_views.sphere_poses(12, 5.0, seed=3)
  world_to_camera = np.linalg.inv(poses * np.array([1.0, -1.0, -1.0, 1.0]))  # OpenGL -> OpenCV columns
  focal = 0.5 * 32 / math.tan(0.5 * mesh_views.CAMERA_ANGLE_X)
  views = Views(world_to_camera, *(np.full(12, v) for v in (focal, focal, 16.0, 16.0)), 32, 32)
  points = shared_frusta_points(views, 300, np.random.default_rng(0))
  col, row, z = views.project(points)
  assert np.all(views.sees(col, row, z, 0.01).mean(axis=0) >= 0.5)
  assert np.linalg.norm(points, axis=1).max() < 5.0  # in front of the cameras, around their target


def test_masks_that_carve_everything_are_refused(cube_scene):
  inverted = 1.0 - np.ones_like(cube_scene.masks)
  with pytest.raises(ValueError, match="visual hull is empty"):
    visual_hull_points(Views.from_cameras(cube_scene.cameras), inverted, 100, np.random.default_rng(0))
