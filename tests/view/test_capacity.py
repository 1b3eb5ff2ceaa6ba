"""The viewer's intersection-capacity growth rule, shared by Gaussian and LOD frames."""

import pytest

from jaxlab.view.capacity import MAX_CAPACITY, grown_capacity, power_of_two_at_least


@pytest.mark.parametrize(("value", "want"), [(0.0, 1), (1.0, 1), (1.5, 2), (1024.0, 1024), (1025.0, 2048)])
def test_power_of_two_at_least(value, want):
  assert power_of_two_at_least(value) == want


def test_growth_holds_the_reported_count_with_a_quarter_to_spare():
  got = grown_capacity(1024, 100_000)
  assert got == 1 << 17 and got >= 1.25 * 100_000
  assert grown_capacity(1024, 110_000) == 1 << 18  # 1.25 x 110,000 passes 2^17


def test_growth_at_least_doubles_so_a_slowly_growing_count_recompiles_rarely():
  assert grown_capacity(3000, 3001) == 6000  # a quarter to spare alone would give 4096


def test_growth_stops_at_the_int32_ceiling():
  assert grown_capacity(1 << 29, 1 << 31) == MAX_CAPACITY == 1 << 30
