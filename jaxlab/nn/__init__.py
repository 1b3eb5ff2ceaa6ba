"""Shared Flax Linen layers whose parameters carry logical axis names, and the position math they use.

One file per job: `dense` (Dense), `norm` (RMSNorm through `jaxlab.ops.rms_norm`, LayerNorm),
`embed`, `mlp` (SwiGLU, SwiGLUMLP, GeluMLP), `rope` (1-D RoPE, transformers' form and a float32
form), `rope2d` (2-D RoPE on image grids, NTK scaling), `v2pe` (V2PE position ids), `attention`
(`dot_product_attention`, the toy `CausalSelfAttention`, `GroupedQueryAttention`).
"""

from jaxlab.nn.attention import CausalSelfAttention, GroupedQueryAttention, dot_product_attention
from jaxlab.nn.dense import Dense
from jaxlab.nn.embed import Embed
from jaxlab.nn.mlp import GeluMLP, SwiGLU, SwiGLUMLP
from jaxlab.nn.norm import LayerNorm, RMSNorm, layer_norm
from jaxlab.nn.rope import apply_rope, apply_rotary, rope_cos_sin, rope_inv_freq
from jaxlab.nn.rope2d import apply_rope_2d, grid_positions, ntk_scaled_base
from jaxlab.nn.v2pe import V2PE_DELTAS, sample_deltas, v2pe_position_ids, v2pe_position_ids_batch

__all__ = [
    "CausalSelfAttention",
    "Dense",
    "Embed",
    "GeluMLP",
    "GroupedQueryAttention",
    "LayerNorm",
    "RMSNorm",
    "SwiGLU",
    "SwiGLUMLP",
    "V2PE_DELTAS",
    "apply_rope",
    "apply_rope_2d",
    "apply_rotary",
    "dot_product_attention",
    "grid_positions",
    "layer_norm",
    "ntk_scaled_base",
    "rope_cos_sin",
    "rope_inv_freq",
    "sample_deltas",
    "v2pe_position_ids",
    "v2pe_position_ids_batch",
]
