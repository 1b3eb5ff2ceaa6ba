"""MoELMConfig <-> config.json dicts: hub configs (transformers 4.x spelling), round trip, refusals."""

from __future__ import annotations

import dataclasses

import pytest

from jaxlab.moe.models import MoELMConfig

# config.json of mistralai/Mixtral-8x7B-v0.1 (written by transformers 4.36).
MIXTRAL_8X7B = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32, "num_experts_per_tok": 2,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.36.0.dev0",
    "use_cache": True, "vocab_size": 32000,
}
# config.json of Qwen/Qwen1.5-MoE-A2.7B.
QWEN15_MOE = {
    "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "decoder_sparse_step": 1, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21,
    "model_type": "qwen2_moe", "moe_intermediate_size": 1408, "norm_topk_prob": False, "num_attention_heads": 16,
    "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 16,
    "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 5632, "sliding_window": 32768, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}
# config.json of Qwen/Qwen3-30B-A3B (abridged to the keys that matter).
QWEN3_MOE = {
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "decoder_sparse_step": 1, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 6144, "max_position_embeddings": 40960,
    "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": True,
    "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
    "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_sliding_window": False,
    "vocab_size": 151936,
}


def test_reads_hub_configs():
  mixtral = MoELMConfig.from_hf_dict(MIXTRAL_8X7B)
  assert (mixtral.architecture, mixtral.num_experts, mixtral.top_k, mixtral.moe_intermediate_size) == (
      "mixtral", 8, 2, 14336)
  assert (mixtral.num_heads, mixtral.num_kv_heads, mixtral.head_dim) == (32, 8, 128)
  assert mixtral.norm_topk_prob and not mixtral.attention_bias and mixtral.shared_expert_intermediate_size == 0
  assert (mixtral.rope_theta, mixtral.rms_norm_eps, mixtral.dtype, mixtral.router_aux_loss_coef) == (
      1e6, 1e-5, "bfloat16", 0.02)

  qwen = MoELMConfig.from_hf_dict(QWEN15_MOE)
  assert (qwen.num_experts, qwen.top_k, qwen.moe_intermediate_size, qwen.shared_expert_intermediate_size) == (
      60, 4, 1408, 5632)
  assert qwen.attention_bias and qwen.shared_expert_gate and not qwen.norm_topk_prob and not qwen.qk_norm
  assert qwen.head_dim == 128 and all(qwen.is_moe_layer(i) for i in range(24))

  qwen3 = MoELMConfig.from_hf_dict(QWEN3_MOE, dtype="float32")
  assert qwen3.qk_norm and qwen3.norm_topk_prob and not qwen3.attention_bias and qwen3.head_dim == 128
  assert qwen3.shared_expert_intermediate_size == 0 and qwen3.dtype == "float32"


def test_transformers5_rope_parameters_and_dense_layers():
  d = dict(QWEN15_MOE, rope_parameters={"rope_theta": 5e5, "rope_type": "default"}, mlp_only_layers=[0, 3],
           decoder_sparse_step=2, num_hidden_layers=6, qkv_bias=False, dtype="float32")
  del d["rope_theta"]
  c = MoELMConfig.from_hf_dict(d)
  assert c.rope_theta == 5e5 and not c.attention_bias and c.dtype == "float32"
  # transformers: MoE iff not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
  assert [c.is_moe_layer(i) for i in range(6)] == [False, True, False, False, False, True]


@pytest.mark.parametrize("hub", [MIXTRAL_8X7B, QWEN15_MOE, QWEN3_MOE])
def test_round_trip_through_hf_dict(hub):
  config = MoELMConfig.from_hf_dict(hub)
  again = MoELMConfig.from_hf_dict(config.to_hf_dict())
  assert again == config
  variant = dataclasses.replace(config, tie_word_embeddings=True, num_layers=4, dtype="float32")
  assert MoELMConfig.from_hf_dict(variant.to_hf_dict()) == variant


@pytest.mark.parametrize(
    "base, change, match",
    [
        (MIXTRAL_8X7B, dict(model_type="llama"), r"model_type='llama'.*'mixtral', 'qwen2_moe', 'qwen3_moe'"),
        (MIXTRAL_8X7B, dict(sliding_window=4096), "sliding_window"),
        (QWEN15_MOE, dict(use_sliding_window=True), "use_sliding_window"),
        (QWEN3_MOE, dict(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "rope_scaling.*yarn"),
        (QWEN3_MOE, dict(rope_parameters={"rope_type": "default", "rope_theta": 1e6, "factor": 2.0}),
         "rope_parameters.*factor"),
        (MIXTRAL_8X7B, dict(hidden_act="gelu"), "hidden_act"),
        (MIXTRAL_8X7B, dict(partial_rotary_factor=0.5), "partial_rotary_factor"),
        (QWEN15_MOE, dict(layer_types=["sliding_attention"] * 24), "layer_types"),
        (MIXTRAL_8X7B, dict(num_local_experts=None), "num_local_experts"),
        (QWEN15_MOE, dict(mlp_only_layers=[24]), "mlp_only_layers"),
        (QWEN15_MOE, dict(num_experts_per_tok=61), "top_k"),
    ],
)
def test_from_hf_dict_names_what_it_refuses(base, change, match):
  with pytest.raises(ValueError, match=match):
    MoELMConfig.from_hf_dict(dict(base, **change))


def test_config_rejects_bad_fields():
  base = MoELMConfig.from_hf_dict(QWEN3_MOE)
  with pytest.raises(ValueError, match="architecture"):
    dataclasses.replace(base, architecture="llama")
  with pytest.raises(ValueError, match="num_heads=32 must be a multiple of num_kv_heads=5"):
    dataclasses.replace(base, num_kv_heads=5)
  with pytest.raises(ValueError, match="dtype"):
    dataclasses.replace(base, dtype="int8")
  with pytest.raises(ValueError, match="intermediate_size=0"):
    dataclasses.replace(base, mlp_only_layers=(1,), intermediate_size=0)
  with pytest.raises(ValueError, match="shared_expert_gate"):
    dataclasses.replace(base, shared_expert_gate=True)
  with pytest.raises(TypeError, match="config.json dict"):
    MoELMConfig.from_hf_dict([("model_type", "mixtral")])
  with pytest.raises(ValueError, match="qwen3_moe config has qk_norm"):
    dataclasses.replace(base, qk_norm=False).to_hf_dict()
  # A list of layers becomes a (hashable) sorted tuple: the config is a static jit argument.
  assert dataclasses.replace(base, mlp_only_layers=[3, 1]).mlp_only_layers == (1, 3)
  hash(dataclasses.replace(base, mlp_only_layers=[3, 1]))
