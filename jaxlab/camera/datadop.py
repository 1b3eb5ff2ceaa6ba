"""Reading and writing shots in the DataDoP per-shot file layout.

A shot `<name>` in a folder is four files:
  <name>_transforms_cleaning.json  NeRF-style: "w", "h" (pixels), "fl_x", "fl_y", "cx", "cy", and
                                   "frames": [{"transform_matrix": 4x4 c2w, "monst3r_im_id": i + 1}, ...]
                                   (120 frames in DataDoP)
  <name>_caption.json              "Movement" (motion caption), "Detailed Interaction" and
                                   "Concise Interaction" (directorial captions)
  <name>_rgb.png, <name>_depth.npy the first frame's colour and depth
(DataDoP also ships the raw MonST3R `_traj.txt` and `_intrinsics.txt`; they are not read here.)

Axes: DataDoP built `transform_matrix` from MonST3R's OpenCV-axis c2w by negating the rotation's
y and z columns, so the file holds OpenGL camera axes (x right, y up, z backward). Shots here hold
OpenCV axes (x right, y down, z forward): reading and writing both multiply by diag(1, -1, -1, 1) on
the right. Positions are unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os

import numpy as np
from PIL import Image

from jaxlab import files
from jaxlab.camera.trajectory import TrajectoryError, check_trajectory, clean

_TRANSFORMS = "_transforms_cleaning.json"
_CAPTION = "_caption.json"
_RGB = "_rgb.png"
_DEPTH = "_depth.npy"
_CAPTION_KEYS = ("Movement", "Detailed Interaction", "Concise Interaction")
# Right-multiplying a c2w by this swaps OpenGL and OpenCV camera axes (its own inverse).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclasses.dataclass(frozen=True, eq=False)
class Shot:
  """One DataDoP shot. `c2w_n44` float64 [N, 4, 4] in OpenCV axes; intrinsics in pixels."""
  name: str
  c2w_n44: np.ndarray
  fl_x: float
  fl_y: float
  cx: float
  cy: float
  width: int
  height: int
  motion_caption: str
  directorial_caption: str  # "Detailed Interaction"
  concise_caption: str  # "Concise Interaction"
  rgb_hw3: np.ndarray | None = None  # uint8
  depth_hw: np.ndarray | None = None  # float32


def _number(obj: dict, key: str, path: str, *, positive: bool) -> float:
  if key not in obj:
    raise TrajectoryError(f"{path}: missing key {key!r}")
  value = obj[key]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
      or (positive and value <= 0):
    kind = "a positive finite number" if positive else "a finite number"
    raise TrajectoryError(f"{path}: {key!r} must be {kind}, got {value!r}")
  return float(value)


def _size(obj: dict, key: str, path: str) -> int:
  value = _number(obj, key, path, positive=True)
  if value != int(value):
    raise TrajectoryError(f"{path}: {key!r} must be a whole number of pixels, got {value!r}")
  return int(value)


def _read_transforms(path: str) -> dict:
  """Intrinsics and the OpenCV-axis c2w of a `_transforms_cleaning.json` file, checked."""
  obj = files.read_json_object(path)
  out = {key: _number(obj, key, path, positive=key.startswith("fl_")) for key in ("fl_x", "fl_y", "cx", "cy")}
  out["width"], out["height"] = _size(obj, "w", path), _size(obj, "h", path)
  frames = obj.get("frames")
  if not isinstance(frames, list) or not frames:
    raise TrajectoryError(f"{path}: 'frames' must be a non-empty list, got {type(frames).__name__}")
  c2w_gl = np.tile(np.eye(4), (len(frames), 1, 1))
  for i, frame in enumerate(frames):
    if not isinstance(frame, dict) or "transform_matrix" not in frame:
      raise TrajectoryError(f"{path}: frame {i} has no 'transform_matrix'")
    try:
      matrix = np.array(frame["transform_matrix"])  # no dtype: strings must not pass as numbers
    except (TypeError, ValueError):
      matrix = None
    if matrix is None or matrix.dtype.kind not in "iuf" or matrix.shape not in ((4, 4), (3, 4)):
      raise TrajectoryError(f"{path}: frame {i}: 'transform_matrix' must be a 4x4 (or 3x4) array of numbers")
    c2w_gl[i, :matrix.shape[0]] = matrix
  try:
    out["c2w_n44"] = check_trajectory(c2w_gl @ _FLIP_YZ)
  except TrajectoryError as e:
    raise TrajectoryError(f"{path}: {e}") from None
  return out


def _read_captions(path: str) -> dict[str, str]:
  obj = files.read_json_object(path)
  for key in _CAPTION_KEYS:
    if key not in obj:
      raise ValueError(f"{path}: missing caption key {key!r} (has {sorted(obj)})")
    if not isinstance(obj[key], str):
      raise ValueError(f"{path}: caption {key!r} must be a string, got {type(obj[key]).__name__}")
  return {key: obj[key] for key in _CAPTION_KEYS}


def _read_rgb(path: str) -> np.ndarray:
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("RGB"), dtype=np.uint8)
  except FileNotFoundError:
    raise
  except OSError as e:  # PIL's UnidentifiedImageError is an OSError
    raise ValueError(f"{path} is not a readable image: {e}") from None


def _read_depth(path: str) -> np.ndarray:
  try:
    depth = np.load(path, allow_pickle=False)
  except FileNotFoundError:
    raise
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is not a readable .npy array: {e}") from None
  if depth.ndim == 3 and depth.shape[-1] == 1:
    depth = depth[..., 0]
  if depth.ndim != 2 or depth.dtype.kind not in "fiu":
    raise ValueError(f"{path}: depth must be a numeric [H, W] array, got {depth.dtype} {list(depth.shape)}")
  depth = depth.astype(np.float32)
  files.require_finite(depth, path)
  return depth


def read_shot(folder: str | os.PathLike, shot_name: str, *, require_rgbd: bool = False) -> Shot:
  """The shot `shot_name` in `folder` (OpenCV axes, as stored: not cleaned or resampled).

  The transforms and caption files must exist; a missing `_rgb.png` / `_depth.npy` gives None
  unless `require_rgbd`.

  Raises:
    FileNotFoundError: a required file is missing (its path named).
    files.JSONFileError: a JSON file does not parse (path, line and column named).
    TrajectoryError: bad intrinsics or poses (file and frame named).
    ValueError: a missing caption key, an unreadable image or depth array (file named).
  """
  prefix = os.path.join(os.fspath(folder), shot_name)
  for suffix in (_TRANSFORMS, _CAPTION) + ((_RGB, _DEPTH) if require_rgbd else ()):
    if not os.path.isfile(prefix + suffix):
      raise FileNotFoundError(f"shot {shot_name!r}: missing file {prefix + suffix}")
  transforms = _read_transforms(prefix + _TRANSFORMS)
  captions = _read_captions(prefix + _CAPTION)
  rgb = _read_rgb(prefix + _RGB) if os.path.isfile(prefix + _RGB) else None
  depth = _read_depth(prefix + _DEPTH) if os.path.isfile(prefix + _DEPTH) else None
  return Shot(name=shot_name, motion_caption=captions["Movement"],
              directorial_caption=captions["Detailed Interaction"],
              concise_caption=captions["Concise Interaction"], rgb_hw3=rgb, depth_hw=depth, **transforms)


def find_shots(root: str | os.PathLike) -> list[tuple[str, str]]:
  """(folder, shot_name) of every `<shot_name>_transforms_cleaning.json` under `root`, at any depth,
  sorted."""
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"DataDoP root {root} is not a directory")
  found = []
  for folder, _, names in os.walk(root):
    found += [(folder, name[:-len(_TRANSFORMS)]) for name in names
              if name.endswith(_TRANSFORMS) and len(name) > len(_TRANSFORMS) and not name.startswith(".")]
  return sorted(found)


def read_datadop(root: str | os.PathLike, *, clean_to: int | None = 120, require_rgbd: bool = False) -> list[Shot]:
  """Every shot under `root`, with its trajectory passed through `trajectory.clean` (check, light
  smoothing, resampling to `clean_to` frames); `clean_to=None` keeps the stored poses.

  Raises:
    FileNotFoundError: `root` missing or holding no shot; errors of `read_shot` and `clean`, naming
    the shot's files.
  """
  shots = []
  for folder, name in find_shots(root):
    shot = read_shot(folder, name, require_rgbd=require_rgbd)
    if clean_to is not None:
      try:
        shot = dataclasses.replace(shot, c2w_n44=clean(shot.c2w_n44, num=clean_to))
      except TrajectoryError as e:
        raise TrajectoryError(f"{os.path.join(folder, name + _TRANSFORMS)}: {e}") from None
    shots.append(shot)
  if not shots:
    raise FileNotFoundError(f"no *{_TRANSFORMS} file under {os.fspath(root)}")
  return shots


def write_shot(folder: str | os.PathLike, shot: Shot) -> None:
  """Writes `shot` as `<name>_transforms_cleaning.json` (OpenGL axes, like DataDoP), `<name>_caption.json`
  and, where the shot has them, `<name>_rgb.png` and `<name>_depth.npy`; `folder` is created if missing.
  Each file is written atomically."""
  if not shot.name or os.sep in shot.name or (os.altsep and os.altsep in shot.name):
    raise ValueError(f"shot name must be a plain file-name prefix, got {shot.name!r}")
  c2w_gl = check_trajectory(shot.c2w_n44) @ _FLIP_YZ
  prefix = os.path.join(os.fspath(folder), shot.name)
  transforms = {
      "w": int(shot.width), "h": int(shot.height), "fl_x": float(shot.fl_x), "fl_y": float(shot.fl_y),
      "cx": float(shot.cx), "cy": float(shot.cy),
      "frames": [{"transform_matrix": m.tolist(), "monst3r_im_id": i + 1} for i, m in enumerate(c2w_gl)],
  }
  captions = {"Movement": shot.motion_caption, "Detailed Interaction": shot.directorial_caption,
              "Concise Interaction": shot.concise_caption}
  rgb_png = depth_npy = None
  if shot.rgb_hw3 is not None:  # encode before writing anything, so a bad image leaves no half shot
    rgb = np.asarray(shot.rgb_hw3)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
      raise ValueError(f"shot {shot.name!r}: rgb_hw3 must be uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    rgb_png = buffer.getvalue()
  if shot.depth_hw is not None:
    depth = np.asarray(shot.depth_hw)
    if depth.ndim != 2:
      raise ValueError(f"shot {shot.name!r}: depth_hw must be [H, W], got {list(depth.shape)}")
    buffer = io.BytesIO()
    np.save(buffer, depth.astype(np.float32), allow_pickle=False)
    depth_npy = buffer.getvalue()
  files.write_json(prefix + _TRANSFORMS, transforms, indent=4, sort_keys=False, make_parents=True)
  files.write_json(prefix + _CAPTION, captions, indent=4, sort_keys=False)
  if rgb_png is not None:
    files.write_bytes(prefix + _RGB, rgb_png)
  if depth_npy is not None:
    files.write_bytes(prefix + _DEPTH, depth_npy)
