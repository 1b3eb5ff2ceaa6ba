"""InternVL's bridge from vision tower to language model: pixel shuffle, the MLP projector, `image_features`.

`pixel_shuffle` folds each k x k block of patch features (k = 1 / downsample_ratio) into one token
of k*k times the width, with channel order (row offset, column offset, channel), as transformers'
InternVL does. The projector is LayerNorm(k*k*C, eps 1e-5) -> Linear -> GELU -> Linear.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn import Dense, LayerNorm
from jaxlab.sharding import axes
from jaxlab.vlm.vision import ACTIVATIONS, InternVisionConfig, InternVisionModel, check_pixels, resolve_feature_layer

SELECT_STRATEGIES = ("default",)
# torch's nn.LayerNorm default; transformers does not pass an eps to the projector's norm.
PROJECTOR_NORM_EPS = 1e-5


def shuffle_factor(ratio: float) -> int:
  """k = 1 / ratio for a downsample ratio 1 / k (k a positive int); ValueError otherwise."""
  if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
    raise ValueError(f"downsample ratio must be 1/k for a positive int k, got {ratio!r}")
  k = round(1 / ratio)
  if not math.isclose(k * ratio, 1.0, rel_tol=1e-9):
    raise ValueError(f"downsample ratio must be 1/k for a positive int k, got {ratio!r}")
  return k


def pixel_shuffle(features_nhwc: jax.Array, ratio: float = 0.5) -> jax.Array:
  """[N, H, W, C] -> [N, H/k, W/k, k*k*C], k = 1/ratio: out[n, i, j, (a*k + b)*C + c] = x[n, i*k + a, j*k + b, c].

  The same values and order as transformers' InternVL `pixel_shuffle` (which names the axes
  differently but reshapes the same memory).
  """
  k = shuffle_factor(ratio)
  if np.ndim(features_nhwc) != 4:
    raise ValueError(f"pixel_shuffle needs [N, H, W, C] features, got shape {np.shape(features_nhwc)}")
  n, h, w, c = features_nhwc.shape
  if h % k or w % k:
    raise ValueError(f"pixel_shuffle with ratio {ratio}: grid {h} x {w} is not divisible by {k}")
  blocks = features_nhwc.reshape(n, h // k, k, w // k, k, c)
  return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // k, w // k, k * k * c)


def pixel_unshuffle(tokens_nhwc: jax.Array, ratio: float = 0.5) -> jax.Array:
  """The inverse of `pixel_shuffle`: [N, h, w, k*k*C] -> [N, h*k, w*k, C], k = 1/ratio."""
  k = shuffle_factor(ratio)
  if np.ndim(tokens_nhwc) != 4:
    raise ValueError(f"pixel_unshuffle needs [N, h, w, k*k*C] tokens, got shape {np.shape(tokens_nhwc)}")
  n, h, w, kkc = tokens_nhwc.shape
  if kkc % (k * k):
    raise ValueError(f"pixel_unshuffle with ratio {ratio}: width {kkc} is not divisible by {k * k}")
  blocks = tokens_nhwc.reshape(n, h, w, k, k, kkc // (k * k))
  return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * k, w * k, kkc // (k * k))


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
  """The `InternVLConfig` fields that turn vision hidden states into language-model embeddings.

  Attributes:
    vision_hidden_size (C), text_hidden_size (D_llm).
    downsample_ratio: 1/k; pixel shuffle makes tokens of width k*k*C.
    projector_hidden_act: only "gelu" (exact).
    vision_feature_layer: which vision hidden state to use (see `resolve_feature_layer`).
    vision_feature_select_strategy: only "default" (drop the CLS token).
  """

  vision_hidden_size: int
  text_hidden_size: int
  downsample_ratio: float = 0.5
  projector_hidden_act: str = "gelu"
  vision_feature_layer: int = -1
  vision_feature_select_strategy: str = "default"

  def __post_init__(self) -> None:
    for name in ("vision_hidden_size", "text_hidden_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"ProjectorConfig.{name} must be a positive int, got {value!r}")
    shuffle_factor(self.downsample_ratio)
    if self.projector_hidden_act not in ACTIVATIONS:
      raise ValueError(f"ProjectorConfig.projector_hidden_act={self.projector_hidden_act!r} is not supported; "
                       f"supported: {ACTIVATIONS}")
    layer = self.vision_feature_layer
    if not isinstance(layer, int) or isinstance(layer, bool):
      raise ValueError(f"ProjectorConfig.vision_feature_layer must be one int (lists of layers are not "
                       f"supported), got {layer!r}")
    if self.vision_feature_select_strategy not in SELECT_STRATEGIES:
      raise ValueError(
          f"ProjectorConfig.vision_feature_select_strategy={self.vision_feature_select_strategy!r} is not "
          f"supported; supported: {SELECT_STRATEGIES}")

  @property
  def in_features(self) -> int:
    """Width of a shuffled token: k*k*C."""
    return self.vision_hidden_size * shuffle_factor(self.downsample_ratio) ** 2

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any]) -> ProjectorConfig:
    """The projector config of a full `InternVLConfig` dict (needs its vision_config and text_config).

    Raises:
      TypeError: `d` is not a mapping.
      ValueError: a missing sub-config or hidden size, or an unsupported option (named).
    """
    if not isinstance(d, Mapping):
      raise TypeError(f"from_hf_dict needs a config dict, got {type(d).__name__}")
    sizes = {}
    for sub in ("vision_config", "text_config"):
      sub_d = d.get(sub)
      if not isinstance(sub_d, Mapping) or "hidden_size" not in sub_d:
        raise ValueError(f"InternVL config needs {sub}.hidden_size, got {sub}={sub_d!r}")
      sizes[sub] = sub_d["hidden_size"]
    return cls(
        vision_hidden_size=sizes["vision_config"],
        text_hidden_size=sizes["text_config"],
        downsample_ratio=d.get("downsample_ratio", 0.5),
        projector_hidden_act=d.get("projector_hidden_act", "gelu"),
        vision_feature_layer=d.get("vision_feature_layer", -1),
        vision_feature_select_strategy=d.get("vision_feature_select_strategy", "default"),
    )


class MultiModalProjector(nn.Module):
  """[..., k*k*C] -> [..., D_llm]: LayerNorm (eps 1e-5), Linear, exact GELU, Linear.

  Params: layer_norm/{scale, bias} [k*k*C], linear_1/{kernel [k*k*C, D_llm], bias}, linear_2/{kernel
  [D_llm, D_llm], bias}. The two linears are named like an MLP (EMBED -> MLP -> EMBED), so tensor
  parallelism splits the middle.
  """

  out_features: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens_ntc: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = LayerNorm(eps=PROJECTOR_NORM_EPS, param_dtype=self.param_dtype, name="layer_norm")
    x = norm(tokens_ntc.astype(self.dtype))
    x = Dense(self.out_features, (axes.EMBED, axes.MLP), name="linear_1", **kw)(x)
    x = nn.gelu(x, approximate=False)
    return Dense(self.out_features, (axes.MLP, axes.EMBED), name="linear_2", **kw)(x)


def _unwrap(params: Any, what: str) -> Any:
  if isinstance(params, Mapping) and set(params) == {"params"}:
    params = params["params"]
  if not isinstance(params, Mapping):
    raise TypeError(f"{what} must be a param dict, got {type(params).__name__}")
  return params


def image_features(vision_params: Mapping, projector_params: Mapping, pixels_nhwc: jax.Array,
                   vision_config: InternVisionConfig, projector_config: ProjectorConfig, *,
                   dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Language-model embeddings of image tiles, as transformers' `InternVLModel.get_image_features`.

  Vision tower -> hidden state `vision_feature_layer` -> drop CLS -> [N, g, g, C] grid -> pixel
  shuffle -> [N, (g/k)^2, k*k*C] -> projector. A 448 x 448 tile gives g = 32 and 256 tokens at ratio 0.5.

  Args:
    vision_params: `InternVisionModel` params (or {"params": ...}).
    projector_params: `MultiModalProjector` params (or {"params": ...}).
    pixels_nhwc: [N, H, W, C_in] tiles; H == W, multiples of the patch size.
    vision_config, projector_config: the model's configs.
    dtype: compute dtype.

  Returns:
    [N, (H/14/k)^2, D_llm] features in `dtype`.

  Raises:
    ValueError: configs that disagree on the vision width, or pixels that are not square tiles of whole
      patches whose grid divides by k.
  """
  if projector_config.vision_hidden_size != vision_config.hidden_size:
    raise ValueError(f"projector_config.vision_hidden_size={projector_config.vision_hidden_size} != "
                     f"vision_config.hidden_size={vision_config.hidden_size}")
  check_pixels(vision_config, pixels_nhwc)
  resolve_feature_layer(vision_config, projector_config.vision_feature_layer)
  n, height, width, _ = np.shape(pixels_nhwc)
  gh, gw = height // vision_config.patch_size[0], width // vision_config.patch_size[1]
  k = shuffle_factor(projector_config.downsample_ratio)
  if gh != gw or gh % k:
    raise ValueError(f"image_features needs a square patch grid divisible by {k}; pixels {height} x {width} "
                     f"give {gh} x {gw}")
  vision = InternVisionModel(vision_config, dtype=dtype)
  hidden_ntc = vision.apply({"params": _unwrap(vision_params, "vision_params")}, pixels_nhwc,
                            feature_layer=projector_config.vision_feature_layer)
  grid_nhwc = hidden_ntc[:, 1:].reshape(n, gh, gw, vision_config.hidden_size)
  tokens_nhwc = pixel_shuffle(grid_nhwc, projector_config.downsample_ratio)
  tokens_ntc = tokens_nhwc.reshape(n, -1, tokens_nhwc.shape[-1])
  projector = MultiModalProjector(projector_config.text_hidden_size, dtype=dtype)
  return projector.apply({"params": _unwrap(projector_params, "projector_params")}, tokens_ntc)
