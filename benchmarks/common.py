"""Helpers shared by benchmark scripts: timing, error metrics, environment record, tables, JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxlab import files


def time_call(fn: Callable[..., Any], *args, warmup: int = 3, iters: int = 20) -> dict[str, float]:
  """Wall time of `fn(*args)` until its outputs are ready, after compile and warm-up.

  Returns median, min and max in milliseconds over `iters` runs (>= 1), plus the compile
  time of the first call.
  """
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_ms = (time.perf_counter() - start) * 1e3
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  samples = []
  for _ in range(max(1, iters)):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    samples.append((time.perf_counter() - start) * 1e3)
  return {
      "median_ms": statistics.median(samples),
      "min_ms": min(samples),
      "max_ms": max(samples),
      "iters": len(samples),
      "first_call_ms": compile_ms,
  }


def time_back_to_back(fn: Callable[..., Any], *args, calls: int = 50, repeats: int = 5) -> dict[str, float]:
  """Device time per call: `calls` calls dispatched back to back, waiting only on the last.

  The device runs calls in order, so the wait ends when all are done; host dispatch overlaps
  the device work, and what remains per call is the device's time (plus any host
  round trip the function forces). Single-call wall time (`time_call`) adds one dispatch and
  one synchronisation to every sample, which dominates for calls of tens of microseconds.
  Returns the median and min over `repeats` of total / calls, in milliseconds.
  """
  jax.block_until_ready(fn(*args))  # Compile and warm.
  per_call = []
  for _ in range(max(1, repeats)):
    start = time.perf_counter()
    out = None
    for _ in range(max(1, calls)):
      out = fn(*args)
    jax.block_until_ready(out)
    per_call.append((time.perf_counter() - start) * 1e3 / max(1, calls))
  return {"back_to_back_ms": statistics.median(per_call), "back_to_back_min_ms": min(per_call),
          "back_to_back_calls": max(1, calls)}


def max_relative_error(actual, expected) -> float:
  """max |actual - expected| / max |expected|, in float64 (0 when both are all zero)."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  scale = float(np.max(np.abs(expected))) if expected.size else 0.0
  diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
  return diff / scale if scale > 0 else diff


def environment() -> dict[str, Any]:
  """Device, software versions and time, for the JSON record."""
  device = jax.devices()[0]
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "jax": jax.__version__,
      "jaxlib": _jaxlib_version(),
      "python": platform.python_version(),
      "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
  }


def _jaxlib_version() -> str | None:
  try:
    import jaxlib

    return jaxlib.__version__
  except ImportError:
    return None


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
  """Plain-text table of `rows`; `columns` is (key, header) pairs. Floats get 4 significant digits."""

  def cell(value):
    if value is None:
      return "-"
    if isinstance(value, float):
      return f"{value:.4g}"
    return str(value)

  body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
  headers = [header for _, header in columns]
  widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
  lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
  lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
  return "\n".join(lines)


def write_json(path: str, payload: dict[str, Any]) -> None:
  """Writes `payload` as indented JSON, creating parent folders.

  The text is built before the file is touched and replaces it in one rename, so a payload
  that fails to serialize (or a crash) leaves an earlier result file as it was. NaN stays
  allowed: a benchmark's failed measurement is still worth recording.
  """
  text = json.dumps(payload, indent=2, default=str) + "\n"
  files.write_text(path, text, make_parents=True)
