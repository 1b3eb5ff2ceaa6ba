"""Parity with transformers' InternVL on CPU torch: tiny random models, vision tower and image features, both ways."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxlab.vlm import vision_hf  # noqa: E402
from jaxlab.vlm.projector import ProjectorConfig, image_features  # noqa: E402
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel  # noqa: E402

_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               image_size=56, patch_size=14)
_TEXT = dict(model_type="qwen2", hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=1, intermediate_size=32, vocab_size=64)
CASES = {
    # InternViT-300M: LayerNorm, q/k/v bias, no qk norm, mean pooling (no final norm).
    "300m": (dict(norm_type="layer_norm", attention_bias=True, use_qk_norm=False), {}),
    # InternViT-6B: RMSNorm, RMS qk norm, no q/k/v bias.
    "6b": (dict(norm_type="rms_norm", attention_bias=False, use_qk_norm=True, layer_norm_eps=1e-5), {}),
    # The final LayerNorm, and an earlier layer's features.
    "final_norm": (dict(norm_type="layer_norm", attention_bias=True, use_mean_pooling=False),
                   dict(vision_feature_layer=-2)),
}


def _randomize(model) -> None:
  """Every parameter random at an O(1)-activation scale (init leaves CLS, positions and biases at 0)."""
  torch.manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 4:
        p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
      elif p.ndim == 2:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)  # torch layout: fan-in is the last dim.
      else:
        is_scale = "norm" in name and name.endswith("weight")
        p.copy_((1.0 if is_scale else 0.0) + 0.3 * torch.randn_like(p))


@functools.lru_cache(maxsize=None)
def _build(name: str):
  """(name, HF model, HF config dict, vision config, projector config, jaxlab params)."""
  vision_kw, top_kw = CASES[name]
  hf_config = transformers.InternVLConfig(vision_config={**_VISION, **vision_kw}, text_config=_TEXT, **top_kw)
  model = transformers.InternVLForConditionalGeneration(hf_config).eval()
  _randomize(model)
  d = hf_config.to_dict()
  vc, pc = InternVisionConfig.from_hf_dict(d), ProjectorConfig.from_hf_dict(d)
  params = vision_hf.params_from_hf(model.state_dict(), vc, pc)
  return name, model, d, vc, pc, params


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
  return _build(request.param)


def _pixels(n, h, w, seed=0):
  return np.random.default_rng(seed).normal(size=(n, h, w, 3)).astype(np.float32)


def _nchw(pixels_nhwc):
  return torch.from_numpy(np.ascontiguousarray(pixels_nhwc.transpose(0, 3, 1, 2)))


def test_image_features_match(case):
  _, model, _, vc, pc, params = case
  pixels = _pixels(3, 56, 56)
  with torch.no_grad():
    ref = model.get_image_features(_nchw(pixels)).pooler_output.numpy()
  out = image_features(params["vision_tower"], params["projector"], jnp.asarray(pixels), vc, pc)
  assert ref.shape == out.shape == (3, 4, 24)
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_every_hidden_state_matches(case):
  _, model, _, vc, _, params = case
  pixels = _pixels(2, 56, 56, seed=1)
  with torch.no_grad():
    ref = model.model.vision_tower(_nchw(pixels), output_hidden_states=True)
  vision = InternVisionModel(vc)
  for layer in range(vc.num_hidden_layers + 1):
    out = vision.apply({"params": params["vision_tower"]}, pixels, feature_layer=layer)
    np.testing.assert_allclose(out, ref.hidden_states[layer].numpy(), atol=1e-4, rtol=1e-4, err_msg=f"{layer}")
  out = vision.apply({"params": params["vision_tower"]}, pixels)
  np.testing.assert_allclose(out, ref.last_hidden_state.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size", [(28, 28), (42, 70)])
def test_resized_position_embeddings_match(size):
  _, model, _, vc, _, params = _build("300m")
  pixels = _pixels(1, *size, seed=2)
  with torch.no_grad():
    ref = model.model.vision_tower(_nchw(pixels)).last_hidden_state.numpy()
  out = InternVisionModel(vc).apply({"params": params["vision_tower"]}, pixels)
  assert out.shape == ref.shape == (1, 1 + (size[0] // 14) * (size[1] // 14), 32)
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def _ours(state_dict, prefix="model."):
  keep = (prefix + vision_hf.VISION_TOWER, prefix + vision_hf.PROJECTOR)
  return {k: v.numpy() for k, v in state_dict.items() if k.startswith(keep)}


def test_export_round_trips_exactly(case):
  _, model, _, vc, pc, params = case
  hf = _ours(model.state_dict())
  exported = vision_hf.params_to_hf(params, vc, pc)
  assert set(exported) == set(hf)
  for name, value in hf.items():
    assert exported[name].shape == value.shape and exported[name].dtype == value.dtype, name
    np.testing.assert_array_equal(exported[name], value, err_msg=name)
  # Hub checkpoint spelling (no "model." prefix), detected on the way in.
  hub = {k.removeprefix("model."): v for k, v in hf.items()}
  again = vision_hf.params_from_hf(hub, vc, pc)
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, params)
  assert set(vision_hf.params_to_hf(again, vc, pc, prefix="")) == set(hub)


def test_mapping_errors_name_the_tensors():
  _, model, _, vc, pc, params = _build("6b")
  sd = dict(model.state_dict())
  missing = dict(sd)
  del missing["model.vision_tower.encoder.layer.1.attention.k_norm.weight"]
  missing["model.multi_modal_projector.extra.weight"] = torch.zeros(3)
  with pytest.raises(ValueError, match=r"missing.*layer\.1\.attention\.k_norm\.weight.*unexpected.*extra\.weight"):
    vision_hf.params_from_hf(missing, vc, pc)
  wrong = dict(sd, **{"model.vision_tower.encoder.layer.0.mlp.fc1.weight": torch.zeros(64, 31)})
  with pytest.raises(ValueError, match=r"layer\.0\.mlp\.fc1\.weight: shape \(64, 31\), expected \(64, 32\)"):
    vision_hf.params_from_hf(wrong, vc, pc)
  partial = {"vision_tower": dict(params["vision_tower"]), "projector": params["projector"]}
  del partial["vision_tower"]["layer_1"]
  with pytest.raises(ValueError, match=r"missing.*vision_tower/layer_1/"):
    vision_hf.params_to_hf(partial, vc, pc)

