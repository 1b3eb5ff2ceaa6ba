"""transformers InternVL checkpoints <-> `InternVLModel` params: `load_pretrained` and `save_pretrained`.

Two tensor-name layouts exist; both load, and `save_pretrained` writes the first (the one
transformers 5 `save_pretrained` and the hub "-hf" repos use; transformers renames it on load):

  file layout:          vision_tower.*  multi_modal_projector.*  language_model.model.*  language_model.lm_head.weight
  module (state_dict):  model.vision_tower.*  model.multi_modal_projector.*  model.language_model.*  lm_head.weight

Vision tower and projector tensors map as `jaxlab.vlm.vision_hf`; language-model tensors as
`jaxlab.models.qwen2.hf_io.hf_rules` with its "model." prefix replaced by the layout's. The token ids
(config.json's text_config, where transformers keeps them) and generation_config.json travel on the
language model's `Qwen2Config` from load to export (see `jaxlab.models.hf_generation`).
"""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.models import hf_common, hf_generation, safetensors_io
from jaxlab.models.hf_mapping import from_param, to_param
from jaxlab.models.qwen2.hf_io import hf_rules
from jaxlab.sharding import PRESETS, logical_rules, logical_to_shardings
from jaxlab.vlm import vision_hf
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.model import init_variables

CONFIG_NAME = hf_common.CONFIG_NAME
# Marks files written by `save_pretrained`, so a later export may replace them without overwrite=True.
EXPORT_MARKER = ("jaxlab_export", "InternVLModel")
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
# Tensors transformers itself skips when loading.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


class Layout(NamedTuple):
  """Where each part's tensors live: vision prefix, language-model prefix (replaces "model."), lm_head name."""

  vision_prefix: str
  lm_prefix: str
  lm_head: str


FILE_LAYOUT = Layout("", "language_model.model.", "language_model.lm_head.weight")
MODULE_LAYOUT = Layout("model.", "model.language_model.", "lm_head.weight")


def detect_layout(names) -> Layout:
  """MODULE_LAYOUT when any name starts with "model." (transformers' module names), else FILE_LAYOUT."""
  return MODULE_LAYOUT if any(n.startswith("model.") for n in names) else FILE_LAYOUT


def _lm_name(qwen2_name: str, layout: Layout) -> str:
  if qwen2_name == "lm_head.weight":
    return layout.lm_head
  return layout.lm_prefix + qwen2_name[len("model."):]


def lm_rules(config: InternVLConfig, layout: Layout) -> list[tuple[str, Any]]:
  """(checkpoint name, Qwen2 rule) of every language-model tensor in `layout`."""
  return [(_lm_name(rule.names[0], layout), rule) for rule in hf_rules(config.text)]


def _abstract_params(config: InternVLConfig):
  """The boxed param tree's shapes (no allocation)."""
  return jax.eval_shape(lambda key: init_variables(config, key), jax.random.key(0))["params"]


def _check_checkpoint(config: InternVLConfig, checkpoint: safetensors_io.Checkpoint, layout: Layout, where: str):
  """The language-model plan; raises listing every missing / unexpected tensor, or every bad LM shape or dtype."""
  present = set(checkpoint.names)
  lm_plan = lm_rules(config, layout)
  vision_names = [r.hf_name for r in vision_hf.rules(config.vision, config.projector, layout.vision_prefix)]
  expected = [name for name, _ in lm_plan] + vision_names
  expected_set = set(expected)
  ignored = lambda n: bool(_IGNORED.search(n)) or (config.text.tie_word_embeddings and n == layout.lm_head)
  missing = [n for n in expected if n not in present]
  unexpected = sorted(n for n in present if n not in expected_set and not ignored(n))
  if missing or unexpected:
    raise ValueError(f"{where} does not match the InternVL config: {len(missing)} missing tensor(s): {missing}; "
                     f"{len(unexpected)} unexpected tensor(s): {unexpected}")
  problems = []
  for name, rule in lm_plan:
    got, dtype = checkpoint.shape(name), checkpoint.dtype_name(name)
    if got != rule.shapes[0]:
      problems.append(f"{name}: shape {list(got)}, expected {list(rule.shapes[0])}")
    elif dtype not in _FLOAT_DTYPES:
      problems.append(f"{name}: dtype {dtype}, expected a float dtype")
  if problems:
    raise ValueError(f"{where} does not match the config ({len(problems)} tensor(s)): " + "; ".join(problems))
  return lm_plan, vision_names


def load_pretrained(directory, *, mesh=None, rules=None, dtype=None) -> tuple[InternVLConfig, dict[str, Any]]:
  """Reads a transformers InternVL checkpoint directory into `InternVLModel` params.

  Args:
    directory: holds config.json and model.safetensors, or model.safetensors.index.json + shards, in
      either tensor-name layout (see the module docstring).
    mesh: place every parameter sharded by its logical axes over this mesh; None: the default device.
    rules: logical axis rules for `mesh`; default `logical_rules` of all presets.
    dtype: parameter and compute dtype ("float32", "bfloat16", "float16"); None: config.json's
      `dtype` / `torch_dtype` when it is one of those, else float32.

  Returns:
    (config with text.dtype set, text_config's bos/eos/pad ids and the directory's
    generation_config.json as `text.generation_config` (None without one),
    {"vision_tower": ..., "projector": ..., "language_model": ...}).

  Raises:
    FileNotFoundError: no config.json or no safetensors checkpoint.
    ValueError: unsupported config (the key named), missing or unexpected tensors (all listed), shapes
      that do not match the config (tensors named), a bad dtype, rules without a mesh, config.json
      or the index not parsing (`JSONFileError`, file and line named), or a NaN / infinity in a
      tensor (`NonFiniteError`, tensor and file named).
  """
  directory = os.fspath(directory)
  hf_config = hf_common.read_config_json(directory, mesh=mesh, rules=rules)
  name = hf_common.resolve_dtype(dtype, hf_config)
  config = InternVLConfig.from_hf_dict(hf_config, dtype=name,
                                       generation_config=hf_generation.read_generation_config(directory))
  checkpoint = safetensors_io.Checkpoint(directory)
  layout = detect_layout(checkpoint.names)
  lm_plan, vision_names = _check_checkpoint(config, checkpoint, layout, f"checkpoint {directory}")
  np_dtype = jnp.dtype(name)

  vision = vision_hf.params_from_hf({n: checkpoint.read(n) for n in vision_names}, config.vision, config.projector,
                                    prefix=layout.vision_prefix, dtype=np_dtype)
  flat = {path: np.asarray(v) for path, v in traverse_util.flatten_dict(vision).items()}
  for hf_name, rule in lm_plan:
    flat[("language_model",) + rule.path] = np.ascontiguousarray(to_param(rule, [checkpoint.read(hf_name)]),
                                                                 dtype=np_dtype)
  shardings = {}
  if mesh is not None:
    rules = logical_rules(tuple(PRESETS)) if rules is None else rules
    shardings = traverse_util.flatten_dict(logical_to_shardings(_abstract_params(config), mesh, rules))
  params = {path: hf_common.place(host, shardings.get(path)) for path, host in flat.items()}
  return config, traverse_util.unflatten_dict(params)


def _check_params(config: InternVLConfig, params) -> dict[tuple[str, ...], Any]:
  """Flat {path: array} of `params`, checked against the config's tree (every problem listed)."""
  flat = hf_common.flat_params(params, "InternVLModel")
  hf_common.check_param_tree(flat, traverse_util.flatten_dict(nn.unbox(_abstract_params(config))))
  return flat


def is_export(directory) -> bool:
  """`directory` holds a checkpoint written by `save_pretrained`."""
  return hf_common.has_export_marker(directory, EXPORT_MARKER)


def save_pretrained(params, config: InternVLConfig, directory, *, overwrite: bool = False,
                    max_shard_bytes: int = 5 * 10**9) -> None:
  """Writes config.json and safetensors that transformers loads as `InternVLForConditionalGeneration`.

  Args:
    params: `InternVLModel` params (or {"params": params}).
    config: the model's config. The token ids of `config.text` go to config.json's text_config and
      `config.generation_config` (when not None) to generation_config.json, so transformers
      generates with the settings of the checkpoint the model was loaded from.
    directory: target (created if missing). Each file is written under a temporary name and
      renamed into place once all are written, so a failure leaves an earlier export loadable.
      Only config.json, generation_config.json (when written) and the weight files are replaced
      (with stale shards of an earlier export); other files, such as a tokenizer.json, are kept.
      A non-empty directory is written into only if an earlier `save_pretrained` wrote it, or
      with `overwrite=True`.
    overwrite: write into a non-empty directory that is not such an export.
    max_shard_bytes: above this size tensors are split into shards with an index.

  Raises:
    TypeError: `config` is not an InternVLConfig, or params are not a dict.
    ValueError: params do not match the config (all problems listed), or `directory` is a file or a
      foreign non-empty directory.
  """
  if not isinstance(config, InternVLConfig):
    raise TypeError(f"config must be an InternVLConfig, got {type(config).__name__}")
  hf_common.check_shard_bytes(max_shard_bytes)
  hf_config = config.to_hf_dict()
  directory = hf_common.prepare_export_dir(directory, overwrite=overwrite, marker=EXPORT_MARKER, what="InternVL")
  flat = _check_params(config, params)
  tree = traverse_util.unflatten_dict({k: np.asarray(jax.device_get(v)) for k, v in flat.items()})
  tensors = vision_hf.params_to_hf({"vision_tower": tree["vision_tower"], "projector": tree["projector"]},
                                   config.vision, config.projector, prefix=FILE_LAYOUT.vision_prefix)
  for hf_name, rule in lm_rules(config, FILE_LAYOUT):
    (value,) = from_param(rule, flat[("language_model",) + rule.path])
    tensors[hf_name] = np.ascontiguousarray(np.asarray(jax.device_get(value)))
  dtypes = {t.dtype.name for t in tensors.values()}
  dtype = dtypes.pop() if len(dtypes) == 1 else "float32"
  hf_config.update(dtype=dtype, torch_dtype=dtype)
  hf_config["text_config"].update(dtype=dtype, torch_dtype=dtype)
  names = safetensors_io.shard_names([(n, t.nbytes) for n, t in tensors.items()], max_shard_bytes)
  shards = [lambda shard=shard: {n: tensors[n] for n in shard} for shard in names]
  hf_common.write_checkpoint(directory, hf_config, shards, EXPORT_MARKER, generation_config=config.generation_config)
