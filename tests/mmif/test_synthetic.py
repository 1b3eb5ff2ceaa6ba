"""The embedded MM-IFEngine set: scenes, their images, the teacher, items, and SFT records over them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxlab.mmif.engine import IMAGE_MARK, satisfaction
from jaxlab.mmif.sft_source import InstructSftSource, image_path
from jaxlab.mmif.synthetic import GENERIC_WORDS, REGIONS, Teacher, make_items, render, scene
from jaxlab.mmif.taxonomy import RULE
from jaxlab.posttrain.pairs import ChatPairTokenizer
from jaxlab.vlm.piece_vocab import PieceVocab
from jaxlab.vlm.shapes_task import COLOURS, SHAPES

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
WHITE = (255, 255, 255)

# ---------------------------------------------------------------- scenes and images


def test_scene_is_deterministic():
  for seed in [0, 1, (5, 3), (7, 0)]:
    assert scene(seed) == scene(seed)
  assert len({scene(s) for s in range(40)}) > 10


def test_scene_shapes_are_distinct():
  sizes = set()
  for seed in range(200):
    shapes = scene(seed).shapes
    sizes.add(len(shapes))
    assert 1 <= len(shapes) <= 3
    colours, kinds, regions = zip(*shapes)
    assert set(colours) <= set(COLOURS) and len(set(colours)) == len(shapes)
    assert set(kinds) <= set(SHAPES) and len(set(kinds)) == len(shapes)
    assert set(regions) <= set(REGIONS) and len(set(regions)) == len(shapes)
  assert sizes == {1, 2, 3}


def test_scene_words():
  for seed in range(30):
    s = scene(seed)
    colours = [c for c, _, _ in s.shapes]
    kinds = [k for _, k, _ in s.shapes]
    assert s.keywords == tuple(colours + kinds) + GENERIC_WORDS
    assert s.subject == ("the picture" if len(s.shapes) > 1 else f"the {kinds[0]}")


def _centres(tile: int) -> dict[str, tuple[int, int]]:
  side = max(4, tile // 3)
  far, mid = tile - side - 1, (tile - side) // 2
  corners = {"left": (mid, 1), "right": (mid, far), "top": (1, mid), "bottom": (far, mid)}
  return {r: (top + side // 2, left + side // 2) for r, (top, left) in corners.items()}


@pytest.mark.parametrize("tile", [48, 56])
def test_render_paints_each_shape_in_its_region(tile):
  for seed in range(40):
    s = scene(seed)
    image = render(s, tile)
    assert image.shape == (tile, tile, 3) and image.dtype == np.uint8
    placed = {region: colour for colour, _, region in s.shapes}
    for region, (y, x) in _centres(tile).items():
      assert tuple(image[y, x]) == RGB.get(placed.get(region), WHITE), (seed, region)
    for y, x in [(0, 0), (0, tile - 1), (tile - 1, 0), (tile - 1, tile - 1), (tile // 2, tile // 2)]:
      assert tuple(image[y, x]) == WHITE
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert colours == {WHITE} | {RGB[c] for c, _, _ in s.shapes}


# ---------------------------------------------------------------- teacher and items


def _full(items) -> float:
  return sum(satisfaction(it.response, it.constraints) == 1.0 for it in items) / len(items)


def test_teacher_meets_every_constraint_on_most_items():
  items, _ = make_items(100, seed=11, teacher=Teacher(ignore_prob=0.0))
  assert all(c.method == RULE for it in items for c in it.constraints)
  faithful = _full(items)
  assert faithful >= 0.9, faithful
  ignoring, _ = make_items(100, seed=11, teacher=Teacher(ignore_prob=1.0))
  assert [it.constraints for it in ignoring] == [it.constraints for it in items]  # Same draws, other answers.
  assert _full(ignoring) < faithful - 0.2


def test_make_items_is_seeded():
  a, scenes_a = make_items(12, seed=3)
  b, scenes_b = make_items(12, seed=3)
  assert a == b and scenes_a == scenes_b
  c, _ = make_items(12, seed=4)
  assert [it.response for it in a] != [it.response for it in c]
  assert not {it.id for it in a} & {it.id for it in c}


def test_make_items_layout():
  items, scenes = make_items(20, seed=5, min_constraints=2, max_constraints=3, image_dir="imgs")
  assert [it.id for it in items] == [f"5-{i:06d}" for i in range(20)] and set(scenes) == {it.id for it in items}
  for i, it in enumerate(items):
    assert it.image == f"imgs/{it.id}.png"
    assert scenes[it.id] == scene((5, i))
    assert 1 <= len(it.constraints) <= 3  # Rejected draws can leave fewer than asked.
    assert len({c.key for c in it.constraints}) == len(it.constraints)
    assert it.response and scenes[it.id].subject in it.instruction
  assert max(len(it.constraints) for it in items) == 3


# ---------------------------------------------------------------- SFT records


def _tokenizer(items):
  seen = []
  collect = ChatPairTokenizer(lambda s: seen.append(s) or [], eos_id=0, pad_id=0, tokens_per_tile=4)
  for it in items:
    collect.encode_prompt(IMAGE_MARK + it.prompt, 1, None)
  vocab = PieceVocab.from_texts(seen + [it.response for it in items])
  return vocab, ChatPairTokenizer(vocab.encode, eos_id=vocab.im_end_id, pad_id=vocab.pad_id, tokens_per_tile=4)


def _load(paths):
  def load(path):
    paths.append(path)
    return np.zeros((1, 56, 56, 3), np.float32)
  return load


def test_sft_records_mask_the_response(tmp_path):
  items, _ = make_items(8, seed=2)
  vocab, tok = _tokenizer(items)
  loaded = []
  source = InstructSftSource(items, tok, _load(loaded), image_root=tmp_path, max_length=4096)
  assert len(source) == 8 and source.dropped == 0
  assert source.max_length % 16 == 0 and source.max_length < 4096
  for i, it in enumerate(items):
    r = source[i]
    length = source.max_length
    assert r["input_ids"].shape == r["targets"].shape == r["loss_mask"].shape == (length,)
    assert r["input_ids"].dtype == np.int32 and r["loss_mask"].dtype == np.float32
    assert r["pixels"].shape == (1, 56, 56, 3) and r["pixels"].dtype == np.float32
    assert loaded[-1] == str(tmp_path / it.image)
    mask = r["loss_mask"] > 0
    assert vocab.decode(r["targets"][mask]) == it.response + "<|im_end|>"
    assert vocab.unk_id not in r["targets"][mask]
    prompt_ids = tok.encode_prompt(IMAGE_MARK + it.prompt, 1, None)
    response_ids = tok.encode_response(it.response)
    n = len(prompt_ids) + len(response_ids) + 1
    assert mask.sum() == len(response_ids) + 1
    assert np.flatnonzero(mask).tolist() == list(range(len(prompt_ids) - 1, n - 1))  # One contiguous run.
    assert r["input_ids"][:len(prompt_ids)].tolist() == prompt_ids
    assert r["input_ids"][1:n].tolist() == r["targets"][:n - 1].tolist()
    assert (r["input_ids"][n:] == vocab.pad_id).all()
    assert vocab.decode(r["input_ids"][:len(prompt_ids)]).endswith("<|im_start|>assistant\n")
    assert "<IMG_CONTEXT>" * 4 in vocab.decode(r["input_ids"][:len(prompt_ids)])


def test_sft_drops_too_long_items():
  items, _ = make_items(10, seed=9)
  vocab, tok = _tokenizer(items)
  lengths = [len(tok.encode_prompt(IMAGE_MARK + it.prompt, 1, None)) + len(tok.encode_response(it.response)) + 1
             for it in items]
  limit = sorted(lengths)[len(lengths) // 2]
  source = InstructSftSource(items, tok, _load([]), image_root="root", max_length=limit)
  kept = [it for it, n in zip(items, lengths) if n <= limit]
  assert source.dropped == len(items) - len(kept) > 0
  assert len(source) == len(kept)
  assert source.max_length <= limit
  for i, it in enumerate(kept):
    r = source[i]
    assert vocab.decode(r["targets"][r["loss_mask"] > 0]) == it.response + "<|im_end|>"
  with pytest.raises(ValueError, match="no item fits max_length=5"):
    InstructSftSource(items, tok, _load([]), image_root="root", max_length=5)


def test_sft_needs_responses():
  items, _ = make_items(2, seed=1)
  _, tok = _tokenizer(items)
  unanswered = [dataclasses.replace(items[0], response=None)]
  with pytest.raises(ValueError, match=f"item {items[0].id} has no response"):
    InstructSftSource(unanswered, tok, _load([]), image_root="root", max_length=4096)


def test_image_path_joins_relative_paths(tmp_path):
  items, _ = make_items(1, seed=1, image_dir="/data/images")
  assert image_path(items[0], tmp_path) == f"/data/images/{items[0].id}.png"
  items, _ = make_items(1, seed=1)
  assert image_path(items[0], tmp_path) == str(tmp_path / "images" / f"{items[0].id}.png")
