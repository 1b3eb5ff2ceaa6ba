"""The training state pytree."""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes; a plain pytree (checkpointed as a whole).

  Attributes:
    step: number of steps taken, skipped ones included (int32 scalar).
    params: model parameters.
    opt_state: optimizer state.
    nonfinite_steps: total steps skipped because the loss or a gradient was not finite.
    nonfinite_streak: such steps in a row, up to now (0 after any good step).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  nonfinite_steps: jax.Array
  nonfinite_streak: jax.Array

  @classmethod
  def create(cls, params: Any, optimizer: optax.GradientTransformation) -> "TrainState":
    # Three distinct buffers: a donated state must not hold one buffer twice.
    zero = lambda: jnp.zeros((), jnp.int32)
    return cls(step=zero(), params=params, opt_state=optimizer.init(params), nonfinite_steps=zero(), nonfinite_streak=zero())
