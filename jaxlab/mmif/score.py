"""The MM-IFEval scoring command: benchmark files and predictions in, report.json, report.md and scored.jsonl out.

  python -m jaxlab.mmif.score --items C-Level.jsonl --items P-Level.jsonl \
      --predictions preds.jsonl --out report_dir \
      [--image-root DIR] [--allow-missing] \
      [--judge-url http://host:8000/v1 --judge-model NAME [--perception-judge-model NAME] \
       --judge-timeout 60 --judge-retries 3]

Without --judge-url only the rule-based constraints are scored: the judged ones are reported as
"no judge" gaps, and the report's rule-only C-Level is the number such a run gives. With it, an
OpenAI-compatible chat endpoint judges the direct_gpt and cmp_gpt constraints and (with
--perception-judge-model, else the same model) the P-Level answers; $OPENAI_API_KEY, when set, is
sent as the bearer token.

Bad input (a bad row, missing or extra predictions, a missing image the judge needs) exits with
status 2 and one paragraph saying what is wrong; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from jaxlab import files
from jaxlab.mmif.mmifeval import read_scoring_inputs
from jaxlab.mmif.scoring import ScoreReport, score_items

REPORT_JSON, REPORT_MD, SCORED_JSONL = "report.json", "report.md", "scored.jsonl"
BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m jaxlab.mmif.score",
                                   description="Score a model's predictions on MM-IFEval (C-Level, P-Level, Avg).")
  parser.add_argument("--items", action="append", required=True,
                      help="an MM-IFEval jsonl file (C-Level, P-Level or both); repeat for several")
  parser.add_argument("--predictions", action="append", required=True,
                      help="a predictions jsonl (rows with 'prediction'); repeat for several")
  parser.add_argument("--out", required=True, help="folder for report.json, report.md and scored.jsonl")
  parser.add_argument("--image-root", default=None,
                      help="folder the rows' image paths are relative to (default: each items file's folder)")
  parser.add_argument("--allow-missing", action="store_true",
                      help="score what has predictions and report the rest as gaps (never as 0)")
  parser.add_argument("--judge-url", default=None, help="base URL of an OpenAI-compatible chat endpoint")
  parser.add_argument("--judge-model", default=None, help="the judge model's name (needed with --judge-url)")
  parser.add_argument("--perception-judge-model", default=None,
                      help="the P-Level judge model (default: --judge-model)")
  parser.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge request")
  parser.add_argument("--judge-retries", type=int, default=3,
                      help="the most attempts per judge request (1: never retry)")
  return parser


def _judges(args: argparse.Namespace, parser: argparse.ArgumentParser):
  """(judge, perception judge) backends, or (None, None) without --judge-url."""
  if args.judge_url is None:
    if args.judge_model or args.perception_judge_model:
      parser.error("--judge-model and --perception-judge-model need --judge-url")
    return None, None
  if not args.judge_model:
    parser.error("--judge-url needs --judge-model")
  from jaxlab.mmif.judge_backends import OpenAIChatJudge  # only a judged run needs the HTTP client

  def build(model: str):
    try:
      return OpenAIChatJudge(args.judge_url, model, timeout_s=args.judge_timeout, max_retries=args.judge_retries)
    except ValueError as e:  # a bad URL, timeout or retry count
      parser.error(str(e))

  judge = build(args.judge_model)
  perception_model = args.perception_judge_model or args.judge_model
  return judge, judge if perception_model == args.judge_model else build(perception_model)


def write_reports(report: ScoreReport, out_dir: str | os.PathLike) -> None:
  """report.json, report.md and scored.jsonl (one row per item), each written atomically."""
  os.makedirs(out_dir, exist_ok=True)
  files.write_json(os.path.join(out_dir, REPORT_JSON), report.to_json())
  files.write_text(os.path.join(out_dir, REPORT_MD), report.to_markdown())
  rows = "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in report.items)
  files.write_text(os.path.join(out_dir, SCORED_JSONL), rows)


def _bad_input(error: Exception) -> int:
  """Says what is wrong in one paragraph on stderr; the exit status for bad input."""
  print(f"mmif score: bad input, nothing written. {' '.join(str(error).split())}", file=sys.stderr)
  return BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  judge, perception_judge = _judges(args, parser)
  try:
    items = read_scoring_inputs(args.items, args.predictions, image_root=args.image_root,
                                allow_missing=args.allow_missing)
  except (ValueError, FileNotFoundError) as e:  # a bad row, missing or extra predictions, no such file
    return _bad_input(e)
  try:
    report = score_items(items, judge=judge, perception_judge=perception_judge)
  except FileNotFoundError as e:  # an image the direct judge needs; checked before any judge call
    return _bad_input(e)
  write_reports(report, args.out)
  print("\n".join(report.summary_lines()))
  print(f"wrote {REPORT_JSON}, {REPORT_MD} and {SCORED_JSONL} to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
