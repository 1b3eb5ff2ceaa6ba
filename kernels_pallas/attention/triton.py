"""Flash attention, forward and backward, as Pallas kernels lowered through Triton (layout: README.md).

q [B, T, H, D], k and v [B, S, KV, D] (query head h reads key/value head h // (H / KV)).
Refs are whole arrays (no BlockSpecs): each program addresses its tiles with `pl.ds` and
masks, so T and S need not be multiples of the blocks. Which keys a query sees is the op's
rule, `visible_fn` (the op's `visible_ts`), evaluated on each [queries, keys] tile and ANDed
with the explicit mask tile and the in-range masks; no [T, S] array is ever written.
Softmax runs online (running max and sum) in float32; dots accumulate in float32.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from jaxlab import _compat

plgpu = _compat.pallas_triton()

# Finite stand-in for -inf in the running max: -inf - -inf would be NaN.
_MASKED = -0.7 * float(np.finfo(np.float32).max)

# dot_general dimension numbers: a @ b.T and a.T @ b, no batch dims.
_NT = (((1,), (1,)), ((), ()))
_TN = (((0,), (0,)), ((), ()))


@dataclasses.dataclass(frozen=True)
class _Spec:
  """Static description of one call: sizes, mask structure and score settings."""

  t: int
  s: int
  h: int
  kv: int
  causal: bool
  sliding_window: int | None
  has_prefix: bool
  has_kv_length: bool
  has_segments: bool
  explicit_full_bh: tuple[bool, bool] | None  # (has B rows, has H rows); None: no explicit mask.
  scale: float
  logit_soft_cap: float | None
  visible_fn: Callable[..., jax.Array]

  @property
  def group(self) -> int:
    return self.h // self.kv


class _MaskRefs(NamedTuple):
  q_offset: Any
  prefix: Any
  kv_length: Any
  q_segment: Any
  kv_segment: Any
  explicit: Any


class _Row(NamedTuple):
  """Per-batch-row scalars of the mask (None where the part is absent)."""

  q_offset: jax.Array
  prefix: jax.Array | None
  kv_length: jax.Array | None


def _mask_arrays(mask) -> tuple[jax.Array, ...]:
  """The mask's arrays that are present, in `_MaskRefs` order."""
  arrays = (mask.q_offset_b, mask.prefix_length_b, mask.kv_length_b, mask.q_segment_ids_bt,
            mask.kv_segment_ids_bs, mask.explicit_bhts)
  return tuple(a for a in arrays if a is not None)


def _unpack(spec: _Spec, refs) -> _MaskRefs:
  refs = iter(refs)
  take = lambda present: next(refs) if present else None
  return _MaskRefs(
      q_offset=next(refs),
      prefix=take(spec.has_prefix),
      kv_length=take(spec.has_kv_length),
      q_segment=take(spec.has_segments),
      kv_segment=take(spec.has_segments),
      explicit=take(spec.explicit_full_bh is not None),
  )


def _row(mrefs: _MaskRefs, b) -> _Row:
  load = lambda ref: None if ref is None else ref[b]
  return _Row(mrefs.q_offset[b], load(mrefs.prefix), load(mrefs.kv_length))


def _segment(ref, b, start, block: int, length: int):
  """[block] segment ids of row b from `start` (0 past the end), or None without segments."""
  if ref is None:
    return None
  in_range = start + jnp.arange(block) < length
  return plgpu.load(ref.at[b, pl.ds(start, block)], mask=in_range, other=0)


def _visible(spec: _Spec, mrefs: _MaskRefs, row: _Row, b, h, t0, s0, block_t: int, block_s: int,
             q_segment_t, kv_segment_s):
  """[block_t, block_s] bool: query t0 + i sees key s0 + j (the op's rule, the explicit mask, in range)."""
  t_idx = t0 + jnp.arange(block_t)
  s_idx = s0 + jnp.arange(block_s)
  in_range = (t_idx < spec.t)[:, None] & (s_idx < spec.s)[None, :]
  visible = spec.visible_fn(
      t_idx, s_idx, causal=spec.causal, sliding_window=spec.sliding_window, q_offset=row.q_offset,
      prefix_length=row.prefix, kv_length=row.kv_length, q_segment_t=q_segment_t, kv_segment_s=kv_segment_s,
  )
  visible = visible & in_range
  if spec.explicit_full_bh is not None:
    has_b, has_h = spec.explicit_full_bh
    zero = jnp.int32(0)  # A Python 0 here trips the interpreter's load rule.
    tile = (b if has_b else zero, h if has_h else zero, pl.ds(t0, block_t), pl.ds(s0, block_s))
    visible = visible & plgpu.load(mrefs.explicit.at[tile], mask=in_range, other=False)
  return visible


def _scores(spec: _Spec, q, k):
  """[block_t, block_s] float32 capped scores and tanh(x / cap) (None without a cap)."""
  logits = lax.dot_general(q, k, _NT, preferred_element_type=jnp.float32) * spec.scale
  if spec.logit_soft_cap is None:
    return logits, None
  cap = spec.logit_soft_cap
  tanh = jnp.tanh(logits / cap)
  return cap * tanh, tanh


def _key_tile(spec: _Spec, mrefs: _MaskRefs, row: _Row, k_ref, v_ref, q, b, h, kv_h, t0, s0, block_q: int,
              block_k: int, q_segment):
  """Key block s0 against the query tile: (k, v, capped scores, tanh or None, visible), each [block_k, ...]
  or [block_q, block_k]. Shared by the forward and the dq kernel, which walk the same key blocks."""
  s_in = (s0 + jnp.arange(block_k) < spec.s)[:, None]
  k = plgpu.load(k_ref.at[b, pl.ds(s0, block_k), kv_h, :], mask=s_in, other=0.0)
  v = plgpu.load(v_ref.at[b, pl.ds(s0, block_k), kv_h, :], mask=s_in, other=0.0)
  logits, tanh = _scores(spec, q, k)
  kv_segment = _segment(mrefs.kv_segment, b, s0, block_k, spec.s)
  visible = _visible(spec, mrefs, row, b, h, t0, s0, block_q, block_k, q_segment, kv_segment)
  return k, v, logits, tanh, visible


def _div(x, block: int):
  """x // block for x >= 0 (callers clip first: lax.div truncates toward zero)."""
  return lax.div(x, jnp.int32(block))


def _cdiv(x, block: int):
  return lax.div(x + (block - 1), jnp.int32(block))


def _kv_block_range(spec: _Spec, row: _Row, t0, block_t: int, block_s: int):
  """[lo, hi): the key blocks that may hold a key visible to queries [t0, t0 + block_t).

  Only an upper bound on work: the tile mask still decides every score.
  """
  clip = lambda x: jnp.clip(x, 0, spec.s)
  lo = jnp.int32(0)
  hi = jnp.int32(pl.cdiv(spec.s, block_s))
  first_pos = row.q_offset + t0
  last_pos = row.q_offset + jnp.minimum(t0 + block_t, spec.t) - 1
  if spec.causal:
    end = last_pos + 1
    if row.prefix is not None:
      end = jnp.maximum(end, row.prefix)
    hi = jnp.minimum(hi, _cdiv(clip(end), block_s))
  if spec.sliding_window is not None:
    w = spec.sliding_window
    lo = jnp.maximum(lo, _div(clip(first_pos - w + 1), block_s))
    if not spec.causal:
      hi = jnp.minimum(hi, _cdiv(clip(last_pos + w), block_s))
  if row.kv_length is not None:
    hi = jnp.minimum(hi, _cdiv(clip(row.kv_length), block_s))
  return lo, hi


def _q_block_range(spec: _Spec, row: _Row, s0, block_s: int, block_t: int):
  """[lo, hi): the query blocks that may see a key in [s0, s0 + block_s)."""
  clip = lambda x: jnp.clip(x, 0, spec.t)
  lo = jnp.int32(0)
  hi = jnp.int32(pl.cdiv(spec.t, block_t))
  s_last = jnp.minimum(s0 + block_s, spec.s) - 1
  if spec.causal:
    # Query t sees key s0 once q_offset + t >= s0, or always when s0 is in the prefix.
    causal_lo = _div(clip(s0 - row.q_offset), block_t)
    lo = causal_lo if row.prefix is None else jnp.where(s0 < row.prefix, 0, causal_lo)
  if spec.sliding_window is not None:
    w = spec.sliding_window
    hi = jnp.minimum(hi, _cdiv(clip(s_last + w - row.q_offset), block_t))
    if not spec.causal:
      lo = jnp.maximum(lo, _div(clip(s0 - w + 1 - row.q_offset), block_t))
  if row.kv_length is not None:
    hi = jnp.where(s0 < row.kv_length, hi, 0)
  return lo, hi


def _forward_kernel(q_ref, k_ref, v_ref, *refs, spec: _Spec, block_q: int, block_k: int):
  """One program: query block i of head h, row b -> out tile [block_q, D] and lse [block_q]."""
  mrefs = _unpack(spec, refs[:-2])
  out_ref, lse_ref = refs[-2:]
  b, h = pl.program_id(2), pl.program_id(1)
  kv_h = lax.div(h, jnp.int32(spec.group))
  t0 = pl.program_id(0) * block_q
  t_in = t0 + jnp.arange(block_q) < spec.t
  d = q_ref.shape[-1]

  q = plgpu.load(q_ref.at[b, pl.ds(t0, block_q), h, :], mask=t_in[:, None], other=0.0)
  row = _row(mrefs, b)
  q_segment = _segment(mrefs.q_segment, b, t0, block_q, spec.t)

  def kv_step(j, carry):
    acc, m, l = carry
    _, v, logits, _, visible = _key_tile(spec, mrefs, row, k_ref, v_ref, q, b, h, kv_h, t0, j * block_k, block_q,
                                         block_k, q_segment)
    m_next = jnp.maximum(m, jnp.max(jnp.where(visible, logits, _MASKED), axis=1))
    # Masked scores get exactly 0, also while m is still the sentinel (exp(0) would be 1).
    p = jnp.where(visible, jnp.exp(logits - m_next[:, None]), 0.0)
    correction = jnp.exp(m - m_next)
    l = l * correction + jnp.sum(p, axis=1)
    acc = acc * correction[:, None] + jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return acc, m_next, l

  lo, hi = _kv_block_range(spec, row, t0, block_q, block_k)
  carry = (jnp.zeros((block_q, d), jnp.float32), jnp.full((block_q,), _MASKED, jnp.float32),
           jnp.zeros((block_q,), jnp.float32))
  acc, m, l = lax.fori_loop(lo, hi, kv_step, carry)

  # l > 0 iff the row saw a key (the max score contributes exp(0) = 1).
  seen = l > 0
  safe_l = jnp.where(seen, l, 1.0)
  out = acc / safe_l[:, None]
  lse = jnp.where(seen, m + jnp.log(safe_l), -jnp.inf)
  plgpu.store(out_ref.at[b, pl.ds(t0, block_q), h, :], out.astype(out_ref.dtype), mask=t_in[:, None])
  plgpu.store(lse_ref.at[b, pl.ds(t0, block_q), h], lse, mask=t_in)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, *refs, spec: _Spec, block_q: int,
               block_k: int):
  """One program: query block i of head h, row b -> dq tile [block_q, D] (loops over key blocks).

  With p = exp(score - lse): ds = p * (dout . v - delta), then times 1 - tanh^2 under a cap;
  dq = scale * ds @ k.
  """
  mrefs = _unpack(spec, refs[:-1])
  dq_ref = refs[-1]
  b, h = pl.program_id(2), pl.program_id(1)
  kv_h = lax.div(h, jnp.int32(spec.group))
  t0 = pl.program_id(0) * block_q
  t_in = t0 + jnp.arange(block_q) < spec.t
  d = q_ref.shape[-1]

  tile = (b, pl.ds(t0, block_q), h)
  q = plgpu.load(q_ref.at[(*tile, slice(None))], mask=t_in[:, None], other=0.0)
  do = plgpu.load(do_ref.at[(*tile, slice(None))], mask=t_in[:, None], other=0.0)
  lse = plgpu.load(lse_ref.at[tile], mask=t_in, other=0.0)
  delta = plgpu.load(delta_ref.at[tile], mask=t_in, other=0.0)
  row = _row(mrefs, b)
  q_segment = _segment(mrefs.q_segment, b, t0, block_q, spec.t)

  def kv_step(j, dq):
    k, v, logits, tanh, visible = _key_tile(spec, mrefs, row, k_ref, v_ref, q, b, h, kv_h, t0, j * block_k,
                                            block_q, block_k, q_segment)
    p = jnp.where(visible, jnp.exp(logits - lse[:, None]), 0.0)
    dp = lax.dot_general(do, v, _NT, preferred_element_type=jnp.float32)
    ds = p * (dp - delta[:, None])
    if tanh is not None:
      ds = ds * (1.0 - tanh * tanh)
    return dq + jnp.dot(ds.astype(k.dtype), k, preferred_element_type=jnp.float32)

  lo, hi = _kv_block_range(spec, row, t0, block_q, block_k)
  dq = lax.fori_loop(lo, hi, kv_step, jnp.zeros((block_q, d), jnp.float32))
  plgpu.store(dq_ref.at[(*tile, slice(None))], (dq * spec.scale).astype(dq_ref.dtype), mask=t_in[:, None])


def _dkv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, *refs, spec: _Spec, block_q: int,
                block_k: int):
  """One program: key block j of KV head kv_h, row b -> dk, dv tiles [block_k, D].

  Loops over the H / KV query heads that read kv_h and, inside, over query blocks:
  dv += p^T @ dout, dk += scale * ds^T @ q (p, ds as in `_dq_kernel`).
  """
  mrefs = _unpack(spec, refs[:-2])
  dk_ref, dv_ref = refs[-2:]
  b, kv_h = pl.program_id(2), pl.program_id(1)
  s0 = pl.program_id(0) * block_k
  s_in = (s0 + jnp.arange(block_k) < spec.s)[:, None]
  d = k_ref.shape[-1]

  kv_tile = (b, pl.ds(s0, block_k), kv_h, slice(None))
  k = plgpu.load(k_ref.at[kv_tile], mask=s_in, other=0.0)
  v = plgpu.load(v_ref.at[kv_tile], mask=s_in, other=0.0)
  row = _row(mrefs, b)
  kv_segment = _segment(mrefs.kv_segment, b, s0, block_k, spec.s)
  lo, hi = _q_block_range(spec, row, s0, block_k, block_q)

  def head(g, carry):
    h = kv_h * spec.group + g

    def q_step(i, carry):
      dk, dv = carry
      t0 = i * block_q
      t_in = t0 + jnp.arange(block_q) < spec.t
      tile = (b, pl.ds(t0, block_q), h)
      q = plgpu.load(q_ref.at[(*tile, slice(None))], mask=t_in[:, None], other=0.0)
      do = plgpu.load(do_ref.at[(*tile, slice(None))], mask=t_in[:, None], other=0.0)
      lse = plgpu.load(lse_ref.at[tile], mask=t_in, other=0.0)
      delta = plgpu.load(delta_ref.at[tile], mask=t_in, other=0.0)
      logits, tanh = _scores(spec, q, k)
      q_segment = _segment(mrefs.q_segment, b, t0, block_q, spec.t)
      visible = _visible(spec, mrefs, row, b, h, t0, s0, block_q, block_k, q_segment, kv_segment)
      p = jnp.where(visible, jnp.exp(logits - lse[:, None]), 0.0)
      dv = dv + lax.dot_general(p.astype(do.dtype), do, _TN, preferred_element_type=jnp.float32)
      dp = lax.dot_general(do, v, _NT, preferred_element_type=jnp.float32)
      ds = p * (dp - delta[:, None])
      if tanh is not None:
        ds = ds * (1.0 - tanh * tanh)
      dk = dk + lax.dot_general(ds.astype(q.dtype), q, _TN, preferred_element_type=jnp.float32)
      return dk, dv

    return lax.fori_loop(lo, hi, q_step, carry)

  carry = (jnp.zeros((block_k, d), jnp.float32), jnp.zeros((block_k, d), jnp.float32))
  if spec.group == 1:
    dk, dv = head(0, carry)
  else:
    dk, dv = lax.fori_loop(0, spec.group, head, carry)
  plgpu.store(dk_ref.at[kv_tile], (dk * spec.scale).astype(dk_ref.dtype), mask=s_in)
  plgpu.store(dv_ref.at[kv_tile], dv.astype(dv_ref.dtype), mask=s_in)


def _block(block: int, length: int) -> int:
  """The configured block, shrunk to the sequence (power of two, at least 16 for Triton's dot)."""
  return max(16, min(block, pl.next_power_of_2(length)))


def _compiler_params(config):
  return _compat.triton_compiler_params(num_warps=config.num_warps, num_stages=config.num_stages)


def _forward(q_bthd, k_bskd, v_bskd, mask_arrays, spec: _Spec, config, interpret: bool):
  """Returns out [B, T, H, D] in q's dtype and lse [B, T, H] float32."""
  b, t, h, d = q_bthd.shape
  block_q, block_k = _block(config.block_q, t), _block(config.block_k, spec.s)
  kernel = functools.partial(_forward_kernel, spec=spec, block_q=block_q, block_k=block_k)
  itemsize = q_bthd.dtype.itemsize
  return pl.pallas_call(
      kernel,
      out_shape=(jax.ShapeDtypeStruct(q_bthd.shape, q_bthd.dtype), jax.ShapeDtypeStruct((b, t, h), jnp.float32)),
      grid=(pl.cdiv(t, block_q), h, b),
      compiler_params=_compiler_params(config),
      cost_estimate=pl.CostEstimate(
          flops=4 * b * h * t * spec.s * d,
          transcendentals=b * h * t * spec.s,
          bytes_accessed=(2 * q_bthd.size + k_bskd.size + v_bskd.size) * itemsize + 4 * b * t * h,
      ),
      interpret=interpret,
      name="flash_attention_forward",
  )(q_bthd, k_bskd, v_bskd, *mask_arrays)


def _backward(q_bthd, k_bskd, v_bskd, mask_arrays, out_bthd, lse_bth, dout_bthd, dlse_bth, spec: _Spec,
              config, interpret: bool):
  """Returns dq, dk, dv in the input dtypes."""
  b, t, h, d = q_bthd.shape
  seen_bth = jnp.isfinite(lse_bth)
  # delta = rowsum(dout * out) - dlse: the softmax Jacobian's row term, with lse's own cotangent.
  delta_bth = jnp.sum(dout_bthd.astype(jnp.float32) * out_bthd.astype(jnp.float32), axis=-1) - dlse_bth
  # Rows that saw no key have p = 0 everywhere; keep their lse and delta finite so 0 * x stays 0.
  delta_bth = jnp.where(seen_bth, delta_bth, 0.0)
  lse_bth = jnp.where(seen_bth, lse_bth, 0.0)
  dout_bthd = dout_bthd.astype(q_bthd.dtype)
  operands = (q_bthd, k_bskd, v_bskd, dout_bthd, lse_bth, delta_bth, *mask_arrays)
  itemsize = q_bthd.dtype.itemsize
  cost = pl.CostEstimate(
      flops=8 * b * h * t * spec.s * d,
      transcendentals=b * h * t * spec.s,
      bytes_accessed=(3 * q_bthd.size + 3 * k_bskd.size) * itemsize + 8 * b * t * h,
  )

  block_q_dkv, block_k_dkv = _block(config.block_q_dkv, t), _block(config.block_k_dkv, spec.s)
  dk_bskd, dv_bskd = pl.pallas_call(
      functools.partial(_dkv_kernel, spec=spec, block_q=block_q_dkv, block_k=block_k_dkv),
      out_shape=(jax.ShapeDtypeStruct(k_bskd.shape, k_bskd.dtype), jax.ShapeDtypeStruct(v_bskd.shape, v_bskd.dtype)),
      grid=(pl.cdiv(spec.s, block_k_dkv), spec.kv, b),
      compiler_params=_compiler_params(config),
      cost_estimate=cost,
      interpret=interpret,
      name="flash_attention_backward_dkv",
  )(*operands)

  block_q, block_k = _block(config.block_q, t), _block(config.block_k, spec.s)
  dq_bthd = pl.pallas_call(
      functools.partial(_dq_kernel, spec=spec, block_q=block_q, block_k=block_k),
      out_shape=jax.ShapeDtypeStruct(q_bthd.shape, q_bthd.dtype),
      grid=(pl.cdiv(t, block_q), h, b),
      compiler_params=_compiler_params(config),
      cost_estimate=cost,
      interpret=interpret,
      name="flash_attention_backward_dq",
  )(*operands)
  return dq_bthd, dk_bskd, dv_bskd


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _flash(q_bthd, k_bskd, v_bskd, mask_arrays, spec: _Spec, config, interpret: bool):
  return _forward(q_bthd, k_bskd, v_bskd, mask_arrays, spec, config, interpret)


def _flash_fwd(q_bthd, k_bskd, v_bskd, mask_arrays, spec, config, interpret):
  out_bthd, lse_bth = _forward(q_bthd, k_bskd, v_bskd, mask_arrays, spec, config, interpret)
  return (out_bthd, lse_bth), (q_bthd, k_bskd, v_bskd, mask_arrays, out_bthd, lse_bth)


def _flash_bwd(spec, config, interpret, residuals, cotangents):
  q_bthd, k_bskd, v_bskd, mask_arrays, out_bthd, lse_bth = residuals
  dout_bthd, dlse_bth = cotangents
  grads = _backward(q_bthd, k_bskd, v_bskd, mask_arrays, out_bthd, lse_bth, dout_bthd, dlse_bth, spec, config,
                    interpret)
  return (*grads, None)  # The mask (integers and bools) has no cotangent.


_flash.defvjp(_flash_fwd, _flash_bwd)


def flash_attention(q_bthd: jax.Array, k_bskd: jax.Array, v_bskd: jax.Array, mask, *,
                    visible_fn: Callable[..., jax.Array], scale: float, logit_soft_cap: float | None, config,
                    interpret: bool) -> tuple[jax.Array, jax.Array]:
  """softmax(soft_cap(scale * q k^T) over visible keys) v; differentiable in q, k, v and through lse.

  Args:
    q_bthd: [B, T, H, D] queries; D a power of two in [16, 256].
    k_bskd, v_bskd: [B, S, KV, D], KV dividing H; q's dtype.
    mask: a `NormalizedMask` (static causal / sliding_window; arrays or None).
    visible_fn: the visibility rule on index vectors (the op's `visible_ts`).
    scale, logit_soft_cap: score = cap * tanh(scale * q.k / cap) (no tanh for cap None).
    config: a `FlashBlockConfig` (tiles, warps, stages).
    interpret: run in the Pallas interpreter.

  Raises:
    NotImplementedError: an explicit mask of 2^31 to 2^32 entries (see README.md).

  Returns:
    out [B, T, H, D] in q's dtype (zeros for a query that sees no key) and lse [B, T, H]
    float32 (-inf for such a query).
  """
  _, t, h, _ = q_bthd.shape
  s, kv = k_bskd.shape[1], k_bskd.shape[2]
  explicit = mask.explicit_bhts
  if not interpret and explicit is not None and 2**31 <= explicit.size <= 2**32:
    # Pallas uses 32-bit offsets for arrays up to 4 GiB; one-byte entries past 2^31 would wrap.
    raise NotImplementedError(f"pallas_triton: explicit mask of {explicit.size} entries needs 64-bit offsets")
  spec = _Spec(
      t=t, s=s, h=h, kv=kv, causal=mask.causal, sliding_window=mask.sliding_window,
      has_prefix=mask.prefix_length_b is not None, has_kv_length=mask.kv_length_b is not None,
      has_segments=mask.q_segment_ids_bt is not None,
      explicit_full_bh=None if explicit is None else (explicit.shape[0] != 1, explicit.shape[1] != 1),
      scale=float(scale), logit_soft_cap=None if logit_soft_cap is None else float(logit_soft_cap),
      visible_fn=visible_fn,
  )
  return _flash(q_bthd, k_bskd, v_bskd, _mask_arrays(mask), spec, config, interpret)
