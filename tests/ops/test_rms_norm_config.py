"""Tests for the RMSNorm block settings and their heuristic."""

import pytest

from kernels_pallas.rms_norm.config import MAX_BLOCK_COLS, RmsNormBlockConfig, next_power_of_two


def _is_power_of_two(n):
  return n >= 1 and n & (n - 1) == 0


@pytest.mark.parametrize("n, expected", [(1, 1), (2, 2), (3, 4), (100, 128), (128, 128), (257, 512)])
def test_next_power_of_two(n, expected):
  assert next_power_of_two(n) == expected


@pytest.mark.parametrize("row_length", [1, 7, 64, 100, 257, 1000, 4096, 5000, 8192, MAX_BLOCK_COLS])
@pytest.mark.parametrize("num_rows", [None, 1, 3, 1_000_000])
def test_heuristic_gives_valid_tiles_holding_whole_rows(row_length, num_rows):
  config = RmsNormBlockConfig.heuristic(row_length, num_rows)
  block_cols = config.block_cols(row_length)
  assert _is_power_of_two(block_cols) and block_cols >= row_length > block_cols // 2
  assert _is_power_of_two(config.block_rows) and _is_power_of_two(config.num_warps)
  # Packs short rows but never past ~4096 elements, and never more rows than exist.
  assert config.block_rows * block_cols <= max(4096, block_cols)
  if num_rows is not None:
    assert config.block_rows <= next_power_of_two(num_rows)
  # At most ~64 float32 values per thread for a tile-sized array.
  assert config.block_rows * block_cols / (32 * config.num_warps) <= 64


def test_heuristic_packs_short_rows_and_scales_warps_with_the_row():
  assert RmsNormBlockConfig.heuristic(64).block_rows > 1
  assert RmsNormBlockConfig.heuristic(8192).block_rows == 1
  assert RmsNormBlockConfig.heuristic(65536).num_warps > RmsNormBlockConfig.heuristic(1024).num_warps


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(block_rows=3, num_warps=4), "block_rows"),
        (dict(block_rows=0, num_warps=4), "block_rows"),
        (dict(block_rows=4, num_warps=6), "num_warps"),
        (dict(block_rows=4, num_warps=64), "num_warps"),
        (dict(block_rows=4, num_warps=4, num_stages=0), "num_stages"),
        (dict(block_rows=4, num_warps=4, max_backward_programs=0), "max_backward_programs"),
    ],
)
def test_invalid_settings_are_value_errors_naming_the_field(kwargs, field):
  with pytest.raises(ValueError, match=field):
    RmsNormBlockConfig(**kwargs)


def test_config_is_frozen_and_hashable():
  config = RmsNormBlockConfig(block_rows=2, num_warps=4)
  assert hash(config) == hash(RmsNormBlockConfig(block_rows=2, num_warps=4))
  with pytest.raises(AttributeError):
    config.block_rows = 4
