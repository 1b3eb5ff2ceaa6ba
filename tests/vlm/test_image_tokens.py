"""Image-token layout: block contents, placeholder expansion and count checks, visual-token masks."""

import re

import numpy as np
import pytest

from jaxlab.vlm import (
    IMG_CONTEXT,
    IMG_END,
    IMG_START,
    expand_image_tokens,
    image_token_block,
    video_token_block,
    visual_token_layout,
)

C = "<IMG_CONTEXT>"


def test_block_has_tokens_per_tile_times_tiles_context_tokens():
  assert (IMG_START, IMG_END, IMG_CONTEXT) == ("<img>", "</img>", C)
  assert image_token_block(3, tokens_per_tile=4) == "<img>" + C * 12 + "</img>"
  block = image_token_block(7)
  assert block.startswith("<img>") and block.endswith("</img>")
  assert block.count(C) == 256 * 7
  assert len(block) == len("<img>") + 256 * 7 * len(C) + len("</img>")


def test_expand_replaces_placeholders_in_order():
  prompt = f"{C}\nfirst {C}\nsecond"
  out = expand_image_tokens(prompt, [3, 1], tokens_per_tile=2)
  assert out == f"<img>{C * 6}</img>\nfirst <img>{C * 2}</img>\nsecond"
  out = expand_image_tokens("a <IMG_CONTEXT> b", [2])  # default 256 per tile
  assert out.count(C) == 512 and out.startswith("a <img>") and out.endswith("</img> b")
  assert expand_image_tokens("no images", []) == "no images"


def test_original_internvl_placeholder_keeps_user_labels():
  prompt = "Image-1: <image>\nImage-2: <image>\nCompare."
  out = expand_image_tokens(prompt, [1, 2], tokens_per_tile=1, image_placeholder="<image>")
  assert out == f"Image-1: <img>{C}</img>\nImage-2: <img>{C * 2}</img>\nCompare."


def test_video_frames_are_labelled_one_tile_each():
  assert video_token_block(2, tokens_per_tile=3) == f"Frame1: <img>{C * 3}</img>\nFrame2: <img>{C * 3}</img>"
  out = expand_image_tokens(f"<video>\nthen {C}\n?", [2], tokens_per_tile=1, num_frames_per_video=[3])
  frames = "\n".join(f"Frame{f}: <img>{C}</img>" for f in (1, 2, 3))
  assert out == f"{frames}\nthen <img>{C * 2}</img>\n?"


@pytest.mark.parametrize(
    "prompt, tiles, found, given",
    [(f"{C} {C}", [1], 2, 1), (f"{C}", [1, 1, 1], 1, 3), ("text only", [2], 0, 1)],
)
def test_placeholder_count_mismatch_names_both_counts(prompt, tiles, found, given):
  with pytest.raises(ValueError, match=rf"holds {found} '<IMG_CONTEXT>' placeholders but {given} images"):
    expand_image_tokens(prompt, tiles)


def test_mismatch_hints_at_the_original_placeholder():
  with pytest.raises(ValueError, match="image_placeholder='<image>'"):
    expand_image_tokens("Image-1: <image>", [1])


def test_video_count_mismatch():
  with pytest.raises(ValueError, match=r"holds 1 '<video>' placeholders but 2 videos"):
    expand_image_tokens("<video>", [], num_frames_per_video=[4, 4])
  with pytest.raises(ValueError, match=r"holds 1 '<video>' placeholders but 0 videos"):
    expand_image_tokens("<video>", [])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_tiles_per_image": [0]}, "positive ints"),
        ({"num_tiles_per_image": [True]}, "positive ints"),
        ({"num_tiles_per_image": [1], "tokens_per_tile": 0}, "tokens_per_tile"),
        ({"num_tiles_per_image": [1], "image_placeholder": ""}, "image_placeholder"),
        ({"num_tiles_per_image": [1], "video_placeholder": C}, "must differ"),
    ],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    expand_image_tokens(C, **kwargs)


def test_visual_token_layout_marks_runs_as_images():
  ids = np.array([5, 9, 9, 9, 6, 7, 5, 9, 9, 6])
  is_visual, index = visual_token_layout(ids, 9)
  np.testing.assert_array_equal(is_visual, ids == 9)
  np.testing.assert_array_equal(index, [-1, 0, 0, 0, -1, -1, -1, 1, 1, -1])
  assert is_visual.dtype == np.bool_ and index.dtype == np.int32
  # Batched: numbering restarts per row; a row may start with a visual token.
  ids_bt = np.array([[0, 0, 5, 9, 6, 5, 9], [9, 9, 6, 5, 9, 6, 7]])
  is_visual, index = visual_token_layout(ids_bt, 9)
  np.testing.assert_array_equal(index, [[-1, -1, -1, 0, -1, -1, 1], [0, 0, -1, -1, 1, -1, -1]])


def test_layout_round_trip_through_a_toy_tokenizer():
  vocab = {"<img>": 1, "</img>": 2, C: 3, "\n": 4}
  prompt = expand_image_tokens(f"{C}\nhi\n<video>\n{C}\n", [2, 1], tokens_per_tile=4, num_frames_per_video=[2])
  pieces = [p for p in re.split(r"(<img>|</img>|<IMG_CONTEXT>|\n)", prompt) if p]
  ids = np.array([vocab.get(p, 10) for p in pieces])
  is_visual, index = visual_token_layout(ids, vocab[C])
  # image 0 (2 tiles), frame 1, frame 2, image 1 (1 tile).
  assert [int((index == k).sum()) for k in range(4)] == [8, 4, 4, 4]
  assert index.max() == 3 and is_visual.sum() == 20


def test_layout_bad_input():
  with pytest.raises(ValueError, match=r"\[T\] or \[B, T\]"):
    visual_token_layout(np.zeros((2, 2, 2), np.int32), 1)
  with pytest.raises(ValueError, match="integers"):
    visual_token_layout(np.zeros(4, np.float32), 1)
