"""Hugging Face checkpoints <-> `MoEDecoderLM` params: `load_pretrained` and `save_pretrained`.

Loading reads config.json and `model.safetensors` (or the shards of
`model.safetensors.index.json`) with numpy, accepts per layer either the per-expert hub layout or
the fused layout of transformers 5 (see `hf_rules`), and checks every name and shape against
the config before reading any data; a NaN or infinity in a tensor is refused with its name. Saving
writes the per-expert hub layout, which every transformers version loads, next to whatever else
the target directory holds (see `hf_common.write_checkpoint`), with the token ids and the
generation_config.json of the checkpoint the model was loaded from (see `hf_generation`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.models import hf_common, hf_generation, hf_mapping, safetensors_io
from jaxlab.moe.models import hf_rules
from jaxlab.moe.models.config import MoELMConfig
from jaxlab.moe.models.decoder import MoEDecoderLM
from jaxlab.quant_formats import ExpertWeights
from jaxlab.sharding import PRESETS, logical_rules, logical_to_shardings

CONFIG_NAME = hf_common.CONFIG_NAME
# Marks files written by `save_pretrained`, so a later export may replace them without overwrite=True.
EXPORT_MARKER = ("jaxlab_export", "MoEDecoderLM")
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


def _plan(config: MoELMConfig, checkpoint: safetensors_io.Checkpoint, where: str):
  """The rules to load and {hub name: name in the file}; raises listing every name or shape problem."""
  present: dict[str, str] = {}
  clashes = []
  for name in checkpoint.names:
    canonical = hf_rules.canonical_name(config, name)
    if canonical in present:
      clashes.append(f"{present[canonical]} / {name}")
    present[canonical] = name
  if clashes:
    raise ValueError(f"{where} holds the same tensor under two spellings: {clashes}")
  fused = frozenset(
      i for i in range(config.num_layers)
      if config.is_moe_layer(i) and any(n in present for n in hf_rules.fused_names(config, i))
  )
  plan = hf_rules.rules(config, fused)
  expected = {name for rule in plan for name in rule.names}
  missing = [name for rule in plan for name in rule.names if name not in present]
  unexpected = sorted(
      original for canonical, original in present.items()
      if canonical not in expected and not hf_rules.is_ignored(config, canonical)
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
    (config with `dtype` set, config.json's bos/eos/pad ids and the directory's generation_config.json
    as `generation_config` (None without one), nested dict of params in the fixed tree of `MoEDecoderLM`).

  Raises:
    FileNotFoundError: no config.json or no safetensors checkpoint.
    ValueError: unsupported model_type / feature, missing or unexpected tensors (all listed), a
      shape that does not match the config (tensor named), a bad dtype, config.json or the index
      not parsing (`JSONFileError`, file and line named), or a NaN / infinity in a tensor
      (`NonFiniteError`, tensor and file named).
  """
  path = os.fspath(path)
  hf_config = hf_common.read_config_json(path, mesh=mesh, rules=rules)
  name = hf_common.resolve_dtype(dtype, hf_config)
  config = MoELMConfig.from_hf_dict(hf_config, dtype=name, generation_config=hf_generation.read_generation_config(path))
  checkpoint = safetensors_io.Checkpoint(path)
  plan, present = _plan(config, checkpoint, f"checkpoint {path}")
  shardings = {}
  if mesh is not None:
    rules = logical_rules(tuple(PRESETS)) if rules is None else rules
    shardings = traverse_util.flatten_dict(logical_to_shardings(_abstract_params(config), mesh, rules))
  np_dtype = jnp.dtype(name)
  params = {}
  for rule in plan:
    host = hf_mapping.to_param(rule, [checkpoint.read(present[n]) for n in rule.names])
    params[rule.path] = hf_common.place(np.ascontiguousarray(host, dtype=np_dtype), shardings.get(rule.path))
  return config, traverse_util.unflatten_dict(params)


def _check_params(config: MoELMConfig, params) -> dict[tuple[str, ...], Any]:
  """Flat {path: array} of `params`, checked against the config's tree (every problem listed)."""
  flat = hf_common.flat_params(params, "MoEDecoderLM")
  quantized = ["/".join(k) for k, v in flat.items() if isinstance(v, ExpertWeights)]
  if quantized:
    raise TypeError(
        f"save_pretrained writes float tensors; {quantized} are ExpertWeights "
        "(dequantize them first, e.g. jaxlab.quant_formats.dequantize_experts)"
    )
  hf_common.check_param_tree(flat, traverse_util.flatten_dict(nn.unbox(_abstract_params(config))))
  return flat


def is_export(path: str) -> bool:
  """`path` holds a checkpoint written by `save_pretrained`."""
  return hf_common.has_export_marker(path, EXPORT_MARKER)


def save_pretrained(params, config: MoELMConfig, path, *, overwrite: bool = False,
                    max_shard_bytes: int = 5 * 10**9) -> None:
  """Writes config.json and safetensors in the per-expert hub layout that transformers loads.

  Args:
    params: `MoEDecoderLM` params (or {"params": params}) of float arrays.
    config: the model's config. Its bos/eos/pad token ids go to config.json and its
      `generation_config` (when not None) to generation_config.json, so transformers generates
      with the settings of the checkpoint the model was loaded from.
    path: target directory (created if missing). Each file is written under a temporary name and
      renamed into place once all are written, so a failure leaves an earlier export loadable.
      Only config.json, generation_config.json (when written) and the weight files are replaced
      (with stale shards of an earlier export of this function); other files, such as a
      tokenizer.json, are kept. A non-empty directory is written into only if it holds an
      earlier export of this function, or with `overwrite=True`.
    overwrite: write into a non-empty directory that is not such an export.
    max_shard_bytes: above this size the tensors are split into shards with an index, as
      transformers does (whole parameters per shard).

  Raises:
    TypeError: `config` is not a MoELMConfig, or params hold `ExpertWeights`.
    ValueError: params do not match the config (all problems listed), or `path` is a file or a
      non-empty directory that is not an export (without overwrite=True).
  """
  if not isinstance(config, MoELMConfig):
    raise TypeError(f"config must be a MoELMConfig, got {type(config).__name__}")
  hf_common.check_shard_bytes(max_shard_bytes)
  path = hf_common.prepare_export_dir(path, overwrite=overwrite, marker=EXPORT_MARKER, what="MoE")
  flat = _check_params(config, params)
  plan = hf_rules.rules(config)
  dtype, shards = hf_common.rule_shards(flat, plan, max_shard_bytes, hf_mapping.from_param)
  hf_config = dict(config.to_hf_dict(), dtype=dtype, torch_dtype=dtype)
  hf_common.write_checkpoint(path, hf_config, shards, EXPORT_MARKER, generation_config=config.generation_config)
