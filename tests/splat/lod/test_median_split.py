"""The recursive median split partitions the points into compact leaves of bounded size."""

import numpy as np
import pytest

from jaxlab.splat.lod.median_split import median_split


@pytest.mark.parametrize("num,max_size", [(1, 4), (100, 7), (1000, 64), (513, 512)])
def test_leaves_partition_the_points_and_respect_the_size(num, max_size):
  points = np.random.default_rng(num).normal(size=(num, 3)) * [5.0, 1.0, 0.2]
  leaves = median_split(points, max_size)
  all_ids = np.concatenate(leaves)
  assert sorted(all_ids.tolist()) == list(range(num))
  assert all(1 <= leaf.size <= max_size for leaf in leaves)
  if num > max_size:
    assert min(leaf.size for leaf in leaves) > max_size // 4  # median halves keep leaves balanced


def test_first_split_is_across_the_longest_axis():
  points = np.random.default_rng(0).uniform(size=(64, 3)) * [1.0, 10.0, 1.0]
  left, right = median_split(points, 32)
  assert points[left, 1].max() <= points[right, 1].min()


def test_coincident_points_still_split():
  leaves = median_split(np.zeros((50, 3)), 8)
  assert all(leaf.size <= 8 for leaf in leaves)
  assert sum(leaf.size for leaf in leaves) == 50


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="max_size"):
    median_split(np.zeros((3, 3)), 0)
  with pytest.raises(ValueError, match=r"\[N, 3\]"):
    median_split(np.zeros((3, 2)), 4)
