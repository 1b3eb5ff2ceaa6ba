"""Image losses and metrics of 3D Gaussian splatting: L1, SSIM and PSNR.

Each function takes one pair of [H, W, C] images and returns a float32 scalar; map over
views with `jax.vmap`. SSIM follows the INRIA 3DGS code (`utils/loss_utils.py`): an 11x11
Gaussian window with sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 (images in [0, 1]), computed per
channel and averaged over every pixel and channel. Like that code it uses *same* padding
with zeros (a conv2d with padding 5), so the map has the image's size and the border
windows see zeros; `padding="valid"` gives the classic definition without borders.
"""

import math

import jax
import jax.numpy as jnp

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
PADDINGS = ("same", "valid")


def gaussian_window_1d(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> tuple[float, ...]:
  """Normalised 1D Gaussian taps; the 2D SSIM window is their outer product."""
  center = size // 2
  taps = [math.exp(-((i - center) ** 2) / (2.0 * sigma * sigma)) for i in range(size)]
  total = sum(taps)
  return tuple(t / total for t in taps)


def _blur(x_hwc: jax.Array, padding: str) -> jax.Array:
  """Per-channel correlation with the 11x11 window, as two 1D passes (the window is separable).

  Precision HIGHEST: the default GPU precision may round float32 convolutions to TF32.
  """
  taps = jnp.asarray(gaussian_window_1d(), jnp.float32)
  channels = x_hwc.shape[-1]
  x_1hwc = x_hwc[None]
  for kernel_shape in ((SSIM_WINDOW_SIZE, 1, 1, channels), (1, SSIM_WINDOW_SIZE, 1, channels)):
    kernel = jnp.broadcast_to(taps.reshape(kernel_shape[:2] + (1, 1)), kernel_shape)
    x_1hwc = jax.lax.conv_general_dilated(
        x_1hwc, kernel, window_strides=(1, 1), padding=padding.upper(),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST)
  return x_1hwc[0]


def ssim(a_hwc: jax.Array, b_hwc: jax.Array, *, padding: str = "same") -> jax.Array:
  """Mean structural similarity of two [H, W, C] images in [0, 1] (1 for identical images).

  Args:
    a_hwc, b_hwc: images of one shape; C is any channel count (3 for RGB).
    padding: "same" (zero padding, as the 3DGS code; the default) or "valid" (windows that
      fit inside the image only; needs H, W >= 11).
  """
  if padding not in PADDINGS:
    raise ValueError(f"padding={padding!r}; choose one of {PADDINGS}")
  if a_hwc.shape != b_hwc.shape or a_hwc.ndim != 3:
    raise ValueError(f"ssim takes two [H, W, C] images of one shape; got {a_hwc.shape} and {b_hwc.shape}")
  if padding == "valid" and min(a_hwc.shape[:2]) < SSIM_WINDOW_SIZE:
    raise ValueError(f"padding='valid' needs H and W >= {SSIM_WINDOW_SIZE}; got {a_hwc.shape[:2]}")
  a = a_hwc.astype(jnp.float32)
  b = b_hwc.astype(jnp.float32)
  # One blur of the five maps stacked along channels.
  blurred = jnp.split(_blur(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1), padding), 5, axis=-1)
  mu_a, mu_b, mean_aa, mean_bb, mean_ab = blurred
  var_a = mean_aa - mu_a * mu_a
  var_b = mean_bb - mu_b * mu_b
  cov_ab = mean_ab - mu_a * mu_b
  numerator = (2.0 * mu_a * mu_b + SSIM_C1) * (2.0 * cov_ab + SSIM_C2)
  denominator = (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (var_a + var_b + SSIM_C2)
  return jnp.mean(numerator / denominator)


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean absolute difference over every element."""
  return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB for images in [0, 1]: -10 log10(MSE) (inf if equal)."""
  mse = jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))
  return -10.0 * jnp.log10(mse)
