"""Merge-and-halve keeps the floor(k/2)+1 most important Gaussians of each octant."""

import math

import numpy as np

from jaxlab.splat.lod.halve import LOG_SCALE_GROWTH, halve_indices, importance, max_halved_size, octants


def test_keeps_the_most_important_half_plus_one_per_octant():
  rng = np.random.default_rng(0)
  means = rng.normal(size=(301, 3))
  log_scales = rng.normal(-3, 0.5, size=(301, 3))
  logits = rng.normal(size=301)
  kept = halve_indices(means, log_scales, logits)
  octant = octants(means)
  score = importance(log_scales, logits)
  for o in range(8):
    members = np.flatnonzero(octant == o)
    kept_here = np.intersect1d(kept, members)
    assert kept_here.size == members.size // 2 + 1
    dropped = np.setdiff1d(members, kept_here)
    assert score[kept_here].min() >= score[dropped].max()
  assert kept.size <= max_halved_size(301)


def test_importance_is_opacity_times_area_of_the_equal_volume_sphere():
  log_scales = np.log([[0.1, 0.2, 0.4]])
  value = importance(log_scales, np.array([0.0]))[0]
  assert math.isclose(value, 0.5 * (0.1 * 0.2 * 0.4) ** (2 / 3), rel_tol=1e-12)


def test_scale_growth_is_a_sixth_root_of_two_per_axis():
  assert math.isclose(math.exp(6 * LOG_SCALE_GROWTH), 2.0, rel_tol=1e-12)
