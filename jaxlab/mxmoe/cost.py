"""Runtime model T of MxMoE: seconds for one linear block in one scheme, from a tile-level cost.

A block of `m` rows, K inputs and N outputs runs as tiles of the grouped-matmul kernel: the tile
shape is `GroupedMatmulConfig.heuristic` for m rows per expert, and the block has
ceil(m / BM) * ceil(N / BN) tiles. With P SMs working through the tiles in parallel, a tile
that keeps one SM busy for c(s, t) seconds adds c(s, t) / P seconds to the layer, so

    block_time = tiles * c(s, t) / P          (MxMoE's runtime model; an empty expert costs 0).

`tile_time` below is that per-tile share of the whole device, c(s, t) / P, in seconds. It comes
from one of two sources:

* Measured (`CostModel.from_table`): a JSON table written by
  `benchmarks/grouped_matmul.py --cost-table` on one device kind, holding the incremental cost of
  one tile per (scheme, tile shape, K): the slope of launch time against tile count over launches
  with 8..64 experts. K between two measured values is interpolated linearly; outside them the
  nearest one is scaled in proportion to K (a tile's work is linear in K).
* Roofline estimate (`CostModel.roofline`): NOT a measurement. One SM gets 1/P of the device's
  bandwidth and peak, so c / P = max(bytes_per_tile / bandwidth, flops_per_tile / peak(scheme))
  with
    bytes = weights of the [K, BN] block at the scheme's bits + float16 scales (and zeros, for
            asymmetric schemes) per group + lhs [BM, K] (bfloat16; int8 codes plus float32 scales
            per row and 128 columns for schemes that quantize activations) + out [BM, BN] bfloat16,
    flops = 2 * BM * BN * K,
    peak  = int8 tensor-core rate for wXa8 / wXa4 (4-bit operands are unpacked to int8), the
            bfloat16 rate otherwise (weight-only schemes dequantize to bfloat16).
  Every tile re-reads its operands from memory (no cache reuse is modelled), so a 128 x 128 tile is
  memory-bound on H100/H200 and schemes with int8 activations win at large m by their halved lhs
  bytes; at small m the weight bytes dominate and fewer weight bits win.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence

from jaxlab.quant_formats.scheme import PACK_BLOCK, QuantScheme, parse_scheme
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig, TileShape

logger = logging.getLogger("jaxlab.mxmoe")

TABLE_KEYS = ("device_kind", "date", "jax", "entries")
ENTRY_KEYS = ("scheme", "block_m", "block_n", "k", "per_tile_s")


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
  """Datasheet numbers of one accelerator, for the roofline estimate."""

  name: str
  num_sms: int
  hbm_bytes_per_s: float
  bf16_flops_per_s: float
  int8_ops_per_s: float

  def describe(self) -> str:
    return (f"{self.name}: {self.num_sms} SMs, {self.hbm_bytes_per_s / 1e12:g} TB/s, "
            f"{self.bf16_flops_per_s / 1e12:g} bf16 TFLOP/s, {self.int8_ops_per_s / 1e12:g} int8 TOPS")


# Dense (no sparsity) tensor-core peaks from NVIDIA's datasheets; H200 has H100's compute.
DEVICE_SPECS: dict[str, DeviceSpec] = {
    "H100 SXM": DeviceSpec("H100 SXM", 132, 3.35e12, 989e12, 1979e12),
    "H200": DeviceSpec("H200", 132, 4.8e12, 989e12, 1979e12),
    # A small made-up device so that code paths run on CPU hosts; it models no real CPU.
    "cpu": DeviceSpec("cpu", 8, 100e9, 2e12, 4e12),
}


def device_spec(device_kind: str) -> DeviceSpec:
  """The roofline spec for a jax `device_kind` ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "cpu") or a spec name.

  Raises:
    ValueError: no spec matches; the message lists the known ones.
  """
  if not isinstance(device_kind, str):
    raise TypeError(f"device_kind must be a string, got {type(device_kind).__name__}")
  if device_kind in DEVICE_SPECS:
    return DEVICE_SPECS[device_kind]
  kind = device_kind.lower()
  if kind == "cpu":
    return DEVICE_SPECS["cpu"]
  if "h200" in kind:
    return DEVICE_SPECS["H200"]
  # H100 PCIe and NVL have other SM counts and bandwidths; they get no spec rather than a wrong one.
  if "h100" in kind and "pcie" not in kind and "nvl" not in kind:
    return DEVICE_SPECS["H100 SXM"]
  raise ValueError(
      f"no roofline spec for device kind {device_kind!r}; known: {', '.join(DEVICE_SPECS)} "
      "(pass spec= or measure a table with benchmarks/grouped_matmul.py --cost-table)"
  )


def tile_for_rows(scheme: QuantScheme | str, m_rows: int) -> TileShape:
  """The kernel's tile for a block of `m_rows` rows in `scheme` (the heuristic, one expert)."""
  return GroupedMatmulConfig.heuristic([scheme], max(int(m_rows), 1), 1).tile_for(scheme)


def num_tiles(tile: TileShape, m_rows: int, n: int) -> int:
  """ceil(m / BM) * ceil(n / BN): the programs one block takes."""
  return math.ceil(m_rows / tile.block_m) * math.ceil(n / tile.block_n)


def roofline_tile_bytes(scheme: QuantScheme, tile: TileShape, k: int) -> float:
  """Bytes one tile reads and writes (see the module docstring)."""
  bm, bn = tile.block_m, tile.block_n
  groups_k = math.ceil(k / PACK_BLOCK)
  if scheme.quantizes_weights:
    weight = k * bn * scheme.w_bits / 8
    scale_groups = groups_k if scheme.group_size == PACK_BLOCK else 1
    weight += scale_groups * bn * 2 * (1 if scheme.symmetric else 2)
  else:
    weight = k * bn * 2.0
  if scheme.quantizes_activations:
    lhs = bm * k * 1.0 + bm * groups_k * 4
  else:
    lhs = bm * k * 2.0
  return weight + lhs + bm * bn * 2.0


def _check_dims(m_rows, k, n) -> None:
  for name, value, low in (("m_rows", m_rows, 0), ("k", k, 1), ("n", n, 1)):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise ValueError(f"block_time needs an int {name} >= {low}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TableEntry:
  """Measured incremental cost of one tile: `per_tile_s` seconds of the whole device."""

  scheme: str
  block_m: int
  block_n: int
  k: int
  per_tile_s: float


@dataclasses.dataclass(frozen=True)
class CostModel:
  """T(scheme, m, k, n) in seconds; build with `roofline(spec)` or `from_table(path)`.

  Attributes:
    source: "measured:<device kind>" or "roofline estimate:<device spec>".
    spec: the device spec of a roofline estimate, else None.
    entries: the measured table entries, else empty.
  """

  source: str
  spec: DeviceSpec | None = None
  entries: tuple[TableEntry, ...] = ()

  def __post_init__(self):
    if (self.spec is None) == (not self.entries):
      raise ValueError("CostModel needs exactly one of spec (roofline) or entries (measured table)")

  @property
  def is_estimate(self) -> bool:
    return self.spec is not None

  @classmethod
  def roofline(cls, spec: DeviceSpec | str) -> CostModel:
    """The roofline estimate for a `DeviceSpec` or a device kind / spec name."""
    if isinstance(spec, str):
      spec = device_spec(spec)
    if not isinstance(spec, DeviceSpec):
      raise TypeError(f"spec must be a DeviceSpec or a device kind, got {type(spec).__name__}")
    return cls(source=f"roofline estimate:{spec.describe()}", spec=spec)

  @classmethod
  def from_table(cls, path: str | os.PathLike) -> CostModel:
    """The measured model in a `--cost-table` JSON file.

    Raises:
      ValueError: the file is not a cost table (missing keys, bad entries), with the reason.
    """
    table = read_table(path)
    entries = tuple(TableEntry(**{key: e[key] for key in ENTRY_KEYS}) for e in table["entries"])
    implementation = table.get("implementation", "pallas_triton")
    source = f"measured:{table['device_kind']}"
    if implementation != "pallas_triton":
      source += f" ({implementation} implementation)"
    return cls(source=source, entries=entries)

  def tile_time(self, scheme: QuantScheme | str, m_rows: int, k: int) -> float:
    """Seconds of the whole device that one tile of this scheme's tile shape takes (c / P)."""
    scheme = parse_scheme(scheme)
    tile = tile_for_rows(scheme, m_rows)
    if self.spec is not None:
      spec = self.spec
      peak = spec.int8_ops_per_s if scheme.quantizes_activations else spec.bf16_flops_per_s
      flops = 2.0 * tile.block_m * tile.block_n * k
      return max(roofline_tile_bytes(scheme, tile, k) / spec.hbm_bytes_per_s, flops / peak)
    return self._measured_tile_time(scheme, tile, k)

  def _measured_tile_time(self, scheme: QuantScheme, tile: TileShape, k: int) -> float:
    points = sorted((e.k, e.per_tile_s) for e in self.entries
                    if (parse_scheme(e.scheme), e.block_m, e.block_n) == (scheme, tile.block_m, tile.block_n))
    if not points:
      have = sorted({(e.scheme, e.block_m, e.block_n) for e in self.entries})
      raise ValueError(
          f"cost table ({self.source}) has no entry for scheme {scheme.name} with tile "
          f"{tile.block_m}x{tile.block_n}; it has (scheme, block_m, block_n) {have}"
      )
    ks = [p[0] for p in points]
    if k <= ks[0]:
      return points[0][1] * k / ks[0]
    if k >= ks[-1]:
      return points[-1][1] * k / ks[-1]
    for (k0, t0), (k1, t1) in zip(points, points[1:]):
      if k0 <= k <= k1:
        return t0 + (t1 - t0) * (k - k0) / (k1 - k0)
    raise AssertionError("unreachable: k lies between the measured values")

  def block_time(self, scheme: QuantScheme | str, m_rows: int, k: int, n: int) -> float:
    """Seconds for one [k, n] block multiplying `m_rows` rows in `scheme`; 0 for an empty expert."""
    _check_dims(m_rows, k, n)
    scheme = parse_scheme(scheme)
    if m_rows == 0:
      return 0.0
    return num_tiles(tile_for_rows(scheme, m_rows), m_rows, n) * self.tile_time(scheme, m_rows, k)


def _entry_problem(entry) -> str | None:
  if not isinstance(entry, Mapping):
    return f"is a {type(entry).__name__}, not an object"
  missing = [key for key in ENTRY_KEYS if key not in entry]
  if missing:
    return f"lacks {missing}"
  try:
    parse_scheme(entry["scheme"])
  except (TypeError, ValueError) as e:
    return str(e)
  for key in ("block_m", "block_n", "k"):
    if not isinstance(entry[key], int) or entry[key] < 1:
      return f"{key} must be a positive int, got {entry[key]!r}"
  if not isinstance(entry["per_tile_s"], (int, float)) or not entry["per_tile_s"] > 0:
    return f"per_tile_s must be a positive number, got {entry['per_tile_s']!r}"
  return None


def read_table(path: str | os.PathLike) -> dict:
  """The parsed cost table at `path`, validated; raises ValueError naming the file and the problem."""
  try:
    with open(path) as f:
      table = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"cost table {path} is not valid JSON: {e}") from e
  if not isinstance(table, dict):
    raise ValueError(f"cost table {path} must hold a JSON object, got {type(table).__name__}")
  missing = [key for key in TABLE_KEYS if key not in table]
  if missing:
    raise ValueError(f"cost table {path} lacks the keys {missing} (a table has {list(TABLE_KEYS)})")
  if not isinstance(table["entries"], list) or not table["entries"]:
    raise ValueError(f"cost table {path}: 'entries' must be a non-empty list")
  for index, entry in enumerate(table["entries"]):
    problem = _entry_problem(entry)
    if problem:
      raise ValueError(f"cost table {path}: entry {index} {problem}")
  return table


def _current_device_kind() -> str:
  import jax  # Imported here: choosing a table is the only thing in this module that needs a device.

  return jax.devices()[0].device_kind


def load_cost_model(
    device_kind: str | None = None,
    table_dir: str | os.PathLike | None = None,
    *,
    use_other_device_table: bool | str = False,
    spec: DeviceSpec | str | None = None,
) -> CostModel:
  """The cost model for `device_kind` (default: jax's first device): its measured table, else an estimate.

  Args:
    device_kind: the device the allocation is for, as `jax.Device.device_kind` spells it.
    table_dir: a folder of `--cost-table` JSON files (any names); None consults no tables.
    use_other_device_table: with no table for `device_kind`, use another device's table (True:
      the only one there is; a string: the table of that device kind) instead of the estimate.
      Either way a warning names both devices.
    spec: the roofline spec to estimate with; default `device_spec(device_kind)`.

  Raises:
    ValueError: a table in `table_dir` is malformed, or the requested other table is absent or
      ambiguous, or no roofline spec is known for the device.
  """
  device_kind = _current_device_kind() if device_kind is None else device_kind
  if not isinstance(device_kind, str):
    raise TypeError(f"device_kind must be a string or None, got {type(device_kind).__name__}")
  tables: dict[str, str] = {}
  if table_dir is not None:
    if not os.path.isdir(table_dir):
      raise ValueError(f"table_dir {os.fspath(table_dir)!r} is not a folder")
    for name in sorted(os.listdir(table_dir)):
      if name.endswith(".json"):
        path = os.path.join(table_dir, name)
        tables.setdefault(read_table(path)["device_kind"], path)
  if device_kind in tables:
    return CostModel.from_table(tables[device_kind])
  if tables and use_other_device_table:
    if isinstance(use_other_device_table, str):
      if use_other_device_table not in tables:
        raise ValueError(f"no cost table for device kind {use_other_device_table!r} in {table_dir}; "
                         f"tables there: {sorted(tables)}")
      other = use_other_device_table
    elif len(tables) == 1:
      other = next(iter(tables))
    else:
      raise ValueError(f"several cost tables in {table_dir} ({sorted(tables)}) and none for {device_kind!r}; "
                       "name the one to use with use_other_device_table='<device kind>'")
    warnings.warn(f"using the cost table measured on {other!r} for device {device_kind!r}: its times do not "
                  "describe this device", stacklevel=2)
    return CostModel.from_table(tables[other])
  model = CostModel.roofline(device_spec(device_kind) if spec is None else spec)
  if tables:
    warnings.warn(f"cost tables found only for {sorted(tables)}, not for device {device_kind!r}; using the "
                  f"roofline estimate for {device_kind!r} ({model.source}) instead", stacklevel=2)
  else:
    logger.warning("no measured cost table for device %r: using the %s, an estimate, not a measurement",
                   device_kind, model.source)
  return model


def block_times(model: CostModel, blocks: Sequence, schemes: Sequence[QuantScheme | str]) -> list[list[float]]:
  """[block][scheme] seconds: `model.block_time` for every block (LinearBlock) in every scheme."""
  if not isinstance(model, CostModel):
    raise TypeError(f"model must be a CostModel, got {type(model).__name__}")
  return [[model.block_time(s, b.m_rows, b.k, b.n) for s in schemes] for b in blocks]
