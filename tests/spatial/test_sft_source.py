"""Multi-image SFT records: unused image slots sit in the right padding, where they change nothing."""

import jax
import numpy as np
from PIL import Image

from configs.multispa_sft import get_config
from jaxlab.posttrain import SingleTileLoader
from jaxlab.spatial.qa import SpatialQA, prompt_with_images
from jaxlab.spatial.sft_source import SpatialSftSource
from jaxlab.spatial.vocab import SpatialVocab
from launch.tasks.multispa_sft import make_model, make_tokenizer


def _items(tmp_path):
  rng = np.random.default_rng(0)
  for name in ("a.png", "b.png", "c.png"):
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / name)
  one = SpatialQA(id="one", subtask="depth_value_dot", images=("a.png",),
                  question=prompt_with_images(1, "Depth task.", "How far is the red dot?"),
                  answer="It is `1234` mm away.", answer_kind="scalar", gt_value=1234.0, widths=(64,), heights=(48,))
  two = SpatialQA(id="two", subtask="camera_left_right", images=("b.png", "c.png"),
                  question=prompt_with_images(2, "Camera task.", "Did the camera move left or right?"),
                  answer="It moved `left`.", answer_kind="label", gt_value="left", widths=(64, 64), heights=(48, 48))
  return [one, two]


def test_padding_image_tokens_do_not_change_the_real_positions(tmp_path):
  config = get_config("smoke")
  items = _items(tmp_path)
  vocab = SpatialVocab.from_texts([t for i in items for t in (i.question, i.answer)] + ["<|im_start|>user\n"])
  tokenizer = make_tokenizer(config, vocab)
  loader = SingleTileLoader(config.data.tile_size)
  source = SpatialSftSource(items, tokenizer, loader, image_root=tmp_path, max_length=96, max_images=2,
                            image_token_id=vocab.image_token_id)
  per_tile = tokenizer.tokens_per_tile
  one, two = source[0], source[1]
  for record in (one, two):
    assert np.sum(record["input_ids"] == vocab.image_token_id) == 2 * per_tile
  assert np.all(one["input_ids"][-per_tile:] == vocab.image_token_id)  # The unused slot: end of the padding.
  assert np.all(one["pixels"][1] == 0) and np.any(one["pixels"][0] != 0)
  answer_ids = tokenizer.encode_response(items[0].answer) + [tokenizer.eos_id]
  assert one["targets"][one["loss_mask"] > 0].tolist() == answer_ids

  model = make_model(config, vocab)
  params = jax.jit(model.init)(jax.random.key(0), one["input_ids"][None], one["pixels"])["params"]
  batch_ids = np.stack([one["input_ids"], two["input_ids"]])
  batch_pixels = np.concatenate([one["pixels"], two["pixels"]])
  logits_batch, _ = model.apply({"params": params}, batch_ids, batch_pixels)
  n = int(np.flatnonzero(one["loss_mask"])[-1]) + 1
  alone_ids = one["input_ids"][:n][None]
  logits_alone, _ = model.apply({"params": params}, alone_ids, one["pixels"][:1])
  np.testing.assert_allclose(np.asarray(logits_batch[0, :n]), np.asarray(logits_alone[0]), atol=2e-5, rtol=2e-5)
  # The two-image row saw both of its own images, not the first row's padding tile.
  m = int(np.flatnonzero(two["loss_mask"])[-1]) + 1
  logits_two, _ = model.apply({"params": params}, two["input_ids"][:m][None], two["pixels"])
  np.testing.assert_allclose(np.asarray(logits_batch[1, :m]), np.asarray(logits_two[0]), atol=2e-5, rtol=2e-5)


def test_items_that_do_not_fit_are_dropped_and_counted(tmp_path):
  config = get_config("smoke")
  items = _items(tmp_path)
  vocab = SpatialVocab.from_texts([t for i in items for t in (i.question, i.answer)])
  source = SpatialSftSource(items, make_tokenizer(config, vocab), SingleTileLoader(config.data.tile_size),
                            image_root=tmp_path, max_length=96, max_images=1, image_token_id=vocab.image_token_id)
  assert len(source) == 1 and source.dropped == 1
