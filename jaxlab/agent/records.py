"""Agent trajectories and the single-step samples Visual-ARFT trains on.

A trajectory is one question solved with tools: the gold assistant turns in order, each
`<think>…</think>` then one action, and what the environment gave back after each turn
(search: an `<information>` block; code: the image the code wrote; problem and answer: nothing).

Training never runs tools (spec §4): a trajectory of n turns is split into n step samples, the
k-th holding the question, the gold turns before it with their observations, and the k-th turn
as the target ("solution").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.agent.tags import parse_step

TASKS = ("coding", "search")
SPLITS = ("train", "simple", "hard")


@dataclasses.dataclass(frozen=True)
class Observation:
  """What the environment returned after one turn: `text` (an `<information>…</information>`
  block, or "" when none) and `image` (uint8 [H, W, 3], the code tool's output, or None)."""

  text: str = ""
  image: np.ndarray | None = None


NO_OBSERVATION = Observation()


@dataclasses.dataclass(frozen=True)
class EvalItem:
  """One benchmark question, solved live: `answers` are the gold answer and its aliases;
  `split` is "simple" or "hard" (MAT), or "train"."""

  id: str
  task: str
  question: str
  image: np.ndarray
  answers: tuple[str, ...]
  split: str = "simple"


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """One question with its gold tool-using solution.

  Attributes:
    id: unique within a dataset.
    task: "coding" or "search".
    question: the user's question (without the `<query>` wrapper).
    image: uint8 [H, W, 3], the input image.
    steps: the gold assistant turns, each `<think>…</think><action>…</action>`; the last one
      is an `<answer>`.
    observations: one per step: what the environment appended after it (NO_OBSERVATION for
      problem and answer turns).
    answers: the gold answer and its aliases (the first is the one the last step gives).
    split: "train", "simple" or "hard".
  """

  id: str
  task: str
  question: str
  image: np.ndarray
  steps: tuple[str, ...]
  observations: tuple[Observation, ...]
  answers: tuple[str, ...]
  split: str = "train"

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"trajectory {self.id!r}: task must be one of {TASKS}, got {self.task!r}")
    if self.split not in SPLITS:
      raise ValueError(f"trajectory {self.id!r}: split must be one of {SPLITS}, got {self.split!r}")
    if not self.steps or len(self.steps) != len(self.observations):
      raise ValueError(f"trajectory {self.id!r}: {len(self.steps)} steps and {len(self.observations)} "
                       "observations (need one observation per step, at least one step)")
    if not self.answers:
      raise ValueError(f"trajectory {self.id!r}: no gold answer")
    image = np.asarray(self.image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
      raise ValueError(f"trajectory {self.id!r}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    for i, text in enumerate(self.steps):
      step = parse_step(text)
      if step.error:
        raise ValueError(f"trajectory {self.id!r}: gold step {i} is malformed ({step.error}): {text!r}")
    if parse_step(self.steps[-1]).action != "answer":
      raise ValueError(f"trajectory {self.id!r}: the last gold step must be an <answer>")

  @property
  def item(self) -> EvalItem:
    """The question alone, to be solved live."""
    return EvalItem(self.id, self.task, self.question, self.image, self.answers, self.split)


@dataclasses.dataclass(frozen=True)
class StepSample:
  """One decision: the prompt is `question` with `previous` gold turns and their observations;
  the target is `solution`. `kind` is the solution's action ("problem", "code", "search",
  "answer"); `index` is the turn's position in its trajectory."""

  trajectory: Trajectory
  index: int

  @property
  def previous(self) -> tuple[str, ...]:
    return self.trajectory.steps[:self.index]

  @property
  def previous_observations(self) -> tuple[Observation, ...]:
    return self.trajectory.observations[:self.index]

  @property
  def solution(self) -> str:
    return self.trajectory.steps[self.index]

  @property
  def kind(self) -> str:
    return parse_step(self.solution).action


def split_into_steps(trajectories) -> list[StepSample]:
  """Every trajectory's turns as single-step samples, in trajectory then turn order."""
  return [StepSample(t, i) for t in trajectories for i in range(len(t.steps))]


def current_image(trajectory: Trajectory, observations) -> np.ndarray:
  """The newest image the chain holds: the last code output among `observations`, else the input."""
  for obs in reversed(tuple(observations)):
    if obs.image is not None:
      return obs.image
  return trajectory.image
