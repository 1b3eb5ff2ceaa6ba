"""Server-side frames for the viewer: a browser camera -> a jaxlab `Camera` -> an 8-bit image.

What the browser shows is what `jaxlab.splat.render` (or the LOD cut) draws: the viewer sends
these images as the scene's background. Image sizes are rounded to multiples of 8 pixels so
that a resized window or the lowered resolution during camera motion reuses few compiled
programs. The intersection capacity starts at a power of two and grows (`capacity.py`), with a
recompile, whenever a view overflows it (close-ups of large scenes), so no frame is ever drawn with
Gaussians missing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from jaxlab.ops.gaussian_raster_op.api import resolve_gaussian_raster
from jaxlab.splat import Camera, Gaussians, render
from jaxlab.splat.sh import num_sh_coeffs
from jaxlab.view.capacity import MAX_CAPACITY, grown_capacity

log = logging.getLogger(__name__)

RENDER_MODES = ("RGB", "Depth", "Alpha")
SIZE_STEP = 8  # image sides are multiples of this
MIN_CAPACITY = 1 << 16


@dataclasses.dataclass(frozen=True)
class ViewRequest:
  """One frame to draw: the browser's camera and the viewer's controls.

  Attributes:
    camera_to_world_44: float64 [4, 4], OpenCV axes (x right, y down, z forward), as viser sends.
    fov_y: vertical field of view in radians.
    width, height: image size in pixels.
    mode: one of RENDER_MODES.
    sh_degree: SH bands used for colour (higher bands are zeroed, so no recompile).
    background: RGB in [0, 1].
  """

  camera_to_world_44: np.ndarray
  fov_y: float
  width: int
  height: int
  mode: str = "RGB"
  sh_degree: int = 3
  background: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Frame:
  """A drawn frame: `image_hw3` uint8, the seconds it took (with transfer to host), the
  intersections it needed, the Gaussians drawn, and whether its time includes compiling
  (the first frame of a size or capacity)."""

  image_hw3: np.ndarray
  seconds: float
  num_intersections: int
  num_gaussians: int
  compiled: bool = False


def view_size(aspect: float, max_side: int) -> tuple[int, int]:
  """(width, height) with width / height close to `aspect`, the longer side `max_side`,
  both multiples of SIZE_STEP (at least one step)."""
  if not (aspect > 0 and math.isfinite(aspect)):
    raise ValueError(f"aspect must be a positive number, got {aspect!r}")
  if max_side < SIZE_STEP:
    raise ValueError(f"max_side must be >= {SIZE_STEP}, got {max_side}")
  width, height = (max_side, max_side / aspect) if aspect >= 1 else (max_side * aspect, max_side)
  snap = lambda side: max(SIZE_STEP, int(round(side / SIZE_STEP)) * SIZE_STEP)
  return snap(width), snap(height)


def camera_to_world(wxyz_4, position_3) -> np.ndarray:
  """[4, 4] camera-to-world from a unit quaternion (w, x, y, z) and a position, the form in
  which viser reports the browser's camera (OpenCV axes)."""
  w, x, y, z = np.asarray(wxyz_4, np.float64) / np.linalg.norm(wxyz_4)
  c2w = np.eye(4)
  c2w[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                 [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                 [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
  c2w[:3, 3] = position_3
  return c2w


def camera_for(request: ViewRequest, *, near: float = 0.01) -> Camera:
  """The pinhole camera of `request`: square pixels, principal point at the image centre."""
  c2w = np.asarray(request.camera_to_world_44, np.float64)
  if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
    raise ValueError(f"camera_to_world_44 must be a finite 4x4 matrix, got shape {c2w.shape}")
  if not 0 < request.fov_y < math.pi:
    raise ValueError(f"fov_y must be in (0, pi) radians, got {request.fov_y}")
  focal = 0.5 * request.height / math.tan(0.5 * request.fov_y)
  world_to_camera = np.linalg.inv(c2w).astype(np.float32)
  return Camera.from_world_to_camera(world_to_camera, fx=focal, fy=focal, cx=request.width / 2, cy=request.height / 2,
                                     width=request.width, height=request.height, near=near)


def sh_band_mask(num_coeffs: int, degree: int) -> np.ndarray:
  """[K] 1.0 for the coefficients of bands <= degree, 0.0 above."""
  keep = num_sh_coeffs(max(0, min(degree, 3)))
  return (np.arange(num_coeffs) < keep).astype(np.float32)


_TURBO = matplotlib.colormaps["turbo"]


def depth_to_rgb(depth_hw: np.ndarray, alpha_hw: np.ndarray) -> np.ndarray:
  """Colour-mapped depth (near: blue, far: red) over the pixels that hit something; the
  range is the 2nd to 98th percentile of those pixels, so one far Gaussian does not flatten it."""
  hit = alpha_hw > 0.05
  if not hit.any():
    return np.zeros((*depth_hw.shape, 3), np.float32)
  lo, hi = np.percentile(depth_hw[hit], [2, 98])
  scaled = np.clip((depth_hw - lo) / max(hi - lo, 1e-6), 0, 1)
  return np.where(hit[..., None], _TURBO(scaled)[..., :3], 0.0).astype(np.float32)


def to_display(rgb_hw3: np.ndarray, alpha_hw: np.ndarray, depth_hw: np.ndarray, mode: str) -> np.ndarray:
  """The uint8 image of one render mode."""
  if mode == "RGB":
    image = rgb_hw3
  elif mode == "Depth":
    image = depth_to_rgb(depth_hw, alpha_hw)
  elif mode == "Alpha":
    image = np.repeat(alpha_hw[..., None], 3, axis=-1)
  else:
    raise ValueError(f"render mode {mode!r}; choose one of {RENDER_MODES}")
  return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _render_gaussians(gaussians: Gaussians, camera: Camera, sh_mask_k: jax.Array, background_3: jax.Array, *, capacity: int):
  masked = gaussians.replace(sh=gaussians.sh * sh_mask_k[None, :, None])
  out = render(masked, camera, capacity=capacity, background=background_3, on_overflow="ignore")
  return out.rgb, out.alpha, out.depth, out.num_intersections, out.overflow


class GaussianFrames:
  """Draws views of one Gaussian scene; safe to call from several threads (one at a time).

  `set_gaussians` swaps the scene (a newer checkpoint); the capacity is kept, so a scene of
  the same slot count reuses the compiled program.
  """

  def __init__(self, gaussians: Gaussians):
    self._lock = threading.Lock()
    self._capacity = MIN_CAPACITY
    self._compiled: set[tuple] = set()  # (num slots, SH coefficients, width, height, capacity) already compiled
    self.set_gaussians(gaussians)

  def set_gaussians(self, gaussians: Gaussians) -> None:
    with self._lock:
      self._gaussians = jax.device_put(gaussians)

  @property
  def gaussians(self) -> Gaussians:
    return self._gaussians

  @property
  def sh_degree(self) -> int:
    return self._gaussians.sh_degree

  def implementation(self, width: int = 64, height: int = 64) -> str:
    """The rasterizer implementation the op registry picks for this scene (runs nothing)."""
    n = self._gaussians.num
    spec = lambda *shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)
    tiles = (-(-width // 16)) * (-(-height // 16))
    return resolve_gaussian_raster(spec(n, 2), spec(n, 3), spec(n, 3), spec(n), spec(n), spec(self._capacity, dtype=jnp.int32),
                                   spec(tiles, 2, dtype=jnp.int32), width=width, height=height)

  def draw(self, request: ViewRequest) -> Frame:
    camera = camera_for(request)
    with self._lock:
      gaussians = self._gaussians
      mask = jnp.asarray(sh_band_mask(gaussians.sh.shape[1], request.sh_degree))
      background = jnp.asarray(request.background, jnp.float32)
      start = time.perf_counter()
      compiled = False
      while True:
        key = (gaussians.num, gaussians.sh.shape[1], request.width, request.height, self._capacity)
        compiled |= key not in self._compiled
        self._compiled.add(key)
        rgb, alpha, depth, count, overflow = jax.device_get(
            _render_gaussians(gaussians, camera, mask, background, capacity=self._capacity))
        if not overflow or self._capacity >= MAX_CAPACITY:
          break
        self._capacity = grown_capacity(self._capacity, int(count))
        log.info("%d Gaussian-tile intersections in this view: intersection capacity raised to %d (one recompile).",
                 int(count), self._capacity)
      seconds = time.perf_counter() - start
    image = to_display(rgb, alpha, depth, request.mode)
    return Frame(image_hw3=image, seconds=seconds, num_intersections=int(count), num_gaussians=int(gaussians.num_active()),
                 compiled=compiled)
