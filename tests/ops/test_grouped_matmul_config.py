"""The grouped-matmul tile heuristic: the shapes measured fastest per kind of launch, valid tiles."""

import jax.numpy as jnp
import pytest

from jaxlab.quant_formats import PACK_BLOCK
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig, TileShape

G = 64
DECODE_ROWS, PREFILL_ROWS = 384, 49152


def _tile(schemes, num_rows, **kwargs):
  config = GroupedMatmulConfig.heuristic(schemes, num_rows, G, **kwargs)
  return {name: config.tile_for(name) for name in set(schemes)}, config


def test_decode_of_narrow_weight_only_experts_uses_wide_column_tiles():
  tiles, config = _tile(["w4a16_g128_asym"], DECODE_ROWS)
  assert tiles["w4a16_g128_asym"] == TileShape(16, 256, PACK_BLOCK)
  assert (config.num_warps, config.num_stages) == (4, 3)


@pytest.mark.parametrize("schemes", [["bf16"], ["w8a16_g-1_asym"], ["w8a8_g-1_sym"],
                                     ["w4a16_g128_asym", "w8a16_g-1_asym", "w8a8_g-1_sym", "w4a4_g-1_sym"]])
def test_decode_of_other_launches_keeps_128_column_tiles(schemes):
  tiles, _ = _tile(schemes, DECODE_ROWS)
  assert {t.block_m for t in tiles.values()} == {16}
  assert {t.block_n for t in tiles.values()} == {128}


def test_prefill_of_float_experts_uses_wide_tiles_only_for_16_bit_operands():
  tiles, config = _tile(["bf16"], PREFILL_ROWS)
  assert tiles["bf16"] == TileShape(128, 256, 64) and config.num_warps == 8
  float32_tiles, _ = _tile(["bf16"], PREFILL_ROWS, lhs_itemsize=4)
  assert float32_tiles["bf16"] == TileShape(128, 128, 64)


def test_prefill_of_narrow_weight_only_experts_uses_narrow_column_tiles():
  tiles, _ = _tile(["w4a16_g128_asym", "w2a16_g128_asym"], PREFILL_ROWS)
  assert set(tiles.values()) == {TileShape(128, 64, PACK_BLOCK)}


def test_quantized_tiles_always_walk_k_in_packing_blocks():
  for rows in (DECODE_ROWS, 64 * 40, PREFILL_ROWS):
    tiles, _ = _tile(["w8a8_g-1_sym", "w4a16_g128_asym", "w3a16_g128_asym"], rows)
    assert {t.block_k for t in tiles.values()} == {PACK_BLOCK}


def test_group_m_must_be_positive():
  with pytest.raises(ValueError, match="group_m"):
    GroupedMatmulConfig(group_m=0)


def test_op_and_kernel_agree_on_the_row_and_group_convention():
  """The op and the kernel's schedule each hold `cut_at_rows` / `group_ids_of_rows`: one answer."""
  import numpy as np

  from jaxlab.ops.grouped_matmul_op import groups
  from kernels_pallas.grouped_matmul import schedule

  rng = np.random.default_rng(0)
  for _ in range(20):
    sizes_g = jnp.asarray(rng.integers(-3, 9, size=rng.integers(1, 7)), jnp.int32)
    num_rows = int(rng.integers(0, 30))
    np.testing.assert_array_equal(groups.cut_at_rows(sizes_g, num_rows), schedule.cut_at_rows(sizes_g, num_rows))
    cut_g = groups.cut_at_rows(sizes_g, num_rows)
    np.testing.assert_array_equal(groups.group_ids_of_rows(cut_g, num_rows),
                                  schedule.group_ids_of_rows(cut_g, num_rows))
