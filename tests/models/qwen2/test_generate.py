"""generate and its samplers: cached vs recomputed decoding, eos, top-p nucleus, embeddings, positions, errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM, generate, sample_tokens, top_p_filter

from . import random_params

CONFIG = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=20)
MODEL = Qwen2LM(CONFIG)
PARAMS = random_params(CONFIG, seed=2)
TOKENS = jnp.asarray(np.random.default_rng(3).integers(0, CONFIG.vocab_size, size=(3, 6)), jnp.int32)
MASK = jnp.asarray([[0, 0, 1, 1, 1, 1], [1] * 6, [0, 0, 0, 0, 0, 1]], bool)
# Fractional prompt positions (V2PE spacing); padding positions are arbitrary. Every generate call
# below passes them, so calls that differ only in array values share one compilation.
POSITIONS = jnp.asarray([[9, 9, 0, 0.5, 1.0, 1.5], [0, 1, 2, 2.25, 2.5, 3.5], [0, 0, 0, 0, 0, 7.5]], jnp.float32)
N = 8
run = functools.partial(generate, MODEL, PARAMS, positions_bt=POSITIONS, max_new_tokens=N)


@functools.lru_cache(maxsize=None)
def _greedy_cached() -> np.ndarray:
  return np.asarray(run(TOKENS, MASK))


@functools.lru_cache(maxsize=None)
def _forward():
  return jax.jit(MODEL.apply)


def test_greedy_with_cache_equals_recomputing_every_step():
  cached = _greedy_cached()
  assert cached.shape == (3, N) and cached.dtype == np.int32
  np.testing.assert_array_equal(cached, run(TOKENS, MASK, use_cache=False))
  # And a plain loop: each row's real prompt tokens first, then what it generated, then filler that
  # causal attention keeps out; one full forward per step, argmax at the row's last real token.
  # Generated tokens take positions one past the largest real prompt position, + 1, ...
  lengths = np.asarray(MASK).sum(axis=1)
  rows, positions = np.full((3, 9), 5, np.int32), np.zeros((3, 9), np.float32)
  for b in range(3):
    real = np.asarray(MASK[b])
    rows[b, :lengths[b]] = np.asarray(TOKENS[b])[real]
    positions[b, :lengths[b]] = np.asarray(POSITIONS[b])[real]
    positions[b, lengths[b]:] = positions[b, lengths[b] - 1] + 1 + np.arange(9 - lengths[b])
  for step in range(3):
    logits, _ = _forward()({"params": PARAMS}, jnp.asarray(rows), positions_bt=jnp.asarray(positions))
    last = lengths + step - 1
    np.testing.assert_array_equal(np.argmax(np.asarray(logits)[np.arange(3), last], axis=-1), cached[:, step])
    rows[np.arange(3), last + 1] = cached[:, step]
  assert len({tuple(r) for r in cached.tolist()}) == 3  # Rows differ: the batch is not one repeated row.


def test_rows_stop_at_eos_and_pad_after():
  cached = _greedy_cached()
  eos = int(cached[0, 2])
  got = np.asarray(run(TOKENS, MASK, eos_id=(39, eos), pad_id=1))
  want = cached.copy()
  for row in want:
    hits = np.flatnonzero((row == eos) | (row == 39))
    if hits.size:
      row[hits[0] + 1:] = 1
  np.testing.assert_array_equal(got, want)
  assert (got[0, 3:] == 1).all()


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_inputs_embeds_prompt_equals_token_prompt():
  embeds = MODEL.apply({"params": PARAMS}, TOKENS, method=Qwen2LM.embed)
  got = generate(MODEL, {"params": PARAMS}, None, MASK, max_new_tokens=N, positions_bt=POSITIONS,
                 inputs_embeds_btd=embeds)
  np.testing.assert_array_equal(got, _greedy_cached())


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_sampling_follows_the_key_and_a_tiny_nucleus_is_greedy():
  sample = functools.partial(run, TOKENS, MASK, method="sample")
  first = np.asarray(sample(key=jax.random.key(0), temperature=1.5))
  np.testing.assert_array_equal(first, sample(key=jax.random.key(0), temperature=1.5))
  assert not np.array_equal(first, sample(key=jax.random.key(1), temperature=1.5))
  np.testing.assert_array_equal(sample(key=jax.random.key(1), top_p=1e-6), _greedy_cached())


def test_top_p_keeps_only_the_nucleus():
  probs = np.asarray([0.05, 0.4, 0.1, 0.3, 0.15])
  logits_bv = jnp.log(jnp.asarray([probs, probs[::-1]], jnp.float32))
  nucleus_filter = jax.jit(top_p_filter)
  # Sorted masses 0.4, 0.3, 0.15, ...: top_p=0.6 needs the two largest, 0.75 the three largest.
  for top_p, nucleus in ((0.6, {1, 3}), (0.75, {1, 3, 4}), (1.0, set(range(5)))):
    kept = np.isfinite(np.asarray(nucleus_filter(logits_bv, top_p)))
    assert set(np.flatnonzero(kept[0])) == nucleus
    assert set(np.flatnonzero(kept[1])) == {4 - i for i in nucleus}

  @jax.jit
  def draw(keys, temperature):
    return jax.vmap(lambda k: sample_tokens(logits_bv, k, method="sample", temperature=temperature, top_p=0.6))(keys)

  draws = np.asarray(draw(jax.random.split(jax.random.key(0), 2000), 1.0))
  assert set(np.unique(draws[:, 0])) == {1, 3} and set(np.unique(draws[:, 1])) == {3, 1}
  # Renormalized within the nucleus: 0.4 / 0.7 of the draws are token 1.
  assert abs(np.mean(draws[:, 0] == 1) - 0.4 / 0.7) < 0.05
  cold = np.asarray(draw(jax.random.split(jax.random.key(1), 2000), 1e-4))
  assert (cold == [1, 3]).all()
  np.testing.assert_array_equal(sample_tokens(logits_bv, None), [1, 3])


def test_suppressed_ids_are_never_generated():
  greedy = _greedy_cached()
  banned = tuple(int(t) for t in np.unique(greedy[:, :2]))  # What greedy picks first.
  out = np.asarray(run(TOKENS, MASK, suppress_ids=banned))
  assert not np.isin(out, banned).any()
  sampled = np.asarray(run(TOKENS, MASK, suppress_ids=banned, method="sample", key=jax.random.key(4),
                           temperature=5.0))
  assert not np.isin(sampled, banned).any()


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((TOKENS, MASK), dict(max_new_tokens=15), ValueError, "max_position_embeddings"),
    ((jnp.zeros((1, 21), jnp.int32), None), dict(max_new_tokens=1), ValueError, "max_position_embeddings"),
    ((TOKENS, MASK[:, :5]), dict(max_new_tokens=2), ValueError, "attention_mask_bt"),
    ((TOKENS, MASK[:, ::-1]), dict(max_new_tokens=2), ValueError, "left padded"),
    ((TOKENS, MASK.at[2, 5].set(False)), dict(max_new_tokens=2), ValueError, "no real token"),
    ((TOKENS, MASK), dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    ((TOKENS, MASK), dict(max_new_tokens=2, method="beam"), ValueError, "beam"),
    ((TOKENS, MASK), dict(max_new_tokens=2, method="sample"), ValueError, "key"),
    ((TOKENS, MASK), dict(max_new_tokens=2, method="sample", key=jax.random.key(0), top_p=0.0), ValueError, "top_p"),
    ((TOKENS, MASK), dict(max_new_tokens=2, method="sample", key=jax.random.key(0), temperature=0.0), ValueError,
     "temperature"),
    ((TOKENS, MASK), dict(max_new_tokens=2, eos_id=40), ValueError, "eos_id"),
    ((TOKENS, MASK), dict(max_new_tokens=2, pad_id=-1), ValueError, "pad_id"),
    ((TOKENS, MASK), dict(max_new_tokens=2, suppress_ids=(40,)), ValueError, "suppress_ids"),
    ((TOKENS, MASK), dict(max_new_tokens=2, positions_bt=jnp.zeros((3, 5))), ValueError, "positions_bt"),
])
def test_bad_inputs_raise(args, kwargs, error, match):
  with pytest.raises(error, match=match):
    generate(MODEL, PARAMS, *args, **kwargs)


def test_wrong_model_raises():
  with pytest.raises(TypeError, match="Qwen2LM"):
    generate(object(), PARAMS, TOKENS, MASK, max_new_tokens=2)
