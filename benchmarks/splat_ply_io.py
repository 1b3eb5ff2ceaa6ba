"""3DGS PLY I/O: `save_ply` and `load_ply` on one degree-3 scene, timed on the host.

  python benchmarks/splat_ply_io.py --out /tmp/splat_ply_io.json
  python benchmarks/splat_ply_io.py --num-gaussians 200000 --repeats 5

The scene has --num-gaussians (default 3M) active Gaussians with SH degree 3, drawn with
NumPy (62 float32 properties per vertex, 248 bytes). It is written to a fresh temporary
folder; `save_ply` is timed overwriting that file, `load_ply` reading it back until every
array is ready (the file is in the page cache by then: this is decode time, not disk time).
Each time is the median of --repeats runs. The first load is checked against the scene bit
for bit, and the script exits 1 if it differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab.splat import Gaussians, load_ply, save_ply

_FLOAT_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")


def make_scene(num: int, seed: int = 0) -> Gaussians:
  """Degree-3 Gaussians from NumPy draws (no compile), every slot active."""
  rng = np.random.default_rng(seed)
  f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape, np.float32))
  return Gaussians(
      means=f32(num, 3), log_scales=f32(num, 3) - 4.0, quats=f32(num, 4), opacity_logits=f32(num),
      sh=f32(num, 16, 3), active=jnp.ones((num,), jnp.bool_))


def time_runs(fn, repeats: int) -> list[float]:
  """Wall seconds of `fn()` (outputs ready) for each of `repeats` runs."""
  samples = []
  for _ in range(max(1, repeats)):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    samples.append(time.perf_counter() - start)
  return samples


def round_trip_exact(loaded: Gaussians, scene: Gaussians) -> bool:
  return all(np.array_equal(np.asarray(getattr(loaded, name)).view(np.uint8),
                            np.asarray(getattr(scene, name)).view(np.uint8)) for name in _FLOAT_FIELDS)


def summary(operation: str, samples: list[float], num: int, file_bytes: int) -> dict:
  median = statistics.median(samples)
  return {"operation": operation, "gaussians": num, "file_mb": file_bytes / 1e6, "median_s": median,
          "min_s": min(samples), "max_s": max(samples), "runs": len(samples),
          "mb_per_s": file_bytes / 1e6 / median}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write results as JSON to this path")
  parser.add_argument("--num-gaussians", type=int, default=3_000_000, help="Gaussians in the scene")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs per operation (median reported)")
  args = parser.parse_args(argv)
  if args.num_gaussians < 1 or args.repeats < 1:
    parser.error("--num-gaussians and --repeats must be >= 1")

  env = common.environment()
  print(f"backend={env['backend']} cpus={os.cpu_count()} gaussians={args.num_gaussians} repeats={args.repeats}")
  scene = make_scene(args.num_gaussians)
  with tempfile.TemporaryDirectory(prefix="splat_ply_io-") as folder:
    path = os.path.join(folder, "scene.ply")
    save_ply(path, scene)  # the first write creates the file; the timed ones replace it
    save_s = time_runs(lambda: save_ply(path, scene, overwrite=True), args.repeats)
    file_bytes = os.path.getsize(path)
    exact = round_trip_exact(load_ply(path), scene)
    load_s = time_runs(lambda: load_ply(path), args.repeats)
  rows = [summary("save_ply", save_s, args.num_gaussians, file_bytes),
          summary("load_ply", load_s, args.num_gaussians, file_bytes)]
  print(common.format_table(rows, [
      ("operation", "operation"), ("gaussians", "gaussians"), ("file_mb", "file MB"), ("median_s", "median s"),
      ("min_s", "min s"), ("max_s", "max s"), ("mb_per_s", "MB/s")]))
  print(f"round trip bit-exact: {exact}")
  if args.out:
    common.write_json(args.out, {"environment": env, "num_gaussians": args.num_gaussians, "sh_degree": 3,
                                 "repeats": args.repeats, "round_trip_exact": exact, "timings": rows})
  return 0 if exact else 1


if __name__ == "__main__":
  sys.exit(main())
