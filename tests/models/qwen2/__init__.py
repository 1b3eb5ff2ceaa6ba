"""Tests of jaxlab.models.qwen2, and `random_params`, drawn with numpy so that no test compiles an init."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM


def random_params(config: Qwen2Config, seed: int = 0) -> dict:
  """Params of `config`'s tree: kernels N(0, 1/fan_in), embeddings N(0, 1), gains 1 + N(0, 0.04), biases N(0, 0.04)."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(Qwen2LM(config).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32)))

  def draw(path, s):
    name = path[-1].key
    if name == "scale":
      value = 1.0 + 0.2 * rng.normal(size=s.shape)
    elif name == "bias":
      value = 0.2 * rng.normal(size=s.shape)
    elif name == "embedding":
      value = rng.normal(size=s.shape)
    else:  # Kernels [K, N]: fan-in K.
      value = rng.normal(size=s.shape) / np.sqrt(s.shape[0])
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes["params"])
