"""Normalization layers: `RMSNorm` through the fused `jaxlab.ops.rms_norm` op, and LayerNorm."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.ops import rms_norm
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import param_with_axes


class RMSNorm(nn.Module):
  """y = x / rms(x) * scale over the last axis; the op picks the best implementation.

  Params: scale [D] (initialized to ones) named by `logical_axis`. `rounding="transformers"`
  rounds as transformers' Llama-family RMSNorm, so converted checkpoints give its logits; the
  default multiplies by the scale in float32 (see `jaxlab.ops.rms_norm`). Output in x's dtype.
  """

  eps: float = 1e-6
  logical_axis: str | None = axes.EMBED
  rounding: str = "float32"
  implementation: str | tuple[str, ...] | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    init = param_with_axes(nn.initializers.ones, (self.logical_axis,))
    scale_d = self.param("scale", init, (x_btd.shape[-1],), self.param_dtype)
    return rms_norm(x_btd, scale_d, eps=self.eps, rounding=self.rounding, implementation=self.implementation)


def layer_norm(x_btd: jax.Array, scale_d: jax.Array | None = None, bias_d: jax.Array | None = None, *,
               eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) (* scale) (+ bias) over the last axis, in float32, cast back to x's dtype."""
  x = x_btd.astype(jnp.float32)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  y = (x - mean) * jax.lax.rsqrt(var + eps)
  if scale_d is not None:
    y = y * scale_d.astype(jnp.float32)
  if bias_d is not None:
    y = y + bias_d.astype(jnp.float32)
  return y.astype(x_btd.dtype)


class LayerNorm(nn.Module):
  """`layer_norm` with learned scale [D] (ones) and bias [D] (zeros), both named by `logical_axis`."""

  eps: float = 1e-6
  logical_axis: str | None = axes.EMBED
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    d = x_btd.shape[-1]
    scale_d = self.param("scale", param_with_axes(nn.initializers.ones, (self.logical_axis,)), (d,),
                         self.param_dtype)
    bias_d = self.param("bias", param_with_axes(nn.initializers.zeros, (self.logical_axis,)), (d,),
                        self.param_dtype)
    return layer_norm(x_btd, scale_d, bias_d, eps=self.eps)
