"""Viewer frame time: `jaxlab.view.GaussianFrames.draw` end to end, at the moving and still sizes.

  python benchmarks/view_frames.py --out /tmp/view.json                  # CPU: a fitted-scene-sized cloud
  python benchmarks/view_frames.py --device-check --out $OUT/view.json   # GPU: check, then time

A frame here is what the browser waits for: render, transfer to the host and conversion
to 8-bit, for one camera at the origin looking down +z into the bench/anchors.md cloud
(`benchmarks/splat_render.py`'s scene), 4:3 windows. Timed: the first call (compiling
included) and the median of the next calls. `--device-check` first requires the frame to
equal `jaxlab.splat.render` of the same camera, converted to 8-bit, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import environment, format_table, write_json
from benchmarks.splat_render import anchor_scene
from jaxlab.splat import render
from jaxlab.view.render_view import GaussianFrames, ViewRequest, camera_for, to_display, view_size

_CPU_CASES = ((30_000, (80, 320)),)  # splat_fit's default capacity; the default moving and still sides
_GPU_CASES = ((100_000, (256, 1024)), (1_000_000, (256, 1024)))
_FOV_Y = math.radians(50.0)


def _request(side: int) -> ViewRequest:
  width, height = view_size(4 / 3, side)
  return ViewRequest(np.eye(4), _FOV_Y, width, height)


def check(frames: GaussianFrames, side: int = 160) -> str | None:
  """None when the viewer's frame equals jaxlab's render of the same camera, else the problem."""
  request = _request(side)
  out = render(frames.gaussians, camera_for(request), background=jnp.zeros(3), capacity=1 << 18)
  want = to_display(np.asarray(out.rgb), None, None, "RGB")
  got = frames.draw(request).image_hw3
  differing = int(np.sum(np.any(got != want, axis=-1)))
  return None if differing == 0 else f"{differing} of {got.shape[0] * got.shape[1]} pixels differ from jaxlab.splat.render"


def time_side(frames: GaussianFrames, side: int, calls: int) -> dict:
  request = _request(side)
  start = time.perf_counter()
  first = frames.draw(request)
  first_s = time.perf_counter() - start
  seconds = [frames.draw(request).seconds for _ in range(calls)]
  return {"side": side, "width": request.width, "height": request.height, "first_call_s": first_s,
          "frame_ms": 1000 * float(np.median(seconds)), "intersections": first.num_intersections}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gaussians", type=int, nargs="+", default=None, help="scene sizes (default by backend)")
  parser.add_argument("--sides", type=int, nargs="+", default=None, help="longer image sides (default by backend)")
  parser.add_argument("--calls", type=int, default=10)
  parser.add_argument("--device-check", action="store_true", help="exit 1 on a mismatch, before timing")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  cases = _CPU_CASES if jax.default_backend() == "cpu" else _GPU_CASES
  if args.gaussians:
    cases = tuple((n, tuple(args.sides or cases[0][1])) for n in args.gaussians)
  rows, failures = [], []
  for num, sides in cases:
    frames = GaussianFrames(anchor_scene(num))
    problem = check(frames)
    if problem:
      failures.append(f"{num} Gaussians: {problem}")
      print("CHECK FAILED:", failures[-1])
      if args.device_check:
        break
    for side in sides:
      rows.append({"gaussians": num, "implementation": frames.implementation(), **time_side(frames, side, args.calls)})
  print(format_table(rows, [("gaussians", "Gaussians"), ("width", "width"), ("height", "height"),
                            ("implementation", "rasterizer"), ("first_call_s", "first call s"),
                            ("frame_ms", "frame ms"), ("intersections", "intersections")]))
  if args.out:
    write_json(args.out, {"environment": environment(), "rows": rows, "failures": failures})
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
