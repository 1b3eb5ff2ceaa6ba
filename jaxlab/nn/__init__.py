"""Shared Flax Linen layers whose parameters carry logical axis names, and the position math they use.

One file per job: `adaln` (adaLN-Zero `Modulation`, `modulate`), `dense` (Dense), `norm` (RMSNorm through `jaxlab.ops.rms_norm`, LayerNorm),
`embed`, `mlp` (SwiGLU, SwiGLUMLP, GeluMLP), `rope` (1-D RoPE, transformers' form and a float32
form), `rope2d` (2-D RoPE on image grids, NTK scaling), `v2pe` (V2PE position ids), `attention`
(`dot_product_attention`, the toy `CausalSelfAttention`, `GroupedQueryAttention`), `lora` (LoRA
adapters over any parameter tree: `LoraConfig`, `init_lora`, `merge_lora`, `apply_with_lora`,
`lora_optimizer`).
"""

from jaxlab.nn.adaln import Modulation, modulate
from jaxlab.nn.attention import CausalSelfAttention, GroupedQueryAttention, dot_product_attention
from jaxlab.nn.dense import Dense
from jaxlab.nn.embed import Embed
from jaxlab.nn.lora import (
    LoraConfig,
    apply_with_lora,
    delta as lora_delta,
    init_lora,
    lora_optimizer,
    lora_targets,
    merge_lora,
    num_params,
)
from jaxlab.nn.mlp import GeluMLP, SwiGLU, SwiGLUMLP
from jaxlab.nn.norm import LayerNorm, RMSNorm, layer_norm
from jaxlab.nn.rope import apply_rope, apply_rotary, rope_cos_sin, rope_inv_freq
from jaxlab.nn.rope2d import apply_rope_2d, grid_positions, ntk_scaled_base
from jaxlab.nn.v2pe import V2PE_DELTAS, sample_deltas, v2pe_position_ids, v2pe_position_ids_batch

__all__ = [
    "CausalSelfAttention",
    "Modulation",
    "Dense",
    "Embed",
    "GeluMLP",
    "GroupedQueryAttention",
    "LayerNorm",
    "LoraConfig",
    "RMSNorm",
    "SwiGLU",
    "SwiGLUMLP",
    "V2PE_DELTAS",
    "apply_rope",
    "apply_rope_2d",
    "apply_rotary",
    "apply_with_lora",
    "lora_delta",
    "dot_product_attention",
    "grid_positions",
    "init_lora",
    "layer_norm",
    "modulate",
    "lora_optimizer",
    "lora_targets",
    "merge_lora",
    "ntk_scaled_base",
    "num_params",
    "rope_cos_sin",
    "rope_inv_freq",
    "sample_deltas",
    "v2pe_position_ids",
    "v2pe_position_ids_batch",
]
