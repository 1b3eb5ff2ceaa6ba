"""Block sizes and launch settings for the HiFlow guidance kernels, with a heuristic from the latent shape."""

from __future__ import annotations

import dataclasses

# Fourier path: one 1-D block of the flattened latent per program. 1024 float32 with 4 warps
# is 8 values per thread per array: two 16-byte vector accesses each.
_FFT_BLOCK = 1024
# Haar path: each program holds four tiles (the corners of its 2x2 blocks) per input array,
# so one tile gets a quarter of what a Fourier block holds.
_DWT_TILE = 512
_MIN_BLOCK = 128
# A tile never narrower than the padded channel count; past this the registers run out.
MAX_CHANNEL_BLOCK = 4096


def next_power_of_two(n: int) -> int:
  """Smallest power of two >= n (1 for n <= 1)."""
  return 1 << max(0, int(n) - 1).bit_length()


def _is_power_of_two(n: int) -> bool:
  return n >= 1 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class FlowGuidanceConfig:
  """Launch settings for the Triton-lowered guidance kernels.

  Attributes:
    block_size: elements per program and array; a power of two. Fourier path: the length of
      a 1-D block of the flattened [B*H*W*C] latent. Haar path: the elements of one
      [block_rows, block_w, block_c] tile (`dwt_tile`), of which a program holds four.
    num_warps: warps per program; a power of two in [1, 32].
  """

  block_size: int
  num_warps: int = 4

  def __post_init__(self):
    if not _is_power_of_two(self.block_size):
      raise ValueError(f"FlowGuidanceConfig.block_size must be a power of two >= 1, got {self.block_size}")
    if not _is_power_of_two(self.num_warps) or self.num_warps > 32:
      raise ValueError(f"FlowGuidanceConfig.num_warps must be one of 1, 2, 4, 8, 16, 32, got {self.num_warps}")

  def dwt_tile(self, shape_bhwc: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """(block_rows, block_w, block_c) of a Haar-path tile for a [B, H, W, C] latent.

    block_c = next_power_of_two(C) (whole pixels per tile, padding masked); block_w block
    columns (W/2 of them per row) fill what remains of `block_size`, then block_rows rows.
    Each extent is a power of two; a tile holds max(block_size, block_c) elements.
    """
    _, _, width, channels = shape_bhwc
    block_c = next_power_of_two(channels)
    per_row = max(1, self.block_size // block_c)
    block_w = min(per_row, next_power_of_two(max(1, width // 2)))
    block_rows = max(1, per_row // block_w)
    return block_rows, block_w, block_c

  @classmethod
  def heuristic(cls, shape_bhwc: tuple[int, int, int, int], lowpass: str = "fft") -> FlowGuidanceConfig:
    """Settings for a [B, H, W, C] latent and a low-pass kind ("fft" or "dwt").

    Fourier: 1024-element blocks, smaller (down to 128) only when the whole latent is smaller.
    Haar: 512-element tiles. Warps: block_size / 128, at most 4, so each thread keeps at
    least four consecutive float32 values (one 16-byte vector) per tile.
    """
    batch, height, width, channels = shape_bhwc
    num_elements = batch * height * width * channels
    if lowpass == "dwt":
      block_size = _DWT_TILE
    else:
      block_size = _FFT_BLOCK
    block_size = max(_MIN_BLOCK, min(block_size, next_power_of_two(num_elements)))
    num_warps = max(1, min(4, block_size // 128))
    return cls(block_size=block_size, num_warps=num_warps)
