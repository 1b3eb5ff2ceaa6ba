"""How a parameter is made of Hugging Face checkpoint tensors: `Rule`, and `to_param` / `from_param` to convert.

Torch Linear weights are [out, in], so kernels are their transpose ("linear"); expert weights of
MoE models are stacked per expert ("gate_up", "down") or come fused ("fused"). Each model's
checkpoint I/O lists its rules (`jaxlab.models.qwen2.hf_io.hf_rules`, `jaxlab.moe.models.hf_rules`).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rule:
  """One parameter: its path, the HF tensors (names, shapes) it is made of, and how (`kind`).

  Kinds: "copy"; "linear" (transpose a [out, in] weight); "gate_up" (per expert e, names
  2e / 2e + 1 are gate / up [F, D] -> [E, D, 2F]); "down" ([D, F] per expert -> [E, F, D]);
  "fused" (one [E, N, K] tensor -> [E, K, N]).
  """

  path: tuple[str, ...]
  names: tuple[str, ...]
  shapes: tuple[tuple[int, ...], ...]
  kind: str


def to_param(rule: Rule, tensors: list[np.ndarray]) -> np.ndarray:
  """The parameter from its HF tensors (views where possible)."""
  if rule.kind == "copy":
    return tensors[0]
  if rule.kind == "linear":
    return tensors[0].T
  if rule.kind == "gate_up":
    return np.stack([np.concatenate([g.T, u.T], axis=1) for g, u in zip(tensors[0::2], tensors[1::2])])
  if rule.kind == "down":
    return np.stack([w.T for w in tensors])
  if rule.kind == "fused":
    return tensors[0].transpose(0, 2, 1)
  raise AssertionError(rule.kind)


def from_param(rule: Rule, param: np.ndarray) -> list[np.ndarray]:
  """The HF tensors of a parameter (inverse of `to_param`), in `rule.names` order."""
  if rule.kind == "copy":
    return [param]
  if rule.kind == "linear":
    return [param.T]
  if rule.kind == "gate_up":
    f = param.shape[2] // 2
    return [w for expert in param for w in (expert[:, :f].T, expert[:, f:].T)]
  if rule.kind == "down":
    return [expert.T for expert in param]
  if rule.kind == "fused":
    return [param.transpose(0, 2, 1)]
  raise AssertionError(rule.kind)
