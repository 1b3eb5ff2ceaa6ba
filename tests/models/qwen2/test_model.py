"""Qwen2LM and Qwen2Config: config.json, padding, KV cache, fractional positions, embeddings, sharding, errors."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import _compat
from jaxlab.models.qwen2 import KVCache, Qwen2Config, Qwen2LM, init_cache
from jaxlab.nn import rope_cos_sin
from jaxlab.sharding import assert_params_sharded, axis_rules, logical_rules, logical_to_shardings, make_mesh

from . import random_params

CONFIG = Qwen2Config(vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=24)


PARAMS = random_params(CONFIG)
TOKENS = jnp.asarray(np.random.default_rng(1).integers(0, CONFIG.vocab_size, size=(2, 8)), jnp.int32)


@functools.lru_cache(maxsize=None)
def _apply(config: Qwen2Config, method=None):
  return jax.jit(functools.partial(Qwen2LM(config).apply, method=method))


def forward(tokens=None, config=CONFIG, params=PARAMS, **kwargs):
  return _apply(config)({"params": params}, tokens, **kwargs)


# Config.json.


def test_config_round_trips_through_hf_dict_and_defaults_head_dim():
  config = Qwen2Config.from_hf_dict(dict(CONFIG.to_hf_dict(), eos_token_id=[5, 7]))
  assert config == dataclasses.replace(CONFIG, eos_token_id=(5, 7))
  assert config.head_dim == 32 // 4 and config.num_key_value_heads == 2
  hf = CONFIG.to_hf_dict()
  assert hf["model_type"] == "qwen2" and hf["architectures"] == ["Qwen2ForCausalLM"]
  minimal = {k: hf[k] for k in ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads")}
  config = Qwen2Config.from_hf_dict(minimal)
  assert config.num_key_value_heads == 4 and config.head_dim == 8 and config.rope_theta == 10_000.0


@pytest.mark.parametrize("edit, match", [
    ({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}, "yarn"),
    ({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e6}}, "dynamic"),
    ({"use_sliding_window": True, "sliding_window": 4096}, "use_sliding_window"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "sliding_attention"),
    ({"hidden_act": "gelu"}, "gelu"),
    ({"model_type": "llama"}, "llama"),
    ({"intermediate_size": None}, "intermediate_size"),
])
def test_unsupported_config_json_names_the_option(edit, match):
  with pytest.raises(ValueError, match=match):
    Qwen2Config.from_hf_dict(dict(CONFIG.to_hf_dict(), **edit))


def test_bad_config_fields_raise():
  with pytest.raises(ValueError, match="num_key_value_heads"):
    dataclasses.replace(CONFIG, num_key_value_heads=3)
  with pytest.raises(ValueError, match="dtype"):
    dataclasses.replace(CONFIG, dtype="float64")
  with pytest.raises(ValueError, match="head_dim"):
    dataclasses.replace(CONFIG, head_dim=7)
  with pytest.raises(ValueError, match="attention_bias"):
    dataclasses.replace(CONFIG, attention_bias=False).to_hf_dict()


# Parameters and sharding.


def test_params_carry_logical_axes():
  boxed = jax.eval_shape(Qwen2LM(CONFIG).init, jax.random.key(0), TOKENS)["params"]
  attention = boxed["layers_0"]["attention"]
  assert attention["q"]["kernel"].names == ("embed", "heads")
  assert attention["k"]["kernel"].names == ("embed", "kv_heads")
  assert attention["o"]["kernel"].names == ("heads", "embed")
  assert "bias" in attention["q"] and "bias" not in attention["o"]
  assert boxed["layers_0"]["mlp"]["down"]["kernel"].names == ("mlp", "embed")
  assert boxed["embed"]["embedding"].names == ("vocab", "embed")
  assert boxed["lm_head"]["kernel"].names == ("embed", "vocab")
  tied = jax.eval_shape(Qwen2LM(dataclasses.replace(CONFIG, tie_word_embeddings=True)).init, jax.random.key(0), TOKENS)
  assert "lm_head" not in tied["params"]


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_sharded_forward_matches_unsharded():
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2, "expert": 1})
  rules = logical_rules(("fsdp", "tensor"))
  boxed = jax.eval_shape(Qwen2LM(CONFIG).init, jax.random.key(0), TOKENS)["params"]
  params = jax.device_put(PARAMS, logical_to_shardings(boxed, mesh, rules))
  assert_params_sharded(params, min_size=256)
  assert tuple(params["layers_0"]["attention"]["q"]["kernel"].sharding.spec) == ("fsdp", "tensor")
  assert tuple(params["layers_0"]["mlp"]["down"]["kernel"].sharding.spec) == ("tensor", "fsdp")
  with axis_rules(rules), _compat.set_mesh(mesh):
    sharded, _ = jax.jit(Qwen2LM(CONFIG).apply)({"params": params}, TOKENS)
  np.testing.assert_allclose(sharded, forward(TOKENS)[0], rtol=1e-5, atol=1e-5)


# Positions, padding, embeddings.


def test_float_positions_equal_integer_positions_bit_for_bit():
  positions_int = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32) + 3, (2, 8))
  by_int, _ = forward(TOKENS, positions_bt=positions_int)
  by_float, _ = forward(TOKENS, positions_bt=positions_int.astype(jnp.float32))
  np.testing.assert_array_equal(by_int, by_float)
  default, _ = forward(TOKENS)
  np.testing.assert_allclose(by_int, default, rtol=1e-4, atol=1e-4)  # RoPE sees only relative positions.


def test_fractional_positions_are_not_rounded():
  # Rotary angles at a fractional position are the formula's, not those of a rounded position.
  positions_bt = jnp.asarray([[0.0, 0.25, 2.5, 7.75]], jnp.float32)
  cos_btk, sin_btk = rope_cos_sin(positions_bt, 8, 10_000.0, jnp.float32)
  inv_freq = 10_000.0 ** (-np.arange(0, 8, 2) / 8)
  angles = np.concatenate([np.asarray(positions_bt)[..., None] * inv_freq] * 2, axis=-1)
  np.testing.assert_allclose(cos_btk, np.cos(angles), atol=1e-6)
  np.testing.assert_allclose(sin_btk, np.sin(angles), atol=1e-6)
  # Through the model: a half-step shift of every position changes nothing (relative positions),
  # while half-step spacing (V2PE) differs from the rounded spacing.
  base = jnp.broadcast_to(jnp.arange(8, dtype=jnp.float32), (2, 8))
  shifted, _ = forward(TOKENS, positions_bt=base + 0.5)
  np.testing.assert_allclose(shifted, forward(TOKENS, positions_bt=base)[0], rtol=1e-4, atol=1e-4)
  half, _ = forward(TOKENS, positions_bt=base * 0.5)
  rounded, _ = forward(TOKENS, positions_bt=jnp.round(base * 0.5))
  assert np.abs(np.asarray(half) - np.asarray(rounded)).max() > 1e-3


def test_left_padding_does_not_change_real_tokens():
  # Row 0: the prompt left padded by 3; row 1: the same prompt first, then 3 tokens that must not matter.
  prompt = TOKENS[1, :5]
  tokens = jnp.stack([jnp.concatenate([jnp.full((3,), 7, jnp.int32), prompt]),
                      jnp.concatenate([prompt, TOKENS[0, :3]])])
  mask = jnp.asarray([[0, 0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]])
  got, _ = forward(tokens, attention_mask_bt=mask)
  np.testing.assert_allclose(got[0, 3:], got[1, :5], rtol=1e-5, atol=1e-5)
  unmasked, _ = forward(tokens)
  assert np.abs(np.asarray(unmasked[0, 3:]) - np.asarray(got[0, 3:])).max() > 1e-2  # The mask does something.


def test_inputs_embeds_path_equals_tokens_and_splices():
  embeds = _apply(CONFIG, Qwen2LM.embed)({"params": PARAMS}, TOKENS)
  assert embeds.shape == (2, 8, CONFIG.hidden_size)
  from_tokens, _ = forward(TOKENS)
  from_embeds, _ = forward(inputs_embeds_btd=embeds)
  np.testing.assert_array_equal(from_tokens, from_embeds)
  spliced = embeds.at[:, 4].set(jax.random.normal(jax.random.key(3), (2, CONFIG.hidden_size)))
  out, _ = forward(inputs_embeds_btd=spliced)
  np.testing.assert_array_equal(out[:, :4], from_tokens[:, :4])  # Causal: earlier tokens do not see it.
  assert np.abs(np.asarray(out[:, 4:]) - np.asarray(from_tokens[:, 4:])).min() > 0


# KV cache.


def _decode(cache, tokens_bt, **prefill_kwargs):
  """Prefills 5 tokens of each row, then feeds the remaining ones one at a time; returns (logits, caches)."""
  step = _apply(CONFIG)
  variables = {"params": PARAMS}
  logits, cache = step(variables, tokens_bt[:, :5], cache=cache, **prefill_kwargs)
  outs, caches = [logits], [cache]
  for i in range(5, tokens_bt.shape[1]):
    logits, cache = step(variables, tokens_bt[:, i:i + 1], cache=cache)
    outs.append(logits)
    caches.append(cache)
  return np.concatenate(outs, axis=1), caches


def test_prefill_then_decode_equals_full_forward():
  mask = jnp.asarray([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
  full, none = forward(TOKENS, attention_mask_bt=mask)
  assert none is None
  decoded, caches = _decode(init_cache(CONFIG, 2, 10), TOKENS, attention_mask_bt=mask[:, :5])
  valid = np.asarray(mask, bool)
  np.testing.assert_allclose(decoded[valid], np.asarray(full)[valid], rtol=1e-5, atol=1e-5)
  prefill, last = caches[0], caches[-1]
  assert int(prefill.index) == 5 and prefill.length_b.tolist() == [3, 5] and prefill.next_position_b.tolist() == [3, 5]
  assert isinstance(last, KVCache) and last.capacity == 10 and int(last.index) == 8
  assert last.keys[1].shape == (2, 10, 2, 8) and last.valid_bs.tolist()[0] == [0, 0] + [1] * 6 + [0, 0]
  assert last.length_b.tolist() == [6, 8] and last.next_position_b.tolist() == [6, 8]


def test_decode_positions_continue_from_fractional_prefill():
  prefill_bt = jnp.asarray([[0, 1, 1.5, 2, 2.5]] * 2, jnp.float32)
  decoded, caches = _decode(init_cache(CONFIG, 2, 10), TOKENS, positions_bt=prefill_bt)
  assert caches[0].next_position_b.tolist() == [3.5, 3.5] and caches[-1].next_position_b.tolist() == [6.5, 6.5]
  positions_bt = jnp.concatenate([prefill_bt, jnp.asarray([[3.5, 4.5, 5.5]] * 2, jnp.float32)], axis=1)
  full, _ = forward(TOKENS, positions_bt=positions_bt)
  np.testing.assert_allclose(decoded, full, rtol=1e-5, atol=1e-5)


# Bad inputs.


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(), ValueError, "exactly one"),
    (dict(tokens=TOKENS, inputs_embeds_btd=jnp.zeros((2, 8, 32))), ValueError, "exactly one"),
    (dict(tokens=TOKENS[0]), ValueError, "tokens_bt"),
    (dict(tokens=TOKENS.astype(jnp.float32)), TypeError, "integer"),
    (dict(tokens=TOKENS.at[0, 0].set(48)), ValueError, "vocabulary"),
    (dict(inputs_embeds_btd=jnp.zeros((2, 8, 16))), ValueError, "D=32"),
    (dict(tokens=TOKENS, attention_mask_bt=jnp.ones((2, 7))), ValueError, "attention_mask_bt"),
    (dict(tokens=TOKENS, positions_bt=jnp.zeros((1, 8))), ValueError, "positions_bt"),
    (dict(tokens=TOKENS, positions_bt=jnp.zeros((2, 8), bool)), TypeError, "positions_bt"),
    (dict(tokens=jnp.zeros((1, 25), jnp.int32)), ValueError, "max_position_embeddings"),
])
def test_bad_inputs_raise(kwargs, error, match):
  tokens = kwargs.pop("tokens", None)
  with pytest.raises(error, match=match):
    Qwen2LM(CONFIG).apply({"params": PARAMS}, tokens, **kwargs)


def test_cache_misuse_raises():
  model = Qwen2LM(CONFIG)
  variables = {"params": PARAMS}
  with pytest.raises(ValueError, match="capacity"):
    model.apply(variables, TOKENS, cache=init_cache(CONFIG, 2, 6))
  _, caches = _decode(init_cache(CONFIG, 2, 10), TOKENS[:, :5], attention_mask_bt=jnp.ones((2, 5), int))
  with pytest.raises(ValueError, match="holds 5 of 10"):
    model.apply(variables, TOKENS[:, :6], cache=caches[0])
  with pytest.raises(ValueError, match="shape"):
    model.apply(variables, TOKENS[:1, :2], cache=caches[0])
  with pytest.raises(ValueError, match="max_position_embeddings"):
    init_cache(CONFIG, 2, 25)
  with pytest.raises(TypeError, match="KVCache"):
    model.apply(variables, TOKENS[:, :2], cache=(caches[0].keys, caches[0].values))
