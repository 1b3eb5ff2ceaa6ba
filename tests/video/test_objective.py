"""Structural flow loss: one sigma per clip for all modalities, the sum of per-modality MSEs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow import flow_matching_loss
from jaxlab.video.objective import structural_flow_loss

ALL = ("rgb", "depth", "normal")
# Channel slices of each modality in the fixed layout, written out by hand.
SLICES = {"rgb": slice(0, 3), "depth": slice(3, 4), "normal": slice(4, 7)}


def _x0(seed, channels=7, shape=(3, 2, 4, 4)):
  x = np.random.default_rng(seed).uniform(-1.0, 1.0, shape + (channels,)).astype(np.float32)
  if channels == 7:
    x[..., 3] *= 0.1  # a depth channel of small values: its MSE differs clearly from the others'
  return jnp.asarray(x)


def _affine_field(x, sigma_b, cond):
  del cond
  return 0.5 * x + sigma_b[:, None, None, None, None]


def test_one_modality_equals_flow_matching_loss():
  x0, key = _x0(0, channels=3), jax.random.key(7)
  loss, aux = structural_flow_loss(_affine_field, x0, None, key, modalities=("rgb",), sigma_kind="uniform", shift=2.0)
  want, want_aux = flow_matching_loss(_affine_field, x0, None, key, sigma_kind="uniform", shift=2.0)
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(aux["sigma"], want_aux["sigma"], rtol=0)
  np.testing.assert_allclose(aux["mse_rgb_b"], want_aux["mse"], rtol=1e-6)
  assert float(loss) > 0.1


def test_loss_is_the_sum_of_per_modality_means():
  x0, key = _x0(1), jax.random.key(3)
  zero = lambda x, sigma_b, cond: jnp.zeros_like(x)
  loss, aux = structural_flow_loss(zero, x0, None, key, modalities=ALL)
  # With v = 0 each modality's error is mean((eps - x0)^2) over its own channels. The noise is one
  # standard normal draw of x0's shape from the first half of the split key (the documented semantics).
  noise_key, _ = jax.random.split(key)
  target = np.asarray(jax.random.normal(noise_key, x0.shape, jnp.float32)) - np.asarray(x0)
  total = 0.0
  for name, channels in SLICES.items():
    mse_b = np.mean(np.square(target[..., channels]).reshape(3, -1), axis=1)
    np.testing.assert_allclose(aux[f"mse_{name}_b"], mse_b, rtol=1e-5)
    np.testing.assert_allclose(aux[f"mse_{name}"], mse_b.mean(), rtol=1e-5)
    total += mse_b.mean()
  np.testing.assert_allclose(loss, total, rtol=1e-5)
  # Not a plain mean over all channels, which would weight rgb and normals 3 : 1 against depth.
  assert abs(float(loss) - 3 * np.mean(np.square(target))) > 1e-2
  assert aux["sigma"].shape == (3,)


def test_the_exact_velocity_gives_zero_loss():
  x0 = _x0(2)

  def exact(x_sigma, sigma_b, cond):
    # x_sigma = (1 - s) x0 + s eps, so eps - x0 = (x_sigma - x0) / s.
    return (x_sigma - cond) / sigma_b[:, None, None, None, None]

  loss, aux = jax.jit(lambda k: structural_flow_loss(exact, x0, x0, k, modalities=ALL))(jax.random.key(5))
  assert float(loss) < 1e-8
  assert all(float(aux[f"mse_{m}"]) < 1e-8 for m in ALL)
  # The same field fed the wrong clean video is far off.
  bad, _ = structural_flow_loss(exact, x0, x0 + 0.5, jax.random.key(5), modalities=ALL)
  assert float(bad) > 0.1


def test_sigma_is_shared_by_all_modalities_of_an_example():
  seen = []
  record = lambda x, sigma_b, cond: seen.append(np.asarray(x)) or jnp.zeros_like(x)
  x0, delta = _x0(3), 0.75
  _, aux = structural_flow_loss(record, x0, None, jax.random.key(11), modalities=ALL)
  structural_flow_loss(record, x0 + delta, None, jax.random.key(11), modalities=ALL)
  # Same key, same noise and sigma: x_sigma moves by (1 - sigma) * delta, element by element.
  sigma_elements = 1.0 - (seen[1] - seen[0]) / delta
  sigma_b = np.asarray(aux["sigma"])
  assert np.ptp(sigma_b) > 0.01  # the examples' sigmas differ, so the check below can fail
  np.testing.assert_allclose(sigma_elements, np.broadcast_to(sigma_b[:, None, None, None, None], x0.shape), atol=1e-5)


def test_subset_of_modalities_and_errors():
  x0 = _x0(4, channels=4)
  loss, aux = structural_flow_loss(_affine_field, x0, None, jax.random.key(0), modalities=("rgb", "depth"))
  assert set(aux) == {"sigma", "mse_rgb", "mse_rgb_b", "mse_depth", "mse_depth_b"}
  np.testing.assert_allclose(loss, aux["mse_rgb"] + aux["mse_depth"], rtol=1e-6)
  with pytest.raises(ValueError, match="C = 7.*\\(3, 2, 4, 4, 4\\)"):
    structural_flow_loss(_affine_field, x0, None, jax.random.key(0), modalities=ALL)
  with pytest.raises(ValueError, match="unknown modality 'flow'"):
    structural_flow_loss(_affine_field, x0, None, jax.random.key(0), modalities=("rgb", "flow"))
  with pytest.raises(ValueError, match="\\[B, F, H, W, C\\]"):
    structural_flow_loss(_affine_field, x0[0], None, jax.random.key(0), modalities=("rgb", "depth"))
  with pytest.raises(ValueError, match="NaN"):
    structural_flow_loss(_affine_field, x0.at[0, 0, 0, 0, 0].set(jnp.nan), None, jax.random.key(0),
                         modalities=("rgb", "depth"))
  with pytest.raises(ValueError, match="velocity_fn must return"):
    structural_flow_loss(lambda x, s, c: x[..., :3], x0, None, jax.random.key(0), modalities=("rgb", "depth"))
