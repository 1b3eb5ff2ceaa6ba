"""Log-probabilities of responses under a causal LM, from its logits.

Position t of the logits predicts token t + 1, so the log-prob of token t is read from
logits[t - 1]. A response mask marks the tokens that count: the response's own tokens up
to and including its first EOS, never the prompt, padding or anything after that EOS.
"""

import jax
import jax.numpy as jnp


def token_logprobs(logits_btv: jax.Array, tokens_bt: jax.Array) -> jax.Array:
  """[B, T] log p(tokens[t] | tokens[:t]); column 0 (no context) is 0.

  Computed in float32 with a log-softmax, whatever the logits' dtype.
  """
  logp_btv = jax.nn.log_softmax(logits_btv[:, :-1].astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp_btv, tokens_bt[:, 1:, None], axis=-1)[..., 0]
  return jnp.pad(picked, ((0, 0), (1, 0)))


def mask_after_eos(response_mask_bt: jax.Array, tokens_bt: jax.Array, eos_id: int) -> jax.Array:
  """The response mask cut after each row's first response EOS (the EOS itself kept)."""
  response_mask_bt = response_mask_bt.astype(bool)
  is_eos = response_mask_bt & (tokens_bt == eos_id)
  eos_before = jnp.cumsum(is_eos, axis=1) - is_eos  # EOS tokens strictly before t
  return response_mask_bt & (eos_before == 0)


def sequence_logprobs(logits_btv: jax.Array, tokens_bt: jax.Array, response_mask_bt: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(summed [B], per-token [B, T] masked) log-probs of the masked response tokens."""
  per_token = token_logprobs(logits_btv, tokens_bt) * response_mask_bt
  return jnp.sum(per_token, axis=1), per_token
