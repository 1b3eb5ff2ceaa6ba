"""A 3DGS PLY file as a viewer source (read once; the file is never written)."""

from __future__ import annotations

import pathlib

import numpy as np

from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.ply import load_ply
from jaxlab.view.errors import SourceError, naming
from jaxlab.view.inria_cameras import read_inria_cameras
from jaxlab.view.presets import CameraPreset, presets_around

CAMERAS_FILE = "cameras.json"


def read_gaussians(path: pathlib.Path) -> Gaussians:
  """The Gaussians of the PLY at `path` (all active, SH degree 0..3); SourceError naming the file otherwise."""
  if not path.exists():
    raise SourceError(f"{path} does not exist")
  if not path.is_file():
    raise SourceError(f"{path} is not a file (expected a 3DGS .ply)")
  try:
    return load_ply(path)
  except (ValueError, OSError) as e:
    raise naming(path, e) from None


def cameras_file_for(ply_path: pathlib.Path) -> pathlib.Path | None:
  """The 3DGS `cameras.json` of a PLY: beside it, or in the model folder of
  `<model>/point_cloud/iteration_N/point_cloud.ply`; None when there is none."""
  candidates = [ply_path.parent / CAMERAS_FILE]
  if ply_path.parent.parent.name == "point_cloud":
    candidates.append(ply_path.parent.parent.parent / CAMERAS_FILE)
  return next((p for p in candidates if p.is_file()), None)


def active_means(gaussians: Gaussians) -> np.ndarray:
  """float [A, 3] positions of the active Gaussians (host copy)."""
  return np.asarray(gaussians.means)[np.asarray(gaussians.active)]


class PlySource:
  """An INRIA 3DGS PLY: `gaussians`, and presets from the model's cameras.json or an orbit around them."""

  kind = "ply"

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.gaussians: Gaussians = read_gaussians(self.path)
    self.background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    self.presets: list[CameraPreset]
    self._presets_note = ""
    cameras_path = cameras_file_for(self.path)
    try:
      self.presets = read_inria_cameras(cameras_path) if cameras_path else []
    except SourceError as e:  # the scene is fine without its cameras: say why they are missing
      self.presets, self._presets_note = [], f"; {cameras_path.name} unreadable ({e})"
    if self.presets:
      self._presets_note = f"; {len(self.presets)} cameras from {cameras_path}"
    else:
      self.presets = presets_around(active_means(self.gaussians))

  def status(self) -> str:
    count = int(np.sum(np.asarray(self.gaussians.active)))
    return f"{count:,} Gaussians, SH degree {self.gaussians.sh_degree}, from {self.path.name}{self._presets_note}"
