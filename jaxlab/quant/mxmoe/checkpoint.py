"""Saving and loading quantized model params: arrays in safetensors, the quantization layout in JSON.

A quantized param tree is a nested dict whose leaves are arrays or `ExpertWeights` (packed
codes, scales and zeros of several scheme stacks). `save_quantized` writes every array under
its tree path (`layers_0/moe/gate_up/stacks/1/scale`) to `params.safetensors` and the static
part of each `ExpertWeights` (schemes, expert -> stack and slot maps, K and N) to
`quantization.json`, next to the assignment that produced it. `load_quantized` rebuilds the
tree. Writes go to a temporary folder that is renamed into place: a crash leaves no half
checkpoint, and an existing folder is only replaced with `overwrite=True`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np
from safetensors.numpy import load_file, save_file

from jaxlab.quant.experts import ExpertWeights
from jaxlab.quant.scheme import parse_scheme
from jaxlab.quant.weights import QuantizedWeight

_ARRAYS = "params.safetensors"
_LAYOUT = "quantization.json"
_FORMAT = "jaxlab.quantized_params/1"


def _flatten(tree, prefix: str, arrays: dict, layouts: dict) -> None:
  if isinstance(tree, Mapping):
    for key, value in tree.items():
      _flatten(value, f"{prefix}/{key}" if prefix else str(key), arrays, layouts)
  elif isinstance(tree, ExpertWeights):
    layouts[prefix] = {
        "schemes": [s.name for s in tree.schemes], "expert_scheme": list(tree.expert_scheme),
        "expert_slot": list(tree.expert_slot), "in_features": tree.in_features, "out_features": tree.out_features,
        "has_scale": [s.scale is not None for s in tree.stacks], "has_zero": [s.zero is not None for s in tree.stacks],
    }
    for index, stack in enumerate(tree.stacks):
      for field in ("packed", "scale", "zero"):
        value = getattr(stack, field)
        if value is not None:
          arrays[f"{prefix}/stacks/{index}/{field}"] = np.ascontiguousarray(np.asarray(value))
  elif hasattr(tree, "shape"):
    arrays[prefix] = np.ascontiguousarray(np.asarray(tree))
  else:
    raise TypeError(f"cannot save a {type(tree).__name__} at {prefix!r}: leaves are arrays or ExpertWeights")


def save_quantized(path: str | os.PathLike, params, *, assignment: Mapping | None = None, overwrite: bool = False,
                   extra: Mapping | None = None) -> pathlib.Path:
  """Writes `params` (arrays and ExpertWeights) to folder `path`; returns the path."""
  path = pathlib.Path(path)
  if path.exists() and any(path.iterdir()) and not overwrite:
    raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True to replace it")
  arrays, layouts = {}, {}
  _flatten(params, "", arrays, layouts)
  path.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
  try:
    save_file(arrays, str(staging / _ARRAYS))
    meta = {"format": _FORMAT, "expert_weights": layouts, "assignment": assignment, **dict(extra or {})}
    (staging / _LAYOUT).write_text(json.dumps(meta, indent=2) + "\n")
    if path.exists():
      shutil.rmtree(path)
    os.replace(staging, path)
  finally:
    if staging.exists():
      shutil.rmtree(staging)
  return path


def _set(tree: dict, parts: list[str], value) -> None:
  for part in parts[:-1]:
    tree = tree.setdefault(part, {})
  tree[parts[-1]] = value


def load_quantized(path: str | os.PathLike) -> tuple[dict, dict]:
  """(params, metadata) from a folder written by `save_quantized`."""
  path = pathlib.Path(path)
  for name in (_ARRAYS, _LAYOUT):
    if not (path / name).is_file():
      raise FileNotFoundError(f"{path} is not a quantized checkpoint: {name} is missing")
  meta = json.loads((path / _LAYOUT).read_text())
  if meta.get("format") != _FORMAT:
    raise ValueError(f"{path / _LAYOUT} has format {meta.get('format')!r}, expected {_FORMAT!r}")
  arrays = load_file(str(path / _ARRAYS))
  layouts = meta["expert_weights"]
  params: dict = {}
  for key, value in arrays.items():
    if not any(key.startswith(prefix + "/stacks/") for prefix in layouts):
      _set(params, key.split("/"), value)
  for prefix, layout in layouts.items():
    stacks = []
    for index, scheme in enumerate(layout["schemes"]):
      get = lambda field: arrays.get(f"{prefix}/stacks/{index}/{field}")
      stacks.append(QuantizedWeight(packed=get("packed"), scale=get("scale"), zero=get("zero"),
                                    scheme=parse_scheme(scheme), in_features=layout["in_features"],
                                    out_features=layout["out_features"]))
    _set(params, prefix.split("/"), ExpertWeights(tuple(stacks), tuple(layout["expert_scheme"]),
                                                  tuple(layout["expert_slot"])))
  return params, meta
