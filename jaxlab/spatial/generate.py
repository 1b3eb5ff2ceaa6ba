"""Command: MultiSPA questions from ScanNet scenes, TAPVid-3D npz files and/or generated scenes, to jsonl + PNGs.

  python -m jaxlab.spatial.generate --out data/multispa --name train \
      --scannet scans/scene0000_00 --scannet scans/scene0001_00 \
      --tapvid3d tapvid3d/adt/seq1.npz --rooms 8 --tracks 4 --items-per-scene 72 --workers 2

writes <out>/<name>.jsonl, <out>/images/ and <out>/<name>_stats.json (counts per subtask, skip reasons,
QA pairs per second). Exit code 2 with a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

from jaxlab import files
from jaxlab.spatial.dataset import write_dataset
from jaxlab.spatial.plans import EngineConfig
from jaxlab.spatial.scene import SceneError
from jaxlab.spatial.source import MultiSpaSource

TRACK_SOURCES = ("room_objects", "room_figures")


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m jaxlab.spatial.generate", description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--name", default="multispa", help="jsonl name (without .jsonl)")
  p.add_argument("--scannet", action="append", default=[], help="a ScanNet scene folder (repeatable)")
  p.add_argument("--tapvid3d", action="append", default=[], help="a TAPVid-3D npz file (repeatable)")
  p.add_argument("--rooms", type=int, default=0, help="generated rooms")
  p.add_argument("--tracks", type=int, default=0, help="generated track scenes per generated source")
  p.add_argument("--items-per-scene", type=int, default=72)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--height", type=int, default=96)
  p.add_argument("--width", type=int, default=128)
  p.add_argument("--frames", type=int, default=16, help="frames per scene (readers: at most this many)")
  p.add_argument("--workers", type=int, default=0, help="grain worker processes")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  specs = [("scannet", d) for d in args.scannet] + [("tapvid3d", f) for f in args.tapvid3d]
  specs += [("room", args.seed + k) for k in range(args.rooms)]
  specs += [("track", args.seed + k, s) for s in TRACK_SOURCES for k in range(args.tracks)]
  if not specs:
    print("error: no scenes: give --scannet, --tapvid3d, --rooms or --tracks", file=sys.stderr)
    return 2
  try:
    source = MultiSpaSource(specs, items_per_scene=args.items_per_scene, seed=args.seed, config=EngineConfig(),
                            height=args.height, width=args.width, num_frames=args.frames, id_prefix=args.name)
    stats = write_dataset(source, args.out, args.name, num_workers=args.workers)
  except (SceneError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  record = dataclasses.asdict(stats) | {"qa_per_second": stats.qa_per_second, "workers": args.workers}
  files.write_text(pathlib.Path(args.out) / f"{args.name}_stats.json", json.dumps(record, indent=2) + "\n")
  print(f"{stats.items} QA pairs in {stats.seconds:.1f} s ({stats.qa_per_second:.1f}/s); per subtask: "
        f"{stats.per_subtask}; elements with no question: {stats.unfilled or 'none'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
