"""ShapesSource: determinism, the answer matches the drawn pixels, the loss mask covers exactly the answer."""

import pickle

import numpy as np
import pytest

from jaxlab.vlm.shapes_task import COLOURS, SHAPES, ShapesSource, ShapesVocab, draw_shape, unnormalize
from jaxlab.nn.v2pe import V2PE_DELTAS, v2pe_position_ids

_RGB = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1)}


def test_records_depend_only_on_seed_and_index():
  a, b = ShapesSource(28, seed=3, length=50), ShapesSource(28, seed=3, length=50)
  for i in (0, 7, 49):
    for k in a[i]:
      np.testing.assert_array_equal(a[i][k], b[i][k])
  c = pickle.loads(pickle.dumps(a))
  np.testing.assert_array_equal(c[7]["pixels"], a[7]["pixels"])
  other = ShapesSource(28, seed=4, length=50)
  assert any(not np.array_equal(other[i]["pixels"], a[i]["pixels"]) for i in range(5))
  with pytest.raises(IndexError):
    a[50]


def test_answer_matches_drawn_image():
  source = ShapesSource(28, seed=0, length=60)
  seen = set()
  for i in range(len(source)):
    r = source[i]
    image = unnormalize(r["pixels"][0])
    painted = np.any(np.abs(image - 1.0) > 1e-4, axis=-1)
    assert painted.sum() >= 4
    ys, xs = np.nonzero(painted)
    cy, cx = int(round(ys.mean() - 0.5)), int(round(xs.mean() - 0.5))  # Centroid: inside all three shapes.
    colour = COLOURS[int(r["colour"])]
    np.testing.assert_allclose(image[cy, cx], _RGB[colour], atol=1e-4)
    np.testing.assert_allclose(image[painted], np.broadcast_to(_RGB[colour], image[painted].shape), atol=1e-4)
    answer = source.vocab.decode(r["targets"][r["loss_mask"] > 0])
    assert answer == f"{colour} {SHAPES[int(r['shape'])]} <|im_end|>"
    seen.add((int(r["colour"]), int(r["shape"])))
  assert len(seen) == 9


def test_shapes_have_distinct_fill_fractions():
  # square fills its box, circle ~pi/4, triangle ~1/2: the drawn shape is the one named.
  fills = {s: draw_shape(40, "red", s, 0, 0, 40)[..., 1].__eq__(0).mean() for s in SHAPES}
  assert fills["square"] == 1.0
  assert abs(fills["circle"] - np.pi / 4) < 0.03 and abs(fills["triangle"] - 0.5) < 0.03


def test_mask_covers_exactly_the_answer_and_prompt_is_fixed():
  source = ShapesSource(56, tokens_per_tile=4, seed=1, length=10)
  vocab = source.vocab
  r = source[2]
  ids = np.concatenate([r["input_ids"], r["targets"][-1:]])
  np.testing.assert_array_equal(r["targets"][:-1], r["input_ids"][1:])
  p = source.prompt_length
  assert vocab.decode(ids[:p]).endswith("<|im_start|> assistant\n")
  assert np.sum(ids == vocab.image_token_id) == 4
  expected = np.zeros(len(r["targets"]))
  expected[p - 1:] = 1
  np.testing.assert_array_equal(r["loss_mask"], expected)
  assert list(r["targets"][r["loss_mask"] > 0]) == source.answer_ids(int(r["colour"]), int(r["shape"]))
  assert all(len(source[i]["input_ids"]) == len(r["input_ids"]) for i in range(10))


def test_vocab_round_trip_and_errors():
  vocab = ShapesVocab()
  assert vocab.pad_id == 0
  text = "<|im_start|>user\nWhat is in the image?<|im_end|>"
  assert vocab.decode(vocab.encode(text)).replace(" ", "") == text.replace(" ", "")
  with pytest.raises(ValueError, match="purple"):
    vocab.encode("a purple square")
  with pytest.raises(ValueError, match="tile_size"):
    ShapesSource(4)


def test_v2pe_positions_follow_each_records_delta():
  plain = ShapesSource(28, seed=3, length=40)
  sampled = ShapesSource(28, seed=3, length=40, v2pe_delta="sample")
  deltas = set()
  for i in range(40):
    record, base = sampled[i], plain[i]
    # The V2PE draw does not change the record's image or text.
    np.testing.assert_array_equal(record["input_ids"], base["input_ids"])
    np.testing.assert_array_equal(record["pixels"], base["pixels"])
    delta = float(record["v2pe_delta"])
    deltas.add(delta)
    is_visual = record["input_ids"] == sampled.vocab.image_token_id
    np.testing.assert_array_equal(record["positions"],
                                  v2pe_position_ids(is_visual, np.where(is_visual, 0, -1), [delta]))
    assert "positions" not in base
  assert len(deltas) > 3 and deltas <= set(V2PE_DELTAS)
  assert float(ShapesSource(28, seed=3, length=40, v2pe_delta="sample")[7]["v2pe_delta"]) == float(sampled[7]["v2pe_delta"])
  fixed = ShapesSource(28, seed=3, length=2, v2pe_delta=1.0)[0]
  np.testing.assert_array_equal(fixed["positions"], np.arange(len(fixed["input_ids"]), dtype=np.float32))
  with pytest.raises(ValueError, match="v2pe_delta"):
    ShapesSource(28, v2pe_delta=0.3)
