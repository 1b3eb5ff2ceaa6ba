"""Video sampling against a Gaussian target whose velocity field and ODE solution are known exactly.

Each channel c of the data is x0 ~ N(M_c, S_c^2) (per-modality means and spreads), shifted per
example by a cond offset. With x = (1 - sigma) x0 + sigma eps, mu = (1 - sigma) M and
V = (1 - sigma)^2 S^2 + sigma^2, the exact velocity is
  v(x, sigma) = (sigma - (1 - sigma) S^2) / V * (x - mu) - M,
and the ODE from sigma = 1 to 0 carries noise z to M + S z (see tests/flow/test_samplers.py).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.video.sampling import sample_video

# Means and spreads of the 7 channels: rgb, depth, normal.
M_C = np.array([0.5, -0.2, 0.1, 0.8, -0.6, 0.0, 0.3], np.float32)
S_C = np.array([0.3, 0.5, 0.35, 0.45, 0.4, 0.6, 0.55], np.float32)
OFFSET_B = np.array([0.0, 0.7], np.float32)  # cond: a per-example shift of every mean


def gaussian_velocity(x, sigma_b, offset_b):
  s = sigma_b[:, None, None, None, None]
  m = M_C + offset_b[:, None, None, None, None]
  variance = (1 - s) ** 2 * S_C**2 + s**2
  return (s - (1 - s) * S_C**2) / variance * (x - (1 - s) * m) - m


@functools.cache
def _jitted(num_steps, method, shift=None):
  return jax.jit(functools.partial(sample_video, gaussian_velocity, num_steps=num_steps, method=method, shift=shift))


def _noise(seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((2, 3, 4, 4, 7)), jnp.float32)


def _error(num_steps, method, z, shift=None):
  x = _jitted(num_steps, method, shift)(z, jnp.asarray(OFFSET_B))
  want = M_C + OFFSET_B[:, None, None, None, None] + S_C * np.asarray(z)
  return float(np.max(np.abs(np.asarray(x) - want)))


def test_heun_lands_on_the_analytic_sample():
  z = _noise(0)
  plain, shifted = _error(48, "heun", z), _error(48, "heun", z, shift=0.5)
  assert _error(64, "heun", z) < 2e-3
  # The field is stiffest near the data, where shift < 1 puts more of the steps.
  assert shifted < 1e-3 and shifted < plain / 3


def test_euler_converges_at_first_order_and_heun_beats_it():
  z = _noise(1)
  euler = [_error(n, "euler", z) for n in (8, 32)]
  assert euler[1] < 0.1 < euler[0]
  assert 2.5 < euler[0] / euler[1] < 6  # 4x the steps: ~4x smaller error
  assert _error(16, "heun", z) < euler[1] / 2  # 31 field evaluations against Euler's 32


def test_eager_call_and_cond_is_passed():
  z = _noise(2)
  x = sample_video(gaussian_velocity, z, jnp.asarray(OFFSET_B), num_steps=48, method="heun", shift=0.5)
  assert x.shape == z.shape and x.dtype == jnp.float32
  np.testing.assert_allclose(x, _jitted(48, "heun", 0.5)(z, jnp.asarray(OFFSET_B)), atol=1e-5)
  # The second example is shifted by its cond offset.
  np.testing.assert_allclose(np.asarray(x[1]) - S_C * np.asarray(z[1]), np.broadcast_to(M_C + 0.7, (3, 4, 4, 7)),
                             atol=1e-3)


@pytest.mark.parametrize("kwargs, words", [
    ({"num_steps": 8, "method": "dpm"}, "method must be one of"),
    ({"num_steps": 0}, "num_steps >= 1"),
    ({"num_steps": 4, "shift": -1.0}, "shift"),
])
def test_bad_settings_raise(kwargs, words):
  with pytest.raises(ValueError, match=words):
    sample_video(gaussian_velocity, _noise(3), jnp.asarray(OFFSET_B), **kwargs)


def test_bad_noise_raises():
  with pytest.raises(ValueError, match="\\[B, F, H, W, C\\]"):
    sample_video(gaussian_velocity, _noise(3)[0], None, num_steps=2)
  with pytest.raises(ValueError, match="NaN"):
    sample_video(gaussian_velocity, _noise(3).at[0, 0, 0, 0, 0].set(jnp.nan), jnp.asarray(OFFSET_B), num_steps=2)
  with pytest.raises(ValueError, match="velocity_fn must return"):
    sample_video(lambda x, s, c: x[..., :3], _noise(3), None, num_steps=2)
