"""Adaptive LayerNorm modulation (adaLN-Zero), shared by the diffusion transformers (`jaxlab.flow.dit`,
`jaxlab.video.blocks`).

A conditioning vector c [B, D] gives, through one zero-initialised projection of silu(c), `count`
vectors of size D: the shifts, scales and gates of a block's sub-layers. Zero at initialization, so
every modulated residual branch starts switched off and a block starts as the identity.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.sharding import axes
from jaxlab.sharding.annotate import param_with_axes


def modulate(x: jax.Array, shift_bd: jax.Array, scale_bd: jax.Array) -> jax.Array:
  """x * (1 + scale) + shift, with [B, D] shift and scale broadcast over every axis between B and D."""
  expand = (slice(None),) + (None,) * (x.ndim - 2) + (slice(None),)
  return x * (1 + scale_bd[expand]) + shift_bd[expand]


class Modulation(nn.Module):
  """silu(c) -> `count` vectors of size D (shifts, scales, gates), zero-initialised.

  Params: kernel [D, count, D] (EMBED, -, -), bias [count, D].
  """

  count: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, c_bd: jax.Array) -> tuple[jax.Array, ...]:
    d = c_bd.shape[-1]
    zeros = nn.initializers.zeros
    kernel_dnd = self.param("kernel", param_with_axes(zeros, (axes.EMBED, None, None)), (d, self.count, d),
                            self.param_dtype)
    bias_nd = self.param("bias", param_with_axes(zeros, (None, None)), (self.count, d), self.param_dtype)
    mod_bnd = jnp.einsum("bd,dne->bne", nn.silu(c_bd).astype(self.dtype), kernel_dnd.astype(self.dtype))
    mod_bnd = mod_bnd + bias_nd.astype(self.dtype)
    return tuple(mod_bnd[:, i] for i in range(self.count))
