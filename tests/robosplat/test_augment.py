"""2D augmentations: identity at zero ranges, determinism, parameter bounds, geometry and colour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.robosplat.augment import (
    AugmentParams,
    AugmentSettings,
    apply_augment_params,
    augment_images,
    make_augment,
    sample_augment_params,
)


# Compiled: op-by-op dispatch of the warp is far slower on CPU than one compile.
_apply = jax.jit(apply_augment_params)
_augment = jax.jit(augment_images, static_argnames="settings")


def _noise_images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.uint8)


def _square(size=32, top=12, left=12, side=6):
  """One white square on black, uint8 [size, size, 3]."""
  image = np.zeros((size, size, 3), np.uint8)
  image[top:top + side, left:left + side] = 255
  return jnp.asarray(image)


def _centroid(image_hw3):
  """(x, y) of the brightness-weighted pixel centroid."""
  mass = np.asarray(image_hw3, np.float64).sum(-1)
  ys, xs = np.mgrid[:mass.shape[0], :mass.shape[1]]
  return np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
def test_zero_ranges_are_the_exact_identity(dtype):
  images = _noise_images((2, 3, 16, 20, 3))
  if dtype == jnp.float32:
    images = images.astype(jnp.float32) / 255.0
  out = _augment(jax.random.key(3), images, AugmentSettings.none())
  assert out.dtype == images.dtype and out.shape == images.shape
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images))


def test_deterministic_given_rng_and_independent_per_image():
  images = jnp.broadcast_to(_noise_images((1, 24, 24, 3)), (4, 24, 24, 3))
  augment = jax.jit(make_augment(AugmentSettings()))
  a = np.asarray(augment(jax.random.key(0), images))
  b = np.asarray(augment(jax.random.key(0), images))
  c = np.asarray(augment(jax.random.key(1), images))
  np.testing.assert_array_equal(a, b)
  assert np.any(a != c)
  # Identical inputs, different outputs: each image draws its own parameters.
  assert all(np.any(a[0] != a[i]) for i in range(1, 4))


def test_sampled_parameters_stay_in_their_ranges_and_use_them():
  settings = AugmentSettings(shift=0.08, scale=0.1, rotation_degrees=5.0, brightness=0.2, contrast=0.3,
                             saturation=0.4, channel_gain=0.05)
  p = sample_augment_params(jax.random.key(0), 4000, settings)
  checks = [(p.shift_n2, 0.0, 0.08), (p.zoom_n, 1.0, 0.1), (p.angle_n, 0.0, math.radians(5.0)),
            (p.brightness_n, 1.0, 0.2), (p.contrast_n, 1.0, 0.3), (p.saturation_n, 1.0, 0.4),
            (p.gain_n3, 1.0, 0.05)]
  for values, center, half in checks:
    offsets = np.asarray(values) - center
    assert np.all(np.abs(offsets) <= half + 1e-6)
    assert offsets.max() > 0.9 * half and offsets.min() < -0.9 * half  # the whole range is used


def test_shift_moves_content_by_the_given_fraction():
  image = _square()
  params = AugmentParams.identity(1).replace(shift_n2=jnp.array([[0.125, -0.0625]]))  # +4 px in x, -2 px in y
  out = _apply(image[None], params)[0]
  np.testing.assert_array_equal(np.asarray(out[10:16, 16:22]), 255)
  np.testing.assert_allclose(_centroid(out) - _centroid(image), [4.0, -2.0], atol=1e-6)


def test_zoom_and_rotation_about_the_centre():
  image = _square(size=33, top=4, left=22, side=5)  # off-centre square, centre (24, 6); image centre (16, 16)
  zoom = _apply(image[None], AugmentParams.identity(1).replace(zoom_n=jnp.array([1.25])))[0]
  np.testing.assert_allclose(_centroid(zoom) - 16, 1.25 * (_centroid(image) - 16), atol=0.3)
  # +90 degrees turns +x towards +y (image down): (dx, dy) -> (-dy, dx).
  turned = _apply(image[None], AugmentParams.identity(1).replace(angle_n=jnp.array([math.pi / 2])))[0]
  dx, dy = _centroid(image) - 16
  np.testing.assert_allclose(_centroid(turned) - 16, [-dy, dx], atol=0.3)


def test_random_geometry_displaces_content_within_the_bounds():
  # Worst case for a point at distance r from the centre: shift*size*sqrt(2) + r*((1+scale)-1) + r*angle.
  settings = AugmentSettings(shift=0.08, scale=0.08, rotation_degrees=5.0, brightness=0, contrast=0, saturation=0,
                             channel_gain=0)
  image = _square(size=32, top=13, left=13, side=6)
  out = np.asarray(_augment(jax.random.key(5), jnp.broadcast_to(image, (64, 32, 32, 3)), settings))
  r = np.linalg.norm(_centroid(image) - 15.5)
  bound = 0.08 * 32 * math.sqrt(2) + r * (0.08 + math.radians(5.0)) + 0.5
  moves = np.array([np.linalg.norm(_centroid(o) - _centroid(image)) for o in out])
  assert moves.max() <= bound
  assert moves.max() > 1.0  # and it does move things


def test_colour_jitter_leaves_geometry_and_changes_colours_within_bounds():
  settings = AugmentSettings(shift=0, scale=0, rotation_degrees=0, brightness=0.2, contrast=0, saturation=0,
                             channel_gain=0)
  grey = jnp.full((8, 4, 4, 3), 0.5, jnp.float32)
  out = np.asarray(_augment(jax.random.key(2), grey, settings))
  per_image = out[:, 0, 0, 0]
  assert np.all(np.abs(out - per_image[:, None, None, None]) < 1e-6)  # a uniform gain per image
  assert np.all((per_image >= 0.4 - 1e-6) & (per_image <= 0.6 + 1e-6)) and np.ptp(per_image) > 0.02

  params = AugmentParams.identity(1).replace(saturation_n=jnp.array([0.0]))
  colour = jnp.asarray([[[[1.0, 0.0, 0.0]]]])
  np.testing.assert_allclose(_apply(colour, params)[0, 0, 0], [0.299] * 3, atol=1e-6)
  params = AugmentParams.identity(1).replace(gain_n3=jnp.array([[1.5, 1.0, 0.5]]))
  np.testing.assert_allclose(_apply(jnp.full((1, 1, 1, 3), 0.8), params)[0, 0, 0], [1.0, 0.8, 0.4],
                             atol=1e-6)


def test_bad_settings_and_shapes_raise_naming_the_item():
  with pytest.raises(ValueError, match="rotation_degrees"):
    AugmentSettings(rotation_degrees=-1.0)
  with pytest.raises(ValueError, match="scale"):
    AugmentSettings(scale=1.0)
  with pytest.raises(ValueError, match=r"\[..., H, W, 3\]"):
    augment_images(jax.random.key(0), jnp.zeros((2, 8, 8, 4), jnp.uint8), AugmentSettings())
  with pytest.raises(ValueError, match="params hold"):
    apply_augment_params(jnp.zeros((3, 8, 8, 3)), AugmentParams.identity(2))
