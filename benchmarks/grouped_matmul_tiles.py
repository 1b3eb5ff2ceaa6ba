"""Tile-shape sweep for the grouped-matmul kernel: which (block_m, block_n, block_k, warps, stages)
serves a shape and scheme best, and how much of a call is the XLA-side schedule.

  python benchmarks/grouped_matmul_tiles.py --out /tmp/gmm_tiles.json        # on a GPU

For each case (DeepSeek-V2-Lite expert shape: decode 384 rows, prefill 49152 Zipf rows) and
each candidate config: median ms of the whole op (schedule + launch) over 20 runs after
warm-up, weight GB/s and TFLOP/s. Also the time of building the tile schedule alone.
Results feed `GroupedMatmulConfig.heuristic`.
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
from benchmarks.grouped_matmul import even_group_sizes, zipf_group_sizes
from jaxlab.ops import GroupedMatmulConfig, TileShape, grouped_matmul
from jaxlab.ops.grouped_matmul import schedule as schedule_lib
from jaxlab.quant import rtn

G, K, N = 64, 2048, 2816

# (case, scheme, rows, candidate configs as (block_m, block_n, block_k, warps, stages)).
_CASES = (
    ("decode", "w4a16_g128_asym", 384, ((16, 128, 128, 4, 4), (16, 64, 128, 4, 4), (16, 256, 128, 4, 3),
                                        (16, 128, 128, 4, 2), (16, 128, 128, 8, 3), (16, 64, 128, 2, 4))),
    ("decode", "bf16", 384, ((16, 128, 128, 4, 4), (16, 64, 128, 4, 4), (16, 128, 64, 4, 3),
                             (16, 64, 256, 4, 3), (16, 128, 128, 4, 2))),
    ("prefill", "bf16", 49152, ((128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (256, 128, 64, 8, 3),
                                (128, 128, 64, 4, 4), (128, 128, 32, 4, 4))),
)


def _config(scheme, bm, bn, bk, warps, stages):
  tile = TileShape(bm, bn, bk)
  return GroupedMatmulConfig(tiles=((scheme, tile),), default_tile=tile, num_warps=warps, num_stages=stages)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out")
  parser.add_argument("--iters", type=int, default=20)
  args = parser.parse_args(argv)
  rows_out = []
  key = jax.random.key(0)
  w = (jax.random.normal(key, (G, K, N), jnp.float32) / K**0.5).astype(jnp.bfloat16)
  for case, scheme, num_rows, candidates in _CASES:
    sizes_np = zipf_group_sizes(num_rows, G) if case == "prefill" else even_group_sizes(num_rows, G)
    sizes = jnp.asarray(sizes_np, jnp.int32)
    lhs = jax.random.normal(jax.random.key(1), (num_rows, K), jnp.bfloat16)
    experts = rtn.quantize_experts(w, scheme)
    flops = 2.0 * num_rows * K * N
    tiling = schedule_lib.ExpertTiling((0,) * G, tuple(range(G)), (candidates[0][0],) * G, (candidates[0][1],) * G)
    build = jax.jit(lambda s: schedule_lib.build_schedule(s, 0, num_rows, N, tiling))
    timing = common.time_call(build, sizes, iters=args.iters)
    rows_out.append({"case": case, "scheme": scheme, "config": "schedule only", **timing})
    for bm, bn, bk, warps, stages in candidates:
      config = _config(scheme, bm, bn, bk, warps, stages)
      fn = jax.jit(lambda l, e, s, config=config: grouped_matmul(l, e, s, implementation="pallas_triton",
                                                                 config=config))
      row = {"case": case, "scheme": scheme, "config": f"{bm}x{bn}x{bk} w{warps} s{stages}"}
      try:
        timing = common.time_call(fn, lhs, experts, sizes, iters=args.iters)
      except Exception as e:  # A config Triton rejects is a result too.
        rows_out.append({**row, "status": f"error: {type(e).__name__}: {str(e)[:120]}"})
        continue
      ms = timing["median_ms"]
      rows_out.append({**row, "status": "ok", **timing, "tflop_per_s": flops / ms / 1e9,
                       "weight_gb_per_s": experts.num_bytes / ms / 1e6})
    print(common.format_table([r for r in rows_out if r["case"] == case and r["scheme"] == scheme], [
        ("case", "case"), ("scheme", "scheme"), ("config", "config"), ("status", "status"),
        ("median_ms", "median ms"), ("tflop_per_s", "TFLOP/s"), ("weight_gb_per_s", "weight GB/s")]), flush=True)
  if args.out:
    common.write_json(args.out, {"benchmark": "grouped_matmul_tiles", "environment": common.environment(),
                                 "rows": rows_out})
  return 0


if __name__ == "__main__":
  sys.exit(main())
