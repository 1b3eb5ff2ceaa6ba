"""A `configs/splat_fit.py` run folder as a viewer source, followed while the run writes it.

The run writes `checkpoints/<step>/` (orbax: the `state` item is the `FitState`, whose
`params` is the `Gaussians` buffer), `point_cloud/iteration_<N>/point_cloud.ply` at the end,
and `config.json`. `RunSource.poll` returns the newest readable state each time a newer one
appears.

Everything here only reads. Unlike `Checkpointer.restore_latest`, which sets damaged steps
aside, nothing in the run folder is ever moved, renamed or deleted: a damaged step, or one
that the run's keep=K rotation deletes while it is being read, is skipped and reported in
`status()`, and tried again once its files change.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxlab.files import read_json_object
from jaxlab.splat.datasets import load_cameras
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.synthetic import ensure_default_scene
from jaxlab.splat.validate import check_gaussians
from jaxlab.view.errors import SourceError
from jaxlab.view.ply_source import active_means, read_gaussians
from jaxlab.view.presets import CameraPreset, presets_around, presets_from_cameras

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
STATE_ITEM = "state"  # jaxlab.checkpoint's name for the train-state item
GAUSSIAN_FIELDS = tuple(field.name for field in dataclasses.fields(Gaussians))
_MAX_REASON_CHARS = 160


@dataclasses.dataclass(frozen=True, eq=False)
class Snapshot:
  """One readable state of the run: its Gaussians buffer (inactive slots included), step and a label."""

  gaussians: Gaussians
  step: int
  label: str


# ----------------------------------------------------------------------------- reading


def read_checkpoint_gaussians(step_dir: str | os.PathLike) -> Gaussians:
  """The `params` Gaussians of the orbax step folder `step_dir` (`<run>/checkpoints/<step>`), read-only.

  Only the params leaves are read (partial restore), as host arrays, so any device count
  or sharding the run saved with is fine; they are then put on the default device.

  Raises:
    ValueError: `params` is not a Gaussians pytree, or its active rows are not finite.
    Anything orbax or tensorstore raise for missing, partial or damaged files.
  """
  state_dir = epath.Path(step_dir) / STATE_ITEM
  handler = ocp.PyTreeCheckpointHandler()
  tree = handler.metadata(state_dir).tree
  params = tree.get("params") if isinstance(tree, dict) else None
  if not isinstance(params, dict) or sorted(params) != sorted(GAUSSIAN_FIELDS):
    found = sorted(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(f"{state_dir}: params is not a Gaussians pytree (fields {found}, expected {list(GAUSSIAN_FIELDS)})")
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), params)
  args = ocp.args.PyTreeRestore(item={"params": params}, restore_args={"params": as_numpy}, partial_restore=True)
  with ocp.Checkpointer(handler) as checkpointer:
    arrays = checkpointer.restore(state_dir, args=args)["params"]
  gaussians = Gaussians(**{name: np.asarray(arrays[name]) for name in GAUSSIAN_FIELDS})
  check_gaussians(gaussians)  # shapes, dtypes, and finite active rows
  return jax.tree.map(jnp.asarray, gaussians)


def _files_signature(path: pathlib.Path) -> tuple:
  """(relative path, size, mtime) of every file under `path` (or of `path` itself): changes when its files do."""
  if path.is_file():
    stat = path.stat()
    return ((path.name, stat.st_size, stat.st_mtime_ns),)
  entries = []
  for root, _, names in os.walk(path):
    for name in names:
      file_path = os.path.join(root, name)
      try:
        stat = os.stat(file_path)
      except OSError:  # deleted while listing
        continue
      entries.append((os.path.relpath(file_path, path), stat.st_size, stat.st_mtime_ns))
  return tuple(sorted(entries))


def _entries(folder: pathlib.Path) -> list[pathlib.Path]:
  """The entries of `folder`; none when it is missing (or removed while listing)."""
  try:
    return list(folder.iterdir())
  except OSError:
    return []


def _one_line(error: BaseException) -> str:
  text = (str(error).strip().splitlines() or [""])[0]
  text = text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS - 3] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ----------------------------------------------------------------------------- config


def _background(data: dict[str, Any]) -> tuple[float, float, float] | None:
  value = data.get("background")
  if (isinstance(value, (list, tuple)) and len(value) == 3
      and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in value)):
    return tuple(float(c) for c in value)
  return None


def dataset_presets(data: dict[str, Any]) -> list[CameraPreset]:
  """The cameras of a splat_fit config's `data` section, test views first, named by image.

  An empty `data.path` is the embedded scene (`ensure_default_scene` with the `synthetic_*` keys).

  Raises:
    KeyError, TypeError, ValueError, OSError: naming what could not be read.
  """
  if data.get("path"):
    root, data_format = pathlib.Path(data["path"]).expanduser(), data.get("format", "auto")
  else:
    root = ensure_default_scene(
        width=data["synthetic_width"], height=data["synthetic_height"], num_train=data["synthetic_num_train"],
        num_test=data["synthetic_num_test"], num_points=data["synthetic_num_points"])
    data_format = "blender"
  presets, errors = [], []
  for split in ("test", "train"):
    try:
      cameras, names = load_cameras(root, format=data_format, split=split, test_every=data.get("test_every", 8))
    except (OSError, ValueError) as e:  # one split may be empty or missing; the other still gives cameras
      errors.append(e)
      continue
    presets += presets_from_cameras(cameras, names)
  if not presets and errors:
    raise errors[0]
  return presets


# ----------------------------------------------------------------------------- the source


class RunSource:
  """A splat_fit run folder; `poll()` returns a `Snapshot` whenever a newer readable state exists."""

  kind = "run"

  def __init__(self, workdir: str | pathlib.Path):
    self.path = pathlib.Path(workdir)
    if not self.path.is_dir():
      raise SourceError(f"{self.path} does not exist" if not self.path.exists() else f"{self.path} is not a folder")
    self.background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    self.presets: list[CameraPreset] = []
    self._last: Snapshot | None = None
    self._last_count = 0
    self._failed: dict[tuple[str, int], tuple[tuple, str]] = {}  # (kind, step) -> (files signature, reason)
    self._problems: list[str] = []
    self._presets_note = self._read_config()

  def _read_config(self) -> str:
    """Sets background and presets from config.json; returns why presets will come from the Gaussians, or ""."""
    path = self.path / CONFIG_FILE
    if not path.is_file():
      return f"no {CONFIG_FILE}"
    try:
      data = read_json_object(path).get("data")
      if not isinstance(data, dict):
        return f"{CONFIG_FILE} has no data section"
      self.background = _background(data) or self.background
      self.presets = dataset_presets(data)
    except (OSError, ValueError, KeyError, TypeError) as e:  # the run is viewable without its dataset
      return f"dataset cameras unavailable ({_one_line(e)})"
    return "" if self.presets else "the dataset has no cameras"

  def _candidates(self) -> list[tuple[int, str, pathlib.Path]]:
    """(step, kind, path) of every checkpoint step and final PLY, newest first; a checkpoint before a PLY of its step."""
    # Integer names only: orbax writes a step under a temporary name and renames it when complete.
    found = [(int(p.name), 0, "checkpoint", p)
             for p in _entries(self.path / CHECKPOINTS) if p.name.isdigit() and p.is_dir()]
    for folder in _entries(self.path / "point_cloud"):
      number, ply = folder.name.removeprefix("iteration_"), folder / "point_cloud.ply"
      if folder.name.startswith("iteration_") and number.isdigit() and ply.is_file():
        found.append((int(number), 1, "ply", ply))
    return [(step, kind, path) for step, _, kind, path in sorted(found, key=lambda f: (-f[0], f[1]))]

  def _label(self, step: int, kind: str, path: pathlib.Path) -> str:
    return f"checkpoint step {step}" if kind == "checkpoint" else str(path.relative_to(self.path))

  def _read(self, step: int, kind: str, path: pathlib.Path) -> tuple[Snapshot | None, str]:
    """(snapshot, "") or (None, why not); a failure is remembered until the files change."""
    label = self._label(step, kind, path)
    try:
      signature = _files_signature(path)
    except OSError as e:  # deleted since the listing
      return None, f"{label} vanished ({_one_line(e)})"
    failed = self._failed.get((kind, step))
    if failed is not None and failed[0] == signature:
      return None, failed[1]
    try:
      gaussians = read_checkpoint_gaussians(path) if kind == "checkpoint" else read_gaussians(path)
    except Exception as e:  # orbax and tensorstore raise many types for missing, partial or damaged files
      reason = f"{label} unreadable ({_one_line(e)})"
      self._failed[(kind, step)] = (signature, reason)
      return None, reason
    self._failed.pop((kind, step), None)
    return Snapshot(gaussians=gaussians, step=step, label=label), ""

  def poll(self) -> Snapshot | None:
    """The newest readable state if it is newer than the one last returned, else None; never raises for bad files."""
    if self._presets_note == f"no {CONFIG_FILE}" and (self.path / CONFIG_FILE).is_file():
      self._presets_note = self._read_config()  # the viewer started before the run wrote its config
    newest = self._last.step if self._last is not None else -1
    candidates = self._candidates()
    listed = {(kind, step) for step, kind, _ in candidates}
    self._failed = {key: value for key, value in self._failed.items() if key in listed}
    problems = []
    for step, kind, path in candidates:
      if step <= newest:
        break
      snapshot, problem = self._read(step, kind, path)
      if snapshot is not None:
        self._problems = problems
        self._accept(snapshot)
        return snapshot
      problems.append(problem)
    self._problems = problems
    return None

  def _accept(self, snapshot: Snapshot) -> None:
    self._last = snapshot
    self._last_count = int(np.sum(np.asarray(snapshot.gaussians.active)))
    if not self.presets:
      self.presets = presets_around(active_means(snapshot.gaussians))

  def status(self) -> str:
    """One line: what is shown, what was skipped, and why presets are an orbit (if they are)."""
    if self._last is None:
      parts = [f"waiting for the first checkpoint in {self.path / CHECKPOINTS}"]
    else:
      parts = [f"{self._last.label} ({self._last_count:,} Gaussians)"]
    parts += [f"skipped {problem}" for problem in self._problems]
    if self._presets_note:
      parts.append(f"camera presets around the Gaussians: {self._presets_note}")
    return "; ".join(parts)
