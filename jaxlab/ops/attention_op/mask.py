"""Attention masks described by structure, not by a materialized [T, S] array.

A key at index s is visible to the query at index t of row b when every part that is set
allows it. With q_pos = q_offset[b] + t (the query's index in key coordinates):

  causal             s <= q_pos, or s < prefix_length[b] when a prefix is given (prefix-LM)
  sliding_window w   q_pos - s < w (and s - q_pos < w when not causal)
  kv_length[b]       s < kv_length[b]            (right padding, or a cache's fill)
  segment ids        q_segment_ids[b, t] == kv_segment_ids[b, s]   (packed sequences)
  explicit mask      mask[b, h, t, s]            (the general case; broadcast over b and h)

`visible_ts` evaluates this rule on index vectors; the XLA reference applies it to the whole
[T, S] grid and the flash kernels to one tile at a time, so every implementation shares it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttentionMask:
  """Which keys each query sees (see the module docstring for the rule).

  Array fields are pytree children (they may be traced); `causal` and `sliding_window` are
  static. Every field is optional: the default mask lets every query see every key.

  Attributes:
    causal: queries see keys at or before their own position.
    sliding_window: w >= 1: a query sees only keys fewer than w positions away.
    q_offset: int or int array, scalar or [B]: key index of query 0. None: S - T (the T
      queries are the last T positions; equal to 0 for self-attention).
    prefix_length: [B] int: keys before it are visible to every query (prefix-LM); needs causal.
    kv_length: [B] int: keys at index >= kv_length[b] are masked.
    q_segment_ids: [B, T] int and kv_segment_ids: [B, S] int, given together: a query sees
      only keys of its own segment.
    explicit: bool, [T, S], [B, T, S] or [B, H, T, S], any leading size 1 broadcasting.
  """

  causal: bool = dataclasses.field(default=False, metadata=dict(static=True))
  sliding_window: int | None = dataclasses.field(default=None, metadata=dict(static=True))
  q_offset: Any = None
  prefix_length: Any = None
  kv_length: Any = None
  q_segment_ids: Any = None
  kv_segment_ids: Any = None
  explicit: Any = None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NormalizedMask:
  """An `AttentionMask` checked against the shapes of one call, in the form kernels take.

  q_offset is always a [B] int32 array; the other arrays are int32 (explicit: bool, 4-D
  [B or 1, H or 1, T, S]) or None. The static fields are copied; `default_offset` records that
  q_offset was not given (so it is S - T), which implementations that cannot read offsets need.
  """

  causal: bool = dataclasses.field(metadata=dict(static=True))
  sliding_window: int | None = dataclasses.field(metadata=dict(static=True))
  default_offset: bool = dataclasses.field(metadata=dict(static=True))
  q_offset_b: jax.Array
  prefix_length_b: jax.Array | None
  kv_length_b: jax.Array | None
  q_segment_ids_bt: jax.Array | None
  kv_segment_ids_bs: jax.Array | None
  explicit_bhts: jax.Array | None


def _shape_error(name: str, want: str, got) -> ValueError:
  return ValueError(f"attention mask: {name} must have shape {want}, got {tuple(np.shape(got))}")


def _int_array(name: str, value, shape: tuple[int, ...], want: str) -> jax.Array:
  if not jnp.issubdtype(jnp.result_type(value), jnp.integer):
    raise ValueError(f"attention mask: {name} must be integer, got dtype {jnp.result_type(value)}")
  if tuple(np.shape(value)) != shape:
    raise _shape_error(name, want, value)
  return jnp.asarray(value, jnp.int32)


def normalize(mask: AttentionMask | None, b: int, h: int, t: int, s: int) -> NormalizedMask:
  """Checks `mask` against q [B, T, H, D] and k [B, S, KV, D]; raises ValueError naming the field."""
  mask = AttentionMask() if mask is None else mask
  if not isinstance(mask, AttentionMask):
    raise TypeError(f"mask must be an AttentionMask or None, got {type(mask).__name__}")
  if not isinstance(mask.causal, bool):
    raise ValueError(f"attention mask: causal must be a bool, got {mask.causal!r}")
  window = mask.sliding_window
  if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
    raise ValueError(f"attention mask: sliding_window must be a positive int or None, got {window!r}")
  if mask.prefix_length is not None and not mask.causal:
    raise ValueError("attention mask: prefix_length needs causal=True (a prefix-LM is causal after the prefix)")
  if (mask.q_segment_ids is None) != (mask.kv_segment_ids is None):
    raise ValueError("attention mask: q_segment_ids and kv_segment_ids must be given together")

  if mask.q_offset is None:
    q_offset_b = jnp.full((b,), s - t, jnp.int32)
  elif np.ndim(mask.q_offset) == 0:
    if not jnp.issubdtype(jnp.result_type(mask.q_offset), jnp.integer):
      raise ValueError(f"attention mask: q_offset must be integer, got dtype {jnp.result_type(mask.q_offset)}")
    q_offset_b = jnp.full((b,), mask.q_offset, jnp.int32)
  else:
    q_offset_b = _int_array("q_offset", mask.q_offset, (b,), f"() or ({b},) = (B,)")

  optional = lambda name, shape, want: None if getattr(mask, name) is None else _int_array(
      name, getattr(mask, name), shape, want)
  explicit = None
  if mask.explicit is not None:
    explicit = mask.explicit
    if jnp.result_type(explicit) != jnp.bool_:
      raise ValueError(f"attention mask: explicit must be bool, got dtype {jnp.result_type(explicit)}")
    shape = tuple(np.shape(explicit))
    want = f"({t}, {s}), (B|1, {t}, {s}) or (B|1, H|1, {t}, {s}) with B={b}, H={h}"
    if len(shape) not in (2, 3, 4) or shape[-2:] != (t, s):
      raise _shape_error("explicit", want, explicit)
    shape4 = (1,) * (4 - len(shape)) + shape
    if shape4[0] not in (1, b) or shape4[1] not in (1, h):
      raise _shape_error("explicit", want, explicit)
    explicit = jnp.reshape(explicit, shape4)
  return NormalizedMask(
      causal=mask.causal,
      sliding_window=window,
      default_offset=mask.q_offset is None,
      q_offset_b=q_offset_b,
      prefix_length_b=optional("prefix_length", (b,), f"({b},) = (B,)"),
      kv_length_b=optional("kv_length", (b,), f"({b},) = (B,)"),
      q_segment_ids_bt=optional("q_segment_ids", (b, t), f"({b}, {t}) = (B, T)"),
      kv_segment_ids_bs=optional("kv_segment_ids", (b, s), f"({b}, {s}) = (B, S)"),
      explicit_bhts=explicit,
  )


def visible_ts(
    q_index_t: jax.Array,
    k_index_s: jax.Array,
    *,
    causal: bool,
    sliding_window: int | None,
    q_offset: jax.Array,
    prefix_length: jax.Array | None = None,
    kv_length: jax.Array | None = None,
    q_segment_t: jax.Array | None = None,
    kv_segment_s: jax.Array | None = None,
) -> jax.Array:
  """[t, s] bool: which of the keys `k_index_s` the queries `q_index_t` see, for one row.

  The structural part of the rule (all but the explicit mask). Scalars are one row's values;
  index vectors may be a tile's. Pure jnp on small integer arrays: usable inside kernels.
  """
  q_pos = (q_offset + q_index_t)[:, None]
  k_idx = k_index_s[None, :]
  visible = jnp.ones((q_index_t.shape[0], k_index_s.shape[0]), jnp.bool_)
  if causal:
    allowed = k_idx <= q_pos
    if prefix_length is not None:
      allowed = allowed | (k_idx < prefix_length)
    visible = visible & allowed
  if sliding_window is not None:
    visible = visible & (q_pos - k_idx < sliding_window)
    if not causal:
      visible = visible & (k_idx - q_pos < sliding_window)
  if kv_length is not None:
    visible = visible & (k_idx < kv_length)
  if q_segment_t is not None:
    visible = visible & (q_segment_t[:, None] == kv_segment_s[None, :])
  return visible


def dense_visible_bhts(mask: NormalizedMask, b: int, h: int, t: int, s: int) -> jax.Array:
  """[B, H|1, T, S] bool, the whole mask materialized (for the XLA reference and tests)."""
  def one_row(q_offset, prefix, kv_len, q_seg, kv_seg):
    return visible_ts(
        jnp.arange(t), jnp.arange(s), causal=mask.causal, sliding_window=mask.sliding_window,
        q_offset=q_offset, prefix_length=prefix, kv_length=kv_len, q_segment_t=q_seg, kv_segment_s=kv_seg,
    )

  args = (mask.q_offset_b, mask.prefix_length_b, mask.kv_length_b, mask.q_segment_ids_bt, mask.kv_segment_ids_bs)
  in_axes = tuple(None if a is None else 0 for a in args)
  visible_bts = jax.vmap(one_row, in_axes=in_axes)(*args)
  visible_bhts = visible_bts[:, None]
  if mask.explicit_bhts is not None:
    visible_bhts = visible_bhts & mask.explicit_bhts
  return jnp.broadcast_to(visible_bhts, (b, visible_bhts.shape[1], t, s))

