"""Balanced bin sampling: equal quotas, carried quota, the eligible range, determinism; frame-pair choice."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.spatial import geometry, sampling


def _values_per_bin(counts, low=0.0, width=0.1, seed=0):
  """Values with counts[b] items strictly inside bin b, shuffled; and each item's bin."""
  rng = np.random.default_rng(seed)
  values, bins = [], []
  for b, c in enumerate(counts):
    values.append(low + width * (b + rng.uniform(0.05, 0.95, size=c)))
    bins.append(np.full(c, b))
  values, bins = np.concatenate(values), np.concatenate(bins)
  order = rng.permutation(len(values))
  return values[order], bins[order]


def _sample(values, total, seed=0, low=0.0, high=1.0, width=0.1):
  return sampling.balanced_bin_sample(values, low=low, high=high, bin_width=width, total=total,
                                      rng=np.random.default_rng(seed))


def test_equal_quota_per_bin():
  values, bins = _values_per_bin([20] * 10)
  picked = _sample(values, 50)
  assert len(picked) == 50 and len(set(picked.tolist())) == 50
  np.testing.assert_array_equal(np.bincount(bins[picked], minlength=10), [5] * 10)


def test_remainder_goes_to_the_lowest_bins():
  values, bins = _values_per_bin([20] * 10)
  picked = _sample(values, 53)
  np.testing.assert_array_equal(np.bincount(bins[picked], minlength=10), [6, 6, 6] + [5] * 7)


def test_sparse_bin_gives_all_and_carries_the_rest():
  counts = [2, 20, 20, 20, 1, 20, 20, 20, 20, 20]
  values, bins = _values_per_bin(counts)
  picked = _sample(values, 50)
  per_bin = np.bincount(bins[picked], minlength=10)
  assert len(picked) == 50
  assert per_bin[0] == 2 and per_bin[4] == 1  # sparse bins give everything they have
  assert per_bin.sum() == 50  # their unused quota (3 + 4) is taken up by a later bin
  assert sorted(per_bin[[1, 2, 3, 5, 6, 7, 8, 9]].tolist()) == [5] * 7 + [12]


def test_sparse_top_bin_still_fills_the_total():
  values, bins = _values_per_bin([20] * 9 + [1])
  picked = _sample(values, 50)
  per_bin = np.bincount(bins[picked], minlength=10)
  assert per_bin[9] == 1 and len(picked) == 50


def test_empty_bins_pass_their_quota_on():
  values, bins = _values_per_bin([0, 30, 0, 30, 0, 0, 30, 0, 0, 0])
  picked = _sample(values, 30)
  per_bin = np.bincount(bins[picked], minlength=10)
  assert len(picked) == 30
  assert per_bin[[1, 3, 6]].sum() == 30
  assert per_bin[[1, 3, 6]].min() >= 3  # each keeps at least its own quota


def test_out_of_range_values_are_never_picked():
  rng = np.random.default_rng(1)
  values = np.concatenate([rng.uniform(-1.0, 2.0, size=300), [np.nan, np.inf, -np.inf]])
  eligible = (values >= 0.2) & (values <= 0.5)
  for seed in range(5):
    picked = _sample(values, 1000, seed=seed, low=0.2, high=0.5, width=0.05)
    assert np.all(eligible[picked])
    # asking for more than there is returns every eligible item once
    np.testing.assert_array_equal(np.sort(picked), np.flatnonzero(eligible))


def test_range_ends_are_inclusive():
  values = np.array([0.06, 0.35, 0.0599, 0.3501, 0.07])
  picked = _sample(values, 10, low=0.06, high=0.35, width=0.01)
  np.testing.assert_array_equal(picked, [0, 1, 4])


def test_deterministic_for_a_seed():
  values, _ = _values_per_bin([50] * 10)
  a = _sample(values, 40, seed=7)
  b = _sample(values, 40, seed=7)
  np.testing.assert_array_equal(a, b)
  others = [_sample(values, 40, seed=s) for s in range(8, 12)]
  assert any(not np.array_equal(a, o) for o in others)


def test_zero_total_and_no_values():
  values, _ = _values_per_bin([5] * 10)
  assert len(_sample(values, 0)) == 0
  assert len(_sample(np.zeros(0), 10)) == 0


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="bin_width"):
    _sample(np.ones(3), 2, width=0.0)
  with pytest.raises(ValueError, match="low <= high"):
    _sample(np.ones(3), 2, low=1.0, high=0.0)
  with pytest.raises(ValueError, match="1-D"):
    _sample(np.ones((3, 2)), 2)


def _masks_with_overlaps(n_frames=8, n_points=400, seed=0):
  """Frames seeing sliding windows of a strip of points, so pair overlaps range from 0 to high."""
  rng = np.random.default_rng(seed)
  masks = []
  for f in range(n_frames):
    m = np.zeros(n_points, bool)
    start = int(rng.integers(0, n_points - 100))
    m[start:start + 100] = True
    masks.append(m)
  return masks


def test_select_frame_pairs_keeps_overlaps_in_range():
  masks = _masks_with_overlaps()
  all_pairs = {(i, j): geometry.overlap(masks[i], masks[j]) for i in range(8) for j in range(i + 1, 8)}
  in_range = {p for p, o in all_pairs.items() if 0.06 <= o <= 0.35}
  assert in_range and len(in_range) < len(all_pairs)  # the fixture has pairs on both sides
  chosen = sampling.select_frame_pairs(masks, num_pairs=100, rng=np.random.default_rng(0))
  assert {(i, j) for i, j, _ in chosen} == in_range
  for i, j, o in chosen:
    assert i < j and o == pytest.approx(all_pairs[(i, j)])
  few = sampling.select_frame_pairs(masks, num_pairs=2, rng=np.random.default_rng(0))
  assert len(few) == 2 and {(i, j) for i, j, _ in few} <= in_range


def test_select_frame_pairs_empty_when_nothing_in_range():
  same = [np.ones(50, bool)] * 3  # every pair overlaps fully
  assert sampling.select_frame_pairs(same, num_pairs=5, rng=np.random.default_rng(0)) == []
  assert sampling.select_frame_pairs(same[:1], num_pairs=5, rng=np.random.default_rng(0)) == []
  blind = [np.zeros(50, bool)] * 3  # nothing seen: overlap 0
  assert sampling.select_frame_pairs(blind, num_pairs=5, rng=np.random.default_rng(0)) == []
