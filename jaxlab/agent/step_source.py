"""Single-step samples as fixed-shape token records for SFT and GRPO (a grain random-access source).

Record i (sample `samples[i]`):

  input_ids    int32 [L]        prompt, the gold turn, `<|im_end|>`; right padded (L: the `max_length`
                                given, or less when every sample is shorter)
  targets      int32 [L]        input_ids shifted by one (the next token)
  loss_mask    float32 [L]      1 where the target is a token of the gold turn or its `<|im_end|>`
  prompt_ids   int32 [P]        the prompt alone, LEFT padded (GRPO samples continuations of it)
  prompt_mask  bool [P]         its real tokens
  pixels       float32 [K, t, t, 3]   the prompt's images (`prompt.images_per_prompt`), normalized
  sample_index int32 []         i, so a reward function can find the gold turn

Samples whose prompt is longer than P, or whose prompt and turn exceed L, are dropped at
construction and counted in `dropped` (with the first few ids in the log): a dataset made
elsewhere is never cut silently mid-turn.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxlab.agent.prompt import images_per_prompt, render_prompt
from jaxlab.agent.records import StepSample, Trajectory, current_image
from jaxlab.agent.tags import parse_step
from jaxlab.agent.vocab import AgentVocab
from jaxlab.vlm.chat_template import IM_END
from jaxlab.vlm.shapes_task import normalize

log = logging.getLogger(__name__)

DIRECT_THINK = "I answer from the image."


def direct_solution(trajectory: Trajectory) -> str:
  """The no-tools target: a fixed thought and the gold answer."""
  answer = parse_step(trajectory.steps[-1]).content
  return f"<think>{DIRECT_THINK}</think><answer>{answer}</answer>"


def tile(image_hw3: np.ndarray, tile_size: int) -> np.ndarray:
  """uint8 [H, W, 3] -> normalized float32 [t, t, 3] (bilinear resize when the size differs)."""
  image = np.asarray(image_hw3)
  if image.shape[:2] != (tile_size, tile_size):
    image = np.asarray(Image.fromarray(image).resize((tile_size, tile_size), Image.BILINEAR))
  return normalize(image.astype(np.float32) / 255.0)


@dataclasses.dataclass(frozen=True)
class EncodedStep:
  sample: StepSample
  prompt_ids: tuple[int, ...]
  solution: str
  solution_ids: tuple[int, ...]


class AgentStepSource:
  """The records above over `samples` (mode "tools": the gold turn after the gold chain; "direct":
  the trajectory's question answered in one turn, `direct_solution`)."""

  def __init__(self, samples: Sequence[StepSample], vocab: AgentVocab, *, tile_size: int, tokens_per_tile: int,
               max_prompt_length: int, max_length: int, mode: str = "tools"):
    if max_length <= max_prompt_length:
      raise ValueError(f"max_length ({max_length}) must exceed max_prompt_length ({max_prompt_length})")
    self.vocab, self.tile_size, self.mode = vocab, int(tile_size), mode
    self.max_prompt_length, self.max_length = int(max_prompt_length), int(max_length)
    kept, dropped = [], []
    for sample in samples:
      t = sample.trajectory
      if mode == "direct":
        text = render_prompt(t.task, t.question, tokens_per_tile=tokens_per_tile, mode="direct")
        solution = direct_solution(t)
      else:
        text = render_prompt(t.task, t.question, sample.previous, sample.previous_observations,
                             tokens_per_tile=tokens_per_tile)
        solution = sample.solution
      prompt_ids = vocab.encode(text)
      solution_ids = vocab.encode(solution + IM_END)
      if len(prompt_ids) > self.max_prompt_length or len(prompt_ids) + len(solution_ids) > self.max_length:
        dropped.append(f"{t.id}#{sample.index} ({len(prompt_ids)} + {len(solution_ids)} tokens)")
        continue
      kept.append(EncodedStep(sample, tuple(prompt_ids), solution, tuple(solution_ids)))
    self.steps = kept
    self.dropped = len(dropped)
    if kept:  # Records only as long as the longest sample needs (in steps of 16): short sets train faster.
      need = max(len(k.prompt_ids) + len(k.solution_ids) for k in kept)
      self.max_length = min(self.max_length, -(-need // 16) * 16)
    if dropped:
      log.warning("Dropped %d of %d step samples longer than the prompt (%d) or sequence (%d) limit, e.g. %s",
                  len(dropped), len(samples), max_prompt_length, max_length, dropped[:3])
    if not kept:
      raise ValueError(f"no step sample fits max_prompt_length={max_prompt_length}, max_length={max_length} "
                       f"(all {len(samples)} dropped)")

  def __len__(self) -> int:
    return len(self.steps)

  def solution(self, index: int) -> str:
    return self.steps[index].solution

  def images(self, index: int) -> list[np.ndarray]:
    """The prompt's uint8 images: the input, and for coding the current view."""
    sample = self.steps[index].sample
    t = sample.trajectory
    if images_per_prompt(t.task) == 1:
      return [t.image]
    view = t.image if self.mode == "direct" else current_image(t, sample.previous_observations)
    return [t.image, view]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    step = self.steps[index]
    pad = self.vocab.pad_id
    sequence = list(step.prompt_ids) + list(step.solution_ids)
    n, p = len(sequence), len(step.prompt_ids)
    input_ids = np.full(self.max_length, pad, np.int32)
    input_ids[:n] = sequence
    targets = np.full(self.max_length, pad, np.int32)
    targets[:n - 1] = sequence[1:]
    loss_mask = np.zeros(self.max_length, np.float32)
    loss_mask[p - 1:n - 1] = 1.0  # Position j predicts token j + 1: the turn's tokens start at p.
    prompt_ids = np.full(self.max_prompt_length, pad, np.int32)
    prompt_ids[self.max_prompt_length - p:] = step.prompt_ids
    prompt_mask = np.zeros(self.max_prompt_length, bool)
    prompt_mask[self.max_prompt_length - p:] = True
    pixels = np.stack([tile(image, self.tile_size) for image in self.images(index)])
    return {"input_ids": input_ids, "targets": targets, "loss_mask": loss_mask, "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask, "pixels": pixels, "sample_index": np.int32(index)}
