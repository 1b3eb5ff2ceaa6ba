"""Low-pass filters of the HiFlow guidance op: a Butterworth mask in the centred Fourier domain and a Haar DWT.

All images are NHWC, [B, H, W, C]; filters act over H and W of each channel separately and
return float32.

Fourier low-pass (the spec):

  B(h, w) = 1 / (1 + (d2 / D^2)^n),  d2 = (2h/H - 1)^2 + (2w/W - 1)^2
  LP(x)   = Re IFFT2(ifftshift(fftshift(FFT2(x)) * B))

with (h, w) the integer indices of the fftshift-ed spectrum, D the cutoff and n the order.
Shifting the spectrum, masking and shifting back is the same as masking the unshifted
spectrum with ifftshift(B), which is what `lowpass_fft` does (through a real FFT, see there).
For odd H or W the grid centre falls half a bin off the zero frequency, so B there is not
exactly 1 and a constant image is slightly attenuated; for even sizes B(DC) = 1.

Haar low-pass: the orthonormal level-1 Haar transform over H and W with the three detail
bands zeroed before inverting, which is the mean of each 2x2 block broadcast back over it.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

LOWPASS_KINDS = ("fft", "dwt")


def _check_image(name: str, x_bhwc) -> None:
  if not hasattr(x_bhwc, "shape") or len(x_bhwc.shape) != 4:
    raise ValueError(f"{name} needs a 4-D [B, H, W, C] array, got shape {getattr(x_bhwc, 'shape', None)}")


def _check_even(name: str, x_bhwc) -> None:
  _check_image(name, x_bhwc)
  _, height, width, _ = x_bhwc.shape
  if height % 2 or width % 2:
    raise ValueError(f"{name} needs even H and W (2x2 Haar blocks), got H={height}, W={width}")


def butterworth_mask(height: int, width: int, *, cutoff: float = 0.2, order: int = 4) -> jax.Array:
  """Butterworth low-pass gain on the centred (fftshift-ed) spectrum grid.

  Args:
    height, width: spectrum size H, W (positive ints).
    cutoff: D > 0, in the normalised coordinates 2h/H - 1 in [-1, 1); B = 1/2 at distance D.
    order: n >= 1; larger is a sharper transition.

  Returns:
    float32 [H, W] mask, 1 near the centre (zero frequency) falling to 0 outwards.
  """
  for name, value in (("height", height), ("width", width)):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f"butterworth_mask needs {name} to be a positive int, got {value!r}")
  if isinstance(cutoff, bool) or not isinstance(cutoff, numbers.Real) or not cutoff > 0:
    raise ValueError(f"butterworth_mask needs cutoff > 0 (a Python number), got {cutoff!r}")
  if isinstance(order, bool) or not isinstance(order, numbers.Real) or not order >= 1:
    raise ValueError(f"butterworth_mask needs order >= 1 (a Python number), got {order!r}")
  # Static sizes and parameters: build in float64 with numpy, hand over as a float32 constant.
  u_h = 2.0 * np.arange(height) / height - 1.0
  u_w = 2.0 * np.arange(width) / width - 1.0
  d2_hw = u_h[:, None] ** 2 + u_w[None, :] ** 2
  mask_hw = 1.0 / (1.0 + (d2_hw / float(cutoff) ** 2) ** float(order))
  return jnp.asarray(mask_hw, jnp.float32)


def lowpass_fft(x_bhwc: jax.Array, mask_hw: jax.Array) -> jax.Array:
  """Re IFFT2(ifftshift(fftshift(FFT2(x)) * mask)) over H and W, per channel; float32 [B, H, W, C].

  Implemented as the unshifted spectrum times ifftshift(mask). For a real image X is
  Hermitian (X[-k] = conj X[k]), so Re IFFT2(X * M) = IFFT2(X * (M + M[-k]) / 2), whose
  spectrum is Hermitian again: a real-to-complex FFT, half the spectrum times the symmetrised
  mask and a complex-to-real inverse give the real part exactly at half the work. (For even
  sizes M[-k] = M[k] already; for odd ones it is not, hence the symmetrising.)

  Args:
    x_bhwc: [B, H, W, C] real image.
    mask_hw: [H, W] real gain on the centred spectrum (e.g. `butterworth_mask(H, W)`).
  """
  _check_image("lowpass_fft", x_bhwc)
  _, height, width, _ = x_bhwc.shape
  if tuple(mask_hw.shape) != (height, width):
    raise ValueError(f"lowpass_fft needs mask_hw of shape {(height, width)} (x's H, W), got {tuple(mask_hw.shape)}")
  return _lowpass_fft(jnp.asarray(x_bhwc), jnp.asarray(mask_hw))


@jax.jit  # One program per shape for eager callers instead of one per operation.
def _lowpass_fft(x_bhwc: jax.Array, mask_hw: jax.Array) -> jax.Array:
  _, height, width, _ = x_bhwc.shape
  unshifted_hw = jnp.fft.ifftshift(mask_hw.astype(jnp.float32))
  # M[-k]: flip both axes, then roll by one so index 0 stays index 0.
  mirrored_hw = jnp.roll(jnp.flip(unshifted_hw, (0, 1)), (1, 1), axis=(0, 1))
  half_hw = (0.5 * (unshifted_hw + mirrored_hw))[:, : width // 2 + 1]
  # XLA transforms the innermost axes: go to [B, C, H, W] once, and stay there through both
  # transforms (jnp.fft with axes=(1, 2) would transpose the spectrum out and back in between).
  x_bchw = jnp.transpose(x_bhwc.astype(jnp.float32), (0, 3, 1, 2))
  spectrum = jax.lax.fft(x_bchw, jax.lax.FftType.RFFT, (height, width))
  lp_bchw = jax.lax.fft(spectrum * half_hw, jax.lax.FftType.IRFFT, (height, width))
  return jnp.transpose(lp_bchw, (0, 2, 3, 1)).astype(jnp.float32)


def haar_dwt2(x_bhwc: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Orthonormal level-1 Haar transform over H and W; four float32 [B, H/2, W/2, C] bands.

  With a, b the top row and c, d the bottom row of each 2x2 block:
    ll = (a + b + c + d) / 2      low in H and W
    lh = (a - b + c - d) / 2      low in H, high in W
    hl = (a + b - c - d) / 2      high in H, low in W
    hh = (a - b - c + d) / 2      high in both

  Raises:
    ValueError: x is not 4-D, or H or W is odd.
  """
  _check_even("haar_dwt2", x_bhwc)
  return _haar_dwt2(jnp.asarray(x_bhwc))


@jax.jit
def _haar_dwt2(x_bhwc: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  x_bhwc = x_bhwc.astype(jnp.float32)
  a, b = x_bhwc[:, 0::2, 0::2], x_bhwc[:, 0::2, 1::2]
  c, d = x_bhwc[:, 1::2, 0::2], x_bhwc[:, 1::2, 1::2]
  ll = 0.5 * ((a + b) + (c + d))
  lh = 0.5 * ((a - b) + (c - d))
  hl = 0.5 * ((a + b) - (c + d))
  hh = 0.5 * ((a - b) - (c - d))
  return ll, lh, hl, hh


def haar_idwt2(ll: jax.Array, lh: jax.Array, hl: jax.Array, hh: jax.Array) -> jax.Array:
  """Inverse of `haar_dwt2`: four [B, H/2, W/2, C] bands -> float32 [B, H, W, C]."""
  _check_image("haar_idwt2", ll)
  for name, band in (("lh", lh), ("hl", hl), ("hh", hh)):
    if tuple(band.shape) != tuple(ll.shape):
      raise ValueError(f"haar_idwt2 needs {name} of ll's shape {tuple(ll.shape)}, got {tuple(band.shape)}")
  return _haar_idwt2(*(jnp.asarray(band) for band in (ll, lh, hl, hh)))


@jax.jit
def _haar_idwt2(ll: jax.Array, lh: jax.Array, hl: jax.Array, hh: jax.Array) -> jax.Array:
  ll, lh, hl, hh = (band.astype(jnp.float32) for band in (ll, lh, hl, hh))
  a = 0.5 * ((ll + lh) + (hl + hh))
  b = 0.5 * ((ll - lh) + (hl - hh))
  c = 0.5 * ((ll + lh) - (hl + hh))
  d = 0.5 * ((ll - lh) - (hl - hh))
  batch, half_h, half_w, channels = ll.shape
  top = jnp.stack([a, b], axis=3)  # [B, H/2, W/2, 2, C]: columns 2j, 2j+1.
  bottom = jnp.stack([c, d], axis=3)
  blocks = jnp.stack([top, bottom], axis=2)  # [B, H/2, 2, W/2, 2, C]: rows 2i, 2i+1.
  return blocks.reshape(batch, 2 * half_h, 2 * half_w, channels)


def lowpass_dwt(x_bhwc: jax.Array) -> jax.Array:
  """Haar low-pass: `haar_idwt2` of x's ll band with lh, hl, hh zeroed; float32 [B, H, W, C]."""
  _check_even("lowpass_dwt", x_bhwc)
  return _lowpass_dwt(jnp.asarray(x_bhwc))


@jax.jit
def _lowpass_dwt(x_bhwc: jax.Array) -> jax.Array:
  ll, lh, _, _ = _haar_dwt2(x_bhwc)
  zeros = jnp.zeros_like(lh)
  return _haar_idwt2(ll, zeros, zeros, zeros)


def lowpass(x_bhwc: jax.Array, kind: str = "fft", *, cutoff: float = 0.2, order: int = 4) -> jax.Array:
  """Low-pass of x over H and W: "fft" (Butterworth, `cutoff`, `order`) or "dwt" (Haar; ignores both).

  Raises:
    ValueError: unknown kind, x not 4-D, bad cutoff/order, or odd H/W for "dwt".
  """
  if kind == "fft":
    _check_image("lowpass", x_bhwc)
    _, height, width, _ = x_bhwc.shape
    return lowpass_fft(x_bhwc, butterworth_mask(height, width, cutoff=cutoff, order=order))
  if kind == "dwt":
    return lowpass_dwt(x_bhwc)
  raise ValueError(f"unknown low-pass kind {kind!r}; choose one of {', '.join(map(repr, LOWPASS_KINDS))}")
