"""Samplers against a Gaussian target whose velocity field and ODE solution are known exactly; CFG.

Data x0 ~ N(M, S^2) per element and eps ~ N(0, 1) give x = (1 - sigma) x0 + sigma eps with
mean mu = (1 - sigma) M and variance V = (1 - sigma)^2 S^2 + sigma^2. Conditioning the jointly
Gaussian (x0, eps) on x:
  E[x0 | x] = M + (1 - sigma) S^2 / V * (x - mu),   E[eps | x] = sigma / V * (x - mu),
so v(x, sigma) = E[eps - x0 | x] = (sigma - (1 - sigma) S^2) / V * (x - mu) - M.
The curve x(sigma) = mu(sigma) + sqrt(V(sigma)) z solves dx/dsigma = v (d sqrt(V) / d sigma =
(sigma - (1 - sigma) S^2) / sqrt(V)), and at sigma = 1 it starts at z: the ODE carries noise z
to M + S z, and the state at any sigma to the same quantile of the target.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxlab.flow import classifier_free_guidance, euler_sample, heun_sample, sigma_schedule

M, S = 1.5, 0.5


def _variance(sigma):
  return (1 - sigma) ** 2 * S**2 + sigma**2


def gaussian_velocity(x_bhwc, sigma_b, cond=None):
  del cond
  s = sigma_b.reshape(-1, 1, 1, 1)
  return (s - (1 - s) * S**2) / _variance(s) * (x_bhwc - (1 - s) * M) - M


def _noise(seed, shape=(64, 2, 2, 1)):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@functools.cache
def _jitted(sampler):
  return jax.jit(functools.partial(sampler, gaussian_velocity))


def _max_error(sampler, num_steps, z, **schedule_kwargs):
  x = _jitted(sampler)(z, jnp.asarray(sigma_schedule(num_steps, **schedule_kwargs)))
  return float(jnp.max(jnp.abs(x - (M + S * z))))


def test_flow_maps_noise_to_the_analytic_answer():
  z = _noise(0)
  assert _max_error(heun_sample, 100, z) < 1e-3
  assert _max_error(euler_sample, 4096, z) < 1e-3


def test_error_shrinks_with_steps_and_heun_beats_euler():
  z = _noise(1)
  for kwargs in ({}, {"shift": 3.0}):
    euler = [_max_error(euler_sample, n, z, **kwargs) for n in (4, 16, 64)]
    heun = [_max_error(heun_sample, n, z, **kwargs) for n in (4, 16, 64)]
    # Euler is first order (4x steps -> ~4x smaller error), Heun second order (~16x).
    assert euler[0] > 3 * euler[1] > 9 * euler[2]
    assert heun[1] > 8 * heun[2]
    assert all(h < e for h, e in zip(heun, euler))


def test_large_batch_reaches_target_moments_and_quantiles():
  z = _noise(2, (4096, 4, 4, 1))  # 65536 elements: sampling error of the mean ~0.002
  x = np.asarray(_jitted(heun_sample)(z, jnp.asarray(sigma_schedule(32)))).ravel()
  assert np.mean(x) == pytest.approx(M, abs=0.01)
  assert np.std(x) == pytest.approx(S, abs=0.01)
  q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
  np.testing.assert_allclose(np.quantile(x, q), M + S * stats.norm.ppf(q), atol=0.02)
  # Coarse Euler misses the spread, and the miss shrinks with more steps.
  std_miss = [abs(np.std(np.asarray(_jitted(euler_sample)(z, jnp.asarray(sigma_schedule(n))))) - S) for n in (4, 32)]
  assert std_miss[0] > 0.05 and std_miss[1] < std_miss[0] / 4


@pytest.mark.parametrize("sampler", [euler_sample, heun_sample])
def test_tail_slice_continues_from_an_intermediate_sigma(sampler):
  z = _noise(3)
  sigmas = sigma_schedule(400 if sampler is euler_sample else 40, shift=0.5)
  start = len(sigmas) // 4
  sigma0 = float(sigmas[start])
  x_start = (1 - sigma0) * M + np.sqrt(_variance(sigma0)) * z  # same quantile at sigma0
  x = _jitted(sampler)(x_start, jnp.asarray(sigmas[start:]))
  np.testing.assert_allclose(x, M + S * z, atol=1e-2 if sampler is euler_sample else 1e-3)


def _field_np(x, sigma):
  return (sigma - (1 - sigma) * S**2) / _variance(sigma) * (x - (1 - sigma) * M) - M


def _reference_loop(x, sigmas, heun):
  """Plain float64 loop over the same steps; returns x_final and the x0 estimates."""
  x, x0s = np.asarray(x, np.float64), []
  for sigma, sigma_next in zip(sigmas[:-1].astype(np.float64), sigmas[1:].astype(np.float64)):
    v = _field_np(x, sigma)
    x0s.append(x - sigma * v)
    x_euler = x + (sigma_next - sigma) * v
    if heun and sigma_next > 0:
      x = x + (sigma_next - sigma) * 0.5 * (v + _field_np(x_euler, sigma_next))
    else:
      x = x_euler
  return x, np.stack(x0s)


@pytest.mark.parametrize("sampler, heun", [(euler_sample, False), (heun_sample, True)])
@pytest.mark.parametrize("sigmas", [sigma_schedule(5, shift=2.0), np.array([1.0, 0.6, 0.6, 0.2], np.float32)])
def test_steps_match_a_plain_loop_and_x0_stack(sampler, heun, sigmas):
  z = _noise(4, (3, 2, 3, 1))
  run = jax.jit(lambda x, s: sampler(gaussian_velocity, x, s, return_x0=True))
  x, x0_nbhwc = run(z, jnp.asarray(sigmas))
  want_x, want_x0 = _reference_loop(z, sigmas, heun)
  assert x0_nbhwc.shape == (len(sigmas) - 1, 3, 2, 3, 1)
  np.testing.assert_allclose(x, want_x, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(x0_nbhwc, want_x0, rtol=1e-5, atol=1e-5)
  # At sigma = 1 the sample is pure noise, so the best x0 guess is the data mean.
  np.testing.assert_allclose(x0_nbhwc[0], np.full(z.shape, M), atol=1e-5)
  # Eager with NumPy sigmas gives the same answer as jit with traced sigmas.
  np.testing.assert_allclose(sampler(gaussian_velocity, z, sigmas), x, rtol=1e-6, atol=1e-6)


def test_heun_never_evaluates_the_field_at_sigma_zero():
  def poisoned(x, sigma_b, cond):
    return jnp.where(sigma_b.reshape(-1, 1, 1, 1) == 0, jnp.nan, gaussian_velocity(x, sigma_b))

  x = jax.jit(lambda z: heun_sample(poisoned, z, jnp.asarray(sigma_schedule(8))))(_noise(5))
  assert bool(jnp.all(jnp.isfinite(x)))


def test_sampler_passes_cond_and_per_example_sigma():
  seen = {}

  def field(x, sigma_b, cond):
    seen.update(sigma_shape=sigma_b.shape, sigma_dtype=sigma_b.dtype, cond=cond)
    return x * 0 + cond[:, None, None, None]

  z = jnp.zeros((2, 1, 1, 1), jnp.bfloat16)
  x = euler_sample(field, z, np.array([1.0, 0.5, 0.0], np.float32), jnp.array([1.0, -2.0]))
  assert seen["sigma_shape"] == (2,) and seen["sigma_dtype"] == jnp.float32
  assert x.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(x, np.float32).ravel(), [-1.0, 2.0])  # x - 1 * cond


def _label_field(calls):
  """Velocity that depends on an int label and a pytree of embeddings; counts its calls and batch sizes."""

  def field(x, sigma_b, cond):
    calls.append(x.shape[0])
    labels, emb = cond["label"], cond["emb"]
    scale_b = 1.0 + labels.astype(jnp.float32) + jnp.sum(emb["tokens"], axis=(1, 2)) + emb["pooled"][:, 0]
    return x * scale_b[:, None, None, None] + sigma_b[:, None, None, None]

  return field


def _cond(batch):
  rng = np.random.default_rng(6)
  return {
      "label": jnp.arange(batch, dtype=jnp.int32) + 2,
      "emb": {
          "tokens": jnp.asarray(rng.standard_normal((batch, 3, 4)), jnp.float32),
          "pooled": jnp.asarray(rng.standard_normal((batch, 2)), jnp.float32),
      },
  }


def test_cfg_reduces_to_conditional_and_unconditional_and_mixes_in_one_call():
  calls = []
  field = _label_field(calls)
  x, sigma_b = _noise(7, (3, 2, 2, 1)), jnp.array([0.9, 0.5, 0.2])
  cond = _cond(3)
  # A null label for every row, one null token block and a zero pooled vector, broadcast over B.
  null_cond = {"label": 0, "emb": {"tokens": jnp.zeros((3, 4)), "pooled": jnp.zeros((2,))}}
  null_full = {"label": jnp.zeros(3, jnp.int32), "emb": {"tokens": jnp.zeros((3, 3, 4)), "pooled": jnp.zeros((3, 2))}}
  v_c, v_u = field(x, sigma_b, cond), field(x, sigma_b, null_full)
  calls.clear()
  np.testing.assert_array_equal(classifier_free_guidance(field, 1.0, null_cond)(x, sigma_b, cond), v_c)
  np.testing.assert_array_equal(classifier_free_guidance(field, 0.0, null_cond)(x, sigma_b, cond), v_u)
  assert calls == [3, 3]
  calls.clear()
  guided = classifier_free_guidance(field, 4.0, null_cond)(x, sigma_b, cond)
  assert calls == [6]  # conditional and unconditional in one doubled batch
  np.testing.assert_allclose(guided, v_u + 4.0 * (v_c - v_u), rtol=1e-5, atol=1e-5)


def test_cfg_with_int_labels_inside_a_jitted_sampler():
  def field(x, sigma_b, labels):
    return gaussian_velocity(x, sigma_b) + labels.astype(jnp.float32)[:, None, None, None]

  z, labels = _noise(8, (2, 2, 2, 1)), jnp.array([3, 5])
  sigmas = jnp.asarray(sigma_schedule(6))
  guided = classifier_free_guidance(field, 2.5, 0)
  x = jax.jit(lambda z, s, c: euler_sample(guided, z, s, c))(z, sigmas, labels)
  # The field is affine in the label, so guidance acts as label * 2.5 (null label 0).
  want = euler_sample(lambda x, s, c: field(x, s, labels * 2.5), z, sigmas)
  np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "sigmas, match",
    [
        (np.zeros((2, 2)), "1-D"),
        (np.array([1.0]), "at least 2"),
        (np.array([0.5, 0.8, 0.0]), r"non-increasing.*sigmas\[0\]=0.5"),
        (np.array([1.2, 0.0]), r"\[0, 1\]"),
        (np.array([1.0, np.nan]), r"\[0, 1\]"),
    ],
)
@pytest.mark.parametrize("sampler", [euler_sample, heun_sample])
def test_bad_sigmas_raise(sampler, sigmas, match):
  with pytest.raises(ValueError, match=match):
    sampler(gaussian_velocity, _noise(9, (1, 1, 1, 1)), sigmas)


def test_bad_sampler_inputs_raise():
  sigmas = sigma_schedule(2)
  with pytest.raises(ValueError, match="velocity_fn must return"):
    jax.eval_shape(lambda z: euler_sample(lambda x, s, c: x[..., :1], z, sigmas), jnp.zeros((1, 2, 2, 3)))
  with pytest.raises(ValueError, match="velocity_fn must return"):
    jax.eval_shape(lambda z: heun_sample(lambda x, s, c: x[:, :1], z, sigmas), jnp.zeros((1, 2, 2, 3)))
  with pytest.raises(ValueError, match="leading batch axis"):
    euler_sample(gaussian_velocity, jnp.float32(0.0), sigmas)
  with pytest.raises(TypeError, match="floating-point"):
    euler_sample(gaussian_velocity, jnp.zeros((1, 1, 1, 1), jnp.int32), sigmas)


def test_bad_guidance_inputs_raise():
  field = _label_field([])
  x, sigma_b = jnp.zeros((3, 1, 1, 1)), jnp.ones((3,))
  with pytest.raises(ValueError, match="finite real"):
    classifier_free_guidance(field, float("nan"), 0)
  with pytest.raises(ValueError, match="null_cond"):
    classifier_free_guidance(field, 2.0, None)
  with pytest.raises(ValueError, match="needs a cond"):
    classifier_free_guidance(field, 2.0, 0)(x, sigma_b, None)
  with pytest.raises(ValueError, match="not a prefix"):
    classifier_free_guidance(field, 2.0, {"label": 0})(x, sigma_b, _cond(3))
  bad_null = {"label": 0, "emb": {"tokens": jnp.zeros((5,)), "pooled": 0.0}}
  with pytest.raises(ValueError, match="does not broadcast"):
    classifier_free_guidance(field, 2.0, bad_null)(x, sigma_b, _cond(3))
  with pytest.raises(ValueError, match="lead with B=3"):
    classifier_free_guidance(field, 2.0, 0)(x, sigma_b, jnp.arange(2))
