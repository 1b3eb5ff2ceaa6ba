"""Block sizes and launch settings for the RMSNorm kernels, with a heuristic from the row length."""

from __future__ import annotations

import dataclasses

# A row is held whole in one tile; past this many (padded) columns the tile no longer fits in
# registers and the kernel declines, leaving the call to XLA.
MAX_BLOCK_COLS = 65536

# Short rows are packed several to a program so each program moves about this many elements.
_TARGET_TILE_ELEMENTS = 4096
_MAX_BLOCK_ROWS = 64


def next_power_of_two(n: int) -> int:
  """Smallest power of two >= n (1 for n <= 1)."""
  return 1 << max(0, int(n) - 1).bit_length()


def _is_power_of_two(n: int) -> bool:
  return n >= 1 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class RmsNormBlockConfig:
  """Launch settings for the Triton-lowered RMSNorm kernels.

  The column extent of a tile is not a setting: it is the row length padded to the next
  power of two (`block_cols`), so one program always sees whole rows.

  Attributes:
    block_rows: rows per program in the forward and per loop step in the backward; a power of two.
    num_warps: warps per program; a power of two in [1, 32].
    num_stages: software-pipelining depth for the backward's row loop.
    max_backward_programs: cap on backward programs; each writes one float32 partial row of
      dscale (summed outside), so the cap bounds that buffer to `max_backward_programs * D`.
  """

  block_rows: int
  num_warps: int
  num_stages: int = 2
  max_backward_programs: int = 512

  def __post_init__(self):
    if not _is_power_of_two(self.block_rows):
      raise ValueError(f"block_rows must be a power of two >= 1, got {self.block_rows}")
    if not _is_power_of_two(self.num_warps) or self.num_warps > 32:
      raise ValueError(f"num_warps must be one of 1, 2, 4, 8, 16, 32, got {self.num_warps}")
    if self.num_stages < 1:
      raise ValueError(f"num_stages must be >= 1, got {self.num_stages}")
    if self.max_backward_programs < 1:
      raise ValueError(f"max_backward_programs must be >= 1, got {self.max_backward_programs}")

  @staticmethod
  def block_cols(row_length: int) -> int:
    """Padded column extent of a tile for rows of `row_length` elements."""
    return next_power_of_two(row_length)

  @classmethod
  def heuristic(cls, row_length: int, num_rows: int | None = None) -> RmsNormBlockConfig:
    """Settings for rows of `row_length` elements (and, if given, `num_rows` rows).

    Long rows get one row per program; short rows are packed so a tile holds about 4096
    elements, never more rows than exist. Warps grow with the tile so each thread keeps at
    most about 64 float32 values per tile-sized array (4 warps up to 2048 elements, then 8,
    16 from 8192 and 32 from 32768).
    """
    block_cols = cls.block_cols(row_length)
    block_rows = max(1, min(_TARGET_TILE_ELEMENTS // block_cols, _MAX_BLOCK_ROWS))
    if num_rows is not None:
      block_rows = min(block_rows, next_power_of_two(num_rows))
    tile_elements = block_rows * block_cols
    num_warps = 4
    for threshold, warps in ((2048, 8), (8192, 16), (32768, 32)):
      if tile_elements >= threshold:
        num_warps = warps
    return cls(block_rows=block_rows, num_warps=num_warps)
