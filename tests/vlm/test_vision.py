"""InternViT without torch: config checks, shapes and axis names, and numpy references for each piece."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxlab.sharding import axes
from jaxlab.vlm.vision import (
    QK_NORM_EPS,
    InternVisionConfig,
    InternVisionModel,
    bicubic_resize_matrix,
)

TINY = InternVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=56, patch_size=14, layer_norm_eps=1e-5)
VARIANTS = {
    "300m": dataclasses.replace(TINY, norm_type="layer_norm", attention_bias=True),
    "6b": dataclasses.replace(TINY, norm_type="rms_norm", use_qk_norm=True),
}


def _random_params(model: InternVisionModel, pixels, seed: int = 0):
  """Params of `model` drawn with numpy (no init compiles): O(1) activations, norm scales near 1."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if leaf.ndim == 1 or name.endswith(("_bias", "_norm")):
      return ((1.0 if name == "scale" or name.endswith("_norm") else 0.0)
              + 0.3 * rng.normal(size=leaf.shape)).astype(np.float32)
    fan_in = leaf.shape[0] if name in ("q_kernel", "k_kernel", "v_kernel") else np.prod(leaf.shape[:-1])
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  abstract = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), pixels)["params"])
  return jax.tree_util.tree_map_with_path(draw, abstract)


def _setup(config: InternVisionConfig, n: int = 2, size: tuple[int, int] = (56, 56)):
  model = InternVisionModel(config)
  pixels = jnp.asarray(np.random.default_rng(1).normal(size=(n, *size, config.num_channels)), jnp.float32)
  return model, _random_params(model, pixels), pixels


# numpy references, written from the equations (float64).
def _np_norm(x, p, kind, eps):
  if kind == "rms_norm":
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * p["scale"]
  mu = x.mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * p["scale"] + p["bias"]


def _np_layer(x_ntd, p, c: InternVisionConfig):
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p)
  n, t, d = x_ntd.shape
  h, hd = c.num_attention_heads, c.head_dim
  a = p["attention"]
  y = _np_norm(x_ntd, p["norm_1"], c.norm_type, c.layer_norm_eps)
  qkv = []
  for name in "qkv":
    z = y @ a[f"{name}_kernel"].reshape(d, d) + (a[f"{name}_bias"].reshape(d) if c.attention_bias else 0)
    if c.use_qk_norm and name != "v":
      z = _np_norm(z, {"scale": a[f"{name}_norm"].reshape(d)}, "rms_norm", QK_NORM_EPS)
    qkv.append(z.reshape(n, t, h, hd))
  q, k, v = qkv
  s = np.einsum("nthk,nshk->nhts", q, k) / np.sqrt(hd)
  w = np.exp(s - s.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  o = np.einsum("nhts,nshk->nthk", w, v).reshape(n, t, d) @ a["o_kernel"].reshape(d, d) + a["o_bias"]
  x = x_ntd + p["lambda_1"] * o
  y = _np_norm(x, p["norm_2"], c.norm_type, c.layer_norm_eps) @ p["fc1"]["kernel"] + p["fc1"]["bias"]
  y = 0.5 * y * (1 + erf(y / np.sqrt(2)))
  return x + p["lambda_2"] * (y @ p["fc2"]["kernel"] + p["fc2"]["bias"])


def test_from_hf_dict_reads_vision_config_and_defaults():
  assert InternVisionConfig.from_hf_dict({}) == InternVisionConfig()
  d = {"model_type": "internvl", "vision_config": {
      "model_type": "internvl_vision", "hidden_size": 64, "num_attention_heads": 4, "image_size": [28, 28],
      "patch_size": [14, 14], "norm_type": "rms_norm", "use_qk_norm": True, "hidden_dropout_prob": 0.1}}
  c = InternVisionConfig.from_hf_dict(d)
  assert (c.hidden_size, c.head_dim, c.image_size, c.grid, c.num_positions) == (64, 16, (28, 28), (2, 2), 5)
  assert (c.norm_type, c.use_qk_norm) == ("rms_norm", True)


@pytest.mark.parametrize("bad, match", [
    ({"norm_type": "batch_norm"}, "norm_type"),
    ({"hidden_act": "relu"}, "hidden_act"),
    ({"use_mask_token": True}, "use_mask_token"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "divisible"),
    ({"model_type": "siglip_vision_model"}, "model_type"),
    ({"image_size": 10}, "image_size"),
    ({"patch_size": (14, 14, 1)}, "patch_size"),
])
def test_from_hf_dict_rejects_unsupported(bad, match):
  with pytest.raises(ValueError, match=match):
    InternVisionConfig.from_hf_dict(bad)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_param_axes(variant):
  c = VARIANTS[variant]
  model = InternVisionModel(c)
  boxed = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 56, 42, 3)))["params"]
  out = jax.eval_shape(model.apply, {"params": boxed}, jnp.zeros((2, 56, 42, 3)))
  assert out.shape == (2, 1 + 4 * 3, 32)
  attn = boxed["layer_0"]["attention"]
  assert attn["q_kernel"].names == (axes.EMBED, axes.HEADS, axes.HEAD_DIM)
  assert attn["q_kernel"].value.shape == (32, 2, 16)
  assert attn["o_kernel"].names == (axes.HEADS, axes.HEAD_DIM, axes.EMBED)
  assert boxed["layer_0"]["fc1"]["kernel"].names == (axes.EMBED, axes.MLP)
  assert boxed["layer_0"]["fc2"]["kernel"].names == (axes.MLP, axes.EMBED)
  assert boxed["embeddings"]["position_embeddings"].value.shape == (17, 32)
  assert ("q_norm" in attn) == c.use_qk_norm and ("q_bias" in attn) == c.attention_bias
  assert ("bias" in boxed["layer_0"]["norm_1"]) == (c.norm_type == "layer_norm")
  assert "final_norm" not in boxed  # use_mean_pooling: no final LayerNorm.


def test_embeddings_match_strided_conv():
  model, params, pixels = _setup(dataclasses.replace(TINY, num_channels=4))
  out = model.apply({"params": params}, pixels, feature_layer=0)
  e = params["embeddings"]
  conv = jax.lax.conv_general_dilated(pixels, e["patch_kernel"], (14, 14), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST) + e["patch_bias"]
  tokens = jnp.concatenate([jnp.broadcast_to(e["cls_token"], (2, 1, 32)), conv.reshape(2, 16, 32)], axis=1)
  np.testing.assert_allclose(out, tokens + e["position_embeddings"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_layer_matches_numpy(variant):
  c = VARIANTS[variant]
  model, params, pixels = _setup(c)
  h0 = np.asarray(model.apply({"params": params}, pixels, feature_layer=0), np.float64)
  h1 = model.apply({"params": params}, pixels, feature_layer=1)
  np.testing.assert_allclose(h1, _np_layer(h0, params["layer_0"], c), atol=2e-5, rtol=2e-5)


def test_feature_layer_indexing_and_final_norm():
  model, params, pixels = _setup(TINY)
  run = lambda layer: np.asarray(model.apply({"params": params}, pixels, feature_layer=layer))
  np.testing.assert_array_equal(run(-1), run(2))
  np.testing.assert_array_equal(run(-3), run(0))
  np.testing.assert_array_equal(run(-2), run(1))
  assert not np.allclose(run(1), run(2))

  c = dataclasses.replace(TINY, use_mean_pooling=False)
  model, params, pixels = _setup(c)
  last = np.asarray(model.apply({"params": params}, pixels, feature_layer=2), np.float64)
  final = jax.tree_util.tree_map(np.asarray, params["final_norm"])
  np.testing.assert_allclose(model.apply({"params": params}, pixels), _np_norm(last, final, "layer_norm", 1e-5),
                             atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("layer, error", [(3, ValueError), (-4, ValueError), (1.0, TypeError), (True, TypeError)])
def test_feature_layer_out_of_range(layer, error):
  model, params, pixels = _setup(TINY, n=1)
  with pytest.raises(error, match="feature_layer"):
    model.apply({"params": params}, pixels, feature_layer=layer)


@pytest.mark.parametrize("shape", [(1, 56, 56, 4), (1, 56, 50, 3), (56, 56, 3), (1, 0, 56, 3)])
def test_bad_pixels(shape):
  model, params, _ = _setup(TINY, n=1)
  with pytest.raises(ValueError, match="pixels_nhwc"):
    model.apply({"params": params}, jnp.zeros(shape))


def test_bicubic_matrix_properties():
  np.testing.assert_array_equal(bicubic_resize_matrix(4, 4), np.eye(4, dtype=np.float32))
  for n_in, n_out in [(4, 2), (4, 7), (3, 5), (32, 24)]:
    m = bicubic_resize_matrix(n_in, n_out)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)  # constants are kept
    np.testing.assert_allclose(m[::-1, ::-1], m, atol=1e-6)  # mirror-symmetric sampling grid
  # Halving: output 0 samples input 0.5 with taps at -1(clamped to 0), 0, 1, 2 and t = 0.5.
  a = -0.75
  w_near, w_far = (a + 2) / 8 - (a + 3) / 4 + 1, a * (1.5**3 - 5 * 1.5**2 + 8 * 1.5 - 4)
  np.testing.assert_allclose(bicubic_resize_matrix(4, 2)[0], [w_far + w_near, w_near, w_far, 0], atol=1e-6)


def test_resized_positions_keep_a_constant_table():
  model, params, _ = _setup(TINY, n=1)
  pixels = jnp.asarray(np.random.default_rng(2).normal(size=(1, 28, 42, 3)), jnp.float32)
  v = jnp.asarray(np.random.default_rng(3).normal(size=32), jnp.float32)

  def with_table(table):
    return dict(params, embeddings=dict(params["embeddings"], position_embeddings=table))

  zero = jnp.zeros((17, 32))
  out0 = model.apply({"params": with_table(zero)}, pixels, feature_layer=0)
  out_v = model.apply({"params": with_table(zero.at[1:].set(v))}, pixels, feature_layer=0)
  assert out_v.shape == (1, 1 + 2 * 3, 32)  # 4 x 4 trained grid resized to 2 x 3
  np.testing.assert_allclose(out_v[:, 1:], out0[:, 1:] + v, atol=1e-5)
  np.testing.assert_array_equal(out_v[:, 0], out0[:, 0])


def test_bfloat16_compute_close_to_float32():
  model, params, pixels = _setup(VARIANTS["6b"])
  ref = model.apply({"params": params}, pixels)
  out = jax.jit(InternVisionModel(VARIANTS["6b"], dtype=jnp.bfloat16).apply)({"params": params}, pixels)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.1 * float(jnp.abs(ref).max()))
