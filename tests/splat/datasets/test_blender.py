"""Tests for the Blender / NeRF-synthetic loader on tiny datasets written by the test."""

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.splat.datasets import load_blender, load_dataset
from tests.splat.datasets import writers
from tests.splat.datasets.writers import HEIGHT, POINT, WIDTH


@pytest.fixture
def dataset(tmp_path):
  views = writers.write_blender(tmp_path, {"train": 3, "test": 2})
  return tmp_path, views


def test_intrinsics_come_from_camera_angle_x(dataset):
  root, _ = dataset
  scene = load_dataset(root)
  focal = 0.5 * WIDTH / math.tan(0.5 * writers.BLENDER_ANGLE_X)
  np.testing.assert_allclose(np.asarray(scene.cameras.fx), [focal] * 3, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(scene.cameras.fy), [focal] * 3, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(scene.cameras.cx), [WIDTH / 2] * 3)
  np.testing.assert_allclose(np.asarray(scene.cameras.cy), [HEIGHT / 2] * 3)
  assert (scene.width, scene.height) == (WIDTH, HEIGHT)
  assert scene.names == ("train/r_0.png", "train/r_1.png", "train/r_2.png")


def test_opengl_poses_put_the_known_point_on_its_marker_pixel(dataset):
  root, views = dataset
  scene = load_blender(root, split="train")
  for i, view in enumerate(views["train"]):
    camera = scene.cameras[i]
    np.testing.assert_allclose(writers.projected_pixel(camera, POINT), view.pixel_uv, atol=1e-3)
    np.testing.assert_allclose(writers.matrix_pixel(camera, POINT), view.pixel_uv, atol=1e-4)
    np.testing.assert_allclose(np.asarray(camera.camera_center()), view.eye, atol=1e-5)
    row, col = view.marker_row_col
    np.testing.assert_allclose(scene.images[i, row, col], [1.0, 0.0, 0.0])
    # The image is not mirrored: the pixel at the mirrored place is not the marker.
    assert not np.allclose(scene.images[i, HEIGHT - 1 - row, WIDTH - 1 - col], [1.0, 0.0, 0.0])


def test_splits_come_from_their_files(dataset):
  root, views = dataset
  test = load_dataset(root, split="test")
  assert test.names == ("test/r_3.png", "test/r_4.png")
  np.testing.assert_allclose(writers.matrix_pixel(test.cameras[1], POINT), views["test"][1].pixel_uv, atol=1e-4)
  everything = load_dataset(root, split="all")
  assert everything.names == ("train/r_0.png", "train/r_1.png", "train/r_2.png", "test/r_3.png", "test/r_4.png")
  with pytest.raises(FileNotFoundError, match=r"transforms_val\.json"):
    load_dataset(root, split="val")


@pytest.mark.parametrize("background", [(1.0, 1.0, 1.0), (0.0, 0.0, 1.0)])
def test_rgba_is_composited_on_the_background_and_alpha_becomes_the_mask(dataset, background):
  root, views = dataset
  scene = load_dataset(root, background=background)
  rgba = views["train"][0].rgba.astype(np.float32) / 255.0
  transparent_cols = [c for c in range(WIDTH) if views["train"][0].rgba[0, c, 3] == 0]
  np.testing.assert_allclose(scene.images[0, 0, transparent_cols], np.tile(background, (len(transparent_cols), 1)))
  alpha = rgba[1, 0, 3]
  np.testing.assert_allclose(scene.images[0, 1, 0], alpha * rgba[1, 0, :3] + (1 - alpha) * np.asarray(background),
                             rtol=1e-6)
  np.testing.assert_allclose(scene.masks[0], rgba[..., 3], rtol=1e-6)
  assert scene.depths is None and scene.points is None


def test_downscale_averages_pixels_and_scales_intrinsics(dataset):
  root, views = dataset
  full = load_dataset(root, background=(0.0, 0.0, 0.0))
  half = load_dataset(root, downscale=2, background=(0.0, 0.0, 0.0))
  assert half.images.shape == (3, HEIGHT // 2, WIDTH // 2, 3)
  blocks = full.images.reshape(3, HEIGHT // 2, 2, WIDTH // 2, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(half.images, blocks, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(half.cameras.fx), np.asarray(full.cameras.fx) / 2, rtol=1e-6)
  for i, view in enumerate(views["train"]):
    np.testing.assert_allclose(writers.projected_pixel(half.cameras[i], POINT), np.asarray(view.pixel_uv) / 2,
                               atol=1e-3)


def test_depth_maps_and_point_cloud_are_loaded_when_present(dataset):
  root, _ = dataset
  depth = np.linspace(0.0, 5.0, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
  np.save(root / "train" / "r_1_depth.npy", depth)
  points = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [2.0, 0.0, 1.0]])
  writers.write_points_ply(root / "points3d.ply", points, np.array([[255, 0, 0], [0, 51, 0], [0, 0, 102]], np.uint8))
  scene = load_dataset(root)
  np.testing.assert_array_equal(scene.depths[1], depth)
  assert not scene.depths[0].any() and not scene.depths[2].any()  # 0 = no depth
  np.testing.assert_allclose(scene.points, points, rtol=1e-6)
  np.testing.assert_allclose(scene.point_colors, [[1.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.4]], rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


def test_missing_image_is_named(dataset):
  root, _ = dataset
  (root / "train" / "r_1.png").unlink()
  with pytest.raises(FileNotFoundError, match=r"frame 1: image not found .*train/r_1\.png"):
    load_dataset(root)


def test_unreadable_image_is_named(dataset):
  root, _ = dataset
  (root / "train" / "r_2.png").write_bytes(b"\x89PNG but truncated")
  with pytest.raises(ValueError, match=r"r_2\.png: cannot read image"):
    load_dataset(root)


def test_images_of_different_sizes_are_refused_naming_both(dataset):
  root, _ = dataset
  iio.imwrite(root / "train" / "r_2.png", np.zeros((HEIGHT, WIDTH + 2, 4), np.uint8))
  with pytest.raises(ValueError, match=r"one size; .*r_2\.png is 10x6 but .*r_0\.png is 8x6"):
    load_dataset(root)


def test_malformed_json_gives_the_position(dataset):
  root, _ = dataset
  text = (root / "transforms_train.json").read_text()
  (root / "transforms_train.json").write_text(text.replace('"frames"', '"frames" 0', 1))
  with pytest.raises(ValueError, match=r"transforms_train\.json: malformed JSON at line \d+, column \d+"):
    load_dataset(root)


@pytest.mark.parametrize("edit,message", [
    (lambda meta: meta.pop("camera_angle_x"), "camera_angle_x"),
    (lambda meta: meta["frames"][1].pop("transform_matrix"), r"frame 1: missing 'transform_matrix'"),
    (lambda meta: meta["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]),
     r"frame 0: transform_matrix must be 4x4"),
])
def test_bad_fields_are_named(dataset, edit, message):
  root, _ = dataset
  meta = json.loads((root / "transforms_train.json").read_text())
  edit(meta)
  (root / "transforms_train.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=message):
    load_dataset(root)


def test_depth_of_the_wrong_size_is_named(dataset):
  root, _ = dataset
  np.save(root / "train" / "r_0_depth.npy", np.ones((HEIGHT, WIDTH - 1), np.float32))
  with pytest.raises(ValueError, match=r"r_0_depth\.npy: is 7x6 but its image is 8x6"):
    load_dataset(root)


@pytest.mark.parametrize("kind", sorted(writers.NON_RIGID_POSES))
def test_a_pose_that_is_not_rigid_is_refused_naming_the_frame_and_tolerance(dataset, kind):
  root, _ = dataset
  edit, reason = writers.NON_RIGID_POSES[kind]
  meta = json.loads((root / "transforms_train.json").read_text())
  meta["frames"][1]["transform_matrix"] = edit(np.asarray(meta["frames"][1]["transform_matrix"])).tolist()
  (root / "transforms_train.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=rf"transforms_train\.json, frame 1: transform_matrix is not a rigid camera"
                                       rf" pose: .*{reason}.*within 0\.001"):
    load_dataset(root)


def test_a_pose_rigid_within_the_tolerance_loads(dataset):
  root, _ = dataset
  meta = json.loads((root / "transforms_train.json").read_text())
  frame = meta["frames"][1]
  frame["transform_matrix"] = writers.nearly_rigid(np.asarray(frame["transform_matrix"])).tolist()
  (root / "transforms_train.json").write_text(json.dumps(meta))
  assert load_dataset(root).num_views == len(meta["frames"])
