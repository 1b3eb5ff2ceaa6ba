"""Saving and loading a trained DiT: `config.json` (the DiTConfig fields) + `params.msgpack`."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.flow.dit import DiT, DiTConfig

CONFIG_NAME = "config.json"
PARAMS_NAME = "params.msgpack"


def _config_to_json(config: DiTConfig) -> dict:
  fields = dataclasses.asdict(config)
  return {k: (jnp.dtype(v).name if k in ("dtype", "param_dtype") else v) for k, v in fields.items()}


def save_dit(directory: str | os.PathLike, config: DiTConfig, params, *, overwrite: bool = False) -> pathlib.Path:
  """Writes the model to `directory` (created); refuses to replace an existing model unless `overwrite`."""
  directory = pathlib.Path(directory)
  if (directory / PARAMS_NAME).exists() and not overwrite:
    raise FileExistsError(f"{directory} already holds a model; pass overwrite=True to replace it")
  directory.mkdir(parents=True, exist_ok=True)
  # Plain arrays on disk: logical-axis boxes are metadata of the module, not of the weights.
  host_params = jax.tree.map(np.asarray, jax.device_get(nn.meta.unbox(params)))
  # Write beside the target, then rename: a crash never leaves a half-written model.
  for name, payload in ((PARAMS_NAME, flax.serialization.to_bytes(host_params)),
                        (CONFIG_NAME, (json.dumps(_config_to_json(config), indent=2) + "\n").encode())):
    tmp = directory / (name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(directory / name)
  return directory


def load_dit(directory: str | os.PathLike) -> tuple[DiT, DiTConfig, dict]:
  """(model, config, params) from a directory written by `save_dit`."""
  directory = pathlib.Path(directory)
  missing = [name for name in (CONFIG_NAME, PARAMS_NAME) if not (directory / name).is_file()]
  if missing:
    raise FileNotFoundError(f"{directory} is not a saved DiT: missing {', '.join(missing)}")
  fields = json.loads((directory / CONFIG_NAME).read_text())
  known = {f.name for f in dataclasses.fields(DiTConfig)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"{directory / CONFIG_NAME} has fields DiTConfig does not know: {unknown}")
  for key in ("dtype", "param_dtype"):
    if key in fields:
      fields[key] = jnp.dtype(fields[key])
  config = DiTConfig(**fields)
  model = DiT(config)
  dummy = jnp.zeros((1, config.image_size, config.image_size, config.in_channels), jnp.float32)
  labels = None if config.num_classes == 0 else jnp.zeros((1,), jnp.int32)
  template = nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), dummy, jnp.ones((1,)), labels))["params"])
  template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
  params = flax.serialization.from_bytes(template, (directory / PARAMS_NAME).read_bytes())
  wrong = [f"{jax.tree_util.keystr(path)}: {np.shape(got)} != {want.shape}"
           for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(template))
           if np.shape(got) != want.shape]
  if wrong:
    raise ValueError(f"{directory / PARAMS_NAME} does not match {CONFIG_NAME}: " + "; ".join(wrong[:5]))
  return model, config, params
