"""HiFlow guidance step benchmark: xla and pallas_triton side by side, against a copy bandwidth of the same run.

  python benchmarks/flow_guidance.py --out /tmp/flow_guidance.json
  python benchmarks/flow_guidance.py --device-check --out /tmp/flow_guidance.json

Latents are float32 [B, H, H, 16] with the acceleration term on (five inputs, four outputs).
Every timed shape is first checked: pallas_triton against xla, max |err| / max |xla| <= 1e-5
per output; with `--device-check` a failed check exits 1 before any timing. Off a GPU the
Pallas kernels run only in the interpreter, so they are checked at a tiny shape and small
shapes are timed with xla alone.

Measured, per shape and low-pass ("fft" Butterworth, "dwt" Haar):
  step        the whole op (jitted): ms by `time_call` (wall, one call) and `time_back_to_back`
              (device time per call), and GB/s of its compulsory traffic: 5 inputs read and
              4 outputs written once, 36 bytes per element.
  elementwise the part after the low-pass, alone, on a precomputed lp: the Pallas kernel
              `guided_update` (6 reads, 4 writes: 40 bytes per element) and XLA's fusion of the
              same formulas. For "dwt" the Pallas kernel is the whole step, already timed above.
Bandwidths are also given as a fraction of the copy bandwidth: a jitted `x * 2.0 + 1.0` over a
large float32 array (8 bytes per element: one read, one write) by XLA and, on a GPU, by a
Pallas kernel with the same 1-D blocks as `guided_update`. `t/t_xla` is this row's
back-to-back time over xla's for the same shape and part (< 1: faster than xla).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

if __package__ in (None, ""):
  # Run as a script from a checkout: make `jaxlab`, `kernels_pallas`, `benchmarks` importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab import ops
from jaxlab.ops.flow_guidance_op.reference import SIGMA_EPS, guidance_update, lowpass_difference

CHANNELS = 16
SCALARS = dict(sigma=0.6, sigma_next=0.55, alpha=0.7, beta=0.4)
TOLERANCE = 1e-5
LOWPASS_KINDS = ("fft", "dwt")

# (B, H) with W = H.
_GPU_SHAPES = ((1, 256), (4, 256), (1, 512), (4, 512))
_CPU_SHAPES = ((1, 32), (2, 64))
_INTERPRET_SHAPE = (1, 8)  # Off a GPU: the Pallas kernels through the interpreter, tiny.

_COPY_ELEMENTS = {"gpu": 1 << 26, "cpu": 1 << 22}  # 256 MiB on a GPU: far past any cache.
_STEP_BYTES_PER_ELEMENT = 4 * (5 + 4)
_ELEMENTWISE_BYTES_PER_ELEMENT = 4 * (6 + 4)


def _latents(batch, height, seed=0):
  """x_t, v, x0_ref, v_prev, v_ref_prev: float32 [B, H, H, 16] normals."""
  keys = jax.random.split(jax.random.key(seed), 5)
  return [jax.random.normal(k, (batch, height, height, CHANNELS), jnp.float32) for k in keys]


def _step_fn(implementation, lowpass, interpret=False):
  return jax.jit(lambda *a: ops.flow_guidance(*a, **SCALARS, lowpass=lowpass, implementation=implementation,
                                              interpret=interpret))


def _lowpass_input(x_t, v, x0_ref, lowpass):
  """lp = LP(x0_ref - x0_hat), as both implementations compute it before the elementwise part."""
  return lowpass_difference(x_t, v, x0_ref, sigma=SCALARS["sigma"], lowpass=lowpass)


def _elementwise_fns(interpret=False):
  """(xla, pallas_triton) functions of (x_t, v, x0_ref, lp, v_prev, v_ref_prev) -> four outputs."""
  from kernels_pallas.flow_guidance import triton as kernel

  scalars_4 = jnp.asarray([SCALARS[k] for k in ("sigma", "sigma_next", "alpha", "beta")], jnp.float32)
  xla = jax.jit(lambda *a: guidance_update(*a, **SCALARS))
  pallas = jax.jit(lambda *a: kernel.guided_update(*a, scalars_4, sigma_eps=SIGMA_EPS, config=None,
                                                   interpret=interpret))
  return {"xla": xla, "pallas_triton": pallas}


def _check(batch, height, lowpass, interpret) -> dict:
  """pallas_triton against xla at one shape: the whole step and the Fourier path's kernel alone."""
  latents = _latents(batch, height, seed=1)
  row = {"shape": f"{batch}x{height}x{height}x{CHANNELS}", "lowpass": lowpass, "interpret": interpret}
  want = _step_fn("xla", lowpass)(*latents)
  got = _step_fn("pallas_triton", lowpass, interpret)(*latents)
  errors = {f"err_{name}": common.max_relative_error(g, w) for name, g, w in zip(want._fields, got, want)}
  if lowpass == "fft":
    x_t, v, x0_ref, v_prev, v_ref_prev = latents
    args = (x_t, v, x0_ref, _lowpass_input(x_t, v, x0_ref, lowpass), v_prev, v_ref_prev)
    fns = _elementwise_fns(interpret)
    errors["err_kernel"] = max(
        common.max_relative_error(g, w) for g, w in zip(fns["pallas_triton"](*args), fns["xla"](*args))
    )
  passed = max(errors.values()) <= TOLERANCE
  return {**row, "status": "pass" if passed else "FAIL", **errors}


def _copy_kernel(x_ref, y_ref, *, block: int):
  from jax.experimental import pallas as pl

  from jaxlab import _compat

  plgpu = _compat.pallas_triton()
  start = pl.multiple_of(pl.program_id(0) * block, block)
  window = pl.ds(start, block)
  plgpu.store(y_ref.at[window], plgpu.load(x_ref.at[window]) * 2.0 + 1.0)


def _pallas_copy(x, block=1024):
  """y = x * 2 + 1 over a 1-D float32 array whose length is a multiple of `block`, in 1-D blocks."""
  from jax.experimental import pallas as pl

  from jaxlab import _compat

  return pl.pallas_call(
      functools.partial(_copy_kernel, block=block),
      out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
      grid=(x.shape[0] // block,),
      compiler_params=_compat.triton_compiler_params(num_warps=4, num_stages=1),
      name="copy_scale_shift",
  )(x)


def _copy_bandwidth(backend, args) -> list[dict]:
  """GB/s of y = x * 2 + 1 over a large float32 array (read + write), by XLA and, on a GPU, Pallas."""
  num_elements = _COPY_ELEMENTS.get(backend, _COPY_ELEMENTS["cpu"])
  x = jnp.arange(num_elements, dtype=jnp.float32)
  fns = {"xla": jax.jit(lambda a: a * 2.0 + 1.0)}
  if backend == "gpu":
    fns["pallas_triton"] = jax.jit(_pallas_copy)
  rows = []
  for implementation, fn in fns.items():
    np.testing.assert_allclose(np.asarray(fn(x)[:8]), np.arange(8) * 2.0 + 1.0)
    timing = {**common.time_call(fn, x, warmup=args.warmup, iters=args.iters),
              **common.time_back_to_back(fn, x, calls=args.calls)}
    bytes_moved = 8 * num_elements
    rows.append({"implementation": implementation, "elements": num_elements, "bytes": bytes_moved, **timing,
                 "gb_per_s": bytes_moved / (timing["back_to_back_ms"] * 1e-3) / 1e9})
  return rows


def _time(fn, fn_args, bytes_moved, args) -> dict:
  timing = {**common.time_call(fn, *fn_args, warmup=args.warmup, iters=args.iters),
            **common.time_back_to_back(fn, *fn_args, calls=args.calls)}
  return {**timing, "bytes": bytes_moved, "gb_per_s": bytes_moved / (timing["back_to_back_ms"] * 1e-3) / 1e9}


def _time_shape(batch, height, lowpass, implementations, args) -> list[dict]:
  latents = _latents(batch, height)
  num_elements = latents[0].size
  shape = f"{batch}x{height}x{height}x{CHANNELS}"
  rows = []
  for implementation in implementations:
    step = _time(_step_fn(implementation, lowpass), latents, _STEP_BYTES_PER_ELEMENT * num_elements, args)
    rows.append({"shape": shape, "lowpass": lowpass, "part": "step", "implementation": implementation, **step})
  if lowpass == "fft":
    x_t, v, x0_ref, v_prev, v_ref_prev = latents
    lp = jax.block_until_ready(jax.jit(_lowpass_input, static_argnums=3)(x_t, v, x0_ref, lowpass))
    fns = _elementwise_fns()
    for implementation in implementations:
      part = _time(fns[implementation], (x_t, v, x0_ref, lp, v_prev, v_ref_prev),
                   _ELEMENTWISE_BYTES_PER_ELEMENT * num_elements, args)
      rows.append({"shape": shape, "lowpass": lowpass, "part": "elementwise", "implementation": implementation,
                   **part})
  return rows


def _add_ratios(rows, copy_gb_per_s) -> None:
  xla_ms = {(r["shape"], r["lowpass"], r["part"]): r["back_to_back_ms"] for r in rows if r["implementation"] == "xla"}
  for row in rows:
    reference = xla_ms.get((row["shape"], row["lowpass"], row["part"]))
    row["time_over_xla"] = row["back_to_back_ms"] / reference if reference else None
    row["fraction_of_copy"] = row["gb_per_s"] / copy_gb_per_s


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write results as JSON to this path")
  parser.add_argument("--device-check", action="store_true", help="check every shape first; exit 1 on failure")
  parser.add_argument("--iters", type=int, default=20, help="timed single calls per measurement (median reported)")
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--calls", type=int, default=50, help="calls per back-to-back measurement")
  args = parser.parse_args(argv)

  backend = jax.default_backend()
  env = common.environment()
  print(f"flow_guidance on {env['device_kind']} ({backend}), jax {env['jax']}")
  on_gpu = backend == "gpu"
  shapes = _GPU_SHAPES if on_gpu else _CPU_SHAPES
  implementations = ("xla", "pallas_triton") if on_gpu else ("xla",)

  check_shapes = shapes if on_gpu else (_INTERPRET_SHAPE,)
  checks = [_check(b, h, lowpass, interpret=not on_gpu) for b, h in check_shapes for lowpass in LOWPASS_KINDS]
  print(f"\npallas_triton against xla (max |err| / max |xla|, tolerance {TOLERANCE:g}):")
  print(common.format_table(checks, [
      ("shape", "shape"), ("lowpass", "lowpass"), ("interpret", "interp"), ("status", "status"),
      ("err_x_next", "x_next"), ("err_v_guided", "v_guided"), ("err_v_ref", "v_ref"),
      ("err_x0_unguided", "x0_unguided"), ("err_kernel", "kernel alone"),
  ]))
  failures = [c for c in checks if c["status"] != "pass"]
  payload = {"benchmark": "flow_guidance", "environment": env, "tolerance": TOLERANCE, "scalars": SCALARS,
             "bytes_model": {"step": "36 B/element: 5 inputs read, 4 outputs written",
                             "elementwise": "40 B/element: x_t, v, x0_ref, lp, v_prev, v_ref_prev read, 4 written",
                             "copy": "8 B/element: one read, one write"},
             "checks": checks}
  if failures and args.device_check:
    for failure in failures:
      print(f"CHECK FAILED: {failure}")
    if args.out:
      common.write_json(args.out, payload)
    return 1

  copy_rows = _copy_bandwidth(backend, args)
  copy_gb_per_s = max(r["gb_per_s"] for r in copy_rows)
  print(f"\nCopy bandwidth (x * 2 + 1, float32, {copy_rows[0]['elements']} elements, read + write):")
  print(common.format_table(copy_rows, [
      ("implementation", "impl"), ("median_ms", "wall ms"), ("back_to_back_ms", "device ms"), ("gb_per_s", "GB/s"),
  ]))

  timings = []
  for batch, height in shapes:
    for lowpass in LOWPASS_KINDS:
      rows = _time_shape(batch, height, lowpass, implementations, args)
      _add_ratios(rows, copy_gb_per_s)
      timings.extend(rows)
      # Printed and saved as they come, so a run cut short keeps what it measured.
      print(" | ".join(f"{r['shape']} {r['lowpass']} {r['part']} {r['implementation']}: "
                       f"{r['back_to_back_ms']:.4g} ms, {r['fraction_of_copy']:.2f} of copy" for r in rows), flush=True)
      if args.out:
        common.write_json(args.out, {**payload, "copy": copy_rows, "copy_gb_per_s": copy_gb_per_s,
                                     "timings": timings, "complete": False})
  print(f"\nTimings (wall: median of {args.iters}; device: back to back, {args.calls} calls; GB/s from device ms; "
        f"copy = {copy_gb_per_s:.4g} GB/s):")
  print(common.format_table(timings, [
      ("shape", "shape"), ("lowpass", "lowpass"), ("part", "part"), ("implementation", "impl"),
      ("median_ms", "wall ms"), ("back_to_back_ms", "device ms"), ("gb_per_s", "GB/s"),
      ("fraction_of_copy", "of copy"), ("time_over_xla", "t/t_xla"),
  ]))
  if not on_gpu:
    print("\npallas_triton not timed: it needs a GPU (checked in the interpreter above)")
  for failure in failures:
    print(f"CHECK FAILED: {failure}")
  if args.out:
    common.write_json(args.out, {**payload, "copy": copy_rows, "copy_gb_per_s": copy_gb_per_s, "timings": timings,
                                 "complete": True})
    print(f"\nwrote {args.out}")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
