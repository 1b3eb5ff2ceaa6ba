"""Attention benchmark: every implementation of `jaxlab.ops.attention` side by side.

  python benchmarks/attention.py --out /tmp/attention.json                 # timings (GPU sizes on a GPU)
  python benchmarks/attention.py --device-check --out $OUT/attention.json  # checks first, exit 1 on failure
  python benchmarks/attention.py --memory-scaling --out /tmp/attention_memory.json   # CPU: memory vs T

`--device-check` compares every implementation with the XLA reference (values, log-sum-exp and
the gradients of q, k and v) at small odd shapes for each mask kind, Pallas kernels through the
interpreter where their platform is absent. Timing: causal attention, D = 128, GQA 8:1 and 1:1,
T = S in {4k, 16k, 32k}, batch B = 32k / T (a full device at 32k tokens per step, 32 query
heads), forward and forward + backward, median of >= 10 runs after warm-up; with each the
compiled temporary memory (`memory_analysis().temp_size_in_bytes`). TFLOP/s counts 4*B*H*T*S*D
for the forward (halved for causal) and 3.5x that for forward + backward.

`--memory-scaling` compiles (does not run) the forward + backward at growing T and reports
the temporary memory of each implementation: linear in T for the flash kernel (in interpret
mode on CPU), quadratic for the XLA reference.
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab import ops
from jaxlab.ops import registry

_IMPLEMENTATIONS = ("xla", "cudnn", "pallas_triton")
_TOLERANCE = {"float32": 2e-4, "bfloat16": 3e-2}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_TOKENS_PER_STEP = {"gpu": 32768}  # Elsewhere (CPU): 1024, to finish in seconds.
_QUERY_HEADS = 32


def _check_cases():
  """(name, B, T, S, H, KV, D, mask) at small odd sizes, one per mask kind."""
  seg_q = np.repeat(np.array([[0, 1, 2]]), [13, 11, 9], axis=1)
  explicit = np.random.default_rng(5).random((33, 33)) < 0.7
  return [
      ("causal-gqa4", 2, 33, 33, 8, 2, 64, ops.AttentionMask(causal=True)),
      ("full-d128", 1, 17, 45, 4, 4, 128, None),
      ("decode-3", 2, 3, 77, 8, 1, 64, ops.AttentionMask(causal=True, q_offset=np.array([40, 74]))),
      ("window", 1, 40, 40, 4, 2, 64, ops.AttentionMask(causal=True, sliding_window=9)),
      ("prefix-lm", 2, 33, 33, 4, 2, 64, ops.AttentionMask(causal=True, prefix_length=np.array([5, 20]))),
      ("segments", 1, 33, 33, 4, 2, 64, ops.AttentionMask(causal=True, q_segment_ids=seg_q, kv_segment_ids=seg_q)),
      ("kv-length", 2, 20, 33, 4, 4, 64, ops.AttentionMask(kv_length=np.array([7, 33]))),
      ("explicit", 1, 33, 33, 4, 2, 64, ops.AttentionMask(explicit=explicit)),
  ]


def _inputs(b, t, s, h, kv, d, dtype, seed=0):
  keys = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(keys[0], (b, t, h, d), jnp.float32)
  k = jax.random.normal(keys[1], (b, s, kv, d), jnp.float32)
  v = jax.random.normal(keys[2], (b, s, kv, d), jnp.float32)
  dout = jax.random.normal(keys[3], (b, t, h, d), jnp.float32)
  dlse = jax.random.normal(keys[4], (b, t, h), jnp.float32)
  return tuple(a.astype(dtype) for a in (q, k, v, dout)) + (dlse,)


def _value_and_grads(implementation, mask, interpret, with_lse):
  """(out, lse or None, dq, dk, dv); the cotangent reaches lse too when `with_lse`."""
  def run(q, k, v, dout, dlse):
    fn = lambda q, k, v: ops.attention(q, k, v, mask, return_lse=with_lse, implementation=implementation,
                                       interpret=interpret)
    if not with_lse:
      out, vjp = jax.vjp(fn, q, k, v)
      return (out, None, *vjp(dout))
    (out, lse), vjp = jax.vjp(fn, q, k, v)
    return (out, lse, *vjp((dout, jnp.where(jnp.isfinite(lse), dlse, 0.0))))

  return jax.jit(run)


def _check(implementation, case, dtype_name, interpret) -> dict:
  name, b, t, s, h, kv, d, mask = case
  args = _inputs(b, t, s, h, kv, d, _DTYPES[dtype_name], seed=1)
  row = {"implementation": implementation, "case": name, "dtype": dtype_name, "interpret": interpret}
  with_lse = implementation != "cudnn"  # cuDNN's log-sum-exp carries no gradient: checked without it.
  try:
    ops.resolve_attention(*args[:3], mask, return_lse=with_lse, implementation=implementation, interpret=interpret)
  except registry.NoImplementationError as e:
    return {**row, "status": "unavailable", "reason": e.failures[-1][1]}
  got = _value_and_grads(implementation, mask, interpret, with_lse)(*args)
  want = _value_and_grads("xla", mask, False, with_lse)(*(a.astype(jnp.float32) for a in args))
  finite = lambda x: jnp.where(jnp.isfinite(x), x, 0.0)
  errors = {key: common.max_relative_error(finite(g.astype(jnp.float32)), finite(w))
            for key, g, w in zip(("out", "lse", "dq", "dk", "dv"), got, want) if g is not None}
  passed = max(errors.values()) <= _TOLERANCE[dtype_name]
  return {**row, "status": "pass" if passed else "FAIL", **{f"err_{k}": v for k, v in errors.items()}}


def _flops(b, t, s, h, d, causal, mode):
  forward = 4 * b * h * t * s * d * (0.5 if causal else 1.0)
  return forward if mode == "fwd" else 3.5 * forward


def _compiled(fn, *args):
  compiled = jax.jit(fn).lower(*args).compile()
  analysis = compiled.memory_analysis()
  temp = None if analysis is None else int(analysis.temp_size_in_bytes)
  return compiled, temp


def _modes(implementation, mask, interpret=False):
  attend = lambda q, k, v: ops.attention(q, k, v, mask, implementation=implementation, interpret=interpret)

  def forward_backward(q, k, v, dout):
    out, vjp = jax.vjp(attend, q, k, v)
    return (out, *vjp(dout))

  return (("fwd", lambda q, k, v, dout: attend(q, k, v)), ("fwd+bwd", forward_backward))


def _time(implementation, t, kv, dtype_name, iters, warmup) -> list[dict]:
  tokens = _TOKENS_PER_STEP.get(jax.default_backend(), 1024)
  b, h, d = max(1, tokens // t), _QUERY_HEADS, 128
  mask = ops.AttentionMask(causal=True)
  q, k, v, dout, _ = _inputs(b, t, t, h, kv, d, _DTYPES[dtype_name])
  rows = []
  for mode, fn in _modes(implementation, mask):
    row = {"implementation": implementation, "B": b, "T": t, "H": h, "KV": kv, "D": d, "dtype": dtype_name,
           "mode": mode}
    try:
      compiled, temp = _compiled(fn, q, k, v, dout)
      timing = common.time_call(compiled, q, k, v, dout, warmup=warmup, iters=iters)
    except Exception as e:  # An implementation that runs out of memory at this size is reported, not fatal.
      rows.append({**row, "status": f"error: {type(e).__name__}: {str(e).splitlines()[0][:120]}"})
      continue
    tflops = _flops(b, t, t, h, d, True, mode) / (timing["median_ms"] * 1e-3) / 1e12
    rows.append({**row, "status": "ok", **timing, "tflops": tflops, "temp_mib": None if temp is None else temp / 2**20})
  return rows


def _memory_scaling(lengths, interpret) -> list[dict]:
  """Compiled temporary memory of forward + backward against T (nothing is run)."""
  rows = []
  for t in lengths:
    q, k, v, dout, _ = _inputs(1, t, t, 4, 1, 64, jnp.float32)
    for implementation in ("xla", "pallas_triton"):
      _, forward_backward = _modes(implementation, ops.AttentionMask(causal=True), interpret)[1]
      _, temp = _compiled(forward_backward, q, k, v, dout)
      rows.append({"implementation": implementation, "interpret": interpret and implementation != "xla", "T": t,
                   "temp_mib": temp / 2**20, "temp_bytes_per_token": temp / t})
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write results as JSON to this path")
  parser.add_argument("--device-check", action="store_true", help="correctness suite first; exit 1 on failure")
  parser.add_argument("--memory-scaling", action="store_true", help="compiled memory against T, then exit")
  parser.add_argument("--lengths", default=None, help="timed (or memory-scaling) sequence lengths, comma separated")
  parser.add_argument("--dtypes", default="bfloat16", help="timed dtypes, comma separated")
  parser.add_argument("--iters", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  args = parser.parse_args(argv)

  backend = jax.default_backend()
  env = common.environment()
  print(f"attention on {env['device_kind']} ({backend}), jax {env['jax']}")
  parse = lambda text: [int(n) for n in text.split(",") if n]

  if args.memory_scaling:
    rows = _memory_scaling(parse(args.lengths or "128,256,512,1024"), interpret=backend != "gpu")
    print(common.format_table(rows, [("implementation", "impl"), ("interpret", "interp"), ("T", "T"),
                                     ("temp_mib", "temp MiB"), ("temp_bytes_per_token", "bytes/token")]))
    if args.out:
      common.write_json(args.out, {"benchmark": "attention_memory_scaling", "environment": env, "rows": rows})
    return 0

  checks = []
  if args.device_check:
    for implementation in _IMPLEMENTATIONS:
      interpret = registry.native_backend(implementation) not in (None, backend) and implementation != "cudnn"
      for case in _check_cases():
        for dtype_name in ("float32", "bfloat16"):
          checks.append(_check(implementation, case, dtype_name, interpret))
    print("\nCorrectness against the XLA reference (max error / max |reference|):")
    print(common.format_table(checks, [
        ("implementation", "impl"), ("interpret", "interp"), ("case", "case"), ("dtype", "dtype"),
        ("status", "status"), ("err_out", "out"), ("err_lse", "lse"), ("err_dq", "dq"), ("err_dk", "dk"),
        ("err_dv", "dv"), ("reason", "reason"),
    ]))

  lengths = parse(args.lengths) if args.lengths else ([4096, 16384, 32768] if backend == "gpu" else [256, 1024])
  timings = []
  for t in lengths:
    for kv in (_QUERY_HEADS // 8, _QUERY_HEADS):
      for dtype_name in [d for d in args.dtypes.split(",") if d]:
        for implementation in _IMPLEMENTATIONS:
          native = registry.native_backend(implementation) in (None, backend)
          if not native:
            continue
          # The reference's [B, H, T, S] scores pass 100 GiB past 16k tokens: not attempted there.
          if implementation == "xla" and backend == "gpu" and t > 8192:
            continue
          timings.extend(_time(implementation, t, kv, dtype_name, args.iters, args.warmup))
  print(f"\nTimings (median of {args.iters} runs after {args.warmup} warm-up):")
  print(common.format_table(timings, [
      ("implementation", "impl"), ("B", "B"), ("T", "T"), ("KV", "KV"), ("dtype", "dtype"), ("mode", "mode"),
      ("status", "status"), ("median_ms", "median ms"), ("tflops", "TFLOP/s"), ("temp_mib", "temp MiB"),
  ]))
  failures = [c for c in checks if c["status"] == "FAIL"]
  for failure in failures:
    print(f"CHECK FAILED: {failure}")
  if args.out:
    common.write_json(args.out, {"benchmark": "attention", "environment": env, "tolerance": _TOLERANCE,
                                 "checks": checks, "timings": timings})
    print(f"\nwrote {args.out}")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
