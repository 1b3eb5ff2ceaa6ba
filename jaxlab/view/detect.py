"""`open_source`: which kind of source a path is, decided by what it holds."""

from __future__ import annotations

import os
import pathlib

from jaxlab.view.demo_source import GENERATE_FOLDERS, INFO_FILE, DemoSource
from jaxlab.view.errors import SourceError
from jaxlab.view.lod_source import BUNDLE_FILE, LAYOUT_FILE, LodSource
from jaxlab.view.ply_source import PlySource
from jaxlab.view.run_source import RunSource

# What marks a splat_fit run folder (run.lock: held by a running launch.run).
RUN_MARKERS = ("config.json", "checkpoints", "point_cloud", "run.lock")


def _is_demos(folder: pathlib.Path) -> bool:
  return any((folder / sub / INFO_FILE).is_file() for sub in ("", *GENERATE_FOLDERS))


def open_source(path: str | os.PathLike) -> PlySource | RunSource | LodSource | DemoSource:
  """The source for `path`, checked in this order:

  a `.ply` file -> PlySource; a `.npz` (bundle) or `.json` (layout) file -> LodSource;
  a folder with meta/info.json (or generated/ or source/ holding one) -> DemoSource;
  a folder with bundle.npz or layout.json -> LodSource; a folder with config.json,
  checkpoints/, point_cloud/ or run.lock, or an empty folder (a run that has not written
  yet) -> RunSource.

  Raises:
    SourceError: the path does not exist, is none of the above (the message lists what was
      looked for), or the source it names is missing or damaged.
  """
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise SourceError(f"{path} does not exist")
  if path.is_file():
    suffix = path.suffix.lower()
    if suffix == ".ply":
      return PlySource(path)
    if suffix in (".npz", ".json"):
      return LodSource(path)
    raise SourceError(f"{path}: cannot view a {suffix or 'suffix-less'} file; expected a 3DGS .ply, "
                      "a LOD bundle .npz or a LOD layout .json")
  if _is_demos(path):
    return DemoSource(path)
  if (path / BUNDLE_FILE).is_file() or (path / LAYOUT_FILE).is_file():
    return LodSource(path)
  if any((path / marker).exists() for marker in RUN_MARKERS) or not any(path.iterdir()):
    return RunSource(path)
  looked_for = [str(INFO_FILE), *(f"{name}/{INFO_FILE}" for name in GENERATE_FOLDERS), BUNDLE_FILE, LAYOUT_FILE,
                *RUN_MARKERS]
  raise SourceError(f"{path} is not a viewable folder: it holds none of {', '.join(looked_for)} "
                    "(or pass a .ply, .npz or .json file)")
