"""RoboSplat demonstration rendering: frames per second of `DemoRenderer` (both cameras, every frame, one call).

  python benchmarks/robosplat_render.py --out /tmp/robosplat_render.json
  python benchmarks/robosplat_render.py --parts runs/robosplat_generate/scene_parts.npz --out /tmp/r.json
  python benchmarks/robosplat_render.py --device-check --out $OUT/robosplat_render.json  # GPU: check, then time

The scene is the reconstructed tabletop (`--parts`, from configs/robosplat_generate.py), or one
reconstructed here without the background fitting (the back-projected Gaussians). One
demonstration is planned for a moved cube; its 82 frames x 2 cameras are rendered with every
edit drawn per frame, `--repeats` times after a warm-up call; reported: frames (camera images)
per second, the Gaussians per frame and the image size. `--device-check` first renders the same
demonstration with every rasterizer implementation available on the device and exits 1 when
an image differs from the XLA reference by more than 2/255 on average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np

from benchmarks import common
from jaxlab.robosplat.demo_plan import SourceTrajectory
from jaxlab.robosplat.demo_render import EditSettings
from jaxlab.robosplat.generate import make_renderer, plan_for_object
from jaxlab.robosplat.sim.cameras import default_cameras
from jaxlab.robosplat.sim.source_demo import record_source_demo
from jaxlab.robosplat.sim_assets import AssetSettings, build_scene_parts, load_scene_parts

_MAX_MEAN_ERROR = 2.0  # uint8 levels


def _renderer(parts, cameras, demo, implementation=None):
  return make_renderer(parts, cameras, EditSettings(), demo.spec.table_xy, implementation=implementation)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--parts", default="", help="scene_parts.npz of a generate run (default: reconstruct here)")
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--device-check", action="store_true")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)

  demo = record_source_demo()
  parts = load_scene_parts(args.parts) if args.parts else build_scene_parts(
      demo.spec, AssetSettings(fit_steps=0), object_names=("cube",))
  cameras = default_cameras(args.width)
  plan = plan_for_object(SourceTrajectory.from_demo(demo), parts, "cube", "cube", (0.55, 0.02, 1.0))
  if not plan.ok:
    raise SystemExit(f"the benchmark demonstration is unreachable: {plan.reason}")
  obj = parts.objects["cube"].gaussians
  key = jax.random.key(0)
  results = {**common.environment(), "width": args.width, "frames_per_demo": int(len(plan.state_t8) * len(cameras))}

  if args.device_check:
    want = _renderer(parts, cameras, demo, "xla")(plan.qpos_t9, plan.object_pose_t44, obj, key)
    got = _renderer(parts, cameras, demo)(plan.qpos_t9, plan.object_pose_t44, obj, key)
    errors = {name: float(np.abs(got[name].astype(float) - want[name].astype(float)).mean()) for name in want}
    results["check_mean_abs_error_vs_xla"] = errors
    print("device check (best implementation vs xla), mean |error| in uint8 levels:", errors)
    if max(errors.values()) > _MAX_MEAN_ERROR:
      print("DEVICE CHECK FAILED")
      if args.out:
        common.write_json(args.out, results)
      return 1

  renderer = _renderer(parts, cameras, demo)
  t0 = time.perf_counter()
  renderer(plan.qpos_t9, plan.object_pose_t44, obj, key)
  results["first_call_seconds"] = time.perf_counter() - t0
  times = []
  for i in range(args.repeats):
    t0 = time.perf_counter()
    renderer(plan.qpos_t9, plan.object_pose_t44, obj, jax.random.fold_in(key, i + 1))
    times.append(time.perf_counter() - t0)
  frames = results["frames_per_demo"]
  results.update(
      gaussians_per_frame=int(parts.background.num + np.prod(parts.links_lm.means.shape[:2]) + obj.num
                              + (int(np.prod(renderer.settings.table_grid)) if renderer.settings.texture else 0)),
      seconds_per_demo_median=float(np.median(times)), frames_per_second=float(frames / np.median(times)))
  print(f"{frames} frames per demonstration, {results['gaussians_per_frame']} Gaussians per frame, "
        f"{args.width}x{args.width}: {results['frames_per_second']:.1f} frames/s "
        f"({results['seconds_per_demo_median']:.2f} s per demonstration, median of {args.repeats})")
  if args.out:
    common.write_json(args.out, results)
  return 0


if __name__ == "__main__":
  sys.exit(main())
