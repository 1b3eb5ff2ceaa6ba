"""Expert-parallel MoE feed-forward: experts and tokens split over one mesh axis, rows exchanged.

Each shard of the expert axis holds E / n experts and T / n tokens. It routes its own tokens,
sends every (token, slot) row to the shard that owns the row's expert, runs its local experts
with one grouped matmul, and sends the results back; the owner of a token combines its k
outputs. No row is ever dropped.

Exchange: `jax.lax.all_to_all` with a fixed capacity per destination. `ragged_all_to_all`
would send exactly the rows that exist, but XLA:CPU does not implement it (jax 0.10.2:
"HLO opcode `ragged-all-to-all` is not supported by XLA:CPU"), and one code path has to run
on CPU and GPU alike. A dense all-to-all needs a static size, so each shard reserves
C = T_local * k rows for *every* destination: dropless by construction, since at worst all of
a shard's rows go to one destination. The price, per shard with n shards on the axis:
  * four exchange buffers (rows out, rows in, results out, results back) of [n, C, D] each,
  * expert activations of [n * C, 2F] in the grouped matmul,
i.e. n times what an exact (ragged) exchange needs; the all-to-all moves the zero padding
too, and the XLA grouped matmul multiplies it.

Other mesh axes ("data", "fsdp") may also split the tokens: each slice along them exchanges
rows only within its own expert group, and experts are replicated along them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxlab import _compat
from jaxlab.moe.dispatch import Dispatch, combine, sort_by_expert
from jaxlab.moe.experts import check_moe_inputs, swiglu_experts
from jaxlab.moe.router import MoEAux, route_top_k, router_logits, routing_aux
from jaxlab.ops.registry import ImplementationArg
from jaxlab.quant_formats import ExpertWeights

# Mesh axes that split tokens like a batch dimension (the "data"/"fsdp" rule presets).
_BATCH_MESH_AXES = ("data", "fsdp")


def ambient_mesh():
  """The mesh set by `jax.set_mesh`, or None when there is none."""
  mesh = _compat.get_abstract_mesh()
  return None if mesh.empty else mesh


def default_token_axes(mesh, axis_name: str) -> tuple[str, ...]:
  """Mesh axes that split the tokens: `axis_name`, and "data"/"fsdp" where larger than 1, in mesh order."""
  return tuple(
      a for a in mesh.axis_names if a == axis_name or (a in _BATCH_MESH_AXES and mesh.shape[a] > 1)
  )


def _exchange_and_run(
    x_td, dispatch: Dispatch, experts_tk, gate_up, down, *, axis_name, num_shards, implementation, interpret
) -> jax.Array:
  """Sorted rows -> owning shards -> local experts -> back; returns [R, D] outputs in sorted order."""
  num_experts = dispatch.group_sizes_e.shape[0]
  local_experts = num_experts // num_shards
  num_rows = dispatch.order_r.shape[0]
  capacity = num_rows  # Dropless: a shard may send all of its rows to one destination.
  slot_c = jnp.arange(capacity, dtype=jnp.int32)

  # Sorted rows are grouped by expert, hence by destination shard: one contiguous run per shard.
  sizes_se = dispatch.group_sizes_e.reshape(num_shards, local_experts)
  send_count_s = jnp.sum(sizes_se, axis=1)
  send_start_s = jnp.cumsum(send_count_s) - send_count_s
  row_sc = jnp.minimum(send_start_s[:, None] + slot_c[None, :], num_rows - 1)
  valid_sc = slot_c[None, :] < send_count_s[:, None]
  token_sc = jnp.take(dispatch.token_of_row_r, row_sc)
  send_scd = jnp.where(valid_sc[..., None], jnp.take(x_td, token_sc, axis=0), 0).astype(x_td.dtype)

  # recv[i] holds what shard i sent here, sorted by local expert and zero-padded.
  recv_scd = jax.lax.all_to_all(send_scd, axis_name, 0, 0)
  recv_sizes_se = jax.lax.all_to_all(sizes_se, axis_name, 0, 0)

  # Merge the n sorted runs into one sort by local expert; padding rows get E_local and go last.
  ends_se = jnp.cumsum(recv_sizes_se, axis=1)
  expert_sc = jax.vmap(lambda ends: jnp.searchsorted(ends, slot_c, side="right"))(ends_se)
  order_m = jnp.argsort(expert_sc.reshape(-1), stable=True)
  x_md = jnp.take(recv_scd.reshape(-1, x_td.shape[1]), order_m, axis=0)

  # Group sizes over all E experts, zero outside this shard's; group_offset selects ours.
  first_expert = jax.lax.axis_index(axis_name) * local_experts
  sizes_g = jax.lax.dynamic_update_slice(
      jnp.zeros((num_experts,), jnp.int32), jnp.sum(recv_sizes_se, axis=0).astype(jnp.int32), (first_expert,)
  )
  y_md = swiglu_experts(
      x_md, gate_up, down, sizes_g, group_offset=first_expert,
      implementation=implementation, interpret=interpret,
  )
  inverse_m = jnp.zeros_like(order_m).at[order_m].set(jnp.arange(order_m.shape[0], dtype=order_m.dtype))
  y_scd = jnp.take(y_md, inverse_m, axis=0).reshape(recv_scd.shape)

  # back[j] holds the results of the rows sent to shard j, in the order they were sent.
  back_scd = jax.lax.all_to_all(y_scd, axis_name, 0, 0)
  dest_r = jnp.take(experts_tk.reshape(-1), dispatch.order_r) // local_experts
  pos_r = jnp.arange(num_rows, dtype=jnp.int32) - jnp.take(send_start_s, dest_r)
  return back_scd[dest_r, pos_r]


def moe_ffn_expert_parallel(
    x_td: jax.Array,
    router_de: jax.Array,
    gate_up_edf: jax.Array,
    down_efd: jax.Array,
    *,
    top_k: int,
    renormalize: bool = True,
    implementation: ImplementationArg = None,
    interpret: bool = False,
    mesh=None,
    axis_name: str = "expert",
    token_axes: Sequence[str] | None = None,
) -> tuple[jax.Array, MoEAux]:
  """`jaxlab.moe.moe_ffn` with experts split over mesh axis `axis_name` (same arguments, same result).

  Args:
    x_td: [T, D] tokens; T must divide evenly over the token axes.
    router_de: [D, E] router weights (replicated inside: every shard scores every expert).
    gate_up_edf: [E, D, 2F] dense expert weights, split over `axis_name` (E divisible by its size).
    down_efd: [E, F, D] dense expert weights, split the same way.
    top_k, renormalize: see `jaxlab.moe.route_top_k`.
    implementation, interpret: forwarded to `jaxlab.ops.grouped_matmul`.
    mesh: the mesh; None uses the one set by `jax.set_mesh`.
    axis_name: mesh axis that holds the experts.
    token_axes: mesh axes that split the tokens; must contain `axis_name`. Default: `axis_name`
      plus "data" and "fsdp" where larger than 1, in mesh order.

  Returns:
    (y_td in x's dtype, `MoEAux` over all tokens).
  """
  mesh = ambient_mesh() if mesh is None else mesh
  if mesh is None:
    raise ValueError("moe_ffn_expert_parallel needs a mesh: pass mesh= or run under jax.set_mesh(mesh)")
  if axis_name not in mesh.axis_names:
    raise ValueError(f"axis_name={axis_name!r} is not a mesh axis; mesh axes are {tuple(mesh.axis_names)}")
  if isinstance(gate_up_edf, ExpertWeights) or isinstance(down_efd, ExpertWeights):
    raise TypeError(
        "moe_ffn_expert_parallel needs dense [E, K, N] gate_up/down; ExpertWeights are not split by expert"
    )
  token_axes = default_token_axes(mesh, axis_name) if token_axes is None else tuple(token_axes)
  unknown = [a for a in token_axes if a not in mesh.axis_names]
  if unknown or axis_name not in token_axes:
    raise ValueError(
        f"token_axes={token_axes!r} must be axes of the mesh {tuple(mesh.axis_names)} "
        f"and include axis_name={axis_name!r}"
    )
  num_experts = check_moe_inputs(x_td, router_de, gate_up_edf, down_efd, top_k)
  num_shards = mesh.shape[axis_name]
  if num_experts % num_shards:
    raise ValueError(
        f"{num_experts} experts do not split evenly over mesh axis {axis_name!r} of size {num_shards}"
    )
  token_shards = math.prod(mesh.shape[a] for a in token_axes)
  if x_td.shape[0] % token_shards:
    raise ValueError(
        f"x_td has T={x_td.shape[0]} tokens, not divisible by {token_shards} shards of token_axes {token_axes}"
    )

  def local(x_td, router_de, gate_up, down):
    logits_te = router_logits(x_td, router_de)
    weights_tk, experts_tk, probs_te = route_top_k(logits_te, top_k, renormalize=renormalize)
    dispatch = sort_by_expert(experts_tk, num_experts)
    y_rd = _exchange_and_run(
        x_td, dispatch, experts_tk, gate_up, down, axis_name=axis_name, num_shards=num_shards,
        implementation=implementation, interpret=interpret,
    )
    aux = routing_aux(logits_te, probs_te, experts_tk, axis_names=token_axes)
    return combine(y_rd, dispatch, weights_tk), aux

  expert_spec = P(axis_name, None, None)
  aux_spec = MoEAux(P(), P(), P(), P())
  sharded = _compat.shard_map(
      local,
      mesh=mesh,
      in_specs=(P(token_axes, None), P(None, None), expert_spec, expert_spec),
      out_specs=(P(token_axes, None), aux_spec),
  )
  return sharded(x_td, router_de, gate_up_edf, down_efd)
