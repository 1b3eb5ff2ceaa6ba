"""Dynamic tiling: grid choice against a brute force, tile layout, thumbnail, caps, normalization, inputs."""

import itertools

import numpy as np
import pytest
from PIL import Image

from jaxlab.vlm import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    choose_tile_grid,
    dynamic_preprocess,
    preprocess_images,
    preprocess_video_frames,
    tile_grid_candidates,
)

T = 28  # small tiles keep the tests fast


def _brute_force_grid(height, width, tile, min_num, max_num):
  """Independent statement of the rule: best fit; among exact ties, the largest (in visiting order)
  whose half tile area the image still exceeds, else the first tied grid."""
  grids = [(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num]
  diffs = {g: abs(width / height - g[0] / g[1]) for g in grids}
  best = min(diffs.values())
  tied = sorted((g for g in grids if diffs[g] == best), key=lambda g: (g[0] * g[1], g[0]))
  chosen = tied[0]
  for g in tied[1:]:
    if width * height > 0.5 * tile * tile * g[0] * g[1]:
      chosen = g
  return chosen


def _normalized(pixels_uint8):
  return (pixels_uint8.astype(np.float32) / 255.0 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)


def _smooth_image(height, width, seed=0):
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  channels = [127 + 100 * np.sin(x / rng.uniform(3, 9) + y / rng.uniform(3, 9) + c) for c in range(3)]
  return np.stack(channels, axis=-1).round().astype(np.uint8)


def test_candidates_are_every_allowed_grid_in_visiting_order():
  for min_num, max_num in [(1, 12), (1, 1), (3, 8), (2, 6)]:
    grids = tile_grid_candidates(min_num, max_num)
    expected = {(i, j) for i in range(1, 13) for j in range(1, 13) if min_num <= i * j <= max_num}
    assert set(grids) == expected and len(grids) == len(expected)
    keys = [(i * j, i) for i, j in grids]  # tile count first, then columns ascending
    assert keys == sorted(keys)


def test_grid_matches_brute_force_over_many_aspect_ratios():
  sizes = [(h, w) for h, w in itertools.product([1, 7, 20, 28, 40, 56, 83, 100, 150, 333], repeat=2)]
  sizes += [(28, 84), (84, 28), (56, 84), (40, 41), (100, 300), (30, 120), (10, 1000), (1000, 10)]
  for (h, w), (min_num, max_num) in itertools.product(sizes, [(1, 12), (1, 6), (2, 9), (4, 4)]):
    assert choose_tile_grid(h, w, tile_size=T, min_num=min_num, max_num=max_num) == _brute_force_grid(
        h, w, T, min_num, max_num
    ), (h, w, min_num, max_num)


def test_exact_ties_follow_the_area_rule():
  # Square images tie (1,1), (2,2), (3,3): more tiles only while area > half their tile area.
  assert choose_tile_grid(28, 28, tile_size=T) == (1, 1)  # 784 <= 0.5 * 784 * 4
  assert choose_tile_grid(40, 40, tile_size=T) == (2, 2)  # 1600 > 1568, but <= 3528
  assert choose_tile_grid(60, 60, tile_size=T) == (3, 3)  # 3600 > 3528
  assert choose_tile_grid(600, 600, tile_size=T) == (3, 3)  # (4, 4) has 16 > 12 tiles
  # 2:1 ties (2,1) and (4,2).
  assert choose_tile_grid(28, 56, tile_size=T) == (2, 1)
  assert choose_tile_grid(60, 120, tile_size=T) == (4, 2)


@pytest.mark.parametrize(
    "height, width, grid",
    [(28, 84, (3, 1)), (84, 28, (1, 3)), (20, 20, (1, 1)), (56, 84, (3, 2)), (84, 56, (2, 3))],
)
def test_wide_tall_and_square_layouts(height, width, grid):
  image = _smooth_image(height, width)
  tiles = dynamic_preprocess(image, tile_size=T)
  cols, rows = grid
  assert tiles.dtype == np.float32
  assert tiles.shape == (cols * rows + (1 if cols * rows > 1 else 0), T, T, 3)
  if (height, width) == (rows * T, cols * T):
    # Already grid-sized: the resize keeps the pixels, so tiles are plain row-major crops.
    for k in range(rows * cols):
      r, c = divmod(k, cols)
      np.testing.assert_allclose(tiles[k], _normalized(image[r * T : (r + 1) * T, c * T : (c + 1) * T]), atol=1e-6)


def test_thumbnail_appears_iff_more_than_one_tile():
  rng = np.random.default_rng(1)
  for _ in range(12):
    h, w = (int(v) for v in rng.integers(5, 200, size=2))
    cols, rows = _brute_force_grid(h, w, T, 1, 12)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    with_thumb = dynamic_preprocess(image, tile_size=T)
    without = dynamic_preprocess(image, tile_size=T, use_thumbnail=False)
    assert without.shape[0] == cols * rows
    assert with_thumb.shape[0] == cols * rows + (cols * rows > 1)
    np.testing.assert_array_equal(with_thumb[: cols * rows], without)
    if cols * rows > 1:
      thumb = np.asarray(Image.fromarray(image).resize((T, T), Image.BICUBIC))
      np.testing.assert_allclose(with_thumb[-1], _normalized(thumb), atol=1e-6)


def test_max_num_caps_the_grid():
  image = _smooth_image(10, 1000)  # aspect 100: as many columns as allowed
  assert dynamic_preprocess(image, tile_size=T, max_num=12).shape[0] == 12 + 1
  assert dynamic_preprocess(image, tile_size=T, max_num=4).shape[0] == 4 + 1
  assert dynamic_preprocess(image, tile_size=T, max_num=1).shape[0] == 1
  tall = _smooth_image(1000, 10)
  assert dynamic_preprocess(tall, tile_size=T, max_num=6).shape[0] == 6 + 1
  # min_num forces tiles on a tiny square: (2,2) is the only 4-tile square.
  assert dynamic_preprocess(_smooth_image(5, 5), tile_size=T, min_num=4, max_num=4).shape[0] == 5


def test_multi_image_cap_is_max_num_over_image_count():
  wide = _smooth_image(10, 1000)
  pixels, counts = preprocess_images([wide, wide, wide], tile_size=T)  # cap 12 // 3 = 4
  assert counts == [5, 5, 5] and pixels.shape == (15, T, T, 3)
  _, counts = preprocess_images([wide] * 5, tile_size=T)  # cap 2
  assert counts == [3] * 5
  _, counts = preprocess_images([wide] * 13, tile_size=T)  # cap max(1, 0) = 1
  assert counts == [1] * 13
  _, counts = preprocess_images([wide] * 2, tile_size=T, min_num=8, max_num=12)  # min lowered to cap 6
  assert counts == [7, 7]
  # Images are concatenated in order.
  small, tall = _smooth_image(20, 20), _smooth_image(84, 28)
  pixels, counts = preprocess_images([small, tall], tile_size=T)
  assert counts == [1, 4]
  np.testing.assert_array_equal(pixels[:1], dynamic_preprocess(small, tile_size=T, max_num=6))
  np.testing.assert_array_equal(pixels[1:], dynamic_preprocess(tall, tile_size=T, max_num=6))


def test_normalization_values_on_constant_images():
  colour = np.array([255, 0, 128], np.uint8)
  tiles = dynamic_preprocess(np.broadcast_to(colour, (50, 90, 3)).copy(), tile_size=T)
  expected = (colour / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
  np.testing.assert_allclose(tiles, np.broadcast_to(expected, tiles.shape), rtol=0, atol=1e-6)
  grey = dynamic_preprocess(np.full((30, 30), 0.25, np.float32), tile_size=T)
  expected = (0.25 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
  np.testing.assert_allclose(grey, np.broadcast_to(expected, grey.shape), rtol=0, atol=1e-6)


def test_input_conversions_agree():
  rgb = _smooth_image(45, 70)
  reference = dynamic_preprocess(rgb, tile_size=T)
  np.testing.assert_array_equal(dynamic_preprocess(Image.fromarray(rgb), tile_size=T), reference)
  opaque = np.concatenate([rgb, np.full((45, 70, 1), 255, np.uint8)], axis=-1)
  np.testing.assert_array_equal(dynamic_preprocess(opaque, tile_size=T), reference)
  np.testing.assert_array_equal(dynamic_preprocess(Image.fromarray(opaque), tile_size=T), reference)
  # Float in [0, 1]: same pipeline without 8-bit rounding, so within ~1 level / std.
  np.testing.assert_allclose(dynamic_preprocess(rgb / 255.0, tile_size=T), reference, atol=1.5 / 255 / 0.224)

  grey = rgb[..., 0]
  grey_rgb = dynamic_preprocess(np.repeat(grey[..., None], 3, axis=-1), tile_size=T)
  np.testing.assert_array_equal(dynamic_preprocess(grey, tile_size=T), grey_rgb)
  np.testing.assert_array_equal(dynamic_preprocess(grey[..., None], tile_size=T), grey_rgb)
  np.testing.assert_array_equal(dynamic_preprocess(Image.fromarray(grey), tile_size=T), grey_rgb)

  # Fully transparent pixels become white; half transparent black becomes mid grey.
  clear = np.zeros((20, 20, 4), np.uint8)
  white = (1.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
  np.testing.assert_allclose(dynamic_preprocess(clear, tile_size=T)[0], np.broadcast_to(white, (T, T, 3)), atol=1e-6)
  np.testing.assert_allclose(
      dynamic_preprocess(Image.fromarray(clear), tile_size=T)[0], np.broadcast_to(white, (T, T, 3)), atol=1e-6
  )
  half = np.zeros((20, 20, 4), np.float32)
  half[..., 3] = 0.5
  mid = (0.5 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
  np.testing.assert_allclose(dynamic_preprocess(half, tile_size=T)[0], np.broadcast_to(mid, (T, T, 3)), atol=1e-5)


def test_video_frames_are_one_tile_each():
  frames = np.stack([_smooth_image(30, 120, seed=s) for s in range(3)])
  tiles = preprocess_video_frames(frames, tile_size=T)
  assert tiles.shape == (3, T, T, 3)
  np.testing.assert_array_equal(tiles[1], dynamic_preprocess(frames[1], tile_size=T, max_num=1)[0])


@pytest.mark.parametrize(
    "image, match",
    [
        (Image.new("P", (10, 10)), "mode"),
        (Image.new("CMYK", (10, 10)), "mode"),
        (Image.new("LA", (10, 10)), "mode"),
        (np.zeros((0, 5, 3), np.uint8), "non-empty"),
        (np.zeros((5, 0), np.uint8), "non-empty"),
        (np.zeros((2, 5, 5, 3), np.uint8), r"\[H, W\]"),
        (np.zeros((5,), np.uint8), r"\[H, W\]"),
        (np.zeros((5, 5, 2), np.uint8), "channels"),
        (np.zeros((5, 5, 3), np.int32), "dtype"),
        (np.full((5, 5, 3), 2.0), r"\[0, 1\]"),
        (np.full((5, 5, 3), np.nan), "NaN"),
    ],
)
def test_bad_images_raise_value_error(image, match):
  with pytest.raises(ValueError, match=match):
    dynamic_preprocess(image, tile_size=T)


def test_bad_arguments():
  good = _smooth_image(10, 10)
  with pytest.raises(TypeError, match="numpy array or a PIL image"):
    dynamic_preprocess([[1, 2], [3, 4]], tile_size=T)
  with pytest.raises(ValueError, match="min_num must be <= max_num"):
    dynamic_preprocess(good, tile_size=T, min_num=5, max_num=4)
  with pytest.raises(ValueError, match="tile_size"):
    dynamic_preprocess(good, tile_size=0)
  with pytest.raises(ValueError, match="max_num"):
    dynamic_preprocess(good, tile_size=T, max_num=0)
  with pytest.raises(ValueError, match="at least one image"):
    preprocess_images([], tile_size=T)
  with pytest.raises(TypeError, match="sequence"):
    preprocess_images(good, tile_size=T)


@pytest.mark.slow  # importing transformers takes ~10-20 s
def test_matches_transformers_pil_image_processor():
  """Pixel parity with the processor transformers-format InternVL checkpoints load."""
  pil_module = pytest.importorskip("transformers.models.got_ocr2.image_processing_pil_got_ocr2")
  processor = pil_module.GotOcr2ImageProcessorPil(
      size={"height": T, "width": T},
      crop_to_patches=True,
      min_patches=1,
      max_patches=12,
      image_mean=list(IMAGENET_MEAN),
      image_std=list(IMAGENET_STD),
  )
  rng = np.random.default_rng(0)
  for h, w in [(30, 90), (90, 30), (40, 41), (10, 100), (57, 83), (20, 20)]:
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = np.asarray(processor(images=[image], return_tensors="np")["pixel_values"]).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(dynamic_preprocess(image, tile_size=T), expected, rtol=0, atol=1e-6)
