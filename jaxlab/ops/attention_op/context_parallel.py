"""Context (sequence) parallel attention: T and S split over one mesh axis, keys passed around.

Each of the N devices on the axis holds query chunk i ([B, T/N, H, D]) and key/value chunk i
([B, S/N, KV, D]) of a sequence too long for one device. Two ways to let its queries see every
key:

  ring        N steps; at each the local queries attend to the key/value chunk held now (any
              implementation of `attention`, the flash kernel included) and the chunk moves on
              to the next device with `ppermute`. Partial results are merged by their
              log-sum-exps in float32. Memory per device stays O(S/N); the transfer of the
              next chunk can overlap the current step's compute.
  all_gather  keys and values are all-gathered once and the local queries attend to the whole
              sequence: one call, no merging, but O(S) key/value memory per device. Cheaper
              when S is short or there are few KV heads.

The mask stays the caller's global `AttentionMask`; each step gets it in chunk coordinates.
With query chunk i (Tc = T/N rows) and key chunk j (Sc = S/N keys), global query position
q_offset + i*Tc + t and global key index j*Sc + s become local ones by shifting q_offset,
prefix_length and kv_length by -j*Sc (and q_offset by +i*Tc); sliding windows only see
differences and are unchanged; segment ids and explicit-mask columns are sliced per chunk.

Gradients come from autodiff through `ppermute` / `all_gather` and the op, whose
implementations are differentiable through the log-sum-exp as well.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxlab import _compat
from jaxlab.ops import registry
from jaxlab.ops.attention_op import api
from jaxlab.ops.attention_op.mask import AttentionMask, normalize
from kernels_pallas.attention.config import FlashBlockConfig

STRATEGIES = ("ring", "all_gather")

# Mesh axes that may split the batch (the data/fsdp/expert rule presets), and the heads.
_BATCH_MESH_AXES = ("data", "fsdp", "expert")
_HEAD_MESH_AXIS = "tensor"


def _ambient_mesh():
  """The mesh set by `jax.set_mesh`, or None when there is none."""
  mesh = _compat.get_abstract_mesh()
  return None if mesh.empty else mesh


def context_axis_size(axis_name: str = "context") -> int:
  """Size of mesh axis `axis_name` of the ambient mesh; 1 with no mesh or no such axis.

  A model attends with `context_parallel_attention` when this is > 1.
  """
  mesh = _ambient_mesh()
  if mesh is None or axis_name not in mesh.axis_names:
    return 1
  return int(mesh.shape[axis_name])


def _split_axes(mesh, axis_name: str, b: int, h: int, kv: int) -> tuple[tuple[str, ...], str | None]:
  """(mesh axes splitting the batch, mesh axis splitting the heads or None) inside the shard_map.

  Axes of size 1 are left out. Batch axes are taken in mesh order while they divide B; the
  head axis only when it divides both H and KV (query head h reads KV head h // (H/KV), so
  equal contiguous blocks of both keep each query head with its KV head). An axis not used
  here replicates the computation along it, which is correct, only redundant.
  """
  batch_axes, split = [], 1
  for name in mesh.axis_names:
    size = mesh.shape[name]
    if name != axis_name and name in _BATCH_MESH_AXES and size > 1 and b % (split * size) == 0:
      batch_axes.append(name)
      split *= size
  t_size = mesh.shape.get(_HEAD_MESH_AXIS, 1)
  head_axis = _HEAD_MESH_AXIS if (
      _HEAD_MESH_AXIS != axis_name and t_size > 1 and h % t_size == 0 and kv % t_size == 0) else None
  return tuple(batch_axes), head_axis


def _chunk_implementations(implementation: registry.ImplementationArg):
  """The implementations a chunk may use: every chunk's log-sum-exp is differentiated through
  (the merge weights), which jax's cuDNN path does not support; its causal mask also ignores
  the chunk's query offset."""
  names = tuple(n for n in registry.candidates(implementation, preference=api._ATTENTION.preference)
                if n != "cudnn")
  if not names:
    raise NotImplementedError(
        "context_parallel_attention: cudnn cannot serve a chunk (no gradient through its log-sum-exp, "
        "no query offset); use implementation='pallas_triton' or 'xla'")
  return names


def _combine(out_bthd, lse_bth, part_bthd, part_lse_bth):
  """Merges two softmax results over disjoint key sets by their log-sum-exps, in float32.

  out = (e^lse_a out_a + e^lse_b out_b) / (e^lse_a + e^lse_b). A side that saw no key has
  lse = -inf and weight 0; when neither saw one the result is 0 and -inf. The shift m is a
  stop-gradient (it cancels exactly) and is 0 when both are -inf, so no inf - inf appears in
  the values or the gradients.
  """
  m_bth = jnp.maximum(lse_bth, part_lse_bth)
  m_bth = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m_bth), m_bth, 0.0))
  a_bth = jnp.exp(lse_bth - m_bth)
  b_bth = jnp.exp(part_lse_bth - m_bth)
  total_bth = a_bth + b_bth
  safe_bth = jnp.where(total_bth > 0, total_bth, 1.0)
  out_bthd = (a_bth[..., None] * out_bthd + b_bth[..., None] * part_bthd.astype(jnp.float32)) / safe_bth[..., None]
  lse_bth = jnp.where(total_bth > 0, m_bth + jnp.log(safe_bth), -jnp.inf)
  return out_bthd, lse_bth


def context_parallel_attention(
    q_bthd: jax.Array,
    k_bskd: jax.Array,
    v_bskd: jax.Array,
    mask: AttentionMask | None = None,
    *,
    axis_name: str = "context",
    strategy: str = "ring",
    scale: float | None = None,
    logit_soft_cap: float | None = None,
    return_lse: bool = False,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    block_config: FlashBlockConfig | None = None,
):
  """`jaxlab.ops.attention` with T and S split over mesh axis `axis_name` (same arguments, same result).

  Runs a `shard_map` over the ambient mesh (`jax.set_mesh`). Inside it the batch stays split
  over those of "data", "fsdp", "expert" larger than 1 (while they divide B) and the heads
  over "tensor" (when it divides H and KV); other axes replicate the work.

  Args:
    q_bthd: [B, T, H, D] global queries, T split over `axis_name` (T divisible by its size).
    k_bskd, v_bskd: [B, S, KV, D] global keys and values, S split the same way.
    mask: the global `AttentionMask` (q_offset None: S - T, as for `attention`).
    axis_name: the mesh axis that splits the sequence.
    strategy: "ring" (ppermute the key/value chunks, O(S/N) memory) or "all_gather" (gather
      them once, O(S) memory).
    scale, logit_soft_cap, return_lse, implementation, interpret, block_config: as for
      `attention`, applied to each local call; never cuDNN (see `_chunk_implementations`).

  Returns:
    out [B, T, H, D] in q's dtype, or (out, lse [B, T, H] float32) with `return_lse`; both
    split over `axis_name` like q.

  Raises:
    ValueError: unknown strategy, no ambient mesh or no `axis_name` in it, T or S not
      divisible by the axis size, or what `attention` raises for the global arguments.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"context_parallel_attention: unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
  mesh = _ambient_mesh()
  if mesh is None or axis_name not in mesh.axis_names:
    axes = () if mesh is None else tuple(mesh.axis_names)
    raise ValueError(
        f"context_parallel_attention: axis_name={axis_name!r} is not an axis of the ambient mesh {axes}; "
        "build one with jaxlab.sharding.make_mesh and set it with jax.set_mesh(mesh)")
  api.check_arguments(q_bthd, k_bskd, v_bskd, scale, logit_soft_cap, block_config)
  (b, t, h, _), (_, s, kv, _) = q_bthd.shape, k_bskd.shape
  n = int(mesh.shape[axis_name])
  if t % n or s % n:
    raise ValueError(
        f"context_parallel_attention: T={t} and S={s} must both be divisible by the size {n} of mesh axis "
        f"{axis_name!r}")
  global_mask = normalize(mask, b, h, t, s)
  causal, window = global_mask.causal, global_mask.sliding_window
  tc, sc = t // n, s // n
  batch_axes, head_axis = _split_axes(mesh, axis_name, b, h, kv)
  batch = batch_axes or None
  settings = dict(scale=scale, logit_soft_cap=logit_soft_cap, return_lse=True, interpret=interpret,
                  block_config=block_config)
  settings["implementation"] = _chunk_implementations(implementation)

  # Mask arrays in, by name (absent fields are not passed), with their specs.
  arrays = {"q_offset": global_mask.q_offset_b}
  specs = {"q_offset": P(batch)}
  for name, value, spec in (
      ("prefix_length", global_mask.prefix_length_b, P(batch)),
      ("kv_length", global_mask.kv_length_b, P(batch)),
      ("q_segment_ids", global_mask.q_segment_ids_bt, P(batch, axis_name)),
      ("kv_segment_ids", global_mask.kv_segment_ids_bs, P(batch, axis_name)),
  ):
    if value is not None:
      arrays[name], specs[name] = value, spec
  if global_mask.explicit_bhts is not None:
    explicit = global_mask.explicit_bhts
    # Rows follow the local queries; all S columns stay, each step slices its chunk's.
    arrays["explicit"] = explicit
    specs["explicit"] = P(batch if explicit.shape[0] == b else None,
                          head_axis if explicit.shape[1] == h else None, axis_name, None)

  def chunk_mask(m, i, j, kv_segment_bs, width):
    """The global mask for query chunk i against the `width` keys starting at chunk j."""
    shift = j * sc
    return AttentionMask(
        causal=causal,
        sliding_window=window,
        q_offset=m["q_offset"] + i * tc - shift,
        # Clipped to [0, width]: the same keys of this chunk, and never a negative length.
        prefix_length=None if "prefix_length" not in m else jnp.clip(m["prefix_length"] - shift, 0, width),
        kv_length=None if "kv_length" not in m else jnp.clip(m["kv_length"] - shift, 0, width),
        q_segment_ids=m.get("q_segment_ids"),
        kv_segment_ids=kv_segment_bs,
        explicit=None if "explicit" not in m else jax.lax.dynamic_slice_in_dim(
            m["explicit"], shift, width, axis=3),
    )

  def ring(q, k, v, m):
    i = jax.lax.axis_index(axis_name)
    # Device i sends to i + 1, so at step r it holds the chunk that started on device i - r.
    send_next = lambda x: jax.lax.ppermute(x, axis_name, [(d, (d + 1) % n) for d in range(n)])

    def attend(r, kv_chunk):
      k_chunk, v_chunk, kv_segment = kv_chunk
      j = (i - r) % n
      return api.attention(q, k_chunk, v_chunk, chunk_mask(m, i, j, kv_segment, sc), **settings)

    kv_chunk = (k, v, m.get("kv_segment_ids"))
    out, lse = attend(0, kv_chunk)
    out = out.astype(jnp.float32)
    if n > 1:
      kv_chunk = send_next(kv_chunk)

      def step(carry, r):
        kv_chunk, out, lse = carry
        # The next chunk's transfer does not depend on this step's compute: they can overlap.
        part, part_lse = attend(r, kv_chunk)
        out, lse = _combine(out, lse, part, part_lse)
        return (send_next(kv_chunk), out, lse), None

      (kv_chunk, out, lse), _ = jax.lax.scan(step, (kv_chunk, out, lse), jnp.arange(1, n - 1))
      out, lse = _combine(out, lse, *attend(n - 1, kv_chunk))
    return out.astype(q.dtype), lse

  def all_gather(q, k, v, m):
    i = jax.lax.axis_index(axis_name)
    gather = lambda x: jax.lax.all_gather(x, axis_name, axis=1, tiled=True)
    kv_segment = None if "kv_segment_ids" not in m else gather(m["kv_segment_ids"])
    return api.attention(q, gather(k), gather(v), chunk_mask(m, i, 0, kv_segment, s), **settings)

  qkv_spec = P(batch, axis_name, head_axis, None)
  lse_spec = P(batch, axis_name, head_axis)
  # check_vma=False: a Pallas kernel's pallas_call declares its outputs without varying-axis
  # types, which the check refuses. Every input and output here is split over `axis_name`, so
  # the unchecked transposes (ppermute back, psum_scatter for all_gather) give the same
  # gradients; the tests run the XLA path this way.
  sharded = _compat.shard_map(
      ring if strategy == "ring" else all_gather,
      mesh=mesh,
      in_specs=(qkv_spec, qkv_spec, qkv_spec, specs),
      out_specs=(qkv_spec, lse_spec),
      check_vma=False,
  )
  out_bthd, lse_bth = sharded(q_bthd, k_bskd, v_bskd, arrays)
  return (out_bthd, lse_bth) if return_lse else out_bthd
