"""Tests for `benchmarks/grouped_matmul.py --cost-table`: refusal off a GPU, the slope fit, the table format."""

import json
import math

import pytest

from benchmarks import grouped_matmul
from jaxlab.mxmoe import CostModel
from kernels_pallas.grouped_matmul.config import GroupedMatmulConfig

TINY = ["--cost-ks", "128", "--cost-n", "128", "--iters", "1", "--warmup", "0"]


def test_refuses_pallas_triton_off_gpu(tmp_path, capsys):
  out = tmp_path / "table.json"
  assert grouped_matmul.main(["--cost-table", str(out), *TINY]) == 2
  assert "refusing to measure" in capsys.readouterr().err
  assert not out.exists()


def test_per_tile_cost_is_the_slope_over_tiles(tmp_path, monkeypatch):
  """A fake timer returning a + b * tiles: the table must hold b for every (scheme, m, K)."""
  intercept, slope = 3e-5, {"bf16": 2e-7, "w4a16_g128_asym": 5e-8}
  calls = []

  def fake_time_call(fn, lhs, experts, sizes, warmup, iters):
    scheme = experts.schemes[0].name
    m, groups = int(sizes[0]), int(sizes.shape[0])
    # Tiles written out from the heuristic's documented shapes for these two schemes.
    block_m = 16 if m <= 16 else 64 if m <= 64 else 128
    wide = {("bf16", 128): 256, ("w4a16_g128_asym", 16): 256, ("w4a16_g128_asym", 128): 64}
    block_n = wide.get((scheme, block_m), 128)
    tiles = groups * math.ceil(m / block_m) * math.ceil(experts.out_features / block_n)
    calls.append((scheme, m, lhs.shape[1], groups))
    return {"median_ms": (intercept + slope[scheme] * tiles) * 1e3}

  monkeypatch.setattr(grouped_matmul.common, "time_call", fake_time_call)
  out = tmp_path / "table.json"
  argv = ["--cost-table", str(out), "--implementation", "xla", "--schemes", "bf16,w4a16_g128_asym",
          "--cost-rows", "8,40,200", "--cost-ks", "128", "--cost-n", "256", "--cost-groups", "2,3"]
  assert grouped_matmul.main(argv) == 0
  table = json.loads(out.read_text())
  assert table["implementation"] == "xla" and "not the pallas_triton kernel" in table["note"]
  assert table["device_kind"] == "cpu" and table["jax"] and table["date"]
  assert len(table["entries"]) == 2 * 3 and len(calls) == 2 * 3 * 2
  for entry in table["entries"]:
    tile = GroupedMatmulConfig.heuristic([entry["scheme"]], entry["m"], 1).tile_for(entry["scheme"])
    assert (entry["block_m"], entry["block_n"]) == (tile.block_m, tile.block_n)
    assert entry["method"] == "slope"
    assert entry["per_tile_s"] == pytest.approx(slope[entry["scheme"]], rel=1e-6)
    assert entry["intercept_s"] == pytest.approx(intercept, rel=1e-6)
  model = CostModel.from_table(out)
  assert model.source == "measured:cpu (xla implementation)"
  # 200 rows, N=1024 in w4a16: 2 row tiles x 16 column tiles of 64; K=256 is twice the measured K.
  assert model.block_time("w4a16_g128_asym", 200, 256, 1024) == pytest.approx(32 * 2 * slope["w4a16_g128_asym"])


def test_xla_measurement_runs_and_loads(tmp_path):
  out = tmp_path / "table.json"
  argv = ["--cost-table", str(out), "--implementation", "xla", "--schemes", "w8a8_g-1_sym", "--cost-rows", "8",
          "--cost-groups", "2,4", *TINY]
  assert grouped_matmul.main(argv) == 0
  entries = json.loads(out.read_text())["entries"]
  assert [(e["scheme"], e["block_m"], e["k"]) for e in entries] == [("w8a8_g-1_sym", 16, 128)]
  assert entries[0]["per_tile_s"] > 0 and len(entries[0]["samples"]) == 2
  model = CostModel.from_table(out)
  assert model.block_time("w8a8_g-1_sym", 8, 128, 128) == pytest.approx(entries[0]["per_tile_s"])


def test_bad_flags(tmp_path):
  with pytest.raises(SystemExit):
    grouped_matmul.main(["--cost-table", str(tmp_path / "t.json"), "--implementation", "xla", "--cost-ks", "100"])
  with pytest.raises(SystemExit):
    grouped_matmul.main(["--cost-table", str(tmp_path / "t.json"), "--implementation", "xla",
                         "--schemes", "mixed"])


def test_a_table_that_fails_to_serialize_keeps_the_previous_file(tmp_path):
  """Tables and results go through `benchmarks.common.write_json`: all or nothing."""

  class Unprintable:
    def __str__(self):
      raise RuntimeError("cannot describe this value")

  out = tmp_path / "table.json"
  grouped_matmul.common.write_json(str(out), {"entries": [1, 2], "loss": float("nan")})
  before = out.read_bytes()
  with pytest.raises(RuntimeError, match="cannot describe"):
    grouped_matmul.common.write_json(str(out), {"entries": [3], "z": Unprintable()})
  assert out.read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"]
  assert math.isnan(json.loads(before)["loss"])  # Failed measurements are still recorded.
