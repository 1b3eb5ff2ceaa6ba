"""MAT benchmark scores (Visual-ARFT, `specs/specs-models.md` §4): F1 and EM over a predictions jsonl.

Each record holds the model's final answer and the gold aliases:

    {"id": 7, "prediction": "the Eiffel Tower", "answers": ["Eiffel Tower", "La tour Eiffel"],
     "split": "simple"}

`answers` may be one string. Scores follow MAT's evaluation: SQuAD normalization
(`rewards.normalize_answer`), the maximum over the gold aliases, EM = 1 forcing F1 = 1, and no
answer (missing, null or empty after normalization) scoring 0 on both. Text with CJK characters
is compared character by character, as MAT's coding evaluation does for Chinese. F1 counts
the overlap on unique tokens over the full token counts (`rewards.answer_f1`).

  python -m jaxlab.agent.mat_score predictions.jsonl [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jaxlab import files
from jaxlab.agent.rewards import answer_f1, normalize_answer

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _spaced(text: str) -> str:
  """CJK text as one token per character (SQuAD's tokens are whitespace-separated)."""
  return " ".join(ch for ch in text if not ch.isspace()) if _CJK.search(text) else text


def score_answer(prediction: str | None, answers: str | Sequence[str]) -> tuple[float, float]:
  """(f1, em) of one prediction against its gold aliases."""
  aliases = [answers] if isinstance(answers, str) else list(answers)
  if prediction is None or not normalize_answer(prediction) or not aliases:
    return 0.0, 0.0
  best_f1, best_em = 0.0, 0.0
  for gold in aliases:
    pred, ref = _spaced(normalize_answer(prediction)), _spaced(normalize_answer(str(gold)))
    em = float(pred == ref and bool(ref))
    f1 = 1.0 if em else answer_f1(pred, ref)
    best_f1, best_em = max(best_f1, f1), max(best_em, em)
  return best_f1, best_em


def score_records(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
  """{"all": {...}, "<split>": {...}}: mean f1 and em (percent), count and answerless count."""
  groups: dict[str, list[tuple[float, float, bool]]] = {}
  for i, record in enumerate(records):
    if "answers" not in record:
      raise ValueError(f"record {i} (id {record.get('id')!r}) has no 'answers'")
    prediction = record.get("prediction")
    f1, em = score_answer(prediction, record["answers"])
    answered = prediction is not None and bool(normalize_answer(prediction))
    for key in ("all", *([str(record["split"])] if record.get("split") is not None else [])):
      groups.setdefault(key, []).append((f1, em, answered))
  if not groups:
    raise ValueError("no records to score")
  return {key: {"f1": 100 * sum(r[0] for r in rows) / len(rows), "em": 100 * sum(r[1] for r in rows) / len(rows),
                "count": len(rows), "no_answer": sum(not r[2] for r in rows)} for key, rows in groups.items()}


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description="MAT F1 / EM of a predictions jsonl")
  parser.add_argument("predictions")
  parser.add_argument("--out", default="", help="also write the report as JSON here")
  args = parser.parse_args(argv)
  report = score_records(files.read_jsonl_objects(args.predictions))
  for key, row in report.items():
    print(f"{key}: F1 {row['f1']:.2f} EM {row['em']:.2f} over {row['count']} ({row['no_answer']} without an answer)")
  if args.out:
    files.write_text(args.out, json.dumps(report, indent=2) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
