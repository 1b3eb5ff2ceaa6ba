"""The training loop: steps, periodic metrics and evaluation, checkpoints, clean stops.

Everything the loop touches is passed in; it holds no global state. The caller (`launch/`)
turns a config into these arguments.
"""

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxlab.checkpoint import Checkpointer
from jaxlab.metrics import MetricWriter, ProgressBar, ProgressLog
from jaxlab.train.state import TrainState

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """Too many consecutive steps had a non-finite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  num_steps: int
  log_every: int = 10
  eval_every: int = 0  # 0: evaluate only at the end
  max_nonfinite_streak: int = 5


@dataclasses.dataclass(frozen=True)
class LoopResult:
  state: TrainState
  status: str  # "completed" | "preempted"
  start_step: int  # where this invocation began (0, or the restored step)
  final_step: int
  last_train_metrics: dict[str, float]
  last_eval_metrics: dict[str, float]


def _mean_metrics(window: list[dict[str, jax.Array]]) -> dict[str, float]:
  host = jax.device_get(window)
  return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def _any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def train_loop(
    state: TrainState,
    *,
    train_step: Callable[[TrainState, Any, jax.Array], tuple[TrainState, dict[str, jax.Array]]],
    batches: Iterator[Any],
    to_device: Callable[[Any], Any],
    rng: jax.Array,
    settings: LoopSettings,
    checkpointer: Checkpointer,
    writer: MetricWriter,
    evaluate: Callable[[Any], dict[str, jax.Array]] | None = None,
    images: Callable[[Any], Mapping[str, np.ndarray]] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: bool | None = None,
) -> LoopResult:
  """Trains from `state` (or the newest usable checkpoint) until `settings.num_steps`.

  Args:
    state: freshly initialised state; its shapes and shardings are the restore target.
    train_step: jitted `(state, batch, rng) -> (state, metrics)`; may donate `state`.
    batches: host-side batch iterator with `get_state()`/`set_state()` (grain).
    to_device: host batch -> global device batch.
    rng: the run's base key (the step folds in the step number).
    settings: step counts and intervals.
    checkpointer: where state and data position are saved and restored from.
    writer: metric sink (JSONL + TensorBoard).
    evaluate: optional `params -> metrics`, run every `eval_every` steps and at the end;
      written as "eval/<name>" scalars.
    images: optional `params -> {name: image [H, W, 3] or [H, W], uint8 or float in [0, 1]}`,
      run with `evaluate` (every `eval_every` steps and at the end, on every process);
      written as "eval/<name>" TensorBoard images by `writer.write_images`.
    stop_requested: polled every step (e.g. set by SIGTERM); when true on any process, a
      checkpoint is saved and the loop returns with status "preempted".
    progress: show a progress bar (None: when stderr is a terminal, else a log line every
      `log_every` steps with loss, PSNR or accuracy, steps/s and ETA; False: neither).
  """
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)

  def accept(restored_state, data_state):
    del restored_state
    if data_state and hasattr(batches, "set_state"):
      batches.set_state(data_state)  # raises on a position the iterator cannot take: the step is damaged

  restored = checkpointer.restore_latest(abstract, accept=accept)
  if restored is not None:
    state = restored.state
    log.warning("Resumed from checkpoint step %d (%s).", restored.step, restored.path)
  start_step = int(jax.device_get(state.step))
  data_state = lambda: batches.get_state() if hasattr(batches, "get_state") else None

  window: list[dict[str, jax.Array]] = []
  pending: dict[str, jax.Array] | None = None  # previous step's metrics, read one step late
  train_metrics: dict[str, float] = {}
  eval_metrics: dict[str, float] = {}
  status = "completed"
  step = start_step
  window_start = None

  def run_eval(at_step: int):
    nonlocal eval_metrics
    if images is not None:
      writer.write_images(at_step, {f"eval/{k}": v for k, v in images(state.params).items()})
    if evaluate is None:
      return
    eval_metrics = {f"eval/{k}": float(v) for k, v in jax.device_get(evaluate(state.params)).items()}
    writer.write(at_step, eval_metrics)
    if lines.enabled:
      log.info("evaluation at step %d: %s", at_step, ", ".join(f"{k[5:]} {v:.4g}" for k, v in eval_metrics.items()))

  bar = ProgressBar(settings.num_steps, initial=start_step, enabled=progress)
  # Without a bar (output to a file, under Slurm), one log line every log_every steps.
  lines = ProgressLog(settings.num_steps, initial=start_step, enabled=not bar.enabled and progress is not False)
  try:
    while step < settings.num_steps:
      batch = to_device(next(batches))
      state, metrics = train_step(state, batch, rng)
      step += 1
      if pending is not None:
        streak = int(jax.device_get(pending["nonfinite_streak"]))
        if streak >= settings.max_nonfinite_streak:
          raise NonFiniteLossError(
              f"the loss or gradients were non-finite for {streak} steps in a row (up to step {step - 1}); "
              "parameters were left unchanged by those steps. Lower the learning rate or check the data."
          )
      pending = metrics
      window.append({k: v for k, v in metrics.items() if k != "nonfinite_streak"})
      if window_start is None:
        window_start = time.perf_counter()  # excludes the first step's compilation
        window_first_step = step
      checkpointer.save(step, state, data_state())

      if step % settings.log_every == 0 or step == settings.num_steps:
        train_metrics = {f"train/{k}": v for k, v in _mean_metrics(window).items()}
        elapsed = time.perf_counter() - window_start
        if step > window_first_step:
          train_metrics["perf/steps_per_sec"] = (step - window_first_step) / elapsed
        train_metrics["train/nonfinite_steps_total"] = float(jax.device_get(state.nonfinite_steps))
        writer.write(step, train_metrics)
        bar.update(len(window), loss=train_metrics["train/loss"])
        lines.report(step, train_metrics, steps_per_sec=train_metrics.get("perf/steps_per_sec"))
        window, window_start = [], time.perf_counter()
        window_first_step = step
      if settings.eval_every and step % settings.eval_every == 0 and step != settings.num_steps:
        run_eval(step)
      if _any_process(stop_requested()):
        log.warning("Stop requested at step %d: saving a checkpoint and exiting.", step)
        checkpointer.save(step, state, data_state(), force=True)
        status = "preempted"
        break
    if pending is not None and int(jax.device_get(pending["nonfinite_streak"])) >= settings.max_nonfinite_streak:
      raise NonFiniteLossError(f"the loss or gradients were non-finite for the last {settings.max_nonfinite_streak}+ steps (up to step {step}).")
    if status == "completed":
      if window:
        bar.update(len(window))
      checkpointer.save(step, state, data_state(), force=True)
      run_eval(step)
  finally:
    bar.close()
    checkpointer.wait()
  return LoopResult(state=state, status=status, start_step=start_step, final_step=step, last_train_metrics=train_metrics, last_eval_metrics=eval_metrics)
