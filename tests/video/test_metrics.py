"""Video metrics on constructed arrays whose scores are known in closed form."""

import numpy as np
import pytest

from jaxlab.splat.fit import ssim
from jaxlab.video.metrics import (
    depth_errors,
    frames_after_crossing,
    normal_angle_error,
    video_psnr,
    video_ssim,
)


def _images(seed, shape=(2, 12, 12, 3)):
  return np.random.default_rng(seed).uniform(0.2, 0.8, shape)


# ----------------------------------------------------------------------------- PSNR, SSIM


def test_psnr_of_constant_offsets_is_the_mean_of_per_frame_values():
  target = _images(0)
  pred = target + np.array([0.1, 0.01])[:, None, None, None]  # MSE 1e-2 and 1e-4: 20 dB and 40 dB
  assert video_psnr(pred, target) == pytest.approx(30.0, abs=1e-6)
  assert video_psnr(target, target) == np.inf


def test_ssim_is_one_for_equal_videos_and_a_mean_over_frames():
  target = _images(1)
  assert video_ssim(target, target) == pytest.approx(1.0, abs=1e-6)
  pred = target.copy()
  pred[1] = _images(2)[1]
  other = float(ssim(pred[1].astype(np.float32), target[1].astype(np.float32)))
  assert other < 0.5
  assert video_ssim(pred, target) == pytest.approx((1.0 + other) / 2, abs=1e-5)


def test_appearance_metrics_reject_bad_input():
  target = _images(3)
  with pytest.raises(ValueError, match="pred in \\[0, 1\\].*decode_rgb"):
    video_psnr(2 * target - 1, target)
  with pytest.raises(ValueError, match="one shape"):
    video_ssim(target[:1], target)
  with pytest.raises(ValueError, match="NaN"):
    video_psnr(np.where(target > 0.7, np.nan, target), target)
  with pytest.raises(ValueError, match="\\[F, H, W, C\\]"):
    video_psnr(target[0], target[0])


# ----------------------------------------------------------------------------- depth


def _orthogonal_residual(rng, pred, scale=0.02):
  """A residual orthogonal to 1 and pred (so least squares recovers the exact line) that is 0 at argmin(pred)."""
  basis = np.stack([np.ones_like(pred), pred, np.eye(pred.size)[np.argmin(pred)]], axis=1)
  q, _ = np.linalg.qr(basis)
  r = rng.standard_normal(pred.size)
  return scale * (r - q @ (q.T @ r))


def test_depth_errors_closed_form():
  rng = np.random.default_rng(4)
  pred = rng.uniform(0.0, 1.0, (2, 4, 5))
  aligned = 0.6 * pred + 0.2  # inverse depth after the exact fit, in 1/m
  inverse_target = aligned + _orthogonal_residual(rng, pred.ravel()).reshape(pred.shape)
  target = 1.0 / inverse_target
  d = 1.0 / aligned
  result = depth_errors(pred, target)
  assert result["scale"] == pytest.approx(0.6, rel=1e-9)
  assert result["shift"] == pytest.approx(0.2, rel=1e-9)
  assert result["abs_rel"] == pytest.approx(np.mean(np.abs(d - target) / target), rel=1e-9)
  assert result["rmse"] == pytest.approx(np.sqrt(np.mean((d - target) ** 2)), rel=1e-9)
  assert result["delta1"] == pytest.approx(np.mean(np.maximum(d / target, target / d) < 1.25))
  assert 0 < result["abs_rel"] < 0.5 and result["rmse"] > 0


def test_depth_errors_are_invariant_to_scale_and_shift_of_the_prediction():
  rng = np.random.default_rng(5)
  target = rng.uniform(1.0, 6.0, (3, 4, 4))
  exact = depth_errors(2.5 * (1.0 / target) - 0.3, target)
  assert exact["abs_rel"] == pytest.approx(0.0, abs=1e-9)
  assert exact["rmse"] == pytest.approx(0.0, abs=1e-9)
  assert exact["delta1"] == 1.0
  pred = 1.0 / target + rng.normal(0.0, 0.05, target.shape)
  base = depth_errors(pred, target)
  moved = depth_errors(7.0 * pred - 3.0, target)
  for key in ("abs_rel", "rmse", "delta1"):
    assert moved[key] == pytest.approx(base[key], rel=1e-7, abs=1e-12)
  assert base["abs_rel"] > 0.01


def test_depth_errors_mask_and_clamp():
  rng = np.random.default_rng(6)
  target = rng.uniform(1.0, 4.0, (2, 3, 3))
  pred = 1.0 / target
  mask = np.ones(target.shape, bool)
  mask[1, 2] = False
  garbage = pred.copy()
  garbage[1, 2] = 50.0  # ignored under the mask
  assert depth_errors(garbage, target, mask_fhw=mask)["abs_rel"] == pytest.approx(0.0, abs=1e-9)
  assert depth_errors(garbage, target)["abs_rel"] > 0.05
  # A fit whose line goes below zero at some pixel still gives finite errors (the clamp).
  pred = np.array([0, 0, 0, 1, 1, 1, 2], float).reshape(1, 1, 7)
  target = np.array([1, 1, 1, 4, 4, 4, 4], float).reshape(1, 1, 7)
  scale, shift = np.polyfit(pred.ravel(), 1.0 / target.ravel(), 1)
  assert scale * 2 + shift <= 0  # precondition of this case
  result = depth_errors(pred, target)
  assert all(np.isfinite(v) for v in result.values())
  # Clamped to the farthest target depth (4 m), the last pixel is exact; the others follow the line.
  d = 1.0 / np.maximum(scale * pred.ravel() + shift, 0.25)
  assert d[-1] == pytest.approx(4.0)
  assert result["abs_rel"] == pytest.approx(np.mean(np.abs(d - target.ravel()) / target.ravel()), rel=1e-9)


def test_depth_errors_reject_bad_input():
  target = np.full((2, 3, 3), 2.0)
  with pytest.raises(ValueError, match="target depth > 0"):
    depth_errors(target, target - 2.0)
  with pytest.raises(ValueError, match="one shape"):
    depth_errors(target[:1], target)
  with pytest.raises(ValueError, match="selects no pixel"):
    depth_errors(target, target, mask_fhw=np.zeros((2, 3, 3), bool))
  with pytest.raises(ValueError, match="NaN"):
    depth_errors(np.full((2, 3, 3), np.nan), target)


# ----------------------------------------------------------------------------- normals


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotated_field(seed):
  """Unit normals [2, 3, 4, 3] and predictions tilted by exactly 5, 20 or 40 degrees (8 pixels each)."""
  rng = np.random.default_rng(seed)
  n = _unit(rng.standard_normal((2, 3, 4, 3)))
  u = _unit(np.cross(n, rng.standard_normal(n.shape)))  # a unit direction perpendicular to n
  angle = np.radians(np.repeat([5.0, 20.0, 40.0], 8).reshape(2, 3, 4))[..., None]
  return np.cos(angle) * n + np.sin(angle) * u, n


def test_normal_angles_of_a_rotated_field():
  pred, target = _rotated_field(7)
  result = normal_angle_error(pred, target)
  assert result["mean"] == pytest.approx(65.0 / 3, abs=1e-5)
  assert result["median"] == pytest.approx(20.0, abs=1e-5)
  assert result["under_11_25"] == pytest.approx(1 / 3)
  assert result["under_22_5"] == pytest.approx(2 / 3)
  assert result["under_30"] == pytest.approx(2 / 3)
  # Length does not matter; the mask selects the 5-degree pixels (the first 8 of frame 0).
  mask = np.zeros((2, 3, 4), bool)
  mask.reshape(-1)[:8] = True
  assert normal_angle_error(3.0 * pred, target, mask)["mean"] == pytest.approx(5.0, abs=1e-5)
  # A zero prediction is 90 degrees off; the opposite normal 180.
  assert normal_angle_error(np.zeros_like(target), target)["mean"] == pytest.approx(90.0)
  assert normal_angle_error(-target, target)["mean"] == pytest.approx(180.0, abs=1e-4)


def test_normal_angle_error_rejects_bad_input():
  pred, target = _rotated_field(8)
  with pytest.raises(ValueError, match="unit target normals"):
    normal_angle_error(pred, 0.1 * target)
  with pytest.raises(ValueError, match="\\[F, H, W, 3\\]"):
    normal_angle_error(pred[..., :2], target[..., :2])
  with pytest.raises(ValueError, match="mask as \\[F, H, W\\]"):
    normal_angle_error(pred, target, np.ones((2, 3), bool))


# ----------------------------------------------------------------------------- crossings


def _blobs(xs_per_identity, width=16, height=6):
  """Masks with a 2 x 3 blob per identity whose left column in frame f is xs[f] (None: absent)."""
  num_frames = len(xs_per_identity[0])
  masks = np.zeros((num_frames, height, width), np.int32)
  for identity, xs in enumerate(xs_per_identity, start=1):
    for f, x in enumerate(xs):
      if x is not None:
        masks[f, identity:identity + 2, x:x + 3] = identity
  return masks


def test_crossing_of_two_moving_blobs():
  masks = _blobs([[1, 3, 5, 7, 9, 11], [11, 9, 7, 5, 3, 1]])
  # Centroids equal at frame 2.5; identity 1 is right of identity 2 from frame 3 on.
  np.testing.assert_array_equal(frames_after_crossing(masks), [0, 0, 0, 1, 1, 1])
  # Crossing back does not clear it; a blob that never moves past another crosses nothing.
  back = _blobs([[1, 3, 9, 4, 2, 1], [11, 9, 7, 8, 9, 11]])
  np.testing.assert_array_equal(frames_after_crossing(back), [0, 0, 1, 1, 1, 1])
  still = _blobs([[1, 2, 3, 4, 5, 6], [11, 11, 11, 11, 11, 11], [13, 13, 13, 13, 13, 13]])
  assert not frames_after_crossing(still).any()


def test_crossing_uses_the_first_frame_both_are_visible_and_skips_specks():
  masks = _blobs([[None, None, 1, 5, 9, 12], [8, 8, 8, 8, 8, 8]])
  np.testing.assert_array_equal(frames_after_crossing(masks), [0, 0, 0, 0, 1, 1])
  # Identity 2 hidden in frame 2 but for a 1-pixel speck left of identity 1: not a crossing.
  masks = _blobs([[4, 4, 4, 4], [10, 10, 10, 10]])
  masks[2][masks[2] == 2] = 0
  masks[2, 0, 0] = 2
  assert not frames_after_crossing(masks).any()
  assert frames_after_crossing(masks, min_pixels=1)[2:].all()
  with pytest.raises(ValueError, match="\\[F, H, W\\]"):
    frames_after_crossing(masks[0])
  with pytest.raises(ValueError, match="integer"):
    frames_after_crossing(masks.astype(np.float32))

