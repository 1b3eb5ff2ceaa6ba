"""Public attention op: `attention`, dispatched to XLA, cuDNN or a Pallas flash kernel.

Every model in jaxlab attends through this one function. Shapes follow the usual layout
q [B, T, H, D], k and v [B, S, KV, D] (grouped-query attention when KV < H); which keys a
query sees is described by an `AttentionMask` (causal, sliding window, prefix-LM, segment
ids, key lengths, an explicit boolean mask), never by a [T, S] array the caller builds.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.ops import registry
from jaxlab.ops.attention_op.mask import AttentionMask, NormalizedMask, normalize, visible_ts
from jaxlab.ops.attention_op.reference import attention_reference
from kernels_pallas.attention.config import FlashBlockConfig

_FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)


def _xla(q, k, v, mask, *, scale, logit_soft_cap, return_lse, block_config, interpret):
  del return_lse, block_config, interpret  # The log-sum-exp comes for free; launch settings mean nothing to XLA.
  return attention_reference(q, k, v, mask, scale=scale, logit_soft_cap=logit_soft_cap)


def _cudnn_mask_arguments(mask: NormalizedMask, t: int, s: int) -> dict:
  """The keyword arguments of `jax.nn.dot_product_attention` that express `mask`, or
  NotImplementedError naming the part cuDNN cannot take."""
  if mask.prefix_length_b is not None:
    raise NotImplementedError("cudnn has no prefix-LM mask")
  if mask.q_segment_ids_bt is not None:
    raise NotImplementedError("cudnn path of jax.nn.dot_product_attention takes no segment ids")
  if mask.explicit_bhts is not None:
    raise NotImplementedError("cudnn takes no explicit boolean mask here (it would materialize [T, S])")
  # cuDNN's causal mask is aligned at the top-left (query t sees keys <= t): the offset must be 0,
  # which only self-attention (T == S with the default offset) guarantees without looking at values.
  if (mask.causal or mask.sliding_window is not None) and (t != s or not mask.default_offset):
    raise NotImplementedError(
        f"cudnn aligns causal and window masks top-left; needs T == S (got {t}, {s}) and no q_offset")
  if mask.sliding_window is not None and not mask.causal:
    raise NotImplementedError("cudnn supports sliding windows only with causal masking")
  arguments = dict(is_causal=mask.causal)
  if mask.sliding_window is not None:
    arguments["local_window_size"] = (mask.sliding_window - 1, 0)
  if mask.kv_length_b is not None:
    arguments["key_value_seq_lengths"] = mask.kv_length_b
  return arguments


def _cudnn(q, k, v, mask, *, scale, logit_soft_cap, return_lse, block_config, interpret):
  del block_config, interpret
  registry.require_platform("cudnn", interpret=False)
  if return_lse:
    # jax's cuDNN backward drops the residual's cotangent: a gradient through lse would be wrong.
    raise NotImplementedError("cudnn returns a log-sum-exp that gradients do not flow through")
  if logit_soft_cap is not None:
    raise NotImplementedError("cudnn has no logit soft-cap")
  if q.dtype not in _CUDNN_DTYPES:
    raise NotImplementedError(f"cudnn needs bfloat16 or float16 inputs, got {q.dtype}")
  d = q.shape[-1]
  if d % 8 or d > 128:
    raise NotImplementedError(f"cudnn needs a head dim that is a multiple of 8 and at most 128, got {d}")
  arguments = _cudnn_mask_arguments(mask, q.shape[1], k.shape[1])
  try:
    out = jax.nn.dot_product_attention(q, k, v, scale=scale, implementation="cudnn", **arguments)
  except ValueError as e:  # jax's own checks of what its cuDNN path supports, at trace time.
    raise NotImplementedError(f"jax.nn.dot_product_attention refused the cudnn path: {e}") from e
  return out, None  # No log-sum-exp was asked for.


def _pallas_triton(q, k, v, mask, *, scale, logit_soft_cap, return_lse, block_config, interpret):
  del return_lse  # Always computed: the backward needs it.
  registry.require_platform("pallas_triton", interpret=interpret)
  if q.dtype not in _FLOAT_DTYPES:
    raise NotImplementedError(f"pallas_triton supports float32/bfloat16/float16, got {q.dtype}")
  d = q.shape[-1]
  if d < 16 or d > 256 or d & (d - 1):
    raise NotImplementedError(f"pallas_triton needs a power-of-two head dim in [16, 256], got {d}")
  config = block_config or FlashBlockConfig.heuristic(q.shape[1], k.shape[1], d)
  kernel = registry.load_kernel("pallas_triton", "kernels_pallas.attention.triton")
  return kernel.flash_attention(
      q, k, v, mask, visible_fn=visible_ts, scale=scale, logit_soft_cap=logit_soft_cap, config=config,
      interpret=interpret,
  )


_ATTENTION = registry.Op(
    "attention",
    {"xla": _xla, "cudnn": _cudnn, "pallas_triton": _pallas_triton},
    preference={"gpu": ("cudnn", "pallas_triton", "xla"), "cpu": ("xla",)},
)


def check_arguments(q, k, v, scale, logit_soft_cap, block_config) -> None:
  """Raises ValueError/TypeError naming the argument, before anything is traced."""
  for name, array in (("q", q), ("k", k), ("v", v)):
    if np.ndim(array) != 4:
      layout = "[B, T, H, D]" if name == "q" else "[B, S, KV, D]"
      raise ValueError(f"attention: {name} must be 4-D {layout}, got shape {tuple(np.shape(array))}")
  (b, t, h, d), (bk, s, kv, dk) = q.shape, k.shape
  if v.shape != k.shape:
    raise ValueError(f"attention: v must have k's shape {tuple(k.shape)} [B, S, KV, D], got {tuple(v.shape)}")
  if bk != b:
    raise ValueError(f"attention: q has batch {b} but k and v have batch {bk}")
  if dk != d:
    raise ValueError(f"attention: q has head dim {d} but k and v have head dim {dk}")
  if kv < 1 or h % kv:
    raise ValueError(f"attention: the {kv} key/value heads must divide the {h} query heads")
  if not (q.dtype == k.dtype == v.dtype):
    raise ValueError(f"attention: q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if not jnp.issubdtype(q.dtype, jnp.floating):
    raise ValueError(f"attention: q, k and v must be floating point, got {q.dtype}")
  if 0 in (b, t, h, d, s):
    raise ValueError(f"attention: empty input (q {tuple(q.shape)}, k {tuple(k.shape)})")
  if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
    raise ValueError(f"attention: scale must be a positive finite number or None, got {scale!r}")
  if logit_soft_cap is not None and not (
      isinstance(logit_soft_cap, (int, float)) and math.isfinite(logit_soft_cap) and logit_soft_cap > 0):
    raise ValueError(f"attention: logit_soft_cap must be a positive finite number or None, got {logit_soft_cap!r}")
  if block_config is not None and not isinstance(block_config, FlashBlockConfig):
    raise TypeError(f"attention: block_config must be a FlashBlockConfig or None, got {type(block_config).__name__}")


def _prepared(q, k, v, mask, scale, logit_soft_cap, return_lse, block_config):
  check_arguments(q, k, v, scale, logit_soft_cap, block_config)
  normalized = normalize(mask, q.shape[0], q.shape[2], q.shape[1], k.shape[1])
  scale = float(q.shape[-1] ** -0.5 if scale is None else scale)
  cap = None if logit_soft_cap is None else float(logit_soft_cap)
  return normalized, dict(scale=scale, logit_soft_cap=cap, return_lse=bool(return_lse), block_config=block_config)


def attention(
    q_bthd: jax.Array,
    k_bskd: jax.Array,
    v_bskd: jax.Array,
    mask: AttentionMask | None = None,
    *,
    scale: float | None = None,
    logit_soft_cap: float | None = None,
    return_lse: bool = False,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    block_config: FlashBlockConfig | None = None,
):
  """softmax(soft_cap(scale * q k^T) over visible keys) v, per head; GQA when KV < H.

  Query head h reads key/value head h // (H / KV). Scores and softmax run in float32 in every
  implementation. A query that sees no key returns zeros (and a log-sum-exp of -inf), never
  NaN. Works under `jax.jit`, `jax.grad` (q, k and v; the log-sum-exp too) and `jax.vmap`.

  Args:
    q_bthd: [B, T, H, D] queries.
    k_bskd: [B, S, KV, D] keys, KV dividing H; same dtype as q.
    v_bskd: [B, S, KV, D] values.
    mask: which keys each query sees (`AttentionMask`); None: all of them.
    scale: multiplies q k^T; None: 1 / sqrt(D).
    logit_soft_cap: c > 0 replaces each score x by c * tanh(x / c); None: no cap.
    return_lse: also return the log-sum-exp of the (scaled, capped) scores.
    implementation: None (best available: cudnn, pallas_triton, xla on GPU; xla on CPU), one
      of `registry.IMPLEMENTATIONS`, or a sequence tried in order.
    interpret: run Pallas implementations in the Pallas interpreter (any backend, slow).
    block_config: flash-kernel tiles; None picks `FlashBlockConfig.heuristic`.

  Returns:
    out [B, T, H, D] in q's dtype, or (out, lse [B, T, H] float32) with `return_lse`.

  Raises:
    ValueError / TypeError: bad shapes, dtypes, mask fields or settings, naming the argument.
    registry.NoImplementationError: no requested implementation could serve the call.
  """
  normalized, settings = _prepared(q_bthd, k_bskd, v_bskd, mask, scale, logit_soft_cap, return_lse, block_config)
  out_bthd, lse_bth = _ATTENTION(
      q_bthd, k_bskd, v_bskd, normalized, implementation=implementation, interpret=interpret, **settings
  )
  return (out_bthd, lse_bth) if return_lse else out_bthd


def resolve_attention(
    q_bthd, k_bskd, v_bskd, mask: AttentionMask | None = None, *, scale: float | None = None,
    logit_soft_cap: float | None = None, return_lse: bool = False, implementation: registry.ImplementationArg = None,
    interpret: bool = False, block_config: FlashBlockConfig | None = None,
) -> str:
  """Name of the implementation `attention` would run for these arguments; runs nothing."""
  normalized, settings = _prepared(q_bthd, k_bskd, v_bskd, mask, scale, logit_soft_cap, return_lse, block_config)
  return _ATTENTION.resolve(
      q_bthd, k_bskd, v_bskd, normalized, implementation=implementation, interpret=interpret, **settings
  )


def attention_decode(
    q_bthd: jax.Array,
    k_cache_bskd: jax.Array,
    v_cache_bskd: jax.Array,
    cache_fill: int | jax.Array,
    *,
    kv_valid_bs: jax.Array | None = None,
    sliding_window: int | None = None,
    scale: float | None = None,
    logit_soft_cap: float | None = None,
    implementation: registry.ImplementationArg = None,
    interpret: bool = False,
    block_config: FlashBlockConfig | None = None,
) -> jax.Array:
  """The decode form: T new queries (one or a few) against a preallocated KV cache.

  The new tokens' keys and values are already written at slots [fill, fill + T) of each row;
  query t sits at slot fill + t and sees the filled slots up to its own (causal), so slots
  not yet written never count whatever they hold. Cost and memory are linear in the cache
  length S.

  Args:
    q_bthd: [B, T, H, D] queries of the new tokens.
    k_cache_bskd, v_cache_bskd: [B, S, KV, D] the cache, new tokens included.
    cache_fill: int or int array, scalar or [B]: slots filled before the new tokens.
    kv_valid_bs: [B, S] bool, False for slots holding padding (a left-padded batch); None: all real.
    sliding_window, scale, logit_soft_cap, implementation, interpret: as for `attention`.
    block_config: None picks the heuristic's decode tiles (16 query rows, long key tiles).

  Returns:
    [B, T, H, D] in q's dtype.
  """
  b, t = q_bthd.shape[:2]
  fill = jnp.asarray(cache_fill, jnp.int32)
  segments = {}
  if kv_valid_bs is not None:
    if np.shape(kv_valid_bs) != (b, np.shape(k_cache_bskd)[1]):
      raise ValueError(f"attention_decode: kv_valid_bs must have shape (B, S) = {(b, np.shape(k_cache_bskd)[1])}, "
                       f"got {tuple(np.shape(kv_valid_bs))}")
    # Real slots form segment 1, padding segment 0; the new (real) queries are in segment 1.
    segments = dict(q_segment_ids=jnp.ones((b, t), jnp.int32), kv_segment_ids=jnp.asarray(kv_valid_bs, jnp.int32))
  mask = AttentionMask(causal=True, sliding_window=sliding_window, q_offset=fill, **segments)
  return attention(q_bthd, k_cache_bskd, v_cache_bskd, mask, scale=scale, logit_soft_cap=logit_soft_cap,
                   implementation=implementation, interpret=interpret, block_config=block_config)
