"""COLMAP sparse models (https://colmap.github.io/format.html), text and binary, and scenes from them.

A model is three files, each as `.bin` (little endian) or `.txt`; binary wins when both
exist:

- `cameras`: id, model, width, height, parameters. Binary: uint64 count, then per camera
  int32 id, int32 model id, uint64 width, uint64 height, float64 x (the model's count).
- `images`: id, pose, camera id, name, then the image's 2D points (skipped here). The pose
  is world-to-camera: a Hamilton quaternion (qw, qx, qy, qz) and a translation (tx, ty,
  tz), with OpenCV camera axes. Binary: uint64 count, then per image int32 id, 7 float64,
  int32 camera id, a NUL-terminated name, uint64 point count and (float64 x, float64 y,
  int64 point3D id) per point. Text uses two lines per image; the second (the points) may
  be empty.
- `points3D`: id, xyz, rgb, error, track. Binary: uint64 count, then per point uint64 id,
  3 float64, 3 uint8, float64 error, uint64 track length and (int32, int32) per element.

Camera models read: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV.
Those with distortion are accepted only when every distortion coefficient is 0 (the
renderer is a pinhole camera); others are refused with the `colmap image_undistorter`
command that turns a model into a PINHOLE one.

A scene folder holds `images/` and the model in `sparse/0/` (or `sparse/`, or the folder
itself); downscaled copies in `images_<factor>/` are used when present (the 3DGS layout).
Views are sorted by image name, and every `test_every`-th is a test view, as in 3DGS.
"""

import dataclasses
import pathlib
import struct
from typing import Any

import numpy as np

from jaxlab.splat.datasets.common import (
    SceneData,
    check_background,
    check_downscale,
    check_split,
    check_test_every,
    split_indices,
)
from jaxlab.splat.datasets.distortion import COLMAP_UNDISTORT_REMEDY, refuse_distortion
from jaxlab.splat.datasets.views import PinholeIntrinsics, ViewRecord, assemble_scene

# name -> (model id, number of parameters), from COLMAP's camera model list.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),
}
_MODEL_NAME_BY_ID = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}
# Pinhole models: (fx, fy, cx, cy) parameter indices, then the distortion coefficients' names
# (the parameters after the principal point, in order).
_PINHOLE_LAYOUTS = {
    "SIMPLE_PINHOLE": ((0, 0, 1, 2), ()),
    "PINHOLE": ((0, 1, 2, 3), ()),
    "SIMPLE_RADIAL": ((0, 0, 1, 2), ("k",)),
    "RADIAL": ((0, 0, 1, 2), ("k1", "k2")),
    "OPENCV": ((0, 1, 2, 3), ("k1", "k2", "p1", "p2")),
    "FULL_OPENCV": ((0, 1, 2, 3), ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
}
SUPPORTED_MODELS = tuple(_PINHOLE_LAYOUTS)
MODEL_DIRS = ("sparse/0", "sparse", ".")
IMAGES_DIR = "images"


@dataclasses.dataclass(frozen=True)
class ColmapCamera:
  camera_id: int
  model: str
  width: int
  height: int
  params: tuple[float, ...]

  def pinhole(self, where: str) -> PinholeIntrinsics:
    """The camera's pinhole intrinsics; ValueError for non-pinhole models or non-zero distortion."""
    if self.model not in _PINHOLE_LAYOUTS:
      raise ValueError(
          f"{where}: camera {self.camera_id} uses the {self.model} model, which is not supported (supported:"
          f" {', '.join(SUPPORTED_MODELS)}); {COLMAP_UNDISTORT_REMEDY}")
    (fx, fy, cx, cy), distortion_names = _PINHOLE_LAYOUTS[self.model]
    distortion = dict(zip(distortion_names, self.params[len(self.params) - len(distortion_names):]))
    refuse_distortion(distortion, model=self.model, where=f"{where}, camera {self.camera_id}",
                      remedy=COLMAP_UNDISTORT_REMEDY)
    return PinholeIntrinsics(
        fx=self.params[fx], fy=self.params[fy], cx=self.params[cx], cy=self.params[cy],
        width=self.width, height=self.height)


@dataclasses.dataclass(frozen=True)
class ColmapImage:
  image_id: int
  qvec: tuple[float, float, float, float]  # (w, x, y, z), world-to-camera rotation
  tvec: tuple[float, float, float]  # world-to-camera translation
  camera_id: int
  name: str

  def world_to_camera(self) -> np.ndarray:
    """float64 [4, 4] OpenCV world-to-camera transform (the quaternion is normalised)."""
    w, x, y, z = np.asarray(self.qvec, np.float64) / np.linalg.norm(self.qvec)
    rotation_33 = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
    pose_44 = np.eye(4)
    pose_44[:3, :3] = rotation_33
    pose_44[:3, 3] = self.tvec
    return pose_44


@dataclasses.dataclass(frozen=True)
class ColmapPoints:
  """The 3D points of a model: ids [P] int64, xyz [P, 3] float64, rgb [P, 3] uint8, errors [P]."""

  ids: np.ndarray
  xyz: np.ndarray
  rgb: np.ndarray
  errors: np.ndarray


# ----------------------------------------------------------------------------- binary


class _BinaryReader:
  """Sequential little-endian reads from a whole file, with errors that name it."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.data = path.read_bytes()
    self.offset = 0

  def _check_room(self, size: int) -> None:
    if self.offset + size > len(self.data):
      raise ValueError(
          f"{self.path}: file ends early (needs byte {self.offset + size}, has {len(self.data)}); truncated or"
          " not a COLMAP binary file")

  def take(self, fmt: str) -> tuple:
    fmt = "<" + fmt
    size = struct.calcsize(fmt)
    self._check_room(size)
    values = struct.unpack_from(fmt, self.data, self.offset)
    self.offset += size
    return values

  def skip(self, size: int) -> None:
    self._check_room(size)
    self.offset += size

  def c_string(self) -> str:
    end = self.data.find(b"\x00", self.offset)
    if end < 0:
      raise ValueError(f"{self.path}: unterminated image name at byte {self.offset}; truncated file?")
    try:
      text = self.data[self.offset:end].decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(f"{self.path}: image name at byte {self.offset} is not UTF-8") from e
    self.offset = end + 1
    return text


def _model_name(model_id: int, path: pathlib.Path) -> str:
  if model_id not in _MODEL_NAME_BY_ID:
    known = ", ".join(f"{i} {n}" for i, n in sorted(_MODEL_NAME_BY_ID.items()))
    raise ValueError(f"{path}: unknown camera model id {model_id}; known ids: {known}")
  return _MODEL_NAME_BY_ID[model_id]


def read_cameras_binary(path: pathlib.Path) -> dict[int, ColmapCamera]:
  reader = _BinaryReader(path)
  cameras = {}
  for _ in range(reader.take("Q")[0]):
    camera_id, model_id, width, height = reader.take("iiQQ")
    model = _model_name(model_id, path)
    num_params = CAMERA_MODELS[model][1]
    cameras[camera_id] = ColmapCamera(camera_id, model, width, height, reader.take(f"{num_params}d"))
  return cameras


def read_images_binary(path: pathlib.Path) -> dict[int, ColmapImage]:
  reader = _BinaryReader(path)
  images = {}
  for _ in range(reader.take("Q")[0]):
    image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = reader.take("i7di")
    name = reader.c_string()
    reader.skip(24 * reader.take("Q")[0])  # 2D points: (float64 x, float64 y, int64 point3D id)
    images[image_id] = ColmapImage(image_id, (qw, qx, qy, qz), (tx, ty, tz), camera_id, name)
  return images


def read_points3d_binary(path: pathlib.Path) -> ColmapPoints:
  reader = _BinaryReader(path)
  rows = []
  for _ in range(reader.take("Q")[0]):
    rows.append(reader.take("Q3d3Bd"))
    reader.skip(8 * reader.take("Q")[0])  # track: (int32 image id, int32 point2D index)
  return _points_from_rows(rows)


# ----------------------------------------------------------------------------- text


def _data_lines(path: pathlib.Path) -> list[tuple[int, str]]:
  """(1-based line number, line) for every line, comments included, as read."""
  try:
    text = path.read_text(encoding="utf-8")
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: cannot read as UTF-8 text: {e}") from e
  return list(enumerate(text.splitlines(), start=1))


def _is_content(line: str) -> bool:
  stripped = line.strip()
  return bool(stripped) and not stripped.startswith("#")


def _parse(path: pathlib.Path, number: int, what: str, parse: Any) -> Any:
  try:
    return parse()
  except (ValueError, IndexError) as e:
    raise ValueError(f"{path}, line {number}: malformed {what}: {e}") from e


def read_cameras_text(path: pathlib.Path) -> dict[int, ColmapCamera]:
  cameras = {}
  for number, line in _data_lines(path):
    if not _is_content(line):
      continue
    fields = line.split()
    model = fields[1] if len(fields) > 1 else ""
    if model not in CAMERA_MODELS:
      raise ValueError(f"{path}, line {number}: unknown camera model {model!r}; known: {', '.join(CAMERA_MODELS)}")
    num_params = CAMERA_MODELS[model][1]
    if len(fields) != 4 + num_params:
      raise ValueError(
          f"{path}, line {number}: camera model {model} takes {num_params} parameters; got {len(fields) - 4}")
    camera = _parse(path, number, "camera", lambda: ColmapCamera(
        int(fields[0]), model, int(fields[2]), int(fields[3]), tuple(float(v) for v in fields[4:])))
    cameras[camera.camera_id] = camera
  return cameras


def read_images_text(path: pathlib.Path) -> dict[int, ColmapImage]:
  lines = _data_lines(path)
  images = {}
  index = 0
  while index < len(lines):
    number, line = lines[index]
    index += 1
    if not _is_content(line):
      continue
    fields = line.strip().split(maxsplit=9)
    if len(fields) != 10:
      raise ValueError(
          f"{path}, line {number}: an image line needs IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME; got {line!r}")
    image = _parse(path, number, "image", lambda: ColmapImage(
        int(fields[0]), tuple(float(v) for v in fields[1:5]), tuple(float(v) for v in fields[5:8]),
        int(fields[8]), fields[9]))
    images[image.image_id] = image
    index += 1  # The next line lists the image's 2D points, possibly none (an empty line).
  return images


def read_points3d_text(path: pathlib.Path) -> ColmapPoints:
  rows = []
  for number, line in _data_lines(path):
    if not _is_content(line):
      continue
    fields = line.split()
    if len(fields) < 8:
      raise ValueError(f"{path}, line {number}: a point needs POINT3D_ID X Y Z R G B ERROR [TRACK]; got {line!r}")
    rows.append(_parse(path, number, "point", lambda: (
        int(fields[0]), *(float(v) for v in fields[1:4]), *(int(v) for v in fields[4:7]), float(fields[7]))))
  return _points_from_rows(rows)


def _points_from_rows(rows: list[tuple]) -> ColmapPoints:
  table = np.asarray(rows, np.float64).reshape(-1, 8)
  return ColmapPoints(
      ids=np.asarray([r[0] for r in rows], np.int64),
      xyz=table[:, 1:4], rgb=np.clip(table[:, 4:7], 0, 255).astype(np.uint8), errors=table[:, 7])


# ----------------------------------------------------------------------------- model files


def _model_file(model_dir: pathlib.Path, stem: str) -> pathlib.Path | None:
  """`<stem>.bin` if present, else `<stem>.txt`, else None."""
  for suffix in (".bin", ".txt"):
    if (model_dir / (stem + suffix)).is_file():
      return model_dir / (stem + suffix)
  return None


def find_model_dir(root: pathlib.Path) -> pathlib.Path:
  """The folder under `root` holding the model: `sparse/0`, `sparse` or `root` itself."""
  for relative in MODEL_DIRS:
    if _model_file(root / relative, "cameras") is not None:
      return root / relative
  searched = ", ".join(str(root / r) for r in MODEL_DIRS)
  raise FileNotFoundError(f"no COLMAP model (cameras.bin or cameras.txt) found; searched {searched}")


def read_model(model_dir: pathlib.Path) -> tuple[dict[int, ColmapCamera], dict[int, ColmapImage], ColmapPoints | None]:
  """(cameras, images, points or None when the model has no points3D file) from one folder."""
  files = {stem: _model_file(model_dir, stem) for stem in ("cameras", "images", "points3D")}
  for stem in ("cameras", "images"):
    if files[stem] is None:
      raise FileNotFoundError(f"COLMAP {stem} file not found: {model_dir / stem}.bin or .txt")

  def read(stem: str, binary: Any, text: Any) -> Any:
    return binary(files[stem]) if files[stem].suffix == ".bin" else text(files[stem])

  cameras = read("cameras", read_cameras_binary, read_cameras_text)
  images = read("images", read_images_binary, read_images_text)
  points = None if files["points3D"] is None else read("points3D", read_points3d_binary, read_points3d_text)
  return cameras, images, points


def load_colmap(
    path: str | pathlib.Path,
    *,
    split: str = "train",
    downscale: int = 1,
    background: Any = (1.0, 1.0, 1.0),
    test_every: int = 8,
) -> SceneData:
  """Loads a COLMAP scene folder (see the module docstring).

  Args:
    path: the folder holding `images/` and `sparse/0/` (or `sparse/`).
    split: "train", "test" / "val" (every `test_every`-th image by name), or "all".
    downscale: integer factor; `images_<factor>/` is used when present, else images are area-averaged.
    background: RGB in [0, 1] under transparent pixels (for RGBA images).
    test_every: spacing of test views.

  Returns:
    `SceneData` with the model's points3D (colours / 255) as the initial point cloud.

  Raises:
    FileNotFoundError: naming a missing model file, image folder or image.
    ValueError: naming the file for unknown or unsupported camera models, non-zero
      distortion, malformed or truncated files, unreadable or differently sized images.
  """
  root = pathlib.Path(path)
  check_split(split)
  downscale = check_downscale(downscale)
  background_3 = check_background(background)
  test_every = check_test_every(test_every)
  model_dir = find_model_dir(root)
  cameras, images, points = read_model(model_dir)
  cameras_file = _model_file(model_dir, "cameras")
  images_file = _model_file(model_dir, "images")
  image_root = root / IMAGES_DIR
  if not image_root.is_dir():
    raise FileNotFoundError(f"COLMAP image folder not found: {image_root}")

  ordered = sorted(images.values(), key=lambda image: image.name)
  selected = [ordered[i] for i in split_indices(len(ordered), split, test_every)]
  if not selected:
    raise ValueError(f"split {split!r} of {root} is empty ({len(ordered)} images, test_every={test_every})")
  intrinsics = {}
  for image in ordered:
    if image.camera_id not in cameras:
      raise ValueError(
          f"{images_file}: image {image.name!r} uses camera {image.camera_id}, which is not in {cameras_file}")
    if image.camera_id not in intrinsics:
      intrinsics[image.camera_id] = cameras[image.camera_id].pinhole(str(cameras_file))
  views = [
      ViewRecord(
          name=image.name, image_root=image_root, image_name=image.name,
          world_to_camera_44=image.world_to_camera(), intrinsics=intrinsics[image.camera_id], source=cameras_file)
      for image in selected]
  point_colors = None
  if points is not None:
    point_colors = points.rgb.astype(np.float32) / 255.0
    points = points.xyz.astype(np.float32)
  return assemble_scene(
      views, downscale=downscale, background_3=background_3, points=points, point_colors=point_colors)
