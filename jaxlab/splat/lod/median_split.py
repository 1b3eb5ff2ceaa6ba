"""Recursive median split: V3DG's way of cutting points into spatially compact clusters.

A part is split at the median of its longest bounding-box axis (points <= median go left,
the rest right) until it holds at most `max_size` points. It clusters Gaussians into LOD0
clusters and cluster centres into groups.
"""

import numpy as np


def median_split(points_n3: np.ndarray, max_size: int) -> list[np.ndarray]:
  """Index arrays of the leaves of the split, left before right (neighbours stay adjacent).

  Args:
    points_n3: [N, 3] positions, N >= 1.
    max_size: the largest leaf, >= 1.

  Returns:
    Leaves whose concatenation is a permutation of 0..N-1, each with 1..max_size indices.
  """
  points_n3 = np.asarray(points_n3, np.float64)
  if points_n3.ndim != 2 or points_n3.shape[1] != 3 or points_n3.shape[0] == 0:
    raise ValueError(f"median_split needs [N, 3] points with N >= 1; got shape {points_n3.shape}")
  if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1:
    raise ValueError(f"max_size must be an int >= 1; got {max_size!r}")
  leaves = []
  stack = [np.arange(points_n3.shape[0])]
  while stack:
    ids = stack.pop()
    if ids.size <= max_size:
      leaves.append(ids)
      continue
    part_n3 = points_n3[ids]
    axis = int(np.argmax(part_n3.max(axis=0) - part_n3.min(axis=0)))
    coords = part_n3[:, axis]
    left = coords <= np.median(coords)
    if left.all() or not left.any():
      # Ties at the median (e.g. coincident points): halve by rank so the split always progresses.
      order = np.argsort(coords, kind="stable")
      left = np.zeros(ids.size, bool)
      left[order[: ids.size // 2]] = True
    # Right is pushed first so that left is popped (and emitted) first.
    stack.append(ids[~left])
    stack.append(ids[left])
  return leaves
