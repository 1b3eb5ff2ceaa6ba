"""Process reward model pieces: the judgement chat's layout, step splitting, scoring, Best-of-N and majority vote."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.posttrain.prm import (balance_labels, best_of_n, judgement_probs, majority_vote, prm_length, prm_record,
                                  score_batch, solution_scores, split_steps)
from jaxlab.vlm.counting_task import counting_vocab, grade_solution

VOCAB = counting_vocab()

# The chat of the two steps "red two ; green zero", one image token per tile, written out by hand.
CHAT = ["<|im_start|>", "user", "\n", "<img>", "<IMG_CONTEXT>", "</img>", "\n",
        "How", "many", "shapes", "are", "there", "?", "\n", "red", "two", "<|im_end|>", "\n",
        "<|im_start|>", "assistant", "\n", "+", "<|im_end|>", "\n",
        "<|im_start|>", "user", "\n", "green", "zero", "<|im_end|>", "\n",
        "<|im_start|>", "assistant", "\n", "+", "<|im_end|>", "\n"]
SLOTS = (21, 34)  # Where the judgement tokens sit in CHAT.


def ids(text):
  return VOCAB.encode(text)


def test_the_chat_layout_matches_the_hand_written_one():
  steps = split_steps(VOCAB, ids("red two ; green zero <|im_end|> <pad>"))
  record = prm_record(VOCAB, steps, [True, False], tokens_per_tile=1, length=40, max_steps=3)
  chat = [VOCAB.ids[t] for t in CHAT]
  n = len(chat) - 1
  np.testing.assert_array_equal(record["input_ids"][:n], chat[:-1])
  assert np.all(record["input_ids"][n:] == VOCAB.pad_id) and record["input_ids"].shape == (40,)
  # Every judgement slot holds "+" as input, whatever the label.
  assert [VOCAB.tokens[record["input_ids"][s]] for s in SLOTS] == ["+", "+"]
  # The position before each slot predicts it: its target is the label; nothing else carries loss.
  np.testing.assert_array_equal(record["judge_positions"], [20, 33, 0])
  assert [VOCAB.tokens[record["targets"][p]] for p in (20, 33)] == ["+", "-"]
  assert np.flatnonzero(record["loss_mask"]).tolist() == [20, 33]
  others = np.setdiff1d(np.arange(n), [20, 33])
  np.testing.assert_array_equal(record["targets"][others], np.asarray(chat[1:])[others])
  np.testing.assert_array_equal(record["step_mask"], [1, 1, 0])
  np.testing.assert_array_equal(record["step_labels"], [1, 0, 0])


def test_unlabelled_chats_target_plus_and_specials_inside_steps_are_dropped():
  steps = split_steps(VOCAB, ids("red <IMG_CONTEXT> two ; <|im_start|> green zero"))
  assert [VOCAB.decode(s) for s in steps] == ["red two", "green zero"]
  record = prm_record(VOCAB, steps, tokens_per_tile=1, length=40, max_steps=2)
  assert np.sum(record["input_ids"] == VOCAB.image_token_id) == 1
  assert [VOCAB.tokens[record["targets"][p]] for p in record["judge_positions"]] == ["+", "+"]


@pytest.mark.parametrize("text", [
    "red two ; green zero ; blue one ; total three <|im_end|>", "red two ; ; total <|im_end|> blue", "red two ;",
    "; ;", "<|im_end|>", "", "<pad> <pad>", "<|im_start|> red", "total four ; total four ;",
])
def test_steps_are_split_as_the_grader_splits_them(text):
  counts = [2, 0, 1]
  grade = grade_solution(VOCAB, ids(text), counts)
  steps = split_steps(VOCAB, ids(text))
  assert len(steps) == len(grade.steps)


def test_steps_past_max_steps_are_left_out_and_the_length_bound_holds():
  length = prm_length(VOCAB, max_steps=3, max_step_tokens=8, tokens_per_tile=4)
  steps = split_steps(VOCAB, ids("red two two ; blue ; green one one ; total"))  # 8 ids between the steps
  record = prm_record(VOCAB, steps, [True, False, True, False], tokens_per_tile=4, length=length, max_steps=3)
  assert record["step_mask"].sum() == 3 and record["loss_mask"].sum() == 3
  with pytest.raises(ValueError, match="above length"):
    prm_record(VOCAB, steps, tokens_per_tile=4, length=length - 2, max_steps=4)
  with pytest.raises(ValueError, match="2 labels for 4 steps"):
    prm_record(VOCAB, steps, [True, False], tokens_per_tile=4, length=length, max_steps=3)


def _stub_logits(p_plus_bs, positions_bs, length=8, extra=None):
  """Logits whose softmax at positions_bs[b, s] gives P("+") = p_plus_bs[b, s] and the rest to "-" (or
  shared with the token `extra`)."""
  b, s = p_plus_bs.shape
  logits = np.full((b, length, len(VOCAB)), -1e9, np.float32)
  for i in range(b):
    for k in range(s):
      p = p_plus_bs[i, k]
      logits[i, positions_bs[i, k], VOCAB.ids["+"]] = np.log(p)
      logits[i, positions_bs[i, k], VOCAB.ids["-" if extra is None else extra]] = np.log(1 - p)
  return logits


def test_step_score_is_p_plus_over_the_whole_vocabulary_and_the_solution_score_its_mean():
  p = np.array([[0.9, 0.6, 0.3], [0.2, 0.5, 0.7], [0.4, 0.4, 0.4]], np.float32)
  positions = np.array([[1, 3, 5], [2, 4, 6], [0, 0, 0]], np.int32)
  mask = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]], np.float32)
  batch = {"input_ids": np.zeros((3, 8), np.int32), "judge_positions": positions, "step_mask": mask}
  step_probs, scores = score_batch(lambda params, b: jnp.asarray(_stub_logits(p, positions)), None, batch,
                                   VOCAB.ids["+"])
  np.testing.assert_allclose(step_probs, p * mask, atol=1e-6)
  np.testing.assert_allclose(scores, [(0.9 + 0.6 + 0.3) / 3, (0.2 + 0.5) / 2, 0.0], atol=1e-6)  # no steps: 0
  # Mass on a third token lowers P("+"): no renormalization over {"+", "-"}.
  logits = _stub_logits(np.full((1, 1), 0.5, np.float32), np.zeros((1, 1), np.int32), extra="red")
  logits[0, 0, VOCAB.ids["-"]] = np.log(0.5)
  np.testing.assert_allclose(judgement_probs(logits, np.zeros((1, 1), np.int32), VOCAB.ids["+"]), [[1 / 3]], atol=1e-6)
  np.testing.assert_allclose(solution_scores(jnp.ones((2, 2)), jnp.zeros((2, 2))), [0.0, 0.0])


def test_best_of_n_keeps_the_argmax_and_the_first_of_equals():
  assert best_of_n([0.1, 0.7, 0.3]) == 1
  assert best_of_n([0.2, 0.8, 0.8, 0.1]) == 1
  assert best_of_n([0.0, 0.0]) == 0
  with pytest.raises(ValueError):
    best_of_n([])


def test_majority_vote_breaks_ties_by_first_occurrence_and_ignores_missing_answers():
  assert majority_vote(["two", "three", "three", "two", "one"]) == "two"
  assert majority_vote(["one", "three", "two", "three"]) == "three"
  assert majority_vote([None, None, "four", "five"]) == "four"
  assert majority_vote([None, "two", None, None]) == "two"
  assert majority_vote([None, None]) is None


def test_balancing_drops_majority_judgements_to_the_ratio():
  labels = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 0]], np.float32)
  mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], np.float32)  # 8 "+" and 2 "-" on the mask
  kept = balance_labels(labels, mask, max_ratio=2.0, seed=0)
  assert np.all(kept <= mask)
  assert np.sum(kept * labels) == 4 and np.sum(kept * (1 - labels)) == 2
  np.testing.assert_array_equal(balance_labels(labels, mask, max_ratio=0.0, seed=0), mask)
  np.testing.assert_array_equal(balance_labels(labels, mask, max_ratio=5.0, seed=0), mask)
  np.testing.assert_array_equal(balance_labels(np.ones_like(labels), mask, max_ratio=1.0, seed=0), mask)
