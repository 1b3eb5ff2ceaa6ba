"""Rectified-flow training math: noising endpoints, velocity inversions, sigma sampling, the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow import (
    flow_matching_loss,
    noise_from_velocity,
    noisy_sample,
    sample_sigmas,
    time_shift,
    velocity_target,
    x0_from_velocity,
)


def _normal(seed, shape, loc=0.0, scale=1.0):
  return jnp.asarray(np.random.default_rng(seed).normal(loc, scale, shape), jnp.float32)


def test_noisy_sample_endpoints_and_per_example_sigma():
  x0, noise = _normal(0, (3, 4, 4, 2), loc=2.0), _normal(1, (3, 4, 4, 2))
  np.testing.assert_allclose(noisy_sample(x0, noise, 0.0), x0, rtol=0)
  np.testing.assert_allclose(noisy_sample(x0, noise, 1.0), noise, rtol=0)
  sigma_b = jnp.array([0.0, 0.25, 1.0])
  x_sigma = noisy_sample(x0, noise, sigma_b)
  for b, s in enumerate([0.0, 0.25, 1.0]):
    np.testing.assert_allclose(x_sigma[b], (1 - s) * x0[b] + s * noise[b], rtol=1e-6, atol=1e-6)


def test_velocity_inversions_recover_data_and_noise():
  x0, noise = _normal(2, (4, 3, 5, 2), loc=-1.0, scale=0.5), _normal(3, (4, 3, 5, 2))
  sigma_b = jnp.array([0.1, 0.4, 0.7, 0.95])
  x_t, v = noisy_sample(x0, noise, sigma_b), velocity_target(x0, noise)
  np.testing.assert_allclose(v, noise - x0, rtol=0)
  np.testing.assert_allclose(x0_from_velocity(x_t, v, sigma_b), x0, atol=1e-5)
  np.testing.assert_allclose(noise_from_velocity(x_t, v, sigma_b), noise, atol=1e-5)


def test_bfloat16_inputs_keep_their_dtype():
  x0 = _normal(4, (2, 2, 2, 1)).astype(jnp.bfloat16)
  noise = _normal(5, (2, 2, 2, 1)).astype(jnp.bfloat16)
  assert noisy_sample(x0, noise, jnp.array([0.3, 0.6])).dtype == jnp.bfloat16
  assert x0_from_velocity(x0, noise, 0.5).dtype == jnp.bfloat16


def test_sample_sigmas_ranges_and_distributions():
  key = jax.random.key(0)
  for kind in ("logit_normal", "uniform"):
    s = sample_sigmas(key, 20000, kind=kind)
    assert s.shape == (20000,) and s.dtype == jnp.float32
    assert bool(jnp.all((s > 0) & (s < 1)))
    np.testing.assert_allclose(sample_sigmas(key, 20000, kind=kind), s, rtol=0)  # key-determined
  uniform = np.asarray(sample_sigmas(key, 20000, kind="uniform"))
  assert np.mean(uniform) == pytest.approx(0.5, abs=0.01)
  assert np.mean(uniform < 0.25) == pytest.approx(0.25, abs=0.01)
  # Logit-normal: the logit of the sample is N(mean, std^2).
  logits = np.log(np.asarray(sample_sigmas(key, 20000, mean=0.5, std=2.0)))
  logits -= np.log1p(-np.exp(logits))
  assert np.mean(logits) == pytest.approx(0.5, abs=0.05)
  assert np.std(logits) == pytest.approx(2.0, abs=0.05)


def test_sample_sigmas_shift_applies_time_shift():
  key = jax.random.key(1)
  plain, shifted = sample_sigmas(key, 512), sample_sigmas(key, 512, shift=3.0)
  np.testing.assert_allclose(shifted, time_shift(np.asarray(plain, np.float64), 3.0), rtol=1e-5)
  assert float(jnp.mean(shifted)) > float(jnp.mean(plain)) + 0.05


def test_loss_matches_hand_computed_mse_and_draws_standard_noise():
  x0 = _normal(6, (256, 4, 4, 3), loc=1.0, scale=0.5)
  seen = {}

  def velocity_fn(x, sigma_b, cond):
    seen.update(x=x, sigma=sigma_b)  # what the loss fed the model, returned from the same trace
    return 0.5 * x + cond

  @jax.jit
  def run(key):
    loss, aux = flow_matching_loss(velocity_fn, x0, 0.25, key, sigma_kind="uniform")
    return loss, aux, seen["x"], seen["sigma"]

  loss, aux, x_sigma, sigma_b = run(jax.random.key(2))
  assert sigma_b.shape == (256,)
  np.testing.assert_allclose(aux["sigma"], sigma_b, rtol=0)
  # Recover the drawn noise from x_sigma = (1 - s) x0 + s eps, then compute the loss by hand.
  s = np.asarray(sigma_b, np.float64)[:, None, None, None]
  noise = (np.asarray(x_sigma, np.float64) - (1 - s) * np.asarray(x0, np.float64)) / s
  assert abs(np.mean(noise)) < 0.03 and np.std(noise) == pytest.approx(1.0, abs=0.03)
  err = (0.5 * np.asarray(x_sigma, np.float64) + 0.25) - (noise - np.asarray(x0, np.float64))
  mse_b = np.mean(err**2, axis=(1, 2, 3))
  np.testing.assert_allclose(aux["mse"], mse_b, rtol=1e-3)
  assert float(loss) == pytest.approx(np.mean(err**2), rel=1e-3)
  assert loss.shape == () and loss.dtype == jnp.float32


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_loss_is_zero_for_the_exact_velocity():
  x0 = _normal(7, (8, 4, 4, 2))

  # Given x0 as cond, the velocity field can solve x_sigma for the noise and return eps - x0.
  def exact(x, sigma_b, x0_cond):
    s = sigma_b[:, None, None, None]
    return (x - (1 - s) * x0_cond) / s - x0_cond

  def off_by_tenth(x, sigma_b, x0_cond):
    return exact(x, sigma_b, x0_cond) + 0.1

  @jax.jit
  def both(key):
    return flow_matching_loss(exact, x0, x0, key, sigma_kind="uniform"), flow_matching_loss(off_by_tenth, x0, x0, key)

  (loss, aux), (loss_wrong, _) = both(jax.random.key(3))
  assert float(loss) < 1e-8 and aux["mse"].shape == (8,)
  assert float(loss_wrong) == pytest.approx(0.01, rel=1e-3)


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_loss_jits_and_differentiates():
  x0 = _normal(8, (4, 2, 2, 1))

  def loss_of(a, key):
    return flow_matching_loss(lambda x, s, c: a * x, x0, None, key, shift=2.0)[0]

  key = jax.random.key(4)
  jit_loss = jax.jit(loss_of)
  grad = jax.jit(jax.grad(loss_of))(0.3, key)
  h = 1e-2
  fd = (jit_loss(0.3 + h, key) - jit_loss(0.3 - h, key)) / (2 * h)  # loss is quadratic in a: exact
  assert float(grad) == pytest.approx(float(fd), rel=1e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: noisy_sample(jnp.zeros((2, 3)), jnp.zeros((2, 4)), 0.5), "one shape"),
        (lambda: noisy_sample(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((3,))), r"shape \[B\]"),
        (lambda: velocity_target(jnp.zeros((2, 3)), jnp.zeros((3, 2))), "one shape"),
        (lambda: x0_from_velocity(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((2, 1))), r"shape \[B\]"),
        (lambda: sample_sigmas(jax.random.key(0), 0), "batch >= 1"),
        (lambda: sample_sigmas(jax.random.key(0), 4, kind="cosine"), "'cosine'"),
        (lambda: sample_sigmas(jax.random.key(0), 4, std=0.0), "std > 0"),
        (lambda: sample_sigmas(jax.random.key(0), 4, shift=-2.0), "shift > 0"),
        (
            lambda: jax.eval_shape(
                lambda: flow_matching_loss(lambda x, s, c: x[:, :1], jnp.zeros((2, 4, 4, 3)), None, jax.random.key(0))
            ),
            "velocity_fn must return",
        ),
    ],
)
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()
