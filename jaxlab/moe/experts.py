"""The routed experts' SwiGLU: two grouped matmuls over rows sorted by expert."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.moe.router import check_router
from jaxlab.ops import grouped_matmul
from jaxlab.ops.registry import ImplementationArg
from jaxlab.quant_formats import ExpertWeights


def _num_experts(w, name: str) -> int:
  if isinstance(w, ExpertWeights):
    return w.num_experts
  if not hasattr(w, "shape"):
    raise TypeError(f"{name} must be a [E, K, N] array or ExpertWeights, got {type(w).__name__}")
  if len(w.shape) != 3:
    raise ValueError(f"{name} must be a [E, K, N] array or ExpertWeights, got shape {w.shape}")
  return w.shape[0]


def check_expert_weights(gate_up, down, d_model: int) -> int:
  """Validates gate_up [E, D, 2F] / down [E, F, D] against each other; returns E."""
  num_experts = _num_experts(gate_up, "gate_up")
  if _num_experts(down, "down") != num_experts:
    raise ValueError(f"gate_up has {num_experts} experts but down has {_num_experts(down, 'down')}")
  if isinstance(gate_up, ExpertWeights) or isinstance(down, ExpertWeights):
    return num_experts  # grouped_matmul checks the quantized shapes.
  _, d_in, two_f = gate_up.shape
  if d_in != d_model:
    raise ValueError(f"gate_up must have shape [E, D={d_model}, 2F], got {gate_up.shape}")
  if two_f % 2:
    raise ValueError(f"gate_up's last dim holds gate and up halves, so it must be even (2F), got {two_f}")
  if down.shape[1:] != (two_f // 2, d_model):
    raise ValueError(f"down must have shape [E, F={two_f // 2}, D={d_model}], got {down.shape}")
  return num_experts


def check_moe_inputs(x_td, router_de, gate_up, down, top_k) -> int:
  """Validates the arguments of `moe_ffn` / `moe_ffn_expert_parallel` before any compute; returns E."""
  check_router(x_td, router_de)
  num_experts = check_expert_weights(gate_up, down, x_td.shape[1])
  if router_de.shape[1] != num_experts:
    raise ValueError(f"router has {router_de.shape[1]} experts but gate_up/down have {num_experts}")
  if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
    raise ValueError(f"top_k must be an int in [1, {num_experts}] (number of experts), got {top_k!r}")
  return num_experts


def swiglu_experts(
    x_rd: jax.Array,
    gate_up,
    down,
    group_sizes: jax.Array,
    *,
    group_offset: int | jax.Array = 0,
    implementation: ImplementationArg = None,
    interpret: bool = False,
) -> jax.Array:
  """y[r] = down_e(silu(gate_e(x[r])) * up_e(x[r])) with e the expert owning row r.

  Args:
    x_rd: [R, D] rows sorted by expert.
    gate_up: [E, D, 2F] (gate = first F output columns, up = last F), or ExpertWeights.
    down: [E, F, D], or ExpertWeights.
    group_sizes: [G] int32 rows per group (G >= E); see `jaxlab.ops.grouped_matmul`.
    group_offset: global index of gate_up's first expert (expert parallelism).
    implementation, interpret: forwarded to `grouped_matmul`.

  Returns:
    [R, D] in x's dtype; zero in rows owned by no local expert.
  """
  if x_rd.ndim != 2:
    raise ValueError(f"x_rd must have shape [R, D], got shape {x_rd.shape}")
  check_expert_weights(gate_up, down, x_rd.shape[1])
  matmul = lambda lhs, rhs: grouped_matmul(
      lhs, rhs, group_sizes, group_offset=group_offset, implementation=implementation, interpret=interpret
  )
  h_rf2 = matmul(x_rd, gate_up)
  d_ff = h_rf2.shape[1] // 2
  gate_rf = h_rf2[:, :d_ff].astype(jnp.float32)
  up_rf = h_rf2[:, d_ff:].astype(jnp.float32)
  # silu(0) * 0 = 0 keeps the zero rows (no local expert) zero through the second matmul.
  a_rf = (jax.nn.silu(gate_rf) * up_rf).astype(x_rd.dtype)
  return matmul(a_rf, down)
