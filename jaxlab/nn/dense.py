"""`Dense`: x @ kernel (+ bias) with logical axis names on both parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.sharding.annotate import param_with_axes


class Dense(nn.Module):
  """x @ kernel (+ bias) over the last axis, in `dtype`.

  Params: kernel [K, N] named by `kernel_axes` (the transpose of a torch Linear weight, so Hugging
  Face checkpoints map onto it by one transpose), bias [N] named like N when `use_bias`.
  """

  features: int
  kernel_axes: tuple[str | None, str | None]
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., K] -> [..., N] in `dtype`."""
    init = param_with_axes(self.kernel_init, self.kernel_axes)
    kernel_kn = self.param("kernel", init, (x.shape[-1], self.features), self.param_dtype)
    y = jnp.einsum("...k,kn->...n", x.astype(self.dtype), kernel_kn.astype(self.dtype))
    if self.use_bias:
      bias_init = param_with_axes(nn.initializers.zeros, self.kernel_axes[1:])
      y = y + self.param("bias", bias_init, (self.features,), self.param_dtype).astype(self.dtype)
    return y
