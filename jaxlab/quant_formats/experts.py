"""`ExpertWeights`: one weight matrix per expert, each expert in its own quantization scheme.

Experts that share a scheme are stored together as one stacked `QuantizedWeight`, so a
mixed assignment is a handful of arrays, not one per expert. The assignment itself
(`expert_scheme`, `expert_slot`) is static: it is part of the model, like a shape.
"""

from __future__ import annotations

import dataclasses

import jax

from jaxlab.quant_formats.scheme import BF16, QuantScheme
from jaxlab.quant_formats.weights import QuantizedWeight


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExpertWeights:
  """G expert matrices of shape [K, N] with a scheme per expert.

  Attributes:
    stacks: one `QuantizedWeight` per distinct scheme, its leading axis the experts that
      use it, in expert order.
    expert_scheme: for each expert, the index of its stack (static).
    expert_slot: for each expert, its index within that stack (static).
  """

  stacks: tuple[QuantizedWeight, ...]
  expert_scheme: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))
  expert_slot: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))

  def __post_init__(self):
    if len(self.expert_scheme) != len(self.expert_slot):
      raise ValueError(
          f"ExpertWeights: expert_scheme has {len(self.expert_scheme)} entries, expert_slot {len(self.expert_slot)}"
      )
    if not self.stacks:
      raise ValueError("ExpertWeights needs at least one stack")
    bad = sorted({s for s in self.expert_scheme if not 0 <= s < len(self.stacks)})
    if bad:
      raise ValueError(f"ExpertWeights: expert_scheme entries {bad} are not stack indices 0..{len(self.stacks) - 1}")
    shapes = {(s.in_features, s.out_features) for s in self.stacks}
    if len(shapes) != 1:
      raise ValueError(f"ExpertWeights: every stack must have one [K, N]; got {sorted(shapes)}")
    for index, stack in enumerate(self.stacks):
      slots = sorted(slot for s, slot in zip(self.expert_scheme, self.expert_slot) if s == index)
      if slots != list(range(len(slots))):
        raise ValueError(f"ExpertWeights: stack {index} ({stack.scheme.name}) has slots {slots}, expected 0..n-1")

  @property
  def num_experts(self) -> int:
    return len(self.expert_scheme)

  @property
  def in_features(self) -> int:
    return self.stacks[0].in_features

  @property
  def out_features(self) -> int:
    return self.stacks[0].out_features

  @property
  def schemes(self) -> tuple[QuantScheme, ...]:
    return tuple(stack.scheme for stack in self.stacks)

  def scheme_of(self, expert: int) -> QuantScheme:
    return self.stacks[self.expert_scheme[expert]].scheme

  def experts_with(self, stack_index: int) -> tuple[int, ...]:
    """Expert ids stored in stack `stack_index`, in slot order."""
    return tuple(e for e, s in enumerate(self.expert_scheme) if s == stack_index)

  @property
  def num_bytes(self) -> int:
    return sum(stack.num_bytes for stack in self.stacks)


def from_dense(w_ekn: jax.Array) -> ExpertWeights:
  """Every expert unquantized (the bf16 scheme), keeping w's dtype."""
  if getattr(w_ekn, "ndim", None) != 3:
    got = getattr(w_ekn, "shape", type(w_ekn).__name__)
    raise ValueError(f"from_dense needs w of shape [E, K, N], got {got}")
  num_experts, k, n = w_ekn.shape
  stack = QuantizedWeight(packed=w_ekn, scale=None, zero=None, scheme=BF16, in_features=k, out_features=n)
  return ExpertWeights((stack,), (0,) * num_experts, tuple(range(num_experts)))
