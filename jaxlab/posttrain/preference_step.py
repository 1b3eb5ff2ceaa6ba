"""The preference train step (DPO, MPO and its ablations) on top of `jaxlab.train`'s step.

The step reads a pair batch (`jaxlab.posttrain.preference_batch`) to which the frozen
reference has added "ref_chosen" and "ref_rejected" (`ReferencePolicy.with_pair_logprobs`),
scores both sides with the policy in one forward, and applies

  L = w_p * DPO + w_q * BCO-pair + w_g * generation      (`MpoWeights`)

DPO alone is `MpoWeights(1, 0, 0)`. BCO-pair's running mean delta lives in the train state
(`PreferenceTrainState.bco`), is checkpointed with it and, like the parameters, is left
unchanged by a step whose loss or gradients are not finite.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxlab.posttrain.policy import LogitsFn
from jaxlab.posttrain.preference import BcoState, MpoWeights, mpo_loss
from jaxlab.posttrain.preference_batch import pair_forward
from jaxlab.train import TrainState, train_step_fn

PRESETS: dict[str, MpoWeights] = {
    "dpo": MpoWeights(preference=1.0, quality=0.0, generation=0.0),
    "mpo": MpoWeights(),  # InternVL3: 0.8 / 0.2 / 1
    "mpo_no_quality": MpoWeights(quality=0.0),
    "mpo_no_generation": MpoWeights(generation=0.0),
    # The generation term alone: SFT on the chosen (verified) responses, the baseline MPO must beat.
    "chosen_sft": MpoWeights(preference=0.0, quality=0.0, generation=1.0),
}


@flax.struct.dataclass
class PreferenceTrainState(TrainState):
  """`TrainState` plus BCO-pair's running-mean state."""

  bco: BcoState

  @classmethod
  def create(cls, params: Any, optimizer: optax.GradientTransformation) -> "PreferenceTrainState":
    base = TrainState.create(params, optimizer)
    return cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, bco=BcoState.init())


def preference_weights(name_or_weights: str | MpoWeights) -> MpoWeights:
  """`MpoWeights` from a preset name in `PRESETS` (or the weights themselves)."""
  if isinstance(name_or_weights, MpoWeights):
    return name_or_weights
  if name_or_weights not in PRESETS:
    raise ValueError(f"unknown preference loss {name_or_weights!r}; expected one of {sorted(PRESETS)}")
  return PRESETS[name_or_weights]


def preference_loss_fn(logits_fn: LogitsFn, weights: MpoWeights):
  """`(params, batch, rng) -> (loss, metrics)` where batch["bco"] is the BCO state to use; the
  updated state comes back in metrics["bco_delta"] and metrics["bco_count"]."""

  def loss_fn(params, batch, rng):
    del rng
    scores = pair_forward(logits_fn, params, batch)
    loss, terms, bco = mpo_loss(scores.chosen_b, scores.rejected_b, batch["ref_chosen"], batch["ref_rejected"],
                                scores.chosen_token_bt, scores.chosen_mask_bt, batch["bco"], weights)
    chosen_reward = weights.beta * (scores.chosen_b - batch["ref_chosen"])
    rejected_reward = weights.beta * (scores.rejected_b - batch["ref_rejected"])
    metrics = dict(terms, reward_accuracy=jnp.mean((chosen_reward > rejected_reward).astype(jnp.float32)),
                   reward_margin=jnp.mean(chosen_reward - rejected_reward), chosen_reward=jnp.mean(chosen_reward),
                   rejected_reward=jnp.mean(rejected_reward), bco_delta=bco.delta, bco_count=bco.count)
    return loss, metrics

  return loss_fn


def preference_step_fn(logits_fn: LogitsFn, optimizer: optax.GradientTransformation,
                       weights: str | MpoWeights = "mpo") -> Callable:
  """The un-jitted step `(PreferenceTrainState, batch, rng) -> (state, metrics)`."""
  inner = train_step_fn(preference_loss_fn(logits_fn, preference_weights(weights)), optimizer)

  def step(state: PreferenceTrainState, batch, rng):
    base = TrainState(step=state.step, params=state.params, opt_state=state.opt_state,
                      nonfinite_steps=state.nonfinite_steps, nonfinite_streak=state.nonfinite_streak)
    new_base, metrics = inner(base, dict(batch, bco=state.bco), rng)
    finite = metrics["nonfinite"] == 0
    bco = BcoState(delta=jnp.where(finite, metrics["bco_delta"], state.bco.delta),
                   count=jnp.where(finite, metrics["bco_count"], state.bco.count))
    fields = {f.name: getattr(new_base, f.name) for f in dataclasses.fields(new_base)}
    return PreferenceTrainState(**fields, bco=bco), metrics

  return step


def make_preference_step(logits_fn: LogitsFn, optimizer: optax.GradientTransformation, *,
                         weights: str | MpoWeights = "mpo", state_shardings: Any = None, batch_shardings: Any = None,
                         donate: bool = True):
  """Jits `preference_step_fn` with the given shardings, donating the old state."""
  step = preference_step_fn(logits_fn, optimizer, weights)
  shardings = {} if state_shardings is None else dict(in_shardings=(state_shardings, batch_shardings, None),
                                                      out_shardings=(state_shardings, None))
  return jax.jit(step, donate_argnums=(0,) if donate else (), **shardings)
