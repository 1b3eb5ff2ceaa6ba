"""Shared Flax Linen layers whose parameters carry logical axis names."""

from jaxlab.nn.attention import CausalSelfAttention, dot_product_attention
from jaxlab.nn.embed import Embed
from jaxlab.nn.mlp import SwiGLU
from jaxlab.nn.norm import RMSNorm
from jaxlab.nn.rope import apply_rope

__all__ = ["CausalSelfAttention", "Embed", "RMSNorm", "SwiGLU", "apply_rope", "dot_product_attention"]
