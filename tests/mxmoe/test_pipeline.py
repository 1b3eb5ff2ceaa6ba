"""MxMoE end to end on a tiny random MoE LM: calibrate, allocate, quantize, run, save and load."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.moe.models import MoEDecoderLM, MoELMConfig, apply_layer, layer_inputs
from jaxlab.mxmoe import pipeline
from jaxlab.mxmoe.checkpoint import load_quantized, save_quantized
from jaxlab.mxmoe.cost import CostModel, device_spec
from jaxlab.mxmoe.model_layer import layer_fn
from jaxlab.quant_formats import ExpertWeights
from jaxlab.quant_formats.scheme import bits_per_weight

CONFIG = MoELMConfig(
    architecture="qwen2_moe", vocab_size=64, hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
    head_dim=32, num_experts=4, top_k=2, moe_intermediate_size=128, shared_expert_intermediate_size=128,
    shared_expert_gate=True, attention_bias=True, norm_topk_prob=False, moe_implementation="xla",
)
MENU = ("w2a16_g128_asym", "w3a16_g128_asym", "w4a16_g128_asym", "w8a16_g128_asym")


@pytest.fixture(scope="module")
def model_and_calibration():
  model = MoEDecoderLM(CONFIG)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, CONFIG.vocab_size, (8, 32)), jnp.int32)
  params = nn.unbox(model.init(jax.random.key(0), tokens[:1])["params"])
  return model, params, tokens, pipeline.calibrate(CONFIG, params, np.asarray(tokens))


def _logit_error(model, params, q_params, tokens):
  float_logits = model.apply({"params": params}, tokens)[0]
  q_logits = model.apply({"params": q_params}, tokens)[0]
  return float(jnp.linalg.norm(q_logits - float_logits) / jnp.linalg.norm(float_logits))


def test_layer_fn_equals_the_models_layer_and_honours_activation_quantization(model_and_calibration):
  _, params, tokens, _ = model_and_calibration
  x = layer_inputs(CONFIG, params, tokens)[1]
  fn = jax.jit(layer_fn(CONFIG), static_argnames="act_quant")
  np.testing.assert_allclose(fn(params["layers_1"], x), apply_layer(CONFIG, params["layers_1"], x)[0], atol=1e-6)
  quantized = fn(params["layers_1"], x, act_quant=(((1, "gate_up"), (4, -1)),))
  assert float(jnp.max(jnp.abs(quantized - fn(params["layers_1"], x)))) > 1e-4


def test_calibration_counts_every_routed_slot(model_and_calibration):
  _, _, tokens, calib = model_and_calibration
  for layer in pipeline.moe_layers(CONFIG):
    assert int(calib.tokens_per_expert[layer].sum()) == tokens.size * CONFIG.top_k
    assert calib.rows[layer][(CONFIG.num_experts, "gate_up")].shape == (tokens.size, CONFIG.hidden_size)


def test_gptq_beats_rtn_at_three_bits(model_and_calibration):
  model, params, tokens, calib = model_and_calibration
  uniform = pipeline.uniform_assignment(CONFIG, "w3a16_g128_asym")
  rtn_error = _logit_error(model, params, pipeline.quantize_model(CONFIG, params, None, uniform, method="rtn"), tokens)
  gptq_error = _logit_error(model, params, pipeline.quantize_model(CONFIG, params, calib, uniform), tokens)
  assert gptq_error < rtn_error


def test_mxmoe_assignment_meets_the_budget_and_runs_through_the_kernel_reference(model_and_calibration, tmp_path):
  model, params, tokens, calib = model_and_calibration
  cost = CostModel.roofline(device_spec("NVIDIA H200"))
  assignment = pipeline.mxmoe_assignment(CONFIG, params, calib, menu=MENU, avg_bits=3.25, r=1.0, cost_model=cost,
                                         batch_tokens=512)
  assert pipeline.average_bits(assignment, CONFIG) <= 3.25 + 1e-9
  for layer in assignment["layers"].values():
    assert len(layer["gate_up"]) == CONFIG.num_experts + 1 and set(layer["gate_up"]) <= set(MENU)
  q_params = pipeline.quantize_model(CONFIG, params, calib, assignment)
  stack = q_params["layers_0"]["moe"]["gate_up"]
  assert isinstance(stack, ExpertWeights) and stack.num_experts == CONFIG.num_experts
  error = _logit_error(model, params, q_params, tokens)
  assert 0 < error < 0.5
  # Saved and loaded, the quantized model gives the same logits.
  save_quantized(tmp_path / "q", jax.device_get(q_params), assignment=assignment)
  loaded, meta = load_quantized(tmp_path / "q")
  assert meta["assignment"]["layers"] == assignment["layers"]
  np.testing.assert_array_equal(model.apply({"params": loaded}, tokens)[0], model.apply({"params": q_params}, tokens)[0])
  with pytest.raises(FileExistsError, match="not empty"):
    save_quantized(tmp_path / "q", jax.device_get(q_params))


@pytest.mark.slow  # Compiles the layer once per (block, activation format): over a minute on 2 cores.
def test_weight_activation_menu_runs_with_r_below_one(model_and_calibration):
  model, params, tokens, calib = model_and_calibration
  cost = CostModel.roofline(device_spec("NVIDIA H200"))
  menu = ("w4a4_g-1_sym", "w8a8_g-1_sym")
  assignment = pipeline.mxmoe_assignment(CONFIG, params, calib, menu=menu, avg_bits=5.0, r=0.75, cost_model=cost,
                                         sensitivity_quantizer="rtn")
  bits = pipeline.average_bits(assignment, CONFIG)
  assert bits_per_weight("w4a4_g-1_sym") <= bits <= 5.0 + 1e-9
  q_params = pipeline.quantize_model(CONFIG, params, calib, assignment)
  assert np.isfinite(_logit_error(model, params, q_params, tokens))


def test_rotation_then_quantization_keeps_the_float_model(model_and_calibration):
  from jaxlab.mxmoe.rotation import rotate_moe_lm

  model, params, tokens, _ = model_and_calibration
  rotated = rotate_moe_lm(CONFIG, params, jax.random.key(3))
  rotated_model = MoEDecoderLM(dataclasses.replace(CONFIG, tie_word_embeddings=False))
  np.testing.assert_allclose(rotated_model.apply({"params": rotated}, tokens)[0],
                             model.apply({"params": params}, tokens)[0], atol=1e-4)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="rtn' or 'gptq"):
    pipeline.quantize_model(CONFIG, {}, None, pipeline.uniform_assignment(CONFIG, "bf16"), method="awq")
  with pytest.raises(ValueError, match="needs a Calibration"):
    pipeline.quantize_model(CONFIG, {}, None, pipeline.uniform_assignment(CONFIG, "bf16"))
  with pytest.raises(ValueError, match=r"\[N, S\]"):
    pipeline.calibrate(CONFIG, {}, np.zeros(5, np.int32))
