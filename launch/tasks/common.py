"""Pieces every task builds the same way from a config."""

import json
import logging
import pathlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
import optax
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.checkpoint import Checkpointer
from jaxlab.metrics import MetricWriter
from jaxlab.train import LoopResult, LoopSettings, TrainState, train_loop
from launch.config_loader import ConfigError, flatten, format_override_value

log = logging.getLogger(__name__)
CONFIG_FILE = "config.json"


class CheckpointConfigMismatch(ConfigError):
  """The workdir's checkpoint was saved with parameter shapes this config does not build."""


def _config_as_json(config: ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def record_config(config: ConfigDict, workdir: pathlib.Path) -> None:
  """Writes `config.json` (process 0); an earlier, different one is kept as `config.<time>.json`."""
  if jax.process_index() != 0:
    return
  path = workdir / CONFIG_FILE
  text = json.dumps(_config_as_json(config), indent=2, sort_keys=True) + "\n"
  if path.is_file():
    previous = path.read_text()
    if previous == text:
      return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    kept = workdir / f"config.{stamp}.json"
    if not kept.exists():
      files.write_text(kept, previous, overwrite=False)
      log.info("The run's config changed; the previous one is kept as %s.", kept)
  files.write_text(path, text)


def _saved_config(workdir: pathlib.Path) -> dict[str, Any]:
  try:
    return flatten(json.loads((workdir / CONFIG_FILE).read_text()))
  except (OSError, ValueError):
    return {}


def check_checkpoint_fits(checkpointer: Checkpointer, state: Any, config: ConfigDict, workdir: pathlib.Path) -> None:
  """Raises CheckpointConfigMismatch, before anything is written, when the newest checkpoint's
  parameter shapes differ from `state`'s; the message names the leaves and config keys."""
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), state)
  found = checkpointer.shape_mismatches(abstract)
  if found is None or not found[1]:
    return
  step, mismatches = found
  shown = "; ".join(f"{m.path}: saved {m.saved or 'absent'}, now {m.expected or 'absent'}" for m in mismatches[:3])
  more = f" and {len(mismatches) - 3} more" if len(mismatches) > 3 else ""
  saved, now = _saved_config(workdir), flatten(_config_as_json(config))
  changed = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
  keys = ", ".join(f"{k} {saved.get(k, 'absent')!r} -> {now.get(k, 'absent')!r}" for k in changed[:6])
  hint = (f" This config differs from {workdir / CONFIG_FILE} in: {keys}{' and more' if len(changed) > 6 else ''}."
          if changed else "")
  restore = " ".join(f"--config.{k}={format_override_value(saved[k])}" for k in changed[:6] if k in saved and k in now)
  raise CheckpointConfigMismatch(
      f"{checkpointer.directory / str(step)} holds parameters of other shapes than this config builds ({shown}{more})."
      f"{hint} Nothing in {workdir} was changed. Resume with the checkpoint's settings{f' ({restore})' if restore else ''},"
      " or start this config in another --workdir.")


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
    images: Callable | None = None,
) -> LoopResult:
  """`train_loop` with the checkpointer, metric writer and loop settings that `config` names.

  `evaluate` and `images` are `train_loop`'s: `params -> metrics` and `params -> {name: image}`,
  both run every `train.eval_every` steps and at the end (images go to TensorBoard as "eval/<name>").

  Before anything is written, a checkpoint whose parameter shapes this config cannot restore
  is refused (CheckpointConfigMismatch); then `config.json` is recorded. The checkpointer is
  closed (pending async saves finished) however the loop ends.
  """
  checkpointer = checkpointer_from_config(config.checkpoint, workdir)
  try:
    check_checkpoint_fits(checkpointer, state, config, workdir)
    record_config(config, workdir)
    with MetricWriter(workdir) as writer:
      return train_loop(
          state, train_step=train_step, batches=iter(batches), to_device=to_device, rng=rng,
          settings=loop_settings_from_config(config.train), checkpointer=checkpointer, writer=writer,
          evaluate=evaluate, images=images, stop_requested=stop_requested,
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
