"""InternVL checkpoint I/O without torch: a save keeps the other files of the folder; NaN / inf weights are
refused by name, in the vision tower as in the language model."""

from __future__ import annotations

import functools
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.vlm import InternVisionConfig, InternVLConfig, ProjectorConfig, load_pretrained, save_pretrained
from jaxlab.vlm.model import init_variables

VISION = InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            image_size=(28, 28), patch_size=(14, 14), attention_bias=True)
TEXT = Qwen2Config(vocab_size=48, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, max_position_embeddings=64)
CONFIG = InternVLConfig(vision=VISION, projector=ProjectorConfig(16, 16), text=TEXT, image_token_id=7)


@functools.lru_cache(maxsize=None)
def _shapes():
  return nn.unbox(jax.eval_shape(lambda key: init_variables(CONFIG, key), jax.random.key(0)))["params"]


def _params(seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), _shapes())


def test_save_keeps_the_tokenizer_and_drops_only_its_own_stale_shards(tmp_path):
  out = tmp_path / "out"
  save_pretrained(_params(0), CONFIG, out, max_shard_bytes=6000)
  (out / "tokenizer.json").write_text('{"added_tokens": []}')
  (out / "preprocessor_config.json").write_text('{"image_size": 28}')
  kept = {name: (out / name).read_bytes() for name in ("tokenizer.json", "preprocessor_config.json")}
  params = _params(1)
  save_pretrained(params, CONFIG, out)
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"]
  assert {name: (out / name).read_bytes() for name in kept} == kept
  jax.tree.map(np.testing.assert_array_equal, load_pretrained(out)[1], params)


@pytest.mark.parametrize("name", ["vision_tower.embeddings.patch_embeddings.projection.weight",
                                  "language_model.model.layers.0.mlp.up_proj.weight"])
def test_non_finite_weight_is_refused_naming_the_tensor(tmp_path, name):
  save_pretrained(_params(2), CONFIG, tmp_path / "good")
  tensors = load_file(tmp_path / "good" / "model.safetensors")
  tensors[name].reshape(-1)[3] = -np.inf
  os.makedirs(tmp_path / "bad")
  save_file(tensors, tmp_path / "bad" / "model.safetensors", metadata={"format": "pt"})
  (tmp_path / "bad" / "config.json").write_bytes((tmp_path / "good" / "config.json").read_bytes())
  message = re.escape(f"tensor '{name}' in {tmp_path / 'bad' / 'model.safetensors'} holds 1 non-finite value(s)")
  with pytest.raises(ValueError, match=message):
    load_pretrained(tmp_path / "bad")
