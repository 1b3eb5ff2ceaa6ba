"""Choosing pixels for visual prompts: valid depth, away from the border, apart from each other."""

from __future__ import annotations

import numpy as np

from jaxlab.spatial.sample import Skip
from jaxlab.spatial.scene import Frame


def border_margin(width: int) -> int:
  """Pixels kept free at the border, so a dot and its letter stay inside the image."""
  return max(3, round(0.06 * width))


def pick_pixel(frame: Frame, rng: np.random.Generator, *, avoid_uv: list[tuple[float, float]] = (),
               min_distance: float = 0.0) -> tuple[float, float, float]:
  """(u, v, depth metres) of a random pixel centre with measured depth, inside the margin, at least
  `min_distance` px from every point in `avoid_uv`. Raises Skip when none is left."""
  margin = border_margin(frame.width)
  rows, cols = np.nonzero(frame.depth_hw[margin:frame.height - margin, margin:frame.width - margin] > 0)
  if len(rows) == 0:
    raise Skip("no pixel with depth")
  u_k, v_k = cols + margin + 0.5, rows + margin + 0.5
  ok = np.ones(len(u_k), bool)
  for u, v in avoid_uv:
    ok &= np.hypot(u_k - u, v_k - v) >= min_distance
  if not ok.any():
    raise Skip("no pixel far enough from the others")
  k = int(rng.choice(np.flatnonzero(ok)))
  row, col = int(v_k[k] - 0.5), int(u_k[k] - 0.5)
  return float(u_k[k]), float(v_k[k]), float(frame.depth_hw[row, col])


def inside_margin(u: float, v: float, width: int, height: int) -> bool:
  m = border_margin(width)
  return m <= u < width - m and m <= v < height - m


def random_pixel(width: int, height: int, rng: np.random.Generator, *, avoid_uv: list[tuple[float, float]],
                 min_distance: float, tries: int = 200) -> tuple[float, float]:
  """A pixel centre inside the margin, at least `min_distance` from each of `avoid_uv` (Skip if none found)."""
  m = border_margin(width)
  for _ in range(tries):
    u = float(rng.integers(m, width - m)) + 0.5
    v = float(rng.integers(m, height - m)) + 0.5
    if all(np.hypot(u - a, v - b) >= min_distance for a, b in avoid_uv):
      return u, v
  raise Skip("no room for distractor points")
