"""Perplexity of a causal LM over a long token stream, with the standard sliding window.

The stream x_0..x_{N-1} is cut into windows of `context` model inputs. Window k starts at
b_k = k * stride, feeds x[b_k : b_k + context] and predicts x[b_k + 1 : b_k + context + 1].
Every target x_p (p = 1..N-1) is scored exactly once:
  * window 0 scores all its targets (p = 1..context), with p tokens of left context;
  * window k >= 1 scores only the targets no earlier window scored, which are its last
    `stride` targets, so each has between context - stride + 1 and context tokens of left
    context (windows overlap by context - stride tokens);
  * the last window is the first one that reaches x_{N-1}; it is cut at the end of the
    stream and right-padded.
x_0 has no left context and is never scored, so num_tokens = N - 1. stride == context gives
disjoint windows (cheapest, least context); stride == 1 gives every token a full context.

Windows run `batch_size` at a time through one jitted function of fixed shape
(batch_size, context): the last batch is padded with empty windows and every padded
position is masked out. Right padding is harmless only for a causal `logits_fn` (position t
sees inputs <= t), which a language model is.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class PerplexityResult(NamedTuple):
  """Summed negative log-likelihood (nats), tokens scored, and exp(nll_sum / num_tokens)."""

  nll_sum: float
  num_tokens: int
  perplexity: float


def sliding_window_perplexity(
    logits_fn: Callable[[jax.Array], jax.Array],
    tokens: np.ndarray,
    *,
    context: int,
    stride: int,
    batch_size: int,
) -> PerplexityResult:
  """Scores every token of `tokens` once under a causal model with a sliding window.

  Args:
    logits_fn: causal model, tokens_bt int32 (batch_size, context) -> logits_btv; must be
      traceable by `jax.jit`. Logits are upcast to float32 before the softmax.
    tokens: 1-D integer stream of N >= 2 ids, each < the model's vocabulary size.
    context: model input length per window (>= 1).
    stride: distance between window starts, 1 <= stride <= context.
    batch_size: windows per call of logits_fn.

  Returns:
    PerplexityResult(nll_sum, num_tokens = N - 1, perplexity); nll_sum is accumulated in
    float64 on the host.
  """
  tokens_n = np.asarray(tokens)
  if tokens_n.ndim != 1 or not np.issubdtype(tokens_n.dtype, np.integer):
    raise TypeError(f"tokens must be a 1-D integer array, got {tokens_n.dtype} of shape {tokens_n.shape}.")
  if tokens_n.size < 2:
    raise ValueError(f"tokens must hold at least 2 ids (one target with context), got {tokens_n.size}.")
  for name, value in (("context", context), ("stride", stride), ("batch_size", batch_size)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
  if stride > context:
    raise ValueError(f"stride must be <= context ({context}) so no token is skipped, got {stride}.")
  if tokens_n.min() < 0:
    raise ValueError("tokens must hold non-negative ids.")

  spec_bt = jax.ShapeDtypeStruct((batch_size, context), jnp.int32)
  logits_spec = jax.eval_shape(logits_fn, spec_bt)
  if getattr(logits_spec, "ndim", None) != 3 or tuple(logits_spec.shape[:2]) != (batch_size, context):
    raise ValueError(
        f"logits_fn must map int32 ({batch_size}, {context}) to logits (batch, time, vocab), got "
        f"{getattr(logits_spec, 'shape', type(logits_spec).__name__)}."
    )
  vocab_size = logits_spec.shape[2]
  if tokens_n.max() >= vocab_size:
    raise ValueError(f"tokens holds id {tokens_n.max()}, outside the model's vocabulary of {vocab_size}.")

  @jax.jit
  def masked_nll(inputs_bt, targets_bt, mask_bt):
    logp_btv = jax.nn.log_softmax(logits_fn(inputs_bt).astype(jnp.float32), axis=-1)
    nll_bt = -jnp.take_along_axis(logp_btv, targets_bt[..., None], axis=-1)[..., 0]
    return jnp.where(mask_bt, nll_bt, 0.0)

  starts = _window_starts(tokens_n.size, context, stride)
  nll_sum = 0.0
  num_tokens = 0
  for first in range(0, len(starts), batch_size):
    inputs_bt, targets_bt, mask_bt = _window_batch(tokens_n, starts, first, batch_size, context, stride)
    nll_bt = np.asarray(masked_nll(inputs_bt, targets_bt, mask_bt), np.float64)
    nll_sum += float(nll_bt.sum())
    num_tokens += int(mask_bt.sum())
  mean_nll = nll_sum / num_tokens
  return PerplexityResult(nll_sum, num_tokens, math.exp(mean_nll) if mean_nll < 700 else math.inf)


def _window_starts(num_stream_tokens: int, context: int, stride: int) -> np.ndarray:
  """b_k = k * stride for k = 0 .. the first window whose targets reach the last token."""
  last_target = num_stream_tokens - 1
  num_windows = 1 + max(0, -(-(last_target - context) // stride))  # ceil division
  return np.arange(num_windows, dtype=np.int64) * stride


def _window_batch(tokens_n, starts, first, batch_size, context, stride):
  """Inputs, targets and scored-mask of windows [first, first + batch_size), zero-padded."""
  last_target = tokens_n.size - 1
  starts_b = starts[first : first + batch_size]
  inputs_pos_bt = starts_b[:, None] + np.arange(context)[None, :]
  targets_pos_bt = inputs_pos_bt + 1
  # A window scores targets after the previous window's last one (b_{k-1} + context).
  window_ids_b = np.arange(first, first + len(starts_b))
  prev_last_b = np.where(window_ids_b == 0, 0, starts_b - stride + context)
  mask_bt = (targets_pos_bt > prev_last_b[:, None]) & (targets_pos_bt <= last_target)

  inputs_bt = np.zeros((batch_size, context), np.int32)
  targets_bt = np.zeros((batch_size, context), np.int32)
  full_mask_bt = np.zeros((batch_size, context), bool)
  n = len(starts_b)
  inputs_bt[:n] = np.where(inputs_pos_bt <= last_target, tokens_n[np.minimum(inputs_pos_bt, last_target)], 0)
  targets_bt[:n] = np.where(mask_bt, tokens_n[np.minimum(targets_pos_bt, last_target)], 0)
  full_mask_bt[:n] = mask_bt
  return inputs_bt, targets_bt, full_mask_bt
