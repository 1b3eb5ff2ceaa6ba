"""Attention for every model: `dot_product_attention` (the op, or its context-parallel form on a
mesh with a "context" axis), the toy decoder's `CausalSelfAttention`, and `GroupedQueryAttention`,
the transformers-exact block of the Qwen2 and MoE language models."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab import ops
from jaxlab.nn.dense import Dense
from jaxlab.nn.norm import RMSNorm
from jaxlab.nn.rope import apply_rope, apply_rotary, rope_cos_sin
from jaxlab.ops.attention_op.context_parallel import context_axis_size, context_parallel_attention
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

_Q_AXES = (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM)
# Keys and values [B, S, KV, hd], new ones and cached ones alike.
KV_AXES = (axes.BATCH, axes.SEQ, axes.KV_HEADS, axes.HEAD_DIM)


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


class GroupedQueryAttention(nn.Module):
  """Causal self-attention with RoPE, H query heads sharing KV key/value heads (head h uses KV head h // (H/KV)).

  Laid out and rounded as transformers' Llama-family attention: projections are `Dense` layers
  whose kernels are torch Linear weights transposed, RoPE is `rope_cos_sin` + `apply_rotary` in
  the compute dtype, and the optional per-head q/k norms (Qwen3) are `RMSNorm` with transformers'
  rounding, applied before RoPE. Scores and softmax run in float32 inside the op.

  Params: q/kernel [D, H*hd], k/kernel and v/kernel [D, KV*hd], o/kernel [H*hd, D]; q/k/v/bias
  when `qkv_bias`, o/bias when `out_bias`; q_norm/scale, k_norm/scale [hd] when `qk_norm`.
  """

  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_theta: float = 10_000.0
  qkv_bias: bool = False
  out_bias: bool = False
  qk_norm: bool = False
  norm_eps: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(
      self,
      x_btd: jax.Array,
      positions_bt: jax.Array,
      mask: ops.AttentionMask | None = None,
      kv_cache: tuple[jax.Array, jax.Array] | None = None,
      index: jax.Array | None = None,
      valid_bs: jax.Array | None = None,
  ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Attends the T new tokens to themselves, or to a KV cache they are written into.

    Args:
      x_btd: [B, T, D] inputs.
      positions_bt: [B, T] int or float32 RoPE positions (fractional ones are not rounded).
      mask: without a cache, the mask of the full form (padding segments); None: causal.
      kv_cache: (keys [B, S, KV, hd], values [B, S, KV, hd]) of this layer, or None. The new
        keys/values go to slots [index, index + T) and queries attend through
        `jaxlab.ops.attention_decode` (query t sits at slot index + t).
      index: int32 scalar, the first slot to write; with a cache only.
      valid_bs: [B, S] bool, slots holding real tokens; with a cache only.

    Returns:
      (y [B, T, D] in `dtype`, the updated (keys, values), or None without a cache).
    """
    b, t, d = x_btd.shape
    h, kv, hd = self.num_heads, self.num_kv_heads, self.head_dim
    dense = lambda name, n, kernel_axes, bias: Dense(n, kernel_axes, use_bias=bias, dtype=self.dtype,
                                                     param_dtype=self.param_dtype, name=name)
    q_bthk = dense("q", h * hd, (axes.EMBED, axes.HEADS), self.qkv_bias)(x_btd).reshape(b, t, h, hd)
    k_btvk = dense("k", kv * hd, (axes.EMBED, axes.KV_HEADS), self.qkv_bias)(x_btd).reshape(b, t, kv, hd)
    v_btvk = dense("v", kv * hd, (axes.EMBED, axes.KV_HEADS), self.qkv_bias)(x_btd).reshape(b, t, kv, hd)
    if self.qk_norm:
      norm = lambda name: RMSNorm(eps=self.norm_eps, logical_axis=axes.HEAD_DIM, rounding="transformers",
                                  param_dtype=self.param_dtype, name=name)
      q_bthk = norm("q_norm")(q_bthk)
      k_btvk = norm("k_norm")(k_btvk)
    cos_btk, sin_btk = rope_cos_sin(positions_bt, hd, self.rope_theta, self.dtype)
    q_bthk = constrain(apply_rotary(q_bthk, cos_btk, sin_btk), _Q_AXES)
    k_bsvk = constrain(apply_rotary(k_btvk, cos_btk, sin_btk), KV_AXES)
    v_bsvk = constrain(v_btvk, KV_AXES)

    new_cache = None
    if kv_cache is None:
      mask = ops.AttentionMask(causal=True) if mask is None else mask
      out_bthk = dot_product_attention(q_bthk, k_bsvk, v_bsvk, mask, implementation=self.implementation)
    else:
      keys_bsvk, values_bsvk = kv_cache
      start = (0, index, 0, 0)
      k_bsvk = constrain(jax.lax.dynamic_update_slice(keys_bsvk, k_bsvk.astype(keys_bsvk.dtype), start), KV_AXES)
      v_bsvk = constrain(jax.lax.dynamic_update_slice(values_bsvk, v_bsvk.astype(values_bsvk.dtype), start), KV_AXES)
      new_cache = (k_bsvk, v_bsvk)
      # Slots past index + t (not yet written) are hidden by causality.
      out_bthk = ops.attention_decode(q_bthk, k_bsvk.astype(self.dtype), v_bsvk.astype(self.dtype), index,
                                      kv_valid_bs=valid_bs, implementation=self.implementation)
    y_btd = dense("o", d, (axes.HEADS, axes.EMBED), self.out_bias)(out_bthk.reshape(b, t, h * hd))
    return y_btd, new_cache
