"""Hugging Face checkpoints <-> `MoEDecoderLM` params: `load_pretrained` and `save_pretrained`.

Loading reads config.json and `model.safetensors` (or the shards of
`model.safetensors.index.json`) with numpy, accepts per layer either the per-expert hub layout or
the fused layout of transformers 5 (see `hf_mapping`), and checks every name and shape against
the config before reading any data. Saving writes the per-expert hub layout, which every
transformers version loads, into a temporary directory that then replaces the target.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.moe.models import hf_mapping, safetensors_io
from jaxlab.moe.models.config import COMPUTE_DTYPES, MoELMConfig
from jaxlab.moe.models.decoder import MoEDecoderLM
from jaxlab.quant import ExpertWeights
from jaxlab.sharding import PRESETS, logical_rules, logical_to_shardings
from jaxlab.models.hf_common import check_param_tree, has_export_marker

CONFIG_NAME = "config.json"
# Marks files written by `save_pretrained`, so a later export may replace them without overwrite=True.
EXPORT_MARKER = ("jaxlab_export", "MoEDecoderLM")
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


def _dtype_name(dtype, config_dtype: str | None) -> str:
  if dtype is None:
    return config_dtype if config_dtype in COMPUTE_DTYPES else "float32"
  try:
    name = jnp.dtype(dtype).name
  except TypeError:
    name = None
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"dtype must be one of {COMPUTE_DTYPES} (or None), got {dtype!r}")
  return name


def _plan(config: MoELMConfig, checkpoint: safetensors_io.Checkpoint, where: str):
  """The rules to load and {hub name: name in the file}; raises listing every name or shape problem."""
  present: dict[str, str] = {}
  clashes = []
  for name in checkpoint.names:
    canonical = hf_mapping.canonical_name(config, name)
    if canonical in present:
      clashes.append(f"{present[canonical]} / {name}")
    present[canonical] = name
  if clashes:
    raise ValueError(f"{where} holds the same tensor under two spellings: {clashes}")
  fused = frozenset(
      i for i in range(config.num_layers)
      if config.is_moe_layer(i) and any(n in present for n in hf_mapping.fused_names(config, i))
  )
  plan = hf_mapping.rules(config, fused)
  expected = {name for rule in plan for name in rule.names}
  missing = [name for rule in plan for name in rule.names if name not in present]
  unexpected = sorted(
      original for canonical, original in present.items()
      if canonical not in expected and not hf_mapping.is_ignored(config, canonical)
  )
  if missing or unexpected:
    raise ValueError(
        f"{where} does not match the {config.architecture} config: "
        f"{len(missing)} missing tensor(s): {missing}; {len(unexpected)} unexpected tensor(s): {unexpected}"
    )
  problems = []
  for rule in plan:
    for name, shape in zip(rule.names, rule.shapes):
      original = present[name]
      got, dtype = checkpoint.shape(original), checkpoint.dtype_name(original)
      if got != shape:
        problems.append(f"{original}: shape {list(got)}, expected {list(shape)}")
      elif dtype not in _FLOAT_DTYPES:
        problems.append(f"{original}: dtype {dtype}, expected a float dtype")
  if problems:
    raise ValueError(f"{where} does not match the config ({len(problems)} tensor(s)): " + "; ".join(problems))
  return plan, present


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _get(tree, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def _abstract_params(config: MoELMConfig):
  """The boxed param tree's shapes (no allocation); the single-device MoE path, whatever mesh is set."""
  model = MoEDecoderLM(dataclasses.replace(config, expert_parallel=False))
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32))["params"]


def load_pretrained(path, *, dtype=None, mesh=None, rules=None) -> tuple[MoELMConfig, dict[str, Any]]:
  """Reads a Hugging Face Mixtral / Qwen2-MoE / Qwen3-MoE checkpoint directory into `MoEDecoderLM` params.

  Args:
    path: directory with config.json and model.safetensors or model.safetensors.index.json + shards.
    dtype: parameter and compute dtype ("float32", "bfloat16", "float16"); None: config.json's
      `dtype` / `torch_dtype` when it is one of those, else float32.
    mesh: place every parameter sharded by its logical axes over this mesh (each device receives
      only its slice); None: default device.
    rules: logical axis rules for `mesh`; default `logical_rules` of all presets.

  Returns:
    (config with `dtype` set, nested dict of params in the fixed tree of `MoEDecoderLM`).

  Raises:
    FileNotFoundError: no config.json or no safetensors checkpoint.
    ValueError: unsupported model_type / feature, missing or unexpected tensors (all listed), a
      shape that does not match the config (tensor named), or a bad dtype.
  """
  path = os.fspath(path)
  config_path = os.path.join(path, CONFIG_NAME)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{path} has no {CONFIG_NAME}")
  with open(config_path) as f:
    hf_config = json.load(f)
  name = _dtype_name(dtype, hf_config.get("dtype", hf_config.get("torch_dtype")))
  config = MoELMConfig.from_hf_dict(hf_config, dtype=name)
  if rules is not None and mesh is None:
    raise ValueError("rules= needs mesh=")
  checkpoint = safetensors_io.Checkpoint(path)
  plan, present = _plan(config, checkpoint, f"checkpoint {path}")
  shardings = None
  if mesh is not None:
    rules = logical_rules(tuple(PRESETS)) if rules is None else rules
    shardings = logical_to_shardings(_abstract_params(config), mesh, rules)
  np_dtype = jnp.dtype(name)
  params: dict[str, Any] = {}
  for rule in plan:
    host = hf_mapping.to_param(rule, [checkpoint.read(present[n]) for n in rule.names])
    host = np.ascontiguousarray(host, dtype=np_dtype)
    if shardings is None:
      value = jnp.asarray(host)
    else:
      sharding = _get(shardings, rule.path)
      value = jax.make_array_from_callback(host.shape, sharding, lambda index, h=host: h[index])
    _set(params, rule.path, value)
  return config, params


def _check_params(config: MoELMConfig, params) -> dict[tuple[str, ...], Any]:
  """Flat {path: array} of `params`, checked against the config's tree (every problem listed)."""
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  if not isinstance(params, Mapping):
    raise TypeError(f"params must be the MoEDecoderLM param dict, got {type(params).__name__}")
  flat = traverse_util.flatten_dict(nn.unbox(dict(params)))
  quantized = ["/".join(k) for k, v in flat.items() if isinstance(v, ExpertWeights)]
  if quantized:
    raise TypeError(
        f"save_pretrained writes float tensors; {quantized} are ExpertWeights "
        "(dequantize them first, e.g. jaxlab.quant.dequantize_experts)"
    )
  expected = traverse_util.flatten_dict(nn.unbox(_abstract_params(config)))
  check_param_tree(flat, expected)
  return flat


def is_export(path: str) -> bool:
  """`path` holds a checkpoint written by `save_pretrained`."""
  return has_export_marker(path, EXPORT_MARKER)


def save_pretrained(params, config: MoELMConfig, path, *, overwrite: bool = False,
                    max_shard_bytes: int = 5 * 10**9) -> None:
  """Writes config.json and safetensors in the per-expert hub layout that transformers loads.

  Args:
    params: `MoEDecoderLM` params (or {"params": params}) of float arrays.
    config: the model's config.
    path: target directory. It is replaced atomically: written to a temporary sibling, then
      renamed. An existing non-empty directory is replaced only if it holds an earlier export
      of this function, or with `overwrite=True`.
    overwrite: replace a non-empty directory that is not such an export.
    max_shard_bytes: above this size the tensors are split into shards with an index, as
      transformers does (whole parameters per shard).

  Raises:
    TypeError: `config` is not a MoELMConfig, or params hold `ExpertWeights`.
    ValueError: params do not match the config (all problems listed), or `path` is a file or a
      non-empty directory that is not an export (without overwrite=True).
  """
  if not isinstance(config, MoELMConfig):
    raise TypeError(f"config must be a MoELMConfig, got {type(config).__name__}")
  if isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int) or max_shard_bytes < 1:
    raise ValueError(f"max_shard_bytes must be a positive int, got {max_shard_bytes!r}")
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ValueError(f"save_pretrained: {path} exists and is not a directory")
    if os.listdir(path) and not overwrite and not is_export(path):
      raise ValueError(
          f"save_pretrained: {path} is a non-empty directory that is not a jaxlab export; pass overwrite=True to "
          "replace it"
      )
  flat = _check_params(config, params)
  plan = hf_mapping.rules(config)
  dtypes = {np.dtype(flat[rule.path].dtype).name for rule in plan}
  dtype = dtypes.pop() if len(dtypes) == 1 else "float32"
  sizes = [(rule.path, int(np.prod(flat[rule.path].shape)) * np.dtype(flat[rule.path].dtype).itemsize)
           for rule in plan]
  shards = safetensors_io.shard_names(sizes, max_shard_bytes)
  rule_of = {rule.path: rule for rule in plan}

  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
  try:
    hf_config = dict(config.to_hf_dict(), dtype=dtype, torch_dtype=dtype)
    with open(os.path.join(tmp, CONFIG_NAME), "w") as f:
      json.dump(hf_config, f, indent=2, sort_keys=True)
    metadata = {"format": "pt", EXPORT_MARKER[0]: EXPORT_MARKER[1]}
    weight_map, total = {}, 0
    for index, shard in enumerate(shards):
      file_name = (safetensors_io.SINGLE_NAME if len(shards) == 1
                   else f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors")
      tensors = {}
      for param_path in shard:
        rule = rule_of[param_path]
        host = np.asarray(jax.device_get(flat[param_path]))
        tensors.update(zip(rule.names, hf_mapping.from_param(rule, host)))
      safetensors_io.write_file(os.path.join(tmp, file_name), tensors, metadata)
      total += sum(t.nbytes for t in tensors.values())
      weight_map.update({name: file_name for name in tensors})
      del tensors
    if len(shards) > 1:
      index_metadata = {"total_size": total, EXPORT_MARKER[0]: EXPORT_MARKER[1]}
      index_json = {"metadata": index_metadata, "weight_map": weight_map}
      with open(os.path.join(tmp, safetensors_io.INDEX_NAME), "w") as f:
        json.dump(index_json, f, indent=2, sort_keys=True)
    _replace_dir(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def _replace_dir(new: str, path: str) -> None:
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
