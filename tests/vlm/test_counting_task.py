"""The counting task: images hold the counted shapes, solutions grade step by step, pairs tokenize alike."""

import numpy as np
import pytest

from jaxlab.posttrain import ChatPairTokenizer
from jaxlab.vlm.counting_task import QUESTION, CountingSource, grade_solution, solution_text
from jaxlab.vlm.shapes_task import unnormalize


def test_records_are_deterministic_and_the_image_shows_the_counts():
  source = CountingSource(56, tokens_per_tile=4, max_shapes=5, seed=3, length=64)
  again = CountingSource(56, tokens_per_tile=4, max_shapes=5, seed=3, length=64)
  totals = []
  for i in range(64):
    record = source[i]
    np.testing.assert_array_equal(record["input_ids"], again[i]["input_ids"])
    image = unnormalize(record["pixels"][0])
    pure = {c: np.all(np.isclose(image, rgb, atol=1e-3), axis=-1) for c, rgb in
            enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1)))}
    for colour, count in enumerate(record["counts"]):
      assert pure[colour].any() == (count > 0)  # a colour is painted iff it is counted
    totals.append(int(record["counts"].sum()))
    expected = source.answer_ids(record["counts"])
    assert list(record["targets"][source.prompt_length - 1:]) == expected
    assert record["loss_mask"].sum() == len(expected)
  assert min(totals) == 1 and max(totals) == 5


def test_grading_marks_each_step_and_the_final_total():
  source = CountingSource(56, length=1)
  vocab = source.vocab
  counts = [2, 0, 1]
  assert solution_text(counts) == "red two ; green zero ; blue one ; total three"
  right = grade_solution(vocab, source.answer_ids(counts) + [vocab.pad_id] * 3, counts)
  assert right.step_correct == (True,) * 4 and right.final_correct and right.answer == "three"
  wrong_step = grade_solution(vocab, vocab.encode("red one ; green zero ; blue one ; total three"), counts)
  assert wrong_step.step_correct == (False, True, True, True) and wrong_step.final_correct
  wrong_total = grade_solution(vocab, vocab.encode("red two ; green zero ; blue one ; total two"), counts)
  assert wrong_total.step_correct[-1] is False and not wrong_total.final_correct
  garbled = grade_solution(vocab, vocab.encode("red two ; ; total"), counts)
  assert garbled.answer is None and not garbled.final_correct
  with pytest.raises(ValueError, match="total below"):
    solution_text([3, 3, 3])


def test_a_pair_prompt_tokenizes_exactly_as_the_task_prompt():
  source = CountingSource(56, tokens_per_tile=4, length=1)
  vocab = source.vocab
  tokenizer = ChatPairTokenizer(vocab.encode, eos_id=vocab.im_end_id, pad_id=vocab.pad_id, tokens_per_tile=4)
  assert tokenizer.encode_prompt(QUESTION, 1) == source.prompt_ids


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="max_shapes"):
    CountingSource(56, max_shapes=7)
  with pytest.raises(ValueError, match="max_fraction"):
    CountingSource(56, max_fraction=0.8)
