"""The frozen reference policy pi_0: its own parameter pytree, evaluated without gradient, never updated.

DPO, BCO-pair, MPO and GRPO all compare the policy with the model it started from. The
reference holds one copy of the starting parameters (the trained copy is donated and
overwritten step by step, so the two cannot share buffers) with the same shardings, and
computes the reference log-probs of a batch in its own jitted forward, before the train step:
the step then needs no reference activations and no second set of parameters inside its
gradient computation.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.posttrain.logprobs import sequence_logprobs
from jaxlab.posttrain.policy import LogitsFn
from jaxlab.posttrain.preference_batch import pair_forward


class ReferencePolicy:
  """pi_0 = the policy at `params`, frozen.

  Attributes:
    params: the reference parameters (a copy of the ones passed in, same shardings).
  """

  def __init__(self, logits_fn: LogitsFn, params: Any, *, copy: bool = True):
    """Args:
      logits_fn: `(params, batch) -> logits_btv`, as `jaxlab.posttrain.policy`.
      params: the starting parameters of the policy.
      copy: False keeps `params` itself (only when the caller never donates or updates them).
    """
    self._logits_fn = logits_fn
    self.params = jax.tree.map(jnp.copy, params) if copy else params
    self._pair = jax.jit(lambda p, b: tuple(pair_forward(logits_fn, p, b)[:2]))
    self._tokens = jax.jit(lambda p, b: sequence_logprobs(logits_fn(p, b), b["input_ids"], b["response_mask"])[1])

  def pair_logprobs(self, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Summed response log-probs [B] of the chosen and rejected rows of a pair batch."""
    return self._pair(self.params, dict(batch))

  def with_pair_logprobs(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The pair batch with "ref_chosen" and "ref_rejected" [B] added (what the preference step reads)."""
    ref_chosen, ref_rejected = self.pair_logprobs(batch)
    return dict(batch, ref_chosen=ref_chosen, ref_rejected=ref_rejected)

  def token_logprobs(self, batch: Mapping[str, jax.Array]) -> jax.Array:
    """[B, T] log-probs of the masked response tokens of a sequence batch ("input_ids",
    "response_mask", and the model's other inputs), 0 elsewhere."""
    return self._tokens(self.params, dict(batch))
