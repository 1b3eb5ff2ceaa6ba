"""Lighting edit: sampled ranges, the clip chain, masks, higher SH untouched."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import random_gaussians, rgb_to_sh_dc, sh_dc_to_rgb
from jaxlab.splat.edit import LightingRanges, relight, sample_lighting


@pytest.fixture(scope="module")
def scene():
  return random_gaussians(jax.random.key(0), 300, sh_degree=2, sh_std=1.5)  # DC colours well outside [0, 1]


def test_samples_stay_in_their_ranges():
  ranges = LightingRanges()
  draws = [sample_lighting(jax.random.key(s), 400, ranges) for s in range(20)]
  gains = jnp.stack([d[0] for d in draws])
  offsets = jnp.stack([d[1] for d in draws])
  noise = jnp.concatenate([d[2] for d in draws])
  assert gains.shape == (20, 3) and noise.shape == (8000, 3)
  assert float(gains.min()) >= 0.3 and float(gains.max()) <= 1.8 and float(gains.max() - gains.min()) > 1.0
  assert float(offsets.min()) >= -0.3 and float(offsets.max()) <= 0.3 and float(offsets.max() - offsets.min()) > 0.4
  assert abs(float(noise.std()) - 0.1) < 0.005 and abs(float(noise.mean())) < 0.005
  narrow = sample_lighting(jax.random.key(1), 4, LightingRanges(gain=(1.0, 1.0), offset=(0.2, 0.2), noise_std=0.0))
  np.testing.assert_allclose(narrow[0], 1.0)
  np.testing.assert_allclose(narrow[1], 0.2)
  np.testing.assert_array_equal(narrow[2], 0.0)


def test_relight_follows_the_clip_chain(scene):
  gain, offset, noise = sample_lighting(jax.random.key(2), scene.num)
  lit = relight(scene, gain, offset, noise)
  rgb = np.asarray(sh_dc_to_rgb(lit.sh[:, 0]))
  assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
  old = np.asarray(sh_dc_to_rgb(scene.sh[:, 0]))
  want = np.clip(np.clip(np.clip(old * np.asarray(gain), 0, 1) + np.asarray(offset), 0, 1) + np.asarray(noise), 0, 1)
  np.testing.assert_allclose(rgb, want, atol=1e-5)
  np.testing.assert_array_equal(lit.sh[:, 1:], scene.sh[:, 1:])
  for field in ("means", "log_scales", "quats", "opacity_logits", "active"):
    np.testing.assert_array_equal(getattr(lit, field), getattr(scene, field))


def test_identity_edit_of_in_range_colours():
  g = random_gaussians(jax.random.key(3), 20, sh_degree=0)
  g = g.replace(sh=rgb_to_sh_dc(jax.random.uniform(jax.random.key(4), (20, 1, 3))))
  lit = relight(g, jnp.ones(3), jnp.zeros(3), jnp.zeros((20, 3)))
  np.testing.assert_allclose(lit.sh, g.sh, atol=1e-5)


def test_only_masked_and_active_gaussians_change(scene):
  g = scene.replace(active=scene.active.at[:50].set(False))
  gain, offset, noise = sample_lighting(jax.random.key(5), g.num)
  lit = relight(g, gain, offset, noise)  # default: the active ones
  np.testing.assert_array_equal(lit.sh[:50], g.sh[:50])
  assert float(jnp.abs(lit.sh[50:, 0] - g.sh[50:, 0]).max()) > 0.1
  mask = jnp.arange(g.num) % 2 == 0
  lit = relight(g, gain, offset, noise, mask)
  np.testing.assert_array_equal(lit.sh[1::2], g.sh[1::2])
  assert float(jnp.abs(lit.sh[::2, 0] - g.sh[::2, 0]).max()) > 0.1


def test_bad_input(scene):
  with pytest.raises(ValueError, match="noise_n3"):
    relight(scene, jnp.ones(3), jnp.zeros(3), jnp.zeros((3, 3)))
  with pytest.raises(ValueError, match="mask_n"):
    relight(scene, jnp.ones(3), jnp.zeros(3), jnp.zeros((scene.num, 3)), jnp.ones(3, bool))
  with pytest.raises(ValueError, match="gain"):
    LightingRanges(gain=(2.0, 1.0))
  with pytest.raises(ValueError, match="noise_std"):
    LightingRanges(noise_std=-0.1)
  with pytest.raises(dataclasses.FrozenInstanceError):
    LightingRanges().noise_std = 0.2
