"""Visual-ARFT step format and rewards on constructed cases."""

import numpy as np
import pytest

from jaxlab.agent import (
    answer_f1,
    format_information,
    format_reward,
    normalize_answer,
    parse_problem_labels,
    parse_step,
    problem_reward,
    search_reward,
    step_reward,
)
from jaxlab.agent.rewards import HashedTrigramEncoder


def test_parse_each_action_and_the_code_fence():
  step = parse_step("<think>need the year</think>\n<search>Eiffel tower opening year</search>")
  assert (step.ok, step.action, step.content, step.think) == (True, "search", "Eiffel tower opening year",
                                                              "need the year")
  code = parse_step("<think>rotate</think><code>```python\nimport cv2\nx = 1\n```</code>")
  assert code.action == "code" and code.content == "import cv2\nx = 1"
  assert parse_step(b"<think>t</think> <answer>42</answer>").content == "42"


@pytest.mark.parametrize("text, message", [
    ("<think>a</think><answer>1</answer><answer>2</answer>", "<answer> appears 2 times"),
    ("<think>a</think><think>b</think><answer>1</answer>", "<think> appears 2 times"),
    ("<think>a</think><answer>cut mid", "never closed"),
    ("<answer>1</answer>", "must start with <think>"),
    ("<think>only thinking</think>", "no action"),
    ("<think>a</think><search>q</search><answer>1</answer>", "more than one action"),
    ("<think>a</think><answer>1</answer> trailing words", "outside"),
    ("<think>a <answer>1</answer></think>", "nested"),
    (b"<think>\xff\xfe</think>", "not UTF-8"),
])
def test_malformed_turns_are_errors_not_exceptions(text, message):
  step = parse_step(text)
  assert not step.ok and message in step.error and step.action == ""


def test_problem_labels_parse_as_sets_and_reject_unknown_labels():
  assert parse_problem_labels("{'rotation90', 'dark'}") == {"rotation90", "dark"}
  assert parse_problem_labels("['blur']") == {"blur"}
  assert parse_problem_labels("noise, crop") == {"noise", "crop"}
  assert parse_problem_labels("{'sepia'}") is None and parse_problem_labels("") is None


def test_squad_normalization_and_unique_token_f1():
  assert normalize_answer("The  Eiffel, Tower!") == "eiffel tower"
  assert answer_f1("Eiffel Tower", "the eiffel tower") == 1.0
  # Unique-token overlap over full counts: "paris paris" vs "paris": same = 1, p = 1/2, r = 1.
  assert answer_f1("paris paris", "paris") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
  assert answer_f1("1889", "1887") == 0.0 and answer_f1("", "x") == 0.0 and answer_f1("a", "the") == 0.0


def test_problem_reward_with_the_rotation_partial_credit():
  assert problem_reward("{'rotation90', 'dark'}", "{'dark', 'rotation90'}") == 1.0
  assert problem_reward("{'rotation90'}", "{'rotation90', 'dark'}") == 0.5
  assert problem_reward("{'dark'}", "{'rotation90', 'dark'}") == 0.0  # only the rotation earns half
  assert problem_reward("{'rotation180'}", "{'rotation90', 'dark'}") == 0.0
  assert problem_reward("{'rotation90'}", "{'rotation90', 'dark', 'blur'}") == 0.0  # two labels only
  assert problem_reward("garbage", "{'blur'}") == 0.0


def test_search_reward_is_a_cosine_zeroed_below_half():
  assert search_reward("Eiffel tower opening year", "opening year of the Eiffel tower") > 0.5
  assert search_reward("Eiffel tower opening year", "boiling point of mercury") == 0.0
  orthogonal = lambda texts: np.eye(2)[: len(texts)]
  assert search_reward("a", "b", orthogonal) == 0.0
  aligned = lambda texts: np.array([[1.0, 1.0], [1.0, 0.0]])  # cosine 0.707
  assert search_reward("a", "b", aligned) == pytest.approx(2 ** -0.5)
  vectors = HashedTrigramEncoder(64)(["x", "y"])
  assert vectors.shape == (2, 64)


def test_step_reward_sums_format_and_accuracy_by_the_gold_action():
  gold = "<think>g</think><answer>the Eiffel Tower</answer>"
  assert step_reward("<think>t</think><answer>Eiffel Tower</answer>", gold) == {
      "format": 1.0, "accuracy": 1.0, "total": 2.0}
  # Duplicated tags: format 0, but the answer is still read.
  dup = step_reward("<think>t</think><think>u</think><answer>Eiffel Tower</answer>", gold)
  assert dup["format"] == 0.0 and dup["accuracy"] == 1.0
  # The wrong action: both 0.
  assert step_reward("<think>t</think><search>Eiffel Tower</search>", gold)["total"] == 0.0
  code_gold = "<think>g</think><code>```python\npass\n```</code>"
  assert step_reward("<think>t</think><code>```python\nx=1\n```</code>", code_gold, code_reward=0.9)["total"] == 1.9
  problem_gold = "<think>g</think><problem>{'rotation180', 'noise'}</problem>"
  assert step_reward("<think>t</think><problem>{'rotation180'}</problem>", problem_gold)["accuracy"] == 0.5
  assert format_reward("<think>t</think><answer>x</answer>", "search") == 0.0
  with pytest.raises(ValueError, match="gold step is malformed"):
    step_reward("<think>t</think><answer>x</answer>", "<answer>x</answer>")


def test_information_block_numbers_results():
  assert format_information(["first  result\n", "second"]) == (
      "<information> 1. Content: first result 2. Content: second </information>")
