"""Preference pairs: jsonl round trip, token layout and masks, pixels, bad records, grain batching, build_pairs."""

import json
import logging
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from jaxlab.data import build_batches
from jaxlab.posttrain.pair_records import PairBuildReport, PairFormatError, build_pairs, read_pairs, write_pairs
from jaxlab.posttrain.pairs import (
    ChatPairTokenizer, PairRecordError, PreferencePairSource, SingleTileLoader, shapes_pair_tokenizer)
from jaxlab.vlm.shapes_task import ShapesVocab, draw_shape, normalize

QUESTION = "What is in the image?"
TILE = 28


def _png(folder, name, colour="red", shape="square"):
  image = (draw_shape(TILE, colour, shape, 4, 4, 16) * 255).round().astype(np.uint8)
  Image.fromarray(image).save(os.path.join(folder, name))
  return image


def _source(pairs, max_length=24, **kwargs):
  return PreferencePairSource(pairs, shapes_pair_tokenizer(), SingleTileLoader(TILE), max_length, **kwargs)


def test_write_then_read_round_trips_and_resolves_paths_against_the_jsonl_folder(tmp_path):
  records = [
      {"image": "img/a.png", "question": "q1", "chosen": "c1", "rejected": "r1", "id": 7},
      {"image": ["/abs/b.png", "c.png"], "prompt": "q2", "chosen": "c2", "rejected": "r2", "system_prompt": "s"},
      {"question": "text only", "chosen": "yes", "rejected": "no"},
  ]
  path = tmp_path / "pairs.jsonl"
  assert write_pairs(path, records) == 3
  assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl"]  # no temporary file left behind
  lines = [json.loads(line) for line in path.read_text().splitlines()]
  assert lines[1]["question"] == "q2" and "prompt" not in lines[1]
  assert read_pairs(path) == [
      {"image": [str(tmp_path / "img/a.png")], "question": "q1", "chosen": "c1", "rejected": "r1", "id": 7},
      {"image": ["/abs/b.png", str(tmp_path / "c.png")], "question": "q2", "chosen": "c2", "rejected": "r2",
       "system_prompt": "s"},
      {"question": "text only", "chosen": "yes", "rejected": "no"},
  ]
  write_pairs(tmp_path / "again.jsonl", read_pairs(path))  # canonical records hold absolute paths
  assert read_pairs(tmp_path / "again.jsonl") == read_pairs(path)
  with pytest.raises(FileExistsError):
    write_pairs(path, records, overwrite=False)
  with pytest.raises(PairFormatError, match="record 1: missing key 'rejected'"):
    write_pairs(tmp_path / "bad.jsonl", [records[0], {"question": "q", "chosen": "c"}])
  assert not (tmp_path / "bad.jsonl").exists()


@pytest.mark.parametrize("line, problem", [
    ('{"question": "q", "chosen": "c"', "not valid JSON"),
    ('["q", "c", "r"]', "must be a JSON object"),
    ('{"question": "q", "chosen": "c"}', "missing key 'rejected'"),
    ('{"chosen": "c", "rejected": "r"}', "missing key 'question'"),
    ('{"question": "q", "chosen": 3, "rejected": "r"}', "'chosen' must be a string"),
    ('{"question": "q", "prompt": "p", "chosen": "c", "rejected": "r"}', "both given and differ"),
    ('{"question": "q", "chosen": "c", "rejected": "r", "image": 5}', "'image' must be a path"),
])
def test_malformed_lines_name_the_line_and_the_problem(tmp_path, line, problem):
  path = tmp_path / "pairs.jsonl"
  path.write_text('{"question": "q", "chosen": "c", "rejected": "r"}\n\n' + line + "\n")
  with pytest.raises(PairFormatError, match=f"pairs.jsonl line 3: .*{problem}"):
    read_pairs(path)
  with pytest.raises(PairFormatError, match="line 3"):
    _source(path, on_bad="drop")  # format errors are never dropped


def test_token_layout_and_masks_with_the_shapes_vocab(tmp_path):
  image = _png(tmp_path, "a.png")
  write_pairs(tmp_path / "pairs.jsonl", [{"image": "a.png", "question": QUESTION, "chosen": "red square",
                                          "rejected": "blue"}])
  source = _source(tmp_path / "pairs.jsonl", max_length=24)
  element = source[0]
  ids = ShapesVocab().ids
  prompt = [ids[w] for w in ["<|im_start|>", "user", "\n", "<img>", "<IMG_CONTEXT>", "</img>", "\n", "What", "is",
                             "in", "the", "image", "?", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]]
  assert set(element) == {"chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask", "pixels"}
  assert element["chosen_ids"].dtype == np.int32 and element["chosen_ids"].shape == (24,)
  assert element["chosen_ids"].tolist() == prompt + [ids["red"], ids["square"], ids["<|im_end|>"]] + [0] * 3
  assert element["chosen_mask"].dtype == np.float32
  assert element["chosen_mask"].tolist() == [0] * 18 + [1] * 3 + [0] * 3
  assert element["rejected_ids"].tolist() == prompt + [ids["blue"], ids["<|im_end|>"]] + [0] * 4
  assert element["rejected_mask"].tolist() == [0] * 18 + [1] * 2 + [0] * 4
  assert element["pixels"].shape == (1, TILE, TILE, 3) and element["pixels"].dtype == np.float32
  np.testing.assert_allclose(element["pixels"][0], normalize(image / np.float32(255)), atol=1e-6)
  # An MMPR-style "<image>\n" placeholder gives the same prompt as images-first.
  same = _source([{"image": str(tmp_path / "a.png"), "question": "<image>\n" + QUESTION, "chosen": "red square",
                   "rejected": "blue"}])[0]
  np.testing.assert_array_equal(same["chosen_ids"], element["chosen_ids"])


def test_two_images_keep_their_placeholder_order(tmp_path):
  red, blue = _png(tmp_path, "r.png", "red"), _png(tmp_path, "b.png", "blue", "circle")
  record = {"image": ["r.png", "b.png"], "question": "What is in <image> the image <image> ?", "chosen": "red",
            "rejected": "blue"}
  element = _source([record], max_length=40, image_root=tmp_path)[0]
  np.testing.assert_allclose(element["pixels"], normalize(np.stack([red, blue]) / np.float32(255)), atol=1e-6)
  vocab = ShapesVocab()
  text = vocab.decode(element["chosen_ids"][element["chosen_ids"] != vocab.pad_id])
  assert "What is in <img> <IMG_CONTEXT> </img>\nthe image <img> <IMG_CONTEXT> </img>\n?" in text


def test_a_hugging_face_tokenizer_plugs_in():
  tokenizers = pytest.importorskip("tokenizers")
  words = ["[UNK]", "<pad>", "<|im_start|>", "<|im_end|>", "user", "assistant", "Is", "it", "red", "?", "yes", "no"]
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.add_special_tokens(["<pad>", "<|im_start|>", "<|im_end|>"])
  tokenizer = ChatPairTokenizer(lambda s: tok.encode(s, add_special_tokens=False).ids, eos_id=3, pad_id=1,
                                tokens_per_tile=1)
  source = PreferencePairSource([{"question": "Is it red?", "chosen": "yes", "rejected": "no"}], tokenizer, None, 12)
  element = source[0]
  assert set(element) == {"chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask"}  # text-only: no pixels
  assert element["chosen_ids"].tolist() == [2, 4, 6, 7, 8, 9, 3, 2, 5, 10, 3, 1]
  assert element["chosen_mask"].tolist() == [0] * 9 + [1, 1, 0]
  assert element["rejected_ids"].tolist() == [2, 4, 6, 7, 8, 9, 3, 2, 5, 11, 3, 1]


def _bad_records(folder):
  _png(folder, "ok.png")
  (folder / "broken.png").write_bytes(b"not a png")
  good = {"image": "ok.png", "question": QUESTION, "chosen": "red square", "rejected": "blue circle"}
  return [
      good,
      {**good, "chosen": "  "},  # empty_response
      {**good, "rejected": "red square "},  # identical_responses
      {**good, "image": "absent.png"},  # missing_image
      {**good, "image": "broken.png"},  # missing_image (unreadable)
      {**good, "chosen": "a purple square"},  # unencodable: words outside the vocabulary
      {**good, "rejected": "blue circle " * 4},  # too_long with max_length 24
  ]


@pytest.mark.parametrize("line, reason", [
    (2, "empty_response"), (3, "identical_responses"), (4, "missing_image"), (5, "missing_image"),
    (6, "unencodable"), (7, "too_long")])
def test_each_bad_record_raises_naming_its_line_under_error(tmp_path, line, reason):
  records = _bad_records(tmp_path)
  write_pairs(tmp_path / "pairs.jsonl", [records[0], records[line - 1]])
  with pytest.raises(PairRecordError, match=f"pairs.jsonl line 2: {reason}") as caught:
    _source(tmp_path / "pairs.jsonl")
  assert caught.value.reason == reason


def test_bad_records_are_counted_and_logged_under_drop(tmp_path, caplog):
  write_pairs(tmp_path / "pairs.jsonl", _bad_records(tmp_path))
  with caplog.at_level(logging.WARNING, logger="jaxlab.posttrain.pairs"):
    source = _source(tmp_path / "pairs.jsonl", on_bad="drop")
  report = source.drop_report
  assert len(source) == 1 and source.where(0).endswith("pairs.jsonl line 1")
  assert (report.total, report.kept, report.dropped) == (7, 1, 6)
  assert report.counts == {"empty_response": 1, "identical_responses": 1, "missing_image": 2, "unencodable": 1,
                           "too_long": 1}
  assert any("line 7: too_long" in e for e in report.examples["too_long"])
  assert "dropped 6 of 7 pair records" in caplog.text
  assert source[0]["chosen_ids"].shape == (24,)


def test_too_long_never_truncates_and_fits_exactly_at_max_length():
  record = {"question": QUESTION, "chosen": "red square", "rejected": "blue"}  # 14 + 2 + 1 = 17 tokens
  assert _source([record], max_length=17)[0]["chosen_mask"].sum() == 3
  with pytest.raises(PairRecordError, match="= 17 > max_length 16"):
    _source([record], max_length=16)


def test_records_with_different_image_counts_are_refused(tmp_path):
  _png(tmp_path, "a.png")
  records = [{"image": "a.png", "question": QUESTION, "chosen": "red", "rejected": "blue"},
             {"question": QUESTION, "chosen": "red", "rejected": "blue"}]
  with pytest.raises(ValueError, match="different numbers of images"):
    _source(records, image_root=tmp_path)


def test_the_source_batches_through_build_batches(tmp_path):
  _png(tmp_path, "a.png")
  colours = ["red", "green", "blue"]
  records = [{"image": "a.png", "question": QUESTION, "chosen": f"{c} square", "rejected": f"{c} circle"}
             for c in colours for _ in range(2)]
  source = _source(records, image_root=tmp_path)
  batches = list(build_batches(source, global_batch_size=4, seed=0, num_epochs=1, process_index=0,
                               process_count=1))
  assert len(batches) == 1
  batch = batches[0]
  for side in ("chosen", "rejected"):
    assert batch[f"{side}_ids"].shape == (4, 24) and batch[f"{side}_ids"].dtype == np.int32
    assert batch[f"{side}_mask"].shape == (4, 24)
    np.testing.assert_array_equal(batch[f"{side}_mask"].sum(axis=1), [3, 3, 3, 3])
  assert batch["pixels"].shape == (4, 1, TILE, TILE, 3)
  copy = pickle.loads(pickle.dumps(source))  # grain worker processes receive the source pickled
  np.testing.assert_array_equal(copy[5]["rejected_ids"], source[5]["rejected_ids"])


def _verify(prompt, answer):
  return answer.strip() == prompt["answer"]


def test_build_pairs_pairs_correct_with_incorrect_and_reports_the_rest(tmp_path):
  prompts = [{"image": "a.png", "question": "q0", "answer": "A"}, {"prompt": "q1", "answer": "A"},
             {"question": "q2", "answer": "A"}, {"question": "q3", "answer": "A"}]
  samples = [["A", "B", "A ", "C", ""], ["A", "A"], ["B", "C"], ["", " "]]
  records, report = build_pairs(prompts, samples, _verify, pairs_per_prompt=5, seed=0)
  assert report == PairBuildReport(prompts=4, pairs=2, prompts_with_pairs=1, all_correct=1, all_wrong=1,
                                   no_answers=1, duplicate_answers=2, empty_answers=3)
  assert sorted((r["chosen"], r["rejected"]) for r in records) == [("A", "B"), ("A", "C")]
  assert all(r["image"] == ["a.png"] and r["question"] == "q0" and r["answer"] == "A" for r in records)
  write_pairs(tmp_path / "built.jsonl", records)
  assert [r["rejected"] for r in read_pairs(tmp_path / "built.jsonl")] == [r["rejected"] for r in records]


def test_build_pairs_is_deterministic_under_a_seed_and_caps_pairs_per_prompt():
  prompts = [{"question": f"q{i}", "answer": "A"} for i in range(6)]
  samples = [["A", "A.", " A", "B", "C", "D", "E"]] * 6  # correct: A; incorrect: A., B, C, D, E
  verify = lambda p, a: a.strip() in ("A", "A.")  # noqa: E731
  first, report = build_pairs(prompts, samples, verify, pairs_per_prompt=3, seed=1)
  assert build_pairs(prompts, samples, verify, pairs_per_prompt=3, seed=1)[0] == first
  assert report.pairs == 18 and report.duplicate_answers == 6
  for i in range(6):
    pairs = [(r["chosen"], r["rejected"]) for r in first if r["question"] == f"q{i}"]
    assert len(pairs) == len(set(pairs)) == 3
    assert all(c in ("A", "A.") and r in ("B", "C", "D", "E") for c, r in pairs)
  others = [build_pairs(prompts, samples, verify, pairs_per_prompt=3, seed=s)[0] for s in (2, 3)]
  assert any(o != first for o in others)
  with pytest.raises(ValueError, match="got 6 prompts but answers for 5"):
    build_pairs(prompts, samples[:5], verify)
