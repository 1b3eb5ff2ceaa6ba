"""Visual prompts drawn on images: filled dots, letter labels next to points, and nameable colours.

Every function returns a new array and leaves its input as it was. Pixel (u, v) = (column, row) with
pixel centres at integer + 0.5 (scene.py's convention): a pixel belongs to a dot of radius r around
(u, v) when its centre is within r of (u, v).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

# A small palette of colours that are far apart and have plain names (templates say "the red dot").
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 70, 230),
    "yellow": (250, 230, 20),
    "cyan": (0, 220, 230),
    "orange": (255, 140, 0),
    "purple": (140, 40, 200),
    "pink": (255, 150, 200),
    "brown": (140, 80, 30),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}

_REFERENCE_WIDTH = 1296  # the paper's image width, where a dot has a 10 px radius
_REFERENCE_RADIUS = 10.0


def _check_image(rgb_hw3: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb_hw3)
  if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
    raise ValueError(f"an image must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
  return rgb


def _check_point(u: float, v: float, width: int, height: int) -> tuple[float, float]:
  u, v = float(u), float(v)
  if not (math.isfinite(u) and math.isfinite(v) and 0 <= u < width and 0 <= v < height):
    raise ValueError(f"point (u={u}, v={v}) lies outside the {width}x{height} image")
  return u, v


def _check_color(color) -> tuple[int, int, int]:
  values = tuple(np.asarray(color).reshape(-1).tolist())
  if len(values) != 3 or not all(isinstance(c, (int, float)) and float(c).is_integer() and 0 <= c <= 255
                                 for c in values):
    raise ValueError(f"a colour is three whole numbers in 0..255, got {color!r}")
  return tuple(int(c) for c in values)


def _default_radius(width: int) -> int:
  """10 px at the paper's 1296 px width, scaled with the width, at least 2 px so small images show it."""
  return max(2, round(_REFERENCE_RADIUS * width / _REFERENCE_WIDTH))


def draw_dot(rgb_hw3: np.ndarray, u: float, v: float, color, radius: float | None = None) -> np.ndarray:
  """A copy of the image with a filled circle of `color` centred on pixel position (u, v).

  radius: in pixels; by default 10 px at 1296 px width, scaled with the image width, at least 2 px.
  """
  rgb = _check_image(rgb_hw3)
  height, width = rgb.shape[:2]
  u, v = _check_point(u, v, width, height)
  color = _check_color(color)
  radius = float(_default_radius(width) if radius is None else radius)
  if not math.isfinite(radius) or radius <= 0:
    raise ValueError(f"a dot's radius must be positive, got {radius}")
  out = rgb.copy()
  # Only the circle's bounding box is examined, so large images cost no more than small ones.
  r0, r1 = max(0, math.floor(v - radius)), min(height, math.ceil(v + radius) + 1)
  c0, c1 = max(0, math.floor(u - radius)), min(width, math.ceil(u + radius) + 1)
  rows = np.arange(r0, r1)[:, None] + 0.5
  cols = np.arange(c0, c1)[None, :] + 0.5
  inside = (cols - u) ** 2 + (rows - v) ** 2 <= radius ** 2
  out[r0:r1, c0:c1][inside] = color
  return out


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
  # The bitmap font ships with Pillow: the same glyphs everywhere, no font files needed.
  loader = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)
  return loader()


@functools.lru_cache(maxsize=64)
def _text_mask(text: str) -> np.ndarray:
  """bool [h, w]: the glyph pixels of `text` in the bitmap font, cropped to the ink."""
  font = _font()
  _, _, right, bottom = font.getbbox(text)
  canvas = Image.new("L", (max(1, right) + 2, max(1, bottom) + 2), 0)
  ImageDraw.Draw(canvas).text((0, 0), text, font=font, fill=255)
  mask = np.asarray(canvas) > 127
  rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
  if rows.size == 0:
    raise ValueError(f"label text {text!r} draws nothing")
  return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _paste(out: np.ndarray, mask: np.ndarray, top: int, left: int, color: tuple[int, int, int]) -> None:
  """Sets out[top + i, left + j] = color where mask[i, j], clipped to the image."""
  height, width = out.shape[:2]
  r0, c0 = max(0, top), max(0, left)
  r1, c1 = min(height, top + mask.shape[0]), min(width, left + mask.shape[1])
  if r0 >= r1 or c0 >= c1:
    return
  out[r0:r1, c0:c1][mask[r0 - top:r1 - top, c0 - left:c1 - left]] = color


def draw_label(rgb_hw3: np.ndarray, u: float, v: float, text: str, color, *, scale: int | None = None) -> np.ndarray:
  """A copy of the image with `text` (e.g. "A") written in `color` just beside pixel position (u, v).

  The letters get a one-pixel outline in black or white (whichever contrasts with `color`) so they read
  on any background. They sit above and to the right of the point, clear of a default-sized dot, and
  move to the other side where the image edge is in the way. scale: integer glyph magnification, by
  default 1 up to about 430 px width and growing with the width (3 at 1296 px).
  """
  rgb = _check_image(rgb_hw3)
  height, width = rgb.shape[:2]
  u, v = _check_point(u, v, width, height)
  color = _check_color(color)
  if not isinstance(text, str) or not text.strip():
    raise ValueError(f"a label is non-empty text, got {text!r}")
  scale = max(1, round(width / 432)) if scale is None else int(scale)
  if scale < 1:
    raise ValueError(f"label scale must be >= 1, got {scale}")
  glyphs = np.repeat(np.repeat(_text_mask(text.strip()), scale, axis=0), scale, axis=1)
  glyphs = np.pad(glyphs, 1)
  outline = ndimage.binary_dilation(glyphs, structure=np.ones((3, 3), bool)) & ~glyphs
  h, w = glyphs.shape
  gap = _default_radius(width) + 1
  left = math.floor(u) + gap
  if left + w > width:
    left = math.floor(u) - gap - w + 1
  top = math.floor(v) - gap - h + 1
  if top < 0:
    top = math.floor(v) + gap
  # A label that fits nowhere beside the point is pushed inside the image rather than cut off.
  left = min(max(left, 0), max(width - w, 0))
  top = min(max(top, 0), max(height - h, 0))
  luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
  out = rgb.copy()
  _paste(out, outline, top, left, (0, 0, 0) if luminance > 128 else (255, 255, 255))
  _paste(out, glyphs, top, left, color)
  return out


def distinct_colors(n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
  """`n` different palette colours in an order drawn by `rng` (each has a name: `color_name`)."""
  if not 0 <= n <= len(PALETTE):
    raise ValueError(f"the palette has {len(PALETTE)} colours; asked for {n}")
  colors = list(PALETTE.values())
  return [colors[i] for i in rng.permutation(len(colors))[:n]]


def color_name(rgb) -> str:
  """The plain name of the palette colour nearest to `rgb` (three values in 0..255)."""
  color = np.asarray(_check_color(rgb), np.float64)
  names = list(PALETTE)
  distances = [np.sum((color - np.asarray(PALETTE[name], np.float64)) ** 2) for name in names]
  return names[int(np.argmin(distances))]
