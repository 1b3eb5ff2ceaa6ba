"""RMSNorm benchmark: every available implementation and the jnp reference, side by side.

  python benchmarks/rms_norm.py --out /tmp/rms_norm.json
  python benchmarks/rms_norm.py --device-check --out /tmp/rms_norm.json

Each implementation is first checked against the reference (values and both gradients) at
each timed shape; `--device-check` adds small odd shapes in float32 and bfloat16 for every
implementation (Pallas ones through the interpreter where their platform is absent), and
exits with status 1 if any check fails. Timing: forward, and forward + backward (y, dx,
dscale from x, scale, dy), median of >= 20 runs after warm-up. GB/s counts the ideal HBM
traffic: forward reads x and writes y; forward + backward also reads dy and writes dx.
Speedup is the xla implementation's median time over this one's, on the same device.
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):
  # Run as a script from a checkout: make `jaxlab`, `kernels_pallas`, `benchmarks` importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp

from benchmarks import common
from jaxlab import ops
from jaxlab.ops import registry
from jaxlab.ops.rms_norm_op.reference import rms_norm_reference

# Check shapes: odd row lengths and row counts, small enough for the Pallas interpreter.
_CHECK_SHAPES = ((4, 100), (3, 257), (37, 64))
_CHECK_EPS = 0.1  # Large enough that a kernel dropping eps fails the check.

# Timed shapes (rows, row length). GPU: LM-sized activations incl. a non-power-of-two width
# and short per-head rows; CPU: small, XLA only.
_GPU_SHAPES = ((16384, 2048), (16384, 4096), (16384, 5120), (8192, 8192), (262144, 128))
_CPU_SHAPES = ((256, 1024), (1024, 4096))

# Max error relative to the largest reference value, by dtype.
_TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _inputs(num_rows, row_length, dtype, seed=0):
  """Random x (non-zero mean, varied row scales), scale around 1, and a cotangent dy."""
  k_x, k_row, k_scale, k_dy = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(k_x, (num_rows, row_length)) * jnp.exp(jax.random.normal(k_row, (num_rows, 1))) + 0.3
  scale = 1.0 + 0.5 * jax.random.normal(k_scale, (row_length,))
  dy = jax.random.normal(k_dy, (num_rows, row_length))
  return x.astype(dtype), scale.astype(dtype), dy.astype(dtype)


def _norm_fn(implementation, eps, interpret):
  if implementation == "reference":
    return lambda x, scale: rms_norm_reference(x, scale, eps=eps)
  return lambda x, scale: ops.rms_norm(x, scale, eps=eps, implementation=implementation, interpret=interpret)


def _forward_and_backward(norm):
  def run(x, scale, dy):
    y, vjp = jax.vjp(norm, x, scale)
    return (y, *vjp(dy))

  return jax.jit(run)


def _check(implementation, num_rows, row_length, dtype_name, eps, interpret) -> dict:
  """Compares (y, dx, dscale) of one implementation with the reference's autodiff."""
  x, scale, dy = _inputs(num_rows, row_length, _DTYPES[dtype_name], seed=1)
  row = {"implementation": implementation, "shape": f"{num_rows}x{row_length}", "dtype": dtype_name,
         "eps": eps, "interpret": interpret}
  try:
    ops.resolve_rms_norm(x, scale, eps=eps, implementation=implementation, interpret=interpret)
  except registry.NoImplementationError as e:
    return {**row, "status": "unavailable", "reason": e.failures[-1][1]}
  got = _forward_and_backward(_norm_fn(implementation, eps, interpret))(x, scale, dy)
  want = _forward_and_backward(_norm_fn("reference", eps, False))(x, scale, dy)
  errors = {name: common.max_relative_error(g, w) for name, g, w in zip(("y", "dx", "dscale"), got, want)}
  passed = max(errors.values()) <= _TOLERANCE[dtype_name]
  return {**row, "status": "pass" if passed else "FAIL", **{f"err_{k}": v for k, v in errors.items()}}


def _check_suite(implementation, backend) -> list[dict]:
  """Checks at every check shape and dtype; one row suffices for an unavailable implementation."""
  # Pallas kernels run natively on their platform, through the interpreter elsewhere.
  interpret = registry.native_backend(implementation) not in (None, backend)
  rows = []
  for num_rows, row_length in _CHECK_SHAPES:
    for dtype_name in ("float32", "bfloat16"):
      rows.append(_check(implementation, num_rows, row_length, dtype_name, _CHECK_EPS, interpret))
      if rows[-1]["status"] == "unavailable":
        return rows
  return rows


def _time(implementation, num_rows, row_length, dtype_name, xla_ms, iters, warmup) -> list[dict]:
  x, scale, dy = _inputs(num_rows, row_length, _DTYPES[dtype_name])
  norm = _norm_fn(implementation, 1e-6, False)
  itemsize = jnp.dtype(dtype_name).itemsize
  rows = []
  for mode, fn, args, bytes_moved in (
      ("fwd", jax.jit(norm), (x, scale), 2 * num_rows * row_length * itemsize),
      ("fwd+bwd", _forward_and_backward(norm), (x, scale, dy), 4 * num_rows * row_length * itemsize),
  ):
    timing = common.time_call(fn, *args, warmup=warmup, iters=iters)
    median_ms = timing["median_ms"]
    reference_ms = xla_ms.get((num_rows, row_length, dtype_name, mode))
    rows.append({
        "implementation": implementation, "shape": f"{num_rows}x{row_length}", "dtype": dtype_name, "mode": mode,
        **timing, "gb_per_s": bytes_moved / (median_ms * 1e-3) / 1e9,
        "speedup_vs_xla": reference_ms / median_ms if reference_ms else None,
    })
  return rows


def _parse_shapes(text):
  return tuple(tuple(int(n) for n in item.split("x")) for item in text.split(","))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write results as JSON to this path")
  parser.add_argument("--device-check", action="store_true", help="correctness suite first; exit 1 on failure")
  parser.add_argument("--shapes", type=_parse_shapes, help="timed shapes, e.g. 16384x4096,8192x5120")
  parser.add_argument("--dtypes", default="bfloat16,float32", help="timed dtypes, comma separated")
  parser.add_argument("--iters", type=int, default=20, help="timed runs per measurement (median reported)")
  parser.add_argument("--warmup", type=int, default=3)
  args = parser.parse_args(argv)

  backend = jax.default_backend()
  env = common.environment()
  print(f"rms_norm on {env['device_kind']} ({backend}), jax {env['jax']}")
  dtype_names = [d for d in args.dtypes.split(",") if d]
  unknown = [d for d in dtype_names if d not in _DTYPES]
  if unknown:
    parser.error(f"unknown dtype(s) {unknown}; choose from {list(_DTYPES)}")
  shapes = args.shapes or (_GPU_SHAPES if backend == "gpu" else _CPU_SHAPES)

  checks = []
  if args.device_check:
    for implementation in ops.IMPLEMENTATIONS:
      checks.extend(_check_suite(implementation, backend))
    print("\nCorrectness against the reference (max error / max |reference|):")
    print(common.format_table(checks, [
        ("implementation", "impl"), ("interpret", "interp"), ("shape", "shape"), ("dtype", "dtype"),
        ("status", "status"), ("err_y", "y"), ("err_dx", "dx"), ("err_dscale", "dscale"), ("reason", "reason"),
    ]))

  # Timed: the reference plus every implementation that runs natively here.
  timings, xla_ms, skipped = [], {}, []
  for num_rows, row_length in shapes:
    for dtype_name in dtype_names:
      for implementation in ("xla", "reference", *(i for i in ops.IMPLEMENTATIONS if i != "xla")):
        if implementation != "reference":
          check = _check(implementation, num_rows, row_length, dtype_name, 1e-6, interpret=False)
          checks.append(check)
          if check["status"] != "pass":
            skipped.append(check)
            continue
        rows = _time(implementation, num_rows, row_length, dtype_name, xla_ms, args.iters, args.warmup)
        if implementation == "xla":
          xla_ms.update({(num_rows, row_length, dtype_name, r["mode"]): r["median_ms"] for r in rows})
          for r in rows:
            r["speedup_vs_xla"] = 1.0
        timings.extend(rows)

  print(f"\nTimings (median of {args.iters} runs after {args.warmup} warm-up; speedup = xla time / this time):")
  print(common.format_table(timings, [
      ("implementation", "impl"), ("shape", "shape"), ("dtype", "dtype"), ("mode", "mode"),
      ("median_ms", "median ms"), ("gb_per_s", "GB/s"), ("speedup_vs_xla", "speedup"),
  ]))
  unavailable = sorted({(c["implementation"], c.get("reason", "")) for c in skipped if c["status"] == "unavailable"})
  for implementation, reason in unavailable:
    print(f"not timed: {implementation}: {reason}")

  failures = [c for c in checks if c["status"] == "FAIL"]
  for failure in failures:
    print(f"CHECK FAILED: {failure}")
  if args.out:
    common.write_json(args.out, {
        "benchmark": "rms_norm", "environment": env, "tolerance": _TOLERANCE,
        "bytes_model": "fwd: 2*M*D*itemsize; fwd+bwd: 4*M*D*itemsize", "checks": checks, "timings": timings,
    })
    print(f"\nwrote {args.out}")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
