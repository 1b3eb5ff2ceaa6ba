"""Tile shapes of the grouped-matmul kernel, one per quantization scheme, and a heuristic.

Every scheme in a launch gets its own tile shape: the schedule maps each program to one
(expert, row tile, column tile) with its expert's shape. Quantized schemes walk K in blocks
of 128 rows (the packing block of `jaxlab.quant_formats`), so their `block_k` is 128.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme, parse_scheme


def _is_power_of_two(x: int) -> bool:
  return x > 0 and x & (x - 1) == 0


@dataclasses.dataclass(frozen=True)
class TileShape:
  """One program's output tile [block_m, block_n], walked over K in `block_k` steps."""

  block_m: int
  block_n: int
  block_k: int

  def __post_init__(self):
    for name in ("block_m", "block_n", "block_k"):
      value = getattr(self, name)
      # Triton tensors have power-of-two extents; tl.dot needs at least 16 per side.
      if not (_is_power_of_two(value) and value >= 16):
        raise ValueError(f"TileShape.{name} must be a power of two >= 16, got {value}")


@dataclasses.dataclass(frozen=True)
class GroupedMatmulConfig:
  """Tile shape per scheme name plus launch settings shared by the whole launch.

  Attributes:
    tiles: (scheme name, TileShape) pairs; schemes not listed use `default_tile`.
    default_tile: shape for schemes without an entry.
    num_warps: warps per program (one value: a launch has one).
    num_stages: software-pipelining depth of the K loop.
    group_m: row tiles per band of the tile order (`schedule` module docstring): programs
      in flight share a few weight and lhs blocks in L2.
    weight_grad_tile: the backward's weight-gradient kernel computes [block_k, block_n] of one
      expert's gradient per program, walking the expert's rows `block_m` at a time.
    bitcast_unpack: weight-only tiles turn codes of up to 7 bits (bf16 lhs; 10 for f16) into
      floats by OR-ing them into the mantissa of a power of two, instead of an int-to-float
      conversion (exact either way; `kernels_pallas/grouped_matmul/tiles.py`).
    weights_first: weight-only tiles compute out^T = W^T a^T, the unpacked weights being the
      dot's first operand (which Hopper's tensor cores can read from registers).
  """

  tiles: tuple[tuple[str, TileShape], ...] = ()
  default_tile: TileShape = TileShape(128, 128, 64)
  num_warps: int = 4
  num_stages: int = 3
  group_m: int = 8
  weight_grad_tile: TileShape = TileShape(64, 128, 128)
  bitcast_unpack: bool = True
  weights_first: bool = False

  def __post_init__(self):
    if self.group_m < 1:
      raise ValueError(f"GroupedMatmulConfig.group_m must be >= 1, got {self.group_m}")
    for name, tile in self.tiles:
      parse_scheme(name)  # Raises, listing the supported names.
      if not isinstance(tile, TileShape):
        raise TypeError(f"GroupedMatmulConfig.tiles[{name!r}] must be a TileShape, got {type(tile).__name__}")

  def tile_for(self, scheme: QuantScheme | str) -> TileShape:
    scheme = parse_scheme(scheme)
    tile = dict(self.tiles).get(scheme.name, self.default_tile)
    if scheme.w_bits < 16 and tile.block_k != PACK_BLOCK:
      # Scales and packed codes come in 128-row blocks; the kernel walks K one block at a time.
      tile = dataclasses.replace(tile, block_k=PACK_BLOCK)
    return tile

  @classmethod
  def heuristic(cls, schemes: Iterable[QuantScheme | str], num_rows: int, num_groups: int,
                lhs_itemsize: int = 2) -> GroupedMatmulConfig:
    """Tile shapes from the average rows per group and the launch's schemes.

    Short groups (decode) waste most of a 128-row tile on masked rows and spend their time
    reading weights, so they get 16-row tiles; long groups (prefill) get 128-row tiles that
    reuse each weight block across many rows. The wide variants were the fastest of the
    sweep in `benchmarks/grouped_matmul_tiles.py` on an H100 (docs/PERFORMANCE.md): launches
    of float experts only, and launches whose experts all have <= 4-bit weights and float
    activations. Other launches keep the shapes measured before that sweep. The wide float
    tile needs 16-bit operands (`lhs_itemsize` 2): float32 stages would overflow shared memory.
    Every launch keeps the defaults `bitcast_unpack=True` (faster at decode; at prefill within the sweep's noise)
    and `weights_first=False` (slower at both in the same sweep).
    """
    parsed = [parse_scheme(s) for s in schemes]
    float_only = all(not s.quantizes_weights for s in parsed)
    narrow_weight_only = all(s.quantizes_weights and s.w_bits <= 4 and not s.quantizes_activations for s in parsed)
    rows_per_group = num_rows / max(num_groups, 1)
    if rows_per_group <= 16:
      if narrow_weight_only:
        tile, warps, stages = TileShape(16, 256, 128), 4, 3
      else:
        tile, warps, stages = TileShape(16, 128, 128), 4, 4
    elif rows_per_group <= 64:
      tile, warps, stages = TileShape(64, 128, 64), 4, 3
    elif float_only and lhs_itemsize <= 2:
      tile, warps, stages = TileShape(128, 256, 64), 8, 4
    elif narrow_weight_only:
      tile, warps, stages = TileShape(128, 64, 128), 4, 3
    else:
      tile, warps, stages = TileShape(128, 128, 64), 8, 3
    names = sorted({s.name for s in parsed})
    return cls(tiles=tuple((name, tile) for name in names), default_tile=tile, num_warps=warps, num_stages=stages)
