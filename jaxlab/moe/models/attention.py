"""Causal grouped-query attention with rotary embeddings, laid out and rounded as transformers does.

Projections are [D, H*hd] kernels (the transpose of a torch Linear weight), so Hugging Face
checkpoints map onto them without reshuffling. RoPE uses the "rotate half" pairing (dimension i
with i + hd/2) of Llama/Mixtral/Qwen checkpoints; cos/sin are computed in float32 and cast to the
compute dtype before rotating, like transformers (`jaxlab.nn.apply_rope` rotates in float32).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.moe.models.config import MoELMConfig
from jaxlab.moe.models.norm import HFRMSNorm
from jaxlab.nn import dot_product_attention
from jaxlab.ops import AttentionMask
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
  """[hd/2] float32 inverse frequencies 1 / theta^(2i/hd), rounded once from float64."""
  return (1.0 / (float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))).astype(np.float32)


def rope_cos_sin(positions_bt: jax.Array, head_dim: int, theta: float, dtype) -> tuple[jax.Array, jax.Array]:
  """cos, sin of shape [B, T, hd] (both halves repeat the hd/2 angles), computed in float32, cast to dtype."""
  freqs_btf = positions_bt.astype(jnp.float32)[..., None] * jnp.asarray(rope_inv_freq(head_dim, theta))
  angles_btk = jnp.concatenate([freqs_btf, freqs_btf], axis=-1)
  return jnp.cos(angles_btk).astype(dtype), jnp.sin(angles_btk).astype(dtype)


def apply_rotary(x_bthk: jax.Array, cos_btk: jax.Array, sin_btk: jax.Array) -> jax.Array:
  """x * cos + rotate_half(x) * sin, with rotate_half(x) = concat(-x2, x1), in x's dtype."""
  half = x_bthk.shape[-1] // 2
  rotated = jnp.concatenate([-x_bthk[..., half:], x_bthk[..., :half]], axis=-1)
  return x_bthk * cos_btk[:, :, None, :] + rotated * sin_btk[:, :, None, :]


class Projection(nn.Module):
  """x @ kernel (+ bias): kernel [K, N] with logical axes `kernel_axes`, bias [N] named like N."""

  features: int
  kernel_axes: tuple[str | None, str | None]
  use_bias: bool
  dtype: jnp.dtype
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = nn.initializers.lecun_normal()
    kernel = self.param(
        "kernel", param_with_axes(init, self.kernel_axes), (x.shape[-1], self.features), self.param_dtype
    )
    y = jnp.einsum("...k,kn->...n", x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      bias = self.param("bias", param_with_axes(nn.initializers.zeros, self.kernel_axes[1:]), (self.features,),
                        self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class GroupedQueryAttention(nn.Module):
  """Causal self-attention, H query heads sharing KV key/value heads (query head h uses KV head h // (H/KV)).

  Params: q/kernel [D, H*hd], k/kernel and v/kernel [D, KV*hd], o/kernel [H*hd, D]; q/k/v/bias
  when `attention_bias`, o/bias when `attention_out_bias`; q_norm/scale, k_norm/scale [hd] when
  `qk_norm` (RMSNorm per head before RoPE, Qwen3). Attends through `jaxlab.ops.attention` (float32 softmax).
  """

  config: MoELMConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_bt: jax.Array) -> jax.Array:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    b, t, _ = x_btd.shape
    h, kv, hd = c.num_heads, c.num_kv_heads, c.head_dim
    proj = lambda name, n, out_axis, bias: Projection(
        n, (axes.EMBED, out_axis), bias, dtype, self.param_dtype, name=name
    )
    q_bthk = proj("q", h * hd, axes.HEADS, c.attention_bias)(x_btd).reshape(b, t, h, hd)
    k_btvk = proj("k", kv * hd, axes.KV_HEADS, c.attention_bias)(x_btd).reshape(b, t, kv, hd)
    v_btvk = proj("v", kv * hd, axes.KV_HEADS, c.attention_bias)(x_btd).reshape(b, t, kv, hd)
    if c.qk_norm:
      q_bthk = HFRMSNorm(c.rms_norm_eps, axes.HEAD_DIM, self.param_dtype, name="q_norm")(q_bthk)
      k_btvk = HFRMSNorm(c.rms_norm_eps, axes.HEAD_DIM, self.param_dtype, name="k_norm")(k_btvk)
    cos_btk, sin_btk = rope_cos_sin(positions_bt, hd, c.rope_theta, dtype)
    q_axes = (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM)
    kv_axes = (axes.BATCH, axes.SEQ, axes.KV_HEADS, axes.HEAD_DIM)
    q_bthk = constrain(apply_rotary(q_bthk, cos_btk, sin_btk), q_axes)
    k_btvk = constrain(apply_rotary(k_btvk, cos_btk, sin_btk), kv_axes)
    v_btvk = constrain(v_btvk, kv_axes)

    out_bthk = dot_product_attention(q_bthk, k_btvk, v_btvk, AttentionMask(causal=True),
                                     implementation=c.attention_implementation)
    out_btf = out_bthk.reshape(b, t, h * hd)
    return Projection(c.hidden_size, (axes.HEADS, axes.EMBED), c.attention_out_bias, dtype, self.param_dtype,
                      name="o")(out_btf)
