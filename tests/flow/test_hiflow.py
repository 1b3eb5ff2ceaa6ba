"""HiFlow's cascade: plain sampling when alpha = beta = 0, consistency with the base stage on a
Gaussian target whose velocity field is known in closed form, step bookkeeping, bad settings."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow import image_stats
from jaxlab.flow.hiflow import HiFlowSettings, guided_stage, hiflow_sample, initial_latent, stage_weights
from jaxlab.flow.resample import upsample_bicubic
from jaxlab.flow.samplers import euler_sample


def gaussian_velocity(mean: float, std: float):
  """Exact v(x, sigma) = E[eps - x0 | x_sigma = x] for data x0 ~ N(mean, std^2) per element."""

  def velocity(x, sigma_b, cond=None):
    del cond
    sigma = sigma_b[:, None, None, None]
    variance = (1 - sigma) ** 2 * std**2 + sigma**2
    return (sigma - (1 - sigma) * std**2) / variance * (x - (1 - sigma) * mean) - mean

  return velocity


SMALL = HiFlowSettings(num_steps=12, stage_steps=(6, 4), sharpen_sigma=1.0)


def test_zero_strengths_reduce_a_stage_to_plain_euler_sampling():
  velocity = gaussian_velocity(0.3, 0.5)
  key_init, key_ref = jax.random.split(jax.random.key(0))
  x_init = jax.random.normal(key_init, (2, 16, 16, 3))
  reference = jax.random.normal(key_ref, (5, 2, 8, 8, 3))
  sigmas = jnp.linspace(0.8, 0.0, 6)
  zeros = np.zeros(5, np.float32)
  got, x0_steps = guided_stage(velocity, x_init, reference, sigmas, zeros, zeros, scale_factor=2)
  want, want_x0 = euler_sample(velocity, x_init, sigmas, return_x0=True)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  np.testing.assert_allclose(np.asarray(x0_steps), np.asarray(want_x0), rtol=0, atol=1e-6)


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_zero_strength_cascade_equals_euler_from_the_aligned_initial_latent():
  velocity = gaussian_velocity(0.0, 1.0)
  settings = dataclasses.replace(SMALL, stage_steps=(6,), alpha=(0.0,), beta=(0.0,))
  key = jax.random.key(3)
  result = hiflow_sample(velocity, key, (1, 8, 8, 2), settings=settings)
  sigmas = settings.sigmas()
  first = settings.num_steps - 6
  noise = jax.random.normal(jax.random.split(jax.random.fold_in(key, 1))[0], (1, 16, 16, 2))
  x_init = initial_latent(result.samples[0], noise, float(sigmas[first]), 2, 1.0)
  want = euler_sample(velocity, x_init, jnp.asarray(sigmas[first:]))
  np.testing.assert_array_equal(np.asarray(result.samples[1]), np.asarray(want))


def test_a_point_mass_target_is_reached_at_every_stage():
  # std 0: every sample of every stage must be the constant, whatever the guidance does.
  result = hiflow_sample(gaussian_velocity(0.7, 0.0), jax.random.key(1), (2, 8, 8, 3), settings=SMALL)
  for sample in result.samples:
    np.testing.assert_allclose(np.asarray(sample), 0.7, atol=1e-4)


def test_cascade_keeps_the_base_layout_better_than_direct_sampling():
  velocity = gaussian_velocity(0.0, 1.0)
  result = hiflow_sample(velocity, jax.random.key(2), (4, 16, 16, 1), settings=SMALL)
  upsampled = np.asarray(upsample_bicubic(result.samples[0], 2))
  direct = euler_sample(velocity, jax.random.normal(jax.random.key(9), upsampled.shape), jnp.asarray(SMALL.sigmas()))
  hiflow_error = image_stats.lowfreq_error(np.asarray(result.samples[1]), upsampled).mean()
  direct_error = image_stats.lowfreq_error(np.asarray(direct), upsampled).mean()
  assert hiflow_error < 0.5 * direct_error, (hiflow_error, direct_error)
  # The target's marginal is still N(0, 1) at the high resolution (loosely: guidance pulls the
  # low frequencies toward a smooth upsample).
  assert 0.5 < float(np.std(np.asarray(result.samples[1]))) < 1.5


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_stage_bookkeeping():
  result = hiflow_sample(gaussian_velocity(0.0, 1.0), jax.random.key(0), (1, 4, 4, 1), settings=SMALL)
  assert result.first_steps == (0, 6, 8)
  assert [t.shape[0] for t in result.x0_trajectories] == [12, 6, 4]
  assert [s.shape[1] for s in result.samples] == [4, 8, 16]
  np.testing.assert_allclose(stage_weights(1.0, 4), [1.0, 0.75, 0.5, 0.25])


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_one_velocity_function_per_stage_is_used_at_its_stage():
  calls = []

  def make(stage):
    def fn(x, sigma, cond):
      calls.append((stage, x.shape[1]))
      return gaussian_velocity(0.0, 1.0)(x, sigma)
    return fn

  hiflow_sample([make(0), make(1), make(2)], jax.random.key(0), (1, 4, 4, 1), settings=SMALL)
  assert set(calls) == {(0, 4), (1, 8), (2, 16)}


@pytest.mark.parametrize("kwargs, match", [
    (dict(stage_steps=(4, 6)), "must not increase"),
    (dict(alpha=(1.0,)), "one value per stage"),
    (dict(stage_steps=(40, 10)), "1..num_steps"),
    (dict(lowpass="wavelet"), "lowpass"),
])
def test_bad_settings_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    dataclasses.replace(SMALL, **kwargs)


def test_bad_shapes_raise():
  velocity = gaussian_velocity(0.0, 1.0)
  with pytest.raises(ValueError, match="base_shape"):
    hiflow_sample(velocity, jax.random.key(0), (4, 4, 1), settings=SMALL)
  with pytest.raises(ValueError, match="even sizes"):
    hiflow_sample(velocity, jax.random.key(0), (1, 3, 3, 1), settings=dataclasses.replace(SMALL, scale_factor=3,
                                                                                           lowpass="dwt"))
  with pytest.raises(ValueError, match="do not match"):
    guided_stage(velocity, jnp.zeros((1, 8, 8, 1)), jnp.zeros((2, 1, 8, 8, 1)), jnp.linspace(1, 0, 3),
                 np.zeros(2, np.float32), np.zeros(2, np.float32), scale_factor=2)
  with pytest.raises(ValueError, match="velocity functions"):
    hiflow_sample([velocity], jax.random.key(0), (1, 4, 4, 1), settings=SMALL)
