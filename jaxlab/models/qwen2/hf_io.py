"""transformers `Qwen2ForCausalLM` checkpoints <-> `Qwen2LM` params: `load_pretrained` and `save_pretrained`.

Tensor names (torch Linear weights are [out, in]; kernels are their transpose):

  model.embed_tokens.weight [V, D]                        -> embed/embedding
  model.layers.{i}.input_layernorm.weight                 -> layers_{i}/input_norm/scale
  model.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}   -> layers_{i}/attention/{q,k,v}/{kernel,bias}
  model.layers.{i}.self_attn.o_proj.weight                -> layers_{i}/attention/o/kernel
  model.layers.{i}.post_attention_layernorm.weight        -> layers_{i}/post_attention_norm/scale
  model.layers.{i}.mlp.{gate,up,down}_proj.weight         -> layers_{i}/mlp/{gate,up,down}/kernel
  model.norm.weight                                       -> final_norm/scale
  lm_head.weight [V, D]                                   -> lm_head/kernel (absent, or ignored, when tied)

Reading and writing safetensors (single file or sharded index), the per-tensor transposes and the
file-by-file atomic export (other files in the directory kept) are those of `jaxlab.models.hf_mapping` and
`jaxlab.models.hf_common`; the token ids and generation_config.json carried from load to export, those of
`jaxlab.models.hf_generation`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlab.models import hf_common, hf_generation, safetensors_io
from jaxlab.models.hf_mapping import Rule, from_param, to_param
from jaxlab.models.qwen2.config import Qwen2Config
from jaxlab.models.qwen2.model import Qwen2LM
from jaxlab.sharding import PRESETS, logical_rules, logical_to_shardings

CONFIG_NAME = hf_common.CONFIG_NAME
# Marks files written by `save_pretrained`, so a later export may replace them without overwrite=True.
EXPORT_MARKER = ("jaxlab_export", "Qwen2LM")
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
# Tensors transformers itself skips when loading.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


def hf_rules(config: Qwen2Config) -> list[Rule]:
  """Every `Qwen2LM` parameter's rule: its path, the checkpoint tensor it comes from, that tensor's shape."""
  c = config
  d, v, hd = c.hidden_size, c.vocab_size, c.head_dim
  widths = {"q": c.num_attention_heads * hd, "k": c.num_key_value_heads * hd, "v": c.num_key_value_heads * hd}
  out = [Rule(("embed", "embedding"), ("model.embed_tokens.weight",), ((v, d),), "copy")]
  for i in range(c.num_hidden_layers):
    p, lp = f"model.layers.{i}", (f"layers_{i}",)
    out.append(Rule(lp + ("input_norm", "scale"), (f"{p}.input_layernorm.weight",), ((d,),), "copy"))
    for proj, width in widths.items():
      name = f"{p}.self_attn.{proj}_proj"
      out.append(Rule(lp + ("attention", proj, "kernel"), (f"{name}.weight",), ((width, d),), "linear"))
      if c.attention_bias:
        out.append(Rule(lp + ("attention", proj, "bias"), (f"{name}.bias",), ((width,),), "copy"))
    out.append(Rule(lp + ("attention", "o", "kernel"), (f"{p}.self_attn.o_proj.weight",), ((d, widths["q"]),),
                    "linear"))
    out.append(Rule(lp + ("post_attention_norm", "scale"), (f"{p}.post_attention_layernorm.weight",), ((d,),),
                    "copy"))
    f = c.intermediate_size
    for proj, shape in (("gate", (f, d)), ("up", (f, d)), ("down", (d, f))):
      out.append(Rule(lp + ("mlp", proj, "kernel"), (f"{p}.mlp.{proj}_proj.weight",), (shape,), "linear"))
  out.append(Rule(("final_norm", "scale"), ("model.norm.weight",), ((d,),), "copy"))
  if not c.tie_word_embeddings:
    out.append(Rule(("lm_head", "kernel"), ("lm_head.weight",), ((v, d),), "linear"))
  return out


def _is_ignored(config: Qwen2Config, name: str) -> bool:
  return bool(_IGNORED.search(name)) or (config.tie_word_embeddings and name == "lm_head.weight")


def _check_checkpoint(config: Qwen2Config, checkpoint: safetensors_io.Checkpoint, where: str) -> list[Rule]:
  """The rules to load; raises listing every missing / unexpected tensor, or every bad shape or dtype."""
  plan = hf_rules(config)
  present = set(checkpoint.names)
  expected = {rule.names[0] for rule in plan}
  missing = [rule.names[0] for rule in plan if rule.names[0] not in present]
  unexpected = sorted(n for n in present if n not in expected and not _is_ignored(config, n))
  if missing or unexpected:
    raise ValueError(
        f"{where} does not match the Qwen2 config: {len(missing)} missing tensor(s): {missing}; "
        f"{len(unexpected)} unexpected tensor(s): {unexpected}"
    )
  problems = []
  for rule in plan:
    name, shape = rule.names[0], rule.shapes[0]
    got, dtype = checkpoint.shape(name), checkpoint.dtype_name(name)
    if got != shape:
      problems.append(f"{name}: shape {list(got)}, expected {list(shape)}")
    elif dtype not in _FLOAT_DTYPES:
      problems.append(f"{name}: dtype {dtype}, expected a float dtype")
  if problems:
    raise ValueError(f"{where} does not match the config ({len(problems)} tensor(s)): " + "; ".join(problems))
  return plan


def _abstract_params(config: Qwen2Config):
  """The boxed param tree's shapes (no allocation)."""
  return jax.eval_shape(Qwen2LM(config).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32))["params"]


def load_pretrained(directory, *, mesh=None, rules=None, dtype=None) -> tuple[Qwen2Config, dict[str, Any]]:
  """Reads a transformers Qwen2 / Qwen2.5 checkpoint directory into `Qwen2LM` params.

  Args:
    directory: holds config.json and model.safetensors, or model.safetensors.index.json + shards.
    mesh: place every parameter sharded by its logical axes over this mesh (each device receives
      only its slice); None: the default device.
    rules: logical axis rules for `mesh`; default `logical_rules` of all presets.
    dtype: parameter and compute dtype ("float32", "bfloat16", "float16"); None: config.json's
      `dtype` / `torch_dtype` when it is one of those, else float32.

  Returns:
    (config with `dtype` set, config.json's bos/eos/pad ids and the directory's generation_config.json
    as `generation_config` (None without one), nested dict of params in `Qwen2LM`'s tree).

  Raises:
    FileNotFoundError: no config.json or no safetensors checkpoint.
    ValueError: unsupported config (the key named), missing or unexpected tensors (all listed), a
      shape that does not match the config (tensor named), a bad dtype, rules without a mesh,
      config.json or the index not parsing (`JSONFileError`, file and line named), or a NaN /
      infinity in a tensor (`NonFiniteError`, tensor and file named).
  """
  directory = os.fspath(directory)
  hf_config = hf_common.read_config_json(directory, mesh=mesh, rules=rules)
  name = hf_common.resolve_dtype(dtype, hf_config)
  config = Qwen2Config.from_hf_dict(hf_config, dtype=name,
                                    generation_config=hf_generation.read_generation_config(directory))
  checkpoint = safetensors_io.Checkpoint(directory)
  plan = _check_checkpoint(config, checkpoint, f"checkpoint {directory}")
  shardings = {}
  if mesh is not None:
    rules = logical_rules(tuple(PRESETS)) if rules is None else rules
    shardings = traverse_util.flatten_dict(logical_to_shardings(_abstract_params(config), mesh, rules))
  np_dtype = jnp.dtype(name)
  params = {}
  for rule in plan:
    host = np.ascontiguousarray(to_param(rule, [checkpoint.read(rule.names[0])]), dtype=np_dtype)
    params[rule.path] = hf_common.place(host, shardings.get(rule.path))
  return config, traverse_util.unflatten_dict(params)


def _check_params(config: Qwen2Config, params) -> dict[tuple[str, ...], Any]:
  """Flat {path: array} of `params`, checked against the config's tree (every problem listed)."""
  flat = hf_common.flat_params(params, "Qwen2LM")
  hf_common.check_param_tree(flat, traverse_util.flatten_dict(nn.unbox(_abstract_params(config))))
  return flat


def is_export(directory) -> bool:
  """`directory` holds a checkpoint written by `save_pretrained`."""
  return hf_common.has_export_marker(directory, EXPORT_MARKER)


def save_pretrained(params, config: Qwen2Config, directory, *, overwrite: bool = False,
                    max_shard_bytes: int = 5 * 10**9) -> None:
  """Writes config.json and safetensors that transformers loads as `Qwen2ForCausalLM`.

  Args:
    params: `Qwen2LM` params (or {"params": params}).
    config: the model's config. Its bos/eos/pad token ids go to config.json and its
      `generation_config` (when not None) to generation_config.json, so transformers generates
      with the settings of the checkpoint the model was loaded from.
    directory: target (created if missing). Each file is written under a temporary name and
      renamed into place once all are written, so a failure leaves an earlier export loadable.
      Only config.json, generation_config.json (when written) and the weight files are replaced
      (with stale shards of an earlier export); other files, such as a tokenizer.json, are kept.
      A non-empty directory is written into only if an earlier `save_pretrained` wrote it, or
      with `overwrite=True`.
    overwrite: write into a non-empty directory that is not such an export.
    max_shard_bytes: above this size tensors are split into shards with an index (whole tensors
      per shard), as transformers does.

  Raises:
    TypeError: `config` is not a Qwen2Config, or params are not a dict.
    ValueError: params do not match the config (all problems listed), the config has no
      transformers equivalent, or `directory` is a file or a foreign non-empty directory.
  """
  if not isinstance(config, Qwen2Config):
    raise TypeError(f"config must be a Qwen2Config, got {type(config).__name__}")
  hf_common.check_shard_bytes(max_shard_bytes)
  hf_config = config.to_hf_dict()
  directory = hf_common.prepare_export_dir(directory, overwrite=overwrite, marker=EXPORT_MARKER, what="Qwen2")
  flat = _check_params(config, params)
  plan = hf_rules(config)
  dtype, shards = hf_common.rule_shards(flat, plan, max_shard_bytes, from_param)
  hf_common.write_checkpoint(directory, dict(hf_config, dtype=dtype, torch_dtype=dtype), shards, EXPORT_MARKER,
                             generation_config=config.generation_config)
