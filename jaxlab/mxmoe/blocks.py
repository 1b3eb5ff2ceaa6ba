"""The linear blocks of one MoE layer that MxMoE gives a quantization scheme each.

For routed expert e (0 <= e < E) there are two blocks: "gate_up" (gate and up projections fused,
K = D, N = 2F: they share one scheme) and "down" (K = F, N = D). Shared experts, when the layer
has them, are one more expert with index E, whose width is the total shared width Fs. A block
is named by its key (expert, kind); its size is K * N weights and `m_rows` is its workload: the
rows it multiplies in the target batch (M_e for routed experts, B for the shared experts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

KINDS = ("gate_up", "down")

BlockKey = tuple[int, str]


@dataclasses.dataclass(frozen=True)
class LinearBlock:
  """One [K, N] weight matrix of an MoE layer with the rows it multiplies per batch."""

  expert: int
  kind: str
  k: int
  n: int
  m_rows: int

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"LinearBlock.kind must be one of {KINDS}, got {self.kind!r}")
    for name in ("expert", "k", "n", "m_rows"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"LinearBlock.{name} must be an int, got {type(value).__name__}")
    if self.expert < 0 or self.k < 1 or self.n < 1 or self.m_rows < 0:
      raise ValueError(
          f"LinearBlock needs expert >= 0, k >= 1, n >= 1, m_rows >= 0; got expert={self.expert}, "
          f"k={self.k}, n={self.n}, m_rows={self.m_rows}"
      )

  @property
  def key(self) -> BlockKey:
    return (self.expert, self.kind)

  @property
  def size(self) -> int:
    """Number of weights, K * N."""
    return self.k * self.n


def moe_layer_blocks(
    *,
    d_model: int,
    d_ff: int,
    rows_per_expert: Sequence[int],
    shared_d_ff: int = 0,
    shared_rows: int = 0,
) -> list[LinearBlock]:
  """Blocks of one layer in canonical order: (0, gate_up), (0, down), (1, gate_up), ..., shared last.

  Args:
    d_model: D, the layer's input and output width.
    d_ff: F, the width of one routed expert.
    rows_per_expert: M_e for each of the E routed experts (`workload_rows`).
    shared_d_ff: Fs, the total width of the shared experts; 0 for a layer without them.
    shared_rows: rows the shared experts multiply: the batch size B in tokens.
  """
  rows = [int(m) for m in rows_per_expert]
  if not rows:
    raise ValueError("moe_layer_blocks needs rows_per_expert for at least one expert")
  if min(rows) < 0:
    raise ValueError(f"moe_layer_blocks: rows_per_expert must be >= 0, got {rows}")
  if d_model < 1 or d_ff < 1 or shared_d_ff < 0 or shared_rows < 0:
    raise ValueError(
        f"moe_layer_blocks needs d_model, d_ff >= 1 and shared_d_ff, shared_rows >= 0; got {d_model}, "
        f"{d_ff}, {shared_d_ff}, {shared_rows}"
    )
  blocks = []
  widths = [(e, d_ff, m) for e, m in enumerate(rows)]
  if shared_d_ff:
    widths.append((len(rows), shared_d_ff, shared_rows))
  for expert, width, m in widths:
    blocks.append(LinearBlock(expert, "gate_up", d_model, 2 * width, m))
    blocks.append(LinearBlock(expert, "down", width, d_model, m))
  return blocks


def check_blocks(blocks: Sequence[LinearBlock]) -> tuple[LinearBlock, ...]:
  """`blocks` as a tuple, after checking they are LinearBlocks with distinct keys."""
  blocks = tuple(blocks)
  if not blocks:
    raise ValueError("need at least one LinearBlock, got none")
  bad = [type(b).__name__ for b in blocks if not isinstance(b, LinearBlock)]
  if bad:
    raise TypeError(f"blocks must be LinearBlock instances, got {sorted(set(bad))}")
  keys = [b.key for b in blocks]
  if len(set(keys)) != len(keys):
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    raise ValueError(f"blocks repeat the keys {repeated}; each (expert, kind) appears once")
  return blocks
