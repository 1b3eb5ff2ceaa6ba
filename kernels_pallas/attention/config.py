"""Tile sizes and launch settings of the flash-attention kernels."""

from __future__ import annotations

import dataclasses


def _is_power_of_two(n: int) -> bool:
  return isinstance(n, int) and not isinstance(n, bool) and n >= 1 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class FlashBlockConfig:
  """Launch settings of the Triton-lowered flash-attention kernels.

  Attributes:
    block_q: query rows per program (forward and dq); a power of two >= 16 (Triton's dot).
    block_k: key rows per inner-loop step (forward and dq); a power of two >= 16.
    block_q_dkv: query rows per inner-loop step of the dk/dv kernel.
    block_k_dkv: key rows per program of the dk/dv kernel.
    num_warps: warps per program; a power of two in [1, 16].
    num_stages: software-pipelining depth of the inner loops.
  """

  block_q: int = 64
  block_k: int = 64
  block_q_dkv: int = 32
  block_k_dkv: int = 64
  num_warps: int = 4
  num_stages: int = 2

  def __post_init__(self):
    for name in ("block_q", "block_k", "block_q_dkv", "block_k_dkv"):
      value = getattr(self, name)
      if not _is_power_of_two(value) or value < 16:
        raise ValueError(f"FlashBlockConfig.{name} must be a power of two >= 16, got {value!r}")
    if not _is_power_of_two(self.num_warps) or self.num_warps > 16:
      raise ValueError(f"FlashBlockConfig.num_warps must be one of 1, 2, 4, 8, 16, got {self.num_warps!r}")
    if isinstance(self.num_stages, bool) or not isinstance(self.num_stages, int) or self.num_stages < 1:
      raise ValueError(f"FlashBlockConfig.num_stages must be an int >= 1, got {self.num_stages!r}")

  @classmethod
  def heuristic(cls, q_len: int, kv_len: int, head_dim: int) -> FlashBlockConfig:
    """Settings for these sizes: 128-row tiles for long sequences at D <= 64, 64 otherwise;
    16-row query tiles for decode (a few queries against a long cache)."""
    if q_len <= 16:
      return cls(block_q=16, block_k=128 if head_dim <= 128 else 64, num_warps=4)
    if head_dim <= 64 and q_len >= 1024 and kv_len >= 1024:
      return cls(block_q=128, block_k=64, block_q_dkv=64, block_k_dkv=128, num_warps=8, num_stages=3)
    return cls(block_q=64, block_k=64, block_q_dkv=32, block_k_dkv=64, num_warps=4, num_stages=2)
