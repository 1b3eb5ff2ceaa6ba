"""A process reward model in VisualPRM's form: step-judgement sequences, step and solution scores, Best-of-N.

The PRM reads one solution as a multi-turn ChatML chat (InternVL3 §2.4): user turn 1 holds the
image, the question, "\\n" and step 0; every assistant turn is one judgement token; user turn k
holds step k:

  <|im_start|>user\\n<img><IMG_CONTEXT>..</img>\\nQ?\\nred two<|im_end|>\\n<|im_start|>assistant\\n+<|im_end|>\\n
  <|im_start|>user\\ngreen zero<|im_end|>\\n<|im_start|>assistant\\n+<|im_end|>\\n ...

The token in every judgement slot is "+", in training as well as at inference, where the labels are
unknown: a later judgement never sees an earlier true label. The position before a slot predicts
it; its target is the step's label ("+" correct, "-" wrong) and only those positions carry loss.
One forward pass scores every step: step score = P("+") under the softmax over the whole
vocabulary at that position; solution score = the mean over its steps (0 with no steps).

A record (`prm_record`) has, with T its padded length and S = max_steps:

  input_ids        int32 [T]    ids[:-1] of the chat, right padded with pad_id
  targets          int32 [T]    ids[1:], the label at each judgement position
  loss_mask        float32 [T]  1 at the judgement positions (the position before each slot)
  judge_positions  int32 [S]    those positions in step order, 0 past the last step
  step_mask        float32 [S]  1 for each step the record holds
  step_labels      float32 [S]  1 for a "+" label, 0 for "-" (and past the last step)

Steps are read from generated ids as `jaxlab.vlm.counting_task.grade_solution` reads them (up to
the first `<|im_end|>`, pads dropped, split at ";"), so step k of a record is step k of its grade.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.vlm.chat_template import IM_START, render_chat
from jaxlab.vlm.counting_task import JUDGEMENTS, QUESTION, STEP_SEPARATOR
from jaxlab.vlm.image_tokens import expand_image_tokens
from jaxlab.vlm.shapes_task import SPECIAL_TOKENS, ShapesVocab

PLUS, MINUS = JUDGEMENTS


def split_steps(vocab: ShapesVocab, ids: Sequence[int]) -> list[list[int]]:
  """The steps of a generated solution as id lists, split exactly as `grade_solution` splits them.

  Special tokens inside a step (a sampled `<IMG_CONTEXT>`, `<|im_start|>`, ...) are dropped from it:
  in the PRM's chat they would break the turn and image layout. The number of steps is unchanged.
  """
  ids = [int(i) for i in ids]
  if vocab.im_end_id in ids:
    ids = ids[:ids.index(vocab.im_end_id)]
  separator = vocab.ids[STEP_SEPARATOR]
  special = {vocab.ids[t] for t in SPECIAL_TOKENS}
  steps, current, pad_only = [], [], True
  for i in ids:
    if i == vocab.pad_id:
      continue
    pad_only = False
    if i == separator:
      steps.append(current)
      current = []
    elif i not in special:
      current.append(i)
  # grade_solution counts a last step whenever any word (special or not) was read.
  if not pad_only:
    steps.append(current)
  return steps


def prm_messages(steps: Sequence[str], question: str = QUESTION) -> list[dict]:
  """The chat turns of a solution's steps, every judgement turn holding "+"."""
  if not steps:
    raise ValueError("a PRM chat needs at least one step")
  messages = []
  for k, step in enumerate(steps):
    content = [{"type": "image"}, {"type": "text", "text": f"{question}\n{step}"}] if k == 0 else step
    messages += [{"role": "user", "content": content}, {"role": "assistant", "content": PLUS}]
  return messages


def prm_length(vocab: ShapesVocab, *, max_steps: int, max_step_tokens: int, tokens_per_tile: int,
               question: str = QUESTION) -> int:
  """The padded length T that fits any `max_steps` steps holding `max_step_tokens` ids between them."""
  empty = expand_image_tokens(render_chat(prm_messages([""] * max_steps, question), add_generation_prompt=False),
                              [1], tokens_per_tile=tokens_per_tile)
  return len(vocab.encode(empty)) - 1 + max_step_tokens


def prm_record(vocab: ShapesVocab, steps: Sequence[Sequence[int]], labels: Sequence[bool] | None = None, *,
               tokens_per_tile: int, length: int, max_steps: int, question: str = QUESTION) -> dict[str, np.ndarray]:
  """The record (module docstring) of a solution's steps (id lists, as `split_steps` gives them).

  Args:
    vocab: the word vocabulary; it must hold "+" and "-".
    steps: at least one step; steps past `max_steps` are left out (the caller counts them).
    labels: per step, True when the step is correct; None (inference): every target is "+".
    tokens_per_tile: `<IMG_CONTEXT>` tokens of the one image tile.
    length: T, the padded length (`prm_length`).
    max_steps: S, the judgement slots of a record.

  Raises:
    ValueError: no steps, labels of another count than the steps, or a chat longer than `length`.
  """
  if not steps:
    raise ValueError("a PRM record needs at least one step")
  if labels is not None and len(labels) != len(steps):
    raise ValueError(f"{len(labels)} labels for {len(steps)} steps")
  steps = list(steps)[:max_steps]
  special = {vocab.ids[t] for t in SPECIAL_TOKENS}
  text_steps = [vocab.decode([i for i in step if int(i) not in special]) for step in steps]
  chat = render_chat(prm_messages(text_steps, question), add_generation_prompt=False)
  ids = np.asarray(vocab.encode(expand_image_tokens(chat, [1], tokens_per_tile=tokens_per_tile)), np.int32)
  if len(ids) - 1 > length:
    raise ValueError(f"the PRM chat of {len(steps)} steps has {len(ids) - 1} input ids, above length={length}")
  opening = np.asarray([vocab.ids[IM_START], vocab.ids["assistant"], vocab.ids["\n"]], np.int32)
  windows = np.lib.stride_tricks.sliding_window_view(ids, 3)
  slots = np.flatnonzero(np.all(windows == opening, axis=1)) + 3  # Where each judgement token sits.
  assert len(slots) == len(steps) and np.all(ids[slots] == vocab.ids[PLUS]), "judgement slots out of place"

  input_ids = np.full(length, vocab.pad_id, np.int32)
  targets = np.full(length, vocab.pad_id, np.int32)
  loss_mask = np.zeros(length, np.float32)
  input_ids[:len(ids) - 1] = ids[:-1]
  targets[:len(ids) - 1] = ids[1:]
  positions = slots - 1  # The position before a slot predicts the judgement.
  verdicts = [True] * len(steps) if labels is None else [bool(x) for x in list(labels)[:max_steps]]
  targets[positions] = [vocab.ids[PLUS] if ok else vocab.ids[MINUS] for ok in verdicts]
  loss_mask[positions] = 1.0
  judge_positions = np.zeros(max_steps, np.int32)
  step_mask = np.zeros(max_steps, np.float32)
  step_labels = np.zeros(max_steps, np.float32)
  judge_positions[:len(steps)] = positions
  step_mask[:len(steps)] = 1.0
  step_labels[:len(steps)] = verdicts
  return {"input_ids": input_ids, "targets": targets, "loss_mask": loss_mask, "judge_positions": judge_positions,
          "step_mask": step_mask, "step_labels": step_labels}


def balance_labels(step_labels_ns: np.ndarray, step_mask_ns: np.ndarray, *, max_ratio: float,
                   seed: int) -> np.ndarray:
  """A step mask that keeps the majority label at most `max_ratio` times as often as the minority.

  Judgements of the majority label are dropped at random (from the loss only: their steps stay in
  the chats as context). `max_ratio` <= 0, or a label that never occurs, keeps every step.

  Returns:
    float32 [N, S], a subset of `step_mask_ns`.
  """
  labels, mask = np.asarray(step_labels_ns), np.asarray(step_mask_ns, np.float32).copy()
  counts = {v: np.flatnonzero((mask.reshape(-1) != 0) & (labels.reshape(-1) == v)) for v in (0.0, 1.0)}
  minority, majority = sorted(counts, key=lambda v: (len(counts[v]), v))
  keep = int(np.floor(max_ratio * len(counts[minority])))
  if max_ratio <= 0 or not len(counts[minority]) or len(counts[majority]) <= keep:
    return mask
  dropped = np.random.default_rng(seed).choice(counts[majority], len(counts[majority]) - keep, replace=False)
  mask.reshape(-1)[dropped] = 0.0
  return mask


def judgement_probs(logits_btv: jax.Array, judge_positions_bs: jax.Array, plus_id: int) -> jax.Array:
  """float32 [B, S]: P("+") under the softmax over the whole vocabulary at each judgement position."""
  logits_bsv = jnp.take_along_axis(jnp.asarray(logits_btv, jnp.float32), jnp.asarray(judge_positions_bs)[..., None],
                                   axis=1)
  return jax.nn.softmax(logits_bsv, axis=-1)[..., plus_id]


def solution_scores(step_probs_bs: jax.Array, step_mask_bs: jax.Array) -> jax.Array:
  """float32 [B]: the mean step score over each solution's steps; 0 for a solution without steps."""
  mask = jnp.asarray(step_mask_bs, jnp.float32)
  count = jnp.sum(mask, axis=-1)
  return jnp.where(count > 0, jnp.sum(mask * step_probs_bs, axis=-1) / jnp.maximum(count, 1.0), 0.0)


def score_batch(logits_fn: Callable[[Any, Mapping[str, jax.Array]], jax.Array], params,
                batch: Mapping[str, jax.Array], plus_id: int) -> tuple[jax.Array, jax.Array]:
  """(step scores [B, S], solution scores [B]) of a batch of records.

  `logits_fn(params, batch) -> logits [B, T, V]` is the PRM (`jaxlab.posttrain.policy` convention);
  `batch` holds the records' fields (and whatever the logits function reads, e.g. "pixels").
  """
  step_probs_bs = judgement_probs(logits_fn(params, batch), batch["judge_positions"], plus_id)
  step_probs_bs = step_probs_bs * jnp.asarray(batch["step_mask"], jnp.float32)
  return step_probs_bs, solution_scores(step_probs_bs, batch["step_mask"])


def best_of_n(scores_n: Sequence[float]) -> int:
  """The index of the highest-scoring candidate; the first one among equals."""
  scores = np.asarray(scores_n, np.float64)
  if scores.ndim != 1 or not scores.size:
    raise ValueError(f"best_of_n needs a non-empty 1-D list of scores, got shape {scores.shape}")
  return int(np.argmax(scores))


def majority_vote(answers: Sequence[str | None]) -> str | None:
  """The most frequent answer (None entries do not vote); among equals, the one that occurs first."""
  counts = Counter(a for a in answers if a is not None)
  if not counts:
    return None
  top = max(counts.values())
  return next(a for a in answers if a is not None and counts[a] == top)
