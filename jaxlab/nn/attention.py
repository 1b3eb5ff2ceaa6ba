"""Attention for every model: `dot_product_attention` (the op, or its context-parallel form on a
mesh with a "context" axis) and the toy decoder's `CausalSelfAttention`."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab import ops
from jaxlab.nn.rope import apply_rope
from jaxlab.ops.attention_op.context_parallel import context_axis_size, context_parallel_attention
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


def dot_product_attention(
    q_bthd: jax.Array,
    k_bskd: jax.Array,
    v_bskd: jax.Array,
    mask: ops.AttentionMask | None = None,
    *,
    scale: float | None = None,
    logit_soft_cap: float | None = None,
    implementation: ops.registry.ImplementationArg = None,
    context_parallel: bool = True,
) -> jax.Array:
  """`jaxlab.ops.attention`, spread over the sequence when the ambient mesh asks for it.

  With a mesh set by `jax.set_mesh` whose "context" axis has more than one device, queries and
  keys are split along the sequence over that axis and attended by ring attention
  (`context_parallel_attention`); otherwise, or with `context_parallel=False` (decoding against
  a KV cache, whose slots are not split; short sequences in large batches), the op runs as is.

  Returns:
    [B, T, H, D] in q's dtype.
  """
  settings = dict(scale=scale, logit_soft_cap=logit_soft_cap, implementation=implementation)
  if context_parallel and context_axis_size() > 1:
    return context_parallel_attention(q_bthd, k_bskd, v_bskd, mask, **settings)
  return ops.attention(q_bthd, k_bskd, v_bskd, mask, **settings)


class CausalSelfAttention(nn.Module):
  """Softmax attention over earlier positions through `dot_product_attention`; scores and softmax in float32."""

  num_heads: int
  head_dim: int
  rope_base: float = 10_000.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_bt: jax.Array) -> jax.Array:
    d, h, k = x_btd.shape[-1], self.num_heads, self.head_dim
    in_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
    out_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
    qkv_axes = (axes.EMBED, axes.HEADS, axes.HEAD_DIM)

    def project(name):
      w_dhk = self.param(name, param_with_axes(in_init, qkv_axes), (d, h, k), self.param_dtype)
      return jnp.einsum("btd,dhk->bthk", x_btd.astype(self.dtype), w_dhk.astype(self.dtype))

    q_bthk = apply_rope(project("wq"), positions_bt, base=self.rope_base)
    k_bshk = apply_rope(project("wk"), positions_bt, base=self.rope_base)
    v_bshk = project("wv")
    q_bthk = constrain(q_bthk, (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM))

    out_bthk = dot_product_attention(q_bthk, k_bshk, v_bshk, ops.AttentionMask(causal=True),
                                     implementation=self.implementation)

    w_o_hkd = self.param("wo", param_with_axes(out_init, (axes.HEADS, axes.HEAD_DIM, axes.EMBED)), (h, k, d), self.param_dtype)
    return jnp.einsum("bthk,hkd->btd", out_bthk, w_o_hkd.astype(self.dtype))
