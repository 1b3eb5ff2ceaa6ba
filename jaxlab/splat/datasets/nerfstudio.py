"""nerfstudio datasets: one `transforms.json` (https://docs.nerf.studio/quickstart/data_conventions.html).

Intrinsics `fl_x`, `fl_y`, `cx`, `cy`, `w`, `h` sit at the top level or, where views
differ, in each frame (a frame's value wins). `cx`, `cy` default to the image centre and
`w`, `h` to the image file's size. `camera_model` (default "OPENCV") must be a pinhole model
("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"); its distortion
coefficients `k1`..`k4`, `p1`, `p2` are read and must all be 0: undistorting is not
supported, and a non-zero coefficient is refused with the way to undistort first.

Each frame has a `file_path` (relative to the JSON file) and a 4x4 camera-to-world
`transform_matrix` with OpenGL axes (x right, y up, z backward); optional `mask_path`
(alpha mask image) and `depth_file_path` (`.npy` as stored, or a 16-bit PNG in
millimetres, nerfstudio's default depth unit). A top-level `ply_file_path` is the initial
point cloud.

`applied_transform` (written by `ns-process-data`) is the 3x4 transform that the writer
already applied to the original (e.g. COLMAP) world to obtain the poses and the PLY in this
file; both are used as stored, so it is not applied again, and cameras come back in the
file's world frame. Unlike nerfstudio's own loader, the poses are not re-oriented,
re-centred or rescaled.

Frames are sorted by file path (as nerfstudio does); every `test_every`-th is a test view.
"""

import pathlib
from typing import Any

from jaxlab.splat.datasets.common import (
    SceneData,
    check_background,
    check_downscale,
    check_split,
    check_test_every,
    image_size,
    read_json,
    read_point_ply,
    require_file,
    split_indices,
)
from jaxlab.splat.datasets.distortion import refuse_distortion
from jaxlab.splat.datasets.views import (
    PinholeIntrinsics,
    ViewRecord,
    assemble_scene,
    pose_from_rows,
    world_to_camera_from_opengl,
)

TRANSFORMS_FILE = "transforms.json"
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_DEFAULT_CAMERA_MODEL = "OPENCV"


def _number(value: Any, key: str, where: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{where}: '{key}' must be a number; got {value!r}")
  return float(value)


def _lookup(frame: dict, meta: dict, key: str) -> Any:
  """A frame's value for `key`, else the top-level one, else None."""
  return frame.get(key, meta.get(key))


def _frame_intrinsics(frame: dict, meta: dict, image_path: pathlib.Path, where: str) -> PinholeIntrinsics:
  values = {}
  for key in ("fl_x", "fl_y"):
    value = _lookup(frame, meta, key)
    if value is None:
      raise ValueError(f"{where}: missing '{key}' (give it at the top level or in the frame)")
    values[key] = _number(value, key, where)
  width, height = _lookup(frame, meta, "w"), _lookup(frame, meta, "h")
  if width is None or height is None:
    width, height = image_size(image_path)
  for key, value in (("w", width), ("h", height)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{where}: '{key}' must be a positive int (pixels); got {value!r}")
  cx, cy = _lookup(frame, meta, "cx"), _lookup(frame, meta, "cy")
  return PinholeIntrinsics(
      fx=values["fl_x"], fy=values["fl_y"],
      cx=0.5 * width if cx is None else _number(cx, "cx", where),
      cy=0.5 * height if cy is None else _number(cy, "cy", where),
      width=width, height=height)


def _check_distortion(frame: dict, meta: dict, camera_model: str, where: str) -> None:
  coefficients = {}
  for key in DISTORTION_KEYS:
    value = _lookup(frame, meta, key)
    if value is not None:
      coefficients[key] = _number(value, key, where)
  refuse_distortion(coefficients, model=camera_model, where=where, remedy=(
      "undistort the images first, e.g. run `colmap image_undistorter --image_path IMAGES --input_path SPARSE"
      " --output_path OUT --output_type COLMAP` on the COLMAP model they came from and load OUT with"
      " format='colmap', or write the undistorted images' fl_x, fl_y, cx, cy with zero distortion"))


def _optional_path(frame: dict, key: str, base: pathlib.Path, where: str) -> pathlib.Path | None:
  value = frame.get(key)
  if value is None:
    return None
  if not isinstance(value, str):
    raise ValueError(f"{where}: '{key}' must be a string; got {value!r}")
  return require_file(base / value, f"{key} of {where}")


def load_nerfstudio(
    path: str | pathlib.Path,
    *,
    split: str = "train",
    downscale: int = 1,
    background: Any = (1.0, 1.0, 1.0),
    test_every: int = 8,
) -> SceneData:
  """Loads a nerfstudio dataset (see the module docstring).

  Args:
    path: the folder holding `transforms.json`, or the JSON file itself.
    split: "train", "test" / "val" (every `test_every`-th frame), or "all".
    downscale: integer factor; an `images_<factor>` folder beside the images is used when present.
    background: RGB in [0, 1] under transparent pixels.
    test_every: spacing of test frames.

  Raises:
    FileNotFoundError: naming a missing JSON, image, mask, depth or PLY file.
    ValueError: naming the file (and frame) for malformed JSON, missing intrinsics, an
      unsupported camera model, non-zero distortion, unreadable or differently sized images.
  """
  downscale = check_downscale(downscale)
  background_3 = check_background(background)
  views, ply_path = nerfstudio_views(pathlib.Path(path), split=split, test_every=test_every)
  points = point_colors = None
  if ply_path is not None:
    points, point_colors = read_point_ply(ply_path)
  return assemble_scene(
      views, downscale=downscale, background_3=background_3, points=points, point_colors=point_colors)


def nerfstudio_views(path: pathlib.Path, *, split: str, test_every: int) -> tuple[list[ViewRecord], pathlib.Path | None]:
  """(the views of a split, the `ply_file_path` file or None), parsed and checked; reads no pixels."""
  json_path = path if path.suffix.lower() == ".json" else path / TRANSFORMS_FILE
  check_split(split)
  test_every = check_test_every(test_every)
  meta = read_json(require_file(json_path, "nerfstudio transforms file"))
  if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
    raise ValueError(f"{json_path}: expected an object with a 'frames' list")
  camera_model = meta.get("camera_model", _DEFAULT_CAMERA_MODEL)
  if camera_model not in PINHOLE_MODELS:
    raise ValueError(
        f"{json_path}: camera_model {camera_model!r} is not supported; supported: {PINHOLE_MODELS}"
        " (undistort fisheye or other non-pinhole images to a pinhole model first)")
  base = json_path.parent

  frames = meta["frames"]
  for i, frame in enumerate(frames):
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
      raise ValueError(f"{json_path}, frame {i}: a frame must be an object with a string 'file_path'")
    if "transform_matrix" not in frame:
      raise ValueError(f"{json_path}, frame {i}: missing 'transform_matrix'")
  order = sorted(range(len(frames)), key=lambda i: frames[i]["file_path"])
  selected = [order[i] for i in split_indices(len(order), split, test_every)]
  if not selected:
    raise ValueError(f"split {split!r} of {json_path} is empty ({len(frames)} frames, test_every={test_every})")

  views = []
  for i in selected:
    frame = frames[i]
    where = f"{json_path}, frame {i} ({frame['file_path']})"
    image_path = require_file(base / frame["file_path"], f"image of {where}")
    _check_distortion(frame, meta, camera_model, where)
    views.append(ViewRecord(
        name=frame["file_path"],
        image_root=image_path.parent,
        image_name=image_path.name,
        world_to_camera_44=world_to_camera_from_opengl(pose_from_rows(frame["transform_matrix"], where), where),
        intrinsics=_frame_intrinsics(frame, meta, image_path, where),
        source=json_path,
        depth_path=_optional_path(frame, "depth_file_path", base, where),
        mask_path=_optional_path(frame, "mask_path", base, where),
    ))
  ply_name = meta.get("ply_file_path")
  if ply_name is None:
    return views, None
  if not isinstance(ply_name, str):
    raise ValueError(f"{json_path}: 'ply_file_path' must be a string; got {ply_name!r}")
  return views, require_file(base / ply_name, f"ply_file_path of {json_path}")
