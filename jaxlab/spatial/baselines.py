"""Baselines that read no image: chance (label subtasks) and the training prior (every subtask).

The prior answers each question with the training set's most frequent label, or its median value
(per component for vectors and coordinates): what a model that ignores the images can reach.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from jaxlab.spatial.qa import SpatialQA
from jaxlab.spatial.subtasks import LABEL_CHOICES
from jaxlab.spatial.templates import format_value


def chance_accuracy(subtask: str) -> float | None:
  """100 / number of choices for a label subtask; None where answers are numbers."""
  choices = LABEL_CHOICES.get(subtask)
  return 100.0 / len(choices) if choices else None


def prior_answers(train: Sequence[SpatialQA]) -> dict[str, str]:
  """subtask -> the backticked answer the training prior gives."""
  by_subtask: dict[str, list[SpatialQA]] = collections.defaultdict(list)
  for item in train:
    by_subtask[item.subtask].append(item)
  answers = {}
  for subtask, items in by_subtask.items():
    kind = items[0].answer_kind
    values = [i.gt_value for i in items]
    if kind == "label":
      value = collections.Counter(values).most_common(1)[0][0]
    elif kind == "scalar":
      value = int(round(float(np.median(values))))
    else:
      value = tuple(int(round(v)) for v in np.median(np.asarray(values, float), axis=0))
    answers[subtask] = f"`{format_value(kind, value)}`"
  return answers


def prior_predictions(train: Sequence[SpatialQA], items: Sequence[SpatialQA]) -> dict[str, str]:
  """id -> the prior's answer for each of `items` (subtasks unseen in training get no answer: "")."""
  answers = prior_answers(train)
  return {i.id: answers.get(i.subtask, "") for i in items}
