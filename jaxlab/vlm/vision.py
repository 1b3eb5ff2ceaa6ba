"""InternViT, the vision tower of InternVL, laid out and rounded like transformers' `InternVLVisionModel`.

Pixels [N, H, W, C_in] (NHWC) are cut into 14 x 14 patches and projected to width D; a CLS token
is prepended and absolute position embeddings are added (bicubically resized when the patch grid
differs from the trained one). Each pre-norm layer is

  h = x + lambda_1 * attention(norm_1(x))
  y = h + lambda_2 * fc2(gelu(fc1(norm_2(h))))

with LayerNorm (InternViT-300M) or RMSNorm (InternViT-6B) and, on the 6B model, an RMSNorm over
the full query / key width before the heads are split. Dropout and drop path do nothing at
inference and are left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import ops
from jaxlab.nn import Dense, LayerNorm, RMSNorm, dot_product_attention
from jaxlab.ops.registry import check_implementation
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes

NORM_TYPES = ("layer_norm", "rms_norm")
ACTIVATIONS = ("gelu",)
# transformers builds the query / key RMSNorms with their own default eps, not `layer_norm_eps`.
QK_NORM_EPS = 1e-6
# Keys's cubic convolution constant used by torch's bicubic resize.
_BICUBIC_A = -0.75


def _pair(value: Any, name: str) -> tuple[int, int]:
  pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
  if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
    raise ValueError(f"InternVisionConfig.{name} must be a positive int or a pair of them, got {value!r}")
  return pair


@dataclasses.dataclass(frozen=True)
class InternVisionConfig:
  """The fields of transformers' `InternVLVisionConfig` that change what InternViT computes.

  Attributes:
    hidden_size (D), num_hidden_layers (L), num_attention_heads (H; head_dim = D / H),
    intermediate_size (F): the MLP width.
    attention_bias: q/k/v projections have a bias (the output projection always has one).
    use_qk_norm: RMSNorm over the full D-wide queries and keys (eps `QK_NORM_EPS`).
    hidden_act: MLP activation; only "gelu" (exact, erf-based).
    norm_type: "layer_norm" or "rms_norm" for the two norms of every layer.
    layer_norm_eps: eps of those norms and of the final LayerNorm.
    image_size, patch_size: (height, width) in pixels; the trained patch grid is their quotient.
    num_channels: C_in of the pixels.
    use_absolute_position_embeddings: add learned [1 + grid] position embeddings.
    use_mean_pooling: True skips the final LayerNorm (transformers then has none).
    layer_scale_init_value: initial lambda_1 / lambda_2 (init only).
    initializer_range: std of the CLS / position embedding init (init only).
    attention_implementation: `jaxlab.ops.attention` implementation(s) ("xla", "cudnn",
      "pallas_triton", or a tuple tried in order); None: the best available. Not part of config.json.
  """

  hidden_size: int = 1024
  num_hidden_layers: int = 24
  num_attention_heads: int = 16
  intermediate_size: int = 4096
  attention_bias: bool = False
  use_qk_norm: bool = False
  hidden_act: str = "gelu"
  norm_type: str = "layer_norm"
  layer_norm_eps: float = 1e-6
  image_size: tuple[int, int] = (448, 448)
  patch_size: tuple[int, int] = (14, 14)
  num_channels: int = 3
  use_absolute_position_embeddings: bool = True
  use_mean_pooling: bool = True
  layer_scale_init_value: float = 0.1
  initializer_range: float = 0.02
  attention_implementation: str | tuple[str, ...] | None = None

  def __post_init__(self) -> None:
    object.__setattr__(self, "attention_implementation", check_implementation(
        "InternVisionConfig.attention_implementation", self.attention_implementation))
    object.__setattr__(self, "image_size", _pair(self.image_size, "image_size"))
    object.__setattr__(self, "patch_size", _pair(self.patch_size, "patch_size"))
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_channels"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"InternVisionConfig.{name} must be a positive int, got {value!r}")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
          f"InternVisionConfig.hidden_size={self.hidden_size} is not divisible by "
          f"num_attention_heads={self.num_attention_heads}")
    if self.norm_type not in NORM_TYPES:
      raise ValueError(f"InternVisionConfig.norm_type={self.norm_type!r} is not supported; supported: {NORM_TYPES}")
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(
          f"InternVisionConfig.hidden_act={self.hidden_act!r} is not supported; supported: {ACTIVATIONS}")
    if not self.layer_norm_eps > 0:
      raise ValueError(f"InternVisionConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
    if any(i < p for i, p in zip(self.image_size, self.patch_size)):
      raise ValueError(
          f"InternVisionConfig.image_size={self.image_size} is smaller than patch_size={self.patch_size}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  @property
  def grid(self) -> tuple[int, int]:
    """(rows, cols) of the patch grid the position embeddings were trained for."""
    return self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1]

  @property
  def num_positions(self) -> int:
    """Rows of the position embedding table: CLS plus one per trained patch."""
    return 1 + self.grid[0] * self.grid[1]

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any]) -> InternVisionConfig:
    """The config of an `InternVLVisionConfig` dict, or of a full `InternVLConfig` dict (its `vision_config`).

    Keys left out take transformers' defaults. Dropout rates are accepted and ignored (inference).

    Raises:
      TypeError: `d` is not a mapping.
      ValueError: a model_type other than "internvl_vision" / "internvl", or an option InternViT
        here does not implement (the message names the key and value).
    """
    if not isinstance(d, Mapping):
      raise TypeError(f"from_hf_dict needs a config dict, got {type(d).__name__}")
    if d.get("model_type") == "internvl" or "vision_config" in d:
      d = d.get("vision_config")
      if not isinstance(d, Mapping):
        raise ValueError(f"InternVL config has no vision_config dict, got {d!r}")
    model_type = d.get("model_type", "internvl_vision")
    if model_type != "internvl_vision":
      raise ValueError(f"vision config model_type={model_type!r} is not supported; expected 'internvl_vision'")
    if d.get("use_mask_token", False):
      raise ValueError("vision config use_mask_token=True (masked image modeling) is not supported")
    defaults = cls()
    fields = {}
    for field in dataclasses.fields(cls):
      value = d.get(field.name, getattr(defaults, field.name))
      if field.name in ("image_size", "patch_size") and isinstance(value, list):
        value = tuple(value)
      fields[field.name] = value
    return cls(**fields)


def norm_layer(kind: str, eps: float, param_dtype=jnp.float32, name: str | None = None) -> nn.Module:
  """`LayerNorm` (scale, bias [D]) or `RMSNorm` with transformers' rounding (scale [D]), by `kind` (NORM_TYPES)."""
  if kind == "rms_norm":
    return RMSNorm(eps=eps, rounding="transformers", param_dtype=param_dtype, name=name)
  return LayerNorm(eps=eps, param_dtype=param_dtype, name=name)


class InternVisionAttention(nn.Module):
  """Bidirectional multi-head self-attention through `jaxlab.ops.attention`; scores and softmax in float32.

  Params: q/k/v kernel [D, H, hd] (+ bias [H, hd] when `attention_bias`), o kernel [H, hd, D] and
  bias [D]; with `use_qk_norm`, q_norm/k_norm scale [H, hd] normalizing all H * hd features together.
  """

  config: InternVisionConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_ntd: jax.Array) -> jax.Array:
    c = self.config
    d, h, hd = c.hidden_size, c.num_attention_heads, c.head_dim
    head_axes = (axes.HEADS, axes.HEAD_DIM)
    in_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
    out_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
    x = x_ntd.astype(self.dtype)

    def project(name: str) -> jax.Array:
      w_dhk = self.param(f"{name}_kernel", param_with_axes(in_init, (axes.EMBED, *head_axes)), (d, h, hd),
                         self.param_dtype)
      y_nthk = jnp.einsum("ntd,dhk->nthk", x, w_dhk.astype(self.dtype))
      if c.attention_bias:
        b_hk = self.param(f"{name}_bias", param_with_axes(nn.initializers.zeros, head_axes), (h, hd),
                          self.param_dtype)
        y_nthk = y_nthk + b_hk.astype(self.dtype)
      return y_nthk

    def qk_norm(name: str, y_nthk: jax.Array) -> jax.Array:
      # One RMSNorm across every head's features, as transformers normalizes before splitting heads.
      scale_hk = self.param(name, param_with_axes(nn.initializers.ones, head_axes), (h, hd), self.param_dtype)
      n, t = y_nthk.shape[:2]
      y_ntd = ops.rms_norm(y_nthk.reshape(n, t, h * hd), scale_hk.reshape(h * hd), eps=QK_NORM_EPS,
                           rounding="transformers")
      return y_ntd.reshape(n, t, h, hd)

    q_nthk, k_nshk, v_nshk = project("q"), project("k"), project("v")
    if c.use_qk_norm:
      q_nthk = qk_norm("q_norm", q_nthk)
      k_nshk = qk_norm("k_norm", k_nshk)
    q_nthk = constrain(q_nthk, (axes.BATCH, axes.SEQ, axes.HEADS, axes.HEAD_DIM))

    # Tiles are short sequences in large batches: split the batch, never the sequence.
    out_nthk = dot_product_attention(q_nthk, k_nshk, v_nshk, implementation=c.attention_implementation,
                                     context_parallel=False)

    w_o_hkd = self.param("o_kernel", param_with_axes(out_init, (*head_axes, axes.EMBED)), (h, hd, d),
                         self.param_dtype)
    b_o_d = self.param("o_bias", param_with_axes(nn.initializers.zeros, (axes.EMBED,)), (d,), self.param_dtype)
    return jnp.einsum("nthk,hkd->ntd", out_nthk, w_o_hkd.astype(self.dtype)) + b_o_d.astype(self.dtype)


class InternVisionLayer(nn.Module):
  """Pre-norm block with layer scale: attention and a GELU MLP, each scaled by a learned [D] vector."""

  config: InternVisionConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_ntd: jax.Array) -> jax.Array:
    c = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    scale_init = param_with_axes(nn.initializers.constant(c.layer_scale_init_value), (axes.EMBED,))
    lambda_1 = self.param("lambda_1", scale_init, (c.hidden_size,), self.param_dtype)
    lambda_2 = self.param("lambda_2", scale_init, (c.hidden_size,), self.param_dtype)

    attn_ntd = InternVisionAttention(c, name="attention", **kw)(
        norm_layer(c.norm_type, c.layer_norm_eps, self.param_dtype, name="norm_1")(x_ntd))
    h_ntd = x_ntd + lambda_1.astype(self.dtype) * attn_ntd

    y_ntd = norm_layer(c.norm_type, c.layer_norm_eps, self.param_dtype, name="norm_2")(h_ntd)
    # fc1 / fc2 are children of the layer itself (not of a GeluMLP): the checkpoints name them so.
    y_ntf = Dense(c.intermediate_size, (axes.EMBED, axes.MLP), name="fc1", **kw)(y_ntd)
    y_ntf = constrain(nn.gelu(y_ntf, approximate=False), (axes.BATCH, axes.SEQ, axes.MLP))
    y_ntd = Dense(c.hidden_size, (axes.MLP, axes.EMBED), name="fc2", **kw)(y_ntf)
    return h_ntd + lambda_2.astype(self.dtype) * y_ntd


def bicubic_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] float32 weights of torch's 1-D bicubic resize (align_corners=False, a = -0.75, edges clamped).

  Output sample i reads the input at (i + 0.5) * in / out - 0.5 with the four cubic-convolution
  taps around it; taps past an edge fall on the edge sample.
  """
  if in_size <= 0 or out_size <= 0:
    raise ValueError(f"bicubic resize needs positive sizes, got in_size={in_size}, out_size={out_size}")
  a = _BICUBIC_A
  src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
  base = np.floor(src)
  t = src - base
  near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # |x| <= 1
  far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # 1 < |x| < 2
  weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)
  taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, in_size - 1)
  matrix = np.zeros((out_size, in_size), np.float64)
  np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.reshape(-1)), weights.reshape(-1))
  return matrix.astype(np.float32)


def resize_position_embeddings(pos_pd: jax.Array, grid: tuple[int, int], new_grid: tuple[int, int]) -> jax.Array:
  """[1 + gh*gw, D] CLS + row-major grid embeddings -> [1 + nh*nw, D], the grid part resized bicubically."""
  if tuple(grid) == tuple(new_grid):
    return pos_pd
  (gh, gw), (nh, nw) = grid, new_grid
  d = pos_pd.shape[-1]
  rows_hg = jnp.asarray(bicubic_resize_matrix(gh, nh))
  cols_wg = jnp.asarray(bicubic_resize_matrix(gw, nw))
  grid_hwd = pos_pd[1:].astype(jnp.float32).reshape(gh, gw, d)
  resized = jnp.einsum("Hh,hwd,Ww->HWd", rows_hg, grid_hwd, cols_wg, precision=jax.lax.Precision.HIGHEST)
  return jnp.concatenate([pos_pd[:1], resized.reshape(nh * nw, d).astype(pos_pd.dtype)], axis=0)


class InternVisionEmbeddings(nn.Module):
  """Patch projection (a 14 x 14 stride-14 conv written as a matmul), CLS token and position embeddings.

  Params: patch_kernel [ph, pw, C_in, D], patch_bias [D], cls_token [D], position_embeddings [1 + P, D].
  """

  config: InternVisionConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, pixels_nhwc: jax.Array) -> jax.Array:
    c = self.config
    n, height, width, cin = pixels_nhwc.shape
    (ph, pw), d = c.patch_size, c.hidden_size
    gh, gw = height // ph, width // pw
    kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1, 2), out_axis=3)
    kernel = self.param("patch_kernel", param_with_axes(kernel_init, (None, None, None, axes.EMBED)),
                        (ph, pw, cin, d), self.param_dtype)
    bias = self.param("patch_bias", param_with_axes(nn.initializers.zeros, (axes.EMBED,)), (d,), self.param_dtype)
    emb_init = nn.initializers.normal(c.initializer_range)
    cls_d = self.param("cls_token", param_with_axes(emb_init, (axes.EMBED,)), (d,), self.param_dtype)

    patches = pixels_nhwc.astype(self.dtype).reshape(n, gh, ph, gw, pw, cin)
    x_nijd = jnp.einsum("nipjqc,pqcd->nijd", patches, kernel.astype(self.dtype)) + bias.astype(self.dtype)
    x_ntd = jnp.concatenate(
        [jnp.broadcast_to(cls_d.astype(self.dtype), (n, 1, d)), x_nijd.reshape(n, gh * gw, d)], axis=1)
    if c.use_absolute_position_embeddings:
      pos_pd = self.param("position_embeddings", param_with_axes(emb_init, (None, axes.EMBED)),
                          (c.num_positions, d), self.param_dtype)
      x_ntd = x_ntd + resize_position_embeddings(pos_pd, c.grid, (gh, gw)).astype(self.dtype)
    return x_ntd


def resolve_feature_layer(config: InternVisionConfig, feature_layer: int) -> tuple[int, bool]:
  """(layers to run, whether the final LayerNorm applies) for transformers' `vision_feature_layer`.

  -1 is the model's output (after the final LayerNorm when `use_mean_pooling` is False); any other
  index picks from the L + 1 hidden states (0: embeddings, k: output of layer k, before any final
  norm), negatives counting from the end.
  """
  if not isinstance(feature_layer, (int, np.integer)) or isinstance(feature_layer, bool):
    raise TypeError(f"feature_layer must be an int, got {type(feature_layer).__name__} {feature_layer!r}")
  num = config.num_hidden_layers + 1
  if not -num <= feature_layer < num:
    raise ValueError(
        f"feature_layer={feature_layer} is out of range for {config.num_hidden_layers} layers; "
        f"valid: -1 (output) or an index into the {num} hidden states, in [{-num}, {num - 1}]")
  if feature_layer == -1:
    return config.num_hidden_layers, not config.use_mean_pooling
  return int(feature_layer) % num, False


def check_pixels(config: InternVisionConfig, pixels_nhwc: Any) -> None:
  """Raises ValueError unless `pixels_nhwc` is [N, H, W, C_in] with H, W multiples of the patch size."""
  shape = tuple(np.shape(pixels_nhwc))
  (ph, pw), cin = config.patch_size, config.num_channels
  if len(shape) != 4 or shape[-1] != cin:
    raise ValueError(f"pixels_nhwc must be [N, H, W, {cin}] (NHWC), got shape {shape}")
  if shape[1] % ph or shape[2] % pw or shape[1] == 0 or shape[2] == 0:
    raise ValueError(f"pixels_nhwc height and width {shape[1:3]} must be positive multiples of the patch size "
                     f"{(ph, pw)}")


class InternVisionModel(nn.Module):
  """InternViT: pixels [N, H, W, C_in] -> hidden states [N, 1 + (H/14)*(W/14), D] (CLS first).

  `feature_layer` follows transformers' `vision_feature_layer` (see `resolve_feature_layer`); only
  the layers it needs are run. Params: embeddings, layer_{i} for i < L, and final_norm when
  `use_mean_pooling` is False.
  """

  config: InternVisionConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, pixels_nhwc: jax.Array, feature_layer: int = -1) -> jax.Array:
    c = self.config
    check_pixels(c, pixels_nhwc)
    num_layers, final_norm = resolve_feature_layer(c, feature_layer)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x_ntd = InternVisionEmbeddings(c, name="embeddings", **kw)(pixels_nhwc)
    x_ntd = constrain(x_ntd, (axes.BATCH, axes.SEQ, axes.EMBED))
    for i in range(num_layers):
      x_ntd = InternVisionLayer(c, name=f"layer_{i}", **kw)(x_ntd)
    if final_norm:
      x_ntd = LayerNorm(eps=c.layer_norm_eps, param_dtype=self.param_dtype, name="final_norm")(x_ntd)
    return x_ntd

