"""Tests for the skeleton images (`jaxlab.video.pose_maps`)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.video.clip import KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS
from jaxlab.video.pose_maps import OPENPOSE_COLORS, draw_pose_maps

NECK, R_SHOULDER = KEYPOINT_NAMES.index("neck"), KEYPOINT_NAMES.index("right_shoulder")


def _one_limb(a_xy, b_xy, conf_a=1.0, conf_b=1.0):
  """Poses [1, 1, 18, 3] holding only the neck and the right shoulder (limb 0 of LIMBS)."""
  poses = np.zeros((1, 1, NUM_KEYPOINTS, 3), np.float32)
  poses[0, 0, NECK] = (*a_xy, conf_a)
  poses[0, 0, R_SHOULDER] = (*b_xy, conf_b)
  return poses


def test_a_horizontal_limb_lights_its_row_between_its_ends_only():
  assert LIMBS[0] == (NECK, R_SHOULDER)
  maps = draw_pose_maps(_one_limb((2.5, 2.5), (10.5, 2.5)), 6, 14)
  assert maps.shape == (1, 6, 14, 3) and maps.dtype == np.float32
  lit = maps[0].max(axis=-1) > 0
  expected = np.zeros((6, 14), bool)
  expected[2, 2:11] = True
  np.testing.assert_array_equal(lit, expected)
  # The limb's own colour between the ends, each end the dot of its keypoint.
  np.testing.assert_allclose(maps[0, 2, 3:10], np.broadcast_to(OPENPOSE_COLORS[0] * 0.6, (7, 3)), atol=1e-6)
  np.testing.assert_allclose(maps[0, 2, 2], OPENPOSE_COLORS[NECK], atol=1e-6)
  np.testing.assert_allclose(maps[0, 2, 10], OPENPOSE_COLORS[R_SHOULDER], atol=1e-6)
  # Thicker lines reach the neighbouring rows.
  thick = draw_pose_maps(_one_limb((2.5, 2.5), (10.5, 2.5)), 6, 14, thickness=3.0)[0].max(axis=-1) > 0
  assert thick[1:4, 5].all() and not thick[0, 5] and not thick[4, 5]


def test_confidence_zero_draws_nothing():
  assert not draw_pose_maps(_one_limb((2.5, 2.5), (10.5, 2.5), 0.0, 0.0), 6, 14).any()
  one_end = draw_pose_maps(_one_limb((2.5, 2.5), (10.5, 2.5), 1.0, 0.0), 6, 14)[0].max(axis=-1) > 0
  assert one_end[2, 2] and one_end.sum() == 1  # only the confident keypoint's dot, no limb
  rng = np.random.default_rng(0)
  poses = np.concatenate([rng.uniform(0, 16, (3, 2, NUM_KEYPOINTS, 2)), np.zeros((3, 2, NUM_KEYPOINTS, 1))], -1)
  assert not draw_pose_maps(poses, 16, 16).any()


def test_lit_pixels_lie_on_the_limb():
  a, b = np.array([1.2, 3.7]), np.array([13.1, 9.4])
  maps = draw_pose_maps(_one_limb(a, b), 16, 16)[0]
  v, u = np.mgrid[0:16, 0:16] + 0.5
  pix = np.stack([u, v], -1)
  s = np.clip(((pix - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
  dist = np.linalg.norm(pix - a - s[..., None] * (b - a), axis=-1)
  lit = maps.max(axis=-1) > 0
  assert lit[dist < 0.45].all()  # a connected line ...
  assert (dist[lit] <= 0.75 + 1e-9).all()  # ... that strays no farther than a dot's radius


def test_the_map_does_not_depend_on_the_order_of_the_persons():
  rng = np.random.default_rng(1)
  # Keypoints on pixel centres: limbs of different persons meet at equal distances (exact ties).
  poses = np.concatenate([rng.integers(3, 13, (4, 3, NUM_KEYPOINTS, 2)) + 0.5,
                          (rng.uniform(size=(4, 3, NUM_KEYPOINTS, 1)) > 0.2).astype(np.float64)], axis=-1)
  maps = draw_pose_maps(poses, 16, 16)
  assert (maps.max(axis=-1) > 0).mean() > 0.2  # crowded: limbs of different persons overlap
  for order in ([2, 0, 1], [1, 2, 0]):
    np.testing.assert_array_equal(draw_pose_maps(poses[:, order], 16, 16), maps)
  assert maps.min() >= 0 and maps.max() <= 1
  assert not draw_pose_maps(np.zeros((2, 0, NUM_KEYPOINTS, 3)), 8, 8).any()


def test_bad_input_raises():
  with pytest.raises(ValueError, match="poses must be"):
    draw_pose_maps(np.zeros((2, 1, 17, 3)), 8, 8)
  with pytest.raises(ValueError, match="NaN"):
    draw_pose_maps(np.full((1, 1, NUM_KEYPOINTS, 3), np.nan), 8, 8)
  with pytest.raises(ValueError, match="thickness"):
    draw_pose_maps(np.zeros((1, 1, NUM_KEYPOINTS, 3)), 8, 8, thickness=0.0)
