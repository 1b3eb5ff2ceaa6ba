"""COLMAP sparse models (https://colmap.github.io/format.html), text and binary, and scenes from them.

A model is three files, each as `.bin` (little endian) or `.txt`; binary wins when both
exist:

- `cameras`: id, model, width, height, parameters. Binary: uint64 count, then per camera
  int32 id, int32 model id, uint64 width, uint64 height, float64 x (the model's count).
- `images`: id, pose, camera id, name, then the image's 2D points (skipped here). The pose
  is world-to-camera: a Hamilton quaternion (qw, qx, qy, qz) and a translation (tx, ty,
  tz), with OpenCV camera axes. Binary: uint64 count, then per image int32 id, 7 float64,
  int32 camera id, a NUL-terminated name, uint64 point count and (float64 x, float64 y,
  int64 point3D id) per point. Text has an image line per image, which COLMAP follows with
  the image's points line (empty when it has none); other writers leave the points line
  out, for some images or all, so each line's role is read from its fields (see
  `read_images_text`). The quaternion must have unit length (within 1e-3).
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
# |norm - 1| allowed for an image's quaternion; text files hold at least six digits.
QUATERNION_TOLERANCE = 1e-3
_IMAGE_NUMBER_FIELDS = ("IMAGE_ID", "QW", "QX", "QY", "QZ", "TX", "TY", "TZ", "CAMERA_ID")
_POINT_FIELDS = (("X", float), ("Y", float), ("POINT3D_ID", int))
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

  def pose_problem(self) -> str | None:
    """Why (qvec, tvec) is not a rotation and a translation, or None."""
    if not np.all(np.isfinite([*self.qvec, *self.tvec])):
      return f"has a non-finite pose (QW QX QY QZ = {self.qvec}, TX TY TZ = {self.tvec})"
    norm = float(np.linalg.norm(self.qvec))
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
      return (f"quaternion (QW, QX, QY, QZ) has norm {norm:.6g}, so it is no rotation: COLMAP writes unit"
              f" quaternions (|norm - 1| within {QUATERNION_TOLERANCE:g})")
    return None

  def check_pose(self, where: str) -> None:
    """ValueError naming `where` and the image if its pose is not a rotation and a translation."""
    problem = self.pose_problem()
    if problem is not None:
      raise ValueError(f"{where}: image {self.name!r} (id {self.image_id}) {problem}")

  def world_to_camera(self) -> np.ndarray:
    """float64 [4, 4] OpenCV world-to-camera transform (the unit quaternion is normalised exactly)."""
    self.check_pose("COLMAP model")
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
  images, first_record = {}, {}
  for record in range(reader.take("Q")[0]):
    image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = reader.take("i7di")
    name = reader.c_string()
    reader.skip(24 * reader.take("Q")[0])  # 2D points: (float64 x, float64 y, int64 point3D id)
    where = f"{path}, image record {record}"
    if image_id in first_record:
      raise ValueError(f"{where}: image id {image_id} appears again (first in record {first_record[image_id]})")
    image = ColmapImage(image_id, (qw, qx, qy, qz), (tx, ty, tz), camera_id, name)
    image.check_pose(where)
    images[image_id], first_record[image_id] = image, record
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


def _number_problem(label: str, text: str, kind: type) -> str | None:
  try:
    kind(text)
  except ValueError:
    return f"{label} {text!r} is not {'an integer' if kind is int else 'a number'}"
  return None


def _image_numbers_problem(fields: list[str]) -> str | None:
  """Why the first nine fields are not IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID, or None."""
  for label, text in zip(_IMAGE_NUMBER_FIELDS, fields):
    problem = _number_problem(label, text, int if label.endswith("_ID") else float)
    if problem is not None:
      return problem
  return None


def _image_line_problem(fields: list[str]) -> str | None:
  """Why `fields` cannot be an image line (IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME), or None."""
  if len(fields) < 10:
    return f"{len(fields)} fields, fewer than the 10 of IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
  return _image_numbers_problem(fields)


def _points_line_problem(fields: list[str]) -> str | None:
  """Why `fields` cannot be a 2D points line (X Y POINT3D_ID per point), or None.

  The points are not used, so only the first and the last triple are parsed: enough to
  tell the line's role without converting every number of a large model.
  """
  if len(fields) % 3:
    return f"{len(fields)} fields, not a multiple of 3: X Y POINT3D_ID per point"
  for start in sorted({0, len(fields) - 3}):
    for (label, kind), text in zip(_POINT_FIELDS, fields[start:start + 3]):
      problem = _number_problem(label, text, kind)
      if problem is not None:
        return f"point {start // 3 + 1}: {problem}"
  return None


def _looks_like_image(fields: list[str]) -> bool:
  """The first nine fields read as an image's numbers with a unit quaternion (no points line does)."""
  if len(fields) < 9 or _image_numbers_problem(fields) is not None:
    return False
  return abs(float(np.linalg.norm([float(v) for v in fields[1:5]])) - 1.0) <= QUATERNION_TOLERANCE


def _is_image_line(line: str, pending: ColmapImage | None, path: pathlib.Path, number: int) -> bool:
  """True for an image line, False for the points line of `pending` (the image just read, if any).

  A points line only ever follows its image line. A line that reads both ways is refused
  when it also looks like an image (a unit quaternion); otherwise it is the points line.
  """
  fields = line.split()
  image_problem, points_problem = _image_line_problem(fields), _points_line_problem(fields)
  if points_problem is None and pending is not None:
    if _looks_like_image(fields):
      named = f"named {line.split(maxsplit=9)[9]!r}" if len(fields) >= 10 else "missing its NAME"
      raise ValueError(
          f"{path}, line {number} could be either the 2D points line of image {pending.name!r} or an image line"
          f" (image {fields[0]}, {named}); write the (possibly empty) points line after every image line, as"
          " COLMAP does, so that each line's role is certain")
    return False
  if image_problem is None:
    return True
  if points_problem is None:
    raise ValueError(
        f"{path}, line {number} is a 2D points line (X Y POINT3D_ID triples) that follows no image line (an image"
        f" has at most one points line, right after its image line; as an image line it has {image_problem})")
  raise ValueError(
      f"{path}, line {number} is neither an image line ({image_problem}) nor a 2D points line ({points_problem}):"
      f" {line!r}")


def _parse_image_line(line: str, path: pathlib.Path, number: int) -> ColmapImage:
  fields = line.split(maxsplit=9)  # NAME is the rest of the line, spaces included
  return _parse(path, number, "image", lambda: ColmapImage(
      int(fields[0]), tuple(float(v) for v in fields[1:5]), tuple(float(v) for v in fields[5:8]),
      int(fields[8]), fields[9]))


def read_images_text(path: pathlib.Path) -> dict[int, ColmapImage]:
  """Images by id from `images.txt`, record by record.

  Each image line may be followed by its 2D points line (skipped), by an empty line (an
  image without points) or directly by the next image line; comment lines (#) and extra
  blank lines between records are ignored. Errors name the file and line: a line of
  neither kind, a points line without an image line before it, a line that could be
  either, a repeated image id, or a quaternion that is not of unit length.
  """
  images, first_line = {}, {}
  pending = None  # the image whose points line may come next
  for number, line in _data_lines(path):
    line = line.strip()
    if line.startswith("#"):
      continue
    if not line or not _is_image_line(line, pending, path, number):
      pending = None  # the pending image's (possibly empty) points line, or a stray blank line
      continue
    image = _parse_image_line(line, path, number)
    first = first_line.get(image.image_id)
    if first is not None:
      raise ValueError(f"{path}, line {number}: image id {image.image_id} appears again (first on line {first})")
    image.check_pose(f"{path}, line {number}")
    images[image.image_id], first_line[image.image_id] = image, number
    pending = image
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
  downscale = check_downscale(downscale)
  background_3 = check_background(background)
  views, points = colmap_views(pathlib.Path(path), split=split, test_every=test_every)
  point_colors = None
  if points is not None:
    point_colors = points.rgb.astype(np.float32) / 255.0
    points = points.xyz.astype(np.float32)
  return assemble_scene(
      views, downscale=downscale, background_3=background_3, points=points, point_colors=point_colors)


def colmap_views(root: pathlib.Path, *, split: str, test_every: int) -> tuple[list[ViewRecord], ColmapPoints | None]:
  """(the views of a split, the model's points3D or None), parsed and checked; reads no pixels."""
  check_split(split)
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
  return views, points
