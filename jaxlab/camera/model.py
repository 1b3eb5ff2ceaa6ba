"""GenDoP: an OPT-style decoder that writes 300 camera-pose tokens after a caption (and image) prefix.

Sequence: [prefix][BOS][300 pose tokens], with the prefix

  LayerNorm(concat(Linear_text(text_encoder(caption)),                   77 tokens
                   Linear_rgb(rgb_tower(rgb)), Linear_depth(depth_tower(depth x 3))))  "rgbd_text" only

(one Linear per modality, one shared LayerNorm; no cross-attention). The decoder adds learned
absolute positions over the whole sequence and runs post-LN blocks

  x = LN(x + dropout(attention(x)));  x = LN(x + dropout(fc2(relu(fc1(x)))))

with causal attention and no final norm, then a bias-free head over the 260-token vocabulary at the
token positions only. The towers stand in for GenDoP's CLIP encoders (no weights offline): the text
one is `jaxlab.camera.text.TextEncoder`, the RGB and depth ones are two separate
`jaxlab.vlm.vision.InternVisionModel`s (224 px, 14 px patches: 257 tokens each, 591 prefix tokens
with the caption, as in GenDoP).

`generate` decodes with a KV cache: one prefill over [prefix, BOS], then single-token steps in a
`jax.lax.while_loop`, with PAD and BOS never produced and EOS allowed only after a whole number of
poses (10k pose tokens, k >= 1).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat, ops
from jaxlab.camera.text import TextEncoder
from jaxlab.camera.tokenizer import BOS, EOS, OFFSET, PAD, POSE_TOKENS, VALUES_PER_POSE, VOCAB_SIZE
from jaxlab.nn import Dense, LayerNorm, dot_product_attention
from jaxlab.ops.registry import check_implementation
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel

_CONDITIONINGS = ("text", "rgbd_text")
_BSE = (axes.BATCH, axes.SEQ, axes.EMBED)
_HEAD_AXES = (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM)
# CLIP's pixel statistics: the RGB tower sees images normalized as GenDoP's CLIP tower does.
_RGB_MEAN = (0.48145466, 0.4578275, 0.40821073)
_RGB_STD = (0.26862954, 0.26130258, 0.27577711)


def _positive_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclasses.dataclass(frozen=True)
class GenDoPConfig:
  """Sizes of a `GenDoP` (the defaults are the "base" preset, GenDoP's ArAE: 12 x 1024, 8 heads).

  Attributes:
    hidden_size, num_heads, num_layers: the decoder (head dim = hidden_size / num_heads).
    mlp_ratio: the decoder MLP is mlp_ratio x hidden_size wide (ReLU).
    dropout: on both residual branches of every decoder block when not deterministic.
    conditioning: "text" (caption prefix) or "rgbd_text" (caption, then RGB, then depth tokens).
    text_length: caption ids per row (77).
    caption_vocab_size, text_width, text_layers, text_heads: the `TextEncoder`.
    vision: the config of each of the two vision towers (used by "rgbd_text" only); images are
      resized to its image_size.
    max_positions: rows of the position table; None: exactly `sequence_length`.
    layer_norm_eps: of every decoder and prefix LayerNorm.
    dtype: compute dtype ("float32" or "bfloat16"); parameters stay float32, logits are float32.
    attention_implementation: `jaxlab.ops.attention` implementation(s); None: the best available.
  """

  hidden_size: int = 1024
  num_heads: int = 8
  num_layers: int = 12
  mlp_ratio: int = 4
  dropout: float = 0.1
  conditioning: str = "text"
  text_length: int = 77
  caption_vocab_size: int = 2000
  text_width: int = 512
  text_layers: int = 6
  text_heads: int = 8
  vision: InternVisionConfig = InternVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                  intermediate_size=3072, image_size=(224, 224))
  max_positions: int | None = None
  layer_norm_eps: float = 1e-5
  dtype: str = "float32"
  attention_implementation: str | tuple[str, ...] | None = None

  def __post_init__(self) -> None:
    for name in ("hidden_size", "num_heads", "num_layers", "mlp_ratio", "text_length", "caption_vocab_size",
                 "text_width", "text_layers", "text_heads"):
      if not _positive_int(getattr(self, name)):
        raise ValueError(f"GenDoPConfig.{name} must be a positive int, got {getattr(self, name)!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"GenDoPConfig.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
    if self.text_width % self.text_heads:
      raise ValueError(f"GenDoPConfig.text_width={self.text_width} is not divisible by text_heads={self.text_heads}")
    if self.conditioning not in _CONDITIONINGS:
      raise ValueError(f"GenDoPConfig.conditioning must be one of {_CONDITIONINGS}, got {self.conditioning!r}")
    if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
      raise ValueError(f"GenDoPConfig.dropout must be in [0, 1), got {self.dropout!r}")
    if not isinstance(self.vision, InternVisionConfig):
      raise ValueError(f"GenDoPConfig.vision must be an InternVisionConfig, got {type(self.vision).__name__}")
    if not self.layer_norm_eps > 0:
      raise ValueError(f"GenDoPConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
    if jnp.dtype(self.dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
      raise ValueError(f"GenDoPConfig.dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
    object.__setattr__(self, "attention_implementation", check_implementation(
        "GenDoPConfig.attention_implementation", self.attention_implementation))
    if self.max_positions is not None and (not _positive_int(self.max_positions)
                                           or self.max_positions < self.sequence_length):
      raise ValueError(f"GenDoPConfig.max_positions={self.max_positions!r} is below the sequence length "
                       f"{self.sequence_length} (prefix {self.prefix_length} + BOS + {POSE_TOKENS} tokens)")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def intermediate_size(self) -> int:
    return self.mlp_ratio * self.hidden_size

  @property
  def image_tokens(self) -> int:
    """Tokens of one vision tower: CLS plus one per patch of the resized image."""
    return self.vision.num_positions

  @property
  def prefix_length(self) -> int:
    """P: conditioning tokens before BOS (77 for text, 77 + 2 x 257 = 591 for rgbd_text at 224 px)."""
    return self.text_length + (2 * self.image_tokens if self.conditioning == "rgbd_text" else 0)

  @property
  def sequence_length(self) -> int:
    """P + 1 + 300: every position the decoder ever reads (EOS is predicted, never fed)."""
    return self.prefix_length + 1 + POSE_TOKENS

  @property
  def position_table_size(self) -> int:
    return self.sequence_length if self.max_positions is None else self.max_positions

  @classmethod
  def preset(cls, name: str, **overrides: Any) -> GenDoPConfig:
    """A named preset ("tiny": tests; "small" 512 x 8; "base" 1024 x 12 (GenDoP); "large" 1536 x 24), then overrides."""
    if name not in _PRESETS:
      raise ValueError(f"Unknown GenDoPConfig preset {name!r}; valid presets: {sorted(_PRESETS)}")
    return dataclasses.replace(_PRESETS[name], **overrides)


_PRESETS: Mapping[str, GenDoPConfig] = types.MappingProxyType({
    # Seconds on a CPU: 2 x 64 decoder, one-layer towers on 28 px images (5 tokens each).
    "tiny": GenDoPConfig(hidden_size=64, num_heads=4, num_layers=2, caption_vocab_size=512, text_width=32,
                         text_layers=1, text_heads=4,
                         vision=InternVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                   intermediate_size=64, image_size=(28, 28))),
    "small": GenDoPConfig(hidden_size=512, num_heads=8, num_layers=8, text_width=256, text_layers=4, text_heads=4,
                          vision=InternVisionConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                                    intermediate_size=1536, image_size=(224, 224))),
    "base": GenDoPConfig(),
    "large": GenDoPConfig(hidden_size=1536, num_heads=16, num_layers=24, text_width=1024, text_layers=12,
                          text_heads=16,
                          vision=InternVisionConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                                    intermediate_size=4096, image_size=(224, 224))),
})


class _Cache(NamedTuple):
  """Keys and values [B, S, H, hd] of every decoder layer, and `index`, the slots written so far."""

  keys: tuple[jax.Array, ...]
  values: tuple[jax.Array, ...]
  index: jax.Array


class _Attention(nn.Module):
  """Causal multi-head self-attention (q/k/v/o `Dense` with biases, as OPT), with an optional KV cache."""

  config: GenDoPConfig

  @nn.compact
  def __call__(self, x_btd: jax.Array, kv_cache: tuple[jax.Array, jax.Array] | None = None,
               index: jax.Array | None = None) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    c = self.config
    b, t, d = x_btd.shape
    dtype = jnp.dtype(c.dtype)
    init = nn.initializers.normal(0.02)
    dense = lambda name, kernel_axes: Dense(d, kernel_axes, kernel_init=init, dtype=dtype, name=name)
    q_bthk, k_bthk, v_bthk = (dense(name, (axes.EMBED, axes.HEADS))(x_btd).reshape(b, t, c.num_heads, c.head_dim)
                              for name in ("q", "k", "v"))
    q_bthk = constrain(q_bthk, _HEAD_AXES)
    new_cache = None
    if kv_cache is None:
      out_bthk = dot_product_attention(q_bthk, k_bthk, v_bthk, ops.AttentionMask(causal=True),
                                       implementation=c.attention_implementation)
    else:
      # The new keys/values take slots [index, index + t); slots past them are hidden by causality.
      keys_bshk = jax.lax.dynamic_update_slice(kv_cache[0], k_bthk.astype(kv_cache[0].dtype), (0, index, 0, 0))
      values_bshk = jax.lax.dynamic_update_slice(kv_cache[1], v_bthk.astype(kv_cache[1].dtype), (0, index, 0, 0))
      new_cache = (constrain(keys_bshk, _HEAD_AXES), constrain(values_bshk, _HEAD_AXES))
      out_bthk = ops.attention_decode(q_bthk, keys_bshk.astype(dtype), values_bshk.astype(dtype), index,
                                      implementation=c.attention_implementation)
    return dense("o", (axes.HEADS, axes.EMBED))(out_bthk.reshape(b, t, d)), new_cache


class _DecoderLayer(nn.Module):
  """Post-LN OPT block: x = LN(x + attention(x)); x = LN(x + fc2(relu(fc1(x)))), dropout on both branches."""

  config: GenDoPConfig

  @nn.compact
  def __call__(self, x_btd: jax.Array, kv_cache: tuple[jax.Array, jax.Array] | None, index: jax.Array | None,
               deterministic: bool) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    c = self.config
    dtype = jnp.dtype(c.dtype)
    init = nn.initializers.normal(0.02)
    norm = lambda name: LayerNorm(eps=c.layer_norm_eps, name=name)
    y_btd, new_cache = _Attention(c, name="attention")(x_btd, kv_cache, index)
    y_btd = nn.Dropout(c.dropout)(y_btd, deterministic=deterministic)
    x_btd = constrain(norm("attention_norm")(x_btd + y_btd), _BSE)
    h_btf = Dense(c.intermediate_size, (axes.EMBED, axes.MLP), kernel_init=init, dtype=dtype, name="fc1")(x_btd)
    h_btf = constrain(nn.relu(h_btf), (axes.BATCH, axes.SEQ, axes.MLP))
    y_btd = Dense(c.hidden_size, (axes.MLP, axes.EMBED), kernel_init=init, dtype=dtype, name="fc2")(h_btf)
    y_btd = nn.Dropout(c.dropout)(y_btd, deterministic=deterministic)
    return constrain(norm("mlp_norm")(x_btd + y_btd), _BSE), new_cache


def _check_ids(name: str, ids: Any, length_range: tuple[int, int], vocab: int) -> tuple[int, int]:
  """Checks an int [B, T] array with T in `length_range` (ids in [0, vocab) when concrete); returns (B, T)."""
  shape = tuple(np.shape(ids))
  lo, hi = length_range
  if len(shape) != 2 or shape[0] < 1 or not lo <= shape[1] <= hi:
    want = f"[B, {lo}]" if lo == hi else f"[B, T] with {lo} <= T <= {hi}"
    raise ValueError(f"GenDoP: {name} must be {want}, got shape {shape}")
  if not jnp.issubdtype(jnp.asarray(ids).dtype, jnp.integer):
    raise ValueError(f"GenDoP: {name} must be integer ids, got {jnp.asarray(ids).dtype}")
  if not isinstance(ids, _compat.Tracer):
    values = np.asarray(ids)
    if values.min() < 0 or values.max() >= vocab:
      raise ValueError(f"GenDoP: {name} must lie in [0, {vocab}), got [{values.min()}, {values.max()}]")
  return shape


def _check_images(config: GenDoPConfig, batch: int, rgb: Any, depth: Any) -> None:
  """rgb [B, H, W, 3] and depth [B, H, W] for "rgbd_text"; both None for "text"."""
  if config.conditioning == "text":
    if rgb is not None or depth is not None:
      raise ValueError("GenDoP: conditioning='text' takes no rgb or depth (pass None); "
                       "use conditioning='rgbd_text' to condition on images")
    return
  if rgb is None or depth is None:
    raise ValueError("GenDoP: conditioning='rgbd_text' needs both rgb [B, H, W, 3] and depth [B, H, W]")
  rgb_shape, depth_shape = tuple(np.shape(rgb)), tuple(np.shape(depth))
  if len(rgb_shape) != 4 or rgb_shape[-1] != 3 or rgb_shape[0] != batch:
    raise ValueError(f"GenDoP: rgb must be [B={batch}, H, W, 3], got shape {rgb_shape}")
  if len(depth_shape) != 3 or depth_shape[0] != batch:
    raise ValueError(f"GenDoP: depth must be [B={batch}, H, W], got shape {depth_shape}")


class GenDoP(nn.Module):
  """The GenDoP decoder with its conditioning towers (see the module docstring).

  Params: text_encoder, text_proj; rgb_tower, rgb_proj, depth_tower, depth_proj ("rgbd_text");
  prefix_norm; token_embedding [260, D] (vocab, embed); position_embedding [positions, D];
  layers_{i} (attention q/k/v/o, attention_norm, fc1, fc2, mlp_norm); lm_head (kernel [D, 260]).
  Dropout needs a "dropout" PRNG stream when `deterministic=False`.
  """

  config: GenDoPConfig

  def setup(self):
    c = self.config
    if not isinstance(c, GenDoPConfig):
      raise TypeError(f"GenDoP.config must be a GenDoPConfig, got {type(c).__name__}")
    dtype = jnp.dtype(c.dtype)
    init = nn.initializers.normal(0.02)
    proj = lambda name: Dense(c.hidden_size, (None, axes.EMBED), kernel_init=init, dtype=dtype, name=name)
    self.text_encoder = TextEncoder(vocab_size=c.caption_vocab_size, length=c.text_length, width=c.text_width,
                                    num_layers=c.text_layers, num_heads=c.text_heads, dtype=dtype,
                                    attention_implementation=c.attention_implementation, name="text_encoder")
    self.text_proj = proj("text_proj")
    if c.conditioning == "rgbd_text":
      self.rgb_tower = InternVisionModel(c.vision, dtype=dtype, name="rgb_tower")
      self.rgb_proj = proj("rgb_proj")
      self.depth_tower = InternVisionModel(c.vision, dtype=dtype, name="depth_tower")
      self.depth_proj = proj("depth_proj")
    self.prefix_norm = LayerNorm(eps=c.layer_norm_eps, name="prefix_norm")
    self.token_table_vd = self.param("token_embedding", param_with_axes(init, (axes.VOCAB, axes.EMBED)),
                                     (VOCAB_SIZE, c.hidden_size))
    self.position_table_pd = self.param("position_embedding", param_with_axes(init, (None, axes.EMBED)),
                                        (c.position_table_size, c.hidden_size))
    self.layers = [_DecoderLayer(c, name=f"layers_{i}") for i in range(c.num_layers)]
    self.lm_head = Dense(VOCAB_SIZE, (axes.EMBED, axes.VOCAB), use_bias=False, kernel_init=init, dtype=dtype,
                         name="lm_head")

  def _pixels(self, images_bhwc: jax.Array) -> jax.Array:
    """Float images resized (bilinear, half-pixel centers) to the towers' image size."""
    x = jnp.asarray(images_bhwc)
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    size = self.config.vision.image_size
    if tuple(x.shape[1:3]) != size:
      x = jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear", antialias=False)
    return x

  def encode_prefix(self, text_ids: jax.Array, rgb: jax.Array | None = None, depth: jax.Array | None = None
                    ) -> jax.Array:
    """The normalized prefix [B, P, D]: caption tokens, then (rgbd_text) RGB and depth tokens.

    Args:
      text_ids: [B, text_length] caption ids (`jaxlab.camera.text.encode_captions`).
      rgb: [B, H, W, 3] uint8, or float in [0, 1]; "rgbd_text" only.
      depth: [B, H, W] float depth, fed raw (repeated to 3 channels) as GenDoP does; "rgbd_text" only.
    """
    c = self.config
    b, _ = _check_ids("text_ids", text_ids, (c.text_length, c.text_length), c.caption_vocab_size)
    _check_images(c, b, rgb, depth)
    parts = [self.text_proj(self.text_encoder(text_ids))]
    if c.conditioning == "rgbd_text":
      mean, std = jnp.asarray(_RGB_MEAN), jnp.asarray(_RGB_STD)
      parts.append(self.rgb_proj(self.rgb_tower((self._pixels(rgb) - mean) / std)))
      depth_bhw3 = jnp.repeat(jnp.asarray(depth, jnp.float32)[..., None], 3, axis=-1)
      parts.append(self.depth_proj(self.depth_tower(self._pixels(depth_bhw3))))
    prefix_bpd = self.prefix_norm(jnp.concatenate([p.astype(jnp.dtype(c.dtype)) for p in parts], axis=1))
    return constrain(prefix_bpd, _BSE)

  def _embed(self, ids_bt: jax.Array) -> jax.Array:
    table_vd = constrain(self.token_table_vd, (axes.VOCAB, None))
    return jnp.take(table_vd, ids_bt, axis=0).astype(jnp.dtype(self.config.dtype))

  def _decode(self, x_btd: jax.Array, start: jax.Array | int, cache: _Cache | None, deterministic: bool
              ) -> tuple[jax.Array, _Cache | None]:
    """Adds positions [start, start + T) and runs the layers; with a cache, writes slots from start."""
    t = x_btd.shape[1]
    positions_td = jax.lax.dynamic_slice_in_dim(self.position_table_pd, start, t, axis=0)
    x_btd = constrain(x_btd + positions_td.astype(x_btd.dtype), _BSE)
    keys, values = [], []
    for i, layer in enumerate(self.layers):
      layer_cache = None if cache is None else (cache.keys[i], cache.values[i])
      x_btd, new_layer_cache = layer(x_btd, layer_cache, None if cache is None else cache.index, deterministic)
      if cache is not None:
        keys.append(new_layer_cache[0])
        values.append(new_layer_cache[1])
    new_cache = None if cache is None else _Cache(tuple(keys), tuple(values), cache.index + t)
    return x_btd, new_cache

  def _logits(self, x_btd: jax.Array) -> jax.Array:
    return self.lm_head(x_btd).astype(jnp.float32)

  def __call__(self, text_ids: jax.Array, rgb: jax.Array | None, depth: jax.Array | None, input_ids: jax.Array,
               *, deterministic: bool = True) -> jax.Array:
    """Teacher-forced logits [B, T, 260] float32 at the token positions ([BOS, tokens], not the prefix).

    Args:
      text_ids: [B, text_length] caption ids.
      rgb, depth: see `encode_prefix` (None for "text").
      input_ids: [B, T] ids, T <= 301: [BOS] + pose tokens (`tokenizer.training_sequence`); logit t
        predicts input t + 1 (the last one EOS).
      deterministic: False applies dropout (needs rngs={"dropout": key}).

    Raises:
      ValueError: shapes, dtypes or id ranges that do not fit the config.
    """
    b, t = _check_ids("input_ids", input_ids, (1, POSE_TOKENS + 1), VOCAB_SIZE)
    prefix_bpd = self.encode_prefix(text_ids, rgb, depth)
    if prefix_bpd.shape[0] != b:
      raise ValueError(f"GenDoP: input_ids has batch {b} but text_ids has {prefix_bpd.shape[0]}")
    p = prefix_bpd.shape[1]
    x_bsd = jnp.concatenate([prefix_bpd, self._embed(input_ids)], axis=1)
    x_bsd, _ = self._decode(x_bsd, 0, None, deterministic)
    return self._logits(x_bsd[:, p:])

  def prefill(self, text_ids: jax.Array, rgb: jax.Array | None, depth: jax.Array | None, *, cache_length: int
              ) -> tuple[jax.Array, _Cache]:
    """Runs [prefix, BOS] into a new KV cache of `cache_length` slots (at least P + 1).

    Returns:
      (logits [B, 260] float32 for the first pose token, the cache to pass to `decode_step`).
    """
    c = self.config
    if not _positive_int(cache_length) or not c.prefix_length + 1 <= cache_length <= c.position_table_size:
      raise ValueError(f"GenDoP.prefill: cache_length must be in [{c.prefix_length + 1}, "
                       f"{c.position_table_size}], got {cache_length!r}")
    prefix_bpd = self.encode_prefix(text_ids, rgb, depth)
    b = prefix_bpd.shape[0]
    x_bsd = jnp.concatenate([prefix_bpd, self._embed(jnp.full((b, 1), BOS, jnp.int32))], axis=1)
    shape = (b, cache_length, c.num_heads, c.head_dim)
    empty = tuple(constrain(jnp.zeros(shape, jnp.dtype(c.dtype)), _HEAD_AXES) for _ in range(c.num_layers))
    cache = _Cache(empty, empty, jnp.zeros((), jnp.int32))
    x_bsd, cache = self._decode(x_bsd, 0, cache, True)
    return self._logits(x_bsd[:, -1]), cache

  def decode_step(self, token_b: jax.Array, cache: _Cache) -> tuple[jax.Array, _Cache]:
    """Feeds one token per row [B] at slot `cache.index`; returns (next-token logits [B, 260], the cache)."""
    x_b1d = self._embed(jnp.asarray(token_b, jnp.int32)[:, None])
    x_b1d, cache = self._decode(x_b1d, cache.index, cache, True)
    return self._logits(x_b1d[:, 0]), cache


def loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean cross-entropy (float32 scalar) of logits [B, T, 260] against targets [B, T] (pose tokens + EOS).

  Targets equal to PAD (0) are left out (the -100 of GenDoP's labels); the mean is over the rest.

  Raises:
    ValueError: mismatched shapes.
  """
  logits_btv, targets_bt = jnp.asarray(logits), jnp.asarray(targets)
  if logits_btv.ndim != 3 or targets_bt.shape != logits_btv.shape[:2]:
    raise ValueError(f"loss: logits must be [B, T, V] and targets [B, T], got {logits_btv.shape} and "
                     f"{targets_bt.shape}")
  logp_btv = jax.nn.log_softmax(logits_btv.astype(jnp.float32), axis=-1)
  nll_bt = -jnp.take_along_axis(logp_btv, targets_bt[..., None].astype(jnp.int32), axis=-1)[..., 0]
  valid_bt = (targets_bt != PAD).astype(jnp.float32)
  return jnp.sum(nll_bt * valid_bt) / jnp.maximum(jnp.sum(valid_bt), 1.0)


def _allowed(logits_bv: jax.Array, generated: jax.Array) -> jax.Array:
  """Logits with forbidden tokens at -inf, `generated` pose tokens into the row.

  Pose tokens (ids >= OFFSET) are always allowed; EOS only once a whole, non-zero number of poses
  is out (generated = 10k, k >= 1: sequence position 1 + 10k counting BOS as 0); PAD and BOS never.
  """
  vocab_v = jnp.arange(logits_bv.shape[-1])
  eos_ok = (generated % VALUES_PER_POSE == 0) & (generated >= VALUES_PER_POSE)
  allowed_v = (vocab_v >= OFFSET) | ((vocab_v == EOS) & eos_ok)
  return jnp.where(allowed_v[None, :], logits_bv, -jnp.inf)


def _pick(logits_bv: jax.Array, key: jax.Array, *, top_k: int, greedy: bool) -> jax.Array:
  """Argmax, or a draw among the top_k logits of each row."""
  if greedy:
    return jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
  kth_b1 = jax.lax.top_k(logits_bv, top_k)[0][:, -1:]
  return jax.random.categorical(key, jnp.where(logits_bv >= kth_b1, logits_bv, -jnp.inf), axis=-1).astype(jnp.int32)


def generate(model: GenDoP, params: Any, text_ids: jax.Array, rgb: jax.Array | None, depth: jax.Array | None,
             key: jax.Array | None, *, top_k: int = 10, greedy: bool = False, max_new_tokens: int = 301
             ) -> jax.Array:
  """Samples pose tokens [B, 300] int32 after each row's conditioning, with a KV cache.

  One jitted program: a prefill over [prefix, BOS], then single-token steps in a
  `jax.lax.while_loop` that stops once every row has ended. At every step PAD and BOS are never
  produced and EOS only after 10k pose tokens (k >= 1). A row that produces EOS holds EOS at that
  index and PAD after it. Step 301 of GenDoP (EOS or a 301st token) leaves the 300 pose tokens as
  they are, so at most 300 steps run.

  Args:
    model: a `GenDoP`.
    params: its parameters (or {"params": params}).
    text_ids: [B, text_length] caption ids; rgb [B, H, W, 3] and depth [B, H, W] for "rgbd_text",
      None for "text".
    key: PRNG key for sampling; may be None when greedy.
    top_k: sample among the k most likely allowed tokens (GenDoP: 10).
    greedy: argmax instead of sampling.
    max_new_tokens: decoding steps, at most 301 (GenDoP's, the default). With fewer,
      min(max_new_tokens, 300) tokens are decoded and the rest of the 300 are PAD (a partial
      trajectory, e.g. for quick checks); the output shape is [B, 300] either way.

  Raises:
    TypeError / ValueError: a model that is not a GenDoP, bad top_k or max_new_tokens, sampling
      without a key, or inputs that do not fit the config.
  """
  if not isinstance(model, GenDoP):
    raise TypeError(f"generate: model must be a GenDoP, got {type(model).__name__}")
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  if not _positive_int(top_k) or top_k > VOCAB_SIZE:
    raise ValueError(f"generate: top_k must be an int in [1, {VOCAB_SIZE}], got {top_k!r}")
  if not _positive_int(max_new_tokens) or max_new_tokens > POSE_TOKENS + 1:
    raise ValueError(f"generate: max_new_tokens must be an int in [1, {POSE_TOKENS + 1}], got {max_new_tokens!r}")
  if key is None and not greedy:
    raise ValueError("generate: sampling (greedy=False) needs a PRNG key")
  config = model.config
  b, _ = _check_ids("text_ids", text_ids, (config.text_length, config.text_length), config.caption_vocab_size)
  _check_images(config, b, rgb, depth)
  key = jax.random.key(0) if key is None else key
  return _generate(model, params, jnp.asarray(text_ids, jnp.int32), rgb, depth, key, top_k=top_k,
                   greedy=bool(greedy), steps=min(max_new_tokens, POSE_TOKENS))


@functools.partial(jax.jit, static_argnames=("model", "top_k", "greedy", "steps"))
def _generate(model: GenDoP, params: Any, text_ids: jax.Array, rgb: jax.Array | None, depth: jax.Array | None,
              key: jax.Array, *, top_k: int, greedy: bool, steps: int) -> jax.Array:
  variables = {"params": params}
  b = text_ids.shape[0]

  def pick(logits_bv, generated, done_b, key):
    key, sub = jax.random.split(key)
    token_b = _pick(_allowed(logits_bv, generated), sub, top_k=top_k, greedy=greedy)
    token_b = jnp.where(done_b, PAD, token_b)
    return token_b, done_b | (token_b == EOS), key

  # Slots: the prefix, BOS, then every token but the last one decoded.
  cache_length = model.config.prefix_length + steps
  logits_bv, cache = model.apply(variables, text_ids, rgb, depth, cache_length=cache_length, method=GenDoP.prefill)
  first_b, done_b, key = pick(logits_bv, 0, jnp.zeros((b,), bool), key)
  out_bn = jnp.full((b, POSE_TOKENS), PAD, jnp.int32).at[:, 0].set(first_b)

  def step(state):
    i, out_bn, done_b, cache, key = state
    logits_bv, cache = model.apply(variables, out_bn[:, i - 1], cache, method=GenDoP.decode_step)
    token_b, done_b, key = pick(logits_bv, i, done_b, key)
    return i + 1, out_bn.at[:, i].set(token_b), done_b, cache, key

  def running(state):
    i, _, done_b, _, _ = state
    return (i < steps) & ~jnp.all(done_b)

  _, out_bn, _, _, _ = jax.lax.while_loop(running, step, (jnp.int32(1), out_bn, done_b, cache, key))
  return out_bn
