"""Tests for the nerfstudio `transforms.json` loader on tiny datasets written by the test."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.splat.datasets import load_dataset, load_nerfstudio
from tests.splat.datasets import writers
from tests.splat.datasets.writers import HEIGHT, POINT, WIDTH

SHARED = dict(fl_x=6.0, fl_y=7.5, cx=3.6, cy=2.8)
# Frame 2 has its own focal lengths and principal point.
OWN = {2: dict(fl_x=5.0, fl_y=5.5, cx=4.3, cy=3.1)}
NUM_FRAMES = 5


def _write(root, *, extra_meta=None, frame_extra=None):
  """A nerfstudio dataset; frames are written in reverse name order. Returns views by name order."""
  views, frames = [], []
  for i in range(NUM_FRAMES):
    intrinsics = OWN.get(i, SHARED)
    view = writers.make_view(i, fx=intrinsics["fl_x"], fy=intrinsics["fl_y"], cx=intrinsics["cx"],
                             cy=intrinsics["cy"])
    writers.write_image(root / "images" / f"frame_{i:02d}.png", view.rgba)
    frame = {"file_path": f"images/frame_{i:02d}.png", "transform_matrix": view.opengl_camera_to_world().tolist()}
    frame.update(OWN.get(i, {}))
    frame.update((frame_extra or {}).get(i, {}))
    frames.append(frame)
    views.append(view)
  meta = {"camera_model": "OPENCV", **SHARED, "w": WIDTH, "h": HEIGHT, "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
          "frames": frames[::-1], **(extra_meta or {})}
  writers.write_json(root / "transforms.json", meta)
  return views


def test_shared_and_per_frame_intrinsics_and_opengl_poses(tmp_path):
  views = _write(tmp_path)
  scene = load_dataset(tmp_path, split="all")
  assert scene.names == tuple(f"images/frame_{i:02d}.png" for i in range(NUM_FRAMES))  # sorted by file path
  for i, view in enumerate(views):
    intrinsics = OWN.get(i, SHARED)
    got = [float(getattr(scene.cameras, k)[i]) for k in ("fx", "fy", "cx", "cy")]
    np.testing.assert_allclose(got, [intrinsics[k] for k in ("fl_x", "fl_y", "cx", "cy")], rtol=1e-6)
    np.testing.assert_allclose(writers.projected_pixel(scene.cameras[i], POINT), view.pixel_uv, atol=1e-3)
    row, col = view.marker_row_col
    np.testing.assert_allclose(scene.images[i, row, col], [1.0, 0.0, 0.0])


def test_json_file_path_and_test_every_split(tmp_path):
  _write(tmp_path)
  train = load_nerfstudio(tmp_path / "transforms.json", split="train", test_every=2)
  test = load_nerfstudio(tmp_path / "transforms.json", split="test", test_every=2)
  assert train.names == ("images/frame_01.png", "images/frame_03.png")
  assert test.names == ("images/frame_00.png", "images/frame_02.png", "images/frame_04.png")
  np.testing.assert_allclose(np.asarray(test.cameras.fx), [6.0, 5.0, 6.0])


def test_applied_transform_is_not_applied_again(tmp_path):
  views = _write(tmp_path, extra_meta={"applied_transform": [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]]})
  scene = load_dataset(tmp_path, split="all")
  for i, view in enumerate(views):
    np.testing.assert_allclose(writers.matrix_pixel(scene.cameras[i], POINT), view.pixel_uv, atol=1e-4)


def test_masks_depths_and_point_cloud(tmp_path):
  mask = np.zeros((HEIGHT, WIDTH), np.uint8)
  mask[2:, 3:] = 255
  iio.imwrite(tmp_path / "mask.png", mask)
  depth_mm = np.full((HEIGHT, WIDTH), 2500, np.uint16)
  iio.imwrite(tmp_path / "depth.png", depth_mm)
  depth = np.full((HEIGHT, WIDTH), 1.75, np.float32)
  np.save(tmp_path / "depth.npy", depth)
  writers.write_points_ply(tmp_path / "sparse_pc.ply", np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]),
                           np.array([[0, 0, 255], [255, 255, 0]], np.uint8))
  views = _write(tmp_path, extra_meta={"ply_file_path": "sparse_pc.ply"},
         frame_extra={0: {"mask_path": "mask.png", "depth_file_path": "depth.png"},
                      1: {"depth_file_path": "depth.npy"}})
  scene = load_dataset(tmp_path, split="all")
  np.testing.assert_allclose(scene.masks[0], mask / 255.0)
  # Without a mask file, the image's alpha is the mask (its top row is transparent).
  np.testing.assert_allclose(scene.masks[1], views[1].rgba[..., 3] / 255.0, rtol=1e-6)
  assert not scene.masks[1][0].any()
  np.testing.assert_allclose(scene.depths[0], 2.5, rtol=1e-6)  # 16-bit PNG depth is in millimetres
  np.testing.assert_allclose(scene.depths[1], 1.75)
  assert not scene.depths[2:].any()
  np.testing.assert_allclose(scene.points, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
  np.testing.assert_allclose(scene.point_colors, [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def test_downscale_uses_an_images_factor_folder_when_present(tmp_path):
  views = _write(tmp_path)
  (tmp_path / "images_2").mkdir()
  for i in range(NUM_FRAMES):
    iio.imwrite(tmp_path / "images_2" / f"frame_{i:02d}.png", np.full((HEIGHT // 2, WIDTH // 2, 3), 51, np.uint8))
  scene = load_dataset(tmp_path, split="all", downscale=2)
  np.testing.assert_allclose(scene.images, 0.2, rtol=1e-6)  # read from images_2, not averaged
  for i, view in enumerate(views):
    np.testing.assert_allclose(writers.matrix_pixel(scene.cameras[i], POINT), np.asarray(view.pixel_uv) / 2,
                               atol=1e-4)


# ----------------------------------------------------------------------------- bad input


def test_non_zero_distortion_is_refused_with_the_way_to_undistort(tmp_path):
  _write(tmp_path, frame_extra={3: {"k1": 0.05, "p2": -0.001}})
  message = (r"transforms\.json, frame 1 \(images/frame_03\.png\): camera model OPENCV has non-zero distortion"
             r" \(k1=0\.05, p2=-0\.001\); undistorting images is not supported: .*image_undistorter")
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path, split="all")


@pytest.mark.parametrize("model", ["OPENCV_FISHEYE", "BANANA"])
def test_unsupported_camera_models_are_refused(tmp_path, model):
  _write(tmp_path, extra_meta={"camera_model": model})
  with pytest.raises(ValueError, match=rf"camera_model '{model}' is not supported; supported: \('SIMPLE_PINHOLE'"):
    load_dataset(tmp_path)


def test_missing_intrinsics_and_images_are_named(tmp_path):
  _write(tmp_path)
  meta = json.loads((tmp_path / "transforms.json").read_text())
  del meta["fl_y"]
  (tmp_path / "transforms.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"transforms\.json, frame 4 \(images/frame_00\.png\): missing 'fl_y'"):
    load_dataset(tmp_path, split="all")
  _write(tmp_path)
  (tmp_path / "images" / "frame_03.png").unlink()
  message = r"image of .*frame 1 \(images/frame_03\.png\) not found: .*images/frame_03\.png"
  with pytest.raises(FileNotFoundError, match=message):
    load_dataset(tmp_path, split="all")


def test_images_of_different_declared_sizes_are_refused(tmp_path):
  _write(tmp_path, frame_extra={4: {"w": WIDTH + 2}})
  with pytest.raises(ValueError, match=r"one size; .*frame_04\.png is 10x6 but .*frame_00\.png is 8x6"):
    load_dataset(tmp_path, split="all")


def test_image_not_matching_its_declared_size_is_named(tmp_path):
  _write(tmp_path)
  iio.imwrite(tmp_path / "images" / "frame_01.png", np.zeros((HEIGHT + 1, WIDTH, 3), np.uint8))
  with pytest.raises(ValueError, match=r"frame_01\.png: image is 8x7 but .*transforms\.json declares 8x6"):
    load_dataset(tmp_path, split="all")


def test_malformed_json_gives_the_position(tmp_path):
  (tmp_path / "transforms.json").write_text('{"frames": [}')
  with pytest.raises(ValueError, match=r"transforms\.json: malformed JSON at line 1, column 13"):
    load_dataset(tmp_path)


@pytest.mark.parametrize("kind", sorted(writers.NON_RIGID_POSES))
def test_a_pose_that_is_not_rigid_is_refused_naming_the_frame_and_tolerance(tmp_path, kind):
  edit, reason = writers.NON_RIGID_POSES[kind]
  views = _write(tmp_path)
  meta = json.loads((tmp_path / "transforms.json").read_text())
  frame = meta["frames"][3]  # frames are stored in reverse name order: this is frame_01.png
  frame["transform_matrix"] = edit(np.asarray(frame["transform_matrix"])).tolist()
  (tmp_path / "transforms.json").write_text(json.dumps(meta))
  message = (rf"transforms\.json, frame 3 \(images/frame_01\.png\): transform_matrix is not a rigid camera pose:"
             rf" .*{reason}.*within 0\.001")
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path, split="all")
  assert len(views) == NUM_FRAMES


def test_a_pose_rigid_within_the_tolerance_loads(tmp_path):
  _write(tmp_path)
  meta = json.loads((tmp_path / "transforms.json").read_text())
  for frame in meta["frames"]:
    frame["transform_matrix"] = writers.nearly_rigid(np.asarray(frame["transform_matrix"])).tolist()
  (tmp_path / "transforms.json").write_text(json.dumps(meta))
  assert load_dataset(tmp_path, split="all").num_views == NUM_FRAMES
