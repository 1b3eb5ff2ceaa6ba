"""Pieces every task builds the same way from a config."""

import pathlib

import optax
from ml_collections import ConfigDict

from jaxlab.checkpoint import Checkpointer
from jaxlab.train import LoopSettings


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
