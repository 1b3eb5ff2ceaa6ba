"""The scene viewer: `python -m jaxlab.view PATH` serves, through viser, pictures that jaxlab
renders on this machine from the browser's camera.

  sources      what a path holds: a PLY, a splat_fit run followed live, V3DG bundles or a
               layout, LeRobot demonstrations (`open_source` picks by content)
  render_view  browser camera -> `jaxlab.splat.Camera` -> 8-bit frame (RGB, depth, alpha)
  session      one tab's render loop: coarse while the camera moves, sharp once still
  app          the viser server and its controls (`Viewer`; the only module importing viser)

`Viewer` is loaded on first use, so `import jaxlab.view` works without viser installed.
"""

import importlib

from jaxlab.view.errors import SourceError
from jaxlab.view.render_view import RENDER_MODES, Frame, GaussianFrames, ViewRequest, camera_for, view_size
from jaxlab.view.sources import (
    CameraPreset, DemoSource, LodSource, PlySource, RunSource, Snapshot, open_source, orbit_presets, presets_around,
    presets_from_cameras, read_inria_cameras)

__all__ = [
    "RENDER_MODES",
    "CameraPreset",
    "DemoSource",
    "Frame",
    "GaussianFrames",
    "LodSource",
    "PlySource",
    "RunSource",
    "Snapshot",
    "SourceError",
    "ViewRequest",
    "Viewer",
    "camera_for",
    "open_source",
    "orbit_presets",
    "presets_around",
    "presets_from_cameras",
    "read_inria_cameras",
    "view_size",
]


def __getattr__(name: str):
  if name == "Viewer":  # needs viser, an optional dependency
    return importlib.import_module("jaxlab.view.app").Viewer
  raise AttributeError(f"module 'jaxlab.view' has no attribute {name!r}")
