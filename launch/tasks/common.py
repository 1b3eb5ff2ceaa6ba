"""Pieces every task builds the same way from a config."""

import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
import optax
from ml_collections import ConfigDict

from jaxlab.checkpoint import Checkpointer
from jaxlab.metrics import MetricWriter
from jaxlab.train import LoopResult, LoopSettings, TrainState, train_loop


def optimizer_from_config(c: ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """AdamW on a linear-warmup cosine schedule, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=c.learning_rate,
      warmup_steps=c.warmup_steps,
      decay_steps=max(num_steps, c.warmup_steps + 1),
      end_value=c.learning_rate * c.final_lr_fraction,
  )
  return optax.chain(
      optax.clip_by_global_norm(c.grad_clip_norm),
      optax.adamw(schedule, b1=c.b1, b2=c.b2, weight_decay=c.weight_decay),
  )


def loop_settings_from_config(c: ConfigDict) -> LoopSettings:
  return LoopSettings(num_steps=c.num_steps, log_every=c.log_every, eval_every=c.eval_every, max_nonfinite_streak=c.max_nonfinite_streak)


def checkpointer_from_config(c: ConfigDict, workdir: pathlib.Path) -> Checkpointer:
  return Checkpointer(workdir / "checkpoints", save_every=c.save_every, keep=c.keep, async_save=c.async_save)


def run_train_loop(
    state: TrainState,
    config: ConfigDict,
    workdir: pathlib.Path,
    *,
    train_step: Callable,
    batches: Iterable,
    to_device: Callable[[Any], Any],
    rng: jax.Array,
    evaluate: Callable | None,
    stop_requested: Callable[[], bool],
) -> LoopResult:
  """`train_loop` with the checkpointer, metric writer and loop settings that `config` names.

  The checkpointer is closed (pending async saves finished) however the loop ends.
  """
  checkpointer = checkpointer_from_config(config.checkpoint, workdir)
  with MetricWriter(workdir) as writer:
    try:
      return train_loop(
          state, train_step=train_step, batches=iter(batches), to_device=to_device, rng=rng,
          settings=loop_settings_from_config(config.train), checkpointer=checkpointer, writer=writer,
          evaluate=evaluate, stop_requested=stop_requested,
      )
    finally:
      checkpointer.close()


def stack_examples(examples: list[dict]) -> dict:
  """A batch from a list of same-shaped example dicts (leading batch axis)."""
  return jax.tree.map(lambda *xs: np.stack(xs), *examples)


def process_share(n: int) -> range:
  """This process's contiguous share of n evaluation examples (the global batch is assembled
  from every process's share by `jaxlab.data.make_global_batch`)."""
  per_process = n // jax.process_count()
  start = jax.process_index() * per_process
  return range(start, start + per_process)
