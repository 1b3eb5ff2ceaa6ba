"""Random square crops of the colour photographs bundled with scikit-image, as a grain source.

The photographs ship inside the scikit-image wheel, so nothing is downloaded. Record i is

  {"image": float32 [size, size, 3] in [-1, 1], "label": int32 index of the photo in `names`}

drawn from `np.random.default_rng((seed, i))`, so it depends only on (seed, i): pick a photo
uniformly, a square side of f * (shorter side) with f uniform in [min_crop_fraction, 1], a
uniform position, a fair-coin horizontal flip, then an area (box-filter) resize to size x size.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import numpy as np

# Colour photographs that load from the scikit-image install itself (no pooch download).
# `cat` is left out: it is the same picture as `chelsea`.
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
)


@functools.lru_cache(maxsize=None)
def _load_photo(name: str) -> np.ndarray:
  import skimage.data  # Deferred: importing skimage is slow and only this loader needs it.

  image = np.asarray(getattr(skimage.data, name)())
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"skimage.data.{name} is not an RGB uint8 photograph (got {image.dtype} {image.shape}).")
  photo_hw3 = image.astype(np.float32) / 255.0
  photo_hw3.flags.writeable = False  # shared by every caller through the cache
  return photo_hw3


def _checked_names(names: Sequence[str]) -> tuple[str, ...]:
  if isinstance(names, str):
    raise TypeError(f"names must be a sequence of photo names, got the string {names!r}.")
  names = tuple(names)
  if not names:
    raise ValueError("names must hold at least one photo name.")
  unknown = [n for n in names if n not in PHOTO_NAMES]
  if unknown:
    raise ValueError(f"Unknown photo names {unknown}; choose from {PHOTO_NAMES}.")
  return names


def load_photos(names: Sequence[str] = PHOTO_NAMES) -> list[np.ndarray]:
  """The named photographs as read-only float32 [H, W, 3] arrays in [0, 1], cached per name."""
  return [_load_photo(name) for name in _checked_names(names)]


@functools.lru_cache(maxsize=None)
def _photo_integral(name: str) -> np.ndarray:
  """[H + 1, W + 1, 3] float64 summed-area table of a photo (float64 keeps small boxes exact)."""
  return _integral(_load_photo(name))


def _integral(image_hwc: np.ndarray) -> np.ndarray:
  height, width, channels = image_hwc.shape
  table = np.zeros((height + 1, width + 1, channels), np.float64)
  np.cumsum(np.cumsum(image_hwc, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
  table.flags.writeable = False
  return table


def _lerp_rows(table: np.ndarray, coords: np.ndarray) -> np.ndarray:
  """table sampled at fractional indices along axis 0, linearly between neighbouring rows."""
  low = np.minimum(np.floor(coords).astype(np.int64), table.shape[0] - 2)
  frac = (coords - low).reshape((-1,) + (1,) * (table.ndim - 1))
  return table[low] * (1 - frac) + table[low + 1] * frac


def _box_resize(table: np.ndarray, top: float, left: float, side: float, size: int) -> np.ndarray:
  """Mean of the image over each cell of a size x size grid laid on the square (top, left, side).

  The summed-area table of a piecewise-constant image is bilinear inside every pixel, so its
  bilinear interpolation at fractional cell corners is exact, and each cell mean is the
  four-corner difference divided by the cell area: an exact area (box-filter) resize.
  """
  edges = np.arange(size + 1, dtype=np.float64) * (side / size)
  corners = _lerp_rows(table, top + edges)  # [size + 1, W + 1, c]
  corners = _lerp_rows(corners.transpose(1, 0, 2), left + edges).transpose(1, 0, 2)  # [size + 1, size + 1, c]
  sums = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]
  return sums / (side / size) ** 2


def area_resize(image_hwc: np.ndarray, size: int) -> np.ndarray:
  """Box-filter resize of a square [n, n, c] image to float64 [size, size, c] (exact area means)."""
  image_hwc = np.asarray(image_hwc)
  if image_hwc.ndim != 3 or image_hwc.shape[0] != image_hwc.shape[1] or image_hwc.shape[0] == 0:
    raise ValueError(f"area_resize needs a non-empty square [n, n, c] image, got shape {image_hwc.shape}.")
  if not _is_int(size) or size < 1:
    raise ValueError(f"size must be an int >= 1, got {size!r}.")
  return _box_resize(_integral(image_hwc), 0.0, 0.0, float(image_hwc.shape[0]), int(size))


class PhotoCropSource:
  """Random-access source (grain's RandomAccessDataSource protocol) of random photo crops."""

  def __init__(
      self,
      size: int,
      *,
      names: Sequence[str] = PHOTO_NAMES,
      min_crop_fraction: float = 0.25,
      seed: int = 0,
      length: int = 100_000,
  ):
    """Args:
      size: output side in pixels, >= 4.
      names: photographs to draw from (a subset of PHOTO_NAMES); labels index this sequence.
      min_crop_fraction: smallest crop side as a fraction of the photo's shorter side, in (0, 1].
      seed: non-negative int; record i depends only on (seed, i).
      length: number of records, >= 1.
    """
    if not _is_int(size) or size < 4:
      raise ValueError(f"size must be an int >= 4, got {size!r}.")
    is_number = isinstance(min_crop_fraction, numbers.Real) and not isinstance(min_crop_fraction, bool)
    if not (is_number and 0 < min_crop_fraction <= 1):
      raise ValueError(f"min_crop_fraction must be a number in (0, 1], got {min_crop_fraction!r}.")
    if not _is_int(seed) or seed < 0:
      raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    if not _is_int(length) or length < 1:
      raise ValueError(f"length must be an int >= 1, got {length!r}.")
    self._names = _checked_names(names)
    # Summed-area tables make each record O(size^2) whatever the crop size.
    self._shapes = [photo.shape for photo in load_photos(self._names)]
    self._tables = [_photo_integral(name) for name in self._names]
    self._size = int(size)
    self._min_crop_fraction = float(min_crop_fraction)
    self._seed = int(seed)
    self._length = int(length)

  @property
  def names(self) -> tuple[str, ...]:
    return self._names

  @property
  def size(self) -> int:
    return self._size

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not _is_int(index) or not 0 <= index < self._length:
      raise IndexError(f"record {index!r} out of range [0, {self._length})")
    rng = np.random.default_rng((self._seed, int(index)))
    label = int(rng.integers(len(self._names)))
    height, width, _ = self._shapes[label]
    fraction = rng.uniform(self._min_crop_fraction, 1.0)
    side = max(1, min(int(round(fraction * min(height, width))), height, width))
    top = int(rng.integers(height - side + 1))
    left = int(rng.integers(width - side + 1))
    image = _box_resize(self._tables[label], top, left, side, self._size)
    if rng.random() < 0.5:
      image = image[:, ::-1]  # the cell grid is uniform, so flipping after the resize is the same
    image = image * 2.0 - 1.0
    return {"image": np.clip(image, -1.0, 1.0).astype(np.float32), "label": np.array(label, np.int32)}

  def __getstate__(self) -> dict:
    # Pickle the arguments only (grain worker processes): the tables are rebuilt from the cache.
    return {"size": self._size, "names": self._names, "min_crop_fraction": self._min_crop_fraction,
            "seed": self._seed, "length": self._length}

  def __setstate__(self, state: dict) -> None:
    size = state.pop("size")
    self.__init__(size, **state)

  def __repr__(self) -> str:
    return (f"PhotoCropSource(size={self._size}, names={self._names}, min_crop_fraction={self._min_crop_fraction},"
            f" seed={self._seed}, length={self._length})")


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
