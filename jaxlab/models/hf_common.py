"""Pieces shared by the Hugging Face checkpoint readers and writers (MoE LMs, Qwen2, InternVL).

Reading: `read_config_json` (config.json, with the mesh/rules argument check), `resolve_dtype`,
`place` (a host array onto one device or into its shards). Writing: `flat_params` and
`check_param_tree` (the caller's params against the config's tree), `prepare_export_dir` (never
replaces a foreign directory without overwrite=True) and `write_checkpoint` (config.json plus
safetensors shards written to a temporary sibling that then replaces the target).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.models import safetensors_io

CONFIG_NAME = "config.json"
# Parameter and compute dtypes a checkpoint may be loaded as.
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def read_config_json(directory, *, mesh=None, rules=None) -> dict[str, Any]:
  """config.json of a checkpoint directory, after checking that `rules` come with a `mesh`.

  Raises:
    FileNotFoundError: `directory` has no config.json.
    ValueError: rules without a mesh.
  """
  directory = os.fspath(directory)
  config_path = os.path.join(directory, CONFIG_NAME)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}")
  if rules is not None and mesh is None:
    raise ValueError("rules= needs mesh=")
  with open(config_path) as f:
    return json.load(f)


def resolve_dtype(dtype, hf_config: Mapping[str, Any]) -> str:
  """The dtype name to load as: `dtype`, or config.json's `dtype` / `torch_dtype` when it is one of
  COMPUTE_DTYPES, else float32. Raises ValueError for a `dtype` outside COMPUTE_DTYPES."""
  if dtype is None:
    config_dtype = hf_config.get("dtype", hf_config.get("torch_dtype"))
    return config_dtype if config_dtype in COMPUTE_DTYPES else "float32"
  try:
    name = jnp.dtype(dtype).name
  except TypeError:
    name = None
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"dtype must be one of {COMPUTE_DTYPES} (or None), got {dtype!r}")
  return name


def place(host: np.ndarray, sharding=None) -> jax.Array:
  """`host` on the default device, or split into `sharding`'s shards (each device gets its slice)."""
  if sharding is None:
    return jnp.asarray(host)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def flat_params(params, what: str) -> dict[tuple[str, ...], Any]:
  """{path: leaf} of a param dict (or {"params": dict}), unboxed. Raises TypeError naming `what`."""
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  if not isinstance(params, Mapping):
    raise TypeError(f"params must be the {what} param dict, got {type(params).__name__}")
  return traverse_util.flatten_dict(nn.unbox(dict(params)))


def check_param_tree(flat: dict[tuple[str, ...], Any], expected: dict[tuple[str, ...], Any]) -> None:
  """Raises ValueError listing every missing, unexpected or wrongly shaped entry of `flat`
  (flattened params) against `expected` (flattened abstract params of the config)."""
  missing = sorted("/".join(k) for k in expected if k not in flat)
  unexpected = sorted("/".join(k) for k in flat if k not in expected)
  if missing or unexpected:
    raise ValueError(f"params do not match the config: {len(missing)} missing: {missing}; "
                     f"{len(unexpected)} unexpected: {unexpected}")
  wrong = [f"{'/'.join(k)}: shape {tuple(np.shape(v))}, expected {expected[k].shape}"
           for k, v in flat.items() if tuple(np.shape(v)) != expected[k].shape]
  if wrong:
    raise ValueError(f"params do not match the config: {wrong}")


def has_export_marker(directory, marker: tuple[str, str]) -> bool:
  """Whether `directory` holds safetensors whose metadata carries `marker` (key, value)."""
  key, value = marker
  try:
    return safetensors_io.Checkpoint(directory).metadata.get(key) == value
  except (OSError, ValueError):
    return False


def check_shard_bytes(max_shard_bytes) -> None:
  if isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int) or max_shard_bytes < 1:
    raise ValueError(f"max_shard_bytes must be a positive int, got {max_shard_bytes!r}")


def prepare_export_dir(directory, *, overwrite: bool, marker: tuple[str, str], what: str) -> str:
  """The absolute target path, after checking it may be replaced.

  Raises ValueError when it is a file, or a non-empty directory that an earlier export (carrying
  `marker`) did not write and `overwrite` is False. `what` names the export in the message.
  """
  directory = os.path.abspath(os.fspath(directory))
  if os.path.exists(directory):
    if not os.path.isdir(directory):
      raise ValueError(f"save_pretrained: {directory} exists and is not a directory")
    if os.listdir(directory) and not overwrite and not has_export_marker(directory, marker):
      raise ValueError(f"save_pretrained: {directory} is a non-empty directory that is not a jaxlab {what} export; "
                       "pass overwrite=True to replace it")
  return directory


def rule_shards(flat: Mapping[tuple[str, ...], Any], plan: Sequence[Any], max_shard_bytes: int,
                from_param: Callable[[Any, np.ndarray], list[np.ndarray]]):
  """(dtype name, shards for `write_checkpoint`) of params written by a plan of mapping rules.

  Each rule (`path`, `names`) turns the parameter at `flat[path]` into the tensors `names` through
  `from_param`; whole parameters go to a shard, and a shard's tensors are built when it is written.
  The dtype is the parameters' common one, else float32.
  """
  dtypes = {np.dtype(flat[rule.path].dtype).name for rule in plan}
  dtype = dtypes.pop() if len(dtypes) == 1 else "float32"
  sizes = [(rule.path, int(np.prod(flat[rule.path].shape)) * np.dtype(flat[rule.path].dtype).itemsize)
           for rule in plan]
  rule_of = {rule.path: rule for rule in plan}

  def tensors_of(paths):
    tensors = {}
    for path in paths:
      rule = rule_of[path]
      tensors.update(zip(rule.names, from_param(rule, np.asarray(jax.device_get(flat[path])))))
    return tensors

  return dtype, [lambda paths=paths: tensors_of(paths) for paths in safetensors_io.shard_names(sizes, max_shard_bytes)]


def write_checkpoint(directory: str, hf_config: Mapping[str, Any],
                     shards: Sequence[Callable[[], dict[str, np.ndarray]]], marker: tuple[str, str]) -> None:
  """Writes config.json and one safetensors file per shard, then swaps the result in for `directory`.

  Each shard is a function returning its {tensor name: array}, called when that file is written,
  so only one shard's tensors are in host memory at a time. More than one shard gets
  model-0000i-of-0000n names and an index; every file's metadata carries `marker`. Nothing is
  left behind on failure, and `directory` is replaced only once everything is written.
  """
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
  try:
    with open(os.path.join(tmp, CONFIG_NAME), "w") as f:
      json.dump(dict(hf_config), f, indent=2, sort_keys=True)
    metadata = {"format": "pt", marker[0]: marker[1]}
    weight_map, total = {}, 0
    for index, shard in enumerate(shards):
      file_name = (safetensors_io.SINGLE_NAME if len(shards) == 1
                   else f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors")
      tensors = shard()
      safetensors_io.write_file(os.path.join(tmp, file_name), tensors, metadata)
      total += sum(t.nbytes for t in tensors.values())
      weight_map.update({name: file_name for name in tensors})
      del tensors
    if len(shards) > 1:
      index_json = {"metadata": {"total_size": total, marker[0]: marker[1]}, "weight_map": weight_map}
      with open(os.path.join(tmp, safetensors_io.INDEX_NAME), "w") as f:
        json.dump(index_json, f, indent=2, sort_keys=True)
    replace_dir(tmp, directory)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def replace_dir(new: str, path: str) -> None:
  """Moves directory `new` to `path`, replacing what is there by renames (the old tree is deleted after)."""
  if not os.path.exists(path):
    os.rename(new, path)
    return
  old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=os.path.dirname(path))
  os.rmdir(old)
  os.rename(path, old)
  try:
    os.rename(new, path)
  except BaseException:
    os.rename(old, path)
    raise
  shutil.rmtree(old, ignore_errors=True)
