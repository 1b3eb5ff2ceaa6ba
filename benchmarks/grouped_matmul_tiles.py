"""Tile-shape sweep for the grouped-matmul kernel: which (block_m, block_n, block_k, warps, stages,
group_m) serves a shape and scheme best, and how much of a call is the XLA-side schedule.

  python benchmarks/grouped_matmul_tiles.py --out /tmp/gmm_tiles.json        # on a GPU
  python benchmarks/grouped_matmul_tiles.py --cases decode_w4a16 --iters 5   # one case
  python benchmarks/grouped_matmul_tiles.py --cpu-small --iters 1             # plumbing, interpreted

Cases use the DeepSeek-V2-Lite expert shape (G=64, K=2048, N=2816; bench/anchors.md): decode
(384 rows, 6 per expert) and prefill (49,152 Zipf-routed rows). For each case it times, in the
same run:
  - the tile schedule alone (XLA ops built from group_sizes);
  - `jax.lax.ragged_dot` on bfloat16 operands (the anchors' baseline), weights dequantized
    first for quantized schemes;
  - the op with the default heuristic, then every candidate config.
Each row has the median wall time of single calls (`common.time_call`, the anchors' method) and
the back-to-back device time per call (`common.time_back_to_back`), TFLOP/s and weight GB/s from
the wall time, and the speedup over ragged_dot measured the same way. The fastest candidate per
case (by wall time) is marked; the results feed `GroupedMatmulConfig.heuristic`. A candidate
Triton rejects is recorded with its error; every candidate's output is checked against the
heuristic config's before it is timed.

Candidates also choose how weight-only tiles run (`GroupedMatmulConfig`): "bc" unpacks codes by
OR-ing them into a float's mantissa instead of converting them, "wf" makes the unpacked weights
the dot's first operand (out^T = W^T a^T).

`--cpu-small` runs every case at a small shape (G=8, K=256, N=256, a tenth of the rows) in the
Pallas interpreter: a check of the script and of every candidate's numbers, not a timing.
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp

from benchmarks import common
from benchmarks.grouped_matmul import even_group_sizes, expert_schemes, zipf_group_sizes
from jaxlab.ops import GroupedMatmulConfig, TileShape, grouped_matmul
from jaxlab.quant import rtn
from jaxlab.quant_formats import dequantize_experts
from kernels_pallas.grouped_matmul import schedule as schedule_lib

G, K, N = 64, 2048, 2816
_SMALL_G, _SMALL_K, _SMALL_N = 8, 256, 256

# Candidate configs: (block_m, block_n, block_k, warps, stages, group_m, bitcast_unpack, weights_first).
_DECODE_W4 = ((16, 256, 128, 4, 3, 8, False, False), (16, 256, 128, 4, 3, 8, True, False),
              (16, 256, 128, 4, 3, 8, True, True), (16, 128, 128, 4, 3, 8, True, True),
              (16, 128, 128, 4, 4, 8, True, False), (16, 256, 128, 8, 3, 8, True, True),
              (16, 64, 128, 4, 4, 8, True, True), (16, 256, 128, 4, 4, 8, True, True),
              (16, 512, 128, 8, 3, 8, True, True), (16, 128, 128, 2, 4, 8, True, True))
_DECODE_MIXED = ((16, 128, 128, 4, 4, 8, False, False), (16, 128, 128, 4, 4, 8, True, True),
                 (16, 256, 128, 4, 3, 8, True, True))
_DECODE_BF16 = ((16, 128, 128, 4, 4, 8, True, False), (16, 64, 128, 4, 4, 8, True, False))
_PREFILL_BF16 = ((128, 256, 64, 8, 4, 8, True, False),)
_PREFILL_W4 = ((128, 64, 128, 4, 3, 8, False, False), (128, 64, 128, 4, 3, 8, True, False),
               (128, 64, 128, 4, 3, 8, True, True), (128, 128, 128, 8, 3, 8, True, True),
               (64, 128, 128, 4, 3, 8, True, True), (128, 128, 128, 8, 3, 8, True, False))

# name -> (scheme, routing, rows, candidates).
CASES = {
    "decode_w4a16": ("w4a16_g128_asym", "even", 384, _DECODE_W4),
    "decode_mixed": ("mixed", "even", 384, _DECODE_MIXED),
    "decode_bf16": ("bf16", "even", 384, _DECODE_BF16),
    "prefill_w4a16": ("w4a16_g128_asym", "zipf", 49152, _PREFILL_W4),
    "prefill_bf16": ("bf16", "zipf", 49152, _PREFILL_BF16),
}


def config_of(candidate) -> GroupedMatmulConfig:
  """One config for every scheme of a launch (quantized schemes keep their 128-row K block)."""
  bm, bn, bk, warps, stages, group_m, bitcast_unpack, weights_first = candidate
  return GroupedMatmulConfig(default_tile=TileShape(bm, bn, bk), num_warps=warps, num_stages=stages, group_m=group_m,
                             bitcast_unpack=bitcast_unpack, weights_first=weights_first)


def _name(candidate) -> str:
  bm, bn, bk, warps, stages, group_m, bitcast_unpack, weights_first = candidate
  flags = "".join(f" {flag}" for flag, on in (("bc", bitcast_unpack), ("wf", weights_first)) if on)
  return f"{bm}x{bn}x{bk} w{warps} s{stages} gm{group_m}{flags}"


def _timed_row(fn, args, flops, weight_bytes, iters) -> dict:
  wall = common.time_call(fn, *args, iters=iters)
  calls = max(10, min(200, int(200 / max(wall["median_ms"], 1e-3))))
  row = {**wall, **common.time_back_to_back(fn, *args, calls=calls, repeats=3)}
  ms = row["median_ms"]
  return {**row, "tflop_per_s": flops / ms / 1e9, "weight_gb_per_s": weight_bytes / ms / 1e6}


def dispatch_floor(iters: int) -> dict:
  """Wall and back-to-back time of a jitted `x + 1` on 16 floats: what any call costs here."""
  fn = jax.jit(lambda x: x + 1)
  x = jnp.zeros((16,), jnp.float32)
  return {"case": "floor", "config": "jitted x + 1", "status": "ok", **common.time_call(fn, x, iters=iters),
          **common.time_back_to_back(fn, x, calls=200, repeats=3)}


def sweep_case(name: str, iters: int, small: bool = False) -> list[dict]:
  scheme, routing, num_rows, candidates = CASES[name]
  g, k, n = (_SMALL_G, _SMALL_K, _SMALL_N) if small else (G, K, N)
  num_rows = num_rows // 10 if small else num_rows
  interpret = small
  sizes_np = zipf_group_sizes(num_rows, g) if routing == "zipf" else even_group_sizes(num_rows, g)
  sizes = jnp.asarray(sizes_np, jnp.int32)
  lhs = jax.random.normal(jax.random.key(1), (num_rows, k), jnp.bfloat16)
  w = (jax.random.normal(jax.random.key(0), (g, k, n), jnp.float32) / k**0.5).astype(jnp.bfloat16)
  experts = rtn.quantize_experts(w, expert_schemes(scheme, g))
  del w
  flops = 2.0 * num_rows * k * n
  base = {"case": name, "scheme": scheme, "rows": num_rows}
  rows = []

  bm, bn = candidates[0][0], candidates[0][1]
  tiling = schedule_lib.ExpertTiling((0,) * g, tuple(range(g)), (bm,) * g, (bn,) * g)
  build = jax.jit(lambda s: schedule_lib.build_schedule(s, 0, num_rows, n, tiling))
  rows.append({**base, "config": "schedule only", "status": "ok", **common.time_call(build, sizes, iters=iters),
               **common.time_back_to_back(build, sizes, calls=100, repeats=3)})

  ragged = jax.jit(lambda l, e, s: jax.lax.ragged_dot(l, dequantize_experts(e, jnp.bfloat16), s))
  baseline = {**base, "config": "ragged_dot bf16", "status": "ok",
              **_timed_row(ragged, (lhs, experts, sizes), flops, experts.num_bytes, iters)}
  rows.append(baseline)

  heuristic = GroupedMatmulConfig.heuristic(experts.schemes, num_rows, g)
  reference = None
  for label, config in [("heuristic", heuristic)] + [(_name(c), config_of(c)) for c in candidates]:
    row = {**base, "config": label}
    fn = jax.jit(lambda l, e, s, config=config: grouped_matmul(l, e, s, implementation="pallas_triton",
                                                               config=config, interpret=interpret))
    try:
      out = jax.block_until_ready(fn(lhs, experts, sizes))
    except Exception as e:  # A config Triton rejects is a result too.
      rows.append({**row, "status": f"error: {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}"})
      continue
    if reference is None:
      reference, error = out, 0.0
    else:
      error = common.max_relative_error(out, reference)
    del out
    if error > 1e-2:
      rows.append({**row, "status": "FAIL", "err_vs_heuristic": error})
      continue
    timed = _timed_row(fn, (lhs, experts, sizes), flops, experts.num_bytes, iters)
    rows.append({**row, "status": "ok", "err_vs_heuristic": error, **timed,
                 "speedup_vs_ragged_dot": baseline["median_ms"] / timed["median_ms"],
                 "b2b_speedup_vs_ragged_dot": baseline["back_to_back_ms"] / timed["back_to_back_ms"]})
  kernel_rows = [r for r in rows[2:] if r["status"] == "ok"]
  if kernel_rows:
    min(kernel_rows, key=lambda r: r["median_ms"])["fastest"] = True
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out")
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
  parser.add_argument("--cpu-small", action="store_true", help="small shapes in the Pallas interpreter")
  args = parser.parse_args(argv)
  names = [c for c in args.cases.split(",") if c]
  unknown = [c for c in names if c not in CASES]
  if unknown or not names:
    parser.error(f"unknown case(s) {unknown or args.cases!r}; choose from {', '.join(CASES)}")
  env = common.environment()
  print(f"grouped_matmul tile sweep on {env['device_kind']} ({env['backend']}), jax {env['jax']}")
  rows = [dispatch_floor(args.iters)]
  print(common.format_table(rows, [("config", "config"), ("median_ms", "wall ms"), ("back_to_back_ms", "b2b ms")]))
  for name in names:
    case_rows = sweep_case(name, args.iters, small=args.cpu_small)
    rows += case_rows
    print(common.format_table(case_rows, [
        ("case", "case"), ("config", "config"), ("status", "status"), ("median_ms", "wall ms"),
        ("back_to_back_ms", "b2b ms"), ("tflop_per_s", "TFLOP/s"), ("weight_gb_per_s", "weight GB/s"),
        ("speedup_vs_ragged_dot", "x rd16"), ("b2b_speedup_vs_ragged_dot", "x rd16 b2b"), ("fastest", "best")]),
        flush=True)
    if args.out:  # Written after every case, so a cut-short run keeps what it measured.
      shape = dict(zip("GKN", (_SMALL_G, _SMALL_K, _SMALL_N) if args.cpu_small else (G, K, N)))
      common.write_json(args.out, {"benchmark": "grouped_matmul_tiles", "environment": env, "shape": shape,
                                   "interpret": args.cpu_small, "rows": rows})
  return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
  sys.exit(main())
