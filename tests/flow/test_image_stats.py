"""Image statistics tell structure from noise, detect repeats, and compare low frequencies."""

import numpy as np
import pytest

from jaxlab.data.images import PhotoCropSource
from jaxlab.flow import image_stats


def _noise(shape=(4, 32, 32, 3), seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _photos(size=32, count=16):
  source = PhotoCropSource(size, seed=0, length=count)
  return np.stack([source[i]["image"] for i in range(count)])


def test_photographs_are_correlated_and_noise_is_not():
  noise, photos = _noise(), _photos()
  assert np.all(np.abs(image_stats.neighbor_correlation(noise)) < 0.1)
  # On average: crops of the star field are nearly white noise themselves.
  assert np.mean(image_stats.neighbor_correlation(photos)) > 0.6


def test_spectrum_slope_of_noise_is_flat_and_of_photographs_steep():
  assert np.all(np.abs(image_stats.spectrum_slope(_noise())) < 0.3)
  assert np.mean(image_stats.spectrum_slope(_photos())) < -1.5


def test_spectrum_slope_recovers_a_synthetic_power_law():
  # Random phases with amplitude f^-1 give power f^-2.
  rng = np.random.default_rng(1)
  size = 64
  fy = np.fft.fftfreq(size)[:, None]
  fx = np.fft.fftfreq(size)[None, :]
  radius = np.sqrt(fx**2 + fy**2)
  amplitude = np.where(radius > 0, 1 / np.maximum(radius, 1e-9), 0)
  phases = np.exp(2j * np.pi * rng.random((size, size)))
  image = np.real(np.fft.ifft2(amplitude * phases))
  slope = image_stats.spectrum_slope(image[None, :, :, None])[0]
  assert slope == pytest.approx(-2.0, abs=0.3)


def test_repetition_score_is_high_for_a_tiled_image():
  tile = _noise((1, 16, 16, 1), seed=2)
  tiled = np.tile(tile, (1, 2, 2, 1))  # Exact repeats at offsets of 16 pixels.
  assert image_stats.repetition_score(tiled)[0] == pytest.approx(1.0, abs=1e-6)
  assert image_stats.repetition_score(_noise((1, 32, 32, 1), seed=3))[0] < 0.3


def test_lowfreq_error_and_highfreq_energy():
  photos = _photos()
  assert np.allclose(image_stats.lowfreq_error(photos, photos), 0.0)
  noisy = photos + 0.3 * _noise(photos.shape, seed=4)
  # Added white noise is mostly high frequency: the low-pass moves by a fraction of its 0.3 RMS.
  assert np.all(image_stats.lowfreq_error(noisy, photos) < 0.1)
  shifted = photos + 0.25
  np.testing.assert_allclose(image_stats.lowfreq_error(shifted, photos), 0.25, rtol=1e-4)
  assert np.all(image_stats.highfreq_energy(noisy) > image_stats.highfreq_energy(photos))
  constant = np.full((1, 16, 16, 3), 0.5, np.float32)
  assert image_stats.highfreq_energy(constant)[0] == pytest.approx(0.0, abs=1e-10)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="B, H, W, C"):
    image_stats.neighbor_correlation(np.zeros((8, 8, 3)))
  with pytest.raises(ValueError, match="differ in shape"):
    image_stats.lowfreq_error(np.zeros((1, 8, 8, 3)), np.zeros((1, 16, 16, 3)))
