"""Tests for the COLMAP readers and loader on tiny text and binary models written by the test."""

import dataclasses

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.splat.datasets import load_colmap, load_dataset, read_model
from tests.splat.datasets import writers
from tests.splat.datasets.writers import COLMAP_INTRINSICS, COLMAP_POINTS, HEIGHT, POINT, WIDTH

NUM_IMAGES = 5
WRITERS = {"text": writers.write_colmap_text, "binary": writers.write_colmap_binary}


def _write(root, kind, *, model_dir="sparse/0", cameras=writers.COLMAP_CAMERAS):
  specs = writers.colmap_images(NUM_IMAGES)
  writers.write_colmap_images_folder(root, specs)
  WRITERS[kind](root / model_dir, specs, cameras=cameras)
  return sorted(specs, key=lambda spec: spec.name)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_cameras_poses_and_points_from_both_encodings(tmp_path, kind):
  specs = _write(tmp_path, kind)
  scene = load_dataset(tmp_path, split="all")
  assert scene.names == tuple(f"img_{i:02d}.png" for i in range(NUM_IMAGES))
  for i, spec in enumerate(specs):
    fx, fy, cx, cy = COLMAP_INTRINSICS[spec.camera_id]
    got = [float(getattr(scene.cameras, k)[i]) for k in ("fx", "fy", "cx", "cy")]
    np.testing.assert_allclose(got, [fx, fy, cx, cy], rtol=1e-6)
    np.testing.assert_allclose(writers.projected_pixel(scene.cameras[i], POINT), spec.view.pixel_uv, atol=1e-3)
    np.testing.assert_allclose(np.asarray(scene.cameras[i].camera_center()), spec.view.eye, atol=1e-5)
    row, col = spec.view.marker_row_col
    np.testing.assert_allclose(scene.images[i, row, col], [1.0, 0.0, 0.0])
  np.testing.assert_allclose(scene.points, [p[1] for p in COLMAP_POINTS], rtol=1e-6)
  np.testing.assert_allclose(scene.point_colors, np.array([p[2] for p in COLMAP_POINTS]) / 255.0, rtol=1e-6)
  assert scene.masks is None and scene.depths is None


def test_text_and_binary_readers_agree(tmp_path):
  _write(tmp_path / "t", "text")
  _write(tmp_path / "b", "binary")
  cameras_t, images_t, points_t = read_model(tmp_path / "t" / "sparse" / "0")
  cameras_b, images_b, points_b = read_model(tmp_path / "b" / "sparse" / "0")
  assert cameras_t == cameras_b and set(cameras_t) == {1, 7}
  assert cameras_t[7].model == "SIMPLE_RADIAL" and cameras_t[7].params == (5.5, 4.2, 2.9, 0.0)
  assert images_t.keys() == images_b.keys()
  for image_id, image in images_t.items():
    assert (image.name, image.camera_id) == (images_b[image_id].name, images_b[image_id].camera_id)
    np.testing.assert_allclose(image.world_to_camera(), images_b[image_id].world_to_camera(), atol=1e-12)
  np.testing.assert_array_equal(points_t.ids, [5, 9000000000])
  np.testing.assert_array_equal(points_b.ids, points_t.ids)
  np.testing.assert_array_equal(points_b.rgb, points_t.rgb)
  np.testing.assert_allclose(points_b.errors, [0.5, 1.25])


def test_model_in_sparse_is_found_and_binary_wins_over_text(tmp_path):
  specs = _write(tmp_path, "binary", model_dir="sparse")
  for stem in ("cameras", "images", "points3D"):
    (tmp_path / "sparse" / f"{stem}.txt").write_text("this is not a COLMAP text file\n")
  scene = load_colmap(tmp_path, split="all")
  np.testing.assert_allclose(writers.matrix_pixel(scene.cameras[3], POINT), specs[3].view.pixel_uv, atol=1e-4)


def test_opencv_model_with_zero_distortion_is_a_pinhole(tmp_path):
  cameras = ((1, "OPENCV", 4, lambda fx, fy, cx, cy: (fx, fy, cx, cy, 0.0, 0.0, 0.0, 0.0)),
             writers.COLMAP_CAMERAS[1])
  specs = _write(tmp_path, "binary", cameras=cameras)
  scene = load_dataset(tmp_path, split="all")
  for i, spec in enumerate(specs):
    np.testing.assert_allclose(writers.matrix_pixel(scene.cameras[i], POINT), spec.view.pixel_uv, atol=1e-4)


def test_split_every_nth_image_by_name(tmp_path):
  _write(tmp_path, "text")
  assert load_dataset(tmp_path, split="test", test_every=2).names == ("img_00.png", "img_02.png", "img_04.png")
  assert load_dataset(tmp_path, split="train", test_every=2).names == ("img_01.png", "img_03.png")
  assert load_dataset(tmp_path, split="train").names == ("img_01.png", "img_02.png", "img_03.png", "img_04.png")


def test_downscale_averages_without_a_folder_and_reads_images_2_with_one(tmp_path):
  specs = _write(tmp_path, "binary")
  full = load_dataset(tmp_path, split="all")
  half = load_dataset(tmp_path, split="all", downscale=2)
  blocks = full.images.reshape(NUM_IMAGES, HEIGHT // 2, 2, WIDTH // 2, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(half.images, blocks, rtol=1e-5)
  for i, spec in enumerate(specs):
    np.testing.assert_allclose(writers.projected_pixel(half.cameras[i], POINT), np.asarray(spec.view.pixel_uv) / 2,
                               atol=1e-3)
  (tmp_path / "images_2").mkdir()
  for spec in specs:
    iio.imwrite(tmp_path / "images_2" / spec.name, np.full((HEIGHT // 2, WIDTH // 2, 3), 102, np.uint8))
  from_folder = load_dataset(tmp_path, split="all", downscale=2)
  np.testing.assert_allclose(from_folder.images, 0.4, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(from_folder.cameras.fx), np.asarray(half.cameras.fx), rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


def test_unknown_model_name_in_text_names_the_model_and_file(tmp_path):
  _write(tmp_path, "text")
  path = tmp_path / "sparse" / "0" / "cameras.txt"
  path.write_text(path.read_text().replace("SIMPLE_RADIAL", "MYSTERY_LENS"))
  message = r"cameras\.txt, line \d+: unknown camera model 'MYSTERY_LENS'; known: SIMPLE_PINHOLE"
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path)


def test_unknown_model_id_in_binary_names_the_id_and_file(tmp_path):
  cameras = (writers.COLMAP_CAMERAS[0], (7, "MADE_UP", 42, lambda fx, fy, cx, cy: (fx, cx, cy)))
  _write(tmp_path, "binary", cameras=cameras)
  with pytest.raises(ValueError, match=r"cameras\.bin: unknown camera model id 42; known ids: 0 SIMPLE_PINHOLE"):
    load_dataset(tmp_path)


def test_fisheye_model_is_refused_with_the_undistort_command(tmp_path):
  cameras = (writers.COLMAP_CAMERAS[0],
             (7, "OPENCV_FISHEYE", 5, lambda fx, fy, cx, cy: (fx, fy, cx, cy, 0.0, 0.0, 0.0, 0.0)))
  _write(tmp_path, "text", cameras=cameras)
  with pytest.raises(ValueError, match=r"cameras\.txt: camera 7 uses the OPENCV_FISHEYE model, which is not"
                                       r" supported .*colmap image_undistorter"):
    load_dataset(tmp_path)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_non_zero_distortion_is_refused_with_the_undistort_command(tmp_path, kind):
  cameras = (writers.COLMAP_CAMERAS[0], (7, "SIMPLE_RADIAL", 2, lambda fx, fy, cx, cy: (fx, cx, cy, 0.1)))
  _write(tmp_path, kind, cameras=cameras)
  message = (r"cameras\.(txt|bin), camera 7: camera model SIMPLE_RADIAL has non-zero distortion \(k=0\.1\);"
             r" undistorting images is not supported: .*image_undistorter")
  with pytest.raises(ValueError, match=message):
    load_dataset(tmp_path)


def test_truncated_binary_file_is_named(tmp_path):
  _write(tmp_path, "binary")
  path = tmp_path / "sparse" / "0" / "images.bin"
  path.write_bytes(path.read_bytes()[:150])
  with pytest.raises(ValueError, match=r"images\.bin: (file ends early|unterminated image name)"):
    load_dataset(tmp_path)


def test_malformed_text_line_is_named(tmp_path):
  _write(tmp_path, "text")
  path = tmp_path / "sparse" / "0" / "points3D.txt"
  path.write_text(path.read_text() + "77 1.0 two 3.0 1 2 3 0.1\n")
  with pytest.raises(ValueError, match=r"points3D\.txt, line 4: malformed point"):
    load_dataset(tmp_path)


def test_missing_pieces_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"no COLMAP model .*searched .*sparse/0"):
    load_colmap(tmp_path)
  _write(tmp_path, "binary")
  (tmp_path / "images" / "img_02.png").unlink()
  with pytest.raises(FileNotFoundError, match=r"image not found: .*images/img_02\.png"):
    load_dataset(tmp_path, split="all")
  (tmp_path / "sparse" / "0" / "images.bin").unlink()
  with pytest.raises(FileNotFoundError, match=r"COLMAP images file not found"):
    load_dataset(tmp_path)


def test_cameras_of_different_sizes_are_refused(tmp_path):
  _write(tmp_path, "text")
  path = tmp_path / "sparse" / "0" / "cameras.txt"
  text = path.read_text()
  path.write_text(text.replace(f"7 SIMPLE_RADIAL {WIDTH} {HEIGHT}", f"7 SIMPLE_RADIAL {WIDTH + 2} {HEIGHT}"))
  with pytest.raises(ValueError, match=r"one size; .*img_0\d\.png is 10x6 but .*img_00\.png is 8x6"):
    load_dataset(tmp_path, split="all")


def test_image_with_an_unknown_camera_is_named(tmp_path):
  _write(tmp_path, "text", cameras=writers.COLMAP_CAMERAS[:1])
  with pytest.raises(ValueError, match=r"images\.txt: image 'img_\d\d\.png' uses camera 7, which is not in"):
    load_dataset(tmp_path)


# ----------------------------------------------------------------------------- images.txt records


def _image_line(spec, *, name=None, qvec=None) -> str:
  return " ".join(str(v) for v in (spec.image_id, *(qvec or spec.qvec), *spec.tvec, spec.camera_id, name or spec.name))


def _write_images_txt(root, lines) -> None:
  (root / "sparse" / "0" / "images.txt").write_text("\n".join(lines) + "\n")


def _read_images(root):
  return read_model(root / "sparse" / "0")[1]


def _assert_all_images(images, specs, names=None):
  assert sorted(images) == sorted(spec.image_id for spec in specs)
  for spec, name in zip(specs, names or [spec.name for spec in specs]):
    image = images[spec.image_id]
    assert (image.name, image.camera_id) == (name, spec.camera_id)
    np.testing.assert_allclose(image.world_to_camera()[:3, 3], spec.tvec, atol=1e-12)


def test_images_txt_without_points_lines_loads_every_image(tmp_path):
  specs = _write(tmp_path, "text")
  _write_images_txt(tmp_path, ["# Image list with two lines of data per image:", *map(_image_line, specs)])
  _assert_all_images(_read_images(tmp_path), specs)
  assert load_dataset(tmp_path, split="all").num_views == NUM_IMAGES


def test_images_txt_with_points_lines_present_empty_missing_and_comments_in_between(tmp_path):
  specs = _write(tmp_path, "text")
  names = ["my photo 01.png", *(spec.name for spec in specs[1:])]  # a name with spaces
  lines = [
      "# Image list with two lines of data per image:",
      _image_line(specs[0], name=names[0]), "1.5 2.5 5 3.0 1.0 -1",
      _image_line(specs[1]),  # no points line at all
      _image_line(specs[2]), "",  # an empty points line
      "# a comment between records",
      _image_line(specs[3]), "  ", "",  # a blank points line, then a stray blank line
      _image_line(specs[4]), "7.25 0.5 12",
      "", "",
  ]
  _write_images_txt(tmp_path, lines)
  _assert_all_images(_read_images(tmp_path), specs, names)


@pytest.mark.parametrize("lines, message", [
    # Both readings parse: points of image 0 (X Y ID triples), or image 5 with name "4 5 6".
    (lambda s: [_image_line(s[0]), "5 1 0 0 0 0 0 0 1 4 5 6", *map(_image_line, s[1:])],
     r"line 2 could be either the 2D points line of image 'img_00\.png' or an image line \(image 5"),
    (lambda s: [_image_line(s[0]), "1.5 2.5 5", "3.0 1.0 -1", *map(_image_line, s[1:])],
     r"line 3 is a 2D points line \(X Y POINT3D_ID triples\) that follows no image line"),
    (lambda s: ["2.5 1.0 -1", *map(_image_line, s)], r"line 1 is a 2D points line .* that follows no image line"),
    (lambda s: [_image_line(s[0]), " ".join(_image_line(s[1]).split()[:8]), *map(_image_line, s[2:])],
     r"line 2 is neither an image line \(8 fields, .*10.*\) nor a 2D points line \(8 fields, not a multiple of 3"),
    (lambda s: [_image_line(s[0]), "1.5 2.5 x", *map(_image_line, s[1:])],
     r"line 2 is neither .* nor a 2D points line \(point 1: POINT3D_ID 'x' is not an integer"),
    (lambda s: [*map(_image_line, s), _image_line(s[2], name="again.png")],
     rf"line 6: image id {100 - 3 * 2} appears again \(first on line 3\)"),
])
def test_ambiguous_or_malformed_images_txt_is_refused_naming_the_line(tmp_path, lines, message):
  specs = _write(tmp_path, "text")
  _write_images_txt(tmp_path, lines(specs))
  with pytest.raises(ValueError, match=r"images\.txt, " + message):
    _read_images(tmp_path)


@pytest.mark.parametrize("qvec, problem", [
    ((0.9, 0.1, 0.1, 0.1), r"quaternion \(QW, QX, QY, QZ\) has norm 0\.916515.*within 0\.001"),
    ((0.0, 0.0, 0.0, 0.0), r"quaternion \(QW, QX, QY, QZ\) has norm 0\b.*within 0\.001"),
    ((float("nan"), 0.0, 0.0, 1.0), r"has a non-finite pose"),
])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_colmap_quaternion_that_is_not_a_unit_rotation_is_refused_naming_the_image(tmp_path, kind, qvec, problem):
  specs = writers.colmap_images(NUM_IMAGES)
  specs[2] = dataclasses.replace(specs[2], qvec=qvec)
  writers.write_colmap_images_folder(tmp_path, specs)
  WRITERS[kind](tmp_path / "sparse" / "0", specs)
  where = r"line 7" if kind == "text" else r"image record 2"
  with pytest.raises(ValueError, match=rf"images\.(txt|bin), {where}: image 'img_02\.png' \(id 94\) {problem}"):
    load_dataset(tmp_path)


def test_quaternions_within_the_tolerance_of_unit_length_load(tmp_path):
  specs = writers.colmap_images(NUM_IMAGES)
  specs = [dataclasses.replace(spec, qvec=tuple(q * (1 + 1e-5) for q in spec.qvec)) for spec in specs]
  writers.write_colmap_images_folder(tmp_path, specs)
  writers.write_colmap_text(tmp_path / "sparse" / "0", specs)
  assert load_dataset(tmp_path, split="all").num_views == NUM_IMAGES


def test_binary_duplicate_image_ids_are_refused(tmp_path):
  specs = writers.colmap_images(NUM_IMAGES)
  specs[3] = dataclasses.replace(specs[3], image_id=specs[1].image_id)
  writers.write_colmap_images_folder(tmp_path, specs)
  writers.write_colmap_binary(tmp_path / "sparse" / "0", specs)
  with pytest.raises(ValueError, match=rf"images\.bin, image record 3: image id {specs[1].image_id} appears again"
                                       r" \(first in record 1\)"):
    load_dataset(tmp_path)
