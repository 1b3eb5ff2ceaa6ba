"""The viewer's data sources, one module per kind; every source has `kind`, `path`, `presets`,
`background` and `status()`.

  PlySource   a 3DGS PLY file                        (ply_source.py)
  RunSource   a splat_fit run folder, followed live   (run_source.py)
  LodSource   V3DG bundles or a layout of them       (lod_source.py)
  DemoSource  LeRobot episode datasets               (demo_source.py)

`open_source(path)` picks the kind from what the path holds (detect.py).
"""

from jaxlab.view.demo_source import DemoSource
from jaxlab.view.detect import open_source
from jaxlab.view.errors import SourceError
from jaxlab.view.inria_cameras import read_inria_cameras
from jaxlab.view.lod_source import LodSource
from jaxlab.view.ply_source import PlySource
from jaxlab.view.presets import CameraPreset, orbit_presets, presets_around, presets_from_cameras
from jaxlab.view.run_source import RunSource, Snapshot

__all__ = [
    "CameraPreset",
    "DemoSource",
    "LodSource",
    "PlySource",
    "RunSource",
    "Snapshot",
    "SourceError",
    "open_source",
    "orbit_presets",
    "presets_around",
    "presets_from_cameras",
    "read_inria_cameras",
]
