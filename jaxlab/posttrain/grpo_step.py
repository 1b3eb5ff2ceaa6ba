"""One GRPO iteration: sample G completions per prompt, reward them, and update the policy.

`make_grpo_step` returns a step with the train loop's signature, `(state, prompt_batch, rng)
-> (state, metrics)`, so `jaxlab.train.train_loop` (and `run_train_loop`) drive GRPO as they
drive SFT: checkpoints, resumption, metrics. Inside one step:

  1. sample with the current parameters (key = fold_in(rng, step): reproducible from the seed),
  2. rewards from the user's `reward_fn(prompt_batch, completions) -> [B * G]` on the host,
  3. advantages within each group (`group_advantages`), reference log-probs from the frozen
     `ReferencePolicy`,
  4. `updates_per_batch` jitted updates on the same rollouts: one (TRL 0.14's default, ratio
     exactly 1) or several with PPO clipping against the sampling policy's log-probs.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.posttrain.grpo import DEFAULT_BETA, group_advantages, grpo_loss
from jaxlab.posttrain.logprobs import sequence_logprobs
from jaxlab.posttrain.policy import LogitsFn
from jaxlab.posttrain.reference import ReferencePolicy
from jaxlab.posttrain.rollout import SampleFn, rollout_batch
from jaxlab.train import TrainState, train_step_fn

# reward_fn(prompt_batch as numpy, completions [B * G, L] numpy) -> rewards [B * G]
RewardFn = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class GrpoSettings:
  """GRPO's knobs (defaults: TRL 0.14's GRPOConfig, which Visual-ARFT trains with)."""

  group_size: int = 8
  beta: float = DEFAULT_BETA
  updates_per_batch: int = 1
  clip_epsilon: float = 0.2  # used only when updates_per_batch > 1

  def __post_init__(self):
    if self.group_size < 2:
      raise ValueError(f"group_size must be >= 2 (advantages need a group), got {self.group_size}")
    if self.updates_per_batch < 1:
      raise ValueError(f"updates_per_batch must be >= 1, got {self.updates_per_batch}")


def grpo_loss_fn(logits_fn: LogitsFn, settings: GrpoSettings, *, clipped: bool):
  """`(params, rollout, rng) -> (loss, metrics)` on a rollout with "ref_logprobs", "advantages"
  (and "old_logprobs" when `clipped`)."""

  def loss_fn(params, batch, rng):
    del rng
    mask = batch["response_mask"]
    _, logprobs = sequence_logprobs(logits_fn(params, batch), batch["input_ids"], mask)
    return grpo_loss(logprobs, batch["ref_logprobs"], batch["advantages"], mask, beta=settings.beta,
                     old_logprobs_nt=batch["old_logprobs"] if clipped else None,
                     clip_epsilon=settings.clip_epsilon if clipped else None)

  return loss_fn


def make_grpo_step(logits_fn: LogitsFn, sample_fn: SampleFn, reward_fn: RewardFn, reference: ReferencePolicy,
                   optimizer: optax.GradientTransformation, *, eos_id: int, settings: GrpoSettings = GrpoSettings(),
                   state_shardings: Any = None, rollout_sharding: Callable[[dict], dict] | None = None):
  """The GRPO step `(TrainState, prompt_batch, rng) -> (TrainState, metrics)` (module docstring).

  Args:
    logits_fn: the policy's `(params, batch) -> logits_btv`.
    sample_fn: G completions per prompt (`jaxlab.posttrain.rollout.vlm_sampler` / `lm_sampler`).
    reward_fn: rewards of the completions, one float per row, in row order b * G + g.
    reference: the frozen reference policy.
    optimizer: the optax transformation of the train state.
    eos_id: ends a completion (its tokens up to and including it are trained).
    settings: `GrpoSettings`.
    state_shardings: the `TrainState`'s shardings, to pin the update's input and output.
    rollout_sharding: places a rollout batch on the mesh (e.g. rows over the data axis).
  """
  clipped = settings.updates_per_batch > 1
  step_fn = train_step_fn(grpo_loss_fn(logits_fn, settings, clipped=clipped), optimizer)
  jit_args = {} if state_shardings is None else dict(in_shardings=(state_shardings, None, None),
                                                    out_shardings=(state_shardings, None))
  update = jax.jit(step_fn, donate_argnums=(0,), **jit_args)
  policy_logprobs = jax.jit(lambda p, b: sequence_logprobs(logits_fn(p, b), b["input_ids"], b["response_mask"])[1])
  place = rollout_sharding or (lambda batch: batch)
  g = settings.group_size

  def step(state: TrainState, prompt_batch, rng):
    key = jax.random.fold_in(jax.random.fold_in(rng, state.step), 1)
    completions = sample_fn(state.params, prompt_batch, key)
    rewards = np.asarray(reward_fn(jax.tree.map(np.asarray, dict(prompt_batch)), np.asarray(completions)),
                         np.float32)
    if rewards.shape != (completions.shape[0],):
      raise ValueError(f"reward_fn must return one reward per completion, shape ({completions.shape[0]},); "
                       f"got {rewards.shape}")
    advantages = group_advantages(jnp.asarray(rewards).reshape(-1, g)).reshape(-1)
    rollout = place(dict(rollout_batch(prompt_batch, completions, group_size=g, eos_id=eos_id),
                         advantages=advantages))
    rollout["ref_logprobs"] = reference.token_logprobs(rollout)
    if clipped:
      rollout["old_logprobs"] = policy_logprobs(state.params, rollout)
    metrics = {}
    for _ in range(settings.updates_per_batch):
      state, metrics = update(state, rollout, rng)
    groups = rewards.reshape(-1, g)
    metrics = dict(metrics, reward=float(rewards.mean()), reward_std_within_group=float(groups.std(axis=1).mean()),
                   truncated=float(np.mean(~np.any(np.asarray(completions) == eos_id, axis=1))))
    return state, metrics

  return step
