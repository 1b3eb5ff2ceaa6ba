"""Preference losses on summed response log-probs: DPO, BCO-pair, the generation term, MPO.

With r = log pi_theta(y | x) - log pi_ref(y | x) for the chosen (c) and rejected (r)
responses (sums over response tokens):

  DPO (sigmoid)   L_p = -log sigmoid(beta * r_c - beta * r_r)
  BCO-pair        L_q = -log sigmoid(beta * r_c - delta) - log sigmoid(-(beta * r_r - delta))
                  delta: running mean of the batch means of beta * r over chosen and rejected,
                  carried as explicit state (`BcoState`), this batch included
  generation      L_g = token-averaged NLL of the chosen response
  MPO             w_p * L_p + w_q * L_q + w_g * L_g, InternVL3's w = (0.8, 0.2, 1), beta = 0.1

Every loss returns per-pair values [B]; callers average.
"""

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

DEFAULT_BETA = 0.1


def dpo_loss(policy_chosen_b, policy_rejected_b, ref_chosen_b, ref_rejected_b, *, beta: float = DEFAULT_BETA) -> jax.Array:
  """[B] -log sigmoid(beta * ((pc - rc) - (pr - rr))): 0.693 (log 2) when chosen and rejected tie."""
  margin = (policy_chosen_b - ref_chosen_b) - (policy_rejected_b - ref_rejected_b)
  return -jax.nn.log_sigmoid(beta * margin)


@flax.struct.dataclass
class BcoState:
  """The running mean delta of BCO-pair's rewards and how many batches it has seen."""

  delta: jax.Array
  count: jax.Array

  @classmethod
  def init(cls) -> "BcoState":
    return cls(delta=jnp.zeros((), jnp.float32), count=jnp.zeros((), jnp.int32))


def bco_pair_loss(policy_chosen_b, policy_rejected_b, ref_chosen_b, ref_rejected_b, state: BcoState, *,
                  beta: float = DEFAULT_BETA) -> tuple[jax.Array, BcoState]:
  """([B] BCO-pair loss, the state with this batch's mean reward added).

  The batch mean reward is the mean of beta * r over the chosen and the rejected responses,
  taken without gradient; delta is the running mean of those batch means (one count per batch).
  As in the trainer InternVL3's MPO ran (TRL 0.x's `RunningMoments`), the running mean takes this
  batch in first and the loss uses the updated delta, so the first batch's delta is its own mean.
  """
  chosen_reward = beta * (policy_chosen_b - ref_chosen_b)
  rejected_reward = beta * (policy_rejected_b - ref_rejected_b)
  batch_mean = jax.lax.stop_gradient(jnp.mean(jnp.concatenate([chosen_reward, rejected_reward])))
  count = state.count + 1
  delta = state.delta + (batch_mean - state.delta) / count.astype(jnp.float32)
  loss = -jax.nn.log_sigmoid(chosen_reward - delta) - jax.nn.log_sigmoid(-(rejected_reward - delta))
  return loss, BcoState(delta=delta, count=count)


def generation_loss(chosen_token_logprobs_bt: jax.Array, chosen_mask_bt: jax.Array) -> jax.Array:
  """[B] mean NLL over each chosen response's tokens (0 for an empty mask, never NaN)."""
  count = jnp.sum(chosen_mask_bt, axis=1)
  total = -jnp.sum(chosen_token_logprobs_bt * chosen_mask_bt, axis=1)
  return total / jnp.maximum(count, 1)


@dataclasses.dataclass(frozen=True)
class MpoWeights:
  """InternVL3's MPO weights (`--sigmoid_loss_weight 0.8 --bco_pair_loss_weight 0.2 --rpo_alpha 1`)."""

  preference: float = 0.8
  quality: float = 0.2
  generation: float = 1.0
  beta: float = DEFAULT_BETA


def mpo_loss(policy_chosen_b, policy_rejected_b, ref_chosen_b, ref_rejected_b, chosen_token_logprobs_bt,
             chosen_mask_bt, state: BcoState, weights: MpoWeights = MpoWeights()) -> tuple[jax.Array, dict, BcoState]:
  """(scalar MPO loss, its three terms as batch means, the updated BCO state)."""
  preference = jnp.mean(dpo_loss(policy_chosen_b, policy_rejected_b, ref_chosen_b, ref_rejected_b, beta=weights.beta))
  quality_b, state = bco_pair_loss(policy_chosen_b, policy_rejected_b, ref_chosen_b, ref_rejected_b, state, beta=weights.beta)
  quality = jnp.mean(quality_b)
  generation = jnp.mean(generation_loss(chosen_token_logprobs_bt, chosen_mask_bt))
  total = weights.preference * preference + weights.quality * quality + weights.generation * generation
  return total, {"preference": preference, "quality": quality, "generation": generation}, state
