"""Settings checked when the run starts, before any data is read or any array is built.

`check_config` refuses what cannot work, naming the key and a value that would:

- counts that cannot be negative (steps, intervals, sizes, batches) and intervals that
  must be at least 1 (`log_every`, `save_every`, `keep`, batch sizes);
- dtype names that jax does not know as a floating dtype;
- a mesh whose sizes do not fit the devices the run has;
- whatever the task itself checks (its `check_config(config, mesh_sizes)`), such as a
  batch that does not divide over the devices that split it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ml_collections import ConfigDict

from jaxlab.sharding import logical_rules, mesh_shape
from launch.config_loader import ConfigError, flatten

# A key's last part: counts of things, which are never negative.
_COUNT = re.compile(r"(^|_)(steps?|every|num|size|batch|count|capacity|keep|len|threads|frames|renders|points|train|test)(_|$)")
# Keys (by last part) that must be at least 1.
_POSITIVE = ("log_every", "save_every", "keep", "global_batch_size", "batch_size", "views_per_device")
FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def check_counts(flat: Mapping[str, Any]) -> None:
  for key, value in flat.items():
    name = key.rsplit(".", 1)[-1]
    if key.startswith("mesh.") or not _is_int(value):
      continue
    if name in _POSITIVE and value < 1:
      raise ConfigError(f"{key}={value} must be at least 1 (e.g. --config.{key}=1)")
    if _COUNT.search(name) and value < 0:
      raise ConfigError(f"{key}={value} is a count and cannot be negative (e.g. --config.{key}=0)")


def check_dtypes(flat: Mapping[str, Any]) -> None:
  for key, value in flat.items():
    name = key.rsplit(".", 1)[-1]
    if (name == "dtype" or name.endswith("_dtype")) and value not in FLOAT_DTYPES:
      raise ConfigError(f"{key}={value!r} is not a dtype name jaxlab computes in; use one of {', '.join(FLOAT_DTYPES)}")


def check_mesh(config: ConfigDict, num_devices: int) -> dict[str, int]:
  """The mesh's axis sizes on `num_devices`, or a ConfigError naming the mesh keys."""
  sizes = dict(config.mesh) if "mesh" in config else {"data": -1}
  try:
    return mesh_shape(sizes, num_devices)
  except ValueError as e:
    fixed = {k: v for k, v in sizes.items() if v not in (1, -1)}
    hint = ", ".join(f"--config.mesh.{k}=1" for k in fixed) or "--config.mesh.data=-1"
    raise ConfigError(f"mesh {sizes} does not fit the {num_devices} device(s) of this run: {e} Try {hint}.") from None


def batch_split(config: ConfigDict, mesh_sizes: Mapping[str, int]) -> int:
  """How many ways the mesh splits a batch: the product of the axes the `batch` rule names."""
  presets = tuple(config.sharding.presets) if "sharding" in config else ("data",)
  axes = next((mesh_axes for name, mesh_axes in logical_rules(presets) if name == "batch"), ())
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  return math.prod(mesh_sizes[a] for a in axes)


def require_divisible(key: str, value: int, split: int, what: str) -> None:
  """Raises a ConfigError naming `key` and the nearest working value when split does not divide value."""
  if value % split:
    working = max(split, split * round(value / split))
    raise ConfigError(
        f"{key}={value} does not divide over the {split} {what}; use a multiple of {split}, e.g. --config.{key}={working}")


def require_batch_divisible(config: ConfigDict, key: str, mesh_sizes: Mapping[str, int]) -> None:
  """A batch size under `key` (dotted) must divide over the devices that split batches."""
  value = config
  for part in key.split("."):
    value = value[part]
  split = batch_split(config, mesh_sizes)
  require_divisible(key, value, split, f"devices that split the batch (mesh {dict(mesh_sizes)})")


def check_config(config: ConfigDict, task: Any, num_devices: int) -> None:
  """Refuses impossible settings for a run of `task` on `num_devices` devices (see above)."""
  flat = flatten(config)
  check_counts(flat)
  check_dtypes(flat)
  mesh_sizes = check_mesh(config, num_devices)
  task_check = getattr(task, "check_config", None)
  if task_check is not None:
    task_check(config, mesh_sizes)
