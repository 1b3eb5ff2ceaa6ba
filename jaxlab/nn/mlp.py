"""Feed-forward blocks: SwiGLU (Shazeer, 2020), down(silu(gate(x)) * up(x)), and a GELU MLP."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.dense import Dense
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

_HIDDEN_AXES = (axes.BATCH, axes.SEQ, axes.MLP)


class SwiGLU(nn.Module):
  """SwiGLU with raw weights: w_gate [D, F], w_up [D, F], w_down [F, D]."""

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
    hidden_btf = constrain(nn.silu(gate_btf) * up_btf, _HIDDEN_AXES)
    return jnp.einsum("btf,fd->btd", hidden_btf, w_down_fd.astype(self.dtype))


class SwiGLUMLP(nn.Module):
  """SwiGLU of three bias-free `Dense` layers, gate/kernel [D, F], up/kernel [D, F], down/kernel [F, D].

  The layout of Llama / Qwen2 MLPs (each kernel the transpose of a torch Linear weight).
  """

  hidden_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    dense = lambda name, n, kernel_axes: Dense(n, kernel_axes, use_bias=False, dtype=self.dtype,
                                               param_dtype=self.param_dtype, name=name)
    gate_btf = dense("gate", self.hidden_dim, (axes.EMBED, axes.MLP))(x_btd)
    up_btf = dense("up", self.hidden_dim, (axes.EMBED, axes.MLP))(x_btd)
    hidden_btf = constrain(nn.silu(gate_btf) * up_btf, _HIDDEN_AXES)
    return dense("down", x_btd.shape[-1], (axes.MLP, axes.EMBED))(hidden_btf)


class GeluMLP(nn.Module):
  """fc_out(gelu(fc_in(x))): `Dense` layers with biases, fc_in [D, F], fc_out [F, D].

  `approximate` picks the tanh approximation of GELU over the exact (erf) one.
  """

  hidden_dim: int
  approximate: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    hidden_btf = Dense(self.hidden_dim, (axes.EMBED, axes.MLP), name="fc_in", **kw)(x_btd)
    hidden_btf = constrain(nn.gelu(hidden_btf, approximate=self.approximate), _HIDDEN_AXES)
    return Dense(x_btd.shape[-1], (axes.MLP, axes.EMBED), name="fc_out", **kw)(hidden_btf)
