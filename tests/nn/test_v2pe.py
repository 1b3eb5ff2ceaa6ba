"""V2PE positions: delta 1 is arange bit for bit, a hand-worked example, a literal loop, left padding."""

import math
from fractions import Fraction

import jax
import numpy as np
import pytest

from jaxlab.nn import V2PE_DELTAS, sample_deltas, v2pe_position_ids, v2pe_position_ids_batch


def _loop_reference(is_visual, image_index, deltas):
  """The rule stated token by token, in exact fractions."""
  positions = []
  for t, visual in enumerate(is_visual):
    if t == 0:
      p = Fraction(0)
    elif visual:
      p = positions[-1] + Fraction(deltas[image_index[t]])
    else:
      p = Fraction(math.ceil(positions[-1]) + 1)
    positions.append(p)
  return positions


def _random_layout(rng, length, num_images):
  """Text with num_images runs of visual tokens, some adjacent, possibly one at the start."""
  is_visual = np.zeros(length, bool)
  image_index = np.full(length, -1)
  starts = np.sort(rng.choice(length - 8, size=num_images, replace=False))
  for k, start in enumerate(starts):
    run = int(rng.integers(1, 8))
    is_visual[start : start + run] = True
    image_index[start : start + run] = k  # later runs may overwrite: indices stay valid
  return is_visual, image_index


def test_delta_one_is_arange_bit_for_bit():
  rng = np.random.default_rng(0)
  for length in (1, 10, 300, 70_000):  # past 2**16 too
    is_visual, image_index = _random_layout(rng, max(length, 16), 5) if length > 1 else (np.array([True]), [0])
    deltas = [1.0] * 5
    positions = v2pe_position_ids(is_visual, image_index, deltas)
    assert positions.dtype == np.float32
    expected = np.arange(len(is_visual), dtype=np.float32)
    np.testing.assert_array_equal(positions.view(np.uint32), expected.view(np.uint32))


def test_hand_worked_two_images():
  # text, <img>, 3 visual (delta 1/2), </img>, text, <img>, 5 visual (delta 1/4), </img>, text
  is_visual = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0], bool)
  image_index = np.array([-1, -1, 0, 0, 0, -1, -1, -1, 1, 1, 1, 1, 1, -1, -1])
  # 0, 1; then 1 + 0.5k; </img> at ceil(2.5) + 1 = 4; 5, 6; then 6 + 0.25k; </img> at ceil(7.25) + 1 = 9; 10.
  expected = [0, 1, 1.5, 2, 2.5, 4, 5, 6, 6.25, 6.5, 6.75, 7, 7.25, 9, 10]
  np.testing.assert_array_equal(v2pe_position_ids(is_visual, image_index, [0.5, 0.25]), np.float32(expected))
  # A run ending on a whole number: ceil leaves it, the next text is one further.
  exact = v2pe_position_ids(np.array([0, 1, 1, 0], bool), np.array([-1, 0, 0, -1]), [0.5])
  np.testing.assert_array_equal(exact, np.float32([0, 0.5, 1, 2]))


def test_leading_visual_token_starts_at_zero():
  positions = v2pe_position_ids(np.array([1, 1, 1, 0, 0], bool), np.array([0, 0, 0, -1, -1]), [0.5])
  np.testing.assert_array_equal(positions, np.float32([0, 0.5, 1, 2, 3]))


def test_matches_the_literal_rule_on_random_layouts():
  rng = np.random.default_rng(1)
  for trial in range(40):
    num_images = int(rng.integers(1, 6))
    is_visual, image_index = _random_layout(rng, int(rng.integers(12, 80)), num_images)
    deltas = [V2PE_DELTAS[int(k)] for k in rng.integers(0, len(V2PE_DELTAS), size=num_images)]
    expected = np.array([float(p) for p in _loop_reference(is_visual, image_index, deltas)], np.float32)
    np.testing.assert_array_equal(v2pe_position_ids(is_visual, image_index, deltas), expected, err_msg=str(trial))


def test_batch_with_left_padding():
  rows = [
      (np.array([0, 1, 1, 0, 0], bool), np.array([-1, 0, 0, -1, -1]), [0.25]),
      (np.array([0, 0, 1, 1, 1, 0, 0], bool), np.array([-1, -1, 0, 0, 0, -1, -1]), [0.5]),
      (np.array([0, 0, 0], bool), np.array([-1, -1, -1]), []),
  ]
  length = 8
  is_visual_bt = np.zeros((3, length), bool)
  image_index_bt = np.full((3, length), -1)
  mask_bt = np.zeros((3, length), np.int32)
  for b, (vis, idx, _) in enumerate(rows):
    is_visual_bt[b, length - len(vis) :] = vis
    image_index_bt[b, length - len(vis) :] = idx
    mask_bt[b, length - len(vis) :] = 1
  positions = v2pe_position_ids_batch(is_visual_bt, image_index_bt, [r[2] for r in rows], mask_bt)
  assert positions.shape == (3, length) and positions.dtype == np.float32
  for b, (vis, idx, deltas) in enumerate(rows):
    pad = length - len(vis)
    np.testing.assert_array_equal(positions[b, :pad], 0.0)
    assert positions[b, pad] == 0.0
    np.testing.assert_array_equal(positions[b, pad:], v2pe_position_ids(vis, idx, deltas))
  np.testing.assert_array_equal(positions[0], np.float32([0, 0, 0, 0, 0.25, 0.5, 2, 3]))


@pytest.mark.parametrize("bad", [0.3, 2.0, 1 / 512, 0.0, -0.5])
def test_bad_delta_raises(bad):
  with pytest.raises(ValueError, match="deltas must hold deltas in"):
    v2pe_position_ids(np.array([0, 1], bool), np.array([-1, 0]), [bad])


def test_bad_layouts_raise():
  vis, idx = np.array([0, 1, 1, 0], bool), np.array([-1, 0, 1, -1])
  with pytest.raises(ValueError, match=r"lie in \[0, 1\)"):
    v2pe_position_ids(vis, idx, [0.5])
  with pytest.raises(ValueError, match="-1 on text"):
    v2pe_position_ids(vis, np.array([0, 0, 0, -1]), [0.5])
  with pytest.raises(ValueError, match="bool"):
    v2pe_position_ids(np.array([0, 1]), np.array([-1, 0]), [0.5])
  with pytest.raises(ValueError, match="shape"):
    v2pe_position_ids(vis, np.array([-1, 0]), [0.5])
  two = np.array([[0, 1], [0, 0]], bool), np.array([[-1, 0], [-1, -1]])
  with pytest.raises(ValueError, match="left padding"):
    v2pe_position_ids_batch(*two, [[1.0], []], np.array([[1, 1], [1, 0]]))
  with pytest.raises(ValueError, match="padding tokens must be text"):
    v2pe_position_ids_batch(*two, [[1.0], []], np.array([[0, 1], [0, 1]]) * np.array([[0, 0], [1, 1]]))
  with pytest.raises(ValueError, match="one delta sequence per row"):
    v2pe_position_ids_batch(*two, [[1.0]], np.ones((2, 2)))
  with pytest.raises(ValueError, match=r"deltas_b\[0\]"):
    v2pe_position_ids_batch(*two, [[0.3], []], np.ones((2, 2)))


def test_sample_deltas_is_uniform_over_the_set():
  draws = sample_deltas(np.random.default_rng(0), 1800)
  assert draws.dtype == np.float32 and draws.shape == (1800,)
  values, counts = np.unique(draws, return_counts=True)
  np.testing.assert_array_equal(values, np.float32(sorted(V2PE_DELTAS)))
  assert counts.min() > 140 and counts.max() < 260  # 200 expected each; ~4 sigma band
  np.testing.assert_array_equal(sample_deltas(np.random.default_rng(0), 1800), draws)
  key_draws = sample_deltas(jax.random.key(3), 900)
  assert set(key_draws.tolist()) == set(V2PE_DELTAS)
  np.testing.assert_array_equal(sample_deltas(jax.random.key(3), 900), key_draws)
  assert sample_deltas(np.random.default_rng(0), 0).shape == (0,)
  with pytest.raises(TypeError, match="Generator or a jax PRNG key"):
    sample_deltas(0, 3)
  with pytest.raises(ValueError, match="num_images"):
    sample_deltas(np.random.default_rng(0), -1)
