"""MM-IFEval judge prompts, the strict parsers of judge replies, and judge failures kept apart from passes."""

import json

import pytest

from jaxlab.mmif.judges import (JudgeBackend, JudgeParseError, JudgeUnavailable, Verdict, compare_judge_prompt,
                                direct_judge_prompt, parse_compare_verdict, parse_direct_scores,
                                parse_perception_verdict, perception_judge_prompt, run_compare_judge,
                                run_direct_judge, run_perception_judge)

# ---------------------------------------------------------------- prompts


def test_direct_prompt_numbers_every_constraint_and_ends_with_the_summary_format():
  prompt = direct_judge_prompt(["Use a title.", "Answer in French."], "Le chat dort.")
  assert "Constraint_1: Use a title.\nConstraint_2: Answer in French." in prompt
  assert "Le chat dort." in prompt and "(2 in all)" in prompt
  assert prompt.rstrip().endswith("Summary: Score of constraint_1: x/1, Score of constraint_2: x/1")
  with pytest.raises(ValueError, match="one or more constraint texts"):
    direct_judge_prompt([], "x")
  with pytest.raises(ValueError, match="one or more constraint texts"):
    direct_judge_prompt("Use a title.", "x")  # A bare string is not a list of constraints.


def test_compare_and_perception_prompts_hold_their_inputs():
  prompt = compare_judge_prompt("Answer like a pirate.", "Arr, a cat!", "A cat.")
  assert all(s in prompt for s in ("Answer like a pirate.", "Arr, a cat!", "A cat.", "Summary: True"))
  assert prompt.index("Arr, a cat!") < prompt.index("A cat.")  # With the constraint first.
  prompt = perception_judge_prompt("What is written?", "It says OPEN 24h.", ["OPEN", "24h", "café"])
  assert 'Reference list: ["OPEN", "24h", "café"]' in prompt and "It says OPEN 24h." in prompt
  assert json.loads(prompt.split("Reference list: ")[1].split("\n")[0]) == ["OPEN", "24h", "café"]
  with pytest.raises(TypeError, match="sequence of strings"):
    perception_judge_prompt("q", "r", "OPEN")


# ---------------------------------------------------------------- direct scores

WELL_FORMED = """Judgement: The answer has a title ("Cats"), so constraint 1 is met. It is written in
English rather than French, so constraint 2 is not met. It ends with a summary sentence.
Summary: Score of constraint_1: 1/1, Score of constraint_2: 0/1, Score of constraint_3: 1/1."""


def test_direct_scores_from_a_well_formed_reply():
  assert parse_direct_scores(WELL_FORMED, 3) == (1, 0, 1)


@pytest.mark.parametrize("text", [
    "**Summary:** **Score of constraint_1: 1/1**, *Score of constraint_2:* 0/1",
    "Summary:\n  score   of\nCONSTRAINT_1 :  1 / 1 ,\n\n Score of Constraint_2:0/1",
    "Summary: Score of constraint 1: 1/1, Score of constraint-2: 0/1",
    "Summary: `Score of constraint_1: 1/1`, `Score of constraint_2: 0/1`",
])
def test_direct_scores_tolerate_markdown_case_and_whitespace(text):
  assert parse_direct_scores(text, 2) == (1, 0)


def test_direct_scores_repeated_in_rationale_and_summary_agree_or_the_summary_wins():
  same = "Score of constraint_1: 0/1 because ...\nSummary: Score of constraint_1: 0/1, Score of constraint_2: 1/1"
  assert parse_direct_scores(same, 2) == (0, 1)
  revised = ("Score of constraint_1: 0/1 at first sight. Score of constraint_2: 1/1.\n"
             "Summary: Score of constraint_1: 1/1, Score of constraint_2: 1/1")
  assert parse_direct_scores(revised, 2) == (1, 1)
  # A constraint the summary leaves out keeps its score from the explanation.
  partial = "Score of constraint_2: 0/1, it lacks a summary.\nSummary: Score of constraint_1: 1/1"
  assert parse_direct_scores(partial, 2) == (1, 0)
  # "summary" inside the explanation, after the last score, does not move the summary.
  assert parse_direct_scores("Summary: Score of constraint_1: 0/1 (no summary sentence).", 1) == (0,)


@pytest.mark.parametrize("text,message", [
    ("Summary: Score of constraint_1: 1/1", "no score for constraint_2"),
    ("Summary: Score of constraint_1: 2/1, Score of constraint_2: 1/1", "scored 2/1"),
    ("Summary: Score of constraint_1: 0.5/1, Score of constraint_2: 1/1", "scored 0.5/1"),
    ("Summary: Score of constraint_1: 1/2, Score of constraint_2: 1/1", "scored 1/2"),
    ("Summary: Score of constraint_1: 1/1, Score of constraint_2: 0/1, Score of constraint_2: 1/1", "both"),
    ("Score of constraint_1: 1/1, Score of constraint_1: 0/1, Score of constraint_2: 1/1", "both"),
    ("Summary: Score of constraint_1: 1/1, Score of constraint_2: 1/1, Score of constraint_3: 0/1", "only 2"),
    ("Summary: Score of constraint_0: 1/1, Score of constraint_1: 1/1", "only 2"),
    ("Summary: Score of constraint_1: x/1, Score of constraint_2: x/1", "no 'Score of"),
    ("All constraints are met.", "no 'Score of"),
    ("", "no 'Score of"),
])
def test_direct_scores_refuse_malformed_replies(text, message):
  with pytest.raises(JudgeParseError, match=message) as raised:
    parse_direct_scores(text, 2)
  assert raised.value.text == text
  assert isinstance(raised.value, ValueError)


# ---------------------------------------------------------------- compare verdict


@pytest.mark.parametrize("text,verdict", [
    ("Reasoning: the tone changed.\nSummary: True", True),
    ("Reasoning: the answers are nearly the same.\nSummary: False", False),
    ("Reasoning: ...\nsummary: false", False),
    ("Reasoning: ...\n**Summary:** **True**.", True),
    ('Reasoning: ...\nSummary: "False"', False),
    ("Reasoning: ...\nSummary:\n\nTrue", True),
    # The verdict is the first True/False after the LAST summary.
    ("The summary of step 1 is True, but ...\nSummary: False", False),
    ("Reasoning: style is followed.\nSummary: True\nThe other answer was plain; it is false that they match.", True),
])
def test_compare_verdicts(text, verdict):
  assert parse_compare_verdict(text) is verdict


@pytest.mark.parametrize("text,message", [
    ("Reasoning: the constraint is met. True.", "no 'Summary'"),
    ("Reasoning: True.\nSummary: the answer follows the constraint.", "no True or False"),
    ("Summary: True/False", "both True and False"),
    ('Reasoning: ...\nSummary: "True" / "False".', "both True and False"),
    ("Summary: False, though it is true the tone is formal.", "both True and False"),
    ("Summary: truly fine", "no True or False"),
])
def test_compare_verdicts_refuse_unparsable_replies(text, message):
  with pytest.raises(JudgeParseError, match=message):
    parse_compare_verdict(text)


# ---------------------------------------------------------------- perception verdict


@pytest.mark.parametrize("text,verdict", [
    ("right", True), ("wrong", False), ("Right", True), ("  WRONG.\n", False), ("'right'", True),
    ("**Wrong**", False), ('"right"!', True),
    ("The model answer covers every element, so it is right.", True),
    ("Verdict: wrong (the second element is missing)", False),
    ("right, right", True),
])
def test_perception_verdicts(text, verdict):
  assert parse_perception_verdict(text) is verdict


@pytest.mark.parametrize("text", [
    "not right, wrong",  # The released scorer's fallback would read this as right.
    "right or wrong",
    "correct",
    "",
    "It is not right.",
    "The answer isn't wrong.",
    "Not quite right",
    "alright",
])
def test_perception_verdicts_refuse_ambiguous_replies(text):
  with pytest.raises(JudgeParseError):
    parse_perception_verdict(text)


# ---------------------------------------------------------------- run_* with fake backends


class Recorder:
  """A fake backend that answers `reply` and keeps what it was asked."""

  def __init__(self, reply):
    self.reply, self.asked = reply, []

  def __call__(self, prompt, image):
    self.asked.append((prompt, image))
    if isinstance(self.reply, Exception):
      raise self.reply
    return self.reply


def test_run_direct_judge_sends_all_constraints_with_the_image_in_one_call():
  backend = Recorder("Judgement: ...\nSummary: Score of constraint_1: 1/1, Score of constraint_2: 0/1")
  assert isinstance(backend, JudgeBackend)
  verdict = run_direct_judge(backend, ["Use a title.", "Answer in French."], "A cat.", "img/cat.png")
  assert verdict == Verdict((1, 0), None, backend.reply) and verdict.ok
  [(prompt, image)] = backend.asked
  assert image == "img/cat.png" and "Constraint_2: Answer in French." in prompt and "A cat." in prompt


def test_run_compare_and_perception_judges_are_text_only():
  backend = Recorder("Reasoning: ...\nSummary: False")
  assert run_compare_judge(backend, "Be formal.", "Dear Sir, a cat.", "A cat.").scores == (0,)
  backend.reply = "Summary: True"
  assert run_compare_judge(backend, "Be formal.", "Dear Sir, a cat.", "A cat.").scores == (1,)
  backend.reply = "right"
  assert run_perception_judge(backend, "What is it?", "A cat.", ["cat"]).scores == (1,)
  assert all(image is None for _, image in backend.asked)
  assert "Be formal." in backend.asked[0][0] and '["cat"]' in backend.asked[2][0]


@pytest.mark.parametrize("run", [
    lambda b: run_direct_judge(b, ["Use a title."], "A cat.", None),
    lambda b: run_compare_judge(b, "Be formal.", "Dear Sir.", "Hi."),
    lambda b: run_perception_judge(b, "What is it?", "A cat.", ["cat"]),
])
def test_judge_failures_are_verdicts_without_scores_never_passes(run):
  unparsable = run(Recorder("I cannot decide. True, right or wrong, Score of constraint_1: 1/2"))
  assert unparsable.scores is None and unparsable.failure == "unparsable" and not unparsable.ok
  assert unparsable.raw.startswith("I cannot decide") and unparsable.detail
  unavailable = run(Recorder(JudgeUnavailable("judge at http://x did not answer after 3 attempt(s): timed out")))
  assert unavailable == Verdict(None, "unavailable", "", "judge at http://x did not answer after 3 attempt(s): "
                                                         "timed out")
  not_text = run(Recorder(None))
  assert not_text.scores is None and not_text.failure == "unparsable" and "NoneType" in not_text.detail


def test_caller_errors_are_not_swallowed():
  with pytest.raises(FileNotFoundError):
    run_direct_judge(Recorder(FileNotFoundError("judge image not found: x.png")), ["Use a title."], "A cat.", "x.png")
  with pytest.raises(ValueError, match="one or more constraint texts"):
    run_direct_judge(Recorder("Summary: Score of constraint_1: 1/1"), [], "A cat.", None)


def test_verdicts_are_consistent():
  with pytest.raises(ValueError, match="exactly when"):
    Verdict(None, None, "")
  with pytest.raises(ValueError, match="exactly when"):
    Verdict((1,), "unparsable", "")
  with pytest.raises(ValueError, match="failure must be"):
    Verdict(None, "timeout", "")
