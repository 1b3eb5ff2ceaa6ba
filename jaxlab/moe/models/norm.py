"""RMSNorm with Hugging Face's rounding: normalize in float32, cast back, then multiply by the weight."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.sharding.annotate import param_with_axes


def rms_norm_hf(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
  """scale * (x * rsqrt(mean(x^2) + eps)) over the last axis, as transformers' Llama-family RMSNorm.

  The normalization runs in float32 and is cast back to x's dtype *before* the weight multiplies
  it (in x's dtype). `jaxlab.ops.rms_norm` multiplies in float32 and casts last, which rounds
  differently in bfloat16.
  """
  x32 = x.astype(jnp.float32)
  variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
  return scale.astype(x.dtype) * (x32 * jax.lax.rsqrt(variance + eps)).astype(x.dtype)


class HFRMSNorm(nn.Module):
  """`rms_norm_hf` with a learned `scale` [D] (initialized to ones) named by `logical_axis`."""

  eps: float
  logical_axis: str | None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = param_with_axes(nn.initializers.ones, (self.logical_axis,))
    scale_d = self.param("scale", init, (x.shape[-1],), self.param_dtype)
    return rms_norm_hf(x, scale_d, self.eps)
