"""Constraints and items in MM-IFEval's JSON layout (the layout MM-IFInstruct items carry too).

A constraint:

  {"key": "word_limit",                      the sub-type (unique within its item: MM-IFEval keys
                                             scores and the re-run without it by this name)
   "value": "Answer in 20 to 40 words.",     the text appended to the instruction
   "judge": {"method": "rule_based",         rule_based | direct_gpt | cmp_gpt
             "verify_funcs": [{"func": "check_whether_response_word_count_in_range",
                               "params": [20, 40]}]}}        rule_based only; several are ANDed

An item: {"id", "instruction", "constraints": [...], "image": path, "tag": "C-Level"} or, perception
level, {"id", "question", "answer": [gold elements], "image", "tag": "P-Level"}. The model's prompt is
the instruction followed by " " + each constraint's text (`test_prompt`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from jaxlab.mmif.taxonomy import JUDGE_METHODS, RULE


class ConstraintError(ValueError):
  """A constraint that cannot be evaluated as written (unknown method, function or parameters)."""


@dataclasses.dataclass(frozen=True)
class Constraint:
  key: str
  value: str
  method: str
  verify_funcs: tuple[dict[str, Any], ...] = ()

  def __post_init__(self):
    if self.method not in JUDGE_METHODS:
      raise ConstraintError(f"constraint {self.key!r}: unknown judge method {self.method!r}; "
                            f"known: {', '.join(JUDGE_METHODS)}")
    if self.method == RULE and not self.verify_funcs:
      raise ConstraintError(f"constraint {self.key!r}: a rule_based constraint needs at least one verify_func")

  @classmethod
  def from_json(cls, record: Any, where: str = "constraint") -> Constraint:
    if not isinstance(record, Mapping):
      raise ConstraintError(f"{where}: a constraint must be a JSON object, got {type(record).__name__}")
    for name in ("key", "value"):
      if not isinstance(record.get(name), str):
        raise ConstraintError(f"{where}: missing or non-string {name!r} (keys: {sorted(record)})")
    judge = record.get("judge")
    if not isinstance(judge, Mapping) or "method" not in judge:
      raise ConstraintError(f"{where} ({record['key']}): 'judge' must be an object with a 'method'")
    funcs = judge.get("verify_funcs") or ()
    if not isinstance(funcs, Sequence) or not all(isinstance(f, Mapping) and "func" in f for f in funcs):
      raise ConstraintError(f"{where} ({record['key']}): 'verify_funcs' must be a list of {{func, params}} objects")
    try:
      return cls(record["key"], record["value"], judge["method"],
                 tuple({"func": f["func"], "params": f.get("params", [])} for f in funcs))
    except ConstraintError as e:
      raise ConstraintError(f"{where}: {e}") from None

  def to_json(self) -> dict[str, Any]:
    judge: dict[str, Any] = {"method": self.method}
    if self.verify_funcs:
      judge["verify_funcs"] = [dict(f) for f in self.verify_funcs]
    return {"key": self.key, "value": self.value, "judge": judge}


def test_prompt(instruction: str, constraints: Sequence[Constraint]) -> str:
  """MM-IFEval's test prompt: the instruction, then " " + each constraint's text."""
  return instruction + "".join(" " + c.value for c in constraints)


test_prompt.__test__ = False  # Not a pytest test, despite the name.
