"""Scoring MultiSPA predictions: read the backticked answer, compare it by the item's answer kind, report.

The paper's uniform rule (section 3.3), per `SpatialQA.answer_kind`:
  label   the last backticked span equals the truth, ignoring case and surrounding or repeated whitespace;
  scalar  |p - g| <= 0.2 |g|;
  vector  ||p - g|| <= 0.2 ||g|| (a vector of another length is wrong);
  coord   both [x, y] (0-1000) are taken to pixels of the LAST image (x W / 1000, y H / 1000) and the
          prediction is correct when the Euclidean pixel distance is <= 0.05 W, that image's width.
A prediction without a backticked span, or whose span holds no number where one is needed (or more
than one for a scalar), is "unparsed" and wrong. Accuracies are percentages; the mean is over subtasks.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from jaxlab.spatial import subtasks
from jaxlab.spatial.qa import SpatialQA

SCALAR_TOLERANCE = 0.2
COORD_TOLERANCE = 0.05  # of the last image's width, in pixels
_SLACK = 1e-9  # floating-point slack so a value exactly at a threshold counts as inside it

_SPAN = re.compile(r"`([^`]*)`")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-"})


class PredictionsError(ValueError):
  """Predictions that do not match the items (missing, extra or repeated ids, malformed rows)."""


def extract_answer(text: str) -> str | None:
  """The content of the last non-empty backticked span of `text`, stripped; None when there is none."""
  if not isinstance(text, str):
    return None
  spans = [s.strip() for s in _SPAN.findall(text)]
  spans = [s for s in spans if s]
  return spans[-1] if spans else None


def parse_numbers(text: str) -> list[float]:
  """Every number written in `text`, in order ("[ 12 , -3.5 , 4e2 ]" -> [12.0, -3.5, 400.0])."""
  return [float(m) for m in _NUMBER.findall(text.translate(_MINUS_SIGNS))]


def _normalize_label(text: str) -> str:
  return " ".join(str(text).split()).casefold()


def _parse(kind: str, span: str | None):
  """The prediction's value for an answer kind, or None when it cannot be read."""
  if span is None:
    return None
  if kind == "label":
    return _normalize_label(span)
  numbers = parse_numbers(span)
  if not numbers or (kind == "scalar" and len(numbers) != 1):
    return None
  return numbers[0] if kind == "scalar" else numbers


def _truth(item: SpatialQA):
  """The item's ground truth in the form `_parse` gives, checked against its answer kind."""
  gt, kind = item.gt_value, item.answer_kind
  if kind == "label":
    return _normalize_label(gt)
  values = list(gt) if isinstance(gt, (list, tuple)) else [gt]
  try:
    values = [float(v) for v in values]
  except (TypeError, ValueError):
    raise ValueError(f"item {item.id}: gt_value {gt!r} is not numeric for answer kind {kind!r}") from None
  if not all(math.isfinite(v) for v in values):
    raise ValueError(f"item {item.id}: gt_value {gt!r} is not finite")
  if kind == "scalar":
    if len(values) != 1:
      raise ValueError(f"item {item.id}: a scalar gt_value must be one number, got {gt!r}")
    return values[0]
  if kind == "coord" and len(values) != 2:
    raise ValueError(f"item {item.id}: a coord gt_value is [x, y], got {gt!r}")
  return values


def _compare(item: SpatialQA, predicted, truth) -> bool:
  kind = item.answer_kind
  if kind == "label":
    return predicted == truth
  if kind == "scalar":
    return abs(predicted - truth) <= SCALAR_TOLERANCE * abs(truth) + _SLACK * max(1.0, abs(truth))
  if len(predicted) != len(truth):
    return False
  if kind == "vector":
    norm = math.sqrt(sum(g * g for g in truth))
    error = math.sqrt(sum((p - g) ** 2 for p, g in zip(predicted, truth)))
    return error <= SCALAR_TOLERANCE * norm + _SLACK * max(1.0, norm)
  width, height = item.widths[-1], item.heights[-1]
  dx = (predicted[0] - truth[0]) * width / 1000.0
  dy = (predicted[1] - truth[1]) * height / 1000.0
  limit = COORD_TOLERANCE * width
  return math.hypot(dx, dy) <= limit + _SLACK * max(1.0, limit)


def _judge(item: SpatialQA, prediction: str) -> tuple[bool, bool]:
  """(correct, parsed) for one prediction."""
  truth = _truth(item)
  predicted = _parse(item.answer_kind, extract_answer(prediction))
  if predicted is None:
    return False, False
  return _compare(item, predicted, truth), True


def is_correct(item: SpatialQA, prediction: str) -> bool:
  """Whether `prediction` answers `item` by the rule of its answer kind (module docstring)."""
  return _judge(item, prediction)[0]


_FAMILY_ORDER = ("depth", "correspondence", "camera", "object_movement", "object_size")


def subtask_order(name: str) -> tuple:
  """Families in the paper's order, known subtasks in their listed order, others by name."""
  try:
    family = subtasks.family(name)
  except ValueError:
    return (len(_FAMILY_ORDER), 0, name)
  listed = subtasks.STATIC_SUBTASKS
  return (_FAMILY_ORDER.index(family), listed.index(name) if name in listed else len(listed), name)


@dataclasses.dataclass(frozen=True)
class SpatialReport:
  """Scores per subtask and their mean.

  per_subtask: name -> {"accuracy": percent, "count": items, "unparsed": predictions without a readable
  answer}. mean_accuracy: the mean of the subtasks' accuracies. missing: ids without a prediction
  (scored as wrong; only with allow_missing).
  """

  per_subtask: dict[str, dict[str, float | int]]
  mean_accuracy: float
  num_items: int
  missing: tuple[str, ...] = ()

  def to_json(self) -> dict:
    return {"per_subtask": self.per_subtask, "mean_accuracy": self.mean_accuracy, "num_items": self.num_items,
            "missing": list(self.missing)}

  def to_markdown(self) -> str:
    lines = ["| subtask | items | accuracy (%) | unparsed |", "|---|---:|---:|---:|"]
    for name, row in self.per_subtask.items():
      lines.append(f"| {name} | {row['count']} | {row['accuracy']:.2f} | {row['unparsed']} |")
    lines.append(f"| **mean over {len(self.per_subtask)} subtasks** | {self.num_items} | "
                 f"**{self.mean_accuracy:.2f}** | {sum(r['unparsed'] for r in self.per_subtask.values())} |")
    if self.missing:
      shown = ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else "")
      lines.append("")
      lines.append(f"{len(self.missing)} item(s) had no prediction and count as wrong: {shown}")
    return "\n".join(lines) + "\n"


def _few(ids: Iterable[str], limit: int = 5) -> str:
  ids = sorted(ids)
  return ", ".join(repr(i) for i in ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def score(items: Sequence[SpatialQA], predictions: Mapping[str, str], *, allow_missing: bool = False) -> SpatialReport:
  """Scores every item against its prediction (by id).

  Raises PredictionsError when an item has no prediction (unless allow_missing, which scores it as
  wrong and lists it in the report) or a prediction's id is not an item's (always: the files do not
  belong together).
  """
  if not items:
    raise PredictionsError("no items to score")
  ids = [item.id for item in items]
  if len(set(ids)) != len(ids):
    repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
    raise PredictionsError(f"item ids repeat: {_few(repeated)}")
  extra = set(predictions) - set(ids)
  if extra:
    raise PredictionsError(f"{len(extra)} prediction(s) for ids that are not items: {_few(extra)}")
  missing = [i for i in ids if i not in predictions]
  if missing and not allow_missing:
    raise PredictionsError(f"{len(missing)} item(s) have no prediction: {_few(missing)} "
                           "(pass allow_missing to score them as wrong)")
  tallies: dict[str, list[int]] = {}
  for item in items:
    tally = tallies.setdefault(item.subtask, [0, 0, 0])  # count, correct, unparsed
    tally[0] += 1
    if item.id not in predictions:
      _truth(item)  # a malformed item is still an error, answered or not
      continue
    correct, parsed = _judge(item, predictions[item.id])
    tally[1] += int(correct)
    tally[2] += int(not parsed)
  per_subtask = {name: {"accuracy": 100.0 * tallies[name][1] / tallies[name][0], "count": tallies[name][0],
                        "unparsed": tallies[name][2]}
                 for name in sorted(tallies, key=subtask_order)}
  mean = sum(row["accuracy"] for row in per_subtask.values()) / len(per_subtask)
  return SpatialReport(per_subtask=per_subtask, mean_accuracy=mean, num_items=len(items), missing=tuple(missing))


def read_predictions(path: str | os.PathLike) -> dict[str, str]:
  """id -> prediction text from a jsonl file of {"id": ..., "prediction": "..."} rows.

  Raises PredictionsError naming the file and line of a malformed row or a repeated id.
  """
  path = os.fspath(path)
  predictions: dict[str, str] = {}
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      where = f"{path}:{number}"
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise PredictionsError(f"{where}: not JSON ({e.msg})") from None
      if not isinstance(row, dict) or "id" not in row or "prediction" not in row:
        raise PredictionsError(f"{where}: a row needs 'id' and 'prediction'")
      if not isinstance(row["prediction"], str):
        raise PredictionsError(f"{where}: 'prediction' must be a string, got {type(row['prediction']).__name__}")
      key = str(row["id"])
      if key in predictions:
        raise PredictionsError(f"{where}: id {key!r} appears twice")
      predictions[key] = row["prediction"]
  return predictions
