"""MM-IFEngine's data pipeline: constraints integrated into tasks, responses filtered, the MM-IFInstruct layout.

  tasks (`jaxlab.mmif.tasks`) -> `integrate_constraints` (sub-types drawn, parameters written by
  templates or an LLM hook, contradictory rule constraints rejected by `compatibility.conflicts`)
  -> a responder answers each prompt -> `satisfaction` (rule verifiers, a judge for the rest) keeps
  responses that meet at least 80 % of their constraints -> `write_instruct` (jsonl)

MM-IFInstruct jsonl, one item per line (LLaMA-Factory's "messages" layout, in which the released
data is trained, plus the constraint fields MM-IFEval items carry):

  {"id": str, "image": "images/000001.png", "images": ["images/000001.png"], "task_type": str,
   "instruction": str, "constraints": [constraint objects, `jaxlab.mmif.records`],
   "messages": [{"role": "user", "content": "<image>" + prompt}, {"role": "assistant", "content": response}]}

Image paths are relative to the jsonl's folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from jaxlab import files
from jaxlab.mmif.compatibility import conflicts
from jaxlab.mmif.constraint_writers import RULE_WRITERS, write_constraint
from jaxlab.mmif.records import Constraint, ConstraintError, test_prompt
from jaxlab.mmif.taxonomy import RULE, SUB_TYPES
from jaxlab.mmif.tasks import Task
from jaxlab.mmif.verifiers import check_rule_constraint, validate_verify_funcs

log = logging.getLogger(__name__)

IMAGE_MARK = "<image>"
KEEP_THRESHOLD = 0.8  # MM-IFInstruct keeps responses meeting at least 80 % of their constraints.

ConstraintHook = Callable[[Task, str, np.random.Generator], "Constraint | None"]


@dataclasses.dataclass(frozen=True)
class InstructItem:
  """One image-instruction item: the task, its constraints and (once answered) the response."""

  id: str
  image: str
  task_type: str
  instruction: str
  constraints: tuple[Constraint, ...]
  response: str | None = None

  @property
  def prompt(self) -> str:
    """The instruction and every constraint's text (`records.test_prompt`)."""
    return test_prompt(self.instruction, self.constraints)

  def to_json(self) -> dict:
    record = {"id": self.id, "image": self.image, "images": [self.image], "task_type": self.task_type,
              "instruction": self.instruction, "constraints": [c.to_json() for c in self.constraints]}
    if self.response is not None:
      record["messages"] = [{"role": "user", "content": IMAGE_MARK + self.prompt},
                            {"role": "assistant", "content": self.response}]
    return record

  @classmethod
  def from_json(cls, record: dict, where: str) -> InstructItem:
    if not isinstance(record, dict):
      raise ValueError(f"{where}: an item must be a JSON object")
    missing = [k for k in ("id", "instruction", "constraints") if k not in record]
    image = record.get("image") or (record.get("images") or [None])[0]
    if missing or not isinstance(image, str):
      raise ValueError(f"{where}: missing {missing + ([] if isinstance(image, str) else ['image'])}")
    constraints = tuple(Constraint.from_json(c, f"{where} constraint {i}") for i, c in enumerate(record["constraints"]))
    for c in constraints:
      if c.method == RULE:
        validate_verify_funcs(c.verify_funcs, f"{where} constraint {c.key!r}")
    response = None
    for message in record.get("messages", []):
      if message.get("role") == "assistant":
        response = message.get("content")
    return cls(str(record["id"]), image, str(record.get("task_type", "")), record["instruction"], constraints, response)


@dataclasses.dataclass
class IntegrationReport:
  """Constraints drawn, and rejected as contradictory (with the first few reasons)."""

  drawn: int = 0
  rejected: int = 0
  examples: list[str] = dataclasses.field(default_factory=list)


def integrate_constraints(task: Task, rng: np.random.Generator, *, num_constraints: int,
                          writers: Sequence[str] = tuple(s.key for s in SUB_TYPES), hook: ConstraintHook | None = None,
                          report: IntegrationReport | None = None, max_tries: int = 32) -> tuple[Constraint, ...]:
  """Up to `num_constraints` constraints for `task`, of distinct writers drawn from `writers` (sub-type
  keys or `constraint_writers.RULE_WRITERS` names); a candidate that contradicts the ones already
  chosen is rejected and another drawn. `hook` (an LLM) is asked first for each sub-type."""
  report = report if report is not None else IntegrationReport()
  chosen: list[Constraint] = []
  available = list(dict.fromkeys(writers))
  tries = 0
  while len(chosen) < num_constraints and available and tries < max_tries:
    tries += 1
    name = available.pop(int(rng.integers(len(available))))
    candidate = hook(task, name, rng) if hook else None
    if candidate is None:
      candidate = write_constraint(name, rng, task.image.keywords)
    report.drawn += 1
    problems = conflicts(chosen + [candidate])
    if problems:
      report.rejected += 1
      if len(report.examples) < 5:
        report.examples.append(f"{task.instruction!r} + {candidate.value!r}: {problems[0]}")
      continue
    chosen.append(_unique_key(candidate, chosen))
  return tuple(chosen)


def _unique_key(candidate: Constraint, chosen: Sequence[Constraint]) -> Constraint:
  """MM-IFEval names scores and re-runs by constraint key, so keys are unique within an item."""
  keys = {c.key for c in chosen}
  key, n = candidate.key, 2
  while key in keys:
    key, n = f"{candidate.key}_{n}", n + 1
  return dataclasses.replace(candidate, key=key)


def satisfaction(response: str, constraints: Sequence[Constraint],
                 judge: Callable[[str, Constraint], bool | None] | None = None) -> float | None:
  """Fraction of `constraints` the response meets: rule ones by the verifiers, the others by `judge`
  (`(response, constraint) -> bool`, None when it cannot tell). Constraints nothing can check are
  left out of the fraction; None when none can be checked."""
  passed = checked = 0
  for c in constraints:
    if c.method == RULE:
      ok = check_rule_constraint(response, c)
    else:
      ok = judge(response, c) if judge else None
    if ok is None:
      continue
    checked += 1
    passed += bool(ok)
  return passed / checked if checked else None


def keep_response(fraction: float | None, threshold: float = KEEP_THRESHOLD) -> bool:
  return fraction is not None and fraction >= threshold - 1e-9


def write_instruct(path: str | os.PathLike, items: Iterable[InstructItem]) -> int:
  """Writes the items as MM-IFInstruct jsonl (atomically); returns how many."""
  lines = [json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items]
  files.write_text(pathlib.Path(path), "".join(lines))
  return len(lines)


def read_instruct(path: str | os.PathLike) -> list[InstructItem]:
  """Items of an MM-IFInstruct jsonl; a bad line raises ValueError naming the file and line."""
  path = pathlib.Path(path)
  items = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      where = f"{path} line {n}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not JSON ({e})") from None
      try:
        items.append(InstructItem.from_json(record, where))
      except ConstraintError as e:
        raise ValueError(str(e)) from None
  return items


def writer_names() -> tuple[str, ...]:
  """Every name `integrate_constraints` accepts: the 32 sub-types and the extra rule writers."""
  return tuple(dict.fromkeys([s.key for s in SUB_TYPES] + list(RULE_WRITERS)))
