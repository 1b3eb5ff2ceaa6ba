"""An MoE decoder layer of `jaxlab.moe.models` as MxMoE's calibration needs it.

`layer_fn(config)` returns `layer_fn(params, x_btd, act_quant=None) -> y_btd`, the layer's
output computed from its params exactly as `MoEDecoderLayer` does, plus the hook of
`jaxlab.mxmoe.sensitivity`: for every `(expert, kind) -> (bits, group_size)` in
`act_quant`, the rows entering that block are fake-quantized (expert E, the number of routed
experts, is the shared expert). `block_inputs` returns, per block, the rows that multiply its
weight (what GPTQ's Hessians are built from).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.moe.dispatch import combine, permute, sort_by_expert
from jaxlab.moe.models.attention import grouped_query_attention
from jaxlab.moe.models.config import MoELMConfig
from jaxlab.moe.router import route_top_k, router_logits
from jaxlab.ops import grouped_matmul, rms_norm
from jaxlab.quant_formats.activations import fake_quantize_activations
from jaxlab.ops.grouped_matmul_op.groups import group_ids_of_rows


class _MoEInputs(NamedTuple):
  h_td: jax.Array  # Residual stream after attention, [T, D].
  m_td: jax.Array  # Normalized MoE input, [T, D].


def _attention_part(config: MoELMConfig, params, x_btd, positions_bt) -> _MoEInputs:
  b, t, d = x_btd.shape
  normed = rms_norm(x_btd, params["input_norm"]["scale"], eps=config.rms_norm_eps, rounding="transformers")
  attention, _ = grouped_query_attention(config).apply({"params": params["attention"]}, normed, positions_bt)
  h_btd = x_btd + attention
  m_btd = rms_norm(h_btd, params["post_attention_norm"]["scale"], eps=config.rms_norm_eps, rounding="transformers")
  return _MoEInputs(h_btd.reshape(b * t, d), m_btd.reshape(b * t, d))


def _quantize_rows(rows_rd, mask_r, spec):
  if spec is None:
    return rows_rd
  bits, group_size = spec
  fake = fake_quantize_activations(rows_rd, bits, group_size).astype(rows_rd.dtype)
  return jnp.where(mask_r[:, None], fake, rows_rd)


def _swiglu(h_rf2):
  f = h_rf2.shape[1] // 2
  return (jax.nn.silu(h_rf2[:, :f].astype(jnp.float32)) * h_rf2[:, f:].astype(jnp.float32))


def _moe(config: MoELMConfig, moe, m_td, act_quant: dict, implementation):
  e = config.num_experts
  weights_tk, experts_tk, _ = route_top_k(router_logits(m_td, moe["router"]), config.top_k,
                                          renormalize=config.norm_topk_prob)
  dispatch = sort_by_expert(experts_tk, e)
  x_rd = permute(m_td, dispatch)
  group_r = group_ids_of_rows(dispatch.group_sizes_e, x_rd.shape[0])
  matmul = lambda lhs, rhs: grouped_matmul(lhs, rhs, dispatch.group_sizes_e, implementation=implementation)
  for expert in range(e):
    x_rd = _quantize_rows(x_rd, group_r == expert, act_quant.get((expert, "gate_up")))
  a_rf = _swiglu(matmul(x_rd, moe["gate_up"])).astype(m_td.dtype)
  for expert in range(e):
    a_rf = _quantize_rows(a_rf, group_r == expert, act_quant.get((expert, "down")))
  y_td = combine(matmul(a_rf, moe["down"]), dispatch, weights_tk).astype(jnp.float32)
  if "shared_gate_up" in moe:
    every_row = jnp.ones((m_td.shape[0],), bool)
    sizes = jnp.full((1,), m_td.shape[0], jnp.int32)
    shared_matmul = lambda lhs, rhs: grouped_matmul(lhs, rhs, sizes, implementation=implementation)
    s_in = _quantize_rows(m_td, every_row, act_quant.get((e, "gate_up")))
    s_af = _swiglu(shared_matmul(s_in, moe["shared_gate_up"])).astype(m_td.dtype)
    s_af = _quantize_rows(s_af, every_row, act_quant.get((e, "down")))
    shared_td = shared_matmul(s_af, moe["shared_down"]).astype(jnp.float32)
    if "shared_gate" in moe:
      shared_td = jax.nn.sigmoid(router_logits(m_td, moe["shared_gate"])) * shared_td
    y_td = y_td + shared_td
  return y_td.astype(m_td.dtype)


def layer_fn(config: MoELMConfig, implementation="xla"):
  """`fn(params, x_btd, act_quant=None) -> y_btd` for one MoE layer (positions 0..S-1)."""
  if not isinstance(config, MoELMConfig):
    raise TypeError(f"config must be a MoELMConfig, got {type(config).__name__}")
  return functools.partial(_layer, config, implementation)


def _layer(config, implementation, params, x_btd, act_quant=None):
  if "moe" not in params:
    raise ValueError("layer_fn serves MoE layers; this layer's params have no 'moe' subtree")
  b, t, d = x_btd.shape
  positions_bt = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  parts = _attention_part(config, params, x_btd.astype(jnp.dtype(config.dtype)), positions_bt)
  y_td = _moe(config, params["moe"], parts.m_td, dict(act_quant or ()), implementation)
  return (parts.h_td + y_td).reshape(b, t, d)


def block_inputs(config: MoELMConfig, params, x_btd, implementation="xla") -> dict[tuple[int, str], np.ndarray]:
  """{(expert, kind): rows [n, K] float32} entering each block of one MoE layer on inputs x_btd.

  Routed expert e's "gate_up" rows are the normalized tokens routed to it (a token once per
  slot that picked e), its "down" rows their silu(gate) * up; expert E is the shared expert,
  which sees every token.
  """
  b, t, d = x_btd.shape
  positions_bt = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  parts = jax.jit(_attention_part, static_argnums=0)(config, params, x_btd, positions_bt)
  moe = params["moe"]
  _, experts_tk, _ = route_top_k(router_logits(parts.m_td, moe["router"]), config.top_k,
                                 renormalize=config.norm_topk_prob)
  dispatch = sort_by_expert(experts_tk, config.num_experts)
  x_rd = permute(parts.m_td, dispatch)
  a_rf = _swiglu(grouped_matmul(x_rd, moe["gate_up"], dispatch.group_sizes_e, implementation=implementation))
  ends = np.cumsum(np.asarray(dispatch.group_sizes_e))
  starts = ends - np.asarray(dispatch.group_sizes_e)
  x_rd, a_rf = np.asarray(x_rd, np.float32), np.asarray(a_rf, np.float32)
  out = {}
  for expert in range(config.num_experts):
    out[(expert, "gate_up")] = x_rd[starts[expert]:ends[expert]]
    out[(expert, "down")] = a_rf[starts[expert]:ends[expert]]
  if "shared_gate_up" in moe:
    m_td = parts.m_td
    sizes = jnp.full((1,), m_td.shape[0], jnp.int32)
    out[(config.num_experts, "gate_up")] = np.asarray(m_td, np.float32)
    out[(config.num_experts, "down")] = np.asarray(
        _swiglu(grouped_matmul(m_td, moe["shared_gate_up"], sizes, implementation=implementation)), np.float32)
  return out
