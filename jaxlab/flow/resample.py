"""Resampling helpers for HiFlow's low-to-high resolution hand-off: bicubic upsampling, Gaussian blur, unsharp mask.

Images are NHWC, [B, H, W, C]; every filter acts on each channel separately and returns float32.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp


def _check_image(name: str, x_bhwc) -> None:
  if not hasattr(x_bhwc, "shape") or len(x_bhwc.shape) != 4:
    raise ValueError(f"{name} needs a 4-D [B, H, W, C] array, got shape {getattr(x_bhwc, 'shape', None)}")


def upsample_bicubic(x_bhwc: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, C] -> float32 [B, factor*H, factor*W, C] by bicubic interpolation (`jax.image.resize`)."""
  _check_image("upsample_bicubic", x_bhwc)
  if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or factor < 1:
    raise ValueError(f"upsample_bicubic needs factor to be a positive int, got {factor!r}")
  return _upsample_bicubic(jnp.asarray(x_bhwc), int(factor))


@functools.partial(jax.jit, static_argnums=1)  # One program per shape for eager callers.
def _upsample_bicubic(x_bhwc: jax.Array, factor: int) -> jax.Array:
  batch, height, width, channels = x_bhwc.shape
  out_shape = (batch, factor * height, factor * width, channels)
  return jax.image.resize(x_bhwc.astype(jnp.float32), out_shape, method="bicubic")


def gaussian_weights(sigma, kernel_size: int = 3) -> jax.Array:
  """float32 [kernel_size] taps exp(-t^2 / (2 sigma^2)) at t = -r..r (r = kernel_size // 2), summing to 1.

  `sigma` may be traced; `kernel_size` is a positive odd int.
  """
  if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) or kernel_size < 1:
    raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
  if kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be odd (a centred tap), got {kernel_size}")
  if isinstance(sigma, numbers.Real) and not sigma > 0:
    raise ValueError(f"sigma must be > 0, got {sigma!r}")
  return _gaussian_taps(jnp.asarray(sigma, jnp.float32), int(kernel_size))


@functools.partial(jax.jit, static_argnums=1)
def _gaussian_taps(sigma: jax.Array, kernel_size: int) -> jax.Array:
  radius = kernel_size // 2
  t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  taps = jnp.exp(-(t * t) / (2.0 * jnp.square(sigma)))
  return taps / jnp.sum(taps)


def _blur_axis(x_bhwc: jax.Array, taps_k: jax.Array, axis: int) -> jax.Array:
  """Correlates x with the symmetric taps along one spatial axis, reflect padding (edge not repeated)."""
  kernel_size = taps_k.shape[0]
  radius = kernel_size // 2
  pad = [(0, 0)] * 4
  pad[axis] = (radius, radius)
  padded = jnp.pad(x_bhwc, pad, mode="reflect")
  length = x_bhwc.shape[axis]
  # A handful of taps: a weighted sum of shifted views beats a general convolution here.
  out = taps_k[0] * jax.lax.slice_in_dim(padded, 0, length, axis=axis)
  for k in range(1, kernel_size):
    out = out + taps_k[k] * jax.lax.slice_in_dim(padded, k, k + length, axis=axis)
  return out


def gaussian_blur(x_bhwc: jax.Array, sigma, kernel_size: int = 3) -> jax.Array:
  """Separable Gaussian blur over H then W, per channel, reflect padding; float32 [B, H, W, C].

  Args:
    x_bhwc: [B, H, W, C] image; H and W must exceed kernel_size // 2 (reflect padding).
    sigma: standard deviation in pixels (> 0); a Python number or a traced scalar.
    kernel_size: odd number of taps per axis.
  """
  _check_image("gaussian_blur", x_bhwc)
  taps_k = gaussian_weights(sigma, kernel_size)
  radius = kernel_size // 2
  _, height, width, _ = x_bhwc.shape
  if min(height, width) <= radius:
    raise ValueError(
        f"gaussian_blur needs H and W > kernel_size // 2 = {radius} for reflect padding, got H={height}, W={width}"
    )
  return _separable_blur(jnp.asarray(x_bhwc), taps_k)


@jax.jit
def _separable_blur(x_bhwc: jax.Array, taps_k: jax.Array) -> jax.Array:
  x_bhwc = x_bhwc.astype(jnp.float32)
  return _blur_axis(_blur_axis(x_bhwc, taps_k, axis=1), taps_k, axis=2)


def unsharp_mask(x_bhwc: jax.Array, sigma, kernel_size: int = 3) -> jax.Array:
  """Sharpened image 2x - gaussian_blur(x, sigma): x plus its high-frequency detail; float32 [B, H, W, C]."""
  blurred = gaussian_blur(x_bhwc, sigma, kernel_size)
  return 2.0 * x_bhwc.astype(jnp.float32) - blurred
