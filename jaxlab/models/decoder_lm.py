"""A small decoder-only transformer language model (pre-norm, RoPE, SwiGLU, RMSNorm)."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn import CausalSelfAttention, Embed, RMSNorm, SwiGLU
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


@dataclasses.dataclass(frozen=True)
class DecoderLMConfig:
  vocab_size: int
  embed_dim: int
  num_layers: int
  num_heads: int
  head_dim: int
  mlp_dim: int
  rope_base: float = 10_000.0
  norm_eps: float = 1e-6
  dtype: str = "float32"  # compute dtype; parameters stay float32
  norm_implementation: str | None = None  # None: the op's best available
  attention_implementation: str | None = None  # None: the op's best available


class DecoderBlock(nn.Module):
  config: DecoderLMConfig

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_bt: jax.Array) -> jax.Array:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    norm = lambda name: RMSNorm(eps=c.norm_eps, implementation=c.norm_implementation, name=name)
    attn = CausalSelfAttention(c.num_heads, c.head_dim, c.rope_base, dtype=dtype,
                               implementation=c.attention_implementation, name="attention")
    x_btd = x_btd + attn(norm("pre_attention_norm")(x_btd), positions_bt)
    x_btd = x_btd + SwiGLU(c.mlp_dim, dtype=dtype, name="mlp")(norm("pre_mlp_norm")(x_btd))
    return constrain(x_btd, (axes.BATCH, axes.SEQ, axes.EMBED))


class DecoderLM(nn.Module):
  """Maps token ids [batch, time] to next-token logits [batch, time, vocab] (float32)."""

  config: DecoderLMConfig

  @nn.compact
  def __call__(self, ids_bt: jax.Array) -> jax.Array:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    positions_bt = jnp.broadcast_to(jnp.arange(ids_bt.shape[1]), ids_bt.shape)
    x_btd = Embed(c.vocab_size, c.embed_dim, dtype=dtype, name="embed")(ids_bt)
    x_btd = constrain(x_btd, (axes.BATCH, axes.SEQ, axes.EMBED))
    for i in range(c.num_layers):
      x_btd = DecoderBlock(c, name=f"layer_{i}")(x_btd, positions_bt)
    x_btd = RMSNorm(eps=c.norm_eps, implementation=c.norm_implementation, name="final_norm")(x_btd)
    unembed = self.param(
        "unembed",
        param_with_axes(nn.initializers.lecun_normal(), (axes.EMBED, axes.VOCAB)),
        (c.embed_dim, c.vocab_size),
    )
    logits_btv = jnp.einsum("btd,dv->btv", x_btd, unembed.astype(dtype), preferred_element_type=jnp.float32)
    return constrain(logits_btv, (axes.BATCH, axes.SEQ, axes.VOCAB))
