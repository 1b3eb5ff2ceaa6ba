"""The attention block of an `MoEDecoderLM` layer: `jaxlab.nn.GroupedQueryAttention` set from an `MoELMConfig`."""

from __future__ import annotations

import jax.numpy as jnp

from jaxlab.moe.models.config import MoELMConfig
from jaxlab.nn import GroupedQueryAttention


def grouped_query_attention(config: MoELMConfig, param_dtype=jnp.float32,
                            name: str | None = None) -> GroupedQueryAttention:
  """Causal GQA with RoPE as the config's architecture computes it (q/k/v/o biases, Qwen3's qk_norm).

  Calling it returns (y_btd, None); params: see `GroupedQueryAttention`.
  """
  c = config
  return GroupedQueryAttention(
      num_heads=c.num_heads, num_kv_heads=c.num_kv_heads, head_dim=c.head_dim, rope_theta=c.rope_theta,
      qkv_bias=c.attention_bias, out_bias=c.attention_out_bias, qk_norm=c.qk_norm, norm_eps=c.rms_norm_eps,
      dtype=jnp.dtype(c.dtype), param_dtype=param_dtype, implementation=c.attention_implementation, name=name,
  )
