"""`InternVLModel`: InternViT + pixel shuffle + MLP projector + Qwen2, with image features spliced into the prompt.

Parameter tree: {"vision_tower": InternVisionModel, "projector": MultiModalProjector,
"language_model": Qwen2LM}. A call embeds the token ids with the language model's table, turns
every image tile into (H/14/k)^2 embeddings (vision tower -> drop CLS -> pixel shuffle ->
projector, as `jaxlab.vlm.projector.image_features`), writes them in order (batch row by row,
then along the sequence, tile after tile) over the embeddings of the `<IMG_CONTEXT>` tokens, and
runs the language model on the result, as transformers' `InternVLModel` does with `masked_scatter`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat
from jaxlab.models.qwen2.cache import KVCache
from jaxlab.models.qwen2.model import Qwen2LM
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.projector import MultiModalProjector, pixel_shuffle, shuffle_factor
from jaxlab.vlm.vision import InternVisionModel, check_pixels, resolve_feature_layer


def check_image_tokens(config: InternVLConfig, input_ids_bt, pixels_nhwc) -> int:
  """Checks the pixels against the vision config and, when the ids are concrete, the image-token count.

  Returns the number of image tokens one tile becomes. Raises ValueError naming both counts when the
  ids hold a different number of `image_token_id` tokens than tiles * tokens per tile.
  """
  check_pixels(config.vision, pixels_nhwc)
  resolve_feature_layer(config.vision, config.projector.vision_feature_layer)
  n, height, width, _ = np.shape(pixels_nhwc)
  (ph, pw), k = config.vision.patch_size, shuffle_factor(config.projector.downsample_ratio)
  if height // ph != width // pw or (height // ph) % k:
    raise ValueError(f"InternVLModel needs square tiles whose patch grid divides by {k}; pixels {height} x {width} "
                     f"give a {height // ph} x {width // pw} grid")
  per_tile = config.tokens_per_tile(height, width)
  if not isinstance(input_ids_bt, _compat.Tracer):
    count = int(np.sum(np.asarray(input_ids_bt) == config.image_token_id))
    if count != n * per_tile:
      raise ValueError(f"image tokens and image features do not match: input_ids hold {count} image tokens "
                       f"(id {config.image_token_id}), pixels give {n} tiles * {per_tile} = {n * per_tile} features")
  return per_tile


def splice_features(embeds_btd: jax.Array, is_image_bt: jax.Array, features_md: jax.Array) -> jax.Array:
  """embeds with the k-th image position (row-major over [B, T]) replaced by features_md[k]."""
  b, t, d = embeds_btd.shape
  flat_mask = is_image_bt.reshape(b * t)
  index = jnp.clip(jnp.cumsum(flat_mask, dtype=jnp.int32) - 1, 0, max(features_md.shape[0] - 1, 0))
  gathered_btd = features_md.astype(embeds_btd.dtype)[index].reshape(b, t, d)
  return jnp.where(is_image_bt[..., None], gathered_btd, embeds_btd)


class InternVLModel(nn.Module):
  """(input ids [B, T], tiles [N, H, W, 3] NHWC or None) -> (logits [B, T, V] float32, KVCache or None)."""

  config: InternVLConfig
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    c = self.config
    if not isinstance(c, InternVLConfig):
      raise TypeError(f"InternVLModel.config must be an InternVLConfig, got {type(c).__name__}")
    dtype = jnp.dtype(c.text.dtype)
    self.vision_tower = InternVisionModel(c.vision, dtype=dtype, param_dtype=self.param_dtype)
    self.projector = MultiModalProjector(c.text.hidden_size, dtype=dtype, param_dtype=self.param_dtype)
    self.language_model = Qwen2LM(c.text, param_dtype=self.param_dtype)

  def image_features(self, pixels_nhwc: jax.Array) -> jax.Array:
    """[N, H, W, 3] tiles -> [N, (H/14/k)^2, D_llm] language-model embeddings."""
    c = self.config
    check_pixels(c.vision, pixels_nhwc)
    n, height, width, _ = pixels_nhwc.shape
    gh, gw = height // c.vision.patch_size[0], width // c.vision.patch_size[1]
    hidden_ntc = self.vision_tower(pixels_nhwc, feature_layer=c.projector.vision_feature_layer)
    grid_nhwc = hidden_ntc[:, 1:].reshape(n, gh, gw, c.vision.hidden_size)  # Drop CLS.
    tokens_nhwc = pixel_shuffle(grid_nhwc, c.projector.downsample_ratio)
    return self.projector(tokens_nhwc.reshape(n, -1, tokens_nhwc.shape[-1]))

  def embed_inputs(self, input_ids_bt: jax.Array, pixels_nhwc: jax.Array | None = None) -> jax.Array:
    """[B, T, D] prompt embeddings: token embeddings with image features at the image-token positions.

    Raises:
      ValueError: bad pixels, or (concrete ids) an image-token count other than tiles * tokens per tile.
    """
    embeds_btd = self.language_model.embed(input_ids_bt)
    if pixels_nhwc is None:
      return embeds_btd
    check_image_tokens(self.config, input_ids_bt, pixels_nhwc)
    features_ntd = self.image_features(pixels_nhwc)
    features_md = features_ntd.reshape(-1, features_ntd.shape[-1])
    return splice_features(embeds_btd, input_ids_bt == self.config.image_token_id, features_md)

  def __call__(
      self,
      input_ids_bt: jax.Array,
      pixels_nhwc: jax.Array | None = None,
      *,
      attention_mask_bt: jax.Array | None = None,
      positions_bt: jax.Array | None = None,
      cache: KVCache | None = None,
  ) -> tuple[jax.Array, KVCache | None]:
    """Runs the model on T new tokens per row.

    Args:
      input_ids_bt: [B, T] int ids, with one `image_token_id` per image embedding.
      pixels_nhwc: [N, H, W, 3] float tiles of every image of the batch, in the order their image tokens
        appear (row by row); None: text only.
      attention_mask_bt: [B, T], nonzero for real tokens (left padding); None: all real.
      positions_bt: [B, T] int or float32 positions (e.g. V2PE); None: real tokens numbered 0, 1, ...
        (continuing from the cache when given).
      cache: a `KVCache` of the language model (`jaxlab.models.qwen2.init_cache(config.text, ...)`).

    Returns:
      (logits [B, T, V] float32, the updated cache or None).
    """
    embeds_btd = self.embed_inputs(input_ids_bt, pixels_nhwc)
    return self.language_model(inputs_embeds_btd=embeds_btd, positions_bt=positions_bt,
                               attention_mask_bt=attention_mask_bt, cache=cache)


def init_variables(config: InternVLConfig, key: jax.Array, param_dtype=jnp.float32) -> dict:
  """{"params": boxed params} (logical axes attached) of the whole tree, from one smallest tile."""
  p = config.vision.patch_size[0] * shuffle_factor(config.projector.downsample_ratio)
  pixels = jnp.zeros((1, p, p, config.vision.num_channels), jnp.float32)
  ids = jnp.full((1, config.tokens_per_tile(p, p)), config.image_token_id, jnp.int32)
  return InternVLModel(config, param_dtype).init(key, ids, pixels)


def init_params(config: InternVLConfig, key: jax.Array, param_dtype=jnp.float32) -> dict:
  """Random params of the whole tree (vision tower, projector and language model), unboxed, in one jitted init."""
  init = jax.jit(init_variables, static_argnums=(0, 2))
  return nn.unbox(init(config, key, param_dtype))["params"]
