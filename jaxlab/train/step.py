"""Builds a pure, jitted train step from a loss function and an optax optimizer."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxlab.train.state import TrainState

# loss_fn(params, batch, rng) -> (scalar loss, dict of scalar metrics)
LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def train_step_fn(loss_fn: LossFn, optimizer: optax.GradientTransformation) -> Callable[[TrainState, Any, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
  """The un-jitted step: (state, batch, rng) -> (new state, metrics).

  The step's randomness is `fold_in(rng, state.step)`, so a resumed run draws the same
  numbers as an uninterrupted one. A step whose loss or any gradient is not finite leaves
  params and optimizer state untouched and only advances the counters.
  """

  def step(state: TrainState, batch: Any, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, step_rng)
    updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & _all_finite(grads)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    bad = jnp.logical_not(finite).astype(jnp.int32)
    streak = (state.nonfinite_streak + 1) * bad
    new_state = TrainState(
        step=state.step + 1,
        params=keep(new_params, state.params),
        opt_state=keep(new_opt_state, state.opt_state),
        nonfinite_steps=state.nonfinite_steps + bad,
        nonfinite_streak=streak,
    )
    # The streak is also a metric: the loop reads it one step late, after `state` was donated.
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), nonfinite=bad, nonfinite_streak=streak)
    return new_state, metrics

  return step


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *, state_shardings: Any = None, batch_shardings: Any = None, donate: bool = True):
  """Jits `train_step_fn` with the given shardings, donating the old state's buffers.

  Args:
    loss_fn: `(params, batch, rng) -> (loss, metrics)`.
    optimizer: an optax transformation.
    state_shardings: a `TrainState`-shaped tree of shardings (or None to let jit infer).
    batch_shardings: shardings of the batch (a tree, a single sharding, or None).
    donate: donate the incoming state (its buffers are reused for the new state).
  """
  step = train_step_fn(loss_fn, optimizer)
  in_shardings = None
  out_shardings = None
  if state_shardings is not None:
    in_shardings = (state_shardings, batch_shardings, None)
    out_shardings = (state_shardings, None)
  return jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=(0,) if donate else ())
