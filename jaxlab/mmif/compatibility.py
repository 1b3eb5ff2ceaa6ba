"""Compatibility of an item's rule constraints: find the ones no response can satisfy together.

MM-IFEngine asks a second LLM pass to drop contradictory constraints; for rule-checked constraints
the contradictions are arithmetic and are found here exactly:

- two bounds on the same count that do not overlap (paragraphs, sentences, words, a keyword's count);
- counts that cannot nest: every paragraph holds at least one sentence and every sentence one word,
  so sentences >= paragraphs and words >= sentences; per-paragraph bounds times the paragraph count
  must meet the whole-response bounds (sentences and words);
- a required text (prefix, suffix, keyword) that holds a forbidden substring, a forbidden keyword, or
  a digit when numerals are forbidden;
- two different required starts (or ends) where neither extends the other: the response's, its
  paragraphs' and its sentences' (the first paragraph and sentence start the response, the last end it);
- a number-precision constraint together with "no Arabic numerals" (the precision rule would only
  hold vacuously: the constraints ask for opposite things).

`conflicts(constraints)` lists each problem in words; an empty list means no contradiction was found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif.records import Constraint
from jaxlab.mmif.taxonomy import RULE

_UNBOUNDED = (0, float("inf"))
_STARTS = (w.BEGINS, w.PARAGRAPH_BEGINS, "check_whether_each_sentence_begin_with_certain_substring")
_ENDS = (w.ENDS, w.SENTENCE_ENDS, "check_whether_each_paragraph_end_with_certain_substring")


class _Bounds:
  """Intersected [lo, hi] bounds per quantity, remembering which constraint set them."""

  def __init__(self):
    self.bounds: dict[str, tuple[float, float]] = {}
    self.problems: list[str] = []

  def add(self, quantity: str, lo: float, hi: float, source: str) -> None:
    old_lo, old_hi = self.bounds.get(quantity, _UNBOUNDED)
    new = (max(old_lo, lo), min(old_hi, hi))
    if new[0] > new[1]:
      self.problems.append(f"{source} needs {quantity} in [{lo}, {hi}], which no earlier bound "
                           f"[{old_lo}, {old_hi}] allows")
    self.bounds[quantity] = new

  def get(self, quantity: str) -> tuple[float, float]:
    return self.bounds.get(quantity, _UNBOUNDED)


def _params(func: dict) -> list:
  params = func.get("params", [])
  return list(params.values()) if isinstance(params, dict) else list(params)


def conflicts(constraints: Sequence[Constraint]) -> list[str]:
  """Problems that make the rule constraints of one item unsatisfiable together (module docstring)."""
  b = _Bounds()
  required: list[tuple[str, str]] = []  # (text that must appear, source)
  forbidden_substrings: list[tuple[str, str]] = []
  forbidden_words: list[tuple[str, str]] = []
  prefixes: list[tuple[str, str]] = []
  suffixes: list[tuple[str, str]] = []
  no_numerals = precision = None
  for c in constraints:
    if c.method != RULE:
      continue
    for f in c.verify_funcs:
      name, p, src = f["func"], _params(f), f"{c.key} ({c.value!r})"
      if name == w.PARAGRAPHS:
        b.add("paragraphs", p[0], p[1], src)
      elif name == w.SENTENCES:
        b.add("sentences", p[0], p[1], src)
      elif name == w.WORDS:
        b.add("words", p[0], p[1], src)
      elif name == w.SENTENCES_PER_PARAGRAPH:
        b.add("sentences per paragraph", p[0], p[1], src)
      elif name == w.WORDS_PER_PARAGRAPH:
        b.add("words per paragraph", p[0], p[1], src)
      elif name in (w.KEYWORD_EACH, w.KEYWORD_EACH.replace("metioned", "mentioned")):
        for keyword in p[0]:
          b.add(f"mentions of {keyword.lower()!r}", p[1], p[2], src)
          (forbidden_words if p[2] == 0 else required).append((keyword, src))
      elif name in (w.NOT_CONTAIN, "check_whether_whole_response_not_contain_certain_substring"):
        for s in (p[0] if isinstance(p[0], list) else [p[0]]):
          forbidden_substrings.append((s, src))
      elif name in _STARTS or name in _ENDS:
        # The first sentence and paragraph start the response; the last ones end it.
        (prefixes if name in _STARTS else suffixes).append((p[0], src))
        required.append((p[0], src))
      elif name == w.NO_NUMERALS:
        no_numerals = src
      elif name in (w.PERCENT_PRECISION, w.NUMBER_PRECISION):
        precision = src
  problems = list(b.problems)
  problems += _nesting(b)
  for text, src in required:
    problems += [f"{src} requires {text!r}, which holds the forbidden {s!r} ({fsrc})"
                 for s, fsrc in forbidden_substrings if s in text]
    problems += [f"{src} requires {text!r}, which holds the forbidden word {word!r} ({fsrc})"
                 for word, fsrc in forbidden_words if fsrc != src and _has_word(text, word)]
    if no_numerals and re.search(r"[0-9０-９]", text):
      problems.append(f"{src} requires {text!r}, which holds a digit, but {no_numerals} forbids numerals")
  for kind, items in (("prefix", prefixes), ("suffix", suffixes)):
    for i, (a, src_a) in enumerate(items):
      for other, src_b in items[i + 1:]:
        compatible = a.startswith(other) or other.startswith(a) if kind == "prefix" else (
            a.endswith(other) or other.endswith(a))
        if not compatible:
          problems.append(f"two different required {kind}es: {a!r} ({src_a}) and {other!r} ({src_b})")
  if no_numerals and precision:
    problems.append(f"{precision} sets the precision of numbers that {no_numerals} forbids")
  return problems


def _has_word(text: str, word: str) -> bool:
  return re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text.lower()) is not None


def _nesting(b: _Bounds) -> list[str]:
  """Paragraphs <= sentences <= words, and per-paragraph bounds times the paragraph count."""
  problems = []
  p_lo, p_hi = b.get("paragraphs")
  s_lo, s_hi = b.get("sentences")
  w_lo, w_hi = b.get("words")
  sp_lo, sp_hi = b.get("sentences per paragraph")
  wp_lo, wp_hi = b.get("words per paragraph")
  p_lo = max(p_lo, 1)  # A response has at least one paragraph.
  if s_hi < p_lo:
    problems.append(f"at most {s_hi} sentences cannot fill at least {p_lo} paragraphs")
  if w_hi < max(s_lo, 1):
    problems.append(f"at most {w_hi} words cannot make at least {max(s_lo, 1)} sentences")
  if p_lo * sp_lo > s_hi or p_hi * sp_hi < s_lo:
    problems.append(f"{p_lo}-{p_hi} paragraphs of {sp_lo}-{sp_hi} sentences cannot make {s_lo}-{s_hi} sentences")
  if p_lo * wp_lo > w_hi or p_hi * wp_hi < w_lo:
    problems.append(f"{p_lo}-{p_hi} paragraphs of {wp_lo}-{wp_hi} words cannot make {w_lo}-{w_hi} words")
  if sp_lo > wp_hi:
    problems.append(f"{sp_lo} sentences per paragraph cannot fit in {wp_hi} words per paragraph")
  return problems
