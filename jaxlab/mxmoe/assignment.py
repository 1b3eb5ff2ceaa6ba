"""A whole model's MxMoE assignment as JSON: one scheme per expert and block kind, per MoE layer.

    {
      "format": "jaxlab.mxmoe.assignment/1",
      "layers": {"3": {"gate_up": ["w4a16_g128_asym", ...], "down": [...]}, ...},
      "menu": ["bf16", "w4a16_g128_asym", ...],
      "r": 0.75,
      "budget_bits": 4.25,
      "cost_source": "roofline estimate:H100 SXM: ...",
      "layer_stats": {"3": {"loss": ..., "time_s": ..., "objective": ..., "average_bits": ..., ...}},
      ...
    }

Layers are keyed by their index in the model (a string, as JSON wants). Each list has one entry
per expert, routed experts 0..E-1 first and the merged shared experts last when the layer has
them. "budget_bits" is the average bits per weight every layer was solved under. Other keys
(batch tokens, calibration details) are kept as they are.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from jaxlab import files
from jaxlab.mxmoe.blocks import KINDS
from jaxlab.mxmoe.solver import Allocation
from jaxlab.quant_formats.scheme import parse_scheme

FORMAT = "jaxlab.mxmoe.assignment/1"
_REQUIRED = ("layers", "menu", "r", "budget_bits", "cost_source")


def build_assignment(
    allocations: Mapping[int, Allocation],
    *,
    menu,
    r: float,
    budget_bits: float,
    cost_source: str,
    **extra: Any,
) -> dict:
  """The JSON object for per-layer allocations {layer index: Allocation}; `extra` keys are added."""
  if not isinstance(allocations, Mapping) or not allocations:
    raise ValueError("allocations must be a non-empty mapping {layer index: Allocation}")
  layers, stats = {}, {}
  for layer, allocation in sorted(allocations.items()):
    if not isinstance(allocation, Allocation):
      raise TypeError(f"allocations[{layer}] must be an Allocation, got {type(allocation).__name__}")
    layers[str(layer)] = allocation.layer_assignment()
    stats[str(layer)] = {
        "loss": allocation.loss, "time_s": allocation.time_s, "objective": allocation.objective,
        "average_bits": allocation.average_bits, "status": allocation.status,
        "gap": None if math.isnan(allocation.gap) else allocation.gap,
    }
  clash = sorted(set(extra) & {"format", "layer_stats", *_REQUIRED})
  if clash:
    raise ValueError(f"extra keys {clash} would overwrite the assignment's own fields")
  assignment = {
      "format": FORMAT, "layers": layers, "menu": [parse_scheme(s).name for s in menu], "r": r,
      "budget_bits": budget_bits, "cost_source": cost_source, "layer_stats": stats, **extra,
  }
  return validate_assignment(assignment)


def validate_assignment(assignment: Any) -> dict:
  """`assignment` itself if it is a well-formed assignment; otherwise ValueError saying what is wrong."""
  if not isinstance(assignment, Mapping):
    raise ValueError(f"an assignment is a JSON object, got {type(assignment).__name__}")
  missing = [key for key in _REQUIRED if key not in assignment]
  if missing:
    raise ValueError(f"assignment lacks the keys {missing}")
  if assignment.get("format", FORMAT) != FORMAT:
    raise ValueError(f"assignment format {assignment['format']!r} is not {FORMAT!r}")
  menu = assignment["menu"]
  if not isinstance(menu, list) or not menu:
    raise ValueError(f"assignment 'menu' must be a non-empty list of scheme names, got {menu!r}")
  try:
    menu_names = [parse_scheme(s).name for s in menu]
  except (TypeError, ValueError) as e:
    raise ValueError(f"assignment 'menu': {e}") from e
  if len(set(menu_names)) != len(menu_names):
    raise ValueError(f"assignment 'menu' repeats schemes: {menu}")
  r = assignment["r"]
  if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
    raise ValueError(f"assignment 'r' must be a number in [0, 1], got {r!r}")
  budget = assignment["budget_bits"]
  if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 16:
    raise ValueError(f"assignment 'budget_bits' (average bits per weight) must be in (0, 16], got {budget!r}")
  if not isinstance(assignment["cost_source"], str) or not assignment["cost_source"]:
    raise ValueError("assignment 'cost_source' must be a non-empty string")
  layers = assignment["layers"]
  if not isinstance(layers, Mapping) or not layers:
    raise ValueError("assignment 'layers' must be a non-empty object {layer index: {...}}")
  for layer, blocks in layers.items():
    if not (isinstance(layer, str) and layer.isdigit()):
      raise ValueError(f"assignment layer keys are layer indices written as strings, got {layer!r}")
    if not isinstance(blocks, Mapping) or set(blocks) != set(KINDS):
      got = sorted(blocks) if isinstance(blocks, Mapping) else type(blocks).__name__
      raise ValueError(f"assignment layer {layer} must have exactly the keys {list(KINDS)}, got {got}")
    lengths = {kind: len(blocks[kind]) if isinstance(blocks[kind], list) else None for kind in KINDS}
    if None in lengths.values() or len(set(lengths.values())) != 1 or 0 in lengths.values():
      raise ValueError(f"assignment layer {layer}: 'gate_up' and 'down' must be non-empty lists of equal length "
                       f"(one scheme per expert), got lengths {lengths}")
    for kind in KINDS:
      for expert, name in enumerate(blocks[kind]):
        try:
          canonical = parse_scheme(name).name
        except (TypeError, ValueError) as e:
          raise ValueError(f"assignment layer {layer} {kind}[{expert}]: {e}") from e
        if canonical not in menu_names:
          raise ValueError(f"assignment layer {layer} {kind}[{expert}] is {name!r}, not in the menu {menu_names}")
  return dict(assignment)


def _non_finite_keys(value: Any, where: str = "") -> list[str]:
  """Paths (like `layer_stats/3/loss`) of the NaN and infinite numbers inside `value`."""
  if isinstance(value, float):
    return [] if math.isfinite(value) else [where or "(top level)"]
  if isinstance(value, Mapping):
    return [p for key, item in value.items() for p in _non_finite_keys(item, f"{where}/{key}" if where else str(key))]
  if isinstance(value, (list, tuple)):
    return [p for i, item in enumerate(value) for p in _non_finite_keys(item, f"{where}[{i}]")]
  return []


def save_assignment(path: str | os.PathLike, assignment: Mapping) -> None:
  """Validates and writes `assignment` as indented JSON (parent folders created).

  Everything `load_assignment` would refuse is refused before the file is touched, and the
  new text replaces the old file in one rename: an existing file is never left half written.
  """
  assignment = validate_assignment(assignment)
  bad = _non_finite_keys(assignment)
  if bad:
    raise ValueError(f"assignment holds non-finite numbers (strict JSON has none) at {bad}; {path} is unchanged")
  try:
    text = json.dumps(assignment, indent=2, allow_nan=False) + "\n"
  except (TypeError, ValueError) as e:
    raise ValueError(f"assignment is not JSON-serializable: {e}; {path} is unchanged") from e
  validate_assignment(json.loads(text))  # What will be read back, not just what was passed.
  files.write_text(path, text, make_parents=True)


def load_assignment(path: str | os.PathLike) -> dict:
  """The validated assignment in the JSON file at `path`."""
  try:
    with open(path) as f:
      assignment = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"assignment file {path} is not valid JSON: {e}") from e
  return validate_assignment(assignment)


def layer_schemes(assignment: Mapping, layer: int) -> dict[str, list[str]]:
  """{"gate_up": [...], "down": [...]} of one layer (shared experts last)."""
  layers = assignment["layers"]
  if str(layer) not in layers:
    raise KeyError(f"the assignment has no layer {layer}; it has {sorted(layers, key=int)}")
  return {kind: list(layers[str(layer)][kind]) for kind in KINDS}
