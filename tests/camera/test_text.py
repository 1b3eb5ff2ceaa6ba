"""Caption tokenizer and `TextEncoder`: ids layout, the too-long error, causality of the encoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.camera.text import TextEncoder, encode_captions, train_caption_tokenizer

CAPTIONS = [
    "The camera dollies in, then pans left while trucking right.",
    "The camera tilts up slowly toward the tower.",
    "A static shot framing the red chair in the center.",
    "The camera pedestals down and rolls clockwise.",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
  return train_caption_tokenizer(CAPTIONS, vocab_size=300)


def test_special_ids_and_layout(tokenizer):
  assert [tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[SOT]", "[EOT]")] == [0, 1, 2, 3]
  ids = encode_captions(tokenizer, CAPTIONS[:2])
  assert ids.shape == (2, 77) and ids.dtype == np.int32
  for row, caption in zip(ids, CAPTIONS[:2]):
    n = int(np.count_nonzero(row))
    assert row[0] == 2 and row[n - 1] == 3 and np.all(row[n:] == 0)
    # The ids between the markers spell the caption (lower-cased, punctuation split off).
    words = tokenizer.decode(row[1:n - 1].tolist()).replace(" ", "")
    assert words == caption.lower().replace(" ", "")


def test_caption_too_long_is_an_error_unless_truncate(tokenizer):
  long_caption = " ".join(["camera"] * 100)
  with pytest.raises(ValueError, match=r"caption 1 .* 102 tokens .* length=77"):
    encode_captions(tokenizer, [CAPTIONS[0], long_caption])
  ids = encode_captions(tokenizer, [CAPTIONS[0], long_caption], truncate=True)
  assert ids.shape == (2, 77) and ids[1, 0] == 2 and ids[1, -1] == 3 and np.all(ids[1, 1:-1] > 3)
  # Exactly 77 with the markers fits.
  assert encode_captions(tokenizer, [" ".join(["camera"] * 75)])[0, -1] == 3


def test_bad_input(tokenizer):
  with pytest.raises(ValueError, match="single string"):
    encode_captions(tokenizer, "the camera pans")
  with pytest.raises(ValueError, match="at least one"):
    train_caption_tokenizer([])


def test_text_encoder_shape_and_causality(tokenizer):
  encoder = TextEncoder(vocab_size=300, width=32, num_layers=2, num_heads=4)
  ids = jnp.asarray(encode_captions(tokenizer, CAPTIONS[:2]))
  params = jax.jit(encoder.init)(jax.random.key(0), ids)
  apply = jax.jit(encoder.apply)
  out = np.asarray(apply(params, ids))
  assert out.shape == (2, 77, 32) and np.all(np.isfinite(out))
  # Changing token 5 leaves positions 0..4 as they were and changes 5 onwards (causal, like CLIP).
  changed = np.asarray(apply(params, ids.at[:, 5].set(ids[:, 5] % 200 + 7)))
  np.testing.assert_allclose(changed[:, :5], out[:, :5], atol=1e-6)
  assert np.all(np.abs(changed[:, 5:] - out[:, 5:]).max(axis=-1) > 1e-4)
  with pytest.raises(ValueError, match=r"\[0, 300\)"):
    encoder.apply(params, ids.at[0, 0].set(300))
