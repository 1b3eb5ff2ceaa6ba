"""Training metrics out of the process: JSONL + TensorBoard writer, and a progress bar.

`MetricWriter` appends one JSON object per `write` to `<workdir>/metrics.jsonl` and mirrors
each scalar to TensorBoard event files under `<workdir>/tb`. The JSONL file is the record:
it is flushed on every write and opened in append mode, so a crash loses no written line
and a resumed run continues the same file. TensorBoard events are buffered by tensorboardX
and reach disk within `tb_flush_secs` or on `close()`.

JSON has no NaN or infinity, so non-finite values are stored as the strings "nan", "inf"
and "-inf"; `read_metrics` turns them back into floats.

Both classes write only on process 0 by default; elsewhere every method is a no-op.
"""

from collections.abc import Callable, Mapping
import json
import logging
import math
import os
import pathlib
import sys
import time
from typing import Any, IO

import jax
import numpy as np
import tensorboardX
import tqdm

METRICS_FILENAME = "metrics.jsonl"
TENSORBOARD_DIRNAME = "tb"
_RESERVED_KEYS = ("step", "time")
_NON_FINITE_FROM_JSON = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class MetricWriter:
  """Appends scalar metrics to `<workdir>/metrics.jsonl` and TensorBoard."""

  def __init__(
      self,
      workdir: str | os.PathLike,
      *,
      enabled: bool | None = None,
      tb_flush_secs: int = 30,
  ):
    """Opens the writers; creates `workdir` if needed. Nothing is created when disabled.

    Args:
      workdir: run directory.
      enabled: None writes on process 0 only.
      tb_flush_secs: how often tensorboardX flushes its buffered events.
    """
    self._enabled = jax.process_index() == 0 if enabled is None else bool(enabled)
    self._jsonl: IO[str] | None = None
    self._tensorboard: tensorboardX.SummaryWriter | None = None
    if not self._enabled:
      return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    self._jsonl = open(workdir / METRICS_FILENAME, "a", encoding="utf-8")
    self._tensorboard = tensorboardX.SummaryWriter(
        logdir=str(workdir / TENSORBOARD_DIRNAME), flush_secs=tb_flush_secs
    )

  @property
  def enabled(self) -> bool:
    return self._enabled

  def write(self, step: int, metrics: Mapping[str, float | np.ndarray | jax.Array]) -> None:
    """Writes one record: `{"step", "time", **metrics}`.

    Args:
      step: training step (the x axis in TensorBoard).
      metrics: name -> scalar (Python number, numpy/jax scalar or 0-d array).
        Namespaced names such as "loss/train" or "perf/step_s" are kept as they are.

    Raises:
      ValueError: a value is not a real scalar, or a key is "step"/"time"; names the key.
    """
    if not self._enabled:
      return
    if self._jsonl is None:
      raise ValueError("MetricWriter is closed; create a new one to write more.")
    # One host transfer for all device values, then validate everything before writing.
    host_metrics = jax.device_get(dict(metrics))
    scalars = {key: _as_scalar(key, value) for key, value in host_metrics.items()}
    record = {"step": int(step), "time": time.time()}
    record.update({key: _to_json(value) for key, value in scalars.items()})
    self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
    self._jsonl.flush()
    for key, value in scalars.items():
      self._tensorboard.add_scalar(key, value, global_step=int(step))

  def flush(self) -> None:
    if self._jsonl is not None:
      self._jsonl.flush()
      self._tensorboard.flush()

  def close(self) -> None:
    """Flushes and closes both outputs; idempotent."""
    if self._jsonl is None:
      return
    self._jsonl.close()
    self._tensorboard.close()
    self._jsonl = None
    self._tensorboard = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Loads a metrics.jsonl (file or the workdir holding it); "nan"/"inf"/"-inf" -> floats."""
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / METRICS_FILENAME
  records = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        record = json.loads(line)
        records.append({key: _from_json(value) for key, value in record.items()})
  return records


class ProgressBar:
  """A tqdm bar in steps: shows steps/s and ETA; off unless stderr is a terminal."""

  def __init__(
      self,
      total: int,
      *,
      initial: int = 0,
      enabled: bool | None = None,
      desc: str = "train",
      file: IO[str] | None = None,
  ):
    """Creates the bar.

    Args:
      total: step count at which training ends.
      initial: step to start from (a resumed run).
      enabled: None shows the bar on process 0 when its stream is a terminal.
      desc: label in front of the bar.
      file: stream to draw on; defaults to sys.stderr.
    """
    stream = sys.stderr if file is None else file
    if enabled is None:
      enabled = jax.process_index() == 0 and _is_terminal(stream)
    self._bar = None
    if enabled:
      self._bar = tqdm.tqdm(
          total=total,
          initial=initial,
          desc=desc,
          unit="step",
          file=stream,
          dynamic_ncols=True,
      )

  @property
  def enabled(self) -> bool:
    return self._bar is not None

  def update(self, n: int = 1, **postfix_scalars: float) -> None:
    """Advances by n steps; keyword scalars (e.g. loss=...) are shown after the bar."""
    if self._bar is None:
      return
    if postfix_scalars:
      shown = {key: f"{float(value):.4g}" for key, value in postfix_scalars.items()}
      self._bar.set_postfix(shown, refresh=False)
    self._bar.update(n)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> "ProgressBar":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class ProgressLog:
  """One log line per report when no progress bar is drawn (output to a file, Slurm, CI).

  Each line gives the step, the loss and any PSNR or accuracy metrics, the step rate since
  the previous line and the time left at that rate:

    step 100/300 (33%) | loss 0.0412 | psnr 24.31 | 2.15 steps/s | ETA 1m33s
  """

  SHOWN = ("loss", "psnr", "accuracy", "acc")

  def __init__(self, total: int, *, initial: int = 0, enabled: bool = True,
               logger: logging.Logger | None = None, clock: Callable[[], float] = time.perf_counter):
    self._total = total
    self._enabled = enabled and jax.process_index() == 0
    self._log = logger or logging.getLogger("jaxlab.train")
    self._clock = clock
    self._last = (initial, None)  # (step, time) of the previous report; time None until a step ran

  @property
  def enabled(self) -> bool:
    return self._enabled

  def start(self) -> None:
    """Marks the time the first measured step begins (after compilation, if the caller waits)."""
    self._last = (self._last[0], self._clock())

  def report(self, step: int, metrics: Mapping[str, float], *, steps_per_sec: float | None = None) -> str | None:
    """Logs (at INFO) and returns the line for `step`; None when disabled."""
    if not self._enabled:
      return None
    now = self._clock()
    last_step, last_time = self._last
    if steps_per_sec is None and last_time is not None and now > last_time and step > last_step:
      steps_per_sec = (step - last_step) / (now - last_time)
    self._last = (step, now)
    line = format_progress(step, self._total, metrics, steps_per_sec)
    self._log.info("%s", line)
    return line


def format_progress(step: int, total: int, metrics: Mapping[str, float], steps_per_sec: float | None) -> str:
  parts = [f"step {step}/{total} ({100 * step / max(total, 1):.0f}%)"]
  for key, value in metrics.items():
    short = key.rsplit("/", 1)[-1]
    if any(short == name or short.endswith("_" + name) or short.startswith(name + "_") for name in ProgressLog.SHOWN):
      prefix = "eval " if key.startswith("eval/") else ""
      parts.append(f"{prefix}{short} {float(value):.4g}")
  if steps_per_sec:
    parts.append(f"{steps_per_sec:.3g} steps/s")
    parts.append(f"ETA {_duration(max(total - step, 0) / steps_per_sec)}")
  return " | ".join(parts)


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m"
  return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _as_scalar(key: str, value: Any) -> int | float:
  if key in _RESERVED_KEYS:
    raise ValueError(f"metric key {key!r} is reserved for the record's own fields {_RESERVED_KEYS}.")
  array = np.asarray(value)
  if array.ndim != 0:
    raise ValueError(f"metric {key!r} must be a scalar, got an array of shape {array.shape}.")
  kind = array.dtype.kind
  if kind in "biu":
    return int(array)
  if kind == "f":
    return float(array)
  raise ValueError(
      f"metric {key!r} must be a real number (bool, int or float), got dtype {array.dtype}."
  )


def _to_json(value: int | float) -> int | float | str:
  if isinstance(value, float) and not math.isfinite(value):
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
  return value


def _from_json(value: Any) -> Any:
  if isinstance(value, str) and value in _NON_FINITE_FROM_JSON:
    return _NON_FINITE_FROM_JSON[value]
  return value


def _is_terminal(stream: IO[str]) -> bool:
  isatty = getattr(stream, "isatty", None)
  return bool(isatty and isatty())
