"""Contradictions between rule constraints, and constraint integration that rejects them."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif.compatibility import conflicts
from jaxlab.mmif.engine import IntegrationReport, integrate_constraints, writer_names
from jaxlab.mmif.records import Constraint
from jaxlab.mmif.taxonomy import COMPARE, DIRECT, RULE
from jaxlab.mmif.tasks import ImageRecord, Task


def rule(func: str, *params, key: str = "k") -> Constraint:
  return Constraint(key, f"{func}{list(params)}", RULE, ({"func": func, "params": list(params)},))


def paragraphs(lo, hi):
  return rule(w.PARAGRAPHS, lo, hi, key="paragraph_limit")


def sentences(lo, hi):
  return rule(w.SENTENCES, lo, hi, key="sentence_limit")


def words(lo, hi):
  return rule(w.WORDS, lo, hi, key="word_limit")


def per_paragraph(lo, hi):
  return rule(w.SENTENCES_PER_PARAGRAPH, lo, hi, key="paragraph_limit")


def mention(word, lo=1, hi=w.MANY):
  return rule(w.KEYWORD_EACH, [word], lo, hi, key="mention")


NO_NUMERALS = rule(w.NO_NUMERALS, key="not_mention")
TONE = Constraint("tone", "Use a formal tone.", COMPARE)

# ---------------------------------------------------------------- conflicts


@pytest.mark.parametrize("pair, phrase", [
    ((paragraphs(2, 2), paragraphs(3, 3)), "paragraphs in [3, 3]"),
    ((words(1, 3), sentences(5, 5)), "at most 3 words cannot make at least 5 sentences"),
    ((paragraphs(3, 3), per_paragraph(2, 3)), None),  # Completed with a sentence bound below.
    ((rule(w.BEGINS, "In short,"), rule(w.NOT_CONTAIN, [","])), "holds the forbidden ','"),
    ((mention("red"), mention("red", 0, 0)), "mentions of 'red'"),
    ((rule(w.ENDS, "Call 911."), NO_NUMERALS), "holds a digit"),
    ((rule(w.BEGINS, "Note:"), rule(w.BEGINS, "To begin,")), "two different required prefixes"),
    ((rule(w.NUMBER_PRECISION, 2), NO_NUMERALS), "sets the precision of numbers"),
])
def test_each_contradiction_is_found(pair, phrase):
  if phrase is None:
    pair = pair + (sentences(1, 4),)
    phrase = "3-3 paragraphs of 2-3 sentences cannot make 1-4 sentences"
  problems = conflicts(list(pair))
  assert problems and any(phrase in p for p in problems), problems
  assert conflicts(list(reversed(pair)))  # Order does not matter.
  for c in pair:
    assert conflicts([c]) == []  # Each alone is fine.


def test_too_few_sentences_per_paragraph_for_total():
  problems = conflicts([paragraphs(1, 2), per_paragraph(1, 2), sentences(5, 6)])
  assert any("1-2 paragraphs of 1-2 sentences cannot make 5-6 sentences" in p for p in problems)


def test_fewer_sentences_than_paragraphs():
  problems = conflicts([paragraphs(3, 3), sentences(1, 2)])
  assert any("at most 2 sentences cannot fill at least 3 paragraphs" in p for p in problems)


def test_required_keyword_banned_as_word():
  problems = conflicts([rule(w.BEGINS, "The red one:"), mention("red", 0, 0)])
  assert any("holds the forbidden word 'red'" in p for p in problems)
  assert conflicts([rule(w.BEGINS, "The reddish one:"), mention("red", 0, 0)]) == []


def test_digit_only_conflicts_with_no_numerals():
  assert conflicts([rule(w.ENDS, "Call 911."), NO_NUMERALS]) != []
  assert conflicts([rule(w.ENDS, "Call nine one one."), NO_NUMERALS]) == []
  assert conflicts([rule(w.PERCENT_PRECISION, 1), NO_NUMERALS]) != []


def test_suffixes_conflict_unless_one_ends_the_other():
  assert conflicts([rule(w.ENDS, "The end."), rule(w.ENDS, "Enjoy!")]) != []
  assert conflicts([rule(w.ENDS, "The end."), rule(w.ENDS, "end.")]) == []


@pytest.mark.parametrize("constraints", [
    [paragraphs(2, 2), sentences(4, 6), words(1, 49)],
    [rule(w.BEGINS, "In short,"), rule(w.BEGINS, "In short, the picture")],
    [paragraphs(2, 2), per_paragraph(2, 3), sentences(4, 6)],
    [mention("red"), rule(w.KEYWORD_EACH, ["red"], 2, 2), mention("blue", 0, 0)],
    [rule(w.BEGINS, "Note:"), rule(w.NOT_CONTAIN, [","]), NO_NUMERALS],
    [rule(w.NUMBER_PRECISION, 2), words(20, 40)],
    [TONE, paragraphs(1, 1), Constraint("title", "Give it a title.", DIRECT)],
    [],
])
def test_compatible_sets_give_no_problems(constraints):
  assert conflicts(constraints) == []


def test_judged_constraints_are_ignored():
  assert conflicts([TONE, Constraint("tone", "Use a humorous tone.", COMPARE)]) == []


# ---------------------------------------------------------------- integrate_constraints


def task(keywords=("red", "circle", "picture", "calm")) -> Task:
  return Task(ImageRecord("a.png", "the circle", tuple(keywords)), "descriptive_analysis", "Describe the circle.")


def test_integration_never_returns_a_conflicting_set():
  report = IntegrationReport()
  names = writer_names()
  sizes = []
  for seed in range(150):
    chosen = integrate_constraints(task(), np.random.default_rng(seed), num_constraints=6, writers=names,
                                   report=report)
    assert conflicts(chosen) == [], chosen
    assert 1 <= len(chosen) <= 6
    assert len({c.key for c in chosen}) == len(chosen)
    sizes.append(len(chosen))
  assert report.rejected > 0
  assert report.drawn == sum(sizes) + report.rejected
  assert 1 <= len(report.examples) <= 5


def test_integration_is_seeded():
  a = integrate_constraints(task(), np.random.default_rng(3), num_constraints=4)
  b = integrate_constraints(task(), np.random.default_rng(3), num_constraints=4)
  assert a == b and len(a) == 4


def test_rejection_is_counted():
  fixed = {"paragraph_limit": paragraphs(3, 3), "sentence_limit": sentences(1, 2)}
  for seed in range(5):
    report = IntegrationReport()
    chosen = integrate_constraints(task(), np.random.default_rng(seed), num_constraints=2,
                                   writers=list(fixed), hook=lambda t, name, rng: fixed[name], report=report)
    assert len(chosen) == 1 and chosen[0] in fixed.values()
    assert (report.drawn, report.rejected) == (2, 1)
    assert len(report.examples) == 1 and "Describe the circle." in report.examples[0]


def test_keys_are_made_unique():
  fixed = Constraint("tone", "Use a formal tone.", COMPARE)
  chosen = integrate_constraints(task(), np.random.default_rng(0), num_constraints=3,
                                 writers=("rhetoric", "style", "tone"), hook=lambda t, name, rng: fixed)
  assert [c.key for c in chosen] == ["tone", "tone_2", "tone_3"]
  assert all(c.value == fixed.value and c.method == COMPARE for c in chosen)
  # Two rule writers sharing the "not_mention" key.
  chosen = integrate_constraints(task(), np.random.default_rng(0), num_constraints=2,
                                 writers=("not_mention", "no_numerals"))
  assert sorted(c.key for c in chosen) == ["not_mention", "not_mention_2"]


def test_hook_is_asked_first():
  calls = []

  def hook(t, name, rng):
    calls.append((t.instruction, name))
    return None

  chosen = integrate_constraints(task(), np.random.default_rng(1), num_constraints=3,
                                 writers=("paragraph_limit", "tone", "mention"), hook=hook)
  assert sorted(name for _, name in calls) == ["mention", "paragraph_limit", "tone"]
  assert all(instruction == "Describe the circle." for instruction, _ in calls)
  by_key = {c.key: c for c in chosen}
  assert set(by_key) == {"paragraph_limit", "tone", "mention"}
  assert by_key["tone"].method == COMPARE and by_key["mention"].method == RULE  # Templates, as without a hook.


def test_hook_constraint_is_used_only_where_given():
  mine = Constraint("style", "Write like a sailor.", COMPARE)
  chosen = integrate_constraints(task(), np.random.default_rng(2), num_constraints=2,
                                 writers=("style", "word_limit"),
                                 hook=lambda t, name, rng: mine if name == "style" else None)
  by_key = {c.key: c for c in chosen}
  assert by_key["style"] == mine
  assert by_key["word_limit"].method == RULE


def test_integration_stops_when_writers_run_out():
  chosen = integrate_constraints(task(), np.random.default_rng(0), num_constraints=5, writers=("tone", "tone"))
  assert len(chosen) == 1


def test_judged_fallback_without_keywords():
  chosen = integrate_constraints(task(keywords=()), np.random.default_rng(0), num_constraints=2,
                                 writers=("mention", "multiple_mention"))
  assert {c.method for c in chosen} == {DIRECT}


def test_paragraph_and_sentence_starts_and_ends_meet_the_response_ones():
  # The first paragraph starts the response; the last sentence ends it.
  assert conflicts([rule(w.BEGINS, "In short,", key="a"), rule(w.PARAGRAPH_BEGINS, "Next,", key="b")])
  assert conflicts([rule(w.ENDS, "That is all.", key="a"), rule(w.SENTENCE_ENDS, "!", key="b")])
  assert conflicts([rule(w.ENDS, "Enjoy!", key="a"), rule(w.SENTENCE_ENDS, "!", key="b")]) == []
  assert conflicts([rule(w.BEGINS, "Next, look.", key="a"), rule(w.PARAGRAPH_BEGINS, "Next,", key="b")]) == []
