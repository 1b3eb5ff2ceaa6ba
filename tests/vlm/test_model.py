"""InternVLModel without torch: image-feature splice, token-count errors, V2PE positions, generation, config, I/O."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.nn import v2pe_position_ids_batch
from jaxlab.vlm import (InternVisionConfig, InternVLConfig, InternVLModel, ProjectorConfig,
                        load_pretrained, save_pretrained, visual_token_layout)
from jaxlab.vlm import generate as vlm_generate
from jaxlab.vlm.model import init_variables

IMG = 7  # image_token_id
VISION = InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            image_size=(56, 56), patch_size=(14, 14), attention_bias=True)
TEXT = Qwen2Config(vocab_size=48, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, max_position_embeddings=64)
CONFIG = InternVLConfig(vision=VISION, projector=ProjectorConfig(16, 16), text=TEXT, image_token_id=IMG)
MODEL = InternVLModel(CONFIG)


@functools.lru_cache(maxsize=None)
def _params():
  """Every tensor random (drawn with numpy from the init's shapes, so no init is compiled)."""
  shapes = nn.unbox(jax.eval_shape(lambda key: init_variables(CONFIG, key), jax.random.key(0)))["params"]
  rng = np.random.default_rng(0)

  def draw(path, s):
    name = path[-1].key
    if name in ("scale", "q_norm", "k_norm"):
      value = 1.0 + 0.2 * rng.normal(size=s.shape)
    elif len(s.shape) >= 2 and name not in ("embedding", "position_embeddings"):
      value = rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]) if "patch" in name else s.shape[0])
    else:
      value = 0.5 * rng.normal(size=s.shape)
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _pixels(n, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(n, 56, 56, 3)), jnp.float32)


_forward = jax.jit(MODEL.apply)

@jax.jit
def _embeds_and_features(params, ids, pixels):
  embeds = MODEL.apply(params, ids, pixels, method=InternVLModel.embed_inputs)
  return embeds, MODEL.apply(params, pixels, method=InternVLModel.image_features)


def test_splice_puts_features_at_image_tokens_in_order():
  params = {"params": _params()}
  ids = np.array([[1, IMG, IMG, 3, IMG, 5, 9, 2], [IMG, IMG, IMG, 4, IMG, IMG, 6, 8]], np.int32)  # 3 + 5 = 2 tiles * 4
  pixels = _pixels(2)
  out_btd, features_ntd = _embeds_and_features(params, jnp.asarray(ids), pixels)
  features_md = np.asarray(features_ntd).reshape(8, 16)
  table_vd = np.asarray(params["params"]["language_model"]["embed"]["embedding"])
  expected, k = table_vd[ids].copy(), 0
  for b, t in zip(*np.nonzero(ids == IMG)):
    expected[b, t], k = features_md[k], k + 1
  np.testing.assert_allclose(out_btd, expected, rtol=1e-6, atol=1e-6)


def test_image_token_count_mismatch_names_both_counts():
  ids = jnp.asarray([[IMG] * 7 + [1]], jnp.int32)
  with pytest.raises(ValueError, match=r"7 image tokens.*2 tiles \* 4 = 8"):
    MODEL.apply({"params": _params()}, ids, _pixels(2))
  with pytest.raises(ValueError, match=r"7 image tokens"):
    vlm_generate(MODEL, _params(), ids, _pixels(2), max_new_tokens=2)
  with pytest.raises(ValueError, match="NHWC"):
    MODEL.apply({"params": _params()}, ids, _pixels(2)[..., :2])


def _prompt():
  ids = np.array([[0, 0, 1, IMG, IMG, IMG, IMG, 3, 4], [5, 6, IMG, IMG, IMG, IMG, 9, 10, 11]], np.int32)
  mask = np.array([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 9], np.int32)
  return jnp.asarray(ids), jnp.asarray(mask)


def test_v2pe_delta_one_equals_default_positions():
  ids, mask = _prompt()
  is_visual, image_index = zip(*(visual_token_layout(row, IMG) for row in np.asarray(ids)))
  positions = v2pe_position_ids_batch(np.stack(is_visual), np.stack(image_index), [[1.0], [1.0]], np.asarray(mask))
  assert jnp.asarray(positions).dtype == jnp.float32
  params = {"params": _params()}
  default, _ = _forward(params, ids, _pixels(2), attention_mask_bt=mask)
  v2pe, _ = _forward(params, ids, _pixels(2), attention_mask_bt=mask, positions_bt=jnp.asarray(positions))
  real = np.asarray(mask, bool)
  np.testing.assert_allclose(np.asarray(v2pe)[real], np.asarray(default)[real], rtol=1e-5, atol=1e-5)
  # Fractional positions do change the logits after the image.
  frac = v2pe_position_ids_batch(np.stack(is_visual), np.stack(image_index), [[0.25], [0.25]], np.asarray(mask))
  other, _ = _forward(params, ids, _pixels(2), attention_mask_bt=mask, positions_bt=jnp.asarray(frac))
  assert not np.allclose(np.asarray(other)[:, -1], np.asarray(default)[:, -1], atol=1e-4)


def test_generation_with_and_without_cache_agree_and_follow_the_logits():
  ids, mask = _prompt()
  params = _params()
  with_cache = vlm_generate(MODEL, params, ids, _pixels(2), mask, max_new_tokens=6)
  without = vlm_generate(MODEL, params, ids, _pixels(2), mask, max_new_tokens=6, use_cache=False)
  np.testing.assert_array_equal(with_cache, without)
  # The first token is the argmax of the full forward pass (image features included).
  logits, _ = _forward({"params": params}, ids, _pixels(2), attention_mask_bt=mask)
  np.testing.assert_array_equal(with_cache[:, 0], np.argmax(logits[:, -1], axis=-1))
  assert len(set(np.asarray(with_cache).ravel().tolist())) > 1  # Not a constant sequence.


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(max_new_tokens=4, method="beam"), "method"),
    (dict(max_new_tokens=4, method="sample"), "key"), (dict(max_new_tokens=4, pad_id=48), "pad_id")])
def test_generation_arguments_are_checked_before_the_vision_tower_runs(monkeypatch, kwargs, match):
  generate_module = importlib.import_module("jaxlab.vlm.generate")  # jaxlab.vlm.generate is also the function.

  def vision_must_not_run(*args, **kw):
    raise AssertionError("the prompt embeddings were computed before the arguments were checked")

  monkeypatch.setattr(generate_module, "_prompt_embeds", vision_must_not_run)
  ids, mask = _prompt()
  with pytest.raises(ValueError, match=match):
    vlm_generate(MODEL, {"vision_tower": {}, "projector": {}, "language_model": {}}, ids, _pixels(2), mask, **kwargs)


def test_config_round_trips_and_refuses_unsupported_options():
  d = CONFIG.to_hf_dict()
  assert InternVLConfig.from_hf_dict(json.loads(json.dumps(d))) == CONFIG
  for key, value, match in [("vision_feature_layer", [-1, -2], "vision_feature_layer"),
                            ("vision_feature_select_strategy", "full", "vision_feature_select_strategy"),
                            ("model_type", "llava", "model_type"),
                            ("image_token_id", 48, "image_token_id")]:
    with pytest.raises(ValueError, match=match):
      InternVLConfig.from_hf_dict({**d, key: value})
  with pytest.raises(ValueError, match="text_config.model_type"):
    InternVLConfig.from_hf_dict({**d, "text_config": {**d["text_config"], "model_type": "llama"}})
  with pytest.raises(ValueError, match="rope_type"):
    InternVLConfig.from_hf_dict({**d, "text_config": {**d["text_config"], "rope_scaling": {"rope_type": "yarn"}}})
  with pytest.raises(ValueError, match="text_hidden_size"):
    dataclasses.replace(CONFIG, projector=ProjectorConfig(16, 32))


def test_save_then_load_is_exact_in_both_layouts(tmp_path):
  params = _params()
  save_pretrained(params, CONFIG, tmp_path / "out")
  tensors = load_file(tmp_path / "out" / "model.safetensors")
  assert "language_model.model.embed_tokens.weight" in tensors and "language_model.lm_head.weight" in tensors
  assert "vision_tower.embeddings.cls_token" in tensors and "multi_modal_projector.linear_1.weight" in tensors
  np.testing.assert_array_equal(tensors["language_model.model.layers.0.mlp.down_proj.weight"],
                                np.asarray(params["language_model"]["layers_0"]["mlp"]["down"]["kernel"]).T)
  config, loaded = load_pretrained(tmp_path / "out")
  assert config == CONFIG
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  # transformers' module names ("model.language_model.", "lm_head.") load to the same params.
  module = {}
  for name, value in tensors.items():
    if name.startswith("language_model.model."):
      name = "model.language_model." + name[len("language_model.model."):]
    elif name == "language_model.lm_head.weight":
      name = "lm_head.weight"
    else:
      name = "model." + name
    module[name] = value
  (tmp_path / "module").mkdir()
  save_file(module, tmp_path / "module" / "model.safetensors")
  (tmp_path / "module" / "config.json").write_text((tmp_path / "out" / "config.json").read_text())
  _, loaded2 = load_pretrained(tmp_path / "module")
  jax.tree.map(np.testing.assert_array_equal, loaded2, params)
  # Missing and unexpected tensors are named.
  module.pop("model.language_model.layers.0.mlp.up_proj.weight")
  module["model.language_model.extra.weight"] = np.zeros((2,), np.float32)
  save_file(module, tmp_path / "module" / "model.safetensors")
  with pytest.raises(ValueError, match=r"layers\.0\.mlp\.up_proj\.weight.*model\.language_model\.extra\.weight"):
    load_pretrained(tmp_path / "module")
