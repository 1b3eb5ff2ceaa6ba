"""Per-parameter learning rates of 3DGS: one Adam step with a known gradient moves each
field by its own rate; the position rate decays log-linearly; moment rows reset."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.splat import random_gaussians
from jaxlab.splat.fit import (
    TRAINABLE_FIELDS,
    FitSettings,
    make_optimizer,
    position_lr_at_iteration,
    trainable_params,
    with_trainable,
    zero_moment_rows,
)

EXTENT = 3.0
# 3DGS defaults, written out independently of FitSettings.
EXPECTED_RATES = {
    "log_scales": 5e-3,
    "quats": 1e-3,
    "opacity_logits": 0.025,
    "sh_dc": 2.5e-3,
    "sh_rest": 2.5e-3 / 20,
}


def _position_rate(iteration):
  t = min(iteration / 30000, 1.0)
  return EXTENT * 1.6e-4 * (1.6e-6 / 1.6e-4) ** t


@pytest.fixture(scope="module")
def params():
  return trainable_params(random_gaussians(jax.random.key(0), 5, sh_degree=2))


@pytest.fixture(scope="module")
def optimizer():
  """(optimizer, jitted update): eager optax would compile each small op on its own."""
  optimizer = make_optimizer(FitSettings(), EXTENT)
  return optimizer, jax.jit(optimizer.update)


def test_trainable_split_round_trips():
  g = random_gaussians(jax.random.key(0), 5, sh_degree=2)
  p = jax.jit(trainable_params)(g)
  assert set(p) == set(TRAINABLE_FIELDS)
  assert p["sh_dc"].shape == (5, 1, 3) and p["sh_rest"].shape == (5, 8, 3)
  back = jax.jit(with_trainable)(g, p)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(g)):
    np.testing.assert_array_equal(a, b)


def test_one_step_moves_each_field_by_its_rate(params, optimizer):
  optimizer, update = optimizer
  state = optimizer.init(params)
  # With a constant gradient g, every Adam step is -lr * g / (|g| + eps) = -lr exactly
  # (bias correction makes m = g and v = g^2 from the first step on; eps = 1e-15),
  # up to float32 rounding of the bias corrections.
  grads = jax.tree.map(lambda x: jnp.full_like(x, 0.37), params)
  current = params
  for iteration in (1, 2, 3):
    updates, state = update(grads, state, current)
    for name in TRAINABLE_FIELDS:
      want = _position_rate(iteration) if name == "means" else EXPECTED_RATES[name]
      np.testing.assert_allclose(-np.asarray(updates[name]), want, rtol=5e-5, err_msg=f"{name} step {iteration}")
    current = optax.apply_updates(current, updates)


def test_position_rate_schedule_endpoints():
  settings = FitSettings()
  for iteration in (0, 1, 7500, 15000, 30000, 60000):
    got = float(position_lr_at_iteration(iteration, settings, EXTENT))
    assert got == pytest.approx(_position_rate(iteration), rel=1e-5), iteration
  assert float(position_lr_at_iteration(30000, settings, EXTENT)) == pytest.approx(EXTENT * 1.6e-6, rel=1e-5)
  with pytest.raises(ValueError, match="scene_extent"):
    make_optimizer(settings, 0.0)


def test_zero_moment_rows_by_row_and_field(params, optimizer):
  optimizer, update = optimizer
  state = optimizer.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  _, state = update(grads, state, params)
  rows = jnp.asarray([False, True, False, True, False])

  def moments(s, name):
    adam = s.inner_states[name].inner_state[0]
    return np.asarray(adam.mu[name]), np.asarray(adam.nu[name])

  all_fields = zero_moment_rows(state, rows)
  only_opacity = zero_moment_rows(state, rows, fields=("opacity_logits",))
  for name in TRAINABLE_FIELDS:
    before_mu, before_nu = moments(state, name)
    assert np.all(before_mu != 0) and np.all(before_nu != 0)
    for edited, touched in ((all_fields, True), (only_opacity, name == "opacity_logits")):
      mu, nu = moments(edited, name)
      for got, before in ((mu, before_mu), (nu, before_nu)):
        np.testing.assert_array_equal(got[~np.asarray(rows)], before[~np.asarray(rows)])
        np.testing.assert_array_equal(got[np.asarray(rows)], 0 if touched else before[np.asarray(rows)])
  # Step counts are left alone.
  counts = lambda s: [s.inner_states[n].inner_state[0].count for n in TRAINABLE_FIELDS]
  assert counts(all_fields) == counts(state)


def test_settings_reject_bad_values():
  with pytest.raises(ValueError, match="densify_every"):
    FitSettings(densify_every=0)
  with pytest.raises(ValueError, match="lambda_dssim"):
    FitSettings(lambda_dssim=1.5)
  with pytest.raises(ValueError, match="on_overflow"):
    FitSettings(on_overflow="sometimes")
  with pytest.raises(ValueError, match="max_sh_degree"):
    FitSettings(max_sh_degree=4)
  assert math.isclose(FitSettings().sh_rest_lr, 1.25e-4)
