"""`Qwen2LM`: the dense Qwen2 / Qwen2.5 decoder in Linen, with padding masks, a KV cache and embedding input.

Built from the transformers-exact layers of `jaxlab.nn` (`GroupedQueryAttention`: projections laid
out as torch Linear weights transposed, RoPE with cos/sin computed in float32 and rotated in the
compute dtype; `SwiGLUMLP`; `RMSNorm` with transformers' rounding), so a converted checkpoint gives
transformers' logits.

Parameter tree (fixed: checkpoint conversion relies on it):

  embed/embedding [V, D]
  layers_{i}/input_norm/scale [D]
  layers_{i}/attention/q/kernel [D, H*hd], q/bias [H*hd]; k, v: kernel [D, KV*hd], bias [KV*hd]
  layers_{i}/attention/o/kernel [H*hd, D]                       (no bias)
  layers_{i}/post_attention_norm/scale [D]
  layers_{i}/mlp/{gate,up}/kernel [D, I]; mlp/down/kernel [I, D]
  final_norm/scale [D]
  lm_head/kernel [D, V]                                         (absent when tied)

Positions are numbers, not indices: RoPE is evaluated at whatever (possibly fractional, float32)
position each token is given, which is how V2PE spaces image tokens.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.models.qwen2.cache import KVCache, check_cache
from jaxlab.models.qwen2.config import Qwen2Config
from jaxlab.nn import Embed, GroupedQueryAttention, RMSNorm, SwiGLUMLP
from jaxlab.ops import AttentionMask
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

_BSE = (axes.BATCH, axes.SEQ, axes.EMBED)


def _rms_norm(config: Qwen2Config, param_dtype, name: str) -> RMSNorm:
  return RMSNorm(eps=config.rms_norm_eps, rounding="transformers", param_dtype=param_dtype, name=name)


class Qwen2DecoderLayer(nn.Module):
  """Pre-norm attention then pre-norm SwiGLU, each with a residual; returns (x_btd, updated layer cache).

  With a layer cache, new keys/values go to slots [index, index+T) (see `GroupedQueryAttention`).
  """

  config: Qwen2Config
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_bt: jax.Array, mask: AttentionMask | None,
               kv_cache: tuple[jax.Array, jax.Array] | None = None, index: jax.Array | None = None,
               valid_bs: jax.Array | None = None):
    c = self.config
    dtype = jnp.dtype(c.dtype)
    x_btd = x_btd.astype(dtype)
    attention = GroupedQueryAttention(
        num_heads=c.num_attention_heads, num_kv_heads=c.num_key_value_heads, head_dim=c.head_dim,
        rope_theta=c.rope_theta, qkv_bias=c.attention_bias, out_bias=False, dtype=dtype,
        param_dtype=self.param_dtype, implementation=c.attention_implementation, name="attention",
    )
    y_btd, new_cache = attention(_rms_norm(c, self.param_dtype, "input_norm")(x_btd), positions_bt, mask, kv_cache,
                                 index, valid_bs)
    x_btd = constrain(x_btd + y_btd, _BSE)
    mlp = SwiGLUMLP(c.intermediate_size, dtype=dtype, param_dtype=self.param_dtype, name="mlp")
    x_btd = constrain(x_btd + mlp(_rms_norm(c, self.param_dtype, "post_attention_norm")(x_btd)), _BSE)
    return x_btd, new_cache


class LMHead(nn.Module):
  """Owns lm_head/kernel [D, V] and returns it (the unembedding einsum is shared with the tied table)."""

  vocab_size: int
  features: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self) -> jax.Array:
    init = param_with_axes(nn.initializers.lecun_normal(), (axes.EMBED, axes.VOCAB))
    return self.param("kernel", init, (self.features, self.vocab_size), self.param_dtype)


class Qwen2LM(nn.Module):
  """Token ids or embeddings [B, T(, D)] -> (next-token logits [B, T, V] float32, updated KVCache or None).

  Params: see the module docstring. `embed` maps token ids to the [B, T, D] input embeddings, so a
  vision-language model can splice image embeddings in and pass `inputs_embeds_btd`.
  """

  config: Qwen2Config
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    c = self.config
    if not isinstance(c, Qwen2Config):
      raise TypeError(f"Qwen2LM.config must be a Qwen2Config, got {type(c).__name__}")
    dtype = jnp.dtype(c.dtype)
    self.token_embed = Embed(c.vocab_size, c.hidden_size, dtype=dtype, param_dtype=self.param_dtype, name="embed")
    self.layers = [Qwen2DecoderLayer(c, self.param_dtype, name=f"layers_{i}") for i in range(c.num_hidden_layers)]
    self.final_norm = _rms_norm(c, self.param_dtype, "final_norm")
    if not c.tie_word_embeddings:
      self.lm_head = LMHead(c.vocab_size, c.hidden_size, self.param_dtype, name="lm_head")

  def embed(self, tokens_bt: jax.Array) -> jax.Array:
    """[B, T] token ids -> [B, T, D] input embeddings in the compute dtype."""
    check_tokens(tokens_bt, self.config.vocab_size)
    return constrain(self.token_embed(tokens_bt), _BSE)

  def __call__(
      self,
      tokens_bt: jax.Array | None = None,
      *,
      inputs_embeds_btd: jax.Array | None = None,
      positions_bt: jax.Array | None = None,
      attention_mask_bt: jax.Array | None = None,
      cache: KVCache | None = None,
  ) -> tuple[jax.Array, KVCache | None]:
    """Runs the decoder on T new tokens per row.

    Args:
      tokens_bt: [B, T] int token ids; give this or `inputs_embeds_btd`, not both.
      inputs_embeds_btd: [B, T, D] float input embeddings (e.g. `embed` output with image
        embeddings spliced in).
      positions_bt: [B, T] int or float32 RoPE positions (fractional allowed). None: each row's
        real tokens are numbered 0, 1, ... in order (padding skipped), continuing from the
        cache's `next_position_b` when a cache is given.
      attention_mask_bt: [B, T] bool/int, nonzero for real tokens, zero for padding (left
        padding in a batch of prompts). Padding is never attended to; its own outputs are
        meaningless. None: every token is real.
      cache: a `KVCache` (see `init_cache`); the new tokens are appended at slot `cache.index`
        and attend to everything cached before them.

    Returns:
      (logits [B, T, V] float32, the updated cache, or None when `cache` is None).

    Raises:
      ValueError / TypeError, before any compute: both or neither of tokens and embeddings, a
        shape or dtype mismatch among the inputs, T above config.max_position_embeddings, token
        ids outside the vocabulary, or more tokens than the cache has free slots.
    """
    c = self.config
    b, t = _check_inputs(c, tokens_bt, inputs_embeds_btd, positions_bt, attention_mask_bt)
    if cache is not None:
      check_cache(cache, c, b, t)
    if self.is_initializing():
      _ = self.token_embed.table_vd  # Create the table even when only embeddings are passed in.
    if tokens_bt is not None:
      x_btd = self.embed(tokens_bt)
    else:
      x_btd = constrain(inputs_embeds_btd.astype(jnp.dtype(c.dtype)), _BSE)
    valid_bt = jnp.ones((b, t), bool) if attention_mask_bt is None else attention_mask_bt.astype(bool)
    rank_bt = jnp.maximum(jnp.cumsum(valid_bt, axis=1, dtype=jnp.int32) - 1, 0)

    if cache is None:
      positions_bt = rank_bt if positions_bt is None else positions_bt
      # Padding is segment 0 and real tokens segment 1, so no real token ever sees padding.
      segments = {} if attention_mask_bt is None else dict(
          q_segment_ids=valid_bt.astype(jnp.int32), kv_segment_ids=valid_bt.astype(jnp.int32))
      mask, valid_bs = AttentionMask(causal=True, **segments), None
      layer_caches = [None] * c.num_hidden_layers
    else:
      if positions_bt is None:
        positions_bt = cache.next_position_b[:, None] + rank_bt.astype(jnp.float32)
      valid_bs = jax.lax.dynamic_update_slice(cache.valid_bs, valid_bt, (0, cache.index))
      mask = None  # The decode form builds it from the cache's fill and valid slots.
      layer_caches = list(zip(cache.keys, cache.values))

    new_layer_caches = []
    for layer, layer_cache in zip(self.layers, layer_caches):
      x_btd, new_layer_cache = layer(x_btd, positions_bt, mask, layer_cache,
                                     None if cache is None else cache.index, valid_bs)
      new_layer_caches.append(new_layer_cache)
    x_btd = self.final_norm(x_btd)
    if c.tie_word_embeddings:
      logits_btv = _logits(x_btd, self.token_embed.table_vd, "btd,vd->btv", c.dtype)
    else:
      logits_btv = _logits(x_btd, self.lm_head(), "btd,dv->btv", c.dtype)

    if cache is None:
      return logits_btv, None
    positions_f_bt = positions_bt.astype(jnp.float32)
    last_b = jnp.max(jnp.where(valid_bt, positions_f_bt, -jnp.inf), axis=1)
    new_cache = KVCache(
        keys=tuple(k for k, _ in new_layer_caches),
        values=tuple(v for _, v in new_layer_caches),
        valid_bs=valid_bs,
        index=cache.index + t,
        length_b=cache.length_b + jnp.sum(valid_bt, axis=1, dtype=jnp.int32),
        next_position_b=jnp.where(jnp.any(valid_bt, axis=1), last_b + 1.0, cache.next_position_b),
    )
    return logits_btv, new_cache


def _logits(x_btd: jax.Array, table: jax.Array, spec: str, dtype: str) -> jax.Array:
  """[B, T, V] float32 logits from the final hidden states and the embedding table or lm_head kernel."""
  dtype = jnp.dtype(dtype)
  logits_btv = jnp.einsum(spec, x_btd.astype(dtype), table.astype(dtype), preferred_element_type=jnp.float32)
  return constrain(logits_btv, (axes.BATCH, axes.SEQ, axes.VOCAB))


def _shape(x) -> tuple[int, ...] | str:
  return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def check_tokens(tokens_bt, vocab_size: int) -> None:
  """Raises unless `tokens_bt` is a [B, T] integer array whose (concrete) ids lie in [0, vocab_size)."""
  if getattr(tokens_bt, "ndim", None) != 2:
    raise ValueError(f"tokens_bt must be a [B, T] integer array, got {_shape(tokens_bt)}")
  if not jnp.issubdtype(tokens_bt.dtype, jnp.integer):
    raise TypeError(f"tokens_bt must be an integer array, got dtype {tokens_bt.dtype}")
  if not isinstance(tokens_bt, _compat.Tracer) and tokens_bt.size:
    low, high = int(np.min(tokens_bt)), int(np.max(tokens_bt))
    if low < 0 or high >= vocab_size:
      raise ValueError(f"tokens_bt has ids in [{low}, {high}], outside the vocabulary [0, {vocab_size})")


def _check_inputs(config: Qwen2Config, tokens_bt, inputs_embeds_btd, positions_bt, attention_mask_bt):
  """Validates shapes and dtypes of a `Qwen2LM` call from static information; returns (B, T)."""
  if (tokens_bt is None) == (inputs_embeds_btd is None):
    raise ValueError("Qwen2LM needs exactly one of tokens_bt or inputs_embeds_btd, got "
                     f"{'both' if tokens_bt is not None else 'neither'}")
  if tokens_bt is not None:
    check_tokens(tokens_bt, config.vocab_size)
    b, t = tokens_bt.shape
  else:
    shape = _shape(inputs_embeds_btd)
    if getattr(inputs_embeds_btd, "ndim", None) != 3 or inputs_embeds_btd.shape[-1] != config.hidden_size:
      raise ValueError(f"inputs_embeds_btd must have shape [B, T, D={config.hidden_size}], got {shape}")
    if not jnp.issubdtype(inputs_embeds_btd.dtype, jnp.floating):
      raise TypeError(f"inputs_embeds_btd must be a float array, got dtype {inputs_embeds_btd.dtype}")
    b, t, _ = inputs_embeds_btd.shape
  if t > config.max_position_embeddings:
    raise ValueError(f"sequence length {t} exceeds config.max_position_embeddings={config.max_position_embeddings}")
  if positions_bt is not None:
    if _shape(positions_bt) != (b, t):
      raise ValueError(f"positions_bt must have shape {(b, t)} (B, T), got {_shape(positions_bt)}")
    dtype = jnp.dtype(positions_bt.dtype)
    if not (jnp.issubdtype(dtype, jnp.integer) or dtype in (jnp.float32, jnp.float64)):
      raise TypeError(f"positions_bt must be int or float32, got dtype {dtype}")
  if attention_mask_bt is not None:
    if _shape(attention_mask_bt) != (b, t):
      raise ValueError(f"attention_mask_bt must have shape {(b, t)} (B, T), got {_shape(attention_mask_bt)}")
    dtype = jnp.dtype(attention_mask_bt.dtype)
    if not (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer)):
      raise TypeError(f"attention_mask_bt must be bool or int, got dtype {dtype}")
  return b, t
