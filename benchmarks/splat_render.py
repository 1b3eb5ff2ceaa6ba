"""Gaussian splatting render benchmark: every rasterizer implementation side by side.

  python benchmarks/splat_render.py --out /tmp/splat.json                 # CPU: small scenes
  python benchmarks/splat_render.py --device-check --out $OUT/splat.json  # GPU: check, then time

The scene follows bench/anchors.md exactly (so times compare with gsplat's): means ~
N(0, 1.5²) + (0, 0, 6), normalised N(0, 1) quaternions, log-scales ~ N(-4, 0.5²), opacity
logits ~ N(0, 1), SH degree 3 with coefficients ~ N(0, 0.3²); one camera at the origin
looking down +z, horizontal FoV 60°, principal point at the centre, 16×16 tiles, black
background. Timed: forward (render -> rgb) and forward + backward (gradient of sum(rgb)
w.r.t. every Gaussian parameter), median of >= 20 calls after warm-up. Reported beside
each time: the intersection count and the compiled program's temporary memory.
`--device-check` first compares every implementation with the XLA reference on a small
scene (images and all gradients) and exits 1 on a mismatch before timing anything.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab.ops import registry
from jaxlab.splat import Camera, Gaussians, estimate_capacity_for, render

_GPU_SCENES = ((100_000, 1280, 720), (100_000, 1920, 1080), (1_000_000, 1280, 720), (1_000_000, 1920, 1080))
_CPU_SCENES = ((2_000, 128, 96), (10_000, 256, 192))
_CHECK_SCENE = (2_000, 160, 120)
# The XLA reference holds [intersections, 256] arrays: time it only up to this many Gaussians.
_XLA_MAX_GAUSSIANS = {"gpu": 100_000, "cpu": 10_000, "tpu": 100_000}
_FLOAT_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")
_TOLERANCE = 2e-3  # max error relative to the largest reference value (float32 math, different order)


def anchor_scene(num: int, seed: int = 0) -> Gaussians:
  """The bench/anchors.md distribution, built with NumPy so no eager compile is needed."""
  rng = np.random.default_rng(seed)
  means = rng.normal(0.0, 1.5, (num, 3)) + np.array([0.0, 0.0, 6.0])
  quats = rng.normal(size=(num, 4))
  quats /= np.linalg.norm(quats, axis=1, keepdims=True)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  return Gaussians(
      means=f32(means),
      log_scales=f32(rng.normal(-4.0, 0.5, (num, 3))),
      quats=f32(quats),
      opacity_logits=f32(rng.normal(size=num)),
      sh=f32(rng.normal(0.0, 0.3, (num, 16, 3))),
      active=jnp.ones((num,), bool),
  )


def anchor_camera(width: int, height: int) -> Camera:
  focal = 0.5 * width / math.tan(math.radians(30.0))
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return Camera(
      fx=f32(focal), fy=f32(focal), cx=f32(width / 2), cy=f32(height / 2),
      world_to_camera=jnp.eye(4, dtype=jnp.float32), near=f32(0.01), far=f32(1e10),
      width=width, height=height,
  )


def _render_fns(camera: Camera, capacity: int, implementation: str, interpret: bool):
  def forward(g):
    out = render(g, camera, capacity=capacity, on_overflow="ignore", implementation=implementation, interpret=interpret)
    return out.rgb, out.alpha, out.depth

  def forward_backward(g):
    # `active` is a bool leaf: differentiate the float fields only.
    fields = {f: getattr(g, f) for f in _FLOAT_FIELDS}
    return jax.grad(lambda f: jnp.sum(forward(g.replace(**f))[0]))(fields)

  return jax.jit(forward), jax.jit(forward_backward)


def _temp_mb(fn, *args) -> float | None:
  try:
    analysis = fn.lower(*args).compile().memory_analysis()
    return analysis.temp_size_in_bytes / 2**20 if analysis is not None else None
  except Exception:  # memory analysis is not available on every backend
    return None


def _available(backend: str, interpret_on_cpu: bool) -> list[tuple[str, bool]]:
  """(implementation, interpret) pairs that can run here, with the reason for the others."""
  pairs = [("xla", False)]
  if backend == "gpu":
    pairs.append(("pallas_triton", False))
  elif interpret_on_cpu:
    pairs.append(("pallas_triton", True))
  return pairs


def check(implementations, log=print) -> list[dict]:
  num, width, height = _CHECK_SCENE
  scene, camera = anchor_scene(num, seed=1), anchor_camera(width, height)
  capacity = estimate_capacity_for(scene, camera)
  ref_fwd, ref_bwd = _render_fns(camera, capacity, "xla", False)
  want = (ref_fwd(scene), ref_bwd(scene))
  rows = []
  for implementation, interpret in implementations:
    if implementation == "xla":
      continue
    fwd, bwd = _render_fns(camera, capacity, implementation, interpret)
    got = (fwd(scene), bwd(scene))
    errors = {}
    for name, a, b in zip(("rgb", "alpha", "depth"), got[0], want[0]):
      errors[name] = common.max_relative_error(a, b)
    for field in _FLOAT_FIELDS:
      errors[f"d_{field}"] = common.max_relative_error(got[1][field], want[1][field])
    ok = all(e <= _TOLERANCE for e in errors.values())
    rows.append({"implementation": implementation, "interpret": interpret, "status": "pass" if ok else "FAIL", **errors})
    log(f"check {implementation} (interpret={interpret}): {'pass' if ok else 'FAIL'} " + ", ".join(f"{k}={v:.2e}" for k, v in errors.items()))
  return rows


def time_scenes(scenes, implementations, iters: int, log=print) -> list[dict]:
  backend = jax.default_backend()
  rows = []
  for num, width, height in scenes:
    scene, camera = anchor_scene(num), anchor_camera(width, height)
    capacity = estimate_capacity_for(scene, camera)
    for implementation, interpret in implementations:
      if interpret:
        continue  # the interpreter is for correctness, not speed
      if implementation == "xla" and num > _XLA_MAX_GAUSSIANS.get(backend, 0):
        log(f"skip xla at {num} Gaussians: the reference holds [intersections, tile²] arrays")
        continue
      fwd, bwd = _render_fns(camera, capacity, implementation, interpret)
      count = int(render(scene, camera, capacity=capacity, on_overflow="error", implementation=implementation).num_intersections)
      for mode, fn in (("fwd", fwd), ("fwd+bwd", bwd)):
        timing = common.time_call(fn, scene, iters=iters)
        rows.append({
            "gaussians": num, "image": f"{width}x{height}", "implementation": implementation, "mode": mode,
            "median_ms": timing["median_ms"], "intersections": count, "capacity": capacity, "temp_mb": _temp_mb(fn, scene),
        })
        log(f"{implementation:14s} {num:>8d} {width}x{height} {mode:8s} {timing['median_ms']:.3f} ms")
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", help="write results as JSON here")
  parser.add_argument("--device-check", action="store_true", help="correctness against the reference first; exit 1 on failure")
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--scenes", help="NUMxWIDTHxHEIGHT,... (default: anchors on GPU, small on CPU)")
  args = parser.parse_args(argv)

  backend = jax.default_backend()
  implementations = _available(backend, interpret_on_cpu=args.device_check)
  print(f"backend={backend} device={jax.devices()[0].device_kind} implementations={implementations}")
  print("default choice on this backend:", registry.default_preference(backend))
  payload = {"environment": common.environment(), "check": [], "timings": []}
  if args.device_check:
    payload["check"] = check(implementations)
    if any(r["status"] != "pass" for r in payload["check"]):
      if args.out:
        common.write_json(args.out, payload)
      print("correctness check FAILED; not timing")
      return 1
  if args.scenes:
    scenes = [tuple(int(v) for v in s.split("x")) for s in args.scenes.split(",")]
  else:
    scenes = _GPU_SCENES if backend == "gpu" else _CPU_SCENES
  payload["timings"] = time_scenes(scenes, implementations, args.iters)
  baseline = {(r["gaussians"], r["image"], r["mode"]): r["median_ms"] for r in payload["timings"] if r["implementation"] == "xla"}
  for row in payload["timings"]:
    base = baseline.get((row["gaussians"], row["image"], row["mode"]))
    row["ratio_vs_xla"] = base / row["median_ms"] if base else None
  columns = [("implementation", "impl"), ("gaussians", "N"), ("image", "image"), ("mode", "mode"),
             ("median_ms", "median ms"), ("ratio_vs_xla", "xla/this"), ("intersections", "intersections"), ("temp_mb", "temp MB")]
  print(common.format_table(payload["timings"], columns))
  if args.out:
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
