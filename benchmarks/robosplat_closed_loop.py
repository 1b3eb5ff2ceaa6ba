"""Judges trained RoboSplat policies in closed loop in the simulator, per axis, side by side.

  python benchmarks/robosplat_closed_loop.py --runs runs/pol_a runs/pol_b \
      --axes nominal object_pose embodiment --episodes-per-axis 10 --out runs/closed_loop.json

Each run is a finished `configs/robosplat_policy.py` workdir (loaded with
`launch.tasks.robosplat_policy.load_trained_policy`). Every run meets the same setups
(`sample_variations(axis, n, seed)`), at the image size it trained at. Prints a markdown
table of successes per axis and writes the per-episode outcomes as JSON (temporary name,
then renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxlab import files
from jaxlab.robosplat.sim.cameras import default_cameras
from jaxlab.robosplat.sim.closed_loop import AXES, evaluate, sample_variations
from launch.tasks.robosplat_policy import load_trained_policy


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", nargs="+", required=True)
  parser.add_argument("--axes", nargs="+", default=list(AXES), choices=AXES)
  parser.add_argument("--episodes-per-axis", type=int, default=10)
  parser.add_argument("--max-steps", type=int, default=100)
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  variations = [v for axis in args.axes for v in sample_variations(axis, args.episodes_per_axis, seed=args.seed)]
  report = {"axes": args.axes, "episodes_per_axis": args.episodes_per_axis, "max_steps": args.max_steps,
            "seed": args.seed, "runs": {}}
  print("| run | " + " | ".join(args.axes) + " | mean |")
  print("|---|" + "---|" * (len(args.axes) + 1))
  for run in map(pathlib.Path, args.runs):
    runner = load_trained_policy(run)
    size = json.loads((run / "policy_config.json").read_text())["image_size"]
    start = time.perf_counter()
    result = evaluate(runner, variations, max_steps=args.max_steps, cameras=default_cameras(size))
    result["seconds"] = time.perf_counter() - start
    report["runs"][str(run)] = result
    cells = [f"{round(result['by_axis'][a] * args.episodes_per_axis)}/{args.episodes_per_axis}" for a in args.axes]
    print(f"| {run.name} | " + " | ".join(cells) + f" | {100 * result['success_rate']:.0f} % |", flush=True)
  if args.out:
    files.write_text(args.out, json.dumps(report, indent=2) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
