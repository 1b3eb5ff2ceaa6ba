"""Merge-and-halve: V3DG's initial simplification of a group of Gaussians to about half.

The group is split into 8 octants at its per-axis median positions; in each octant the
Gaussians are ranked by importance = opacity * (s_x * s_y * s_z)^(2/3) (opacity times the
area of a sphere of the same volume) and the top floor(k / 2) + 1 are kept, their scales
grown by 2^(1/6) (their volume doubled) to fill in for the dropped half.
"""

import math

import numpy as np

# log(2^(1/6)): added to log-scales, i.e. scales x 2^(1/6), volume x sqrt(2).
LOG_SCALE_GROWTH = math.log(2.0) / 6.0


def importance(log_scales_n3: np.ndarray, opacity_logits_n: np.ndarray) -> np.ndarray:
  """[N] opacity * (s_x * s_y * s_z)^(2/3), computed in log space for very small scales."""
  opacities = 1.0 / (1.0 + np.exp(-np.asarray(opacity_logits_n, np.float64)))
  return opacities * np.exp((2.0 / 3.0) * np.sum(np.asarray(log_scales_n3, np.float64), axis=-1))


def octants(means_n3: np.ndarray) -> np.ndarray:
  """[N] octant 0..7 of each point: bit a is set where coordinate a exceeds the axis median."""
  means_n3 = np.asarray(means_n3, np.float64)
  above_n3 = means_n3 > np.median(means_n3, axis=0)
  return above_n3 @ np.array([1, 2, 4])


def halve_indices(means_n3: np.ndarray, log_scales_n3: np.ndarray, opacity_logits_n: np.ndarray) -> np.ndarray:
  """Sorted indices of the Gaussians kept: the floor(k/2) + 1 most important of each octant."""
  octant_n = octants(means_n3)
  score_n = importance(log_scales_n3, opacity_logits_n)
  kept = []
  for octant in range(8):
    members = np.flatnonzero(octant_n == octant)
    if members.size:
      # Stable order on ties: the earlier Gaussian wins, so the result is deterministic.
      ranked = members[np.argsort(-score_n[members], kind="stable")]
      kept.append(ranked[: members.size // 2 + 1])
  return np.sort(np.concatenate(kept))


def max_halved_size(num: int) -> int:
  """The most Gaussians `halve_indices` can keep from `num` (one extra per non-empty octant)."""
  return num // 2 + 8
