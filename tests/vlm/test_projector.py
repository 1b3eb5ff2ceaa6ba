"""Pixel shuffle (vs ports of transformers' view / permute sequence), its inverse, the projector, image_features."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxlab.vlm.projector import (
    MultiModalProjector,
    ProjectorConfig,
    image_features,
    pixel_shuffle,
    pixel_unshuffle,
)
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel

RNG = np.random.default_rng(0)
SHAPES = [((2, 32, 32, 8), 0.5), ((1, 4, 6, 3), 0.5), ((2, 8, 4, 2), 0.25), ((1, 3, 3, 5), 1.0)]


def _hf_sequence_numpy(x, scale):
  """transformers' InternVL pixel_shuffle step by step (view -> reshape, permute -> transpose), in numpy."""
  b, w, h, c = x.shape
  x = x.reshape(b, w, int(h * scale), int(c / scale)).transpose(0, 2, 1, 3)
  x = x.reshape(b, int(h * scale), int(w * scale), int(c / (scale**2)))
  return x.transpose(0, 2, 1, 3)


@pytest.mark.parametrize("shape, ratio", SHAPES)
def test_pixel_shuffle_matches_hf_sequence_and_index_formula(shape, ratio):
  x = RNG.normal(size=shape).astype(np.float32)
  out = np.asarray(pixel_shuffle(jnp.asarray(x), ratio))
  np.testing.assert_array_equal(out, _hf_sequence_numpy(x, ratio))
  k, c = round(1 / ratio), shape[-1]
  n, i, j, a, b, ch = 0, shape[1] // k - 1, 0, k - 1, 0, c - 1
  assert out[n, i, j, (a * k + b) * c + ch] == x[n, i * k + a, j * k + b, ch]


def test_pixel_shuffle_matches_torch_port():
  torch = pytest.importorskip("torch")

  def torch_pixel_shuffle(v, scale_factor=0.5):  # transformers' InternVL pixel_shuffle, as a function
    batch_size, width, height, channels = v.size()
    v = v.view(batch_size, width, int(height * scale_factor), int(channels / scale_factor))
    v = v.permute(0, 2, 1, 3).contiguous()
    v = v.view(batch_size, int(height * scale_factor), int(width * scale_factor),
               int(channels / (scale_factor**2)))
    return v.permute(0, 2, 1, 3).contiguous()

  for shape, ratio in SHAPES:
    x = RNG.normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(pixel_shuffle(jnp.asarray(x), ratio),
                                  torch_pixel_shuffle(torch.from_numpy(x), ratio).numpy())


def test_1024_patches_make_256_tokens_and_round_trip():
  x = jnp.asarray(RNG.normal(size=(2, 32, 32, 16)), jnp.float32)
  y = pixel_shuffle(x)
  assert y.shape == (2, 16, 16, 64) and y.reshape(2, -1, 64).shape == (2, 256, 64)
  np.testing.assert_array_equal(pixel_unshuffle(y), x)
  z = jnp.asarray(RNG.normal(size=(1, 3, 5, 36)), jnp.float32)
  np.testing.assert_array_equal(pixel_shuffle(pixel_unshuffle(z, 1 / 3), 1 / 3), z)


@pytest.mark.parametrize("fn, shape, ratio, match", [
    (pixel_shuffle, (1, 4, 4, 2), 0.3, "1/k"),
    (pixel_shuffle, (1, 4, 4, 2), 0.0, "1/k"),
    (pixel_shuffle, (1, 4, 4, 2), 2.0, "1/k"),
    (pixel_shuffle, (1, 5, 4, 2), 0.5, "divisible"),
    (pixel_shuffle, (4, 4, 2), 0.5, "N, H, W, C"),
    (pixel_unshuffle, (1, 2, 2, 6), 0.5, "divisible"),
])
def test_shuffle_errors(fn, shape, ratio, match):
  with pytest.raises(ValueError, match=match):
    fn(jnp.zeros(shape), ratio)


def _random(abstract, seed):
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    base = 1.0 if path[-1].key == "scale" else 0.0
    std = 0.3 if leaf.ndim == 1 else 1 / np.sqrt(leaf.shape[0])
    return (base + std * rng.normal(size=leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, nn.unbox(abstract))


def test_projector_matches_numpy():
  x = RNG.normal(size=(2, 5, 24)).astype(np.float32) * 3 + 1
  proj = MultiModalProjector(16)
  p = _random(jax.eval_shape(proj.init, jax.random.key(0), x)["params"], 1)
  out = proj.apply({"params": p}, x)
  q = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p)
  mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  y = (x - mu) / np.sqrt(var + 1e-5) * q["layer_norm"]["scale"] + q["layer_norm"]["bias"]
  y = y @ q["linear_1"]["kernel"] + q["linear_1"]["bias"]
  y = 0.5 * y * (1 + erf(y / np.sqrt(2)))
  np.testing.assert_allclose(out, y @ q["linear_2"]["kernel"] + q["linear_2"]["bias"], atol=2e-5, rtol=2e-5)


def test_projector_config_from_hf_dict():
  d = {"vision_config": {"hidden_size": 32}, "text_config": {"hidden_size": 16}, "downsample_ratio": 0.5,
       "vision_feature_layer": -2}
  c = ProjectorConfig.from_hf_dict(d)
  assert (c.vision_hidden_size, c.text_hidden_size, c.in_features, c.vision_feature_layer) == (32, 16, 128, -2)


@pytest.mark.parametrize("bad, match", [
    ({"vision_feature_select_strategy": "full"}, "vision_feature_select_strategy"),
    ({"projector_hidden_act": "relu"}, "projector_hidden_act"),
    ({"vision_feature_layer": [-1, -2]}, "vision_feature_layer"),
    ({"downsample_ratio": 0.3}, "1/k"),
    ({"text_config": None}, "text_config"),
])
def test_projector_config_rejects(bad, match):
  d = {"vision_config": {"hidden_size": 32}, "text_config": {"hidden_size": 16}, **bad}
  with pytest.raises(ValueError, match=match):
    ProjectorConfig.from_hf_dict(d)


VISION = InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            image_size=448)
PROJ = ProjectorConfig(vision_hidden_size=16, text_hidden_size=24)


@pytest.mark.slow  # Compile-heavy; the default tier covers the same code more cheaply.
def test_image_features_448_tile_gives_256_tokens():
  pixels = jnp.asarray(RNG.normal(size=(2, 448, 448, 3)), jnp.float32)
  vision, proj = InternVisionModel(VISION), MultiModalProjector(24)
  vp = _random(jax.eval_shape(vision.init, jax.random.key(0), pixels[:1])["params"], 2)
  pp = _random(jax.eval_shape(proj.init, jax.random.key(0), jnp.zeros((1, 1, 64)))["params"], 3)
  out = jax.jit(image_features, static_argnums=(3, 4))(vp, pp, pixels, VISION, PROJ)
  assert out.shape == (2, 256, 24)
  # The same pipeline spelled out: drop CLS, 32 x 32 grid, shuffle, project.
  hidden = vision.apply({"params": vp}, pixels)
  grid = hidden[:, 1:].reshape(2, 32, 32, 16)
  manual = proj.apply({"params": pp}, pixel_shuffle(grid).reshape(2, 256, 64))
  np.testing.assert_allclose(out, manual, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape, proj, match", [
    ((1, 28, 56, 3), PROJ, "square"),
    ((1, 42, 42, 3), PROJ, "divisible by 2"),
    ((1, 28, 28, 3), ProjectorConfig(vision_hidden_size=8, text_hidden_size=24), "vision_hidden_size"),
    ((1, 28, 30, 3), PROJ, "multiples"),
])
def test_image_features_errors(shape, proj, match):
  with pytest.raises(ValueError, match=match):
    image_features({}, {}, jnp.zeros(shape), VISION, proj)
