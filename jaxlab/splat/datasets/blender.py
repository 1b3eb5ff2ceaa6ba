"""Blender / NeRF-synthetic datasets: `transforms_{train,val,test}.json` beside the images.

Each split file holds `camera_angle_x` (horizontal field of view, radians) and `frames`,
each with a `file_path` relative to the JSON file (usually without extension, e.g.
`./train/r_0`; `.png` is then appended) and a 4x4 camera-to-world `transform_matrix` with
OpenGL axes (x right, y up, z backward). Intrinsics: fx = fy = 0.5 * W / tan(0.5 *
camera_angle_x), principal point at the image centre.

Optional extras: a depth map `<image stem>_depth.npy` (float32 camera-space z, 0 = none)
beside an image, and `points3d.ply` (x, y, z, red, green, blue) in the dataset root as the
initial point cloud. RGBA images are composited on the background; alpha becomes the mask.
"""

import math
import pathlib
from typing import Any


from jaxlab.splat.datasets.common import (
    SceneData,
    check_background,
    check_downscale,
    check_split,
    image_size,
    read_json,
    read_point_ply,
)
from jaxlab.splat.datasets.views import (
    PinholeIntrinsics,
    ViewRecord,
    assemble_scene,
    pose_from_rows,
    world_to_camera_from_opengl,
)

SPLIT_FILES = {"train": "transforms_train.json", "val": "transforms_val.json", "test": "transforms_test.json"}
POINT_CLOUD_FILE = "points3d.ply"
DEPTH_SUFFIX = "_depth.npy"
_DEFAULT_IMAGE_SUFFIX = ".png"


def is_blender_dataset(root: pathlib.Path) -> bool:
  return any((root / name).is_file() for name in SPLIT_FILES.values())


def _image_path(base: pathlib.Path, file_path: str, where: str) -> pathlib.Path:
  """The image a `file_path` names: as written if that file exists, else with `.png` appended."""
  exact = base / file_path
  if exact.suffix and exact.is_file():
    return exact
  with_png = base / (file_path + _DEFAULT_IMAGE_SUFFIX)
  if with_png.is_file():
    return with_png
  tried = [str(exact)] if exact.suffix else []
  raise FileNotFoundError(f"{where}: image not found (tried {', '.join([*tried, str(with_png)])})")


def _frame_views(json_path: pathlib.Path, meta: Any, root: pathlib.Path) -> list[ViewRecord]:
  if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
    raise ValueError(f"{json_path}: expected an object with a 'frames' list")
  angle = meta.get("camera_angle_x")
  if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0.0 < angle < math.pi:
    raise ValueError(
        f"{json_path}: 'camera_angle_x' must be the horizontal field of view in (0, pi) radians; got {angle!r}")
  views = []
  for i, frame in enumerate(meta["frames"]):
    where = f"{json_path}, frame {i}"
    if not isinstance(frame, dict):
      raise ValueError(f"{where}: a frame must be an object; got {frame!r}")
    for key in ("file_path", "transform_matrix"):
      if key not in frame:
        raise ValueError(f"{where}: missing '{key}'")
    if not isinstance(frame["file_path"], str):
      raise ValueError(f"{where}: 'file_path' must be a string; got {frame['file_path']!r}")
    path = _image_path(json_path.parent, frame["file_path"], where)
    width, height = image_size(path)
    focal = 0.5 * width / math.tan(0.5 * angle)
    depth_path = path.with_name(path.stem + DEPTH_SUFFIX)
    views.append(ViewRecord(
        name=path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
        image_root=path.parent,
        image_name=path.name,
        world_to_camera_44=world_to_camera_from_opengl(pose_from_rows(frame["transform_matrix"], where), where),
        intrinsics=PinholeIntrinsics(fx=focal, fy=focal, cx=0.5 * width, cy=0.5 * height, width=width, height=height),
        source=json_path,
        depth_path=depth_path if depth_path.is_file() else None,
    ))
  return views


def load_blender(
    path: str | pathlib.Path,
    *,
    split: str = "train",
    downscale: int = 1,
    background: Any = (1.0, 1.0, 1.0),
) -> SceneData:
  """Loads a Blender / NeRF-synthetic dataset directory (see the module docstring).

  Args:
    path: the folder holding `transforms_<split>.json`.
    split: "train", "val", "test", or "all" (every split file present, in that order).
    downscale: integer factor; images are area-averaged and intrinsics scaled.
    background: RGB in [0, 1] under transparent pixels.

  Raises:
    FileNotFoundError: naming the missing split file or image.
    ValueError: naming the file for malformed JSON, bad fields, unreadable images or
      images of different sizes.
  """
  root = pathlib.Path(path)
  downscale = check_downscale(downscale)
  background_3 = check_background(background)
  views = blender_views(root, split=split)
  points = point_colors = None
  if (root / POINT_CLOUD_FILE).is_file():
    points, point_colors = read_point_ply(root / POINT_CLOUD_FILE)
  return assemble_scene(
      views, downscale=downscale, background_3=background_3, points=points, point_colors=point_colors)


def blender_views(root: pathlib.Path, *, split: str) -> list[ViewRecord]:
  """The views of a split, parsed and checked; reads image headers but no pixels."""
  check_split(split)
  if split == "all":
    json_paths = [root / name for name in SPLIT_FILES.values() if (root / name).is_file()]
    if not json_paths:
      raise FileNotFoundError(f"no Blender split file in {root}; expected one of {sorted(SPLIT_FILES.values())}")
  else:
    json_paths = [root / SPLIT_FILES[split]]
    if not json_paths[0].is_file():
      present = [name for name in SPLIT_FILES.values() if (root / name).is_file()]
      raise FileNotFoundError(f"Blender split file not found: {json_paths[0]} (present: {present or 'none'})")
  views = [view for json_path in json_paths for view in _frame_views(json_path, read_json(json_path), root)]
  if not views:
    raise ValueError(f"split {split!r} of {root} has no frames ({', '.join(str(p) for p in json_paths)})")
  return views
