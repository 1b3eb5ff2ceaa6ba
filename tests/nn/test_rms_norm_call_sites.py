"""Every RMSNorm of the real models runs through `jaxlab.ops.rms_norm`, with the rounding it needs.

The op's dispatcher is replaced by one that records each call and then dispatches as usual; a
model is initialized abstractly (`jax.eval_shape`, nothing compiled), which runs its forward once.
The calls are counted against the model's norm parameters: a norm computed any other way would
leave one parameter without a call.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxlab.models.decoder_lm import DecoderLM, DecoderLMConfig
from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM
from jaxlab.moe.models import MoEDecoderLM, MoELMConfig
from jaxlab.ops.rms_norm_op import api as rms_norm_api
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel


class _Recorder:
  """Stands in for the op's dispatcher: notes (row length, rounding) of each call, then dispatches."""

  def __init__(self, op):
    self.op, self.calls = op, []

  def __call__(self, x, scale, *, rounding, **kwargs):
    self.calls.append((x.shape[-1], rounding))
    return self.op(x, scale, rounding=rounding, **kwargs)


@pytest.fixture
def recorder(monkeypatch):
  recorder = _Recorder(rms_norm_api._RMS_NORM)
  monkeypatch.setattr(rms_norm_api, "_RMS_NORM", recorder)
  return recorder


def _norm_params(params) -> list[tuple[str, ...]]:
  """Paths of the norm gains: `.../<...norm...>/scale`, and InternViT's raw q_norm / k_norm."""
  paths = traverse_util.flatten_dict(params)
  return [p for p in paths if (p[-1] == "scale" and "norm" in p[-2]) or p[-1] in ("q_norm", "k_norm")]


def _init(model, *inputs):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))["params"]


def _decoder_lm():
  config = DecoderLMConfig(vocab_size=11, embed_dim=32, num_layers=2, num_heads=2, head_dim=16, mlp_dim=64)
  return DecoderLM(config), (jnp.zeros((1, 4), jnp.int32),), "float32", 2 * 2 + 1


def _qwen2():
  config = Qwen2Config(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, dtype="bfloat16")
  return Qwen2LM(config), (np.zeros((1, 4), np.int32),), "transformers", 2 * 3 + 1


def _moe(architecture, **fields):
  config = MoELMConfig(architecture, vocab_size=32, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                       head_dim=8, num_experts=2, top_k=1, moe_intermediate_size=16, dtype="bfloat16", **fields)
  per_layer = 4 if fields.get("qk_norm") else 2
  return MoEDecoderLM(config), (jnp.zeros((1, 4), jnp.int32),), "transformers", per_layer * 2 + 1


def _vision_rms_norm():
  config = InternVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                              image_size=(28, 28), norm_type="rms_norm", use_qk_norm=True)
  return InternVisionModel(config, dtype=jnp.bfloat16), (jnp.zeros((1, 28, 28, 3)),), "transformers", 4 * 2


MODELS = {
    "decoder_lm": _decoder_lm,
    "qwen2": _qwen2,
    "mixtral": lambda: _moe("mixtral"),
    "qwen2_moe": lambda: _moe("qwen2_moe", attention_bias=True, shared_expert_intermediate_size=16,
                              shared_expert_gate=True),
    "qwen3_moe": lambda: _moe("qwen3_moe", qk_norm=True, attention_out_bias=True),
    "internvit_6b": _vision_rms_norm,
}


@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_every_norm_of_the_model_calls_the_op(recorder, build):
  model, inputs, rounding, num_norms = build()
  params = _init(model, *inputs)
  assert len(_norm_params(params)) == num_norms
  assert len(recorder.calls) == num_norms, recorder.calls
  assert {r for _, r in recorder.calls} == {rounding}


def test_the_qwen2_forward_calls_the_op_once_per_norm_under_jit(recorder):
  model, inputs, _, num_norms = _qwen2()
  params = jax.jit(model.init)(jax.random.key(0), *inputs)["params"]
  recorder.calls.clear()
  logits, _ = jax.jit(model.apply)({"params": params}, *inputs)
  assert logits.shape == (1, 4, 32)
  assert recorder.calls == [(32, "transformers")] * num_norms
