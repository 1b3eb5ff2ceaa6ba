"""What every dataset loader shares: `SceneData`, file readers, downscaling, splits, compositing.

Images come back as float32 in [0, 1] whatever their bit depth (8- or 16-bit PNG, JPEG);
grey images are repeated into RGB. Downscaling by an integer factor is an area average
over factor x factor blocks; rows and columns that do not fill a whole block (at the
bottom and right edges) are dropped, so pixel coordinates scale exactly by 1 / factor.
Every error names the file it is about.
"""

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import imageio.v3 as iio
import numpy as np
import plyfile

from jaxlab.splat.camera import Camera

SPLITS = ("train", "test", "val", "all")
# Allowed |R^T R - I| (largest entry) and |last row - [0, 0, 0, 1]| of a camera pose: far
# above float32 rounding or six written decimals, far below any real scale or shear.
POSE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True, eq=False)
class SceneData:
  """Posed images of one scene, ready for fitting.

  Attributes:
    cameras: batched `Camera`, batch shape [V], OpenCV axes, one width/height for all views.
    images: [V, H, W, 3] float32 in [0, 1]; RGBA images are composited on the background.
    names: the V image file names (relative to the dataset), one per view.
    masks: [V, H, W] float32 alpha (or mask file) in [0, 1], or None when the data has none.
    depths: [V, H, W] float32 camera-space depth (0 = no depth), or None when absent.
    points: [P, 3] float32 initial point cloud, or None.
    point_colors: [P, 3] float32 in [0, 1], present exactly when `points` is.
  """

  cameras: Camera
  images: np.ndarray
  names: tuple[str, ...]
  masks: np.ndarray | None = None
  depths: np.ndarray | None = None
  points: np.ndarray | None = None
  point_colors: np.ndarray | None = None

  def __post_init__(self):
    num_views = len(self.names)
    expected = (num_views, self.cameras.height, self.cameras.width)
    if self.cameras.batch_shape != (num_views,):
      raise ValueError(f"SceneData cameras must have batch shape ({num_views},); got {self.cameras.batch_shape}")
    if self.images.shape != (*expected, 3):
      raise ValueError(f"SceneData images must have shape {(*expected, 3)}; got {self.images.shape}")
    for name in ("masks", "depths"):
      value = getattr(self, name)
      if value is not None and value.shape != expected:
        raise ValueError(f"SceneData {name} must have shape {expected}; got {value.shape}")
    if (self.points is None) != (self.point_colors is None):
      raise ValueError("SceneData points and point_colors must be both set or both None")
    if self.points is not None and (self.points.ndim != 2 or self.points.shape[1] != 3
                                    or self.point_colors.shape != self.points.shape):
      raise ValueError(
          f"SceneData points and point_colors must both be [P, 3]; got {self.points.shape} and"
          f" {self.point_colors.shape}")

  @property
  def num_views(self) -> int:
    return len(self.names)

  @property
  def width(self) -> int:
    return self.cameras.width

  @property
  def height(self) -> int:
    return self.cameras.height


# ----------------------------------------------------------------------------- argument checks


def check_split(split: str) -> str:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
  return split


def check_downscale(downscale: Any) -> int:
  if isinstance(downscale, bool) or not isinstance(downscale, (int, np.integer)) or downscale < 1:
    raise ValueError(f"downscale must be a positive int (1 = full resolution); got {downscale!r}")
  return int(downscale)


def check_background(background: Any) -> np.ndarray:
  """The background as a float32 [3] array in [0, 1]."""
  try:
    color_3 = np.asarray(background, np.float32)
  except (TypeError, ValueError) as e:
    raise ValueError(f"background must be three floats in [0, 1] (RGB); got {background!r}") from e
  if color_3.shape != (3,) or not np.all((color_3 >= 0.0) & (color_3 <= 1.0)):
    raise ValueError(f"background must be three floats in [0, 1] (RGB); got {background!r}")
  return color_3


def check_test_every(test_every: Any) -> int:
  if isinstance(test_every, bool) or not isinstance(test_every, (int, np.integer)) or test_every < 1:
    raise ValueError(f"test_every must be a positive int (every test_every-th view is a test view); got {test_every!r}")
  return int(test_every)


def split_indices(num_views: int, split: str, test_every: int) -> np.ndarray:
  """Indices of `split` among `num_views` ordered views, for formats without split files.

  As in the 3DGS code (`llffhold`): views 0, test_every, 2 * test_every, ... are test
  views ("val" is the same set), the others train views; "all" keeps every view.
  """
  check_split(split)
  indices = np.arange(num_views)
  if split == "all":
    return indices
  is_test = indices % check_test_every(test_every) == 0
  return indices[is_test] if split in ("test", "val") else indices[~is_test]


# ----------------------------------------------------------------------------- poses


def _rotation_block_problem(rotation_33: np.ndarray) -> str | None:
  """What makes a 3x3 block no rotation (scale, shear, reflection), or None if it is one."""
  error = float(np.max(np.abs(rotation_33.T @ rotation_33 - np.eye(3))))
  determinant = float(np.linalg.det(rotation_33))
  if error <= POSE_TOLERANCE and determinant > 0:
    return None
  singular_3 = np.linalg.svd(rotation_33, compute_uv=False)
  if error <= POSE_TOLERANCE:
    return f"a reflection (determinant {determinant:.6g}), not a rotation"
  if determinant > 0 and np.ptp(singular_3) <= POSE_TOLERANCE * singular_3.max():
    return f"a rotation scaled by {singular_3.mean():.6g}"
  listed = ", ".join(f"{v:.6g}" for v in singular_3)
  return f"not orthonormal (singular values {listed}, determinant {determinant:.6g})"


def check_rigid_pose(pose_44: np.ndarray, where: str, what: str = "transform_matrix") -> None:
  """Refuses a float [4, 4] camera pose that is not [R t; 0 0 0 1] with R a rotation.

  The renderer and `Camera` assume rigid poses (e.g. the camera centre is -R^T t), so a
  scaled, sheared, reflected or projective matrix is an error naming `where`, not a camera
  silently off in position and depth. Every test allows POSE_TOLERANCE.
  """
  if not np.all(np.isfinite(pose_44)):
    raise ValueError(f"{where}: {what} has non-finite entries")
  problem = None
  if np.max(np.abs(pose_44[3] - np.array([0.0, 0.0, 0.0, 1.0]))) > POSE_TOLERANCE:
    problem = f"its last row is {pose_44[3].tolist()}, not [0, 0, 0, 1]"
  else:
    block_problem = _rotation_block_problem(pose_44[:3, :3])
    problem = None if block_problem is None else f"its rotation block is {block_problem}"
  if problem is not None:
    raise ValueError(
        f"{where}: {what} is not a rigid camera pose: {problem}; a camera pose is [R t; 0 0 0 1] with R^T R = I"
        f" and det R = +1, each within {POSE_TOLERANCE:g} (scaled poses are not supported: scale the scene and"
        " the translations instead)")


# ----------------------------------------------------------------------------- files


def require_file(path: pathlib.Path, what: str) -> pathlib.Path:
  """`path` if it is a file, else FileNotFoundError saying what was expected there."""
  if not path.is_file():
    raise FileNotFoundError(f"{what} not found: {path}")
  return path


def read_json(path: pathlib.Path) -> Any:
  """Parsed JSON; errors name the file and, for bad syntax, the line and column."""
  require_file(path, "JSON file")
  try:
    text = path.read_text(encoding="utf-8")
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: cannot read as UTF-8 text: {e}") from e
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e


def _to_unit_float(array: np.ndarray, path: pathlib.Path) -> np.ndarray:
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  if array.dtype == np.uint16:
    return array.astype(np.float32) / 65535.0
  if array.dtype == np.bool_:
    return array.astype(np.float32)
  if np.issubdtype(array.dtype, np.floating):
    return array.astype(np.float32)
  raise ValueError(f"{path}: unsupported pixel type {array.dtype} (expected 8- or 16-bit, or float)")


def _read_pixels(path: pathlib.Path) -> np.ndarray:
  require_file(path, "image")
  try:
    return np.asarray(iio.imread(path, plugin="pillow"))
  except Exception as e:  # Decoders raise many types; all mean "cannot read this image".
    raise ValueError(f"{path}: cannot read image: {e}") from e


def read_image(path: pathlib.Path) -> np.ndarray:
  """[H, W, 3] or [H, W, 4] (with alpha) float32 in [0, 1]; grey images become RGB."""
  pixels = _read_pixels(path)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
    raise ValueError(f"{path}: expected a grey, grey+alpha, RGB or RGBA image; got an array of shape {pixels.shape}")
  image = _to_unit_float(pixels, path)
  if image.shape[-1] <= 2:  # grey or grey + alpha
    image = np.concatenate([np.repeat(image[..., :1], 3, axis=-1), image[..., 1:]], axis=-1)
  return image


def read_mask(path: pathlib.Path) -> np.ndarray:
  """[H, W] float32 in [0, 1] from a mask image (its first channel)."""
  pixels = _read_pixels(path)
  mask = pixels if pixels.ndim == 2 else pixels[..., 0]
  return _to_unit_float(mask, path)


def image_size(path: pathlib.Path) -> tuple[int, int]:
  """(width, height) of an image file, read from its header."""
  require_file(path, "image")
  try:
    shape = iio.improps(path, plugin="pillow").shape
  except Exception as e:  # As in `_read_pixels`.
    raise ValueError(f"{path}: cannot read image: {e}") from e
  return int(shape[1]), int(shape[0])


def read_depth(path: pathlib.Path, *, png_depth_scale: float = 1e-3) -> np.ndarray:
  """[H, W] float32 depth from a `.npy` array (as stored) or a 16-bit PNG (times `png_depth_scale`)."""
  require_file(path, "depth file")
  if path.suffix.lower() == ".npy":
    try:
      depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise ValueError(f"{path}: cannot read depth array: {e}") from e
    if depth.ndim == 3 and depth.shape[-1] == 1:
      depth = depth[..., 0]
  else:
    depth = _read_pixels(path)
    if not np.issubdtype(depth.dtype, np.integer) or depth.ndim != 2:
      raise ValueError(f"{path}: a depth image must be single-channel integer (e.g. 16-bit millimetres)")
    depth = depth.astype(np.float64) * png_depth_scale
  if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
    raise ValueError(f"{path}: depth must be a numeric [H, W] array; got {depth.dtype} {depth.shape}")
  depth = depth.astype(np.float32)
  if not np.all(np.isfinite(depth)):
    raise ValueError(f"{path}: depth has non-finite values (use 0 for pixels without depth)")
  return depth


def read_point_ply(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """([P, 3] float32 points, [P, 3] float32 colours in [0, 1]) from a PLY `vertex` element.

  Colours are `red`, `green`, `blue` (uchar / 255, or float as stored); a cloud without
  them gets mid grey (0.5), which is what a fit starts from when nothing is known.
  """
  require_file(path, "point cloud")
  try:
    vertices = plyfile.PlyData.read(str(path))["vertex"]
  except Exception as e:  # plyfile raises several types for malformed files.
    raise ValueError(f"{path}: cannot read a PLY 'vertex' element: {e}") from e
  names = vertices.data.dtype.names
  missing = [n for n in ("x", "y", "z") if n not in names]
  if missing:
    raise ValueError(f"{path}: PLY vertices lack {missing}; properties are {list(names)}")
  points_p3 = np.stack([vertices[n] for n in ("x", "y", "z")], axis=-1).astype(np.float32)
  if all(n in names for n in ("red", "green", "blue")):
    channels = [np.asarray(vertices[n]) for n in ("red", "green", "blue")]
    scale = 255.0 if np.issubdtype(channels[0].dtype, np.integer) else 1.0
    colors_p3 = np.stack(channels, axis=-1).astype(np.float32) / scale
  else:
    colors_p3 = np.full_like(points_p3, 0.5)
  if not np.all(np.isfinite(points_p3)):
    raise ValueError(f"{path}: point cloud has non-finite coordinates")
  return points_p3, colors_p3


# ----------------------------------------------------------------------------- pixels


def composite_on_background(image_hwc: np.ndarray, background_3: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """(RGB [H, W, 3], alpha [H, W] or None): RGBA (straight alpha) blended over the background."""
  if image_hwc.shape[-1] == 3:
    return image_hwc, None
  rgb, alpha = image_hwc[..., :3], image_hwc[..., 3]
  return rgb * alpha[..., None] + background_3 * (1.0 - alpha[..., None]), alpha


def area_downscale(image_hw_or_hwc: np.ndarray, factor: int) -> np.ndarray:
  """Mean over factor x factor blocks; partial blocks at the bottom/right edges are dropped."""
  if factor == 1:
    return image_hw_or_hwc
  height, width = image_hw_or_hwc.shape[:2]
  if height < factor or width < factor:
    raise ValueError(f"cannot downscale a {width}x{height} image by {factor}")
  rows, cols = height // factor, width // factor
  cropped = image_hw_or_hwc[:rows * factor, :cols * factor]
  blocks = cropped.reshape(rows, factor, cols, factor, *cropped.shape[2:])
  return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def area_downscale_depth(depth_hw: np.ndarray, factor: int) -> np.ndarray:
  """Mean of the valid (non-zero) depths in each block; 0 where a block has none."""
  if factor == 1:
    return depth_hw
  valid = (depth_hw != 0).astype(np.float32)
  total = area_downscale(depth_hw, factor).astype(np.float64)
  fraction = area_downscale(valid, factor).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(fraction > 0, total / fraction, 0.0).astype(np.float32)


def format_size(width_height: Sequence[int]) -> str:
  return f"{width_height[0]}x{width_height[1]}"
