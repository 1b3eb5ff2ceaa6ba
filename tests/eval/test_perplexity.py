"""Sliding-window perplexity against a brute-force per-token loop with toy causal models."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.eval import PerplexityResult, sliding_window_perplexity

_VOCAB = 11
_TABLE_VV = np.random.default_rng(0).standard_normal((_VOCAB, _VOCAB)).astype(np.float32)
_COUNT_WEIGHT = 0.7


def _bigram_logits(tokens_bt):
  """Next-token logits depend on the current token only."""
  return jnp.asarray(_TABLE_VV)[tokens_bt]


def _counting_logits(tokens_bt):
  """Causal and context-dependent: bigram logits plus the counts of each id seen so far."""
  counts_btv = jnp.cumsum(jax.nn.one_hot(tokens_bt, _VOCAB), axis=1)
  return jnp.asarray(_TABLE_VV)[tokens_bt] + _COUNT_WEIGHT * counts_btv


def _counting_logits_np(prefix):
  """numpy twin of _counting_logits for the last position of one unpadded prefix."""
  return _TABLE_VV[prefix[-1]].astype(np.float64) + _COUNT_WEIGHT * np.bincount(prefix, minlength=_VOCAB)


def _nll(logits_v, target):
  logits_v = np.asarray(logits_v, np.float64)
  top = logits_v.max()
  return top + math.log(np.exp(logits_v - top).sum()) - logits_v[target]


def _brute_force(tokens, context, stride):
  """One unpadded model call per scored token, windows stepped by hand."""
  nll, scored = 0.0, []
  begin, prev_last = 0, 0
  while True:
    last = min(begin + context, len(tokens) - 1)  # last target this window reaches
    for p in range(prev_last + 1, last + 1):
      assert p - begin <= context  # never more than `context` tokens of left context
      nll += _nll(_counting_logits_np(tokens[begin:p]), tokens[p])
      scored.append(p)
    if last == len(tokens) - 1:
      break
    begin, prev_last = begin + stride, last
  assert scored == list(range(1, len(tokens)))  # each token except the first, exactly once
  return nll, len(scored)


def _tokens(n, seed=1):
  return np.random.default_rng(seed).integers(0, _VOCAB, size=n).astype(np.uint16)


@pytest.mark.parametrize("num_tokens,context,stride,batch_size", [
    (50, 8, 8, 3),    # disjoint windows
    (50, 8, 3, 4),    # overlapping windows, ragged last batch
    (50, 8, 1, 16),   # every target with full context
    (41, 10, 5, 2),   # last window ends exactly at the stream's end
    (6, 16, 4, 2),    # stream shorter than one window: one padded window
    (2, 1, 1, 1),     # smallest case
])
def test_matches_brute_force_loop(num_tokens, context, stride, batch_size):
  tokens = _tokens(num_tokens)
  result = sliding_window_perplexity(
      _counting_logits, tokens, context=context, stride=stride, batch_size=batch_size)
  nll, count = _brute_force(tokens, context, stride)
  assert isinstance(result, PerplexityResult)
  assert result.num_tokens == count == num_tokens - 1
  np.testing.assert_allclose(result.nll_sum, nll, rtol=2e-5)
  np.testing.assert_allclose(result.perplexity, math.exp(nll / count), rtol=2e-5)


def test_bigram_model_is_independent_of_windowing():
  tokens = _tokens(97, seed=2)
  direct = sum(_nll(_TABLE_VV[a], b) for a, b in zip(tokens[:-1], tokens[1:]))
  for context, stride, batch_size in [(97, 97, 1), (16, 16, 4), (16, 5, 3), (7, 1, 32)]:
    result = sliding_window_perplexity(
        _bigram_logits, tokens, context=context, stride=stride, batch_size=batch_size)
    np.testing.assert_allclose(result.nll_sum, direct, rtol=2e-5)
    assert result.num_tokens == 96


def test_uniform_model_has_perplexity_vocab_size():
  uniform = lambda tokens_bt: jnp.zeros((*tokens_bt.shape, _VOCAB), jnp.bfloat16)
  result = sliding_window_perplexity(uniform, _tokens(30), context=8, stride=4, batch_size=2)
  np.testing.assert_allclose(result.perplexity, _VOCAB, rtol=1e-6)


def test_model_is_traced_once_for_all_batches():
  traces = []

  def logits_fn(tokens_bt):
    traces.append(tokens_bt.shape)
    return _counting_logits(tokens_bt)

  sliding_window_perplexity(logits_fn, _tokens(200), context=8, stride=4, batch_size=4)  # 13 batches
  assert traces and all(shape == (4, 8) for shape in traces) and len(traces) <= 2  # shape check + jit


def test_bad_arguments():
  tokens = _tokens(20)
  call = lambda tokens, fn=_bigram_logits, **kw: sliding_window_perplexity(
      fn, tokens, **{"context": 8, "stride": 4, "batch_size": 2, **kw})
  with pytest.raises(TypeError, match="1-D integer"):
    call(tokens.reshape(4, 5))
  with pytest.raises(ValueError, match="at least 2"):
    call(tokens[:1])
  with pytest.raises(ValueError, match="stride must be <= context"):
    call(tokens, stride=9)
  with pytest.raises(ValueError, match="batch_size"):
    call(tokens, batch_size=0)
  with pytest.raises(ValueError, match="outside the model's vocabulary"):
    call(np.array([0, 1, _VOCAB]))
  with pytest.raises(ValueError, match=r"\(batch, time, vocab\)"):
    call(tokens, fn=lambda t: _bigram_logits(t)[:, -1])
