"""A generated question with its (prompted) images in memory, and the reasons a question is skipped.

Builders return a `QASample` or raise `Skip` with a short reason; the engine counts the reasons, so
a scene that yields no question of some kind says why instead of yielding a wrong one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.spatial import templates
from jaxlab.spatial.qa import SpatialQA, prompt_with_images
from jaxlab.spatial.subtasks import answer_kind


class Skip(Exception):
  """No valid question of this kind here (the message is the reason the engine counts)."""


@dataclasses.dataclass(frozen=True, eq=False)
class QASample:
  """A `SpatialQA` whose `images` are file names, and the uint8 [H, W, 3] images to write under them."""

  qa: SpatialQA
  images: tuple[np.ndarray, ...]


def make_sample(item_id: str, subtask: str, images: list[np.ndarray], rng: np.random.Generator, value,
                *, template_key: str | None = None, meta: dict | None = None, **fields) -> QASample:
  """Renders the task, question and answer templates of `subtask` around `value` into a `QASample`.

  `template_key` names the templates when they are shared across names (object movement per source);
  `fields` fill the question's placeholders.
  """
  key = template_key or subtask
  kind = answer_kind(subtask)
  question = prompt_with_images(len(images), templates.render_task(key, rng),
                                templates.render_question(key, rng, **fields))
  answer = templates.render_answer(key, rng, value)
  gt = tuple(float(v) for v in value) if kind in ("vector", "coord") else (str(value) if kind == "label" else
                                                                           float(value))
  names = tuple(f"{item_id}_{k}.png" for k in range(1, len(images) + 1))
  qa = SpatialQA(id=item_id, subtask=subtask, images=names, question=question, answer=answer, answer_kind=kind,
                 gt_value=gt, widths=tuple(int(im.shape[1]) for im in images),
                 heights=tuple(int(im.shape[0]) for im in images), meta=dict(meta or {}))
  return QASample(qa, tuple(np.asarray(im, np.uint8) for im in images))
