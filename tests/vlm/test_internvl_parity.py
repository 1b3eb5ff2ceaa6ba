"""Parity of InternVLModel with transformers' InternVLForConditionalGeneration on CPU torch: logits, greedy
generation and the export round trip, on a tiny random model saved and loaded through safetensors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxlab.vlm import InternVLModel, generate, load_pretrained, save_pretrained  # noqa: E402

IMG = 150
_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=28,
               patch_size=14, attention_bias=True)
_TEXT = dict(model_type="qwen2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=96, vocab_size=160, tie_word_embeddings=False, max_position_embeddings=128)


def _randomize(model) -> None:
  torch.manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 4:
        p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
      elif p.ndim == 2 and "embed" not in name:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
      elif p.ndim >= 2:
        p.copy_(torch.randn_like(p))
      else:
        is_scale = "norm" in name and name.endswith("weight")
        p.copy_((1.0 if is_scale else 0.0) + 0.3 * torch.randn_like(p))


@functools.lru_cache(maxsize=None)
def _build(tmp_dir: str):
  config = transformers.InternVLConfig(vision_config=_VISION, text_config=_TEXT, image_token_id=IMG,
                                       tie_word_embeddings=False)
  model = transformers.InternVLForConditionalGeneration(config).eval()
  _randomize(model)
  model.save_pretrained(tmp_dir)
  jconfig, params = load_pretrained(tmp_dir)
  return model, jconfig, params


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(str(tmp_path_factory.mktemp("internvl")))


def _pixels(n, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 28, 28, 3)).astype(np.float32)


def _case(name):
  """(input_ids [B, T], pixels NHWC or None, attention mask); each 28 px tile is 1 image token."""
  rng = np.random.default_rng(1)
  text = lambda n: rng.integers(0, IMG, size=n).tolist()
  if name == "text":
    ids = [[0, 0] + text(10), text(12)]
    return np.array(ids), None, np.array([[0, 0] + [1] * 10, [1] * 12])
  if name == "one_image":  # One image of 3 tiles.
    return np.array([text(3) + [IMG] * 3 + text(4)]), _pixels(3), np.ones((1, 10), np.int64)
  # Two images (2 and 1 tiles) in two left-padded rows.
  ids = [[0] + text(2) + [IMG] * 2 + text(4), text(2) + [IMG] + text(6)]
  return np.array(ids), _pixels(3, seed=2), np.array([[0] + [1] * 8, [1] * 9])


def _torch_logits(model, ids, pixels, mask):
  kw = {} if pixels is None else dict(pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()))
  with torch.no_grad():
    return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kw).logits.numpy()


@pytest.mark.parametrize("name", ["text", "one_image", "two_images"])
def test_logits_match(built, name):
  model, config, params = built
  ids, pixels, mask = _case(name)
  ref = _torch_logits(model, ids, pixels, mask)
  out, _ = jax.jit(InternVLModel(config).apply)({"params": params}, jnp.asarray(ids, jnp.int32),
                                       None if pixels is None else jnp.asarray(pixels),
                                       attention_mask_bt=jnp.asarray(mask, jnp.int32))
  real = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(out)[real], ref[real], atol=1e-4, rtol=1e-4)


def test_greedy_generation_matches(built):
  model, config, params = built
  ids, pixels, mask = _case("one_image")
  with torch.no_grad():
    ref = model.generate(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()), max_new_tokens=20,
                         min_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
  out = generate(InternVLModel(config), params, jnp.asarray(ids, jnp.int32), jnp.asarray(pixels),
                 jnp.asarray(mask, jnp.int32), max_new_tokens=20)
  np.testing.assert_array_equal(np.asarray(out), ref[:, ids.shape[1]:].numpy())


def test_export_round_trip_into_transformers(built, tmp_path):
  model, config, params = built
  save_pretrained(params, config, tmp_path / "export")
  reloaded = transformers.InternVLForConditionalGeneration.from_pretrained(tmp_path / "export").eval()
  ids, pixels, mask = _case("two_images")
  np.testing.assert_allclose(_torch_logits(reloaded, ids, pixels, mask), _torch_logits(model, ids, pixels, mask),
                             atol=1e-5, rtol=1e-5)
  assert not reloaded.config.tie_word_embeddings
