"""Greedy decoding without a KV cache, and simple checks on generated continuations.

`greedy_generate` keeps one fixed-length token buffer (prompt + max_new_tokens, padded) and
re-runs the whole model on it at every step, reading the logits at the last filled position.
The buffer shape never changes, so the model is traced and compiled once per call, and the
result matches step-by-step decoding on the growing prefix for any causal model. It costs
max_new_tokens full forward passes: meant for short evaluation samples, not serving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class PrefixAgreement(NamedTuple):
  """How far two continuations agree: common-prefix length, and equal-token fraction in the first k."""

  prefix_len: int
  match_fraction: float
  k: int


def greedy_generate(
    logits_fn: Callable[[jax.Array], jax.Array],
    prompt_ids: np.ndarray | Sequence[int],
    max_new_tokens: int,
    *,
    pad_id: int = 0,
) -> np.ndarray:
  """Appends max_new_tokens argmax tokens to each prompt.

  Args:
    logits_fn: causal model, tokens_bl int32 -> logits_blv; must be traceable by `jax.jit`.
      It always sees (batch, prompt_len + max_new_tokens) tokens; positions not yet
      generated hold pad_id, which a causal model never reads for earlier positions.
    prompt_ids: one prompt (P,) or a batch of equal-length prompts (B, P), P >= 1.
    max_new_tokens: tokens to generate (>= 0).
    pad_id: filler for not-yet-generated positions.

  Returns:
    The generated tokens only, int32, (max_new_tokens,) or (B, max_new_tokens) to match the
    prompt's rank. Ties in the argmax go to the lowest id.
  """
  prompt = np.asarray(prompt_ids)
  if prompt.ndim not in (1, 2) or not np.issubdtype(prompt.dtype, np.integer) or prompt.shape[-1] < 1:
    raise ValueError(
        f"prompt_ids must be integer ids of shape (P,) or (B, P) with P >= 1, got {prompt.dtype} "
        f"{prompt.shape}."
    )
  if not _is_int(max_new_tokens) or max_new_tokens < 0:
    raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}.")
  prompt_bp = prompt[None] if prompt.ndim == 1 else prompt
  batch, prompt_len = prompt_bp.shape
  total_len = prompt_len + int(max_new_tokens)
  if max_new_tokens == 0:
    out_bn = np.zeros((batch, 0), np.int32)
    return out_bn[0] if prompt.ndim == 1 else out_bn

  logits_spec = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((batch, total_len), jnp.int32))
  if getattr(logits_spec, "ndim", None) != 3 or tuple(logits_spec.shape[:2]) != (batch, total_len):
    raise ValueError(
        f"logits_fn must map int32 ({batch}, {total_len}) to logits (batch, time, vocab), got "
        f"{getattr(logits_spec, 'shape', type(logits_spec).__name__)}."
    )

  buffer_bl = np.full((batch, total_len), pad_id, np.int32)
  buffer_bl[:, :prompt_len] = prompt_bp

  @jax.jit
  def generate(buffer_bl):
    def step(i, buffer_bl):
      position = prompt_len + i
      logits_bv = logits_fn(buffer_bl)[:, position - 1]  # prediction for `position`
      next_b = jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
      return buffer_bl.at[:, position].set(next_b)

    return jax.lax.fori_loop(0, max_new_tokens, step, buffer_bl)

  out_bn = np.asarray(generate(buffer_bl))[:, prompt_len:]
  return out_bn[0] if prompt.ndim == 1 else out_bn


def distinct_n(token_lists: Sequence[Sequence[int]], n: int) -> float:
  """Distinct-n: unique n-grams / total n-grams, pooled over all sequences.

  Sequences shorter than n contribute no n-grams; with no n-gram at all the result is 0.0.
  1.0 means no n-gram repeats anywhere; low values flag repetitive generations.
  """
  if not _is_int(n) or n < 1:
    raise ValueError(f"n must be an int >= 1, got {n!r}.")
  if isinstance(token_lists, (str, bytes)) or not isinstance(token_lists, (Sequence, np.ndarray)):
    raise TypeError(f"token_lists must be a sequence of token sequences, got {type(token_lists).__name__}.")
  total = 0
  unique = set()
  for i, ids in enumerate(token_lists):
    ids = _as_id_tuple(ids, f"token_lists[{i}]")
    grams = [ids[j : j + n] for j in range(len(ids) - n + 1)]
    total += len(grams)
    unique.update(grams)
  return len(unique) / total if total else 0.0


def prefix_agreement(
    a_ids: Sequence[int], b_ids: Sequence[int], k: int | None = None
) -> PrefixAgreement:
  """Compares two continuations (e.g. of a reference and a quantized model).

  Args:
    a_ids, b_ids: 1-D token ids.
    k: compare the first k tokens; defaults to the shorter length. Must be in
      [1, min(len(a_ids), len(b_ids))].

  Returns:
    PrefixAgreement(prefix_len: tokens before the first difference (over the full shorter
    length), match_fraction: equal positions among the first k / k, k).
  """
  a = _as_id_tuple(a_ids, "a_ids")
  b = _as_id_tuple(b_ids, "b_ids")
  shorter = min(len(a), len(b))
  k = shorter if k is None else k
  if not _is_int(k) or not 1 <= k <= shorter:
    raise ValueError(f"k must be an int in [1, {shorter}] (the shorter continuation's length), got {k!r}.")
  prefix_len = 0
  while prefix_len < shorter and a[prefix_len] == b[prefix_len]:
    prefix_len += 1
  matches = sum(x == y for x, y in zip(a[:k], b[:k]))
  return PrefixAgreement(prefix_len, matches / int(k), int(k))


def _as_id_tuple(ids, name: str) -> tuple[int, ...]:
  ids_n = np.asarray(ids)
  if ids_n.ndim != 1 or not (np.issubdtype(ids_n.dtype, np.integer) or ids_n.size == 0):
    raise ValueError(f"{name} must be a 1-D sequence of integer ids, got {ids_n.dtype} {ids_n.shape}.")
  return tuple(int(t) for t in ids_n)


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
