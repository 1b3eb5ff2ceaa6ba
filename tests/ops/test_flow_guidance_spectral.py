"""Butterworth mask, Fourier and Haar low-passes: values from the definitions, identities, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.ops.flow_guidance_op import spectral


def _random(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _literal_lowpass_fft(x_bhwc, mask_hw):
  """The spec word for word, in float64 NumPy: Re IFFT2(ifftshift(fftshift(FFT2(x)) * B))."""
  x = np.asarray(x_bhwc, np.float64)
  spectrum = np.fft.fftshift(np.fft.fft2(x, axes=(1, 2)), axes=(1, 2))
  masked = spectrum * np.asarray(mask_hw, np.float64)[None, :, :, None]
  return np.real(np.fft.ifft2(np.fft.ifftshift(masked, axes=(1, 2)), axes=(1, 2)))


# --- Butterworth mask ---------------------------------------------------------------------


def test_mask_is_one_at_the_centre_of_an_even_grid():
  mask = np.asarray(spectral.butterworth_mask(8, 12, cutoff=0.3, order=2))
  assert mask.shape == (8, 12) and mask.dtype == np.float32
  assert mask[4, 6] == 1.0
  assert np.all(mask <= 1.0) and np.all(mask > 0.0)


def test_mask_value_by_hand():
  # H = W = 4, h = w = 0: d2 = (-1)^2 + (-1)^2 = 2; D = 0.5, n = 1: 1 / (1 + 2 / 0.25) = 1/9.
  mask = np.asarray(spectral.butterworth_mask(4, 4, cutoff=0.5, order=1))
  np.testing.assert_allclose(mask[0, 0], 1.0 / 9.0, rtol=1e-6)
  # h = 3, w = 2: (2*3/4 - 1)^2 + 0 = 0.25 = D^2, so B = 1/2 for every order.
  np.testing.assert_allclose(mask[3, 2], 0.5, rtol=1e-6)


@pytest.mark.parametrize("order", [1, 2, 4, 8])
def test_mask_is_one_half_at_the_cutoff(order):
  # H = 16: row 12 sits at 2*12/16 - 1 = 0.5 on the centre column, i.e. at distance D = 0.5.
  mask = np.asarray(spectral.butterworth_mask(16, 16, cutoff=0.5, order=order))
  np.testing.assert_allclose(mask[12, 8], 0.5, rtol=1e-6)
  np.testing.assert_allclose(mask[8, 4], 0.5, rtol=1e-6)


@pytest.mark.parametrize("height, width", [(8, 8), (9, 6), (7, 11)])
def test_mask_is_symmetric_under_flips(height, width):
  # 2h/H - 1 and 2(H - h)/H - 1 have equal squares: rows 1..H-1 mirror each other (same for columns).
  mask = np.asarray(spectral.butterworth_mask(height, width, cutoff=0.3, order=4))
  np.testing.assert_array_equal(mask[1:, :], mask[1:, :][::-1, :])
  np.testing.assert_array_equal(mask[:, 1:], mask[:, 1:][:, ::-1])


def test_mask_falls_monotonically_with_distance():
  height, width = 16, 20
  mask = np.asarray(spectral.butterworth_mask(height, width, cutoff=0.25, order=4), np.float64)
  u_h = 2.0 * np.arange(height) / height - 1.0
  u_w = 2.0 * np.arange(width) / width - 1.0
  d2 = (u_h[:, None] ** 2 + u_w[None, :] ** 2).ravel()
  order = np.argsort(d2, kind="stable")
  values, distances = mask.ravel()[order], d2[order]
  steps = np.diff(values)
  assert np.all(steps[np.diff(distances) > 1e-12] < 0)  # Strictly down where the distance grows.
  assert np.all(np.abs(steps[np.diff(distances) <= 1e-12]) < 1e-7)  # Equal distance, equal gain.


def test_higher_order_is_sharper():
  low = np.asarray(spectral.butterworth_mask(16, 16, cutoff=0.25, order=1))
  high = np.asarray(spectral.butterworth_mask(16, 16, cutoff=0.25, order=8))
  inside, outside = (8, 9), (0, 0)  # Distance 0.125 < D and sqrt(2) > D.
  assert high[inside] > low[inside] and high[outside] < low[outside]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(height=0, width=4), "height"),
        (dict(height=4, width=2.5), "width"),
        (dict(height=4, width=4, cutoff=0.0), "cutoff"),
        (dict(height=4, width=4, cutoff=-1.0), "cutoff"),
        (dict(height=4, width=4, order=0), "order"),
    ],
)
def test_mask_rejects_bad_arguments(kwargs, match):
  height, width = kwargs.pop("height"), kwargs.pop("width")
  with pytest.raises(ValueError, match=match):
    spectral.butterworth_mask(height, width, **kwargs)


# --- Fourier low-pass ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 8, 12, 3), (1, 7, 9, 2), (1, 6, 5, 1)])
def test_lowpass_fft_matches_the_shifted_formula(shape):
  x = _random(shape)
  mask = spectral.butterworth_mask(shape[1], shape[2], cutoff=0.3, order=2)
  got = spectral.lowpass_fft(x, mask)
  assert got.dtype == jnp.float32 and got.shape == shape
  np.testing.assert_allclose(np.asarray(got), _literal_lowpass_fft(x, mask), atol=2e-6)


@pytest.mark.parametrize("shape", [(1, 7, 9, 2), (1, 8, 6, 1)])
def test_lowpass_fft_with_an_asymmetric_mask_matches_the_formula(shape):
  # A random mask is no longer mirror-symmetric: the real part of the inverse needs the symmetrising.
  x = _random(shape, seed=1)
  mask = jnp.asarray(np.random.default_rng(2).uniform(size=shape[1:3]), jnp.float32)
  np.testing.assert_allclose(np.asarray(spectral.lowpass_fft(x, mask)), _literal_lowpass_fft(x, mask), atol=2e-6)


@pytest.mark.parametrize("kind", ["fft", "dwt"])
def test_lowpass_keeps_a_constant_image(kind):
  x = jnp.broadcast_to(jnp.asarray([1.5, -2.0, 0.25], jnp.float32), (2, 8, 10, 3))
  np.testing.assert_allclose(np.asarray(spectral.lowpass(x, kind)), np.asarray(x), atol=1e-6)


def test_lowpass_fft_is_one_at_dc_only_for_even_sizes():
  # Odd grids put the centre index half a bin from zero frequency (module docstring).
  x = jnp.ones((1, 5, 5, 1), jnp.float32)
  got = float(spectral.lowpass(x, "fft", cutoff=0.2, order=4)[0, 0, 0, 0])
  # d2 = 2 * (1/5)^2 = 0.08 = 2 D^2: B = 1 / (1 + 2^4).
  np.testing.assert_allclose(got, 1.0 / 17.0, rtol=1e-5)


def test_lowpass_removes_the_highest_frequency():
  # A checkerboard is the Nyquist frequency in both axes: the corner of the centred grid.
  h, w = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
  board = jnp.asarray(((-1.0) ** (h + w))[None, :, :, None], jnp.float32)
  mask = spectral.butterworth_mask(8, 8, cutoff=0.2, order=4)
  np.testing.assert_allclose(np.asarray(spectral.lowpass(board, "fft")), float(mask[0, 0]) * np.asarray(board),
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(spectral.lowpass(board, "dwt")), 0.0, atol=1e-6)


@pytest.mark.parametrize("kind", ["fft", "dwt"])
def test_lowpass_is_linear(kind):
  a, b = _random((1, 8, 8, 2), seed=3), _random((1, 8, 8, 2), seed=4)
  got = spectral.lowpass(2.0 * a - b, kind)
  want = 2.0 * spectral.lowpass(a, kind) - spectral.lowpass(b, kind)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_lowpass_fft_dispatch_uses_the_mask_arguments():
  x = _random((1, 8, 8, 1))
  want = spectral.lowpass_fft(x, spectral.butterworth_mask(8, 8, cutoff=0.4, order=2))
  np.testing.assert_array_equal(np.asarray(spectral.lowpass(x, "fft", cutoff=0.4, order=2)), np.asarray(want))
  assert not np.allclose(np.asarray(spectral.lowpass(x, "fft")), np.asarray(want))


def test_lowpass_rejects_bad_input():
  with pytest.raises(ValueError, match="'fft'.*'dwt'"):
    spectral.lowpass(_random((1, 4, 4, 1)), "gauss")
  with pytest.raises(ValueError, match="4-D"):
    spectral.lowpass(_random((4, 4, 1)))
  with pytest.raises(ValueError, match="mask_hw"):
    spectral.lowpass_fft(_random((1, 4, 6, 1)), jnp.ones((6, 4)))
  with pytest.raises(ValueError, match="even"):
    spectral.lowpass(_random((1, 5, 4, 1)), "dwt")


# --- Haar ---------------------------------------------------------------------------------


def test_haar_inverse_is_exact_and_orthonormal():
  x = _random((2, 6, 10, 3))
  bands = spectral.haar_dwt2(x)
  assert all(b.shape == (2, 3, 5, 3) for b in bands)
  np.testing.assert_allclose(np.asarray(spectral.haar_idwt2(*bands)), np.asarray(x), atol=1e-6)
  energy = sum(float(jnp.sum(b * b)) for b in bands)
  np.testing.assert_allclose(energy, float(jnp.sum(x * x)), rtol=1e-5)


def test_haar_bands_by_hand():
  # One 2x2 block [[a, b], [c, d]] = [[1, 2], [3, 5]].
  x = jnp.asarray([[1.0, 2.0], [3.0, 5.0]], jnp.float32)[None, :, :, None]
  ll, lh, hl, hh = (float(b[0, 0, 0, 0]) for b in spectral.haar_dwt2(x))
  np.testing.assert_allclose([ll, lh, hl, hh], [11 / 2, -3 / 2, -5 / 2, 1 / 2], rtol=1e-6)


def test_haar_lowpass_is_the_block_mean():
  x = _random((2, 4, 6, 5))
  blocks = np.asarray(x).reshape(2, 2, 2, 3, 2, 5)  # [B, H/2, 2, W/2, 2, C]
  mean = blocks.mean(axis=(2, 4), keepdims=True)
  want = np.broadcast_to(mean, blocks.shape).reshape(x.shape)
  np.testing.assert_allclose(np.asarray(spectral.lowpass_dwt(x)), want, atol=1e-6)


def test_haar_rejects_odd_sizes_and_mismatched_bands():
  with pytest.raises(ValueError, match="even"):
    spectral.haar_dwt2(_random((1, 4, 5, 1)))
  ll = jnp.zeros((1, 2, 2, 1))
  with pytest.raises(ValueError, match="hh"):
    spectral.haar_idwt2(ll, ll, ll, jnp.zeros((1, 2, 3, 1)))
