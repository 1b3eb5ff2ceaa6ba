"""Throughput of the MultiSPA engine: QA pairs per second written to disk (questions drawn, visual prompts
drawn, PNGs encoded and written, jsonl written), by number of grain worker processes.

  python benchmarks/multispa_engine.py --rooms 24 --tracks 12 --workers 0 1 2 --out /tmp/multispa_engine.json

Scenes are the embedded generator's (rooms and both track sources, 96x128, 16 frames), 72 items per
scene, the default engine settings; each worker count writes the same items (the jsonl files are
compared) into a fresh temporary folder. Prints a markdown table and writes JSON (temporary name,
then renamed).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxlab import files
from jaxlab.spatial.dataset import write_dataset
from jaxlab.spatial.plans import EngineConfig
from jaxlab.spatial.source import MultiSpaSource


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rooms", type=int, default=24)
  parser.add_argument("--tracks", type=int, default=12, help="track scenes per track source")
  parser.add_argument("--items-per-scene", type=int, default=72)
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  specs = [("room", k) for k in range(args.rooms)]
  specs += [("track", k, s) for s in ("room_objects", "room_figures") for k in range(args.tracks)]
  source = MultiSpaSource(specs, items_per_scene=args.items_per_scene, config=EngineConfig(dot_radius=3))
  rows, reference = [], None
  print("| workers | scenes | QA pairs | seconds | QA pairs / s |")
  print("|---:|---:|---:|---:|---:|")
  for workers in args.workers:
    with tempfile.TemporaryDirectory() as tmp:
      stats = write_dataset(source, tmp, "bench", num_workers=workers)
      text = (pathlib.Path(tmp) / "bench.jsonl").read_text()
    if reference is None:
      reference = text
    elif text != reference:
      raise SystemExit(f"{workers} workers wrote different items than {args.workers[0]}: the engine is not deterministic")
    rows.append({"workers": workers, "scenes": len(specs), "items": stats.items, "seconds": stats.seconds,
                 "qa_per_second": stats.qa_per_second})
    print(f"| {workers} | {len(specs)} | {stats.items} | {stats.seconds:.1f} | {stats.qa_per_second:.1f} |")
  if args.out:
    files.write_json(args.out, {"cpu_count": os.cpu_count(), "rows": rows})
  return 0


if __name__ == "__main__":
  sys.exit(main())
