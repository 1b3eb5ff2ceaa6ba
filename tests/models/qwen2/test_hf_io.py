"""Qwen2 checkpoint I/O without torch: other files of the export folder survive a save; NaN / inf weights
and broken JSON are refused by name."""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxlab.models.qwen2 import Qwen2Config, load_pretrained, save_pretrained

from . import random_params

SMALL = Qwen2Config(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, max_position_embeddings=64)


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_into_an_export_keeps_the_tokenizer_and_readme(tmp_path):
  out = tmp_path / "out"
  save_pretrained(random_params(SMALL, seed=0), SMALL, out, max_shard_bytes=4000)
  (out / "tokenizer.json").write_text('{"added_tokens": []}')
  (out / "README.md").write_text("# Qwen2 fine-tune\n")
  kept = {name: (out / name).read_bytes() for name in ("tokenizer.json", "README.md")}
  params = random_params(SMALL, seed=1)
  save_pretrained(params, SMALL, out)  # Sharded -> single file: the old shards and index go, nothing else.
  assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
  assert {name: (out / name).read_bytes() for name in kept} == kept
  _assert_trees_equal(load_pretrained(out)[1], params)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_weight_is_refused_naming_the_tensor(tmp_path, value):
  save_pretrained(random_params(SMALL, seed=2), SMALL, tmp_path / "good")
  tensors = load_file(tmp_path / "good" / "model.safetensors")
  tensors["model.layers.1.self_attn.q_proj.bias"][5] = value
  os.makedirs(tmp_path / "bad")
  save_file(tensors, tmp_path / "bad" / "model.safetensors", metadata={"format": "pt"})
  (tmp_path / "bad" / "config.json").write_bytes((tmp_path / "good" / "config.json").read_bytes())
  message = re.escape(f"tensor 'model.layers.1.self_attn.q_proj.bias' in {tmp_path / 'bad' / 'model.safetensors'}")
  message += r" holds 1 non-finite value\(s\) \(NaN or inf\), the first at index \(5,\)"
  with pytest.raises(ValueError, match=message):
    load_pretrained(tmp_path / "bad")


def test_broken_config_json_names_the_file(tmp_path):
  save_pretrained(random_params(SMALL, seed=3), SMALL, tmp_path / "out")
  (tmp_path / "out" / "config.json").write_text('{"model_type": "qwen2", }')
  message = re.escape(f"{tmp_path / 'out' / 'config.json'} is not valid JSON: ")
  with pytest.raises(ValueError, match=message + r".* line 1, column 25"):
    load_pretrained(tmp_path / "out")
