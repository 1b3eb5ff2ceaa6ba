"""Saving and loading a trained DiT: `config.json` (the DiTConfig fields) + `params.msgpack`.

Each file is written to a temporary name and renamed into place (`jaxlab.files`); loading names the
file of broken JSON and the parameter holding a NaN or infinity.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import files
from jaxlab.flow.dit import DiT, DiTConfig

CONFIG_NAME = "config.json"
PARAMS_NAME = "params.msgpack"


def _config_to_json(config: DiTConfig) -> dict:
  fields = dataclasses.asdict(config)
  return {k: (jnp.dtype(v).name if k in ("dtype", "param_dtype") else v) for k, v in fields.items()}


def save_dit(directory: str | os.PathLike, config: DiTConfig, params, *, overwrite: bool = False) -> pathlib.Path:
  """Writes the model to `directory` (created); refuses to replace an existing model unless `overwrite`.

  Only config.json and params.msgpack are written, each under a temporary name first, so a failure
  leaves the files that were there readable; other files in `directory` are not touched.
  """
  directory = pathlib.Path(directory)
  if (directory / PARAMS_NAME).exists() and not overwrite:
    raise FileExistsError(f"{directory} already holds a model; pass overwrite=True to replace it")
  directory.mkdir(parents=True, exist_ok=True)
  # Plain arrays on disk: logical-axis boxes are metadata of the module, not of the weights.
  host_params = jax.tree.map(np.asarray, jax.device_get(nn.meta.unbox(params)))
  # Params first, config last: a crash in between leaves the old config, which `load_dit` checks the params against.
  files.write_bytes(directory / PARAMS_NAME, flax.serialization.to_bytes(host_params), overwrite=overwrite)
  files.write_json(directory / CONFIG_NAME, _config_to_json(config), sort_keys=False)
  return directory


def load_dit(directory: str | os.PathLike) -> tuple[DiT, DiTConfig, dict]:
  """(model, config, params) from a directory written by `save_dit`.

  Raises:
    FileNotFoundError: config.json or params.msgpack is missing.
    ValueError: config.json does not parse (file, line and column named) or has unknown fields,
      params.msgpack does not match it, or a parameter holds NaN or infinity (its path named).
  """
  directory = pathlib.Path(directory)
  missing = [name for name in (CONFIG_NAME, PARAMS_NAME) if not (directory / name).is_file()]
  if missing:
    raise FileNotFoundError(f"{directory} is not a saved DiT: missing {', '.join(missing)}")
  fields = files.read_json_object(directory / CONFIG_NAME)
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
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    files.require_finite(np.asarray(leaf), f"parameter {jax.tree_util.keystr(path)} in {directory / PARAMS_NAME}")
  return model, config, params
