"""Saving and loading quantized model params: arrays in safetensors, the quantization layout in JSON.

A quantized param tree is a nested dict whose leaves are arrays or `ExpertWeights` (packed
codes, scales and zeros of several scheme stacks). `save_quantized` writes every array under
its tree path (`layers_0/moe/gate_up/stacks/1/scale`) to `params.safetensors` and the static
part of each `ExpertWeights` (schemes, expert -> stack and slot maps, K and N) to
`quantization.json`, next to the assignment that produced it. `load_quantized` rebuilds the
tree. Writes go to a hidden sibling folder that is renamed into place: a crash leaves no half
checkpoint and never costs the previous one. An existing folder is only replaced with
`overwrite=True`, and only if it holds nothing but a checkpoint's own two files: a folder
with anything else in it is refused, so no file this module did not write is ever deleted.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
import shutil
from collections.abc import Mapping

import numpy as np
from safetensors.numpy import load_file, save_file

from jaxlab import files
from jaxlab.quant_formats.experts import ExpertWeights
from jaxlab.quant_formats.scheme import parse_scheme
from jaxlab.quant_formats.weights import QuantizedWeight

_ARRAYS = "params.safetensors"
_LAYOUT = "quantization.json"
_FORMAT = "jaxlab.quantized_params/1"
_OWN_FILES = (_ARRAYS, _LAYOUT)

log = logging.getLogger(__name__)


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


def _check_destination(path: pathlib.Path, overwrite: bool) -> None:
  """Raises unless `path` is absent, an empty folder, or (with overwrite) a folder of only our files."""
  if path.is_symlink() or (path.exists() and not path.is_dir()):
    raise FileExistsError(f"{path} exists and is not a folder; a checkpoint is a folder")
  if not path.exists():
    return
  entries = sorted(path.iterdir())
  if entries and not overwrite:
    raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True to replace it")
  foreign = [e.name for e in entries if e.name not in _OWN_FILES or e.is_symlink() or not e.is_file()]
  if foreign:
    raise FileExistsError(f"{path} holds files that are not part of a checkpoint ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''}); refusing to replace it: save elsewhere or "
                          "move them out first")


def _remove_own_files(folder: pathlib.Path) -> None:
  """Deletes the checkpoint files in `folder`, then the folder if nothing else is in it."""
  for name in _OWN_FILES:
    (folder / name).unlink(missing_ok=True)
  try:
    folder.rmdir()
  except OSError:
    log.warning("left %s in place: it holds files that are not part of a checkpoint", folder)


def _sibling_folder(path: pathlib.Path, suffix: str) -> pathlib.Path:
  """A new empty hidden folder next to `path`; unlike mkdtemp's, its mode follows the umask."""
  for _ in range(16):
    folder = path.parent / f".{path.name}.{secrets.token_hex(6)}.{suffix}"
    try:
      folder.mkdir()
      return folder
    except FileExistsError:
      continue
  raise FileExistsError(f"could not create a temporary folder next to {path}")


def _fsync_file(path: pathlib.Path) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _move_into_place(staging: pathlib.Path, path: pathlib.Path) -> None:
  """Renames the finished `staging` folder to `path`, setting an existing checkpoint aside first.

  The old folder is renamed to a hidden sibling, not deleted, until the new one has its name;
  if that rename fails the old one is put back. Between the two renames `path` is briefly
  absent, but both checkpoints are whole on disk throughout.
  """
  if not path.exists():
    os.rename(staging, path)
    return
  shutil.copymode(path, staging)  # The replaced folder keeps its permissions.
  retired = _sibling_folder(path, "old")
  os.rename(path, retired)  # Takes over the reserved, empty name.
  try:
    os.rename(staging, path)
  except BaseException:
    os.rename(retired, path)
    raise
  _remove_own_files(retired)


def save_quantized(path: str | os.PathLike, params, *, assignment: Mapping | None = None, overwrite: bool = False,
                   extra: Mapping | None = None) -> pathlib.Path:
  """Writes `params` (arrays and ExpertWeights) to folder `path`; returns the path.

  Raises FileExistsError if `path` is a non-empty folder and `overwrite` is False, or if it
  holds anything besides a checkpoint's own files (whatever `overwrite` says), and ValueError
  if the metadata is not strict JSON (NaN, infinity); in every case before anything is written.
  """
  path = pathlib.Path(path)
  _check_destination(path, overwrite)
  arrays, layouts = {}, {}
  _flatten(params, "", arrays, layouts)
  meta = {"format": _FORMAT, "expert_weights": layouts, "assignment": assignment, **dict(extra or {})}
  try:
    layout_text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
  except ValueError as e:
    raise ValueError(f"checkpoint metadata (assignment, extra) is not strict JSON: {e}; nothing was written") from e
  path.parent.mkdir(parents=True, exist_ok=True)
  staging = _sibling_folder(path, "tmp")
  try:
    save_file(arrays, str(staging / _ARRAYS))
    _fsync_file(staging / _ARRAYS)
    files.write_text(staging / _LAYOUT, layout_text)
    _check_destination(path, overwrite)  # Again: the folder may have gained files meanwhile.
    _move_into_place(staging, path)
  finally:
    if staging.exists():
      shutil.rmtree(staging)  # Our own temporary folder, holding only what was just written.
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
