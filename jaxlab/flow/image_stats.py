"""Statistics of generated images: structure against noise, low/high frequencies, repetition.

All take float images [B, H, W, C] (any range; each statistic says what it normalises) and
return one float per image as a NumPy array [B], so callers can average or tabulate.

- `neighbor_correlation`: Pearson correlation of horizontally and vertically adjacent pixels.
  Photographs are near 1, white noise near 0: a first check that samples have structure.
- `spectrum_slope`: slope of log radially-averaged power against log frequency. Natural
  images fall off near -2; white noise is flat (0).
- `lowfreq_error`: RMS distance between the Butterworth low-passes of two image sets (how
  well a high-resolution image keeps the layout of its upsampled base).
- `highfreq_energy`: mean squared high-pass (image minus its low-pass): detail.
- `repetition_score`: the highest normalised autocorrelation peak outside a central disc.
  Direct sampling above the training resolution tends to tile duplicated structures, which
  shows as strong off-centre peaks; a single coherent image has weak ones.
"""

from __future__ import annotations

import numpy as np

from jaxlab.ops.flow_guidance_op.spectral import butterworth_mask, lowpass_fft


def _gray(images_bhwc) -> np.ndarray:
  return np.asarray(images_bhwc, np.float64).mean(axis=-1)


def _check(images_bhwc) -> np.ndarray:
  images = np.asarray(images_bhwc)
  if images.ndim != 4 or min(images.shape[1:3]) < 4:
    raise ValueError(f"image statistics need images [B, H, W, C] with H, W >= 4, got shape {images.shape}")
  return images


def neighbor_correlation(images_bhwc) -> np.ndarray:
  """[B] mean of the horizontal and vertical lag-1 pixel correlations (grayscale)."""
  gray = _gray(_check(images_bhwc))

  def corr(a, b):
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(denominator > 0, (a * b).sum(axis=1) / np.maximum(denominator, 1e-300), 0.0)

  return 0.5 * (corr(gray[:, :, :-1], gray[:, :, 1:]) + corr(gray[:, :-1, :], gray[:, 1:, :]))


def radial_power(images_bhwc) -> tuple[np.ndarray, np.ndarray]:
  """(frequencies [F], power [B, F]): grayscale power spectrum averaged over rings of integer radius."""
  gray = _gray(_check(images_bhwc))
  gray = gray - gray.mean(axis=(1, 2), keepdims=True)
  power = np.abs(np.fft.fftshift(np.fft.fft2(gray), axes=(1, 2))) ** 2
  h, w = gray.shape[1:]
  yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
  radius = np.sqrt(yy**2 + xx**2).round().astype(np.int64)
  max_radius = min(h, w) // 2
  rings = np.arange(1, max_radius)
  counts = np.bincount(radius.ravel(), minlength=max_radius)
  sums = np.stack([np.bincount(radius.ravel(), weights=p.ravel(), minlength=max_radius) for p in power])
  return rings / min(h, w), sums[:, rings] / counts[rings]


def spectrum_slope(images_bhwc) -> np.ndarray:
  """[B] least-squares slope of log power against log frequency (rings 1 .. min(H, W)/2 - 1)."""
  freqs, power = radial_power(images_bhwc)
  log_f = np.log(freqs)
  return np.asarray([np.polyfit(log_f, np.log(np.maximum(p, 1e-30)), 1)[0] for p in power])


def lowpass(images_bhwc, *, cutoff: float = 0.2, order: int = 4) -> np.ndarray:
  """Butterworth low-pass per channel (the HiFlow filter), float64 NumPy."""
  images = _check(images_bhwc).astype(np.float32)
  mask = butterworth_mask(images.shape[1], images.shape[2], cutoff=cutoff, order=order)
  return np.asarray(lowpass_fft(images, mask), np.float64)


def lowfreq_error(images_bhwc, reference_bhwc, *, cutoff: float = 0.2, order: int = 4) -> np.ndarray:
  """[B] root-mean-square of LP(images) - LP(reference), in the images' units: 0 when the layouts agree."""
  images, reference = _check(images_bhwc), _check(reference_bhwc)
  if images.shape != reference.shape:
    raise ValueError(f"lowfreq_error: images {images.shape} and reference {reference.shape} differ in shape")
  a = lowpass(images, cutoff=cutoff, order=order)
  b = lowpass(reference, cutoff=cutoff, order=order)
  return np.sqrt(((a - b) ** 2).mean(axis=(1, 2, 3)))


def highfreq_energy(images_bhwc, *, cutoff: float = 0.2, order: int = 4) -> np.ndarray:
  """[B] mean squared value of image - LP(image)."""
  images = _check(images_bhwc).astype(np.float64)
  return ((images - lowpass(images, cutoff=cutoff, order=order)) ** 2).mean(axis=(1, 2, 3))


def repetition_score(images_bhwc, *, exclude_fraction: float = 0.125) -> np.ndarray:
  """[B] max normalised circular autocorrelation of the grayscale image at offsets whose length
  exceeds `exclude_fraction` * min(H, W) (1 = an exact repeat at that offset)."""
  gray = _gray(_check(images_bhwc))
  gray = gray - gray.mean(axis=(1, 2), keepdims=True)
  spectrum = np.fft.fft2(gray)
  autocorr = np.real(np.fft.ifft2(spectrum * np.conj(spectrum)))
  zero_lag = np.maximum(autocorr[:, 0, 0], 1e-300)
  h, w = gray.shape[1:]
  dy = np.minimum(np.arange(h), h - np.arange(h))[:, None]
  dx = np.minimum(np.arange(w), w - np.arange(w))[None, :]
  far = np.sqrt(dy**2 + dx**2) > exclude_fraction * min(h, w)
  return np.asarray([a[far].max() for a in autocorr]) / zero_lag
