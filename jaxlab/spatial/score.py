"""The MultiSPA scoring command: items and predictions in, a JSON report (and optional markdown) out.

  python -m jaxlab.spatial.score --items items.jsonl --predictions preds.jsonl --out report.json \
      [--markdown report.md] [--allow-missing]

Prints the per-subtask table. Bad input (a malformed row, missing or extra predictions, a missing
file) exits with status 2 and a one-line error; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxlab import files
from jaxlab.spatial.qa import read_items
from jaxlab.spatial.scoring import read_predictions, score

BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m jaxlab.spatial.score",
                                   description="Score predictions on MultiSPA items (accuracy per subtask).")
  parser.add_argument("--items", required=True, help="the items jsonl (jaxlab.spatial.qa layout)")
  parser.add_argument("--predictions", required=True, help='jsonl rows {"id": ..., "prediction": "..."}')
  parser.add_argument("--out", required=True, help="the JSON report to write")
  parser.add_argument("--markdown", default=None, help="also write the table as markdown here")
  parser.add_argument("--allow-missing", action="store_true",
                      help="score items without a prediction as wrong (and list them) instead of failing")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    items = read_items(args.items)
    predictions = read_predictions(args.predictions)
    report = score(items, predictions, allow_missing=args.allow_missing)
  except (OSError, ValueError) as e:  # QAFormatError, PredictionsError and bad gt values are ValueErrors
    message = " ".join(str(e).split())
    print(f"error: {message}", file=sys.stderr)
    return BAD_INPUT
  markdown = report.to_markdown()
  files.write_json(args.out, report.to_json(), make_parents=True)
  if args.markdown:
    files.write_text(args.markdown, markdown, make_parents=True)
  print(markdown, end="")
  return 0


if __name__ == "__main__":
  sys.exit(main())
