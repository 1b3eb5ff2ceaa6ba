"""L1, SSIM and PSNR against their formulas, computed independently in NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat.fit import l1, psnr, ssim


def _numpy_ssim(a, b, *, padding):
  """SSIM straight from the definition: an explicit 11x11 window, loops over its offsets."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
  window = np.outer(g, g) / np.sum(g) ** 2

  def blur(x):
    h, w, _ = x.shape
    if padding == "same":
      x = np.pad(x, ((5, 5), (5, 5), (0, 0)))
      out_h, out_w = h, w
    else:
      out_h, out_w = h - 10, w - 10
    out = np.zeros((out_h, out_w, x.shape[2]))
    for dy in range(11):
      for dx in range(11):
        out += window[dy, dx] * x[dy:dy + out_h, dx:dx + out_w]
    return out

  c1, c2 = 0.01**2, 0.03**2
  mu_a, mu_b = blur(a), blur(b)
  var_a = blur(a * a) - mu_a**2
  var_b = blur(b * b) - mu_b**2
  cov = blur(a * b) - mu_a * mu_b
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
  return ssim_map.mean()


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)
  # A smooth image plus texture: SSIM is far from 0 and from 1 for the noisy copy.
  y, x = np.mgrid[0:20, 0:24] / 10.0
  base = np.stack([np.sin(x + y), np.cos(2 * x), x * y / 4.0], axis=-1) * 0.4 + 0.5
  base = np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
  noisy = np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
  return base, noisy


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_ssim_matches_numpy_definition(images, padding):
  a, b = images
  want = _numpy_ssim(a, b, padding=padding)
  got = float(ssim(jnp.asarray(a), jnp.asarray(b), padding=padding))
  assert 0.2 < want < 0.95
  assert got == pytest.approx(want, abs=2e-5)


def test_ssim_is_one_for_identical_and_falls_with_noise(images):
  base, _ = images
  rng = np.random.default_rng(1)
  assert float(ssim(jnp.asarray(base), jnp.asarray(base))) == pytest.approx(1.0, abs=1e-5)
  scores = []
  for sigma in (0.02, 0.05, 0.1, 0.2):
    noisy = np.clip(base + sigma * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
    scores.append(float(ssim(jnp.asarray(base), jnp.asarray(noisy))))
  assert all(s1 > s2 for s1, s2 in zip(scores, scores[1:])), scores
  assert scores[0] < 1.0


def test_ssim_is_vmappable_and_rejects_bad_input(images):
  a, b = (jnp.asarray(x) for x in images)
  batched = jax.vmap(ssim)(jnp.stack([a, b]), jnp.stack([b, b]))
  np.testing.assert_allclose(batched, [float(ssim(a, b)), 1.0], rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="padding"):
    ssim(a, b, padding="reflect")
  with pytest.raises(ValueError, match="one shape"):
    ssim(a, b[:-1])


def test_psnr_and_l1_formulas(images):
  a, b = images
  mse = np.mean((a.astype(np.float64) - b) ** 2)
  assert float(psnr(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-5)
  assert float(l1(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(np.mean(np.abs(a.astype(np.float64) - b)), rel=1e-5)
  # A uniform error of 0.1 is 20 dB.
  assert float(psnr(jnp.zeros((4, 4, 3)), jnp.full((4, 4, 3), 0.1))) == pytest.approx(20.0, abs=1e-4)
  assert math.isinf(float(psnr(jnp.asarray(a), jnp.asarray(a))))
