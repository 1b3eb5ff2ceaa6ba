"""Launch settings for the Triton-lowered Gaussian rasterization kernels.

The tile itself is not a setting here: one program always owns one image tile of
`tile_size x tile_size` pixels (a power of two, so the pixel vector is a valid Triton block).
What can be tuned is how many warps share that pixel vector and how often the forward asks
"is any pixel of this tile still accumulating?" (once per chunk of Gaussians).
"""

from __future__ import annotations

import dataclasses

# Tile edges the kernels accept: the tile's pixel count must be a power of two (Triton blocks).
SUPPORTED_TILE_SIZES = (4, 8, 16, 32)


def _is_power_of_two(n: int) -> bool:
  return n >= 1 and n & (n - 1) == 0


def _check_warps(name: str, value: int) -> None:
  if not isinstance(value, int) or not _is_power_of_two(value) or value > 32:
    raise ValueError(f"{name} must be one of 1, 2, 4, 8, 16, 32, got {value!r}")


@dataclasses.dataclass(frozen=True)
class GaussianRasterConfig:
  """Launch settings for the forward and backward rasterization kernels.

  Attributes:
    num_warps: warps per forward program; the tile's pixels are spread over them.
    backward_num_warps: warps per backward program.
    num_stages: Triton software-pipelining depth of the kernels' loops.
    gaussians_per_chunk: the forward composites this many Gaussians between checks that
      some pixel of the tile is still accumulating; each check is a reduction over the
      tile, so a larger chunk checks less often but may walk up to `chunk - 1` Gaussians
      past the point where every pixel has stopped (they are masked, not composited).
  """

  num_warps: int = 4
  backward_num_warps: int = 4
  num_stages: int = 1
  gaussians_per_chunk: int = 32

  def __post_init__(self):
    _check_warps("num_warps", self.num_warps)
    _check_warps("backward_num_warps", self.backward_num_warps)
    if not isinstance(self.num_stages, int) or self.num_stages < 1:
      raise ValueError(f"num_stages must be an int >= 1, got {self.num_stages!r}")
    if not isinstance(self.gaussians_per_chunk, int) or self.gaussians_per_chunk < 1:
      raise ValueError(f"gaussians_per_chunk must be an int >= 1, got {self.gaussians_per_chunk!r}")

  @classmethod
  def heuristic(cls, tile_size: int) -> GaussianRasterConfig:
    """Settings for `tile_size x tile_size` tiles: about two pixels per thread.

    16x16 tiles (256 pixels) get 4 warps, 8x8 tiles get 1, 32x32 tiles 16. Two pixels per
    thread keeps each per-pixel quantity in two registers and lets a warp retire its
    Gaussian loop body in few instructions; the backward, which keeps more live values per
    pixel, uses the same count.
    """
    check_tile_size(tile_size)
    warps = max(1, min(32, tile_size * tile_size // 64))
    return cls(num_warps=warps, backward_num_warps=warps)


def check_tile_size(tile_size: int) -> None:
  """Raises ValueError unless the kernels support `tile_size`."""
  if tile_size not in SUPPORTED_TILE_SIZES:
    raise ValueError(f"tile_size must be one of {SUPPORTED_TILE_SIZES}, got {tile_size!r}")
