"""Tests for `jaxlab.mxmoe.cost`: the roofline estimate, measured tables and choosing between them."""

import json
import logging
import math
import warnings

import pytest

from jaxlab.mxmoe import CostModel, device_spec, load_cost_model

WEIGHT_ONLY_BY_BITS = ("w2a16_g128_asym", "w3a16_g128_asym", "w4a16_g128_asym", "w8a16_g128_asym", "bf16")
SCHEMES = WEIGHT_ONLY_BY_BITS + (
    "w8a16_g-1_asym", "w4a16_g-1_sym", "w8a8_g-1_sym", "w4a4_g-1_sym", "w4a4_g128_sym")


def test_roofline_matches_hand_computation():
  """w4a16_g128_asym, 8 rows (16 x 256 tiles), K=2048, N=2816 on H100 SXM, written out from the formula."""
  k, n, bm, bn = 2048, 2816, 16, 256
  weight = k * bn * 4 / 8 + (k // 128) * bn * 2 * 2  # 4-bit codes + float16 scale and zero per group.
  lhs = bm * k * 2
  out = bm * bn * 2
  per_tile = max((weight + lhs + out) / 3.35e12, 2 * bm * bn * k / 989e12)
  want = 1 * math.ceil(n / bn) * per_tile
  assert CostModel.roofline("H100 SXM").block_time("w4a16_g128_asym", 8, k, n) == pytest.approx(want, rel=1e-12)
  # 300 rows: 128 x 128 tiles, w8a8: int8 lhs with float32 scales per 128 columns, int8 peak.
  bm, bn = 128, 128
  weight = k * bn + bn * 2  # int8 codes, one float16 scale per column (symmetric: no zero).
  lhs = bm * k + bm * (k // 128) * 4
  per_tile = max((weight + lhs + bm * bn * 2) / 4.8e12, 2 * bm * bn * k / 1979e12)
  want = math.ceil(300 / bm) * math.ceil(n / bn) * per_tile
  assert CostModel.roofline("H200").block_time("w8a8_g-1_sym", 300, k, n) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("spec", ["H100 SXM", "H200"])
def test_more_rows_never_cheaper(spec):
  model = CostModel.roofline(spec)
  for scheme in SCHEMES:
    for k, n in ((2048, 2816), (1408, 2048), (256, 96)):
      times = [model.block_time(scheme, m, k, n) for m in range(0, 700, 3)]
      assert times[0] == 0.0
      assert all(b >= a for a, b in zip(times, times[1:])), scheme


@pytest.mark.parametrize("spec", ["H100 SXM", "H200"])
def test_fewer_weight_bits_faster_at_small_m(spec):
  model = CostModel.roofline(spec)
  for m in (1, 4, 16):
    times = [model.block_time(s, m, 2048, 2816) for s in WEIGHT_ONLY_BY_BITS]
    assert all(a < b for a, b in zip(times, times[1:])), (m, times)


@pytest.mark.parametrize("spec", ["H100 SXM", "H200"])
def test_roofline_crossover(spec):
  """W-A beats weight-only of the same weight bits at large m; 4-bit weight-only beats w8a8 at small m."""
  model = CostModel.roofline(spec)
  t = lambda scheme, m: model.block_time(scheme, m, 2048, 2816)
  for m in (1024, 8192):
    assert t("w8a8_g-1_sym", m) < t("w8a16_g-1_asym", m)
    assert t("w4a4_g-1_sym", m) < t("w4a16_g-1_sym", m)
    assert t("w8a8_g-1_sym", m) < t("w4a16_g128_asym", m)
  for m in (1, 8):
    assert t("w4a16_g128_asym", m) < t("w8a8_g-1_sym", m)


def test_device_specs_by_kind():
  assert device_spec("NVIDIA H100 80GB HBM3").name == "H100 SXM"
  assert device_spec("NVIDIA H200").num_sms == 132
  assert device_spec("cpu").name == "cpu"
  with pytest.raises(ValueError, match="no roofline spec for device kind 'NVIDIA H100 PCIe'"):
    device_spec("NVIDIA H100 PCIe")
  with pytest.raises(ValueError, match="m_rows"):
    CostModel.roofline("cpu").block_time("bf16", -1, 128, 128)


def _write_table(path, device_kind, entries):
  path.write_text(json.dumps({"device_kind": device_kind, "date": "2025-01-01", "jax": "0.0", "entries": entries}))
  return path


def _entry(scheme, block_m, k, per_tile_s, block_n=128):
  return {"scheme": scheme, "block_m": block_m, "block_n": block_n, "k": k, "per_tile_s": per_tile_s}


def test_measured_table_tiles_and_k_interpolation(tmp_path):
  path = _write_table(tmp_path / "t.json", "NVIDIA H200", [
      _entry("w8a16_g128_asym", 16, 1024, 2e-6), _entry("w8a16_g128_asym", 16, 4096, 5e-6),
      _entry("w8a16_g128_asym", 128, 2048, 9e-6),
  ])
  model = CostModel.from_table(path)
  assert model.source == "measured:NVIDIA H200" and not model.is_estimate
  # 10 rows -> one 16-row tile per 128 columns; N=300 -> 3 column tiles.
  assert model.block_time("w8a16_g128_asym", 10, 1024, 300) == pytest.approx(3 * 2e-6)
  assert model.block_time("w8a16_g128_asym", 10, 2048, 300) == pytest.approx(3 * (2e-6 + 3e-6 / 3))
  assert model.block_time("w8a16_g128_asym", 10, 8192, 300) == pytest.approx(3 * 5e-6 * 2)
  assert model.block_time("w8a16_g128_asym", 10, 512, 300) == pytest.approx(3 * 2e-6 / 2)
  # 200 rows -> two 128-row tiles.
  assert model.block_time("w8a16_g128_asym", 200, 2048, 128) == pytest.approx(2 * 9e-6)
  assert model.block_time("w8a16_g128_asym", 0, 2048, 128) == 0.0
  with pytest.raises(ValueError, match="no entry for scheme w8a8_g-1_sym with tile 16x128"):
    model.block_time("w8a8_g-1_sym", 10, 1024, 300)


def test_malformed_tables(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"device_kind": "x", "date": "d", "jax": "j"}))
  with pytest.raises(ValueError, match=r"lacks the keys \['entries'\]"):
    CostModel.from_table(bad)
  _write_table(bad, "x", [_entry("w5a16", 16, 128, 1e-6)])
  with pytest.raises(ValueError, match="entry 0 unknown quantization scheme"):
    CostModel.from_table(bad)
  _write_table(bad, "x", [_entry("bf16", 16, 128, -1.0)])
  with pytest.raises(ValueError, match="per_tile_s must be a positive number"):
    CostModel.from_table(bad)


def test_table_for_current_device_is_used_silently(tmp_path):
  _write_table(tmp_path / "h200.json", "NVIDIA H200", [_entry("bf16", 16, 1024, 1e-6)])
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    model = load_cost_model("NVIDIA H200", tmp_path)
  assert model.source == "measured:NVIDIA H200"


def test_table_for_another_device_warns_and_falls_back(tmp_path):
  _write_table(tmp_path / "h200.json", "NVIDIA H200", [_entry("bf16", 16, 1024, 1e-6)])
  with pytest.warns(UserWarning, match=r"only for \['NVIDIA H200'\], not for device 'NVIDIA H100 80GB HBM3'"):
    model = load_cost_model("NVIDIA H100 80GB HBM3", tmp_path)
  assert model.is_estimate and model.source.startswith("roofline estimate:H100 SXM")
  with pytest.warns(UserWarning, match="measured on 'NVIDIA H200' for device 'NVIDIA H100 80GB HBM3'"):
    model = load_cost_model("NVIDIA H100 80GB HBM3", tmp_path, use_other_device_table=True)
  assert model.source == "measured:NVIDIA H200"


def test_no_table_logs_an_estimate(caplog):
  with caplog.at_level(logging.WARNING, logger="jaxlab.mxmoe"):
    model = load_cost_model()  # The test host's device: cpu.
  assert model.source.startswith("roofline estimate:cpu")
  assert "an estimate, not a measurement" in caplog.text
  assert model.block_time("w4a4_g-1_sym", 64, 512, 512) > 0
