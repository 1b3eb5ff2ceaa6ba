"""The size of the rasterizer's Gaussian-tile intersection buffer in the viewer.

Capacities are powers of two, so a session that zooms into a large scene recompiles a few
times at most. After an overflow the capacity at least doubles and holds the count the
overflowing frame reported with a quarter to spare; the frame is then drawn again.
"""

from __future__ import annotations

import math

MAX_CAPACITY = 1 << 30  # the buffer is indexed with int32


def power_of_two_at_least(value: float) -> int:
  return 1 << max(0, math.ceil(math.log2(max(1.0, value))))


def grown_capacity(capacity: int, num_intersections: int) -> int:
  """The capacity to draw again with after a frame of `num_intersections` overflowed `capacity`."""
  return min(MAX_CAPACITY, max(2 * capacity, power_of_two_at_least(1.25 * num_intersections)))
