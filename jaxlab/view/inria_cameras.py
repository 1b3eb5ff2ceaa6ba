"""The `cameras.json` that the INRIA 3DGS training code writes beside its model.

It is a JSON list with one entry per training view (`utils/camera_utils.py:camera_to_JSON`):

  {"id": 0, "img_name": "DSC0001", "width": 1297, "height": 840,
   "position": [x, y, z], "rotation": [[r00, r01, r02], [r10, r11, r12], [r20, r21, r22]],
   "fx": 1163.2, "fy": 1158.4}

`rotation` and `position` are the camera-to-world rotation (rows) and the camera centre, with
OpenCV (COLMAP) axes, so they are a `CameraPreset` pose as they stand.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from jaxlab.view.errors import SourceError
from jaxlab.view.presets import CameraPreset

# Largest |R^T R - I| entry accepted: far above six written decimals, far below any shear.
ROTATION_TOLERANCE = 1e-3


def _numbers(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
  """float64 array of `shape` from nested JSON numbers, else None (bools and strings refused)."""
  flat = np.asarray(value, dtype=object).reshape(-1) if isinstance(value, list) else None
  if flat is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
    return None
  array = np.asarray(value, np.float64)
  return array if array.shape == shape and np.all(np.isfinite(array)) else None


def _positive(entry: dict, key: str, kind: type) -> float | None:
  value = entry.get(key)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
    return None
  return None if kind is int and value != int(value) else value


def _preset(entry: Any, where: str) -> CameraPreset:
  if not isinstance(entry, dict):
    raise SourceError(f"{where} is not an object")
  problems = []
  try:
    rotation_33 = _numbers(entry.get("rotation"), (3, 3))
    position_3 = _numbers(entry.get("position"), (3,))
  except ValueError:  # ragged lists
    rotation_33 = position_3 = None
  if rotation_33 is None:
    problems.append(f"rotation must be 3 rows of 3 finite numbers; got {entry.get('rotation')!r}")
  elif (np.max(np.abs(rotation_33.T @ rotation_33 - np.eye(3))) > ROTATION_TOLERANCE
        or np.linalg.det(rotation_33) <= 0):
    problems.append(f"rotation {rotation_33.tolist()} is not a rotation matrix")
  if position_3 is None:
    problems.append(f"position must be 3 finite numbers; got {entry.get('position')!r}")
  for key, kind in (("width", int), ("height", int), ("fx", float), ("fy", float)):
    if _positive(entry, key, kind) is None:
      problems.append(f"{key} must be a positive {'integer' if kind is int else 'number'}; got {entry.get(key)!r}")
  if problems:
    raise SourceError(f"{where}: {'; '.join(problems)}")
  pose_44 = np.eye(4)
  pose_44[:3, :3] = rotation_33
  pose_44[:3, 3] = position_3
  name = str(entry.get("img_name", entry.get("id", "")))
  return CameraPreset(name, pose_44, 2.0 * math.atan(entry["height"] / (2.0 * entry["fy"])))


def read_inria_cameras(path: str | os.PathLike) -> list[CameraPreset]:
  """The presets of a 3DGS `cameras.json`, in file order; names are the `img_name` entries.

  Raises:
    SourceError: naming the file (and the entry and field) for a missing or non-JSON file,
      a top level that is not a list, or an entry without a valid pose, size or focal length.
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      entries = json.load(f)
  except OSError as e:
    raise SourceError(f"{path}: cannot read the cameras file ({e.strerror or e})") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise SourceError(f"{path} is not valid UTF-8 JSON: {e}") from None
  if not isinstance(entries, list):
    raise SourceError(f"{path} must hold a JSON list of cameras (the 3DGS cameras.json layout); got {type(entries).__name__}")
  return [_preset(entry, f"{path} entry {i}") for i, entry in enumerate(entries)]
