"""The constraint taxonomy (classes, sub-types, judge methods) and the template constraint writers."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif import taxonomy as tx
from jaxlab.mmif.constraint_writers import JUDGED_FALLBACK, JUDGED_TEMPLATES, RULE_WRITERS, write_constraint
from jaxlab.mmif.records import Constraint
from jaxlab.mmif.verifiers import validate_verify_funcs

KEYWORDS = ("red", "circle", "picture", "calm", "bright")
SEEDS = range(60)

# ---------------------------------------------------------------- taxonomy


def test_six_classes_and_32_sub_types():
  assert len(tx.CLASSES) == 6
  assert len(tx.SUB_TYPES) == 32
  assert len(tx.BY_KEY) == 32  # Keys are unique.
  counts = collections.Counter(s.constraint_class for s in tx.SUB_TYPES)
  assert [counts[c] for c in tx.CLASSES] == [2, 14, 3, 2, 7, 4]
  assert [len(tx.sub_types_of(c)) for c in tx.CLASSES] == [2, 14, 3, 2, 7, 4]


@pytest.mark.parametrize("key, methods", [
    ("punctuation", (tx.RULE,)),
    ("style", (tx.COMPARE,)),
    ("tone", (tx.COMPARE,)),
    ("prefix_suffix", (tx.RULE,)),
    ("perspective", (tx.DIRECT,)),
    ("keyword_variation", (tx.DIRECT,)),
    ("mention", (tx.RULE, tx.DIRECT)),
])
def test_paper_methods(key, methods):
  s = tx.sub_type(key)
  assert s.methods == methods
  assert s.method == methods[0]


def test_every_sub_type_has_a_known_class_and_method():
  for s in tx.SUB_TYPES:
    assert s.constraint_class in tx.CLASSES
    assert s.methods and all(m in tx.JUDGE_METHODS for m in s.methods)
  assert set(tx.RULE_SUB_TYPES) == {s.key for s in tx.SUB_TYPES if tx.RULE in s.methods}
  assert "mention" in tx.RULE_SUB_TYPES and "style" not in tx.RULE_SUB_TYPES


def test_unknown_keys_name_the_known_ones():
  with pytest.raises(KeyError, match="unknown constraint sub-type 'colour'.*punctuation"):
    tx.sub_type("colour")
  with pytest.raises(KeyError, match="unknown constraint class 'maths'.*keyword"):
    tx.sub_types_of("maths")


# ---------------------------------------------------------------- writers


@pytest.mark.parametrize("key", [s.key for s in tx.SUB_TYPES])
def test_every_sub_type_is_writable(key):
  s = tx.sub_type(key)
  for seed in range(5):
    c = write_constraint(key, np.random.default_rng(seed), KEYWORDS)
    assert isinstance(c, Constraint)
    assert c.key == key and c.value.strip()
    assert c.method in s.methods
    if key in RULE_WRITERS:
      assert c.method == tx.RULE
    else:
      assert c.method in (tx.DIRECT, tx.COMPARE) and not c.verify_funcs
      assert c.value in JUDGED_TEMPLATES[key]


def _named(func: str, p: list, text: str) -> bool:
  """Whether `text` states the parameters `p` of verifier `func`."""
  if func == w.PARAGRAPHS:
    assert p[0] == p[1]
    return "single paragraph" in text if p[0] == 1 else f"exactly {p[0]} paragraphs" in text
  if func == w.SENTENCES_PER_PARAGRAPH:
    if p[0] == p[1]:
      return f"exactly {p[0]} sentence{'' if p[0] == 1 else 's'}." in text
    return f"{p[0]} to {p[1]} sentences" in text
  if func == w.SENTENCES:
    if p[0] == p[1]:
      return f"exactly {p[0]} sentences" in text
    if p[0] == 1:
      return f"no more than {p[1]} sentences" in text
    return f"between {p[0]} and {p[1]} sentences" in text
  if func == w.WORDS:
    if p[1] == w.MANY:
      return f"at least {p[0]} words" in text
    if p[0] == 1:
      return f"under {p[1] + 1} words" in text
    return f"between {p[0]} and {p[1]} words" in text
  if func in (w.BEGINS, w.ENDS, w.PARAGRAPH_BEGINS):
    return f'"{p[0]}"' in text
  if func == w.SENTENCE_ENDS:
    return p == ["!"] and "exclamation mark" in text
  if func == w.NOT_CONTAIN:
    names = {",": "commas", "!": "exclamation marks", ";": "semicolons", ":": "colons"}
    return len(p[0]) == 1 and f"any {names[p[0][0]]}" in text
  if func == w.KEYWORD_EACH:
    words, lo, hi = p
    quoted = all(f'"{k}"' in text for k in words)
    if (lo, hi) == (0, 0):
      return quoted and "Do not use" in text
    if lo == hi:
      return quoted and w._times(lo) in text and lo >= 2
    return quoted and lo == 1 and hi == w.MANY and "Mention" in text
  if func == w.PERCENT_PRECISION:
    return "percentage" in text and ("whole number" in text if p[0] == 0 else f"exactly {p[0]} decimal places" in text)
  if func == w.NUMBER_PRECISION:
    if "scientific notation" in text:
      return f"{p[0]} decimal places" in text and f"like {3:.{p[0]}f}e2" in text
    return "without decimals" in text if p[0] == 0 else f"exactly {p[0]} decimal places" in text
  if func == w.NO_NUMERALS:
    return p == [] and "Arabic numerals" in text
  raise AssertionError(f"a writer used an unexpected verifier {func}")


@pytest.mark.parametrize("name", sorted(RULE_WRITERS))
def test_rule_writers_give_valid_named_constraints(name):
  seen = set()
  for seed in SEEDS:
    c = RULE_WRITERS[name](np.random.default_rng(seed), KEYWORDS)
    assert c.method == tx.RULE and c.verify_funcs
    assert c.key == ("not_mention" if name == "no_numerals" else name)
    validate_verify_funcs(c.verify_funcs, f"{name} seed {seed}")
    for f in c.verify_funcs:
      assert _named(f["func"], f["params"], c.value), (name, c)
      for word in (f["params"][0] if f["func"] == w.KEYWORD_EACH else []):
        assert word in KEYWORDS
    seen.add(c.value)
  if name != "no_numerals":
    assert len(seen) > 1, f"{name} always writes the same constraint"


def test_writers_are_seeded():
  for name, writer in RULE_WRITERS.items():
    a = [writer(np.random.default_rng(s), KEYWORDS) for s in range(10)]
    b = [writer(np.random.default_rng(s), KEYWORDS) for s in range(10)]
    assert a == b, name


def test_draws_cover_each_writer_form():
  texts = {name: " ".join(RULE_WRITERS[name](np.random.default_rng(s), KEYWORDS).value for s in SEEDS)
           for name in RULE_WRITERS}
  assert "single paragraph" in texts["paragraph_limit"] and "Each paragraph" in texts["paragraph_limit"]
  for form in ("exactly", "no more than", "between"):
    assert form in texts["sentence_limit"]
  for form in ("under", "at least", "between"):
    assert form in texts["word_limit"]
  for form in ("Begin your answer", "End your answer", "Start every paragraph", "End every sentence"):
    assert form in texts["prefix_suffix"]
  for mark in ("commas", "exclamation marks", "semicolons", "colons"):
    assert mark in texts["punctuation"]
  assert "Mention both" in texts["mention"]
  assert "percentage" in texts["precision"] and "Write every number" in texts["precision"]


def test_word_limit_under_n_excludes_n():
  for seed in SEEDS:
    c = RULE_WRITERS["word_limit"](np.random.default_rng(seed), KEYWORDS)
    if "under" in c.value:
      hi = int(c.value.split("under ")[1].split()[0])
      assert c.verify_funcs[0]["params"] == [1, hi - 1]


@pytest.mark.parametrize("key", ["mention", "multiple_mention"])
def test_mention_without_keywords_is_judged(key):
  for seed in range(5):
    c = write_constraint(key, np.random.default_rng(seed))
    assert c.key == key
    assert c.method == tx.DIRECT and not c.verify_funcs
    assert c.value in JUDGED_FALLBACK[key]


def test_not_mention_without_keywords_raises():
  with pytest.raises(ValueError, match="'not_mention' is rule-only.*keyword candidates"):
    write_constraint("not_mention", np.random.default_rng(0))


@pytest.mark.parametrize("name", ["mention", "multiple_mention", "not_mention"])
def test_keyword_writers_called_without_candidates_raise(name):
  with pytest.raises(ValueError, match="keyword candidates, got \\[\\]"):
    RULE_WRITERS[name](np.random.default_rng(0), ())


def test_mention_with_one_candidate_uses_it():
  for seed in range(10):
    c = write_constraint("mention", np.random.default_rng(seed), ["kite"])
    assert c.method == tx.RULE
    assert c.verify_funcs[0]["params"] == [["kite"], 1, w.MANY]


def test_no_numerals_needs_no_keywords():
  c = write_constraint("no_numerals", np.random.default_rng(0))
  assert c.key == "not_mention" and c.method == tx.RULE
  assert c.verify_funcs == ({"func": w.NO_NUMERALS, "params": []},)


def test_unknown_writer_raises():
  with pytest.raises(KeyError, match="unknown constraint sub-type 'colour'"):
    write_constraint("colour", np.random.default_rng(0), KEYWORDS)
