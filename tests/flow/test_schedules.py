"""Sigma schedules: shift identities, endpoints, monotonicity, the resolution rule, and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow import exponential_time_shift, resolution_shift_mu, sigma_schedule, time_shift

_GRID = np.linspace(0.0, 1.0, 101)


def test_time_shift_identity_endpoints_and_direction():
  np.testing.assert_allclose(time_shift(_GRID, 1.0), _GRID, rtol=0, atol=1e-15)
  for shift in (0.3, 3.0):
    shifted = time_shift(_GRID, shift)
    assert shifted[0] == 0.0 and shifted[-1] == 1.0
    assert np.all(np.diff(shifted) > 0)
    inner = slice(1, -1)
    # shift > 1 moves every interior sigma towards the noisy end; shift < 1 the other way.
    assert np.all((shifted[inner] > _GRID[inner]) if shift > 1 else (shifted[inner] < _GRID[inner]))
  assert time_shift(0.5, 3.0) == pytest.approx(0.75)  # 1.5 / (1 + 2 * 0.5)


def test_time_shifts_compose_by_multiplying():
  np.testing.assert_allclose(time_shift(time_shift(_GRID, 2.0), 1.5), time_shift(_GRID, 3.0), rtol=1e-12)
  np.testing.assert_allclose(time_shift(time_shift(_GRID, 4.0), 0.25), _GRID, rtol=1e-12, atol=1e-15)


def test_exponential_shift_identity_endpoints_and_static_equivalent():
  np.testing.assert_allclose(exponential_time_shift(_GRID, 0.0), _GRID, rtol=0, atol=1e-15)
  for mu in (-0.7, 1.15):
    shifted = exponential_time_shift(_GRID, mu)
    assert shifted[0] == 0.0 and shifted[-1] == 1.0
    assert np.all(np.diff(shifted) > 0)
    np.testing.assert_allclose(shifted, time_shift(_GRID, math.exp(mu)), rtol=1e-12)
    # The defining form exp(mu) / (exp(mu) + 1/s - 1) on the interior.
    s = _GRID[1:]
    np.testing.assert_allclose(shifted[1:], math.exp(mu) / (math.exp(mu) + 1.0 / s - 1.0), rtol=1e-12)


def test_shifts_accept_traced_jax_arrays():
  s = jnp.linspace(0.0, 1.0, 11)
  np.testing.assert_allclose(jax.jit(lambda x: time_shift(x, 3.0))(s), time_shift(np.asarray(s), 3.0), rtol=1e-6)
  np.testing.assert_allclose(
      jax.jit(lambda x: exponential_time_shift(x, 0.5))(s), exponential_time_shift(np.asarray(s), 0.5), rtol=1e-6
  )


def test_resolution_shift_mu_is_the_line_through_the_anchors():
  assert resolution_shift_mu(256) == pytest.approx(0.5)
  assert resolution_shift_mu(4096) == pytest.approx(1.15)
  assert resolution_shift_mu(2176) == pytest.approx(0.825)  # midpoint of the anchors
  slope = (1.15 - 0.5) / (4096 - 256)
  assert resolution_shift_mu(8192) == pytest.approx(1.15 + slope * 4096)  # extrapolated
  assert resolution_shift_mu(64) == pytest.approx(0.5 - slope * 192)
  assert resolution_shift_mu(10, base_tokens=0, max_tokens=20, base_shift=1.0, max_shift=3.0) == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs", [{}, {"shift": 3.0}, {"mu": 1.15}, {"mu": -0.5}, {"shift": 0.5}])
@pytest.mark.parametrize("num_steps", [1, 2, 7, 50])
def test_sigma_schedule_shape_endpoints_and_strict_decrease(num_steps, kwargs):
  sigmas = sigma_schedule(num_steps, **kwargs)
  assert isinstance(sigmas, np.ndarray) and sigmas.dtype == np.float32
  assert sigmas.shape == (num_steps + 1,)
  assert sigmas[0] == 1.0 and sigmas[-1] == 0.0
  assert np.all(np.diff(sigmas) < 0)


def test_sigma_schedule_base_grid_and_shifted_grids():
  np.testing.assert_allclose(sigma_schedule(4), [1.0, 0.75, 0.5, 0.25, 0.0], rtol=1e-7)
  base = np.array([1.0, 0.75, 0.5, 0.25])
  np.testing.assert_allclose(sigma_schedule(4, shift=3.0)[:-1], time_shift(base, 3.0), rtol=1e-6)
  np.testing.assert_allclose(sigma_schedule(4, mu=0.8)[:-1], exponential_time_shift(base, 0.8), rtol=1e-6)
  np.testing.assert_allclose(sigma_schedule(4, mu=0.0), sigma_schedule(4), rtol=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sigma_schedule(0), "num_steps >= 1"),
        (lambda: sigma_schedule(2.5), "num_steps"),
        (lambda: sigma_schedule(True), "num_steps"),
        (lambda: sigma_schedule(4, shift=2.0, mu=0.5), "not both"),
        (lambda: sigma_schedule(4, shift=0.0), "shift > 0"),
        (lambda: time_shift(_GRID, -1.0), "shift > 0"),
        (lambda: time_shift(_GRID, float("nan")), "finite"),
        (lambda: time_shift(np.array([0.5, 1.5]), 2.0), r"\[0, 1\].*1.5"),
        (lambda: exponential_time_shift(np.array([-0.1]), 0.5), r"\[0, 1\]"),
        (lambda: exponential_time_shift(_GRID, float("inf")), "finite"),
        (lambda: exponential_time_shift(_GRID, 1000.0), r"\|mu\| <= 700"),
        (lambda: resolution_shift_mu(0), "num_tokens >= 1"),
        (lambda: resolution_shift_mu(100, base_tokens=64, max_tokens=64), "base_tokens != max_tokens"),
    ],
)
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()
