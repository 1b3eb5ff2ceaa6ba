"""Tests for `jaxlab.camera.tokenizer`: layout, round trip within a bin, invariances, 10** scale, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.camera import tokenizer as tk
from jaxlab.camera import trajectory as tj

_QT_BIN = 2 / 256  # width of a quaternion / translation bin
_SCALE_SLOTS = slice(9, None, 10)  # the scale token of every pose


def _axis_angle(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _trajectory(seed, n=120, speed=0.3):
  """A wandering camera: random smooth angular and linear velocities."""
  rng = np.random.default_rng(seed)
  c2w = np.tile(np.eye(4), (n, 1, 1))
  rot = _axis_angle(rng.normal(size=3), rng.uniform(0, np.pi))
  omega, vel = rng.normal(size=3), rng.normal(size=3)
  pos = rng.normal(size=3) * 5
  for i in range(n):
    omega += 0.1 * rng.normal(size=3)
    vel += 0.2 * rng.normal(size=3)
    rot = rot @ _axis_angle(omega, 0.02 * np.linalg.norm(omega))
    pos = pos + speed * vel / 10
    c2w[i, :3, :3], c2w[i, :3, 3] = rot, pos
  return c2w


def _rotation_angle(r_a, r_b):
  cos = (np.trace(np.swapaxes(r_a, -1, -2) @ r_b, axis1=-2, axis2=-1) - 1) / 2
  return np.arccos(np.clip(cos, -1, 1))


def test_constants():
  assert (tk.PAD, tk.BOS, tk.EOS, tk.OFFSET) == (0, 1, 2, 3)
  assert (tk.VOCAB_SIZE, tk.NUM_POSES, tk.VALUES_PER_POSE, tk.POSE_TOKENS, tk.NUM_BINS) == (260, 30, 10, 300, 256)


def test_select_poses_takes_every_fourth_frame_and_needs_117():
  c2w = _trajectory(0)
  c2w[:, 0, 3] = np.arange(120)  # label frames by their x position
  assert tk.select_poses(c2w)[:, 0, 3].tolist() == list(range(0, 117, 4))
  assert tk.select_poses(c2w[:117]).shape == (30, 4, 4)
  with pytest.raises(tj.TrajectoryError, match="116 frames, at least 117"):
    tk.select_poses(c2w[:116])
  with pytest.raises(tj.TrajectoryError, match="at least 117"):
    tk.encode(c2w[:100], 500.0, 500.0, 512, 288)


def test_normalize_is_relative_to_pose_0_with_unit_max_translation():
  poses = tk.select_poses(_trajectory(1))
  rel, scale = tk.normalize(poses)
  np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
  assert np.linalg.norm(rel[:, :3, 3], axis=1).max() == pytest.approx(1 - 1e-5 / scale, abs=1e-12)
  # Undo: c2w_0 @ (rel with translations times s) gives the poses back.
  back = rel.copy()
  back[:, :3, 3] *= scale
  np.testing.assert_allclose(poses[0] @ back, poses, atol=1e-9)
  same, one = tk.normalize(poses, enabled=False)
  np.testing.assert_array_equal(same, poses)
  assert one == 1.0


def test_round_trip_within_a_bin():
  c2w = _trajectory(2)
  fl_x, fl_y, width, height = 642.345, 600.0, 512, 208
  tokens = tk.encode(c2w, fl_x, fl_y, width, height)
  assert tokens.shape == (300,) and tokens.dtype == np.int32
  assert tokens.min() >= tk.OFFSET and tokens.max() <= tk.OFFSET + 256
  dec_c2w, focal, scale = tk.decode(tokens)
  rel, true_scale = tk.normalize(tk.select_poses(c2w))
  # Scale: within one log10 bin (4 / 256 decades) below the truth (bins decode to their left edge).
  assert true_scale * 10 ** (-4 / 256) <= scale <= true_scale * (1 + 1e-12)
  # Normalized translations within one bin (2 / 256) per component.
  t_err = np.abs(dec_c2w[:, :3, 3] / scale - rel[:, :3, 3])
  assert t_err.max() < _QT_BIN
  # Metric translations: the bin error times the scale, plus the scale's own bin error.
  scale_err = 1 - 10 ** (-4 / 256)
  np.testing.assert_array_less(np.abs(dec_c2w[:, :3, 3] - true_scale * rel[:, :3, 3]),
                               (_QT_BIN + scale_err) * true_scale)
  # Rotations: each quaternion component within a bin, so within ~2 degrees.
  rot = dec_c2w[:, :3, :3]
  np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (30, 3, 3)), atol=1e-12)
  assert _rotation_angle(rot, rel[:, :3, :3]).max() < 0.035
  # Focal ratios fx / W, fy / H within a bin of width 10 / 256, from below.
  err = np.array([fl_x / width, fl_y / height])[None] - focal
  assert focal.shape == (30, 2) and (err >= 0).all() and (err < 10 / 256).all()
  assert tokens[7] == tk.OFFSET + int(fl_x / width / 10 * 256)  # 642.345 / 512 = 1.2546 -> bin 32


def test_tokens_invariant_to_a_rigid_motion_of_the_world():
  c2w = _trajectory(3)
  tokens = tk.encode(c2w, 500.0, 500.0, 512, 288)
  world = np.eye(4)
  world[:3, :3] = _axis_angle([0.2, -1.0, 0.7], 2.1)
  world[:3, 3] = [30.0, -12.0, 4.5]
  moved = tk.encode(world @ c2w, 500.0, 500.0, 512, 288)
  assert np.abs(moved.astype(int) - tokens).max() <= 1
  assert np.mean(moved == tokens) > 0.95


def test_scaling_positions_changes_only_the_scale_tokens():
  c2w = _trajectory(4)
  tokens = tk.encode(c2w, 500.0, 500.0, 512, 288).astype(int)
  bigger = c2w.copy()
  bigger[:, :3, 3] *= 7.3
  scaled = tk.encode(bigger, 500.0, 500.0, 512, 288).astype(int)
  keep = np.ones(300, bool)
  keep[_SCALE_SLOTS] = False
  assert np.abs(scaled[keep] - tokens[keep]).max() <= 1
  assert np.mean(scaled[keep] == tokens[keep]) > 0.95
  # log10(7.3) = 0.863 decades = 55.3 bins of 4 / 256 decades.
  shift = scaled[_SCALE_SLOTS] - tokens[_SCALE_SLOTS]
  assert set(shift.tolist()) <= {55, 56}


def test_decode_scale_is_a_power_of_ten_not_exp():
  tokens = np.full(300, tk.OFFSET + 128, np.int32)
  tokens[0::10] = tk.OFFSET + 256  # qw = 1: identity rotations
  tokens[4::10] = tk.OFFSET + 256  # tx = 1
  tokens[9::10] = tk.OFFSET + 192  # (192 / 256) * 4 - 2 = 1  ->  s = 10 (exp would give e)
  c2w, _, scale = tk.decode(tokens)
  assert scale == pytest.approx(10.0, rel=1e-12)
  np.testing.assert_allclose(c2w[:, :3, 3], np.broadcast_to([10.0, 0, 0], (30, 3)), atol=1e-12)
  np.testing.assert_allclose(c2w[:, :3, :3], np.broadcast_to(np.eye(3), (30, 3, 3)), atol=1e-12)
  # Through the encoder: a trajectory spanning 50 units comes back near 50, not near exp(1.69) = 5.4.
  c2w = np.tile(np.eye(4), (120, 1, 1))
  c2w[:, 2, 3] = np.linspace(0, 50, 120)
  _, _, scale = tk.decode(tk.encode(c2w, 500.0, 500.0, 512, 512))
  assert 50 * 10 ** (-4 / 256) <= scale <= 50


def test_no_normalization_ablation():
  c2w = np.tile(np.eye(4), (120, 1, 1))
  c2w[:, :3, 3] = [0.5, -0.25, 0.0]  # a static camera away from the origin
  plain = tk.encode(c2w, 500.0, 500.0, 512, 512, normalize=False)
  assert (plain[_SCALE_SLOTS] == tk.OFFSET + 128).all()  # s = 1: log10 s = 0 sits mid-range
  np.testing.assert_array_equal(plain[4:7], tk.OFFSET + np.array([192, 96, 128]))  # raw translations
  normed = tk.encode(c2w, 500.0, 500.0, 512, 512)
  np.testing.assert_array_equal(normed[4:7], tk.OFFSET + 128)  # relative to pose 0: no translation
  assert normed[9] == tk.OFFSET  # s = 1e-5 clips to the lowest bin


def test_training_sequence():
  tokens = tk.encode(_trajectory(5), 500.0, 500.0, 512, 288)
  inputs, targets = tk.training_sequence(tokens)
  assert inputs.shape == targets.shape == (301,) and inputs.dtype == targets.dtype == np.int32
  assert inputs[0] == tk.BOS and targets[-1] == tk.EOS
  np.testing.assert_array_equal(inputs[1:], tokens)
  np.testing.assert_array_equal(targets[:-1], tokens)


def test_bad_tokens_and_intrinsics():
  good = tk.encode(_trajectory(6), 500.0, 500.0, 512, 288)
  for bad_value, position in ((tk.EOS, 17), (tk.OFFSET + 257, 250)):
    bad = good.copy()
    bad[position] = bad_value
    with pytest.raises(tj.TrajectoryError, match=rf"token {bad_value} at position {position}"):
      tk.decode(bad)
    with pytest.raises(tj.TrajectoryError, match=rf"position {position}"):
      tk.training_sequence(bad)
  with pytest.raises(tj.TrajectoryError, match="300 pose tokens"):
    tk.decode(good[:299])
  with pytest.raises(tj.TrajectoryError, match="integers"):
    tk.decode(good.astype(np.float32))
  zero_q = good.copy()
  zero_q[20:24] = tk.OFFSET + 128
  with pytest.raises(tj.TrajectoryError, match="pose 2: quaternion"):
    tk.decode(zero_q)
  with pytest.raises(tj.TrajectoryError, match="width"):
    tk.encode(_trajectory(6), 500.0, 500.0, 0, 288)
  with pytest.raises(tj.TrajectoryError, match="fl_x"):
    tk.encode(_trajectory(6), float("nan"), 500.0, 512, 288)
  nan = _trajectory(6)
  nan[40, 1, 3] = np.nan
  with pytest.raises(tj.TrajectoryError, match="frame 40"):
    tk.encode(nan, 500.0, 500.0, 512, 288)
