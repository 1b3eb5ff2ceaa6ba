"""Visual-ARFT's training signals on single-step records (`step_source.AgentStepSource`).

- `sft_loss_fn`: next-token cross-entropy on the gold turn (`jaxlab.vlm.sft_loss`).
- `step_reward_fn`: GRPO's host-side reward, R = R_format + R_acc per sampled turn against the
  sample's gold turn (`rewards.step_reward`), with counts of what went wrong.
- `grpo_prompt_batch`: a record batch as the prompt batch `jaxlab.posttrain.make_grpo_step` samples.

Visual-ARFT's coding trainer also swaps one sampled completion per group for the gold turn's text
before rewarding it while keeping the sampled tokens' log-probs; that mixes off-policy text into
on-policy gradients and is not in the paper, so it is not done here.
"""

from __future__ import annotations

import collections

import numpy as np

from jaxlab.agent.rewards import Encoder, step_reward
from jaxlab.agent.step_source import AgentStepSource
from jaxlab.vlm.sft_loss import sft_loss


def sft_loss_fn(model, *, weighting: str = "token"):
  """`(params, batch, rng) -> (loss, metrics)` on records with pixels [B, K, t, t, 3]."""

  def loss_fn(params, batch, rng):
    del rng
    pixels = batch["pixels"].reshape(-1, *batch["pixels"].shape[2:])
    logits, _ = model.apply({"params": params}, batch["input_ids"], pixels)
    return sft_loss(logits, batch["targets"], batch["loss_mask"], weighting=weighting)

  return loss_fn


def grpo_prompt_batch(records: dict) -> dict:
  """The prompt fields of a record batch, named as `make_grpo_step` reads them."""
  return {"input_ids": records["prompt_ids"], "attention_mask": records["prompt_mask"], "pixels": records["pixels"],
          "sample_index": records["sample_index"]}


class StepRewardFn:
  """GRPO's reward of each sampled turn against its prompt's gold turn; `counts` keeps, over all
  calls, how many turns were malformed or took the wrong action."""

  def __init__(self, source: AgentStepSource, *, group_size: int, encoder: Encoder | None = None,
               code_reward: float = 1.0):
    self.source, self.group_size = source, int(group_size)
    self.encoder, self.code_reward = encoder, float(code_reward)
    self.counts: collections.Counter = collections.Counter()

  def __call__(self, prompt_batch: dict, completions_nl: np.ndarray) -> np.ndarray:
    indices = np.repeat(np.asarray(prompt_batch["sample_index"]), self.group_size)
    rewards = np.zeros(len(completions_nl), np.float32)
    for row, (index, ids) in enumerate(zip(indices, completions_nl)):
      text = self.source.vocab.decode_response(ids)
      parts = step_reward(text, self.source.solution(int(index)), encoder=self.encoder, code_reward=self.code_reward)
      rewards[row] = parts["total"]
      self.counts["turns"] += 1
      self.counts["bad_format"] += parts["format"] == 0.0
    return rewards
