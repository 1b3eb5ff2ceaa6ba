"""From per-view records (image file, pose, intrinsics) to one `SceneData`.

Each format's loader parses its files into `ViewRecord`s with full-resolution pinhole
intrinsics; `assemble_scene` reads the images (in parallel threads), checks that they
all have the declared size, downscales them, composites alpha on the background, and
builds one batched `Camera`.

Downscaling by `factor` uses, when it exists, a folder `<image_root>_<factor>` beside the
image root holding the same file names (the 3DGS / COLMAP / nerfstudio `images_2`,
`images_4`, ... convention); its images must be the declared size / factor, to within a
pixel of rounding, and the intrinsics are scaled by the actual size ratio. Otherwise the
full-resolution images are area-averaged and the intrinsics divided by the factor.
"""

import concurrent.futures
import dataclasses
import os
import pathlib
from collections.abc import Callable

import numpy as np

from jaxlab.splat.camera import Camera
from jaxlab.splat.datasets.common import (
    SceneData,
    area_downscale,
    area_downscale_depth,
    check_rigid_pose,
    composite_on_background,
    format_size,
    read_depth,
    read_image,
    read_mask,
)

# Image reading is mostly I/O and C decoding, which release the GIL.
_MAX_READ_THREADS = 8


@dataclasses.dataclass(frozen=True)
class PinholeIntrinsics:
  """Pinhole intrinsics in pixels for a `width` x `height` image (pixel centres at +0.5)."""

  fx: float
  fy: float
  cx: float
  cy: float
  width: int
  height: int


@dataclasses.dataclass(frozen=True)
class ViewRecord:
  """One view as a format describes it, before any pixel is read.

  Attributes:
    name: the name reported in `SceneData.names`.
    image_root: folder the image name is relative to (the one `_<factor>` folders sit beside).
    image_name: path of the image under `image_root`.
    world_to_camera_44: float64 [4, 4] OpenCV world-to-camera transform.
    intrinsics: full-resolution intrinsics.
    source: the file that declared this view (named in errors).
    depth_path, mask_path: optional full-resolution depth / mask files.
  """

  name: str
  image_root: pathlib.Path
  image_name: str
  world_to_camera_44: np.ndarray
  intrinsics: PinholeIntrinsics
  source: pathlib.Path
  depth_path: pathlib.Path | None = None
  mask_path: pathlib.Path | None = None

  @property
  def image_path(self) -> pathlib.Path:
    return self.image_root / self.image_name


@dataclasses.dataclass(frozen=True)
class _LoadedView:
  rgb_hw3: np.ndarray
  alpha_hw: np.ndarray | None
  mask_hw: np.ndarray | None
  depth_hw: np.ndarray | None
  scale_xy: tuple[float, float]


def _check_one_declared_size(views: list[ViewRecord]) -> None:
  first = views[0]
  first_size = (first.intrinsics.width, first.intrinsics.height)
  for view in views[1:]:
    size = (view.intrinsics.width, view.intrinsics.height)
    if size != first_size:
      raise ValueError(
          f"all images of a dataset must have one size; {view.image_path} is {format_size(size)} but"
          f" {first.image_path} is {format_size(first_size)} (as declared in {view.source})")


def _downscaled_root(image_root: pathlib.Path, factor: int) -> pathlib.Path | None:
  if factor == 1:
    return None
  folder = image_root.with_name(f"{image_root.name}_{factor}")
  return folder if folder.is_dir() else None


def _load_auxiliary(
    path: pathlib.Path,
    reader: Callable[[pathlib.Path], np.ndarray],
    downscale: Callable[[np.ndarray], np.ndarray],
    full_size: tuple[int, int],
    target_hw: tuple[int, int],
) -> np.ndarray:
  """A full-resolution mask or depth map, checked against the image size, then downscaled."""
  array_hw = reader(path)
  if (array_hw.shape[1], array_hw.shape[0]) != full_size:
    raise ValueError(
        f"{path}: is {format_size((array_hw.shape[1], array_hw.shape[0]))} but its image is {format_size(full_size)}")
  array_hw = downscale(array_hw)
  if array_hw.shape != target_hw:
    raise ValueError(
        f"{path}: downscaled to {array_hw.shape[1]}x{array_hw.shape[0]}, which does not match its downscaled image"
        f" ({target_hw[1]}x{target_hw[0]}); the images in the downscaled folder must be (full size) // factor")
  return array_hw


def _load_view(view: ViewRecord, factor: int, background_3: np.ndarray) -> _LoadedView:
  """Reads, checks, downscales and composites one view."""
  full_size = (view.intrinsics.width, view.intrinsics.height)
  small_root = _downscaled_root(view.image_root, factor)
  if small_root is None:
    image = read_image(view.image_path)
    size = (image.shape[1], image.shape[0])
    if size != full_size:
      raise ValueError(
          f"{view.image_path}: image is {format_size(size)} but {view.source} declares {format_size(full_size)} for it")
    image = area_downscale(image, factor)
    scale_xy = (1.0 / factor, 1.0 / factor)
  else:
    small_path = small_root / view.image_name
    if not small_path.is_file():
      raise FileNotFoundError(
          f"image not found: {small_path} (the folder {small_root} exists, so downscale={factor} reads every"
          f" image from it; add the file or remove the folder)")
    image = read_image(small_path)
    size = (image.shape[1], image.shape[0])
    if any(abs(s - f / factor) >= 1.0 for s, f in zip(size, full_size)):
      raise ValueError(
          f"{small_path}: image is {format_size(size)} but should be {format_size(full_size)} / {factor}"
          f" (the size {view.source} declares, downscaled)")
    scale_xy = (size[0] / full_size[0], size[1] / full_size[1])
  rgb_hw3, alpha_hw = composite_on_background(image, background_3)
  target_hw = rgb_hw3.shape[:2]
  mask_hw = depth_hw = None
  if view.mask_path is not None:
    mask_hw = _load_auxiliary(view.mask_path, read_mask, lambda m: area_downscale(m, factor), full_size, target_hw)
  if view.depth_path is not None:
    depth_hw = _load_auxiliary(
        view.depth_path, read_depth, lambda d: area_downscale_depth(d, factor), full_size, target_hw)
  return _LoadedView(rgb_hw3.astype(np.float32), alpha_hw, mask_hw, depth_hw, scale_xy)


def _stack_optional(arrays: list[np.ndarray | None], fill: float, shape_hw: tuple[int, int]) -> np.ndarray | None:
  if all(a is None for a in arrays):
    return None
  return np.stack([np.full(shape_hw, fill, np.float32) if a is None else a.astype(np.float32) for a in arrays])


def assemble_scene(
    views: list[ViewRecord],
    *,
    downscale: int,
    background_3: np.ndarray,
    points: np.ndarray | None = None,
    point_colors: np.ndarray | None = None,
) -> SceneData:
  """Reads the views' images and builds the `SceneData` (see the module docstring).

  Masks are the mask files where given, else the images' alpha, else 1; they are None when
  no view has either. Depths are 0 for views without a depth file; None when none has one.
  """
  if not views:
    raise ValueError("a dataset needs at least one view")
  _check_one_declared_size(views)
  workers = max(1, min(_MAX_READ_THREADS, len(views), os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    loaded = list(pool.map(lambda v: _load_view(v, downscale, background_3), views))
  for view, item in zip(views[1:], loaded[1:]):
    if item.rgb_hw3.shape != loaded[0].rgb_hw3.shape:
      height, width = item.rgb_hw3.shape[:2]
      height0, width0 = loaded[0].rgb_hw3.shape[:2]
      raise ValueError(
          f"all images of a dataset must have one size; {view.image_name} loads as {width}x{height} but"
          f" {views[0].image_name} as {width0}x{height0}")
  height, width = loaded[0].rgb_hw3.shape[:2]

  cameras = _batched_camera(views, [item.scale_xy for item in loaded], width=width, height=height)

  masks = [item.mask_hw if item.mask_hw is not None else item.alpha_hw for item in loaded]
  return SceneData(
      cameras=cameras,
      images=np.stack([item.rgb_hw3 for item in loaded]),
      names=tuple(v.name for v in views),
      masks=_stack_optional(masks, 1.0, (height, width)),
      depths=_stack_optional([item.depth_hw for item in loaded], 0.0, (height, width)),
      points=points,
      point_colors=point_colors,
  )


def _batched_camera(views: list[ViewRecord], scale_xy_v: list[tuple[float, float]], *, width: int, height: int) -> Camera:
  """One `Camera` of the views, each view's full-resolution intrinsics scaled by its (x, y) factor."""
  intrinsics = {
      name: np.asarray([getattr(v.intrinsics, name) * scale_xy[axis] for v, scale_xy in zip(views, scale_xy_v)])
      for name, axis in (("fx", 0), ("fy", 1), ("cx", 0), ("cy", 1))}
  try:
    return Camera.from_world_to_camera(np.stack([v.world_to_camera_44 for v in views]), width=width, height=height,
                                       **intrinsics)
  except ValueError as e:
    raise ValueError(f"invalid camera in {views[0].source}: {e}") from e


def cameras_from_views(views: list[ViewRecord]) -> Camera:
  """The views' batched `Camera` at the declared full resolution, without reading a pixel."""
  if not views:
    raise ValueError("a dataset needs at least one view")
  _check_one_declared_size(views)
  first = views[0].intrinsics
  return _batched_camera(views, [(1.0, 1.0)] * len(views), width=first.width, height=first.height)


def pose_from_rows(rows: object, where: str) -> np.ndarray:
  """A float64 [4, 4] rigid pose from a JSON 4x4 (or 3x4) matrix; errors name `where`.

  Raises:
    ValueError: not a 4x4 / 3x4 matrix of finite numbers, or not rigid (`check_rigid_pose`).
  """
  try:
    matrix = np.asarray(rows, np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: transform_matrix must be a 4x4 matrix of numbers; got {rows!r}") from e
  if matrix.shape == (3, 4):
    matrix = np.concatenate([matrix, [[0.0, 0.0, 0.0, 1.0]]])
  if matrix.shape != (4, 4):
    raise ValueError(f"{where}: transform_matrix must be 4x4 (or 3x4); got shape {matrix.shape}")
  check_rigid_pose(matrix, where)
  return matrix


def world_to_camera_from_opengl(camera_to_world_44: np.ndarray, where: str) -> np.ndarray:
  """OpenCV world-to-camera [4, 4] from an OpenGL (x right, y up, z back) camera-to-world pose."""
  opencv_pose_44 = camera_to_world_44 * np.array([1.0, -1.0, -1.0, 1.0])  # flip the camera's y and z axes
  with np.errstate(all="ignore"):
    try:
      inverse_44 = np.linalg.inv(opencv_pose_44)
    except np.linalg.LinAlgError:
      inverse_44 = np.full((4, 4), np.nan)
  if not np.all(np.isfinite(inverse_44)):
    raise ValueError(f"{where}: transform_matrix is singular (not a camera pose)")
  return inverse_44
