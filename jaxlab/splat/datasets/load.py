"""`load_dataset`: one entry point for every supported format, with format detection."""

import pathlib
from typing import Any

from jaxlab.splat.camera import Camera
from jaxlab.splat.datasets import blender, colmap, nerfstudio
from jaxlab.splat.datasets.common import SceneData, check_test_every
from jaxlab.splat.datasets.views import cameras_from_views

FORMATS = ("auto", "blender", "nerfstudio", "colmap")


def detect_format(path: str | pathlib.Path) -> str:
  """"blender", "nerfstudio" or "colmap", from the files at `path`.

  A folder with `transforms_{train,val,test}.json` is Blender; one with `transforms.json`
  (or a `.json` file) nerfstudio; one with `cameras.bin` / `cameras.txt` in `sparse/0/`,
  `sparse/` or itself COLMAP.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"dataset not found: {path}")
  if path.is_file():
    if path.name in blender.SPLIT_FILES.values():
      raise ValueError(f"{path} is a Blender split file; pass the folder holding it ({path.parent}) and split=")
    if path.suffix.lower() == ".json":
      return "nerfstudio"
    raise ValueError(f"cannot tell the dataset format of the file {path}; pass its folder, or format=")
  if blender.is_blender_dataset(path):
    return "blender"
  if (path / nerfstudio.TRANSFORMS_FILE).is_file():
    return "nerfstudio"
  try:
    colmap.find_model_dir(path)
  except FileNotFoundError:
    pass
  else:
    return "colmap"
  raise ValueError(
      f"cannot tell the dataset format of {path}: expected {', '.join(blender.SPLIT_FILES.values())} (blender),"
      f" {nerfstudio.TRANSFORMS_FILE} (nerfstudio), or cameras.bin / cameras.txt in sparse/0/, sparse/ or the"
      " folder itself (colmap)")


def _resolve_format(path: str | pathlib.Path, format: str) -> str:
  if format not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
  return detect_format(path) if format == "auto" else format


def load_dataset(
    path: str | pathlib.Path,
    *,
    format: str = "auto",
    split: str = "train",
    downscale: int = 1,
    background: Any = (1.0, 1.0, 1.0),
    test_every: int = 8,
) -> SceneData:
  """Posed images of a scene as `SceneData` (cameras in OpenCV convention, images in [0, 1]).

  Args:
    path: the dataset folder (for nerfstudio also the `transforms.json` file).
    format: one of FORMATS; "auto" detects it with `detect_format`.
    split: "train", "test", "val" or "all". Blender datasets use their split files; the
      others take every `test_every`-th view (in name order) as test (= val) views.
    downscale: positive int; images are area-averaged (or read from `<images>_<factor>`
      folders where present) and intrinsics scaled to match.
    background: RGB in [0, 1] that transparent pixels are composited on.
    test_every: test-view spacing for formats without split files.

  Raises:
    FileNotFoundError, ValueError: naming the file or argument at fault.
  """
  format = _resolve_format(path, format)
  if format == "blender":
    # Blender splits come from files; test_every is checked for consistency only.
    check_test_every(test_every)
    return blender.load_blender(path, split=split, downscale=downscale, background=background)
  loader = nerfstudio.load_nerfstudio if format == "nerfstudio" else colmap.load_colmap
  return loader(path, split=split, downscale=downscale, background=background, test_every=test_every)


def load_cameras(
    path: str | pathlib.Path,
    *,
    format: str = "auto",
    split: str = "train",
    test_every: int = 8,
) -> tuple[Camera, tuple[str, ...]]:
  """(batched full-resolution `Camera`, view names) of a dataset split, without reading a pixel.

  The same views, in the same order, as `load_dataset` with these arguments; for tools that
  need only the poses (camera presets, trajectory plots), so a large dataset costs its
  metadata files and image headers, not its images.

  Raises:
    FileNotFoundError, ValueError: naming the file or argument at fault, as `load_dataset`.
  """
  format = _resolve_format(path, format)
  path = pathlib.Path(path)
  if format == "blender":
    check_test_every(test_every)
    views = blender.blender_views(path, split=split)
  elif format == "nerfstudio":
    views, _ = nerfstudio.nerfstudio_views(path, split=split, test_every=test_every)
  else:
    views, _ = colmap.colmap_views(path, split=split, test_every=test_every)
  return cameras_from_views(views), tuple(v.name for v in views)
