"""InternVL dynamic high-resolution tiling: image -> normalized [num_tiles, tile, tile, 3] tiles.

An image of width W and height H is covered by a grid of i columns by j rows of square tiles
(min_num <= i * j <= max_num). The grid whose ratio i / j is closest to W / H wins. Candidates are
visited in the order transformers' GotOcr2 image processor uses (`get_all_supported_aspect_ratios`:
columns in the outer loop, rows in the inner loop, then a stable sort by i * j), and on an exact tie
of |W / H - i / j| a later candidate replaces the kept one only while the image area
W * H exceeds 0.5 * tile^2 * i * j. The image is resized (bicubic) to (tile * i) x (tile * j),
cut into i * j tiles in row-major order, and, when there is more than one tile, a tile x tile
thumbnail of the whole image is appended. Pixels are scaled to [0, 1] and normalized with the
ImageNet mean and std.

Resizing matches transformers' PIL backend (`GotOcr2ImageProcessorPil`, which the InternVL
checkpoints in transformers format load): uint8 images go through PIL's 8-bit bicubic filter,
so resized pixels are rounded to uint8 before scaling; for uint8 input the tiles equal that
processor's `pixel_values` (transposed to NHWC). Float images, taken to lie in [0, 1], are
resized per channel by PIL's 32-bit float bicubic filter without rounding (transformers would
round them to uint8 first); the two paths agree to about one 8-bit level.

Everything here runs on the host with numpy and PIL, in the input pipeline.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
TILE_SIZE = 448
MAX_TILES = 12

_PIL_MODES = ("RGB", "RGBA", "L")


def _check_positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}")
  return int(value)


def _check_tile_range(min_num: Any, max_num: Any) -> tuple[int, int]:
  min_num = _check_positive_int("min_num", min_num)
  max_num = _check_positive_int("max_num", max_num)
  if min_num > max_num:
    raise ValueError(f"min_num must be <= max_num, got min_num={min_num}, max_num={max_num}")
  return min_num, max_num


def tile_grid_candidates(min_num: int = 1, max_num: int = MAX_TILES) -> list[tuple[int, int]]:
  """Every (columns, rows) grid with min_num <= columns * rows <= max_num, in visiting order.

  Order: columns ascending in the outer loop, rows ascending in the inner loop, then a stable
  sort by tile count, so grids with equal tile counts stay in ascending-columns order.
  """
  min_num, max_num = _check_tile_range(min_num, max_num)
  grids = [(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num]
  return sorted(grids, key=lambda grid: grid[0] * grid[1])


def choose_tile_grid(
    height: int, width: int, *, tile_size: int = TILE_SIZE, min_num: int = 1, max_num: int = MAX_TILES
) -> tuple[int, int]:
  """The (columns, rows) tile grid for a height x width image; see the module docstring for the rule."""
  height = _check_positive_int("height", height)
  width = _check_positive_int("width", width)
  tile_size = _check_positive_int("tile_size", tile_size)
  aspect_ratio = width / height
  area = width * height
  best_diff = float("inf")
  best_grid = (1, 1)
  for grid in tile_grid_candidates(min_num, max_num):
    diff = abs(aspect_ratio - grid[0] / grid[1])
    if diff < best_diff:
      best_diff, best_grid = diff, grid
    elif diff == best_diff and area > 0.5 * tile_size * tile_size * grid[0] * grid[1]:
      # Same fit: more tiles only while the image still has more than half their pixel area.
      best_grid = grid
  return best_grid


def _rgba_over_white(rgba_hw4: np.ndarray) -> np.ndarray:
  """Composite an RGBA array onto a white background (transformers' convert-to-RGB rule)."""
  if rgba_hw4.dtype == np.uint8:
    alpha_hw1 = rgba_hw4[..., 3:4].astype(np.float64) / 255.0
    rgb_hw3 = alpha_hw1 * rgba_hw4[..., :3] + (1.0 - alpha_hw1) * 255.0
    return np.round(rgb_hw3).astype(np.uint8)
  alpha_hw1 = rgba_hw4[..., 3:4]
  return (alpha_hw1 * rgba_hw4[..., :3] + (1.0 - alpha_hw1)).astype(np.float32)


def _from_pil(image: Image.Image) -> np.ndarray:
  if image.mode not in _PIL_MODES:
    raise ValueError(f"PIL image mode must be one of {_PIL_MODES}, got {image.mode!r}; convert it first")
  if image.width == 0 or image.height == 0:
    raise ValueError(f"image must be non-empty, got size {image.width}x{image.height} (W x H)")
  if image.mode == "RGBA":
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, image)
  return np.asarray(image.convert("RGB"))


def as_rgb_array(image: Any) -> np.ndarray:
  """Validate an image and return it as an [H, W, 3] uint8 or float32 (values in [0, 1]) array.

  Accepts PIL images in mode RGB, RGBA or L, and numpy arrays [H, W] (grey), [H, W, 1] (grey),
  [H, W, 3] (RGB) or [H, W, 4] (RGBA), of dtype uint8 or float with values in [0, 1].
  RGBA is composited onto white; grey is repeated into three channels.
  """
  if isinstance(image, Image.Image):
    return _from_pil(image)
  if not isinstance(image, np.ndarray):
    raise TypeError(f"image must be a numpy array or a PIL image, got {type(image).__name__}")
  if image.ndim not in (2, 3):
    raise ValueError(f"image array must be [H, W] or [H, W, C], got shape {image.shape}")
  if image.ndim == 3 and image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"image array must have 1, 3 or 4 channels (last axis), got shape {image.shape}")
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f"image must be non-empty, got shape {image.shape}")
  if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"image dtype must be uint8 or float (values in [0, 1]), got {image.dtype}")
  if image.dtype != np.uint8:
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
      raise ValueError("float image holds NaN or inf values")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
      raise ValueError(f"float image values must lie in [0, 1], got range [{low}, {high}]")
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  if image.shape[-1] == 4:
    return _rgba_over_white(image)
  return image


def _resize_bicubic(image_hw3: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize with PIL: uint8 in -> uint8 out; float32 in -> float32 out, per channel."""
  if image_hw3.dtype == np.uint8:
    return np.asarray(Image.fromarray(image_hw3).resize((width, height), Image.BICUBIC))
  channels = [
      np.asarray(Image.fromarray(np.ascontiguousarray(image_hw3[..., c])).resize((width, height), Image.BICUBIC))
      for c in range(3)
  ]
  return np.stack(channels, axis=-1)


def _normalize(tiles_nhw3: np.ndarray) -> np.ndarray:
  scaled = tiles_nhw3.astype(np.float32)
  if tiles_nhw3.dtype == np.uint8:
    scaled = scaled / np.float32(255.0)
  mean = np.asarray(IMAGENET_MEAN, np.float32)
  std = np.asarray(IMAGENET_STD, np.float32)
  return ((scaled - mean) / std).astype(np.float32)


def dynamic_preprocess(
    image: Any,
    *,
    tile_size: int = TILE_SIZE,
    min_num: int = 1,
    max_num: int = MAX_TILES,
    use_thumbnail: bool = True,
) -> np.ndarray:
  """Tile one image InternVL-style and normalize it.

  Args:
    image: PIL image (RGB, RGBA, L) or numpy [H, W], [H, W, 1|3|4] array, uint8 or float in [0, 1].
    tile_size: side of each square tile in pixels (448 for InternVL3).
    min_num, max_num: bounds on the number of grid tiles (the thumbnail is not counted).
    use_thumbnail: append a tile_size x tile_size resize of the whole image when the grid has
      more than one tile.

  Returns:
    float32 [num_tiles, tile_size, tile_size, 3] (NHWC): the grid tiles row-major, then the
    thumbnail if any, each (pixel / 255 - ImageNet mean) / ImageNet std.
  """
  tile_size = _check_positive_int("tile_size", tile_size)
  min_num, max_num = _check_tile_range(min_num, max_num)
  image_hw3 = as_rgb_array(image)
  height, width = image_hw3.shape[:2]
  cols, rows = choose_tile_grid(height, width, tile_size=tile_size, min_num=min_num, max_num=max_num)
  resized = _resize_bicubic(image_hw3, rows * tile_size, cols * tile_size)
  # [rows*t, cols*t, 3] -> [rows, cols, t, t, 3] -> row-major list of tiles.
  tiles = resized.reshape(rows, tile_size, cols, tile_size, 3).transpose(0, 2, 1, 3, 4)
  tiles = tiles.reshape(rows * cols, tile_size, tile_size, 3)
  if use_thumbnail and rows * cols > 1:
    thumbnail = _resize_bicubic(image_hw3, tile_size, tile_size)
    tiles = np.concatenate([tiles, thumbnail[None]], axis=0)
  return _normalize(tiles)


def preprocess_images(
    images: Sequence[Any],
    *,
    tile_size: int = TILE_SIZE,
    min_num: int = 1,
    max_num: int = MAX_TILES,
    use_thumbnail: bool = True,
) -> tuple[np.ndarray, list[int]]:
  """Tile the k images of one prompt, each capped at max(1, max_num // k) grid tiles.

  min_num is lowered to that cap when it would exceed it.

  Returns:
    (pixel_values [sum of num_tiles, tile_size, tile_size, 3] float32, num_tiles per image).
  """
  if isinstance(images, (np.ndarray, Image.Image)) or not isinstance(images, Sequence):
    raise TypeError(f"images must be a sequence (list or tuple) of images, got {type(images).__name__}")
  if len(images) == 0:
    raise ValueError("images must hold at least one image")
  min_num, max_num = _check_tile_range(min_num, max_num)
  cap = max(1, max_num // len(images))
  per_image = [
      dynamic_preprocess(
          image, tile_size=tile_size, min_num=min(min_num, cap), max_num=cap, use_thumbnail=use_thumbnail
      )
      for image in images
  ]
  return np.concatenate(per_image, axis=0), [tiles.shape[0] for tiles in per_image]


def preprocess_video_frames(frames: Sequence[Any], *, tile_size: int = TILE_SIZE) -> np.ndarray:
  """One tile per frame (a plain resize to tile_size x tile_size, no thumbnail): [F, t, t, 3] float32."""
  if isinstance(frames, Image.Image) or not isinstance(frames, (Sequence, np.ndarray)):
    raise TypeError(f"frames must be a sequence of images or an [F, H, W, C] array, got {type(frames).__name__}")
  if len(frames) == 0:
    raise ValueError("frames must hold at least one frame")
  return np.concatenate([dynamic_preprocess(f, tile_size=tile_size, min_num=1, max_num=1) for f in frames], axis=0)
