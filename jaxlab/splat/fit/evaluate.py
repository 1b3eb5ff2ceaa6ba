"""Held-out evaluation of a fitted scene: mean PSNR, SSIM and L1 over views.

Renders are clipped to [0, 1] before scoring, as the 3DGS evaluation does; SSIM is
`losses.ssim` (the 3DGS window and padding). Views are rendered `chunk_size` at a time
(`lax.map` with a batch size) inside one compiled program, so memory stays bounded for
many views.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.camera import Camera
from jaxlab.splat.fit import densify, losses
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.render import OVERFLOW_MODES, render
from jaxlab.splat.validate import check_camera, check_gaussians


def evaluate(
    gaussians: Gaussians,
    cameras: Camera,
    images: jax.Array,
    *,
    capacity: int,
    background: tuple[float, float, float] | jax.Array,
    sh_degree: int | None = None,
    chunk_size: int = 8,
    tile_size: int = 16,
    eps2d: float = 0.3,
    antialiased: bool = False,
    on_overflow: str = "warn",
    implementation: str | tuple[str, ...] | None = None,
) -> dict[str, jax.Array]:
  """Mean {"psnr", "ssim", "l1"} of the scene's renders against `images`.

  Args:
    gaussians: the scene (inactive slots are not drawn).
    cameras: batched cameras, batch shape [V].
    images: [V, H, W, 3] targets in [0, 1], composited on `background`.
    capacity: static Gaussian-tile intersection capacity per view.
    background: RGB behind the Gaussians.
    sh_degree: SH bands to use (None: all the scene has); higher bands are dropped.
    chunk_size: views rendered at once.
    tile_size, eps2d, antialiased, on_overflow, implementation: passed to `render`.

  Returns:
    float32 scalars (device arrays) "psnr" (mean of per-view PSNR, dB), "ssim", "l1".
  """
  check_gaussians(gaussians)
  check_camera(cameras)
  if len(cameras.batch_shape) != 1:
    raise ValueError(f"evaluate needs cameras with batch shape [V]; got {cameras.batch_shape}")
  num_views = cameras.batch_shape[0]
  want = (num_views, cameras.height, cameras.width, 3)
  if tuple(np.shape(images)) != want:
    raise ValueError(f"images must have shape [V, H, W, 3] = {want}; got {tuple(np.shape(images))}")
  if np.shape(background) != (3,):
    raise ValueError(f"background must be 3 floats (RGB); got shape {np.shape(background)}")
  if sh_degree is not None and (isinstance(sh_degree, bool) or sh_degree not in range(gaussians.sh_degree + 1)):
    raise ValueError(f"sh_degree must be None or an int in 0..{gaussians.sh_degree} (the scene's degree); got {sh_degree!r}")
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
  if on_overflow not in OVERFLOW_MODES:
    raise ValueError(f"on_overflow={on_overflow!r}; choose one of {OVERFLOW_MODES}")
  degree = jnp.int32(gaussians.sh_degree if sh_degree is None else sh_degree)
  return _evaluate(
      gaussians, cameras, jnp.asarray(images, jnp.float32), jnp.asarray(background, jnp.float32), degree,
      capacity=capacity, chunk_size=min(chunk_size, num_views), tile_size=tile_size, eps2d=float(eps2d), antialiased=antialiased,
      on_overflow=on_overflow, implementation=implementation)


@functools.partial(jax.jit, static_argnames=(
    "capacity", "chunk_size", "tile_size", "eps2d", "antialiased", "on_overflow", "implementation"))
def _evaluate(gaussians, cameras, images_vhw3, background_3, sh_degree, *, capacity, chunk_size, tile_size, eps2d,
              antialiased, on_overflow, implementation):
  # The degree is traced: evaluating at another degree reuses the compiled program.
  band_mask_k = densify.sh_band_mask(sh_degree, gaussians.sh.shape[1])
  scene = gaussians.replace(sh=gaussians.sh * band_mask_k[None, :, None])

  def one_view(view):
    camera, image_hw3 = view
    rgb = render(
        scene, camera, background=background_3, capacity=capacity, tile_size=tile_size, eps2d=eps2d,
        antialiased=antialiased, on_overflow=on_overflow, implementation=implementation).rgb
    rgb = jnp.clip(rgb, 0.0, 1.0)
    return jnp.stack([losses.psnr(rgb, image_hw3), losses.ssim(rgb, image_hw3), losses.l1(rgb, image_hw3)])

  scores_v3 = jax.lax.map(one_view, (cameras, images_vhw3), batch_size=chunk_size)
  psnr, ssim, l1 = jnp.mean(scores_v3, axis=0)
  return {"psnr": psnr, "ssim": ssim, "l1": l1}
