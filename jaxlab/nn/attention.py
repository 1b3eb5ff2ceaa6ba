"""Multi-head causal self-attention with rotary position embeddings."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.rope import apply_rope
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


class CausalSelfAttention(nn.Module):
  """Softmax attention over earlier positions; scores and softmax in float32."""

  num_heads: int
  head_dim: int
  rope_base: float = 10_000.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

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

    logits_bhts = jnp.einsum("bthk,bshk->bhts", q_bthk, k_bshk, preferred_element_type=jnp.float32)
    logits_bhts = logits_bhts / jnp.sqrt(jnp.float32(k))
    t = x_btd.shape[1]
    causal_ts = jnp.tril(jnp.ones((t, t), dtype=bool))
    logits_bhts = jnp.where(causal_ts, logits_bhts, jnp.finfo(jnp.float32).min)
    probs_bhts = jax.nn.softmax(logits_bhts, axis=-1).astype(self.dtype)
    out_bthk = jnp.einsum("bhts,bshk->bthk", probs_bhts, v_bshk)

    w_o_hkd = self.param("wo", param_with_axes(out_init, (axes.HEADS, axes.HEAD_DIM, axes.EMBED)), (h, k, d), self.param_dtype)
    return jnp.einsum("bthk,hkd->btd", out_bthk, w_o_hkd.astype(self.dtype))
