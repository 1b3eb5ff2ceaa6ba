"""RMSNorm layer backed by the fused `jaxlab.ops.rms_norm` op."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.ops import rms_norm
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import param_with_axes


class RMSNorm(nn.Module):
  """y = x / rms(x) * scale over the last axis; the op picks the best implementation."""

  eps: float = 1e-6
  implementation: str | tuple[str, ...] | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array) -> jax.Array:
    init = param_with_axes(nn.initializers.ones, (axes.EMBED,))
    scale_d = self.param("scale", init, (x_btd.shape[-1],), self.param_dtype)
    return rms_norm(x_btd, scale_d, eps=self.eps, implementation=self.implementation)
