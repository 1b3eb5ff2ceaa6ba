"""Greedy generation against a step-by-step numpy loop; distinct-n and prefix agreement by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.eval import distinct_n, greedy_generate, prefix_agreement

_VOCAB = 13
_TABLE_VV = np.random.default_rng(0).standard_normal((_VOCAB, _VOCAB)).astype(np.float32)
_COUNT_WEIGHT = -0.9  # discourages repeats, so continuations do not collapse to one token


def _counting_logits(tokens_bl):
  """Causal: bigram logits plus a weight times the counts of each id seen so far."""
  counts_blv = jnp.cumsum(jax.nn.one_hot(tokens_bl, _VOCAB), axis=1)
  return jnp.asarray(_TABLE_VV)[tokens_bl] + _COUNT_WEIGHT * counts_blv


def _naive_greedy(prompt, max_new_tokens):
  """Recomputes the next-token logits on the growing, unpadded prefix with numpy."""
  sequence = list(prompt)
  for _ in range(max_new_tokens):
    prefix = np.asarray(sequence)
    logits_v = _TABLE_VV[prefix[-1]] + _COUNT_WEIGHT * np.bincount(prefix, minlength=_VOCAB)
    sequence.append(int(np.argmax(logits_v)))
  return sequence[len(prompt):]


def test_matches_step_by_step_decoding():
  prompt = [3, 1, 4, 1, 5]
  out = greedy_generate(_counting_logits, prompt, max_new_tokens=12)
  assert out.shape == (12,) and out.dtype == np.int32
  assert out.tolist() == _naive_greedy(prompt, 12)
  assert len(set(out.tolist())) > 1


def test_batched_prompts_match_single_prompts():
  prompts_bp = np.random.default_rng(1).integers(0, _VOCAB, size=(3, 4))
  out = greedy_generate(_counting_logits, prompts_bp, max_new_tokens=7, pad_id=5)
  assert out.shape == (3, 7)
  for prompt, row in zip(prompts_bp, out):
    assert row.tolist() == _naive_greedy(prompt.tolist(), 7)


def test_model_is_traced_once_for_all_steps():
  traces = []

  def logits_fn(tokens_bl):
    traces.append(tokens_bl.shape)
    return _counting_logits(tokens_bl)

  greedy_generate(logits_fn, [1, 2], max_new_tokens=10)
  assert traces and all(shape == (1, 12) for shape in traces) and len(traces) <= 2  # shape check + jit


def test_zero_new_tokens_and_bad_arguments():
  assert greedy_generate(_counting_logits, [1, 2], 0).shape == (0,)
  with pytest.raises(ValueError, match="prompt_ids"):
    greedy_generate(_counting_logits, [], 3)
  with pytest.raises(ValueError, match="prompt_ids"):
    greedy_generate(_counting_logits, [[[1]]], 3)
  with pytest.raises(ValueError, match="max_new_tokens"):
    greedy_generate(_counting_logits, [1], -1)
  with pytest.raises(ValueError, match=r"\(batch, time, vocab\)"):
    greedy_generate(lambda t: _counting_logits(t)[:, -1], [1], 2)


def test_distinct_n():
  assert distinct_n([[1, 2, 3, 1, 2]], 1) == 3 / 5
  assert distinct_n([[1, 2, 3, 1, 2]], 2) == 3 / 4  # (1,2) repeats
  assert distinct_n([[1, 2, 3, 1, 2]], 5) == 1.0
  assert distinct_n([[1, 2, 3, 1, 2]], 6) == 0.0  # no 6-gram at all
  assert distinct_n([[1, 2], [1, 2], [2, 1]], 2) == 2 / 3  # pooled across sequences
  assert distinct_n(np.arange(20).reshape(4, 5), 2) == 1.0
  with pytest.raises(ValueError, match="n must be"):
    distinct_n([[1, 2]], 0)
  with pytest.raises(ValueError, match=r"token_lists\[1\]"):
    distinct_n([[1, 2], [[1]]], 1)


def test_prefix_agreement():
  a, b = [1, 2, 3, 4, 5], [1, 2, 9, 4, 5, 6]
  result = prefix_agreement(a, b)
  assert (result.prefix_len, result.match_fraction, result.k) == (2, 4 / 5, 5)
  assert prefix_agreement(a, b, k=2).match_fraction == 1.0
  assert prefix_agreement(a, b, k=3).match_fraction == 2 / 3
  assert prefix_agreement(a, a).prefix_len == 5
  assert prefix_agreement([7], [8]) == (0, 0.0, 1)
  with pytest.raises(ValueError, match=r"k must be an int in \[1, 5\]"):
    prefix_agreement(a, b, k=6)
  with pytest.raises(ValueError, match="k must be"):
    prefix_agreement([], b)
