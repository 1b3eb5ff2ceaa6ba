"""Task generation for MM-IFEngine: image filtering, and tasks of the five types drawn per image.

MM-IFEngine has an LLM pick or invent tasks for each image from a pool of example tasks in five
types. The pool here holds 18 instruction templates over the same five types; `{subject}` is filled
from the image's subject words when the caller has them ("the image" otherwise), and
`generate_tasks` draws `tasks_per_image` distinct templates per image. `task_writer`, when given,
is asked first (an LLM hook: `(image, task_type, rng) -> instruction or None`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

TASK_TYPES: dict[str, tuple[str, ...]] = {
    "descriptive_analysis": (
        "Describe {subject} in detail.",
        "What stands out in {subject}? Explain.",
        "Analyse the composition of {subject}.",
        "List what you see in {subject} and how the parts relate.",
    ),
    "emotion_perspective": (
        "What mood does {subject} convey?",
        "How might someone feel looking at {subject}?",
        "Describe {subject} from the point of view of an object in it.",
    ),
    "creative_writing": (
        "Write a short story inspired by {subject}.",
        "Write a poem about {subject}.",
        "Imagine what happens just after {subject} was captured, and tell it.",
        "Write a fable that starts with {subject}.",
    ),
    "social_media_content": (
        "Write a social media post sharing {subject}.",
        "Write a product advertisement based on {subject}.",
        "Write a caption and three hashtags for {subject}.",
    ),
    "role_play": (
        "You are a tour guide. Present {subject} to visitors.",
        "You are a critic. Review {subject}.",
        "You are a child seeing {subject} for the first time. Talk about it.",
        "You are a scientist. Explain what {subject} shows.",
    ),
}


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  """An image the engine writes tasks for: its path (or an id), and words about it (may be empty)."""

  path: str
  subject: str = "the image"
  keywords: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Task:
  image: ImageRecord
  task_type: str
  instruction: str


def filter_images(paths: Sequence[str | os.PathLike], *, min_side: int) -> tuple[list[str], dict[str, str]]:
  """(kept paths, {dropped path: reason}): images whose shorter side is below `min_side`, or that PIL
  cannot open, are dropped (the paper drops low-resolution images)."""
  kept, dropped = [], {}
  for path in map(str, paths):
    try:
      with Image.open(path) as image:
        width, height = image.size
    except (OSError, ValueError) as e:
      dropped[path] = f"unreadable ({e})"
      continue
    if min(width, height) < min_side:
      dropped[path] = f"{width}x{height} is below {min_side} px"
    else:
      kept.append(path)
  return kept, dropped


TaskWriter = Callable[[ImageRecord, str, np.random.Generator], "str | None"]


def generate_tasks(images: Sequence[ImageRecord], rng: np.random.Generator, *, tasks_per_image: int = 1,
                   task_types: Sequence[str] | None = None, task_writer: TaskWriter | None = None) -> list[Task]:
  """`tasks_per_image` tasks per image, each of a type drawn uniformly from `task_types` (default: all five),
  distinct templates within one image."""
  types = tuple(task_types or TASK_TYPES)
  unknown = [t for t in types if t not in TASK_TYPES]
  if unknown:
    raise ValueError(f"unknown task types {unknown}; known: {', '.join(TASK_TYPES)}")
  pool = [(t, template) for t in types for template in TASK_TYPES[t]]
  if not 1 <= tasks_per_image <= len(pool):
    raise ValueError(f"tasks_per_image must be in [1, {len(pool)}], got {tasks_per_image}")
  tasks = []
  for image in images:
    chosen: set[int] = set()
    while len(chosen) < tasks_per_image:
      task_type = types[int(rng.integers(len(types)))]
      candidates = [i for i, (t, _) in enumerate(pool) if t == task_type and i not in chosen]
      if not candidates:
        continue
      i = candidates[int(rng.integers(len(candidates)))]
      chosen.add(i)
      written = task_writer(image, task_type, rng) if task_writer else None
      instruction = written if written else pool[i][1].format(subject=image.subject)
      tasks.append(Task(image, task_type, instruction))
  return tasks
