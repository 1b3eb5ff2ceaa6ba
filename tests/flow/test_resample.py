"""Bicubic upsampling, separable Gaussian blur and unsharp masking against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxlab.flow import resample


def _random(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_upsample_shape_and_constant_image():
  x = jnp.broadcast_to(jnp.asarray([0.5, -3.0], jnp.float32), (2, 3, 5, 2))
  up = resample.upsample_bicubic(x, 4)
  assert up.shape == (2, 12, 20, 2) and up.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(up), np.broadcast_to([0.5, -3.0], up.shape), atol=1e-6)


def test_upsample_by_one_is_identity_and_keeps_channels_apart():
  x = _random((1, 4, 6, 3))
  np.testing.assert_allclose(np.asarray(resample.upsample_bicubic(x, 1)), np.asarray(x), atol=1e-6)
  # Each output channel depends on its own input channel only.
  up = resample.upsample_bicubic(x.at[..., 1].set(0.0), 2)
  np.testing.assert_allclose(np.asarray(up[..., 1]), 0.0, atol=1e-7)


def test_upsample_is_smooth_for_a_linear_ramp_inside():
  # Cubic interpolation reproduces a linear ramp away from the borders (which clamp).
  ramp = jnp.arange(16, dtype=jnp.float32)[None, None, :, None] * jnp.ones((1, 4, 1, 1))
  up = np.asarray(resample.upsample_bicubic(ramp, 2))[0, 0, :, 0]
  interior = up[4:-4]
  np.testing.assert_allclose(np.diff(interior), 0.5, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_upsample_rejects_bad_factor(bad):
  with pytest.raises(ValueError, match="factor"):
    resample.upsample_bicubic(_random((1, 2, 2, 1)), bad)


def test_gaussian_weights_are_a_normalised_symmetric_gaussian():
  taps = np.asarray(resample.gaussian_weights(0.8, 5), np.float64)
  t = np.arange(-2, 3)
  want = np.exp(-(t**2) / (2 * 0.8**2))
  np.testing.assert_allclose(taps, want / want.sum(), rtol=1e-6)


@pytest.mark.parametrize("sigma, kernel_size", [(1.0, 3), (0.7, 5)])
def test_blur_matches_scipy_separable_correlation_with_reflect_padding(sigma, kernel_size):
  x = _random((2, 7, 9, 3), seed=1)
  taps = np.asarray(resample.gaussian_weights(sigma, kernel_size), np.float64)
  # NumPy's "reflect" padding (edge not repeated) is SciPy's "mirror" mode.
  want = ndimage.correlate1d(np.asarray(x, np.float64), taps, axis=1, mode="mirror")
  want = ndimage.correlate1d(want, taps, axis=2, mode="mirror")
  got = resample.gaussian_blur(x, sigma, kernel_size)
  assert got.shape == x.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_blur_of_a_delta_is_the_outer_product_of_taps():
  x = jnp.zeros((1, 7, 7, 2)).at[0, 3, 3, 0].set(1.0)
  taps = np.asarray(resample.gaussian_weights(1.2, 3))
  got = np.asarray(resample.gaussian_blur(x, 1.2))
  np.testing.assert_allclose(got[0, 2:5, 2:5, 0], np.outer(taps, taps), rtol=1e-5)
  assert np.count_nonzero(got[0, :, :, 0]) == 9 and not np.any(got[..., 1])


def test_blur_and_unsharp_keep_a_constant_image():
  x = jnp.full((1, 5, 6, 2), 2.5, jnp.float32)
  np.testing.assert_allclose(np.asarray(resample.gaussian_blur(x, 1.0)), 2.5, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(resample.unsharp_mask(x, 1.0)), 2.5, rtol=1e-6)


def test_unsharp_mask_is_two_x_minus_blur_and_boosts_an_edge():
  x = _random((1, 6, 6, 2), seed=2)
  want = 2.0 * np.asarray(x) - np.asarray(resample.gaussian_blur(x, 0.9))
  np.testing.assert_allclose(np.asarray(resample.unsharp_mask(x, 0.9)), want, atol=1e-6)
  step = jnp.concatenate([jnp.zeros((1, 6, 3, 1)), jnp.ones((1, 6, 3, 1))], axis=2)
  sharp = np.asarray(resample.unsharp_mask(step, 1.0))[0, 0, :, 0]
  assert sharp[2] < 0.0 and sharp[3] > 1.0  # Overshoot on both sides of the edge.


def test_blur_takes_a_traced_sigma():
  x = _random((1, 5, 5, 1), seed=3)
  got = jax.jit(lambda s: resample.gaussian_blur(x, s))(jnp.float32(0.6))
  np.testing.assert_allclose(np.asarray(got), np.asarray(resample.gaussian_blur(x, 0.6)), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=1.0, kernel_size=4), "odd"),
        (dict(sigma=1.0, kernel_size=0), "kernel_size"),
        (dict(sigma=1.0, kernel_size=9), "reflect"),
    ],
)
def test_blur_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    resample.gaussian_blur(_random((1, 4, 4, 1)), **kwargs)
