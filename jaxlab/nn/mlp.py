"""SwiGLU feed-forward block (Shazeer, 2020): down(silu(gate(x)) * up(x))."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


class SwiGLU(nn.Module):
  hidden_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    d = x_btd.shape[-1]
    init = nn.initializers.lecun_normal()
    w_gate_df = self.param("w_gate", param_with_axes(init, (axes.EMBED, axes.MLP)), (d, self.hidden_dim), self.param_dtype)
    w_up_df = self.param("w_up", param_with_axes(init, (axes.EMBED, axes.MLP)), (d, self.hidden_dim), self.param_dtype)
    w_down_fd = self.param("w_down", param_with_axes(init, (axes.MLP, axes.EMBED)), (self.hidden_dim, d), self.param_dtype)
    x = x_btd.astype(self.dtype)
    gate_btf = jnp.einsum("btd,df->btf", x, w_gate_df.astype(self.dtype))
    up_btf = jnp.einsum("btd,df->btf", x, w_up_df.astype(self.dtype))
    hidden_btf = constrain(nn.silu(gate_btf) * up_btf, (axes.BATCH, axes.SEQ, axes.MLP))
    return jnp.einsum("btf,fd->btd", hidden_btf, w_down_fd.astype(self.dtype))
