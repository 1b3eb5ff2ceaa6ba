"""Grouped matmul for mixed-precision experts: one `pallas_call` (Triton lowering) for all
experts and all schemes, plus the weight-gradient ("tgmm") kernel of the backward pass.

Forward: program t locates its own tile from `group_sizes` (`kernels_pallas.grouped_matmul.schedule`:
stack, slot, rows, columns; no XLA kernels run before the launch) and branches to the tile body
of its stack's scheme (`tiles.py`), with that scheme's tile shape. Activations of wXa8/wXa4 rows are
quantized by XLA beforehand (a cheap elementwise pass), so the kernel only ever reads int8
codes and float32 scales for them. The output starts as zeros (aliased into the call), so
rows that belong to no local group read as zero.

Backward (float weights only, through `jax.custom_vjp`):
  d_lhs = grouped_matmul(d_out, W^T)      the forward kernel with transposed weight tiles;
  d_W[e] = lhs_e^T @ d_out_e              one program per (expert, K tile, N tile).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from jaxlab import _compat
from jaxlab.quant_formats import activations as act_quant
from jaxlab.quant_formats.experts import ExpertWeights, from_dense
from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme
from kernels_pallas.grouped_matmul import schedule as schedule_lib
from kernels_pallas.grouped_matmul import tiles
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig, TileShape

plgpu = _compat.pallas_triton()


class _StackPlan(NamedTuple):
  """Static description of one weight stack in a launch."""

  scheme: QuantScheme
  tile: TileShape
  has_scale: bool
  has_zero: bool


class _Plan(NamedTuple):
  """Everything static about one forward launch (hashable)."""

  stacks: tuple[_StackPlan, ...]
  expert_stack: tuple[int, ...]  # Stack of each local expert.
  num_groups: int  # G, all groups (local or not).
  k: int  # Contraction extent.
  n: int  # Output columns.
  num_rows: int  # M.
  group_m: int  # Row tiles per band of the tile order.
  quantized_activations: bool
  transposed: bool  # Float weights read as W^T (backward d_lhs).
  options: tiles.TileOptions


def _locate(sizes_ref, offset_ref, table_ref, plan: _Plan) -> schedule_lib.TileLocation:
  num_local = len(plan.expert_stack)
  offset = offset_ref[0]
  width = schedule_lib.local_width(num_local)
  return schedule_lib.locate_tile(
      pl.program_id(0),
      sizes_ref[pl.ds(0, schedule_lib.all_width(plan.num_groups))],
      sizes_ref[pl.ds(offset, width)],
      offset,
      tuple(table_ref[row, pl.ds(0, width)] for row in range(table_ref.shape[0])),
      num_rows=plan.num_rows, out_features=plan.n, num_local=num_local, group_m=plan.group_m)


def _forward_kernel(sizes_ref, offset_ref, table_ref, lhs_ref, *refs, plan: _Plan):
  refs = list(refs)
  out_ref = refs.pop()
  refs.pop()  # The zero-initialised output, aliased to out_ref.
  if plan.quantized_activations:
    lhs_q_ref, lhs_scale_ref = refs.pop(0), refs.pop(0)
  where = _locate(sizes_ref, offset_ref, table_ref, plan)
  stack = where.stack
  at = tiles.TileAt(
      slot=where.slot,
      row_start=where.row_start,
      row_end=where.row_end,
      # Every column tile starts at a multiple of its block_n (powers of two: the smallest divides
      # all). Told so, Triton can prove weight, scale and output rows aligned and vectorise them.
      col_start=pl.multiple_of(where.col_start, min(s.tile.block_n for s in plan.stacks)),
  )
  for index, stack_plan in enumerate(plan.stacks):
    packed_ref = refs.pop(0)
    scale_ref = refs.pop(0) if stack_plan.has_scale else None
    zero_ref = refs.pop(0) if stack_plan.has_zero else None
    scheme, tile = stack_plan.scheme, stack_plan.tile
    geometry = tiles.TileGeometry(tile.block_m, tile.block_n, tile.block_k, plan.k, plan.n)

    @pl.when(stack == index)
    def _(packed_ref=packed_ref, scale_ref=scale_ref, zero_ref=zero_ref, scheme=scheme, geometry=geometry):
      if not scheme.quantizes_weights:
        acc = tiles.dense_tile(lhs_ref, packed_ref, at, geometry, transposed=plan.transposed)
      elif scheme.quantizes_activations:
        acc = tiles.weight_activation_tile(lhs_q_ref, lhs_scale_ref, packed_ref, scale_ref, at, geometry, scheme)
      else:
        acc = tiles.weight_only_tile(lhs_ref, packed_ref, scale_ref, zero_ref, at, geometry, scheme, plan.options)
      tiles.store_tile(out_ref, acc, at, geometry)


def _quantize_activation_rows(lhs_mk, group_sizes_g, group_offset, experts: ExpertWeights):
  """int8 codes [M, K] and float32 scales [M, K/128] for the rows of wXaY experts.

  Each row is quantized with its own expert's activation format; per-token scales are
  repeated across the K/128 columns so every scheme reads scales the same way.
  """
  num_rows, k = lhs_mk.shape
  sizes_g = schedule_lib.cut_at_rows(group_sizes_g, num_rows)
  local_m = schedule_lib.group_ids_of_rows(sizes_g, num_rows) - group_offset
  stack_of_expert = jnp.asarray(experts.expert_scheme + (-1,), jnp.int32)
  in_range = (local_m >= 0) & (local_m < experts.num_experts)
  stack_m = jnp.where(in_range, stack_of_expert[jnp.clip(local_m, 0, experts.num_experts)], -1)
  codes_mk = jnp.zeros((num_rows, k), jnp.int8)
  scales_mg = jnp.ones((num_rows, k // PACK_BLOCK), jnp.float32)
  formats = {(s.a_bits, s.group_size) for s in experts.schemes if s.quantizes_activations}
  for bits, group_size in sorted(formats):
    q_mk, s_mg = act_quant.quantize_activations(lhs_mk, bits, group_size)
    s_mg = jnp.broadcast_to(s_mg, scales_mg.shape)
    uses = [i for i, s in enumerate(experts.schemes) if (s.a_bits, s.group_size) == (bits, group_size)]
    rows_m = jnp.isin(stack_m, jnp.asarray(uses, jnp.int32))
    codes_mk = jnp.where(rows_m[:, None], q_mk, codes_mk)
    scales_mg = jnp.where(rows_m[:, None], s_mg, scales_mg)
  return codes_mk, scales_mg


def _config_for(config, experts: ExpertWeights, lhs_mk) -> GroupedMatmulConfig:
  if config is not None:
    return config
  return GroupedMatmulConfig.heuristic(experts.schemes, lhs_mk.shape[0], experts.num_experts,
                                       lhs_itemsize=lhs_mk.dtype.itemsize)


def _launch(lhs_mk, experts: ExpertWeights, group_sizes_g, group_offset, *, out_dtype, config, interpret,
            transposed=False):
  """One pallas_call over every tile of every local expert; returns [M, N_out]."""
  num_rows = lhs_mk.shape[0]
  # Transposed: stored W is [K_out, N_contract], so the contraction runs over its columns.
  k = experts.out_features if transposed else experts.in_features
  n = experts.in_features if transposed else experts.out_features
  config = _config_for(config, experts, lhs_mk)
  stack_plans = []
  for scheme, stack in zip(experts.schemes, experts.stacks):
    tile = config.tile_for(scheme)
    stack_plans.append(_StackPlan(scheme, tile, stack.scale is not None, stack.zero is not None))
  quantized_activations = any(s.quantizes_activations for s in experts.schemes)
  tiling = schedule_lib.ExpertTiling(
      stack=experts.expert_scheme,
      slot=experts.expert_slot,
      block_m=tuple(stack_plans[s].tile.block_m for s in experts.expert_scheme),
      block_n=tuple(stack_plans[s].tile.block_n for s in experts.expert_scheme),
      group_m=config.group_m,
  )
  options = tiles.TileOptions(bitcast_unpack=config.bitcast_unpack, weights_first=config.weights_first)
  plan = _Plan(tuple(stack_plans), experts.expert_scheme, group_sizes_g.shape[0], k, n, num_rows, config.group_m,
               quantized_activations, transposed, options)

  # The schedule's inputs: padded sizes, the offset and a constant per-expert table (no kernels).
  inputs = [schedule_lib.pad_sizes(group_sizes_g, experts.num_experts),
            jnp.asarray(group_offset, jnp.int32).reshape(1),
            jnp.asarray(schedule_lib.expert_table(tiling)),
            lhs_mk]
  if quantized_activations:
    inputs += list(_quantize_activation_rows(lhs_mk, group_sizes_g, group_offset, experts))
  for stack in experts.stacks:
    inputs += [a for a in (stack.packed, stack.scale, stack.zero) if a is not None]
  zeros_mn = jnp.zeros((num_rows, n), out_dtype)
  inputs.append(zeros_mn)

  return pl.pallas_call(
      functools.partial(_forward_kernel, plan=plan),
      out_shape=jax.ShapeDtypeStruct((num_rows, n), out_dtype),
      grid=(schedule_lib.grid_bound(num_rows, n, tiling),),
      input_output_aliases={len(inputs) - 1: 0},
      compiler_params=_compat.triton_compiler_params(num_warps=config.num_warps, num_stages=config.num_stages),
      interpret=interpret,
      name="grouped_matmul_transposed" if transposed else "grouped_matmul",
  )(*inputs)


def _weight_grad_kernel(bounds_ref, lhs_ref, d_out_ref, d_w_ref, *, geometry: tiles.TileGeometry):
  expert, k_tile, n_tile = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  row_start, row_end = bounds_ref[0, expert], bounds_ref[1, expert]
  k_start, n_start = k_tile * geometry.block_k, n_tile * geometry.block_n
  acc = tiles.weight_grad_tile(lhs_ref, d_out_ref, row_start, row_end, k_start, n_start, geometry)
  k_mask = k_start + jnp.arange(geometry.block_k, dtype=jnp.int32) < geometry.k
  n_mask = n_start + jnp.arange(geometry.block_n, dtype=jnp.int32) < geometry.n
  plgpu.store(
      d_w_ref.at[expert, pl.ds(k_start, geometry.block_k), pl.ds(n_start, geometry.block_n)],
      acc.astype(d_w_ref.dtype),
      mask=k_mask[:, None] & n_mask[None, :],
  )


def weight_grad(lhs_mk, d_out_mn, group_sizes_g, group_offset, num_local: int, *, out_dtype, config, interpret):
  """[L, K, N]: d_W[e] = lhs[rows of e]^T @ d_out[rows of e] for the L local experts."""
  _, k = lhs_mk.shape
  n = d_out_mn.shape[1]
  tile = (config or GroupedMatmulConfig()).weight_grad_tile
  geometry = tiles.TileGeometry(tile.block_m, tile.block_n, tile.block_k, k, n)
  sizes_g = schedule_lib.cut_at_rows(group_sizes_g, lhs_mk.shape[0])
  starts_g = jnp.cumsum(sizes_g) - sizes_g
  starts = jax.lax.dynamic_slice_in_dim(starts_g, group_offset, num_local)
  ends = starts + jax.lax.dynamic_slice_in_dim(sizes_g, group_offset, num_local)
  bounds = jnp.stack([starts, ends]).astype(jnp.int32)
  num_warps = (config or GroupedMatmulConfig()).num_warps
  return pl.pallas_call(
      functools.partial(_weight_grad_kernel, geometry=geometry),
      out_shape=jax.ShapeDtypeStruct((num_local, k, n), out_dtype),
      grid=(num_local, -(-k // tile.block_k), -(-n // tile.block_n)),
      compiler_params=_compat.triton_compiler_params(num_warps=num_warps, num_stages=2),
      interpret=interpret,
      name="grouped_matmul_weight_grad",
  )(bounds, lhs_mk, d_out_mn)


def mixed_grouped_matmul(lhs_mk, experts: ExpertWeights, group_sizes_g, group_offset, *, out_dtype, config,
                         interpret):
  """Forward only; quantized weights carry no gradient. Sizes are cut at M inside the kernel."""
  return _launch(lhs_mk, experts, group_sizes_g, group_offset, out_dtype=out_dtype, config=config,
                 interpret=interpret)


class _Static(NamedTuple):
  out_dtype: jnp.dtype
  config: GroupedMatmulConfig | None
  interpret: bool


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _dense(static: _Static, lhs_mk, rhs_gkn, group_sizes_g, group_offset):
  return _launch(lhs_mk, from_dense(rhs_gkn), group_sizes_g, group_offset, out_dtype=static.out_dtype,
                 config=static.config, interpret=static.interpret)


def _dense_forward(static, lhs_mk, rhs_gkn, group_sizes_g, group_offset):
  out = _dense(static, lhs_mk, rhs_gkn, group_sizes_g, group_offset)
  return out, (lhs_mk, rhs_gkn, group_sizes_g, group_offset)


def _dense_backward(static, residuals, d_out_mn):
  lhs_mk, rhs_gkn, group_sizes_g, group_offset = residuals
  d_out_mn = d_out_mn.astype(lhs_mk.dtype)
  d_lhs = _launch(d_out_mn, from_dense(rhs_gkn), group_sizes_g, group_offset, out_dtype=lhs_mk.dtype,
                  config=static.config, interpret=static.interpret, transposed=True)
  d_rhs = weight_grad(lhs_mk, d_out_mn, group_sizes_g, group_offset, rhs_gkn.shape[0], out_dtype=rhs_gkn.dtype,
                      config=static.config, interpret=static.interpret)
  return d_lhs, d_rhs, None, None


_dense.defvjp(_dense_forward, _dense_backward)


def dense_grouped_matmul(lhs_mk, rhs_gkn, group_sizes_g, group_offset, *, out_dtype, config, interpret):
  """Differentiable grouped matmul of float experts [G, K, N] (bf16/f16/f32)."""
  static = _Static(jnp.dtype(out_dtype), config, interpret)
  return _dense(static, lhs_mk, rhs_gkn, group_sizes_g, jnp.asarray(group_offset, jnp.int32))
