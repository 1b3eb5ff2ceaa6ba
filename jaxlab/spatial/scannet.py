"""Reads one ScanNet scan (SensReader's export plus the scan's annotation files) into a `StaticScene`.

Layout of `<scene>/` (`<scene>` is the folder's name, e.g. scene0000_00):

  color/<i>.jpg            colour frames (i = frame index, as SensReader writes it, not zero-padded;
                           numbers may be skipped); a frame's other files share its <i>
  depth/<i>.png            16-bit depth in millimetres (0 = no measurement)
  pose/<i>.txt             4x4 camera-to-world (rows of 4 numbers); invalid poses hold -inf
  intrinsic/intrinsic_color.txt, intrinsic/intrinsic_depth.txt   4x4 pinhole matrices
  <scene>_vh_clean_2.ply                 the annotation mesh; its vertices are the scene's surface points
  <scene>_vh_clean_2.0.010000.segs.json  "segIndices": the segment of every mesh vertex
  <scene>.aggregation.json               "segGroups": [{"objectId", "label", "segments"}, ...]
  <scene>.txt                            "key = value" lines: axisAlignment (16 numbers, row major),
                                         colorWidth/colorHeight/depthWidth/depthHeight (the sizes the
                                         intrinsics were written for)

What the reader makes of it:

- World frame: `axisAlignment @ (scan frame)`, applied to the mesh vertices and to every pose, so
  the world is ScanNet's axis-aligned, z-up frame. A scan without axisAlignment (ScanNet's test
  split) keeps its own frame, with a logged warning.
- Frames come out at the colour image's size (or `image_size`). The colour intrinsics are scaled from
  the size declared in `<scene>.txt` to the files' size and then to the output size. Depth is
  resampled to the output pixels by nearest neighbour *through the two intrinsics*: the centre of each
  output pixel is turned into a ray with the colour intrinsics and the depth pixel that ray hits (with
  the depth intrinsics) gives its value. With the depth camera a plain rescaling of the colour camera
  this is an ordinary nearest resize; for ScanNet, whose depth intrinsics are not an exact rescaling
  of the colour ones (the aspect ratios differ), it keeps the two images registered. Like the paper's
  MultiSPA code, it takes colour and depth to share the optical centre and orientation.
- Depth must be integer millimetres (ScanNet's unit): a floating-point or 8-bit image, or values whose
  median is under 100 (10 cm, closer than the sensor measures: metres written as integers) is an error.
- Objects: one axis-aligned world box per aggregated instance, from the (aligned) vertices of its
  segments; id = objectId + 1 (0 = none), label from the aggregation. A vertex in two instances
  belongs to the later one (as in the common ScanNet loaders); an instance left with no vertex is dropped with
  a warning; a flat instance gets a 1 mm extent along its flat axis.
- Instance masks: every pixel with a depth is lifted to the world and takes the object id of the
  nearest mesh vertex within 10 cm (0 if none is that close, or without depth). This is dense and
  needs no separate occlusion test (the measured depth is the visible surface), unlike splatting
  the vertices, which covers only the pixels vertices happen to fall on (a few % at full resolution).
  It costs about a second per 1296x968 frame on two cores; `image_size` makes it cheaper.
- Frames: the numerically sorted colour frames, every `frame_step`-th of them; frames whose pose is
  not finite (ScanNet writes -inf) are skipped and counted in one logged warning; `max_frames` caps
  the frames kept. A missing depth or pose file for a listed frame is an error.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image
from plyfile import PlyData, PlyParseError
from scipy.spatial import cKDTree

from jaxlab import files
from jaxlab.spatial.scene import Frame, SceneError, SceneObject, StaticScene

log = logging.getLogger(__name__)

LABEL_RADIUS_M = 0.1  # farthest mesh vertex a depth pixel may take its object id from
_MIN_MEDIAN_MM = 100.0  # measured depths with a smaller median are metres, not millimetres
_MIN_EXTENT_M = 1e-3
_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I")  # 16-bit greyscale PNG (older Pillow opens it as "I")


def read_scannet_scene(scene_dir: str | os.PathLike, *, frame_step: int = 1, max_frames: int | None = None,
                       image_size: tuple[int, int] | None = None) -> StaticScene:
  """The scan in `scene_dir` as a `StaticScene` (module docstring for the layout and the choices).

  Args:
    scene_dir: the scan's folder, named after the scan.
    frame_step: keep every `frame_step`-th colour frame (of the sorted listing).
    max_frames: keep at most this many frames with a valid pose.
    image_size: (H, W) of the frames; None keeps the colour images' size.

  Raises:
    FileNotFoundError: a folder or file of the layout is missing (named).
    SceneError: a file holds something unusable (named, with the problem), or no frame has a valid pose.
  """
  if int(frame_step) != frame_step or frame_step < 1:
    raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
  if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
    raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
  if image_size is not None:
    if len(image_size) != 2 or any(int(s) != s or s < 1 for s in image_size):
      raise ValueError(f"image_size must be (height, width) positive integers, got {image_size!r}")
    image_size = (int(image_size[0]), int(image_size[1]))
  scene_dir = os.path.normpath(os.fspath(scene_dir))
  if not os.path.isdir(scene_dir):
    raise FileNotFoundError(f"ScanNet scene folder {scene_dir} does not exist")
  name = os.path.basename(scene_dir)
  for sub in ("color", "depth", "pose", "intrinsic"):
    if not os.path.isdir(os.path.join(scene_dir, sub)):
      raise FileNotFoundError(f"{os.path.join(scene_dir, sub)}: missing folder (a SensReader export has "
                              "color/, depth/, pose/ and intrinsic/)")

  meta = _read_meta(_scene_file(scene_dir, f"{name}.txt"))
  align_44 = _axis_alignment(meta, os.path.join(scene_dir, f"{name}.txt"))
  vertices_n3 = _read_vertices(_scene_file(scene_dir, f"{name}_vh_clean_2.ply"))
  points_n3 = vertices_n3 @ align_44[:3, :3].T + align_44[:3, 3]
  point_ids_n, objects = _read_objects(points_n3, _scene_file(scene_dir, f"{name}_vh_clean_2.0.010000.segs.json"),
                                       _scene_file(scene_dir, f"{name}.aggregation.json"))
  color_k = _Intrinsics(os.path.join(scene_dir, "intrinsic", "intrinsic_color.txt"), meta, "color")
  depth_k = _Intrinsics(os.path.join(scene_dir, "intrinsic", "intrinsic_depth.txt"), meta, "depth")
  labeller = _InstanceLabeller(points_n3, point_ids_n)

  frames, skipped = [], []
  for index in _frame_stems(os.path.join(scene_dir, "color"))[::int(frame_step)]:
    if max_frames is not None and len(frames) >= max_frames:
      break
    pose_44 = _read_matrix44(_scene_file(scene_dir, "pose", f"{index}.txt"))
    if not np.all(np.isfinite(pose_44)):
      skipped.append(index)  # ScanNet's lost-tracking frames: never usable
      continue
    frames.append(_read_frame(scene_dir, index, align_44 @ pose_44, color_k, depth_k, image_size, labeller))
  if skipped:
    shown = ", ".join(skipped[:10]) + (", ..." if len(skipped) > 10 else "")
    log.warning("ScanNet scene %s: skipped %d frame(s) whose pose is not finite (-inf): %s", name, len(skipped),
                shown)
  if not frames:
    raise SceneError(f"ScanNet scene {scene_dir}: no frame with a valid pose ({len(skipped)} skipped for an "
                     "invalid pose)")
  return StaticScene(name=name, frames=tuple(frames), objects=objects, points_world_n3=points_n3,
                     point_object_ids_n=point_ids_n)


def _scene_file(scene_dir: str, *parts: str) -> str:
  path = os.path.join(scene_dir, *parts)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: missing file of the ScanNet scene")
  return path


def _read_meta(path: str) -> dict[str, str]:
  """`key = value` lines of `<scene>.txt`."""
  meta = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      key, sep, value = line.partition("=")
      if sep:
        meta[key.strip()] = value.strip()
  return meta


def _numbers(text: str, count: int, what: str, path: str) -> np.ndarray:
  try:
    values = np.array([float(x) for x in text.split()], np.float64)
  except ValueError:
    raise SceneError(f"{path}: {what} must be {count} numbers, got {text[:80]!r}") from None
  if values.size != count:
    raise SceneError(f"{path}: {what} must be {count} numbers, got {values.size}")
  return values


def _axis_alignment(meta: dict[str, str], path: str) -> np.ndarray:
  if "axisAlignment" not in meta:
    log.warning("%s has no axisAlignment: the scene keeps the scan's own frame (z up is not guaranteed)", path)
    return np.eye(4)
  align_44 = _numbers(meta["axisAlignment"], 16, "axisAlignment", path).reshape(4, 4)
  rotation = align_44[:3, :3]
  if not np.allclose(align_44[3], [0, 0, 0, 1]) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
    raise SceneError(f"{path}: axisAlignment is not a rigid transform")
  return align_44


def _read_matrix44(path: str) -> np.ndarray:
  try:
    matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
  except ValueError as e:
    raise SceneError(f"{path}: not a 4x4 matrix of numbers ({e})") from None
  if matrix.shape != (4, 4):
    raise SceneError(f"{path}: must hold a 4x4 matrix, got shape {matrix.shape}")
  return matrix


class _Intrinsics:
  """A 3x3 pinhole matrix from a ScanNet intrinsic file, rescalable to the size of the images at hand."""

  def __init__(self, path: str, meta: dict[str, str], kind: str):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: missing file of the ScanNet scene")
    self.path = path
    self.kind = kind
    self.k_33 = _read_matrix44(path)[:3, :3]
    if not np.all(np.isfinite(self.k_33)) or self.k_33[0, 0] <= 0 or self.k_33[1, 1] <= 0:
      raise SceneError(f"{path}: intrinsics need finite, positive focal lengths")
    width, height = meta.get(f"{kind}Width"), meta.get(f"{kind}Height")
    try:
      self.declared = (int(height), int(width)) if width and height else None
    except ValueError:
      raise SceneError(f"{kind}Width/{kind}Height of the scene's .txt are not integers: "
                       f"{width!r}, {height!r}") from None

  def for_size(self, height: int, width: int) -> np.ndarray:
    """The intrinsics of this camera's images when they are `height` x `width` pixels."""
    k_33 = self.k_33
    if self.declared is not None and self.declared != (height, width):
      k_33 = _scale_intrinsics(k_33, height / self.declared[0], width / self.declared[1])
    if not (0 < k_33[0, 2] < width and 0 < k_33[1, 2] < height):
      raise SceneError(f"{self.path}: principal point ({k_33[0, 2]:.1f}, {k_33[1, 2]:.1f}) lies outside the "
                       f"{width}x{height} {self.kind} images: the intrinsics were written for another image size")
    return k_33


def _scale_intrinsics(k_33: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
  # Pixel centres at +0.5: resizing scales continuous pixel coordinates, so rows 0 and 1 scale as is.
  return np.diag([scale_x, scale_y, 1.0]) @ k_33


def _frame_stems(color_dir: str) -> list[str]:
  """The frames' file stems ("0", "5", ... or zero-padded), in numeric order."""
  names = [n for n in os.listdir(color_dir) if n.endswith(".jpg")]
  stems = sorted((n[:-4] for n in names if n[:-4].isdigit()), key=int)
  if not stems:
    example = f" (found e.g. {min(names)})" if names else ""
    raise SceneError(f"{color_dir}: no colour frames named <index>.jpg{example}")
  return stems


def _read_vertices(path: str) -> np.ndarray:
  try:
    ply = PlyData.read(path)
    vertex = ply["vertex"].data
    vertices_n3 = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
  except (PlyParseError, KeyError, ValueError, IndexError, OSError) as e:  # a broken or foreign file
    raise SceneError(f"{path}: not a PLY mesh with x, y, z vertices ({type(e).__name__}: {e})") from None
  if vertices_n3.shape[0] == 0 or not np.all(np.isfinite(vertices_n3)):
    raise SceneError(f"{path}: the mesh has no vertices or non-finite ones")
  return vertices_n3


def _read_objects(points_n3: np.ndarray, segs_path: str, agg_path: str) -> tuple[np.ndarray, tuple[SceneObject, ...]]:
  """Object id per vertex and the objects' world boxes, from the segmentation and its aggregation."""
  segs = files.read_json_object(segs_path)
  if "segIndices" not in segs:
    raise SceneError(f"{segs_path}: no 'segIndices' list")
  seg_n = np.asarray(segs["segIndices"])
  if seg_n.shape != (points_n3.shape[0],) or seg_n.dtype.kind not in "iu":
    raise SceneError(f"{segs_path}: 'segIndices' must hold one integer per mesh vertex ({points_n3.shape[0]}), "
                     f"got shape {seg_n.shape}: is it the segmentation of this _vh_clean_2.ply?")
  groups = files.read_json_object(agg_path).get("segGroups")
  if not isinstance(groups, list):
    raise SceneError(f"{agg_path}: no 'segGroups' list")
  known_segments = set(np.unique(seg_n).tolist())
  ids_n = np.zeros(points_n3.shape[0], np.int32)
  labels = {}
  for group in groups:
    try:
      object_id = int(group["objectId"]) + 1
      label = str(group["label"])
      segments = [int(s) for s in group["segments"]]
    except (KeyError, TypeError, ValueError):
      raise SceneError(f"{agg_path}: each segGroup needs an integer objectId, a label and a segments list; got "
                       f"{str(group)[:120]}") from None
    if object_id < 1 or object_id in labels:
      raise SceneError(f"{agg_path}: objectId {object_id - 1} is negative or appears twice")
    unknown = sorted(set(segments) - known_segments)
    if unknown:
      raise SceneError(f"{agg_path}: object {object_id - 1} ({label!r}) names segment(s) {unknown[:5]} that are "
                       f"not in {os.path.basename(segs_path)}: are both files of the same mesh?")
    labels[object_id] = label
    ids_n[np.isin(seg_n, segments)] = object_id
  objects = []
  for object_id, label in labels.items():
    members_m3 = points_n3[ids_n == object_id]
    if members_m3.shape[0] == 0:
      log.warning("%s: object %d (%r) has no vertex of its own; dropped", agg_path, object_id - 1, label)
      continue
    low, high = members_m3.min(axis=0), members_m3.max(axis=0)
    objects.append(SceneObject(id=object_id, label=label, center_3=(low + high) / 2,
                               extent_3=np.maximum(high - low, _MIN_EXTENT_M)))
  return ids_n, tuple(objects)


class _InstanceLabeller:
  """Object ids of a frame's pixels from the nearest mesh vertex to each pixel's depth point."""

  def __init__(self, points_n3: np.ndarray, ids_n: np.ndarray):
    self.ids_n = ids_n
    self.tree = cKDTree(points_n3) if np.any(ids_n > 0) else None

  def __call__(self, depth_hw: np.ndarray, k_33: np.ndarray, cam_to_world_44: np.ndarray) -> np.ndarray:
    instances_hw = np.zeros(depth_hw.shape, np.int32)
    if self.tree is None:
      return instances_hw
    rows, cols = np.nonzero(depth_hw > 0)
    pixels_3n = np.stack([cols + 0.5, rows + 0.5, np.ones(rows.size)])
    camera_3n = np.linalg.solve(k_33, pixels_3n) * depth_hw[rows, cols]
    world_n3 = (cam_to_world_44[:3, :3] @ camera_3n).T + cam_to_world_44[:3, 3]
    distance_n, nearest_n = self.tree.query(world_n3, distance_upper_bound=LABEL_RADIUS_M, workers=-1)
    close = np.isfinite(distance_n)
    instances_hw[rows[close], cols[close]] = self.ids_n[nearest_n[close]]
    return instances_hw


def _read_depth_mm(path: str) -> np.ndarray:
  """uint16 millimetres of a depth PNG; anything else is named as the unit problem it is."""
  try:
    with Image.open(path) as image:
      mode = image.mode
      depth = np.asarray(image)
  except OSError as e:
    raise SceneError(f"{path}: not a readable depth image ({e})") from None
  if mode == "F" or depth.dtype.kind == "f":
    raise SceneError(f"{path}: depth holds floating-point values; ScanNet depth must be 16-bit integer millimetres")
  if mode not in _DEPTH_MODES or depth.ndim != 2:
    raise SceneError(f"{path}: depth must be a single-channel 16-bit PNG of millimetres, got image mode {mode!r}")
  if depth.size and (depth.min() < 0 or depth.max() > 65535):
    raise SceneError(f"{path}: depth values outside 0..65535 cannot be 16-bit millimetres")
  depth = depth.astype(np.uint16)
  measured = depth[depth > 0]
  if measured.size and np.median(measured) < _MIN_MEDIAN_MM:
    raise SceneError(f"{path}: the measured depths have a median of {np.median(measured):g}, which looks like "
                     "metres; ScanNet depth PNGs hold millimetres")
  return depth


def _resample_depth(depth_mm_hw: np.ndarray, depth_k_33: np.ndarray, out_k_33: np.ndarray, height: int,
                    width: int) -> np.ndarray:
  """Metres at the output pixels: nearest depth pixel along each output pixel's ray (no skew assumed)."""
  x_w = (np.arange(width) + 0.5 - out_k_33[0, 2]) / out_k_33[0, 0]
  y_h = (np.arange(height) + 0.5 - out_k_33[1, 2]) / out_k_33[1, 1]
  cols_w = np.floor(depth_k_33[0, 0] * x_w + depth_k_33[0, 2]).astype(np.int64)
  rows_h = np.floor(depth_k_33[1, 1] * y_h + depth_k_33[1, 2]).astype(np.int64)
  col_ok = (cols_w >= 0) & (cols_w < depth_mm_hw.shape[1])
  row_ok = (rows_h >= 0) & (rows_h < depth_mm_hw.shape[0])
  out_hw = np.zeros((height, width), np.float32)
  out_hw[np.ix_(row_ok, col_ok)] = depth_mm_hw[np.ix_(rows_h[row_ok], cols_w[col_ok])] / np.float32(1000.0)
  return out_hw


def _read_frame(scene_dir: str, index: str, cam_to_world_44: np.ndarray, color_k: _Intrinsics, depth_k: _Intrinsics,
                image_size: tuple[int, int] | None, labeller: _InstanceLabeller) -> Frame:
  color_path = _scene_file(scene_dir, "color", f"{index}.jpg")
  depth_path = _scene_file(scene_dir, "depth", f"{index}.png")
  try:
    with Image.open(color_path) as image:
      rgb = image.convert("RGB")
      rgb.load()
  except OSError as e:
    raise SceneError(f"{color_path}: not a readable image ({e})") from None
  k_33 = color_k.for_size(rgb.height, rgb.width)
  height, width = image_size or (rgb.height, rgb.width)
  if (height, width) != (rgb.height, rgb.width):
    k_33 = _scale_intrinsics(k_33, height / rgb.height, width / rgb.width)
    rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
  depth_mm_hw = _read_depth_mm(depth_path)
  depth_hw = _resample_depth(depth_mm_hw, depth_k.for_size(*depth_mm_hw.shape), k_33, height, width)
  try:
    return Frame(name=index, rgb_hw3=np.asarray(rgb, np.uint8), depth_hw=depth_hw, intrinsics_33=k_33,
                 cam_to_world_44=cam_to_world_44, instances_hw=labeller(depth_hw, k_33, cam_to_world_44))
  except SceneError as e:  # name the scene: the frame's own message only names the index
    raise SceneError(f"{scene_dir}: {e}") from None
