"""Split 3D point tracks into rigid bodies (the object-movement subtasks sample points per body).

Two points on one rigid body keep their distance over time. For every pair of points the change of
their distance from one frame to the next is summed over the video (changes at or below `ignore_below`
are tracking noise and count as zero); average-linkage hierarchical clustering of that accumulated change,
cut at `threshold`, gives the bodies, as in the reference engine.

Visibility (the reference uses every track position, seen or not): a pair's distance is compared only
between frames where both points are visible, each such frame with the previous one where both were
visible (a rigid pair keeps its distance across a gap too). A pair compared in no two frames has no
evidence either way; it gets the distance `UNKNOWN_FACTOR * threshold`, above the cut, so points hidden
at complementary times are not called rigid together. Points never visible are left out.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

UNKNOWN_FACTOR = 2.0


def accumulated_distance_change(points_tn3, visible_tn, *, ignore_below: float = 0.01) -> np.ndarray:
  """Per pair (condensed, scipy `pdist` order) the summed |distance change| between co-visible frames.

  Each frame where both points are visible is compared with the previous such frame; changes at or below
  `ignore_below` add nothing. NaN for pairs visible together in fewer than two frames.
  """
  points = np.asarray(points_tn3, np.float64)
  visible = np.asarray(visible_tn, bool)
  if points.ndim != 3 or points.shape[2] != 3:
    raise ValueError(f"points must have shape [T, N, 3], got {points.shape}")
  if visible.shape != points.shape[:2]:
    raise ValueError(f"visibility has shape {visible.shape}, expected {points.shape[:2]}")
  if not np.all(np.isfinite(points[visible])):
    raise ValueError("a visible track point is NaN or inf")
  # Hidden positions may be NaN; zero them, their pairs are masked out below.
  points = np.where(visible[..., None], points, 0.0)
  n = visible.shape[1]
  rows, cols = np.triu_indices(n, k=1)  # the pair order of pdist
  total = np.zeros(len(rows))
  last_dist = np.zeros(len(rows))
  seen_before = np.zeros(len(rows), bool)
  compared = np.zeros(len(rows), bool)
  for t in range(visible.shape[0]):
    both = visible[t, rows] & visible[t, cols]
    dist = pdist(points[t])
    now = both & seen_before
    change = np.abs(dist - last_dist)
    total += np.where(now & (change > ignore_below), change, 0.0)
    compared |= now
    last_dist = np.where(both, dist, last_dist)
    seen_before |= both
  return np.where(compared, total, np.nan)


def rigid_groups(points_tn3, visible_tn, *, ignore_below: float = 0.01, threshold: float = 0.1,
                 min_size: int = 6) -> list[np.ndarray]:
  """Point indices (int64, ascending) of each rigid body with at least `min_size` points.

  points_tn3: [T, N, 3] track positions (any fixed frame, e.g. world; only distances matter).
  visible_tn: bool [T, N]. Bodies are ordered by their smallest point index.
  """
  visible = np.asarray(visible_tn, bool)
  points = np.asarray(points_tn3, np.float64)
  if points.ndim != 3 or visible.shape != points.shape[:2]:
    raise ValueError(f"need points [T, N, 3] and visibility [T, N], got {points.shape} and {visible.shape}")
  seen_m = np.flatnonzero(visible.any(axis=0))
  if len(seen_m) == 0:
    return []
  if len(seen_m) == 1:
    return [seen_m.astype(np.int64)] if min_size <= 1 else []
  change = accumulated_distance_change(points[:, seen_m], visible[:, seen_m], ignore_below=ignore_below)
  change = np.where(np.isnan(change), UNKNOWN_FACTOR * threshold, change)
  # Exactly rigid tracks give many equal (zero) changes; scipy's average linkage can then return an
  # invalid tree (scipy issue 6785). Distinct offsets below 1e-9 m break the ties without moving any
  # distance across the threshold.
  change = change + 1e-9 * np.arange(len(change)) / max(len(change), 1)
  tree = linkage(change, method="average")
  labels_m = fcluster(tree, t=threshold, criterion="distance")
  groups = [seen_m[labels_m == label].astype(np.int64) for label in np.unique(labels_m)]
  groups = [g for g in groups if len(g) >= min_size]
  return sorted(groups, key=lambda g: int(g[0]))
