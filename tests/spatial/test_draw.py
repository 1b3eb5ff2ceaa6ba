"""Dots, labels and colours drawn as visual prompts: right pixels, nothing else touched, input kept."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.spatial import draw


def noise_image(height: int, width: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def changed_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
  return np.any(before != after, axis=2)


def pixel_centre_distance(shape, u, v):
  rows, cols = np.mgrid[:shape[0], :shape[1]]
  return np.hypot(cols + 0.5 - u, rows + 0.5 - v)


@pytest.mark.parametrize("height,width,u,v", [(64, 64, 20.3, 40.7), (968, 1296, 700.0, 300.5), (48, 80, 0.2, 47.9)])
def test_dot_colours_its_disc_and_nothing_else(height, width, u, v):
  image = noise_image(height, width)
  before = image.copy()
  color = (10, 200, 30)
  out = draw.draw_dot(image, u, v, color)
  np.testing.assert_array_equal(image, before)  # the input is untouched
  assert out is not image and out.shape == image.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[int(v), int(u)], color)
  expected_radius = max(2.0, 10.0 * width / 1296)
  distance = pixel_centre_distance(image.shape, u, v)
  inside = distance <= expected_radius - 0.5
  far = distance > expected_radius + 0.5
  assert np.all(out[inside] == color)
  np.testing.assert_array_equal(out[far], before[far])
  assert inside.sum() >= 3  # a quarter disc in a corner still has a few pixels


def test_dot_radius_is_ten_pixels_at_the_papers_width_and_can_be_set():
  black = np.zeros((968, 1296, 3), np.uint8)
  row = draw.draw_dot(black, 600.0, 400.0, (255, 255, 255))[400]
  assert 19 <= np.count_nonzero(row[:, 0]) <= 21  # diameter about 20 px
  small = draw.draw_dot(np.zeros((64, 64, 3), np.uint8), 32.0, 32.0, (255, 0, 0), radius=6)
  assert 11 <= np.count_nonzero(small[32, :, 0]) <= 13


def test_dot_refuses_bad_input():
  image = noise_image(32, 32)
  with pytest.raises(ValueError, match="outside"):
    draw.draw_dot(image, 32.0, 5.0, (1, 2, 3))
  with pytest.raises(ValueError, match="outside"):
    draw.draw_dot(image, float("nan"), 5.0, (1, 2, 3))
  with pytest.raises(ValueError, match="colour"):
    draw.draw_dot(image, 5.0, 5.0, (1, 2, 300))
  with pytest.raises(ValueError, match="uint8"):
    draw.draw_dot(image.astype(np.float32), 5.0, 5.0, (1, 2, 3))
  with pytest.raises(ValueError, match="radius"):
    draw.draw_dot(image, 5.0, 5.0, (1, 2, 3), radius=0)


@pytest.mark.parametrize("height,width", [(64, 64), (96, 128), (968, 1296)])
def test_label_is_drawn_beside_the_point(height, width):
  image = np.full((height, width, 3), 90, np.uint8)
  before = image.copy()
  u, v = width / 2, height / 2
  color = (255, 255, 0)
  out = draw.draw_label(image, u, v, "B", color)
  np.testing.assert_array_equal(image, before)
  changed = changed_mask(before, out)
  rows, cols = np.nonzero(changed)
  assert np.any(np.all(out == color, axis=2)), "no pixel in the label colour"
  assert np.any(np.all(out == 0, axis=2)), "a light label gets a dark outline"
  # Beside the point, not on it: the point's own pixel and a default dot around it stay clear.
  assert not changed[int(v), int(u)]
  extent = 40 * max(1, round(width / 432))
  assert np.all(np.abs(rows - v) < extent) and np.all(np.abs(cols - u) < extent)


def test_label_stays_inside_the_image_at_corners():
  image = np.zeros((64, 64, 3), np.uint8)
  for u, v in [(63.5, 0.5), (0.5, 0.5), (63.5, 63.5), (0.5, 63.5)]:
    out = draw.draw_label(image, u, v, "D", (255, 0, 0))
    assert np.count_nonzero(np.all(out == (255, 0, 0), axis=2)) >= 8, (u, v)


def test_labels_of_different_letters_differ():
  image = np.zeros((64, 64, 3), np.uint8)
  shapes = [np.all(draw.draw_label(image, 20.0, 40.0, letter, (255, 255, 255)) == 255, axis=2)
            for letter in "ABCD"]
  for i in range(4):
    for j in range(i + 1, 4):
      assert np.any(shapes[i] != shapes[j]), "two letters look the same"


def test_label_refuses_empty_text():
  with pytest.raises(ValueError, match="label"):
    draw.draw_label(np.zeros((16, 16, 3), np.uint8), 3.0, 3.0, " ", (1, 2, 3))


def test_distinct_colors_have_distinct_names():
  rng = np.random.default_rng(3)
  colors = draw.distinct_colors(6, rng)
  assert len(set(colors)) == 6
  assert len({draw.color_name(c) for c in colors}) == 6
  again = draw.distinct_colors(6, np.random.default_rng(3))
  assert colors == again
  orders = {tuple(draw.distinct_colors(4, np.random.default_rng(s))) for s in range(10)}
  assert len(orders) > 1
  with pytest.raises(ValueError, match="palette"):
    draw.distinct_colors(len(draw.PALETTE) + 1, rng)


def test_color_name_finds_the_nearest_plain_word():
  for name, rgb in draw.PALETTE.items():
    assert draw.color_name(rgb) == name
    nudged = tuple(int(np.clip(c + 12, 0, 255)) for c in rgb)
    assert draw.color_name(nudged) == name
  assert draw.color_name((250, 5, 5)) == "red"
  assert draw.color_name(np.array([2, 3, 250])) == "blue"
  for name in draw.PALETTE:
    assert name.isalpha() and name.islower()
