"""The pure train step: updates, non-finite skipping, counters, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.train import TrainState, make_train_step, train_step_fn


def _loss_fn(params, batch, rng):
  noise = 0.0 * jax.random.normal(rng, ())  # uses the rng so tracing with it is exercised
  pred = batch["x"] @ params["w"] + params["b"]
  loss = jnp.mean((pred - batch["y"]) ** 2) + noise
  return loss, {"mse": loss}


def _setup():
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}
  optimizer = optax.adam(1e-2)
  return TrainState.create(params, optimizer), optimizer


def _batch(scale=1.0):
  x = jnp.arange(12.0).reshape(4, 3) / 10 * scale
  return {"x": x, "y": jnp.ones((4, 2))}


def test_finite_step_updates_params_and_counts():
  state, optimizer = _setup()
  step = make_train_step(_loss_fn, optimizer, donate=False)
  new_state, metrics = step(state, _batch(), jax.random.key(0))
  assert int(new_state.step) == 1
  assert int(new_state.nonfinite_steps) == 0
  assert not np.allclose(new_state.params["w"], state.params["w"])
  assert float(metrics["loss"]) > 0 and float(metrics["grad_norm"]) > 0


def test_nonfinite_step_keeps_params_and_optimizer_state():
  state, optimizer = _setup()
  step = make_train_step(_loss_fn, optimizer, donate=False)
  state, _ = step(state, _batch(), jax.random.key(0))  # one good step so opt_state is non-trivial
  bad_state, metrics = step(state, _batch(scale=jnp.nan), jax.random.key(0))
  assert int(metrics["nonfinite"]) == 1
  assert int(bad_state.step) == 2
  assert int(bad_state.nonfinite_steps) == 1 and int(bad_state.nonfinite_streak) == 1
  for new, old in zip(jax.tree.leaves((bad_state.params, bad_state.opt_state)), jax.tree.leaves((state.params, state.opt_state))):
    np.testing.assert_array_equal(new, old)
  again, _ = step(bad_state, _batch(scale=jnp.inf), jax.random.key(0))
  assert int(again.nonfinite_streak) == 2
  good, _ = step(again, _batch(), jax.random.key(0))
  assert int(good.nonfinite_streak) == 0 and int(good.nonfinite_steps) == 2
  assert not np.allclose(good.params["w"], state.params["w"])


def test_infinite_gradient_with_finite_loss_is_skipped():
  state, optimizer = _setup()

  def loss_with_bad_grad(params, batch, rng):
    loss, aux = _loss_fn(params, batch, rng)
    return loss + 0.0 * jnp.sqrt(params["b"][0] - params["b"][0]), aux  # d/db sqrt(0) = inf, value 0

  step = make_train_step(loss_with_bad_grad, optimizer, donate=False)
  new_state, metrics = step(state, _batch(), jax.random.key(0))
  assert np.isfinite(float(metrics["loss"]))
  assert int(new_state.nonfinite_steps) == 1
  np.testing.assert_array_equal(new_state.params["w"], state.params["w"])


def test_step_rng_depends_on_step_number():
  seen = []

  def loss_fn(params, batch, rng):
    seen.append(rng)
    return jnp.sum(params["w"]) * 0.0 + jax.random.uniform(rng), {}

  state, optimizer = _setup()
  step = train_step_fn(loss_fn, optimizer)
  _, m0 = step(state, _batch(), jax.random.key(1))
  _, m1 = step(state.replace(step=state.step + 1), _batch(), jax.random.key(1))
  assert float(m0["loss"]) != float(m1["loss"])
  _, m0_again = step(state, _batch(), jax.random.key(1))
  assert float(m0["loss"]) == float(m0_again["loss"])
