"""A diffusion transformer (DiT) that predicts rectified-flow velocities for NHWC images.

The image is cut into p x p patches, each linearly embedded to one token. Blocks are pre-LN
transformer blocks whose LayerNorms have no learned affine; instead a shift, scale and gate
per sub-layer come from the conditioning vector c = embed(sigma) + embed(label) (adaLN-Zero:
the projections producing them start at zero, so every block starts as the identity and the
model's output starts at zero). Positions enter only through 2-D rotary embeddings on queries
and keys (patch row, patch column), so one set of weights runs at any resolution that is a
multiple of the patch size.

High-resolution sampling knobs, per call:
  * `ntk_factor`: multiplies the RoPE base theta (NTK-aware scaling), slowing every rotation so
    that positions past the training grid fall in angle ranges seen in training.
  * `proportional_attention`: softmax scale sqrt(log L / log L_train) / sqrt(head_dim) for L
    image tokens, keeping attention entropy near its training-resolution value.
"""

import dataclasses
import math
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.nn import Dense, GeluMLP, dot_product_attention, layer_norm
from jaxlab.nn.adaln import Modulation, modulate
from jaxlab.nn.rope2d import apply_rope_2d, grid_positions, ntk_scaled_base
from jaxlab.ops.registry import check_implementation
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

# Sinusoidal features of the noise level, as in DDPM/DiT timestep embeddings.
_SIGMA_FEATURES = 256
_SIGMA_MAX_PERIOD = 10_000.0
# The LayerNorms have no learned scale or bias: adaLN supplies them.
_LN_EPS = 1e-6


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiTConfig:
  """Shape of a DiT.

  Fields:
    image_size: training resolution in pixels (square images); sets `train_tokens`.
    patch_size: side of the square patch that becomes one token.
    in_channels: image channels (input and predicted velocity).
    width: token dimension.
    depth: number of transformer blocks.
    num_heads: attention heads; head_dim = width / num_heads must be divisible by 4.
    mlp_ratio: MLP hidden size = round(width * mlp_ratio).
    num_classes: 0 for an unconditional model. Otherwise labels are in [0, num_classes] and
      label num_classes is the learned null class (dropped labels, classifier-free guidance).
    rope_theta: base of the 2-D rotary embedding.
    dtype: compute dtype (name or jnp dtype); attention scores, softmax and LayerNorm
      statistics stay float32.
    param_dtype: parameter dtype (name or jnp dtype).
    attention_implementation: `jaxlab.ops.attention` implementation(s) ("xla", "cudnn",
      "pallas_triton", or a tuple tried in order); None: the best available.
  """

  image_size: int
  patch_size: int
  in_channels: int = 3
  width: int
  depth: int
  num_heads: int
  mlp_ratio: float = 4.0
  num_classes: int = 0
  rope_theta: float = 100.0
  dtype: str | jnp.dtype = "float32"
  param_dtype: str | jnp.dtype = "float32"
  attention_implementation: str | tuple[str, ...] | None = None

  def __post_init__(self):
    object.__setattr__(self, "attention_implementation", check_implementation(
        "DiTConfig.attention_implementation", self.attention_implementation))
    for name in ("image_size", "patch_size", "in_channels", "width", "depth", "num_heads"):
      value = getattr(self, name)
      if not _is_int(value) or value < 1:
        raise ValueError(f"DiTConfig.{name} must be an int >= 1, got {value!r}.")
    if not _is_int(self.num_classes) or self.num_classes < 0:
      raise ValueError(f"DiTConfig.num_classes must be an int >= 0, got {self.num_classes!r}.")
    if self.width % self.num_heads:
      raise ValueError(f"DiTConfig.width {self.width} is not divisible by num_heads {self.num_heads}.")
    if self.head_dim % 4:
      raise ValueError(
          f"DiTConfig head_dim = width / num_heads = {self.head_dim} must be divisible by 4 for 2-D RoPE.")
    if self.image_size % self.patch_size:
      raise ValueError(
          f"DiTConfig.image_size {self.image_size} is not divisible by patch_size {self.patch_size}.")
    if not isinstance(self.mlp_ratio, numbers.Real) or not self.mlp_ratio > 0 or self.mlp_dim < 1:
      raise ValueError(f"DiTConfig.mlp_ratio must be > 0 with width * mlp_ratio >= 1, got {self.mlp_ratio!r}.")
    if not isinstance(self.rope_theta, numbers.Real) or not self.rope_theta > 0:
      raise ValueError(f"DiTConfig.rope_theta must be > 0, got {self.rope_theta!r}.")
    for name in ("dtype", "param_dtype"):
      value = getattr(self, name)
      try:
        floating = jnp.issubdtype(jnp.dtype(value), jnp.floating)
      except TypeError:
        floating = False
      if not floating:
        raise ValueError(f"DiTConfig.{name} must name a floating dtype, got {value!r}.")

  @property
  def head_dim(self) -> int:
    return self.width // self.num_heads

  @property
  def mlp_dim(self) -> int:
    return int(round(self.width * self.mlp_ratio))

  @property
  def patch_features(self) -> int:
    """Pixels per patch: patch_size^2 * in_channels."""
    return self.patch_size * self.patch_size * self.in_channels

  def train_tokens(self) -> int:
    """Image tokens at the training resolution, (image_size / patch_size)^2."""
    return (self.image_size // self.patch_size) ** 2


def softmax_scale(head_dim: int, num_tokens: int, train_tokens: int, proportional: bool) -> float:
  """Attention logit scale: 1/sqrt(head_dim), times sqrt(log L / log L_train) when proportional."""
  scale = 1.0 / math.sqrt(head_dim)
  if not proportional:
    return scale
  if train_tokens < 2:
    raise ValueError(f"proportional attention needs train_tokens >= 2 (log L_train > 0), got {train_tokens}.")
  return scale * math.sqrt(math.log(num_tokens) / math.log(train_tokens))


class _SelfAttention2D(nn.Module):
  """Non-causal multi-head self-attention with 2-D RoPE on queries and keys, through `jaxlab.ops.attention`."""

  num_heads: int
  head_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  implementation: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x_btd: jax.Array, rows_t: jax.Array, cols_t: jax.Array, *, rope_base: float,
               scale: float) -> jax.Array:
    d, h, k = x_btd.shape[-1], self.num_heads, self.head_dim
    in_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
    out_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
    zeros = nn.initializers.zeros

    def project(name):
      w_dhk = self.param(f"w{name}", param_with_axes(in_init, (axes.EMBED, axes.HEADS, axes.HEAD_DIM)), (d, h, k),
                         self.param_dtype)
      b_hk = self.param(f"b{name}", param_with_axes(zeros, (axes.HEADS, axes.HEAD_DIM)), (h, k), self.param_dtype)
      return jnp.einsum("btd,dhk->bthk", x_btd.astype(self.dtype), w_dhk.astype(self.dtype)) + b_hk.astype(self.dtype)

    q_bthk = apply_rope_2d(project("q"), rows_t, cols_t, base=rope_base)
    k_bshk = apply_rope_2d(project("k"), rows_t, cols_t, base=rope_base)
    v_bshk = project("v")
    q_bthk = constrain(q_bthk, (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM))

    out_bthk = dot_product_attention(q_bthk, k_bshk, v_bshk, scale=scale, implementation=self.implementation)

    w_o_hkd = self.param("wo", param_with_axes(out_init, (axes.HEADS, axes.HEAD_DIM, axes.EMBED)), (h, k, d),
                         self.param_dtype)
    b_o_d = self.param("bo", param_with_axes(zeros, (axes.EMBED,)), (d,), self.param_dtype)
    return jnp.einsum("bthk,hkd->btd", out_bthk, w_o_hkd.astype(self.dtype)) + b_o_d.astype(self.dtype)


class DiTBlock(nn.Module):
  """x + gate * attn(modulate(LN(x))), then x + gate * mlp(modulate(LN(x))); modulation from c."""

  config: DiTConfig

  @nn.compact
  def __call__(self, x_btd: jax.Array, c_bd: jax.Array, rows_t: jax.Array, cols_t: jax.Array, *,
               rope_base: float, scale: float) -> jax.Array:
    cfg = self.config
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = Modulation(
        6, dtype=dtype, param_dtype=param_dtype, name="modulation")(c_bd)
    attn = _SelfAttention2D(cfg.num_heads, cfg.head_dim, dtype=dtype, param_dtype=param_dtype,
                            implementation=cfg.attention_implementation, name="attention")
    h_btd = attn(modulate(layer_norm(x_btd, eps=_LN_EPS), shift_a, scale_a), rows_t, cols_t, rope_base=rope_base,
                 scale=scale)
    x_btd = x_btd + gate_a[:, None, :] * h_btd
    mlp = GeluMLP(cfg.mlp_dim, approximate=True, dtype=dtype, param_dtype=param_dtype, name="mlp")
    x_btd = x_btd + gate_m[:, None, :] * mlp(modulate(layer_norm(x_btd, eps=_LN_EPS), shift_m, scale_m))
    return constrain(x_btd, (axes.BATCH, axes.SEQ, axes.EMBED))


class DiT(nn.Module):
  """Maps noisy images, noise levels and optional labels to velocities of the same shape.

  Params: patch_embed, sigma_embed_{0,1}, label_embed (when num_classes > 0), block_{i}
  (modulation, attention, mlp), final_modulation, final_proj.
  """

  config: DiTConfig

  @nn.compact
  def __call__(self, x_bhwc: jax.Array, sigma_b: jax.Array, labels_b: jax.Array | None = None, *,
               ntk_factor: float = 1.0, proportional_attention: bool = False) -> jax.Array:
    """Args:
      x_bhwc: [batch, H, W, in_channels] images; H and W multiples of patch_size (any size).
      sigma_b: [batch] noise levels in [0, 1] (embedded through 1000 * sigma).
      labels_b: [batch] int class labels in [0, num_classes] (num_classes = null class), or
        None for the null class. Must be None for an unconditional model (num_classes == 0).
      ntk_factor: multiplies the RoPE base (NTK-aware scaling); 1 leaves it unchanged.
      proportional_attention: scale logits by sqrt(log L / log L_train) as well.

    Returns:
      [batch, H, W, in_channels] float32 velocities.
    """
    cfg = self.config
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    sigma_b = jnp.asarray(sigma_b)
    labels_b = None if labels_b is None else jnp.asarray(labels_b)
    b, hh, ww = self._check_inputs(x_bhwc, sigma_b, labels_b)
    rope_base = ntk_scaled_base(cfg.rope_theta, ntk_factor)
    p, d = cfg.patch_size, cfg.width
    h_tok, w_tok = hh // p, ww // p
    scale = softmax_scale(cfg.head_dim, h_tok * w_tok, cfg.train_tokens(), proportional_attention)

    # Patchify: [b, H, W, C] -> [b, h*w, p*p*C], tokens row-major over the patch grid.
    patches = x_bhwc.reshape(b, h_tok, p, w_tok, p, cfg.in_channels).transpose(0, 1, 3, 2, 4, 5)
    patches_btf = patches.reshape(b, h_tok * w_tok, cfg.patch_features)
    x_btd = Dense(d, (None, axes.EMBED), dtype=dtype, param_dtype=param_dtype, name="patch_embed")(patches_btf)
    x_btd = constrain(x_btd, (axes.BATCH, axes.SEQ, axes.EMBED))

    c_bd = self._conditioning(sigma_b, labels_b, dtype, param_dtype)
    rows_t, cols_t = grid_positions(h_tok, w_tok)
    for i in range(cfg.depth):
      x_btd = DiTBlock(cfg, name=f"block_{i}")(x_btd, c_bd, rows_t, cols_t, rope_base=rope_base, scale=scale)

    shift, scale_f = Modulation(2, dtype=dtype, param_dtype=param_dtype, name="final_modulation")(c_bd)
    x_btd = modulate(layer_norm(x_btd, eps=_LN_EPS), shift, scale_f)
    out_btf = Dense(cfg.patch_features, (axes.EMBED, None), kernel_init=nn.initializers.zeros, dtype=dtype,
                    param_dtype=param_dtype, name="final_proj")(x_btd)

    # Unpatchify: [b, h*w, p*p*C] -> [b, H, W, C].
    out = out_btf.astype(jnp.float32).reshape(b, h_tok, w_tok, p, p, cfg.in_channels).transpose(0, 1, 3, 2, 4, 5)
    return out.reshape(b, hh, ww, cfg.in_channels)

  def _conditioning(self, sigma_b, labels_b, dtype, param_dtype) -> jax.Array:
    """c = MLP(sinusoidal(1000 * sigma)) + label embedding (null class when labels are None)."""
    cfg = self.config
    half = _SIGMA_FEATURES // 2
    freqs_f = jnp.exp(-math.log(_SIGMA_MAX_PERIOD) * jnp.arange(half, dtype=jnp.float32) / half)
    angles_bf = 1000.0 * sigma_b.astype(jnp.float32)[:, None] * freqs_f
    feats_bf = jnp.concatenate([jnp.cos(angles_bf), jnp.sin(angles_bf)], axis=-1)
    c_bd = Dense(cfg.width, (None, axes.EMBED), dtype=dtype, param_dtype=param_dtype, name="sigma_embed_0")(feats_bf)
    c_bd = Dense(cfg.width, (axes.EMBED, None), dtype=dtype, param_dtype=param_dtype,
                   name="sigma_embed_1")(nn.silu(c_bd))
    if cfg.num_classes:
      if labels_b is None:
        labels_b = jnp.full(sigma_b.shape, cfg.num_classes, jnp.int32)
      init = param_with_axes(nn.initializers.normal(stddev=0.02), (None, axes.EMBED))
      table_nd = self.param("label_embed", init, (cfg.num_classes + 1, cfg.width), param_dtype)
      c_bd = c_bd + jnp.take(table_nd, labels_b, axis=0).astype(dtype)
    return c_bd

  def _check_inputs(self, x_bhwc, sigma_b, labels_b) -> tuple[int, int, int]:
    cfg = self.config
    if x_bhwc.ndim != 4 or x_bhwc.shape[-1] != cfg.in_channels:
      raise ValueError(f"x_bhwc must be [batch, H, W, {cfg.in_channels}], got shape {x_bhwc.shape}.")
    b, hh, ww, _ = x_bhwc.shape
    if hh % cfg.patch_size or ww % cfg.patch_size or hh == 0 or ww == 0:
      raise ValueError(
          f"Image height {hh} and width {ww} must be positive multiples of patch_size {cfg.patch_size}.")
    if sigma_b.shape != (b,):
      raise ValueError(f"sigma_b must have shape ({b},) (one noise level per image), got {sigma_b.shape}.")
    if labels_b is not None:
      if cfg.num_classes == 0:
        raise ValueError("labels_b was given but the model is unconditional (num_classes=0); pass None.")
      if labels_b.shape != (b,) or not jnp.issubdtype(labels_b.dtype, jnp.integer):
        raise ValueError(f"labels_b must be an int array of shape ({b},), got {labels_b.dtype} {labels_b.shape}.")
      if not isinstance(labels_b, _compat.Tracer):
        labels = np.asarray(labels_b)
        if labels.size and (labels.min() < 0 or labels.max() > cfg.num_classes):
          raise ValueError(
              f"labels_b must lie in [0, {cfg.num_classes}] ({cfg.num_classes} is the null class), "
              f"got values in [{labels.min()}, {labels.max()}].")
    return b, hh, ww
