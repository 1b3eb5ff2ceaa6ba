"""MM-IFEval scores: per constraint, per item, per level, with every unscored item accounted for.

A C-Level item scores the mean of its constraints' 0/1 results:

  rule_based   the constraint's verify functions, ANDed (`jaxlab.mmif.verifiers`)
  direct_gpt   the direct judge, one call per item holding all its direct_gpt constraints and the image
  cmp_gpt      the compare judge, given the response and the model's answer without the constraint

A P-Level item scores 1 when the perception judge finds the answer right, else 0. C-Level and P-Level
are the means over their scored items, and Avg weighs them by those counts:
(n_C * C + n_P * P) / (n_C + n_P), which is (3C + P) / 4 with the paper's 300 and 100 items.

Nothing unscored counts as 0. A constraint is a gap when there is no prediction, no judge, no
auxiliary answer, or the judge's reply failed (unparsable or unavailable); an item with any gap is
left out of its level and listed by reason. Without a judge, `c_level_rule_only` still gives a
number: the mean over C items of their rule-based constraints alone (not the paper's C-Level).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from jaxlab.mmif.judges import Verdict, run_compare_judge, run_direct_judge, run_perception_judge
from jaxlab.mmif.mmifeval import C_LEVEL, P_LEVEL, ComposeItem, Item, PerceptionItem
from jaxlab.mmif.taxonomy import COMPARE, DIRECT, RULE
from jaxlab.mmif.verifiers import check_rule_constraint

Backend = Callable[[str, str | None], str]  # (prompt, image path or None) -> reply

NO_PREDICTION = "no prediction"
NO_JUDGE = "no judge"
NO_AUX = "no aux prediction"
JUDGE_UNPARSABLE = "judge unparsable"
JUDGE_UNAVAILABLE = "judge unavailable"
_LISTED_IDS = 20  # ids per gap reason shown in the markdown report


@dataclasses.dataclass(frozen=True)
class ConstraintScore:
  """One constraint's result: `score` 1 or 0, or None with the `gap` that left it unscored."""

  key: str
  method: str
  score: int | None
  gap: str | None = None
  detail: str = ""
  raw: str = ""  # the judge's reply, for judged constraints

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ItemScore:
  """One item's result. `score` is in [0, 1], None when any part is a gap (`gaps` says which).

  `rule_score` (C-Level) is the mean over the item's rule-based constraints alone, None without any.
  `raw` and `detail` hold the perception judge's reply (P-Level).
  """

  id: Any
  level: str
  where: str
  score: float | None
  gaps: tuple[str, ...] = ()
  constraints: tuple[ConstraintScore, ...] = ()
  rule_score: float | None = None
  raw: str = ""
  detail: str = ""

  def to_json(self) -> dict[str, Any]:
    row = dataclasses.asdict(self)
    row["gaps"] = list(self.gaps)
    row["constraints"] = [c.to_json() for c in self.constraints]
    return row


@dataclasses.dataclass(frozen=True)
class SubTypeStats:
  """Pass counts of one constraint key over all items."""

  scored: int = 0
  passed: int = 0
  unscored: int = 0

  @property
  def pass_rate(self) -> float | None:
    """Percent passed among the scored ones; None when none was scored."""
    return 100.0 * self.passed / self.scored if self.scored else None


@dataclasses.dataclass(frozen=True)
class ScoreReport:
  """Levels in percent (None where a level has no scored item), counts, gaps and per-item results."""

  items: tuple[ItemScore, ...]
  c_level: float | None
  p_level: float | None
  avg: float | None
  c_level_rule_only: float | None
  counts: Mapping[str, int]
  unscored_items: Mapping[str, tuple[str, ...]]  # reason -> "C-Level id ..." of each item it left out
  constraint_gaps: Mapping[str, int]  # reason -> number of constraints it left unscored
  sub_types: Mapping[str, SubTypeStats]

  def to_json(self) -> dict[str, Any]:
    return {
        "summary": {"C-Level": _rounded(self.c_level), "P-Level": _rounded(self.p_level), "Avg": _rounded(self.avg),
                    "C-Level (rule constraints only)": _rounded(self.c_level_rule_only)},
        "counts": dict(self.counts),
        "unscored_items": {reason: list(ids) for reason, ids in self.unscored_items.items()},
        "constraint_gaps": dict(self.constraint_gaps),
        "sub_types": {key: {"scored": s.scored, "passed": s.passed, "unscored": s.unscored,
                            "pass_rate": _rounded(s.pass_rate)} for key, s in self.sub_types.items()},
        "items": [item.to_json() for item in self.items],
    }

  def summary_lines(self) -> list[str]:
    """The headline numbers, one per line, as the command prints them."""
    c = self.counts
    return [
        f"C-Level: {_percent(self.c_level)} over {c['c_scored']} of {c['c_items']} items",
        f"P-Level: {_percent(self.p_level)} over {c['p_scored']} of {c['p_items']} items",
        f"Avg (count-weighted): {_percent(self.avg)}",
        (f"C-Level, rule constraints only (not the paper's C-Level): {_percent(self.c_level_rule_only)} "
         f"over {c['c_rule_only_items']} items"),
        f"unscored items: {c['c_unscored'] + c['p_unscored']}" + "".join(
            f"; {reason}: {len(ids)}" for reason, ids in self.unscored_items.items()),
    ]

  def to_markdown(self) -> str:
    c = self.counts
    lines = [
        "# MM-IFEval scores", "",
        "| level | score (%) | scored items | unscored items |",
        "| --- | --- | --- | --- |",
        f"| C-Level | {_percent(self.c_level)} | {c['c_scored']} | {c['c_unscored']} |",
        f"| P-Level | {_percent(self.p_level)} | {c['p_scored']} | {c['p_unscored']} |",
        (f"| Avg (count-weighted) | {_percent(self.avg)} | {c['c_scored'] + c['p_scored']} | "
         f"{c['c_unscored'] + c['p_unscored']} |"),
        f"| C-Level, rule constraints only | {_percent(self.c_level_rule_only)} | {c['c_rule_only_items']} | |",
        "",
        ("The rule-only line scores each C item on its rule-based constraints alone; it is not comparable "
         "to the paper's C-Level. Unscored items count in no level (never as 0)."),
    ]
    if self.unscored_items:
      lines += ["", "## Unscored items", ""]
      for reason, ids in self.unscored_items.items():
        shown = ", ".join(ids[:_LISTED_IDS]) + (f" and {len(ids) - _LISTED_IDS} more" if len(ids) > _LISTED_IDS else "")
        lines.append(f"- {reason}: {len(ids)} ({shown})")
    if self.constraint_gaps:
      lines += ["", "## Unscored constraints", ""]
      lines += [f"- {reason}: {count}" for reason, count in self.constraint_gaps.items()]
    if self.sub_types:
      lines += ["", "## Constraint sub-types", "", "| key | pass rate (%) | passed | scored | unscored |",
                "| --- | --- | --- | --- | --- |"]
      lines += [f"| {key} | {_percent(s.pass_rate)} | {s.passed} | {s.scored} | {s.unscored} |"
                for key, s in sorted(self.sub_types.items())]
    return "\n".join(lines) + "\n"


def _rounded(value: float | None) -> float | None:
  return None if value is None else round(value, 1)


def _percent(value: float | None) -> str:
  return "n/a" if value is None else f"{value:.1f}"


def average(c_level: float | None, n_c: int, p_level: float | None, n_p: int) -> float | None:
  """MM-IFEval's Avg: the levels weighted by their scored item counts; None when either level is None."""
  if c_level is None or p_level is None or n_c + n_p == 0:
    return None
  return (n_c * c_level + n_p * p_level) / (n_c + n_p)


# -- scoring one item -----------------------------------------------------------------------------


def _from_verdict(constraint_key: str, method: str, verdict: Verdict, index: int = 0,
                  expected: int = 1) -> ConstraintScore:
  """The `index`-th score of a judge's verdict; a failed or malformed verdict is a gap, never a pass."""
  if verdict.failure is not None:
    gap = JUDGE_UNAVAILABLE if verdict.failure == "unavailable" else JUDGE_UNPARSABLE
    return ConstraintScore(constraint_key, method, None, gap, verdict.detail, verdict.raw)
  scores = verdict.scores
  if scores is None or len(scores) != expected or scores[index] not in (0, 1):
    detail = f"expected {expected} score(s) of 0 or 1, got {scores!r}"
    return ConstraintScore(constraint_key, method, None, JUDGE_UNPARSABLE, detail, verdict.raw)
  return ConstraintScore(constraint_key, method, int(scores[index]), None, verdict.detail, verdict.raw)


def _direct_scores(item: ComposeItem, judge: Backend | None) -> dict[int, ConstraintScore]:
  """Scores of the item's direct_gpt constraints, by position: one judge call holds them all."""
  positions = [i for i, c in enumerate(item.constraints) if c.method == DIRECT]
  if not positions:
    return {}
  if judge is None:
    return {i: ConstraintScore(item.constraints[i].key, DIRECT, None, NO_JUDGE) for i in positions}
  texts = [item.constraints[i].value for i in positions]
  verdict = run_direct_judge(judge, texts, item.prediction, item.image)
  return {i: _from_verdict(item.constraints[i].key, DIRECT, verdict, n, len(positions))
          for n, i in enumerate(positions)}


def _compare_score(item: ComposeItem, index: int, judge: Backend | None) -> ConstraintScore:
  constraint = item.constraints[index]
  if judge is None:
    return ConstraintScore(constraint.key, COMPARE, None, NO_JUDGE)
  without = item.aux_predictions.get(constraint.key)
  if without is None:
    return ConstraintScore(constraint.key, COMPARE, None, NO_AUX, "no answer to the prompt without this constraint")
  return _from_verdict(constraint.key, COMPARE, run_compare_judge(judge, constraint.value, item.prediction, without))


def _mean(values: Sequence[float]) -> float | None:
  return sum(values) / len(values) if values else None


def _score_compose(item: ComposeItem, judge: Backend | None) -> ItemScore:
  if item.prediction is None:
    constraints = tuple(ConstraintScore(c.key, c.method, None, NO_PREDICTION) for c in item.constraints)
    return ItemScore(item.id, C_LEVEL, item.where, None, (NO_PREDICTION,), constraints)
  direct = _direct_scores(item, judge)
  results = []
  for i, constraint in enumerate(item.constraints):
    if constraint.method == RULE:
      results.append(ConstraintScore(constraint.key, RULE, int(check_rule_constraint(item.prediction, constraint))))
    elif constraint.method == DIRECT:
      results.append(direct[i])
    else:
      results.append(_compare_score(item, i, judge))
  gaps = tuple(dict.fromkeys(r.gap for r in results if r.gap is not None))
  score = None if gaps else _mean([r.score for r in results])
  rule_score = _mean([r.score for r in results if r.method == RULE])
  return ItemScore(item.id, C_LEVEL, item.where, score, gaps, tuple(results), rule_score)


def _score_perception(item: PerceptionItem, judge: Backend | None) -> ItemScore:
  if item.prediction is None:
    return ItemScore(item.id, P_LEVEL, item.where, None, (NO_PREDICTION,))
  if judge is None:
    return ItemScore(item.id, P_LEVEL, item.where, None, (NO_JUDGE,))
  verdict = run_perception_judge(judge, item.question, item.prediction, list(item.answer))
  result = _from_verdict("perception", "perception", verdict)
  score = None if result.score is None else float(result.score)
  gaps = () if result.gap is None else (result.gap,)
  return ItemScore(item.id, P_LEVEL, item.where, score, gaps, raw=verdict.raw, detail=result.detail)


# -- the report -----------------------------------------------------------------------------------


def _check_images(items: Iterable[Item]) -> None:
  """Refuses a run whose direct judge would need an image file that is not there, before any call."""
  missing = [f"{item.where}: {item.image}" for item in items
             if isinstance(item, ComposeItem) and item.prediction is not None and item.image is not None
             and any(c.method == DIRECT for c in item.constraints) and not os.path.isfile(item.image)]
  if missing:
    shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise FileNotFoundError(f"{len(missing)} image(s) the direct judge needs are missing "
                            f"(check --image-root): {shown}")


def _label(item: ItemScore) -> str:
  return f"{item.level} id {item.id}"


def _level_mean(items: Sequence[ItemScore], level: str) -> tuple[float | None, int]:
  scores = [i.score for i in items if i.level == level and i.score is not None]
  mean = _mean(scores)
  return (None if mean is None else 100.0 * mean), len(scores)


def _sub_type_stats(items: Sequence[ItemScore]) -> dict[str, SubTypeStats]:
  stats: dict[str, SubTypeStats] = {}
  for item in items:
    for c in item.constraints:
      s = stats.get(c.key, SubTypeStats())
      if c.score is None:
        stats[c.key] = dataclasses.replace(s, unscored=s.unscored + 1)
      else:
        stats[c.key] = dataclasses.replace(s, scored=s.scored + 1, passed=s.passed + c.score)
  return stats


def summarize(item_scores: Sequence[ItemScore]) -> ScoreReport:
  """The report over already scored items."""
  items = tuple(item_scores)
  c_level, n_c = _level_mean(items, C_LEVEL)
  p_level, n_p = _level_mean(items, P_LEVEL)
  rule_scores = [i.rule_score for i in items if i.level == C_LEVEL and i.rule_score is not None]
  rule_only = _mean(rule_scores)
  unscored: dict[str, list[str]] = {}
  constraint_gaps: dict[str, int] = {}
  for item in items:
    for reason in item.gaps:
      unscored.setdefault(reason, []).append(_label(item))
    for c in item.constraints:
      if c.gap is not None:
        constraint_gaps[c.gap] = constraint_gaps.get(c.gap, 0) + 1
  n_c_items = sum(i.level == C_LEVEL for i in items)
  n_p_items = sum(i.level == P_LEVEL for i in items)
  counts = {"c_items": n_c_items, "c_scored": n_c, "c_unscored": n_c_items - n_c,
            "p_items": n_p_items, "p_scored": n_p, "p_unscored": n_p_items - n_p,
            "c_rule_only_items": len(rule_scores)}
  return ScoreReport(items, c_level, p_level, average(c_level, n_c, p_level, n_p),
                     None if rule_only is None else 100.0 * rule_only, counts,
                     {reason: tuple(ids) for reason, ids in unscored.items()}, constraint_gaps,
                     _sub_type_stats(items))


def score_items(items_with_predictions: Sequence[Item], *, judge: Backend | None = None,
                perception_judge: Backend | None = None) -> ScoreReport:
  """Scores items whose predictions are attached (`mmifeval.attach_predictions`).

  Args:
    items_with_predictions: ComposeItem and PerceptionItem values.
    judge: a `(prompt, image_path_or_None) -> reply` backend for the direct_gpt and cmp_gpt
      constraints; without one those constraints are "no judge" gaps.
    perception_judge: the backend for P-Level items; `judge` when not given.

  Raises:
    FileNotFoundError: with a judge, an item's direct_gpt constraints need an image file that is missing.
  """
  perception_judge = perception_judge if perception_judge is not None else judge
  if judge is not None:
    _check_images(items_with_predictions)
  scores = [_score_compose(item, judge) if isinstance(item, ComposeItem) else _score_perception(item, perception_judge)
            for item in items_with_predictions]
  return summarize(scores)
