"""Grouped-matmul benchmark for mixture-of-experts layers: every implementation side by side, per scheme.

  python benchmarks/grouped_matmul.py --out /tmp/grouped_matmul.json
  python benchmarks/grouped_matmul.py --device-check --out /tmp/grouped_matmul.json
  python benchmarks/grouped_matmul.py --shapes deepseek_decode --schemes bf16,mixed \
      --implementations xla,pallas_triton

Shapes (bench/anchors.md, "Grouped matmul for mixture-of-experts layers"; lhs bfloat16, rows sorted
by expert):
  deepseek_prefill  G=64, K=2048, N=2816 (gate and up fused, 2 x 1408), 8192 tokens x top-6 = 49152
                    rows; group sizes Zipf-skewed, p_e proportional to 1/e (e = 1..64), rounded by
                    largest remainder (ties to the lower expert) so they sum to exactly 49152.
  deepseek_decode   same experts, 64 tokens x top-6 = 384 rows, 6 per expert.
  mixtral_prefill   G=8, K=4096, N=28672 (2 x 14336), 8192 tokens x top-2 = 16384 rows, evenly spread
                    (2048 per expert): the balanced routing a load-balanced model aims at.
Off a GPU the same names stand for scaled-down shapes (same G and routing, small K, N and rows),
and only the XLA-based implementations are timed; `--cpu-small` picks those shapes on a GPU too.

Schemes: bf16, w8a16_g-1_asym (8-bit weights, one scale and zero per output channel),
w4a16_g128_asym, w8a8_g-1_sym, w4a4_g-1_sym, and "mixed": expert e gets scheme e mod 4 of
(w4a16_g128_asym, w8a16_g-1_asym, w8a8_g-1_sym, w4a4_g-1_sym), a quarter of the experts each.
Round-robin rather than contiguous quarters, so that under Zipf routing no one scheme owns all the
heavily loaded experts. Weights are random normal / sqrt(K) in bfloat16, quantized by round-to-
nearest (`jaxlab.quant.rtn`); bf16 experts stay bfloat16.

Implementations per (shape, scheme):
  xla                          `jaxlab.ops.grouped_matmul` reference: dequantize to float32,
                               fake-quantize wXaY activations, one float32 `ragged_dot` (bf16
                               experts: bfloat16 operands with float32 accumulation, which is
                               the same math: a product of two bfloat16 values is exact in float32).
  pallas_triton                the op's Pallas (Triton) kernel, default tile heuristic.
  xla_dequant_ragged_dot_bf16  dequantize the weights to bfloat16 inside the timed function, then
                               `jax.lax.ragged_dot` on bfloat16 operands (for bf16: plain ragged_dot;
                               the anchor's XLA rows). Activations are never quantized here, so for
                               wXa8/wXa4 it is a cost baseline, not the same numbers.
  tokamax                      `tokamax.ragged_dot` (Mosaic GPU), bf16 scheme only, when importable;
                               otherwise one row with status "unavailable" and the import error.

`--untimed xla` runs the reference once per (shape, scheme) for the error checks and leaves it
untimed (its "x xla" column is then empty): at the prefill shapes it takes seconds per call.

Metrics: median ms of 20 single calls after warm-up, each waited on (`common.time_call`): the
figure the anchors report. Calls under 50 ms are also timed back to back ("b2b ms",
`common.time_back_to_back`: many calls dispatched, one wait), the device time per call without
the host's dispatch and synchronisation, which dominate decode-sized calls. Fewer (never under 5) where 20
runs would take more than `--max-seconds`: XLA on NVIDIA GPUs rewrites a float32 ragged_dot into
one dense dot over all groups (G times the useful FLOPs), so the xla reference takes about a second
per run at the prefill shapes; each row records its `iters`. TFLOP/s counts useful work only:
2 * rows * K * N / time, rows being the routed rows. Weight GB/s = bytes of the weights as passed
(packed codes, scales and zeros: `ExpertWeights.num_bytes`; bfloat16 for bf16) / time. "x xla" =
xla time / this time; "x rd16" = xla_dequant_ragged_dot_bf16 time / this time (the bench/anchors.md
baseline: the targets ask for >= 20x over bf16 `ragged_dot`). The mixed row also gives the slowest of the four uniform schemes it
contains, for the same implementation and shape, and whether mixed <= that time (target: a mixed
assignment is never slower than the slowest uniform scheme it contains). Before timing, every
output at the timed shape is compared with the xla output (err column; FAIL above 2e-2; "info"
where the bfloat16 baselines skip activation quantization and so compute other numbers).

`--device-check` runs a correctness suite first: for each scheme (and mixed), pallas_triton
against xla at a small odd shape (100 rows, K=256, N=96, G=6, with an empty group, a one-row
group and 7 rows that belong to no group) in float32 and bfloat16, and at the (full or small)
deepseek_decode shape in bfloat16; plus forward and gradients (lhs and rhs, float weights) of
pallas_triton against xla's autodiff at the small shape. Tolerance: max |error| / max |reference|
<= 1e-4 for float32 lhs, 2e-2 for bfloat16. Off a GPU, pallas_triton runs in the Pallas
interpreter there. Exit status 1 if any check, here or at a timed shape, fails (each is printed).

`--cost-table OUT.json` measures instead the per-tile cost table of MxMoE's runtime model
(`jaxlab.mxmoe.cost`) on the current device and writes it:

  python benchmarks/grouped_matmul.py --cost-table /tmp/cost_h100.json

For every scheme (--schemes; "mixed" is skipped), rows per expert m (--cost-rows; the defaults hit
the heuristic's 16-, 64- and 128-row tiles) and K (--cost-ks), it times one launch of G experts
of [K, N] with m rows each (N = --cost-n) for every G in --cost-groups (default 8..64), then fits
launch time = a + b * tiles by least squares: b, the incremental cost of one tile (launch
overhead lands in a), is the entry's per_tile_s, in seconds of the whole device. Where noise
makes b <= 0 the smallest time / tiles is kept instead ("method": "ratio"). Every entry keeps its
samples. The table is a GPU artifact: the default --implementation pallas_triton refuses to run
where the kernel cannot run natively. `--implementation xla` times the XLA reference instead
(anywhere, CPU included); the JSON records that, and a cost model built from it says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import sys
import time

if __package__ in (None, ""):
  # Run as a script from a checkout: make `jaxlab`, `kernels_pallas`, `benchmarks` importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab import ops
from jaxlab.ops import registry
from jaxlab.quant import rtn
from jaxlab.quant_formats import PACK_BLOCK, dequantize_experts, parse_scheme
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig

SCHEMES = ("bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w8a8_g-1_sym", "w4a4_g-1_sym", "mixed")
# Expert e of the mixed assignment uses MIXED_SCHEMES[e % 4].
MIXED_SCHEMES = ("w4a16_g128_asym", "w8a16_g-1_asym", "w8a8_g-1_sym", "w4a4_g-1_sym")
IMPLEMENTATIONS = ("xla", "pallas_triton", "xla_dequant_ragged_dot_bf16", "tokamax")

# Max error relative to the largest reference value, by lhs dtype.
_TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Check shape: N not a multiple of any tile, an empty group, a one-row group, 7 unrouted rows.
_CHECK_ROWS, _CHECK_K, _CHECK_N = 100, 256, 96
_CHECK_SIZES = (23, 0, 1, 40, 17, 12)

# Fewest timed runs of a measurement, however slow one run is.
_MIN_ITERS = 5
# Calls slower than this are not also timed back to back (dispatch is negligible there).
_BACK_TO_BACK_MAX_RUN_S = 0.05


@dataclasses.dataclass(frozen=True)
class Shape:
  """One timed problem: G experts of [K, N], `num_rows` routed rows spread by `routing`."""

  name: str
  num_groups: int
  k: int
  n: int
  num_rows: int
  routing: str  # "zipf" (p_e proportional to 1/e) or "even".

  def group_sizes(self) -> np.ndarray:
    if self.routing == "zipf":
      return zipf_group_sizes(self.num_rows, self.num_groups)
    return even_group_sizes(self.num_rows, self.num_groups)

  def describe(self) -> str:
    return f"G={self.num_groups} K={self.k} N={self.n} rows={self.num_rows} ({self.routing})"


_GPU_SHAPES = (
    Shape("deepseek_prefill", 64, 2048, 2816, 49152, "zipf"),
    Shape("deepseek_decode", 64, 2048, 2816, 384, "even"),
    Shape("mixtral_prefill", 8, 4096, 2 * 14336, 16384, "even"),
)
# Same names, G and routing; sized so that XLA's CPU ragged_dot takes tens of milliseconds.
_CPU_SHAPES = (
    Shape("deepseek_prefill", 64, 128, 128, 512, "zipf"),
    Shape("deepseek_decode", 64, 128, 128, 128, "even"),
    Shape("mixtral_prefill", 8, 256, 512, 512, "even"),
)
SHAPE_NAMES = tuple(s.name for s in _GPU_SHAPES)


def zipf_group_sizes(num_rows: int, num_groups: int) -> np.ndarray:
  """Rows per expert with p_e proportional to 1/e, largest-remainder rounded to sum to `num_rows`."""
  p = 1.0 / np.arange(1, num_groups + 1)
  quota = num_rows * p / p.sum()
  sizes = np.floor(quota).astype(np.int64)
  # Stable sort: equal remainders go to the lower expert id, so the split is deterministic.
  order = np.argsort(-(quota - sizes), kind="stable")
  sizes[order[: num_rows - int(sizes.sum())]] += 1
  return sizes


def even_group_sizes(num_rows: int, num_groups: int) -> np.ndarray:
  """Rows per expert as equal as possible; the first `num_rows % G` experts get one more."""
  base, extra = divmod(num_rows, num_groups)
  return np.asarray([base + (e < extra) for e in range(num_groups)], np.int64)


def expert_schemes(scheme: str, num_groups: int) -> list[str]:
  """Scheme name of every expert: one scheme for all, or the round-robin mixed assignment."""
  if scheme == "mixed":
    return [MIXED_SCHEMES[e % len(MIXED_SCHEMES)] for e in range(num_groups)]
  return [scheme] * num_groups


def _inputs(num_rows, num_groups, k, n, dtype, seed):
  """lhs [M, K] ~ N(0, 1) and float weights [G, K, N] ~ N(0, 1/K), both in `dtype`."""
  k_lhs, k_w = jax.random.split(jax.random.key(seed))
  lhs_mk = jax.random.normal(k_lhs, (num_rows, k), jnp.float32).astype(dtype)
  w_gkn = (jax.random.normal(k_w, (num_groups, k, n), jnp.float32) / np.sqrt(k)).astype(dtype)
  return lhs_mk, w_gkn


def _op_fn(implementation: str, interpret: bool = False):
  """f(lhs, experts, sizes) for one implementation (not jitted)."""
  if implementation in ("xla", "pallas_triton"):
    return lambda lhs, ew, sizes: ops.grouped_matmul(lhs, ew, sizes, implementation=implementation,
                                                      interpret=interpret)
  if implementation == "xla_dequant_ragged_dot_bf16":
    return lambda lhs, ew, sizes: jax.lax.ragged_dot(
        lhs.astype(jnp.bfloat16), dequantize_experts(ew, jnp.bfloat16), sizes)
  if implementation == "tokamax":
    tokamax = importlib.import_module("tokamax")
    return lambda lhs, ew, sizes: tokamax.ragged_dot(
        lhs.astype(jnp.bfloat16), dequantize_experts(ew, jnp.bfloat16), sizes, implementation="mosaic")
  raise ValueError(f"unknown implementation {implementation!r}; choose from {IMPLEMENTATIONS}")


def _short(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


# ------------------------------------------------------------------------------------ checks


def _check_forward(scheme, num_rows, k, n, sizes, dtype_name, interpret, label, seed) -> dict:
  """pallas_triton against xla for one scheme at one shape; error relative to max |xla|."""
  row = {"check": "forward", "shape": label, "scheme": scheme, "dtype": dtype_name, "interpret": interpret}
  try:
    num_groups = len(sizes)
    lhs, w = _inputs(num_rows, num_groups, k, n, _DTYPES[dtype_name], seed)
    experts = rtn.quantize_experts(w, expert_schemes(scheme, num_groups))
    sizes_g = jnp.asarray(sizes, jnp.int32)
    want = jax.jit(_op_fn("xla"))(lhs, experts, sizes_g)
    got = jax.jit(_op_fn("pallas_triton", interpret))(lhs, experts, sizes_g)
    error = common.max_relative_error(got, want)
  except Exception as e:  # A crash is a failed check, reported with the rest.
    return {**row, "status": "ERROR", "reason": _short(e)}
  passed = error <= _TOLERANCE[dtype_name]
  return {**row, "status": "pass" if passed else "FAIL", "err_out": error}


def _check_gradients(dtype_name, interpret) -> dict:
  """Forward and both gradients of pallas_triton (float weights) against xla's autodiff."""
  row = {"check": "gradients", "shape": "small", "scheme": "float weights", "dtype": dtype_name,
         "interpret": interpret}
  try:
    lhs, w = _inputs(_CHECK_ROWS, len(_CHECK_SIZES), _CHECK_K, _CHECK_N, _DTYPES[dtype_name], seed=3)
    sizes_g = jnp.asarray(_CHECK_SIZES, jnp.int32)
    d_out = jax.random.normal(jax.random.key(4), (_CHECK_ROWS, _CHECK_N), jnp.float32).astype(lhs.dtype)

    def forward_and_grads(implementation, run_interpret):
      def run(lhs, w, d_out):
        out, vjp = jax.vjp(lambda a, b: ops.grouped_matmul(a, b, sizes_g, implementation=implementation,
                                                           interpret=run_interpret), lhs, w)
        return (out, *vjp(d_out))

      return jax.jit(run)(lhs, w, d_out)

    got = forward_and_grads("pallas_triton", interpret)
    want = forward_and_grads("xla", False)
    errors = {name: common.max_relative_error(g, v) for name, g, v in zip(("out", "dlhs", "drhs"), got, want)}
  except Exception as e:
    return {**row, "status": "ERROR", "reason": _short(e)}
  passed = max(errors.values()) <= _TOLERANCE[dtype_name]
  return {**row, "status": "pass" if passed else "FAIL", **{f"err_{k}": v for k, v in errors.items()}}


def _check_suite(schemes, decode: Shape, interpret: bool) -> list[dict]:
  rows = []
  for index, scheme in enumerate(schemes):
    for dtype_name in ("float32", "bfloat16"):
      rows.append(_check_forward(scheme, _CHECK_ROWS, _CHECK_K, _CHECK_N, _CHECK_SIZES, dtype_name,
                                 interpret, "small", seed=10 + index))
    rows.append(_check_forward(scheme, decode.num_rows, decode.k, decode.n, tuple(decode.group_sizes()),
                               "bfloat16", interpret, decode.name, seed=20 + index))
  for dtype_name in ("float32", "bfloat16"):
    rows.append(_check_gradients(dtype_name, interpret))
  return rows


# ------------------------------------------------------------------------------------ timing


@jax.jit
def _relative_error_on_device(actual, expected):
  """max |actual - expected| / max |expected| in float32, without copying big outputs to the host."""
  actual, expected = actual.astype(jnp.float32), expected.astype(jnp.float32)
  scale = jnp.max(jnp.abs(expected))
  diff = jnp.max(jnp.abs(actual - expected))
  return jnp.where(scale > 0, diff / scale, diff)


def _comparable(implementation, scheme) -> bool:
  """Whether this implementation computes the same numbers as xla for the scheme (up to rounding)."""
  if implementation in ("xla", "pallas_triton"):
    return True
  # The bfloat16 baselines leave activations unquantized.
  return not any(parse_scheme(s).quantizes_activations for s in expert_schemes(scheme, len(MIXED_SCHEMES)))


def _time_shape(shape: Shape, schemes, implementations, unavailable, iters, warmup, max_seconds,
                untimed=()) -> list[dict]:
  """Rows for every (scheme, implementation) at one shape; skips those in `unavailable`; runs those
  in `untimed` once, for the error checks, without timing them."""
  sizes_g = jnp.asarray(shape.group_sizes(), jnp.int32)
  routed_rows = int(shape.group_sizes().sum())
  flops = 2.0 * routed_rows * shape.k * shape.n
  lhs, w = _inputs(shape.num_rows, shape.num_groups, shape.k, shape.n, jnp.bfloat16, seed=0)
  rows = []
  for scheme in schemes:
    experts = rtn.quantize_experts(w, expert_schemes(scheme, shape.num_groups))
    weight_bytes = experts.num_bytes
    reference_out, xla_ms = None, None
    for implementation in implementations:
      if implementation in unavailable or (implementation == "tokamax" and scheme != "bf16"):
        continue
      row = {"shape": shape.name, "scheme": scheme, "implementation": implementation,
             "weight_bytes": weight_bytes, "routed_rows": routed_rows}
      fn = jax.jit(_op_fn(implementation))
      try:
        out = jax.block_until_ready(fn(lhs, experts, sizes_g))
      except Exception as e:
        # An external kernel that cannot run here is information; the op failing is a failure.
        status = "ERROR" if implementation in ("xla", "pallas_triton") else "error"
        rows.append({**row, "status": status, "reason": _short(e)})
        continue
      if implementation == "xla":
        reference_out, error, status = out, None, "reference"
      elif reference_out is None:
        error, status = None, "unchecked"
      else:
        error = float(_relative_error_on_device(out, reference_out))
        if _comparable(implementation, scheme):
          status = "pass" if error <= _TOLERANCE["bfloat16"] else "FAIL"
        else:
          status = "info"
      del out
      if implementation in untimed:
        rows.append({**row, "status": status, "err_out": error, "timing": "skipped (--untimed)"})
        continue
      # One timed warm run sizes the measurement; it and time_call's first call count as warm-up.
      run_start = time.perf_counter()
      jax.block_until_ready(fn(lhs, experts, sizes_g))
      run_s = time.perf_counter() - run_start
      affordable = min(iters, max(_MIN_ITERS, int(max_seconds / max(run_s, 1e-9))))
      timing = common.time_call(fn, lhs, experts, sizes_g, warmup=max(0, warmup - 2), iters=affordable)
      if run_s < _BACK_TO_BACK_MAX_RUN_S:
        calls = max(10, min(200, int(0.2 / max(run_s, 1e-6))))
        timing.update(common.time_back_to_back(fn, lhs, experts, sizes_g, calls=calls, repeats=5))
      median_ms = timing["median_ms"]
      if implementation == "xla":
        xla_ms = median_ms
      rows.append({
          **row, "status": status, "err_out": error, **timing,
          "tflop_per_s": flops / (median_ms * 1e-3) / 1e12,
          "weight_gb_per_s": weight_bytes / (median_ms * 1e-3) / 1e9,
          "ratio_to_xla": xla_ms / median_ms if xla_ms else None,
      })
    del experts, reference_out
  _add_baseline_ratio(rows)
  _compare_mixed(rows)
  return rows


def _add_baseline_ratio(rows) -> None:
  """Adds `ratio_to_ragged_dot_bf16` (baseline time / this time) within each (shape, scheme)."""
  baseline = {(r["shape"], r["scheme"]): r["median_ms"] for r in rows
              if r["implementation"] == "xla_dequant_ragged_dot_bf16" and "median_ms" in r}
  for row in rows:
    base_ms = baseline.get((row["shape"], row["scheme"]))
    if base_ms and "median_ms" in row:
      row["ratio_to_ragged_dot_bf16"] = base_ms / row["median_ms"]


def _compare_mixed(rows) -> None:
  """Adds to each mixed row the slowest uniform scheme it contains (same shape and implementation)."""
  for mixed in (r for r in rows if r["scheme"] == "mixed" and "median_ms" in r):
    uniform = [r for r in rows if r["scheme"] in MIXED_SCHEMES and "median_ms" in r
               and (r["shape"], r["implementation"]) == (mixed["shape"], mixed["implementation"])]
    if not uniform:
      continue
    slowest = max(uniform, key=lambda r: r["median_ms"])
    mixed.update({
        "slowest_uniform_scheme": slowest["scheme"],
        "slowest_uniform_ms": slowest["median_ms"],
        "uniform_schemes_compared": sorted(r["scheme"] for r in uniform),
        "mixed_le_slowest": mixed["median_ms"] <= slowest["median_ms"],
    })


def _availability(implementations) -> dict[str, str]:
  """Implementation -> why it cannot be timed natively here."""
  unavailable = {}
  if "pallas_triton" in implementations:
    # Small concrete arrays: resolve traces abstractly, runs nothing.
    probe = (jnp.zeros((16, 128), jnp.bfloat16), jnp.zeros((2, 128, 128), jnp.bfloat16),
             jnp.asarray([8, 8], jnp.int32))
    try:
      ops.resolve_grouped_matmul(*probe, implementation="pallas_triton")
    except registry.NoImplementationError as e:
      unavailable["pallas_triton"] = e.failures[-1][1]
  if "tokamax" in implementations:
    try:
      importlib.import_module("tokamax")
    except Exception as e:  # ImportError, or a broken install failing on import.
      unavailable["tokamax"] = _short(e)
  return unavailable


# ------------------------------------------------------------------------------------ cost table

COST_TABLE_IMPLEMENTATIONS = ("pallas_triton", "xla")
# Rows per expert hitting the heuristic's 16-, 64- and 128-row tiles.
_COST_ROWS = (8, 48, 256)
_COST_KS = (1024, 4096)
_COST_N = 2048
_COST_GROUPS = (8, 16, 32, 64)


def _tile_cost(scheme: str, m: int, k: int, n: int, groups, implementation: str, iters: int, warmup: int) -> dict:
  """One table entry: the slope of launch time against tiles over launches of G experts with m rows each."""
  samples = []
  tile = None
  for num_groups in groups:
    lhs, w = _inputs(num_groups * m, num_groups, k, n, jnp.bfloat16, seed=num_groups)
    experts = rtn.quantize_experts(w, scheme)
    sizes_g = jnp.full((num_groups,), m, jnp.int32)
    config = GroupedMatmulConfig.heuristic([scheme], num_groups * m, num_groups)
    tile = config.tile_for(scheme)
    fn = jax.jit(lambda lhs, ew, sizes, config=config: ops.grouped_matmul(
        lhs, ew, sizes, implementation=implementation, config=config))
    timing = common.time_call(fn, lhs, experts, sizes_g, warmup=warmup, iters=iters)
    tiles = num_groups * math.ceil(m / tile.block_m) * math.ceil(n / tile.block_n)
    samples.append({"groups": num_groups, "tiles": tiles, "median_s": timing["median_ms"] * 1e-3})
    del lhs, w, experts
  tiles_x = np.asarray([s["tiles"] for s in samples], np.float64)
  times_y = np.asarray([s["median_s"] for s in samples], np.float64)
  slope, intercept = np.polyfit(tiles_x, times_y, 1) if len(set(tiles_x)) > 1 else (0.0, 0.0)
  if slope > 0:
    per_tile, method = float(slope), "slope"
  else:
    per_tile, method, intercept = float(np.min(times_y / tiles_x)), "ratio", 0.0
  return {"scheme": parse_scheme(scheme).name, "block_m": tile.block_m, "block_n": tile.block_n, "k": k,
          "per_tile_s": per_tile, "m": m, "n": n, "method": method, "intercept_s": float(intercept),
          "samples": samples}


def _int_list(text: str, what: str, parser) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v]
  except ValueError:
    values = []
  if not values or min(values) < 1:
    parser.error(f"{what} must be a comma-separated list of positive integers, got {text!r}")
  return values


def _cost_table_main(args, parser) -> int:
  """--cost-table: measure per-tile costs per scheme on this device and write the table."""
  schemes = [s for s in _split(args.schemes, SCHEMES, "scheme(s)", parser) if s != "mixed"]
  if not schemes:
    parser.error("--cost-table needs at least one scheme other than 'mixed'")
  rows = _int_list(args.cost_rows, "--cost-rows", parser)
  ks = _int_list(args.cost_ks, "--cost-ks", parser)
  groups = _int_list(args.cost_groups, "--cost-groups", parser)
  if args.cost_n < 1:
    parser.error(f"--cost-n must be >= 1, got {args.cost_n}")
  if any(k % PACK_BLOCK for k in ks):
    parser.error(f"--cost-ks must be multiples of {PACK_BLOCK} (the quantization block), got {ks}")
  if args.iters < 1 or args.warmup < 0:
    parser.error(f"--iters must be >= 1 and --warmup >= 0, got {args.iters} and {args.warmup}")
  implementation = args.implementation
  env = common.environment()
  if implementation == "pallas_triton":
    reason = _availability(["pallas_triton"]).get("pallas_triton")
    if reason:
      print(f"--cost-table: refusing to measure on {env['device_kind']} ({env['backend']}): the cost table "
            f"describes the pallas_triton kernel on a GPU, and it cannot run natively here ({reason}). "
            "Run on the GPU the allocation is for, or pass --implementation xla to time the XLA reference "
            "(labelled as such in the table).", file=sys.stderr)
      return 2
  print(f"cost table on {env['device_kind']} ({env['backend']}), implementation {implementation}: schemes "
        f"{schemes}, m {rows}, K {ks}, N {args.cost_n}, G {groups}")
  start = time.perf_counter()
  entries = []
  for scheme in schemes:
    for m in rows:
      for k in ks:
        entry = _tile_cost(scheme, m, k, args.cost_n, groups, implementation, args.iters, args.warmup)
        entries.append(entry)
        print(f"  {entry['scheme']:18s} m={m:<5d} K={k:<6d} tile {entry['block_m']}x{entry['block_n']}: "
              f"{entry['per_tile_s'] * 1e6:.4g} us/tile ({entry['method']})")
  table = {
      "device_kind": env["device_kind"], "date": env["date_utc"], "jax": env["jax"],
      "implementation": implementation,
      "method": "per_tile_s = least-squares slope of median launch time against tile count over launches "
                "of G experts with m rows each (seconds of the whole device per tile)",
      "grid": {"schemes": schemes, "rows": rows, "ks": ks, "n": args.cost_n, "groups": groups,
               "iters": args.iters, "warmup": args.warmup},
      "environment": env, "elapsed_s": time.perf_counter() - start, "entries": entries,
  }
  if implementation != "pallas_triton":
    table["note"] = (f"{implementation} implementation timed, not the pallas_triton kernel: not a cost table "
                     "of the kernel the allocation runs")
  common.write_json(args.cost_table, table)
  print(f"wrote {args.cost_table} ({len(entries)} entries, {table['elapsed_s']:.0f} s)")
  return 0


def _split(text, allowed, what, parser):
  names = [name for name in text.split(",") if name]
  unknown = [name for name in names if name not in allowed]
  if unknown or not names:
    parser.error(f"unknown or empty {what} {unknown or text!r}; choose from {', '.join(allowed)}")
  return names


def _write(args, env, shapes, checks, timings, check_s, total_s) -> None:
  common.write_json(args.out, {
      "benchmark": "grouped_matmul", "environment": env, "tolerance": _TOLERANCE,
      "shapes": {s.name: {**dataclasses.asdict(s), "group_sizes": s.group_sizes().tolist()} for s in shapes},
      "mixed_schemes": MIXED_SCHEMES, "mixed_assignment": "expert e -> mixed_schemes[e % 4]",
      "flop_model": "2 * routed_rows * K * N", "bytes_model": "weight bytes as passed (ExpertWeights.num_bytes)",
      "iters": args.iters, "warmup": args.warmup, "max_seconds": args.max_seconds, "untimed": args.untimed,
      "checks": checks, "timings": timings, "elapsed_s": {"checks": check_s, "total": total_s},
  })


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write results as JSON to this path")
  parser.add_argument("--device-check", action="store_true", help="correctness suite first; exit 1 on failure")
  parser.add_argument("--shapes", default=",".join(SHAPE_NAMES), help="comma-separated shape names")
  parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated scheme names, or 'mixed'")
  parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS), help="comma-separated names")
  parser.add_argument("--cpu-small", action="store_true", help="small shapes even on a GPU (automatic elsewhere)")
  parser.add_argument("--iters", type=int, default=20, help="timed runs per measurement (median reported)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--untimed", default="",
                      help="comma-separated implementations run once for the checks but not timed (e.g. xla, "
                           "whose float32 reference takes seconds per call at the prefill shapes)")
  parser.add_argument("--max-seconds", type=float, default=5.0,
                      help=f"seconds per measurement before its runs are cut (to no fewer than {_MIN_ITERS})")
  parser.add_argument("--cost-table", metavar="OUT.json",
                      help="measure MxMoE's per-tile cost table on this device and write it (nothing else runs)")
  parser.add_argument("--implementation", choices=COST_TABLE_IMPLEMENTATIONS, default="pallas_triton",
                      help="what --cost-table times (xla: the XLA reference, labelled in the table)")
  parser.add_argument("--cost-rows", default=",".join(map(str, _COST_ROWS)), help="--cost-table: rows per expert")
  parser.add_argument("--cost-ks", default=",".join(map(str, _COST_KS)), help="--cost-table: K values")
  parser.add_argument("--cost-n", type=int, default=_COST_N, help="--cost-table: N")
  parser.add_argument("--cost-groups", default=",".join(map(str, _COST_GROUPS)),
                      help="--cost-table: expert counts G per launch")
  args = parser.parse_args(argv)
  if args.cost_table:
    return _cost_table_main(args, parser)
  shape_names = _split(args.shapes, SHAPE_NAMES, "shape(s)", parser)
  schemes = _split(args.schemes, SCHEMES, "scheme(s)", parser)
  implementations = _split(args.implementations, IMPLEMENTATIONS, "implementation(s)", parser)
  untimed = _split(args.untimed, IMPLEMENTATIONS, "implementation(s)", parser) if args.untimed else []
  if args.iters < 1 or args.warmup < 0 or args.max_seconds <= 0:
    parser.error(f"--iters must be >= 1, --warmup >= 0 and --max-seconds > 0, got {args.iters}, {args.warmup} "
                 f"and {args.max_seconds}")
  # Ratios and the timed-shape checks are relative to xla, so it always runs first.
  implementations = ["xla", *(i for i in implementations if i != "xla")]

  start = time.perf_counter()
  backend = jax.default_backend()
  env = common.environment()
  small = args.cpu_small or backend != "gpu"
  shapes = [s for s in (_CPU_SHAPES if small else _GPU_SHAPES) if s.name in shape_names]
  print(f"grouped_matmul on {env['device_kind']} ({backend}), jax {env['jax']}; "
        f"{'small' if small else 'full'} shapes")
  for shape in shapes:
    print(f"  {shape.name}: {shape.describe()}")

  checks = []
  if args.device_check and "pallas_triton" not in implementations:
    print("--device-check checks pallas_triton against xla; pallas_triton is not selected, so nothing to check")
  if args.device_check and "pallas_triton" in implementations:
    # Pallas kernels run natively on their platform, through the interpreter elsewhere.
    interpret = registry.native_backend("pallas_triton") != backend
    decode = next(s for s in (_CPU_SHAPES if small else _GPU_SHAPES) if s.name == "deepseek_decode")
    checks = _check_suite(schemes, decode, interpret)
    print(f"\nCorrectness, pallas_triton against xla (max error / max |xla|; "
          f"{time.perf_counter() - start:.0f} s):")
    print(common.format_table(checks, [
        ("check", "check"), ("shape", "shape"), ("scheme", "scheme"), ("dtype", "dtype"), ("interpret", "interp"),
        ("status", "status"), ("err_out", "out"), ("err_dlhs", "dlhs"), ("err_drhs", "drhs"), ("reason", "reason"),
    ]))
  check_s = time.perf_counter() - start

  unavailable = _availability(implementations)
  timings = []
  for implementation, reason in unavailable.items():
    timings.append({"shape": "-", "scheme": "-", "implementation": implementation, "status": "unavailable",
                    "reason": reason})
  for shape in shapes:
    timings.extend(_time_shape(shape, schemes, implementations, unavailable, args.iters, args.warmup,
                               args.max_seconds, untimed))
    print(f"  timed {shape.name} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.out:  # After every shape, so a cut-short run keeps what it measured.
      _write(args, env, shapes, checks, timings, check_s, time.perf_counter() - start)
  total_s = time.perf_counter() - start

  print(f"\nTimings (median of {args.iters} runs, or of `iters` where cut by --max-seconds, after "
        f"{args.warmup} warm-up; x xla = xla time / this time; "
        "err = max error / max |xla| at the timed shape):")
  print(common.format_table(timings, [
      ("shape", "shape"), ("scheme", "scheme"), ("implementation", "impl"), ("status", "status"),
      ("median_ms", "median ms"), ("iters", "iters"), ("back_to_back_ms", "b2b ms"), ("tflop_per_s", "TFLOP/s"),
      ("weight_gb_per_s", "weight GB/s"),
      ("ratio_to_xla", "x xla"), ("ratio_to_ragged_dot_bf16", "x rd16"), ("err_out", "err"), ("slowest_uniform_ms", "slowest uniform ms"),
      ("mixed_le_slowest", "mixed<=slowest"), ("reason", "reason"),
  ]))
  print(f"\nelapsed: checks {check_s:.0f} s, total {total_s:.0f} s")

  failures = [c for c in checks + timings if c.get("status") in ("FAIL", "ERROR")]
  for failure in failures:
    print(f"CHECK FAILED: {failure}")
  if args.out:
    _write(args, env, shapes, checks, timings, check_s, total_s)
    print(f"wrote {args.out}")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
