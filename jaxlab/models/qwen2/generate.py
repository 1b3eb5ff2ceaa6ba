"""Batched generation with `Qwen2LM`: greedy or top-p sampling from a left-padded batch of prompts, in one jitted loop.

With the KV cache (default) the prompt is prefilled once and each step feeds one token; without it
every step recomputes the whole sequence (a reference path: both give the same tokens). A row that
emits an end-of-sequence id keeps it and is padded with `pad_id` from then on; the loop stops
once every row has finished.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.models.qwen2.cache import init_cache
from jaxlab.models.qwen2.model import Qwen2LM, _check_inputs

METHODS = ("greedy", "sample")


def top_p_filter(logits_bv: jax.Array, top_p: float | jax.Array) -> jax.Array:
  """float32 logits with every token outside the nucleus set to -inf.

  The nucleus is the smallest set of most probable tokens whose probabilities sum to at least
  `top_p` (the most probable token is always in it); a token tied with the least probable member
  is kept too. top_p >= 1 keeps every token (also where rounding puts the cumulative mass below 1).
  """
  logits_bv = logits_bv.astype(jnp.float32)
  sorted_bv = -jnp.sort(-logits_bv, axis=-1)
  probs_bv = jax.nn.softmax(sorted_bv, axis=-1)
  mass_before_bv = jnp.cumsum(probs_bv, axis=-1) - probs_bv
  keep_bv = mass_before_bv < top_p
  keep_bv = keep_bv.at[..., 0].set(True)
  cutoff_b1 = jnp.min(jnp.where(keep_bv, sorted_bv, jnp.inf), axis=-1, keepdims=True)
  return jnp.where((logits_bv >= cutoff_b1) | (top_p >= 1), logits_bv, -jnp.inf)


def sample_tokens(logits_bv: jax.Array, key: jax.Array | None, *, method: str = "greedy",
                  temperature: float | jax.Array = 1.0, top_p: float | jax.Array = 1.0) -> jax.Array:
  """One token id per row [B] int32 from next-token logits [B, V].

  greedy: the argmax (key unused). sample: logits / temperature, restricted to the top-p
  nucleus (`top_p_filter`), then a categorical draw with `key`.
  """
  if method == "greedy":
    return jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
  if method != "sample":
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if key is None:
    raise ValueError("sample_tokens: method='sample' needs a PRNG key")
  filtered_bv = top_p_filter(logits_bv.astype(jnp.float32) / temperature, top_p)
  return jax.random.categorical(key, filtered_bv, axis=-1).astype(jnp.int32)


def generate(
    model: Qwen2LM,
    params,
    prompt_tokens_bt: jax.Array | None,
    prompt_mask_bt: jax.Array | None = None,
    *,
    max_new_tokens: int,
    method: str = "greedy",
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_id: int | Sequence[int] | None = None,
    pad_id: int = 0,
    key: jax.Array | None = None,
    positions_bt: jax.Array | None = None,
    inputs_embeds_btd: jax.Array | None = None,
    use_cache: bool = True,
    suppress_ids: Sequence[int] = (),
) -> jax.Array:
  """Continues each prompt of a left-padded batch by `max_new_tokens` tokens.

  Args:
    model: the `Qwen2LM`.
    params: its params (or {"params": params}).
    prompt_tokens_bt: [B, T] int prompts, LEFT padded; None when `inputs_embeds_btd` is given.
    prompt_mask_bt: [B, T], nonzero for real tokens (each row: padding, then at least one real
      token); None: no padding.
    max_new_tokens: N, tokens to generate per row.
    method: "greedy" (argmax) or "sample" (temperature, then top-p).
    temperature: > 0, divides the logits when sampling.
    top_p: in (0, 1], nucleus mass when sampling.
    eos_id: id (or ids) that end a row: the row keeps that token, then gets `pad_id`.
    pad_id: filler after a row's end.
    key: PRNG key, required for method="sample".
    positions_bt: [B, T] int or float32 prompt positions (fractional allowed); generated tokens
      continue at (largest real prompt position) + 1, + 2, ... None: real tokens numbered 0, 1, ...
    inputs_embeds_btd: [B, T, D] prompt embeddings instead of `prompt_tokens_bt`.
    use_cache: decode with a KV cache (True) or recompute the full sequence at every step.
    suppress_ids: token ids never generated (their logits are set to -inf before picking), e.g.
      a VLM's image-context token, which would misplace image features if fed back.

  Returns:
    [B, N] int32 generated tokens (pad_id after a row's eos).

  Raises:
    ValueError / TypeError, before any compute: bad shapes or dtypes, a prompt that is not left
      padded or has no real token, T + N above config.max_position_embeddings, an unknown method,
      a bad temperature / top_p / eos_id / pad_id, or sampling without a key.
  """
  if not isinstance(model, Qwen2LM):
    raise TypeError(f"model must be a Qwen2LM, got {type(model).__name__}")
  config = model.config
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  b, t = _check_inputs(config, prompt_tokens_bt, inputs_embeds_btd, positions_bt, prompt_mask_bt)
  eos_ids = check_generation(config, t, max_new_tokens=max_new_tokens, method=method, temperature=temperature,
                             top_p=top_p, eos_id=eos_id, pad_id=pad_id, key=key)
  mask_bt = jnp.ones((b, t), bool) if prompt_mask_bt is None else jnp.asarray(prompt_mask_bt).astype(bool)
  if not isinstance(mask_bt, _compat.Tracer):
    _check_left_padded(np.asarray(mask_bt))
  rank_bt = jnp.maximum(jnp.cumsum(mask_bt, axis=1, dtype=jnp.int32) - 1, 0)
  positions_bt = rank_bt if positions_bt is None else positions_bt
  key = jax.random.key(0) if key is None else key
  suppress = _eos_ids(tuple(suppress_ids), config.vocab_size, name="suppress_ids")
  return _generate(
      model, params, prompt_tokens_bt, inputs_embeds_btd, mask_bt, positions_bt, key,
      jnp.float32(temperature), jnp.float32(top_p),
      max_new_tokens=max_new_tokens, method=method, eos_ids=eos_ids, pad_id=pad_id, use_cache=bool(use_cache),
      suppress_ids=tuple(sorted(set(suppress))),
  )


def check_generation(config, prompt_length: int, *, max_new_tokens, method, temperature, top_p, eos_id, pad_id,
                     key) -> tuple[int, ...]:
  """Checks the decoding arguments of `generate` for a prompt of `prompt_length` tokens; returns the eos ids.

  Raises ValueError naming the argument: max_new_tokens not a positive int or past
  config.max_position_embeddings with the prompt, an unknown method, sampling without a key or
  with a bad temperature / top_p, eos or pad ids outside the vocabulary.
  """
  if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
  if prompt_length + max_new_tokens > config.max_position_embeddings:
    raise ValueError(
        f"prompt length {prompt_length} + max_new_tokens {max_new_tokens} exceeds config.max_position_embeddings="
        f"{config.max_position_embeddings}"
    )
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if method == "sample":
    if key is None:
      raise ValueError("method='sample' needs key=")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
      raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
      raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
  eos_ids = _eos_ids(eos_id, config.vocab_size)
  if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < config.vocab_size:
    raise ValueError(f"pad_id must be a token id in [0, {config.vocab_size}), got {pad_id!r}")
  return eos_ids


def _eos_ids(eos_id, vocab_size: int, *, name: str = "eos_id") -> tuple[int, ...]:
  ids = () if eos_id is None else (eos_id,) if isinstance(eos_id, (int, np.integer)) else tuple(eos_id)
  for i in ids:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < vocab_size:
      raise ValueError(f"{name} must be None or token id(s) in [0, {vocab_size}), got {eos_id!r}")
  return tuple(int(i) for i in ids)


def _check_left_padded(mask_bt: np.ndarray) -> None:
  bad = np.flatnonzero(np.any(mask_bt[:, 1:] < mask_bt[:, :-1], axis=1))
  if bad.size:
    raise ValueError(f"prompt_mask_bt must be left padded (padding before real tokens); rows {bad.tolist()} are not")
  empty = np.flatnonzero(~mask_bt[:, -1])
  if empty.size:
    raise ValueError(f"prompt_mask_bt rows {empty.tolist()} have no real token")


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens", "method", "eos_ids", "pad_id", "use_cache",
                                             "suppress_ids"))
def _generate(model, params, tokens_bt, embeds_btd, mask_bt, positions_bt, key, temperature, top_p, *,
              max_new_tokens, method, eos_ids, pad_id, use_cache, suppress_ids=()):
  variables = {"params": params}
  b, t = mask_bt.shape
  n = max_new_tokens
  eos = jnp.asarray(eos_ids, jnp.int32)
  # Generated tokens continue one past each row's largest real prompt position.
  next_position_b = jnp.max(jnp.where(mask_bt, positions_bt.astype(jnp.float32), -jnp.inf), axis=1) + 1.0

  def pick(logits_bv, done_b, key):
    if suppress_ids:
      logits_bv = logits_bv.at[:, jnp.asarray(suppress_ids)].set(-jnp.inf)
    key, sub = jax.random.split(key)
    token_b = sample_tokens(logits_bv, sub, method=method, temperature=temperature, top_p=top_p)
    token_b = jnp.where(done_b, pad_id, token_b)
    return token_b, done_b | jnp.any(token_b[:, None] == eos[None, :], axis=1), key

  if use_cache:
    cache = init_cache(model.config, b, t + n)
    logits_btv, cache = model.apply(variables, tokens_bt, inputs_embeds_btd=embeds_btd, positions_bt=positions_bt,
                                    attention_mask_bt=mask_bt, cache=cache)
    first_b, done_b, key = pick(logits_btv[:, -1], jnp.zeros((b,), bool), key)
    out_bn = jnp.full((b, n), pad_id, jnp.int32).at[:, 0].set(first_b)

    def step(state):
      i, out_bn, done_b, cache, key = state
      logits_b1v, cache = model.apply(variables, out_bn[:, i - 1, None], cache=cache)
      token_b, done_b, key = pick(logits_b1v[:, 0], done_b, key)
      return i + 1, out_bn.at[:, i].set(token_b), done_b, cache, key

    state = (jnp.int32(1), out_bn, done_b, cache, key)
  else:
    prompt_b_t = jnp.zeros((b, t), jnp.int32) if tokens_bt is None else tokens_bt.astype(jnp.int32)
    positions_bs = jnp.concatenate(
        [positions_bt.astype(jnp.float32), next_position_b[:, None] + jnp.arange(n, dtype=jnp.float32)], axis=1
    )

    def forward(out_bn, i):
      """Logits of every row's latest token, from the whole sequence (prompt + the first i generated)."""
      tokens_bs = jnp.concatenate([prompt_b_t, out_bn], axis=1)
      generated_bn = jnp.broadcast_to(jnp.arange(n)[None, :] < i, (b, n))
      mask_bs = jnp.concatenate([mask_bt, generated_bn], axis=1)
      if embeds_btd is None:
        logits_bsv, _ = model.apply(variables, tokens_bs, positions_bt=positions_bs, attention_mask_bt=mask_bs)
      else:
        new_bnd = model.apply(variables, out_bn, method=Qwen2LM.embed)
        embeds_bsd = jnp.concatenate([embeds_btd.astype(new_bnd.dtype), new_bnd], axis=1)
        logits_bsv, _ = model.apply(variables, inputs_embeds_btd=embeds_bsd, positions_bt=positions_bs,
                                    attention_mask_bt=mask_bs)
      return jax.lax.dynamic_index_in_dim(logits_bsv, t - 1 + i, axis=1, keepdims=False)

    out_bn = jnp.full((b, n), pad_id, jnp.int32)

    def step(state):
      i, out_bn, done_b, cache, key = state
      token_b, done_b, key = pick(forward(out_bn, i), done_b, key)
      return i + 1, out_bn.at[:, i].set(token_b), done_b, cache, key

    state = (jnp.int32(0), out_bn, jnp.zeros((b,), bool), None, key)

  def running(state):
    i, _, done_b, _, _ = state
    return (i < n) & ~jnp.all(done_b)

  _, out_bn, _, _, _ = jax.lax.while_loop(running, step, state)
  return out_bn
