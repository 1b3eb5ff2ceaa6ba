"""Tests for `jaxlab.splat.datasets.common`: pixels, downscaling, splits and file errors."""

import imageio.v3 as iio
import numpy as np
import pytest
from skimage.transform import downscale_local_mean

from jaxlab.splat.datasets import common


def test_area_downscale_matches_an_independent_block_mean_and_drops_partial_blocks():
  rng = np.random.default_rng(0)
  image = rng.random((7, 11, 3)).astype(np.float32)
  small = common.area_downscale(image, 2)
  assert small.shape == (3, 5, 3)
  expected = downscale_local_mean(image[:6, :10], (2, 2, 1))
  np.testing.assert_allclose(small, expected, rtol=1e-6)


def test_depth_downscale_averages_only_valid_depths():
  depth = np.array([[2.0, 0.0, 0.0, 0.0],
                    [4.0, 0.0, 0.0, 0.0]], np.float32)
  small = common.area_downscale_depth(depth, 2)
  # Block 1 has depths {2, 4} and two holes: 3, not 1.5. Block 2 has none: stays 0.
  np.testing.assert_allclose(small, [[3.0, 0.0]])


def test_composite_blends_straight_alpha_over_the_background():
  rgba = np.array([[[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5]]], np.float32)
  rgb, alpha = common.composite_on_background(rgba, np.array([0.0, 1.0, 0.0], np.float32))
  np.testing.assert_allclose(rgb[0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
  np.testing.assert_allclose(alpha, [[1.0, 0.0, 0.5]])
  rgb_only, no_alpha = common.composite_on_background(rgba[..., :3], np.zeros(3, np.float32))
  assert no_alpha is None and rgb_only is not None


@pytest.mark.parametrize("num_views,test_every", [(17, 8), (5, 2), (3, 1)])
def test_split_indices_partition_the_views_like_3dgs(num_views, test_every):
  train = common.split_indices(num_views, "train", test_every)
  test = common.split_indices(num_views, "test", test_every)
  np.testing.assert_array_equal(common.split_indices(num_views, "val", test_every), test)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(num_views))
  assert all(i % test_every == 0 for i in test) and all(i % test_every for i in train)
  np.testing.assert_array_equal(common.split_indices(num_views, "all", test_every), np.arange(num_views))


def test_images_of_every_bit_depth_and_channel_count_read_into_unit_rgb(tmp_path):
  grey16 = (np.arange(48).reshape(6, 8) * 1000).astype(np.uint16)
  iio.imwrite(tmp_path / "grey16.png", grey16)
  image = common.read_image(tmp_path / "grey16.png")
  assert image.shape == (6, 8, 3) and image.dtype == np.float32
  np.testing.assert_allclose(image[..., 1], grey16 / 65535.0, rtol=1e-6)
  grey_alpha = np.stack([np.full((6, 8), 51, np.uint8), np.full((6, 8), 255, np.uint8)], axis=-1)
  iio.imwrite(tmp_path / "la.png", grey_alpha)
  image = common.read_image(tmp_path / "la.png")
  assert image.shape == (6, 8, 4)
  np.testing.assert_allclose(image[0, 0], [0.2, 0.2, 0.2, 1.0], rtol=1e-6)


def test_missing_and_unreadable_images_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothere.png"):
    common.read_image(tmp_path / "nothere.png")
  (tmp_path / "broken.png").write_bytes(b"not a png at all")
  with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
    common.read_image(tmp_path / "broken.png")
  with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
    common.image_size(tmp_path / "broken.png")


def test_malformed_json_error_gives_the_file_line_and_column(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{\n  "frames": [\n    {"file_path": "a",}\n  ]\n}\n')
  with pytest.raises(ValueError, match=r"bad\.json: malformed JSON at line 3, column 23"):
    common.read_json(path)


def test_point_ply_colours_are_scaled_to_unit_range(tmp_path):
  from tests.splat.datasets.writers import write_points_ply
  write_points_ply(tmp_path / "p.ply", np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]),
                   np.array([[255, 0, 51], [0, 255, 102]], np.uint8))
  points, colors = common.read_point_ply(tmp_path / "p.ply")
  np.testing.assert_allclose(points, [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
  np.testing.assert_allclose(colors, [[1.0, 0.0, 0.2], [0.0, 1.0, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_downscale_must_be_a_positive_int(bad):
  with pytest.raises(ValueError, match="downscale must be a positive int"):
    common.check_downscale(bad)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (0.0, 2.0, 0.0), "white", None])
def test_background_must_be_three_unit_floats(bad):
  with pytest.raises(ValueError, match=r"background must be three floats in \[0, 1\]"):
    common.check_background(bad)


def test_unknown_split_lists_the_choices():
  with pytest.raises(ValueError, match=r"split must be one of \('train', 'test', 'val', 'all'\)"):
    common.split_indices(4, "training", 8)
