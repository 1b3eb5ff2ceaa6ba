"""Attention in plain jnp: the XLA implementation and the ground truth for the kernels.

It materializes the [B, H, T, S] scores, so memory grows with T*S; the kernels do not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.ops.attention_op.mask import NormalizedMask, dense_visible_bhts


def soft_cap(logits: jax.Array, cap: float | None) -> jax.Array:
  """cap * tanh(logits / cap) (Gemma 2's logit soft-capping); identity for cap None."""
  return logits if cap is None else cap * jnp.tanh(logits / cap)


def attention_reference(
    q_bthd: jax.Array,
    k_bskd: jax.Array,
    v_bskd: jax.Array,
    mask: NormalizedMask,
    *,
    scale: float,
    logit_soft_cap: float | None = None,
) -> tuple[jax.Array, jax.Array]:
  """softmax(soft_cap(scale * q k^T)) v over the visible keys; query head h reads KV head h // (H/KV).

  Scores, soft-cap and softmax run in float32; the probabilities are cast to v's dtype before
  weighting v (as transformers does), with float32 accumulation. A query that sees no key
  gets zeros and a log-sum-exp of -inf. Differentiable by autodiff (no NaN from masked rows).

  Returns:
    (out [B, T, H, D] in q's dtype, lse [B, T, H] float32: log sum_s exp(logit_s) over visible s).
  """
  b, t, h, d = q_bthd.shape
  s, kv = k_bskd.shape[1], k_bskd.shape[2]
  group = h // kv
  q_btkgd = q_bthd.reshape(b, t, kv, group, d)
  logits_bkgts = jnp.einsum("btkgd,bskd->bkgts", q_btkgd, k_bskd, preferred_element_type=jnp.float32)
  logits_bkgts = soft_cap(logits_bkgts * jnp.float32(scale), logit_soft_cap)
  visible_bhts = dense_visible_bhts(mask, b, h, t, s)
  visible_bkgts = visible_bhts.reshape(b, kv, group, t, s) if visible_bhts.shape[1] == h else visible_bhts[:, None]
  logits_bkgts = jnp.where(visible_bkgts, logits_bkgts, -jnp.inf)
  max_bkgt = jnp.max(logits_bkgts, axis=-1)
  # Rows with no visible key: subtract 0 instead of -inf, so exp gives 0, not NaN.
  max_bkgt = jax.lax.stop_gradient(jnp.where(jnp.isfinite(max_bkgt), max_bkgt, 0.0))
  weights_bkgts = jnp.exp(logits_bkgts - max_bkgt[..., None])
  total_bkgt = jnp.sum(weights_bkgts, axis=-1)
  safe_total_bkgt = jnp.where(total_bkgt > 0, total_bkgt, 1.0)
  probs_bkgts = (weights_bkgts / safe_total_bkgt[..., None]).astype(v_bskd.dtype)
  out_btkgd = jnp.einsum("bkgts,bskd->btkgd", probs_bkgts, v_bskd, preferred_element_type=jnp.float32)
  lse_bkgt = jnp.where(total_bkgt > 0, max_bkgt + jnp.log(safe_total_bkgt), -jnp.inf)
  out_bthd = out_btkgd.reshape(b, t, h, d).astype(q_bthd.dtype)
  lse_bth = jnp.transpose(lse_bkgt, (0, 3, 1, 2)).reshape(b, t, h)
  return out_bthd, lse_bth
