"""Tests for `jaxlab.mxmoe.assignment`: building, saving, loading and validating whole-model JSON."""

import json

import numpy as np
import pytest

from jaxlab.mxmoe import (
    AllocationProblem,
    build_assignment,
    layer_schemes,
    load_assignment,
    moe_layer_blocks,
    save_assignment,
    solve,
    validate_assignment,
)

MENU = ["w8a16_g-1_asym", "w4a16_g128_asym", "w8a8_g-1_sym"]


def _allocation(seed, shared):
  rng = np.random.default_rng(seed)
  blocks = moe_layer_blocks(d_model=256, d_ff=128, rows_per_expert=[3, 0, 70], shared_d_ff=256 if shared else 0,
                            shared_rows=16)
  problem = AllocationProblem(blocks, MENU, rng.random((len(blocks), 3)), rng.random((len(blocks), 3)))
  return solve(problem, avg_bits=6.0, r=0.75)


def test_round_trip(tmp_path):
  allocations = {3: _allocation(0, shared=True), 1: _allocation(1, shared=False)}
  assignment = build_assignment(allocations, menu=MENU, r=0.75, budget_bits=6.0,
                                cost_source="roofline estimate:cpu", batch_tokens=512)
  path = tmp_path / "deep" / "assignment.json"
  save_assignment(path, assignment)
  loaded = load_assignment(path)
  assert loaded == json.loads(json.dumps(assignment))
  assert list(loaded["layers"]) == ["1", "3"] and loaded["batch_tokens"] == 512
  layer3 = layer_schemes(loaded, 3)
  assert len(layer3["gate_up"]) == len(layer3["down"]) == 4  # 3 routed + the shared experts last.
  assert layer3["gate_up"][3] == allocations[3].scheme_of(3, "gate_up")
  assert [layer3["down"][e] for e in range(4)] == [allocations[3].scheme_of(e, "down") for e in range(4)]
  assert len(layer_schemes(loaded, 1)["down"]) == 3
  assert loaded["layer_stats"]["3"]["objective"] == pytest.approx(allocations[3].objective)
  with pytest.raises(KeyError, match="no layer 2"):
    layer_schemes(loaded, 2)


def _valid():
  return {"layers": {"0": {"gate_up": ["w8a16_g-1_asym", "bf16"], "down": ["w8a8_g-1_sym", "bf16"]}},
          "menu": ["bf16", "w8a16_g-1_asym", "w8a8_g-1_sym"], "r": 1, "budget_bits": 8.0, "cost_source": "x"}


@pytest.mark.parametrize("change,message", [
    (lambda a: a.pop("menu"), r"lacks the keys \['menu'\]"),
    (lambda a: a.update(r=1.5), "'r' must be a number in"),
    (lambda a: a.update(budget_bits=0), "budget_bits"),
    (lambda a: a["layers"].update({"x": a["layers"]["0"]}), "layer indices"),
    (lambda a: a["layers"]["0"].pop("down"), "exactly the keys"),
    (lambda a: a["layers"]["0"]["down"].pop(), "equal length"),
    (lambda a: a["layers"]["0"]["down"].__setitem__(0, "w5a16_g128_asym"), r"layer 0 down\[0\]: unsupported"),
    (lambda a: a["layers"]["0"]["down"].__setitem__(0, "w4a16_g128_asym"), "not in the menu"),
    (lambda a: a.update(menu=["bf16", "bf16"]), "repeats"),
    (lambda a: a.update(format="other/2"), "format"),
])
def test_validation_errors(change, message):
  assert validate_assignment(_valid())
  assignment = _valid()
  change(assignment)
  with pytest.raises(ValueError, match=message):
    validate_assignment(assignment)


def test_load_rejects_bad_json(tmp_path):
  path = tmp_path / "a.json"
  path.write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    load_assignment(path)


@pytest.mark.parametrize("bad", [
    lambda a: a.update(layer_stats={"0": {"loss": float("nan")}}),
    lambda a: a.update(calibration={"scores": [1.0, float("inf")]}),
    lambda a: a.update(tokens=np.int64(512)),  # Not JSON: json.dump would fail halfway through the file.
])
def test_failed_save_keeps_the_previous_file(tmp_path, bad):
  path = tmp_path / "assignment.json"
  save_assignment(path, _valid())
  before = path.read_bytes()
  assignment = _valid()
  bad(assignment)
  with pytest.raises(ValueError, match="unchanged"):
    save_assignment(path, assignment)
  assert path.read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["assignment.json"]  # No temporary file left behind.
  assert load_assignment(path) == _valid()
  # A good save after the failed one replaces the file and reads back as written.
  good = dict(_valid(), layer_stats={"0": {"loss": 0.25, "gap": None}})
  save_assignment(path, good)
  assert load_assignment(path) == good
