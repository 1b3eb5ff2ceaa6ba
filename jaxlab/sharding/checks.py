"""Checks and summaries of how a parameter tree is actually laid out across devices."""

import math
import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import NamedSharding


def _leaves_with_paths(params: Any) -> list[tuple[str, Any]]:
  """(path, leaf) for every leaf; logical boxes are looked through to their values."""
  is_box = lambda x: isinstance(x, nn.Partitioned)
  flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_box)
  return [
      (jax.tree_util.keystr(path, simple=True, separator="/"), leaf.value if is_box(leaf) else leaf)
      for path, leaf in flat
  ]


def _spec_text(sharding: Any, ndim: int) -> str:
  """The layout as one spec entry per dimension, e.g. `P('fsdp', None)`."""
  if sharding is None:
    return "no sharding (host value)"
  if isinstance(sharding, NamedSharding):
    entries = tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))
    return "P(" + ", ".join(repr(e) for e in entries) + ")"
  if sharding.is_fully_replicated:
    return f"replicated over {len(sharding.device_set)} device(s)"
  return repr(sharding)


def assert_params_sharded(
    params: Any,
    *,
    min_size: int = 2**14,
    allow: Sequence[str] = (),
) -> None:
  """Fails if any large parameter is fully replicated across a multi-device mesh.

  A replicated large tensor is the usual sign of a missing or misspelled logical name: it
  costs memory on every device and silently turns FSDP into data parallelism.

  Args:
    params: tree of arrays (or `jax.ShapeDtypeStruct`s with shardings, or boxed values).
    min_size: parameters with fewer elements are ignored (biases, norms).
    allow: regexes; parameters whose path (e.g. `params/Dense_0/kernel`) matches one with
      `re.search` may be replicated.

  Raises:
    AssertionError: naming every offending parameter path with its shape.
  """
  patterns = [allow] if isinstance(allow, str) else list(allow)
  offenders = []
  for path, leaf in _leaves_with_paths(params):
    sharding = getattr(leaf, "sharding", None)
    shape = getattr(leaf, "shape", None)
    if sharding is None or shape is None or math.prod(shape) < min_size:
      continue
    if len(sharding.device_set) > 1 and sharding.is_fully_replicated:
      if not any(re.search(p, path) for p in patterns):
        offenders.append(
            f"  {path}: shape {tuple(shape)} ({math.prod(shape)} elements), replicated over"
            f" {len(sharding.device_set)} devices")
  if offenders:
    raise AssertionError(
        f"{len(offenders)} parameter(s) with >= {min_size} elements are fully replicated:\n"
        + "\n".join(offenders)
        + "\nAnnotate them with param_with_axes (and check the rules map their names), or"
        " exempt them with allow=[regex].")


def sharding_summary(params: Any) -> str:
  """One line per parameter: path, shape and the partition spec of its sharding."""
  rows = []
  for path, leaf in _leaves_with_paths(params):
    shape = tuple(getattr(leaf, "shape", ()))
    rows.append((path, str(shape), _spec_text(getattr(leaf, "sharding", None), len(shape))))
  if not rows:
    return ""
  path_width = max(len(r[0]) for r in rows)
  shape_width = max(len(r[1]) for r in rows)
  return "\n".join(f"{p:<{path_width}}  {s:<{shape_width}}  {spec}" for p, s, spec in rows)
