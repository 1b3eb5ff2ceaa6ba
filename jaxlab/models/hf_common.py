"""Pieces shared by the Hugging Face checkpoint readers and writers (MoE LMs, Qwen2, InternVL).

Reading: `read_config_json` (config.json, with the mesh/rules argument check), `resolve_dtype`,
`place` (a host array onto one device or into its shards). Writing: `flat_params` and
`check_param_tree` (the caller's params against the config's tree), `prepare_export_dir` (never
writes into a foreign directory without overwrite=True) and `write_checkpoint` (config.json, the
generation_config.json a loaded checkpoint came with (see `hf_generation`), and safetensors shards,
each written under a temporary name and renamed into place; no other file of the directory is
touched, except stale shards of the same kind of export).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab import files
from jaxlab.models import safetensors_io
from jaxlab.models.hf_config import read_json_object
from jaxlab.models.hf_generation import GENERATION_CONFIG_NAME

CONFIG_NAME = "config.json"
# The shard names transformers writes; a stale one is removed only if it carries the export's marker.
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
# Parameter and compute dtypes a checkpoint may be loaded as.
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def read_config_json(directory, *, mesh=None, rules=None) -> dict[str, Any]:
  """config.json of a checkpoint directory, after checking that `rules` come with a `mesh`.

  Raises:
    FileNotFoundError: `directory` has no config.json.
    ValueError: rules without a mesh; `hf_config.JSONFileError` (a ValueError) when config.json does
      not parse (file, line and column named) or is not a JSON object.
  """
  directory = os.fspath(directory)
  config_path = os.path.join(directory, CONFIG_NAME)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}")
  if rules is not None and mesh is None:
    raise ValueError("rules= needs mesh=")
  return read_json_object(config_path)


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


def export_kind(directory, key: str) -> str | None:
  """The value under `key` in the checkpoint metadata of `directory` (which export wrote it), or None."""
  try:
    return safetensors_io.Checkpoint(directory).metadata.get(key)
  except (OSError, ValueError):
    return None


def has_export_marker(directory, marker: tuple[str, str]) -> bool:
  """Whether `directory` holds safetensors whose metadata carries `marker` (key, value)."""
  return export_kind(directory, marker[0]) == marker[1]


def check_shard_bytes(max_shard_bytes) -> None:
  if isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int) or max_shard_bytes < 1:
    raise ValueError(f"max_shard_bytes must be a positive int, got {max_shard_bytes!r}")


def prepare_export_dir(directory, *, overwrite: bool, marker: tuple[str, str], what: str) -> str:
  """The absolute target path, after checking that an export may be written into it.

  Raises ValueError when it is a file, or a non-empty directory that an earlier export (carrying
  `marker`) did not write and `overwrite` is False; the message says what the directory holds.
  `what` names the export in the message.
  """
  directory = os.path.abspath(os.fspath(directory))
  if not os.path.exists(directory):
    return directory
  if not os.path.isdir(directory):
    raise ValueError(f"save_pretrained: {directory} exists and is not a directory")
  entries = sorted(os.listdir(directory))
  if entries and not overwrite and not has_export_marker(directory, marker):
    kind = export_kind(directory, marker[0])
    holds = f"a jaxlab {kind} export" if kind else f"{entries[:5]}" + (" ..." if len(entries) > 5 else "")
    raise ValueError(f"save_pretrained: {directory} is not a jaxlab {what} export (it holds {holds}); pass "
                     "overwrite=True to write the export into it (config.json, model.safetensors, the index "
                     "and its shards are replaced; other files are kept)")
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


def shard_file_names(count: int) -> list[str]:
  """model.safetensors for one shard, else transformers' model-0000i-of-0000n.safetensors names."""
  if count == 1:
    return [safetensors_io.SINGLE_NAME]
  return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


class _Staging:
  """Files written under hidden temporary names in the target directory, renamed into place later.

  Everything slow (tensors, JSON) is written before anything is renamed, so a failure while
  writing leaves the directory as it was; `discard` removes what was written.
  """

  def __init__(self, directory: str):
    self.directory = directory
    self.paths: dict[str, str] = {}  # final name -> temporary path

  def new_path(self, name: str) -> str:
    """A fresh empty temporary file for `name` (mode from the umask, like any new file)."""
    fd, path = files.create_temp_file(self.directory, name)
    os.close(fd)
    self.paths[name] = path
    return path

  def write_safetensors(self, name: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    path = self.new_path(name)
    safetensors_io.write_file(path, tensors, metadata)
    fd = os.open(path, os.O_RDWR)
    try:
      os.fsync(fd)  # on disk before its name is published
    finally:
      os.close(fd)

  def write_json(self, name: str, value: Mapping[str, Any]) -> None:
    files.write_json(self.new_path(name), dict(value))

  def publish(self, name: str) -> None:
    """Renames the staged `name` over the directory's `name` (keeping a replaced file's permissions)."""
    path = os.path.join(self.directory, name)
    if os.path.isfile(path):
      shutil.copymode(path, self.paths[name])
    os.replace(self.paths.pop(name), path)

  def discard(self) -> None:
    for path in self.paths.values():
      if os.path.exists(path):
        os.unlink(path)
    self.paths.clear()


def _own_shards(directory: str, marker: tuple[str, str]) -> set[str]:
  """Names of model-0000i-of-0000n.safetensors files in `directory` whose own metadata carries
  `marker`: the shards of earlier exports of this kind, and no one else's."""
  own = set()
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    if not _SHARD_NAME.fullmatch(name) or not os.path.isfile(path):
      continue
    try:
      if safetensors_io.SafetensorsFile(path).metadata.get(marker[0]) == marker[1]:
        own.add(name)
    except (OSError, ValueError):
      continue  # not a safetensors file: not ours
  return own


def _remove(directory: str, name: str) -> None:
  try:
    os.unlink(os.path.join(directory, name))
  except FileNotFoundError:
    pass


def _publish_weights(staging: _Staging, names: Sequence[str]) -> None:
  """Renames the staged weight files into place so that a loader sees the old or the new weights, never a mix.

  jaxlab reads the index when there is one, transformers reads model.safetensors when there is one:
  the file a loader prefers is published (or removed) only once what it points to is in place. When
  new shards take the names of old ones, the old index goes first: for those few renames the
  directory holds no checkpoint, rather than an index that mixes old and new shards.
  """
  directory = staging.directory
  index_path = os.path.join(directory, safetensors_io.INDEX_NAME)
  if len(names) == 1:
    staging.publish(safetensors_io.SINGLE_NAME)
    _remove(directory, safetensors_io.INDEX_NAME)
    return
  if any(os.path.exists(os.path.join(directory, n)) for n in names) and os.path.exists(index_path):
    os.unlink(index_path)  # the old index must never point at a shard that is already new
  for name in names:
    staging.publish(name)
  staging.publish(safetensors_io.INDEX_NAME)
  _remove(directory, safetensors_io.SINGLE_NAME)  # it would shadow the index for transformers


def write_checkpoint(directory: str, hf_config: Mapping[str, Any],
                     shards: Sequence[Callable[[], dict[str, np.ndarray]]], marker: tuple[str, str], *,
                     generation_config: Mapping[str, Any] | None = None) -> None:
  """Writes config.json and one safetensors file per shard into `directory` (created if missing).

  Each shard is a function returning its {tensor name: array}, called when that file is written,
  so only one shard's tensors are in host memory at a time. More than one shard gets
  model-0000i-of-0000n names and an index; every file's metadata carries `marker`.
  `generation_config` (a JSON object, e.g. `hf_generation.GenerationSettings`), when given, is
  written as generation_config.json; None leaves that file alone.

  Every file is first written under a hidden temporary name; only when all are written are they
  renamed into place (shards, then the index, then generation_config.json, then config.json), so
  a failure while writing leaves the previous export as it was. Afterwards, shards that an earlier
  export with the same `marker` wrote and this one does not (another shard count) are removed, as
  is the single file or index of the other layout. No other file in `directory` is touched.
  """
  created = not os.path.isdir(directory)
  os.makedirs(directory, exist_ok=True)
  names = shard_file_names(len(shards))
  staging = _Staging(directory)
  try:
    metadata = {"format": "pt", marker[0]: marker[1]}
    weight_map, total = {}, 0
    for file_name, shard in zip(names, shards):
      tensors = shard()
      staging.write_safetensors(file_name, tensors, metadata)
      total += sum(t.nbytes for t in tensors.values())
      weight_map.update({name: file_name for name in tensors})
      del tensors
    if len(names) > 1:
      index = {"metadata": {"total_size": total, marker[0]: marker[1]}, "weight_map": weight_map}
      staging.write_json(safetensors_io.INDEX_NAME, index)
    if generation_config is not None:
      staging.write_json(GENERATION_CONFIG_NAME, generation_config)
    staging.write_json(CONFIG_NAME, hf_config)
    stale = _own_shards(directory, marker) - set(names)
    _publish_weights(staging, names)
    if generation_config is not None:
      staging.publish(GENERATION_CONFIG_NAME)
    staging.publish(CONFIG_NAME)
  except BaseException:
    staging.discard()
    if created and not os.listdir(directory):
      os.rmdir(directory)
    raise
  for name in sorted(stale):
    _remove(directory, name)
