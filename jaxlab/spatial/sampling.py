"""Balanced sampling over value bins, and the choice of frame pairs by their view overlap.

The method keeps frame pairs whose overlap lies in a range and spreads the picks evenly over 1 % wide
bins of that range, so that rare overlaps are not drowned by common ones. Each bin gets an equal quota;
a bin that holds fewer items than its quota gives them all and passes the rest of its quota on.

Visiting order: bins are visited from the one holding the fewest items to the one holding the most
(ties by value, lowest first), as the reference engine does. With this order every unused quota ends up in
a bin that can still give, so the sample reaches `total` whenever that many items are eligible; visiting
by value instead would drop the quota of sparse bins at the top of the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Values within this fraction of a bin width below an edge count as on the edge (0.07 - 0.06 is not 0.01).
_EDGE_SLACK = 1e-9


def _bin_count(low: float, high: float, bin_width: float) -> int:
  return max(1, math.ceil((high - low) / bin_width - _EDGE_SLACK))


def balanced_bin_sample(values_n, *, low: float, high: float, bin_width: float, total: int,
                        rng: np.random.Generator) -> np.ndarray:
  """Indices (int64, ascending, no repeats, at most `total`) into `values_n`, spread evenly over bins.

  Only finite values in [low, high] are eligible. Bins of `bin_width` start at `low` (the value `high`
  falls in the last bin). Quota per bin = total // number_of_bins, the remainder going one each to the
  lowest-valued bins; unused quota carries to the next bin visited (see the module docstring for the
  order). Deterministic for a given `rng` state.
  """
  values = np.asarray(values_n, np.float64)
  if values.ndim != 1:
    raise ValueError(f"values must be 1-D, got shape {values.shape}")
  if not (np.isfinite(low) and np.isfinite(high) and low <= high):
    raise ValueError(f"need finite low <= high, got low={low}, high={high}")
  if not bin_width > 0:
    raise ValueError(f"bin_width must be positive, got {bin_width}")
  if total < 0:
    raise ValueError(f"total must be >= 0, got {total}")
  num_bins = _bin_count(low, high, bin_width)
  with np.errstate(invalid="ignore"):
    eligible = np.isfinite(values) & (values >= low) & (values <= high)
  index_e = np.flatnonzero(eligible)
  bin_e = np.floor((values[index_e] - low) / bin_width + _EDGE_SLACK).astype(np.int64)
  bin_e = np.clip(bin_e, 0, num_bins - 1)
  members = [index_e[bin_e == b] for b in range(num_bins)]

  quotas = np.full(num_bins, total // num_bins, np.int64)
  quotas[: total % num_bins] += 1
  order = sorted(range(num_bins), key=lambda b: (len(members[b]), b))

  picked = []
  carry = 0
  for b in order:
    want = int(quotas[b]) + carry
    items = members[b]
    if len(items) <= want:
      picked.append(items)
      carry = want - len(items)
    else:
      picked.append(rng.choice(items, size=want, replace=False))
      carry = 0
  if not picked:
    return np.zeros(0, np.int64)
  return np.sort(np.concatenate(picked).astype(np.int64))


def select_frame_pairs(visible_masks: Sequence[np.ndarray], *, num_pairs: int, rng: np.random.Generator,
                       low: float = 0.06, high: float = 0.35,
                       bin_width: float = 0.01) -> list[tuple[int, int, float]]:
  """Frame pairs (i, j, overlap) with i < j, balance-sampled by overlap (IoU of visible point sets).

  Returns at most `num_pairs` pairs in (i, j) order, or [] when no pair's overlap lies in [low, high]
  (the caller counts the skip).
  """
  masks = [np.asarray(m, bool) for m in visible_masks]
  if masks and any(m.shape != masks[0].shape or m.ndim != 1 for m in masks):
    raise ValueError("visible masks must all be 1-D and of the same length")
  if len(masks) < 2:
    return []
  # All IoUs at once: intersections from one matrix product, unions from the set sizes.
  masks_fn = np.stack(masks).astype(np.float32)
  inter_ff = masks_fn @ masks_fn.T
  sizes_f = masks_fn.sum(axis=1)
  rows, cols = np.triu_indices(len(masks), k=1)
  inter = inter_ff[rows, cols].astype(np.float64)
  union = sizes_f[rows].astype(np.float64) + sizes_f[cols] - inter
  overlaps = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
  pairs = list(zip(rows.tolist(), cols.tolist()))
  chosen = balanced_bin_sample(overlaps, low=low, high=high, bin_width=bin_width, total=num_pairs, rng=rng)
  return [(pairs[k][0], pairs[k][1], float(overlaps[k])) for k in chosen]
