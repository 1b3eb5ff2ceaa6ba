"""MultiSPA question-answer items and their jsonl layout (InternVL's fine-tuning conversation layout).

One line per item:

  {"id": "...", "subtask": "camera_yaw_degrees", "image": ["a.png", "b.png"],
   "conversations": [{"from": "human", "value": "Image-1: <image>\\nImage-2: <image>\\n{task}\\n{question}"},
                     {"from": "gpt", "value": "... `35` ..."}],
   "answer_kind": "scalar", "gt_value": 35, "width_list": [128, 128], "height_list": [96, 96], "meta": {...}}

`answer_kind` says how the scorer compares (`jaxlab.spatial.scoring`):
  "label"   exact match of the backticked text (direction words, choice letters);
  "scalar"  a number, correct within 20 % of the truth;
  "vector"  a list of numbers, correct within 20 % of the truth's norm;
  "coord"   [x, y] in 0-1000 of the last image, correct within 5 % of that image's width.
Image paths are relative to the jsonl file's folder unless absolute.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterable, Sequence

from jaxlab import files

ANSWER_KINDS = ("label", "scalar", "vector", "coord")
IMAGE_MARK = "<image>"


class QAFormatError(ValueError):
  """A jsonl line that is not a MultiSPA item (the message names the file, line and field)."""


@dataclasses.dataclass(frozen=True)
class SpatialQA:
  """One question with its images, reference answer and ground truth (module docstring)."""

  id: str
  subtask: str
  images: tuple[str, ...]
  question: str
  answer: str
  answer_kind: str
  gt_value: str | float | tuple[float, ...]
  widths: tuple[int, ...]
  heights: tuple[int, ...]
  meta: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.answer_kind not in ANSWER_KINDS:
      raise QAFormatError(f"item {self.id}: answer_kind must be one of {ANSWER_KINDS}, got {self.answer_kind!r}")
    n = len(self.images)
    if n < 1 or len(self.widths) != n or len(self.heights) != n:
      raise QAFormatError(f"item {self.id}: {n} images but {len(self.widths)} widths and {len(self.heights)} heights")
    if self.question.count(IMAGE_MARK) != n:
      raise QAFormatError(f"item {self.id}: the question holds {self.question.count(IMAGE_MARK)} {IMAGE_MARK} "
                          f"marks for {n} images")
    if "`" not in self.answer:
      raise QAFormatError(f"item {self.id}: the answer has no backticked value")

  def to_json(self) -> dict:
    gt = list(self.gt_value) if isinstance(self.gt_value, (tuple, list)) else self.gt_value
    return {"id": self.id, "subtask": self.subtask, "image": list(self.images),
            "conversations": [{"from": "human", "value": self.question}, {"from": "gpt", "value": self.answer}],
            "answer_kind": self.answer_kind, "gt_value": gt, "width_list": list(self.widths),
            "height_list": list(self.heights), "meta": self.meta}

  @classmethod
  def from_json(cls, row: dict, where: str = "item") -> "SpatialQA":
    try:
      turns = row["conversations"]
      human = next(t["value"] for t in turns if t["from"] == "human")
      gpt = next(t["value"] for t in turns if t["from"] == "gpt")
      images = row["image"]
      images = (images,) if isinstance(images, str) else tuple(images)
      gt = row["gt_value"]
      gt = tuple(float(v) for v in gt) if isinstance(gt, list) else gt
      return cls(id=str(row["id"]), subtask=str(row["subtask"]), images=images, question=human, answer=gpt,
                 answer_kind=str(row["answer_kind"]), gt_value=gt, widths=tuple(int(w) for w in row["width_list"]),
                 heights=tuple(int(h) for h in row["height_list"]), meta=dict(row.get("meta", {})))
    except (KeyError, StopIteration, TypeError) as e:
      raise QAFormatError(f"{where}: not a MultiSPA item (missing or malformed field: {e!r})") from None

  def image_paths(self, root: str | os.PathLike) -> list[str]:
    return [p if os.path.isabs(p) else str(pathlib.Path(root) / p) for p in self.images]


def write_items(path: str | os.PathLike, items: Iterable[SpatialQA]) -> None:
  """Writes items as jsonl (atomically: a temporary name, then a rename)."""
  files.write_text(pathlib.Path(path), "".join(json.dumps(i.to_json(), ensure_ascii=False) + "\n" for i in items))


def read_items(path: str | os.PathLike) -> list[SpatialQA]:
  """Items of a jsonl file; raises QAFormatError naming the line of a malformed one, or a repeated id."""
  path = pathlib.Path(path)
  items: list[SpatialQA] = []
  seen: set[str] = set()
  for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    if not line.strip():
      continue
    where = f"{path}:{number}"
    try:
      row = json.loads(line)
    except json.JSONDecodeError as e:
      raise QAFormatError(f"{where}: not JSON ({e})") from None
    item = SpatialQA.from_json(row, where)
    if item.id in seen:
      raise QAFormatError(f"{where}: id {item.id!r} appears twice")
    seen.add(item.id)
    items.append(item)
  return items


def prompt_with_images(num_images: int, task: str, question: str) -> str:
  """`Image-1: <image>\\nImage-2: <image>\\n{task}\\n{question}` (the spec's prompt layout)."""
  lines = [f"Image-{i}: {IMAGE_MARK}" for i in range(1, num_images + 1)]
  return "\n".join(lines + [task, question])


def subtask_counts(items: Sequence[SpatialQA]) -> dict[str, int]:
  counts: dict[str, int] = {}
  for item in items:
    counts[item.subtask] = counts.get(item.subtask, 0) + 1
  return dict(sorted(counts.items()))
