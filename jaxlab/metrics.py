"""Training metrics out of the process: JSONL + TensorBoard writer, and a progress bar.

`MetricWriter` appends one JSON object per `write` to `<workdir>/metrics.jsonl` and mirrors
each scalar to TensorBoard event files under `<workdir>/tb`. The JSONL file is the record:
it is flushed on every write and opened in append mode, so a crash loses no written line
and a resumed run continues the same file. TensorBoard events are buffered by tensorboardX
and reach disk within `tb_flush_secs` or on `close()`.

`MetricWriter.write_images` adds image summaries (PNG in the TensorBoard events only, not in
the JSONL); `image_grid` tiles a batch of images into one picture for it.

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
  """Appends scalar metrics to `<workdir>/metrics.jsonl` and TensorBoard; images to TensorBoard."""

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

  def write_images(self, step: int, images: Mapping[str, np.ndarray | jax.Array]) -> None:
    """Writes image summaries to TensorBoard (the JSONL record holds scalars only).

    Args:
      step: training step (the x axis of TensorBoard's image slider).
      images: tag -> image [H, W, 3] (RGB) or [H, W] (grey), uint8 in [0, 255] or float
        in [0, 1] (clipped to that range, then rounded to uint8).

    Raises:
      ValueError: an image has another rank, channel count or dtype, is empty, or has a
        NaN or infinity; names the key. Nothing is written then.
    """
    if not self._enabled:
      return
    if self._tensorboard is None:
      raise ValueError("MetricWriter is closed; create a new one to write more.")
    host_images = jax.device_get(dict(images))
    pixels = {key: _as_image(key, value) for key, value in host_images.items()}
    for key, image in pixels.items():
      self._tensorboard.add_image(key, image, global_step=int(step), dataformats="HWC")

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


def image_grid(images_nhwc, *, columns: int | None = None, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
  """Tiles images row by row into one image, `pad` pixels apart (no border around).

  Args:
    images_nhwc: [N, H, W, C] or [N, H, W], float in [0, 1] or uint8.
    columns: tiles per row; None: ceil(sqrt(N)).
    pad: pixels between neighbouring tiles.
    pad_value: colour of the gaps and of empty cells, on the [0, 1] scale (uint8: x 255).

  Returns:
    [rows * (H + pad) - pad, columns * (W + pad) - pad, (C)], uint8 for uint8 images,
    else float32.
  """
  images = np.asarray(images_nhwc)
  if images.ndim not in (3, 4) or images.shape[0] == 0:
    raise ValueError(f"image_grid needs a non-empty batch [N, H, W] or [N, H, W, C], got shape {images.shape}")
  if images.dtype != np.uint8:
    images = images.astype(np.float32)
  n, h, w = images.shape[:3]
  columns = math.ceil(math.sqrt(n)) if columns is None else columns
  if columns < 1 or pad < 0:
    raise ValueError(f"image_grid needs columns >= 1 and pad >= 0, got columns={columns}, pad={pad}")
  columns = min(columns, n)
  rows = -(-n // columns)
  fill = round(pad_value * 255) if images.dtype == np.uint8 else pad_value
  grid = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, *images.shape[3:]), fill, images.dtype)
  for i, image in enumerate(images):
    r, c = divmod(i, columns)
    grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
  return grid


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


def _as_image(key: str, value: Any) -> np.ndarray:
  """uint8 [H, W, 3] from an RGB or grey image (see `MetricWriter.write_images`)."""
  array = np.asarray(value)
  if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
    raise ValueError(f"image {key!r} must be [H, W, 3] or [H, W], got shape {array.shape}.")
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise ValueError(f"image {key!r} is empty (shape {array.shape}).")
  if array.dtype != np.uint8:
    if not jax.dtypes.issubdtype(array.dtype, np.floating):
      raise ValueError(f"image {key!r} must be uint8 or float in [0, 1], got dtype {array.dtype}.")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
      raise ValueError(f"image {key!r} has NaN or infinite values.")
    # Rounded, not truncated as tensorboardX does, so uint8 -> float -> uint8 is exact.
    array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
  if array.ndim == 2:
    array = np.repeat(array[..., None], 3, axis=-1)
  return np.ascontiguousarray(array)


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
