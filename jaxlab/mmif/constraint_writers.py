"""Constraint writing by templates: a sub-type and a random generator -> a concrete `Constraint`.

MM-IFEngine has an LLM write each constraint for a sampled sub-type; here every one of the 32
sub-types has templates whose parameters (counts, bounds, keywords, phrases) are drawn at random,
and rule-checkable ones get the `verify_funcs` that check them (`jaxlab.mmif.verifiers` names).
`write_constraint` takes keyword candidates from the caller (words about the image), so mention
constraints can be met by a faithful answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.mmif.records import Constraint
from jaxlab.mmif.taxonomy import COMPARE, DIRECT, RULE, sub_type

# Verifier names (the released MM-IFEval spelling, "metioned" included).
PARAGRAPHS = "check_whether_response_paragraph_number_in_range"
SENTENCES = "check_whether_response_sentence_number_in_range"
SENTENCES_PER_PARAGRAPH = "check_whether_each_paragraph_sentence_number_in_range"
WORDS = "check_whether_response_word_count_in_range"
WORDS_PER_PARAGRAPH = "check_whether_each_paragraph_word_count_in_range"
NOT_CONTAIN = "check_whether_whole_response_not_contain_certain_substrings"
BEGINS = "check_whether_whole_response_begin_with_certain_substring"
ENDS = "check_whether_whole_response_end_with_certain_substring"
PARAGRAPH_BEGINS = "check_whether_each_paragraph_begin_with_certain_substring"
SENTENCE_ENDS = "check_whether_each_sentence_end_with_certain_substring"
KEYWORD_EACH = "check_whether_each_keyword_in_list_metioned_in_range"
KEYWORD_TOTAL = "check_whether_total_keyword_in_list_metioned_in_range"
PERCENT_PRECISION = "check_percentage_number_precision_in_response"
NUMBER_PRECISION = "check_number_precision_in_response"
NO_NUMERALS = "check_whether_has_no_arabic_number_in_response"
MANY = 10_000  # "at least" bounds: an upper bound no answer reaches.

PREFIXES = ("Look closely.", "In short,", "Here is what I see:", "Note:", "To begin,")
SUFFIXES = ("That is all.", "Thank you for reading.", "The end.", "Hope this helps!", "Enjoy!")
PARAGRAPH_OPENERS = ("Next,", "Also,", "Then,", "*")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _rule(key: str, value: str, *funcs: tuple[str, list]) -> Constraint:
  return Constraint(key, value, RULE, tuple({"func": f, "params": list(p)} for f, p in funcs))


def _quote(word: str) -> str:
  return f'"{word}"'


def _times(n: int) -> str:
  return {1: "once", 2: "twice"}.get(n, f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} times")


def _paragraph_limit(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  if rng.random() < 0.7:
    n = int(rng.integers(1, 4))
    text = "Write a single paragraph." if n == 1 else f"Write exactly {n} paragraphs separated by blank lines."
    return _rule("paragraph_limit", text, (PARAGRAPHS, [n, n]))
  lo = int(rng.integers(1, 3))
  hi = lo + int(rng.integers(0, 3))
  if lo == hi:
    text = f"Each paragraph must have exactly {lo} sentence{'' if lo == 1 else 's'}."
  else:
    text = f"Each paragraph must have {lo} to {hi} sentences."
  return _rule("paragraph_limit", text, (SENTENCES_PER_PARAGRAPH, [lo, hi]))


def _sentence_limit(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  form = int(rng.integers(3))
  if form == 0:
    n = int(rng.integers(2, 7))
    return _rule("sentence_limit", f"Use exactly {n} sentences.", (SENTENCES, [n, n]))
  if form == 1:
    hi = int(rng.integers(2, 6))
    return _rule("sentence_limit", f"Use no more than {hi} sentences.", (SENTENCES, [1, hi]))
  lo = int(rng.integers(2, 5))
  hi = lo + int(rng.integers(1, 4))
  return _rule("sentence_limit", f"Use between {lo} and {hi} sentences.", (SENTENCES, [lo, hi]))


def _word_limit(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  form = int(rng.integers(3))
  if form == 0:
    hi = int(rng.choice([20, 30, 40, 50]))
    return _rule("word_limit", f"Keep the answer under {hi} words.", (WORDS, [1, hi - 1]))
  if form == 1:
    lo = int(rng.choice([15, 25, 35]))
    return _rule("word_limit", f"Write at least {lo} words.", (WORDS, [lo, MANY]))
  lo = int(rng.choice([10, 20, 30]))
  return _rule("word_limit", f"Write between {lo} and {lo + 20} words.", (WORDS, [lo, lo + 20]))


def _prefix_suffix(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  form = int(rng.integers(4))
  if form == 0:
    prefix = str(rng.choice(PREFIXES))
    return _rule("prefix_suffix", f"Begin your answer with {_quote(prefix)}", (BEGINS, [prefix]))
  if form == 1:
    suffix = str(rng.choice(SUFFIXES))
    return _rule("prefix_suffix", f"End your answer with {_quote(suffix)}", (ENDS, [suffix]))
  if form == 2:
    opener = str(rng.choice(PARAGRAPH_OPENERS))
    return _rule("prefix_suffix", f"Start every paragraph with {_quote(opener)}", (PARAGRAPH_BEGINS, [opener]))
  return _rule("prefix_suffix", "End every sentence with an exclamation mark.", (SENTENCE_ENDS, ["!"]))


def _punctuation(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  mark, name = [(",", "commas"), ("!", "exclamation marks"), (";", "semicolons"), (":", "colons")][int(rng.integers(4))]
  return _rule("punctuation", f"Do not use any {name}.", (NOT_CONTAIN, [[mark]]))


def _pick_keywords(rng: np.random.Generator, keywords: Sequence[str], n: int) -> list[str]:
  if len(keywords) < n:
    raise ValueError(f"a keyword constraint needs {n} keyword candidates, got {list(keywords)}")
  return [str(k) for k in rng.choice(np.asarray(keywords, dtype=object), size=n, replace=False)]


def _mention(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  n = 1 if len(keywords) < 2 or rng.random() < 0.6 else 2
  words = _pick_keywords(rng, keywords, n)
  text = (f"Mention {_quote(words[0])} at least once." if n == 1
          else f"Mention both {_quote(words[0])} and {_quote(words[1])}.")
  return _rule("mention", text, (KEYWORD_EACH, [words, 1, MANY]))


def _multiple_mention(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  word = _pick_keywords(rng, keywords, 1)[0]
  times = int(rng.integers(2, 4))
  return _rule("multiple_mention", f"Use the word {_quote(word)} exactly {_times(times)}.",
               (KEYWORD_EACH, [[word], times, times]))


def _not_mention(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  word = _pick_keywords(rng, keywords, 1)[0]
  return _rule("not_mention", f"Do not use the word {_quote(word)}.", (KEYWORD_EACH, [[word], 0, 0]))


def _precision(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  k = int(rng.integers(0, 3))
  if rng.random() < 0.5:
    text = ("Write every percentage as a whole number." if k == 0
            else f"Give every percentage with exactly {k} decimal places.")
    return _rule("precision", f"Include at least one percentage. {text}", (PERCENT_PRECISION, [k]))
  text = "Write every number without decimals." if k == 0 else f"Write every number with exactly {k} decimal places."
  return _rule("precision", text, (NUMBER_PRECISION, [k]))


def _scientific(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  k = int(rng.integers(1, 3))
  example = f"{3:.{k}f}e2"
  return _rule("scientific_notation", f"Write numbers in scientific notation with {k} decimal places in the mantissa, "
               f"like {example}.", (NUMBER_PRECISION, [k]))


def _no_numerals(rng: np.random.Generator, keywords: Sequence[str]) -> Constraint:
  return _rule("not_mention", "Do not use any Arabic numerals; spell numbers out.", (NO_NUMERALS, []))


RULE_WRITERS: dict[str, Callable[[np.random.Generator, Sequence[str]], Constraint]] = {
    "paragraph_limit": _paragraph_limit,
    "sentence_limit": _sentence_limit,
    "word_limit": _word_limit,
    "prefix_suffix": _prefix_suffix,
    "punctuation": _punctuation,
    "mention": _mention,
    "multiple_mention": _multiple_mention,
    "not_mention": _not_mention,
    "no_numerals": _no_numerals,
    "precision": _precision,
    "scientific_notation": _scientific,
}
# "no_numerals" is a second writer for the not_mention sub-type (the key its constraint carries).

JUDGED_TEMPLATES: dict[str, tuple[str, ...]] = {
    "rhetoric": ("Use at least one metaphor.", "Use parallel sentence structure somewhere.", "Ask a rhetorical question."),
    "logical_relation": ("Explain one cause and its effect.", "Contrast two things you see."),
    "natural_language": ("Answer in French.", "Answer in Spanish.", "Answer in German."),
    "part_of_speech": ("Use at least three adjectives.", "Avoid adverbs."),
    "sentence_structure": ("Write every sentence as a question.", "Use only simple sentences."),
    "tense": ("Write in the past tense.", "Write in the future tense."),
    "highlight": ("Put the most important phrase in bold.", "Wrap the key idea in double quotes."),
    "title": ("Give your answer a title in double angle brackets, like <<title>>.",),
    "case": ("Write the whole answer in lowercase letters.", "Write the first sentence in capital letters."),
    "unstrict_format": ("Write the answer as a short letter.", "Write it as a dialogue between two people."),
    "strict_format": ("Answer in JSON with the keys \"summary\" and \"details\".", "Answer as a Markdown table."),
    "number_and_list": ("Present the main points as a numbered list.", "Use a bulleted list of three items."),
    "wrap_up": ("End with a one-sentence summary.", "Finish with a conclusion."),
    "first_letter": ("Start each sentence with a different letter.", "Make the sentences' first letters spell a word."),
    "style": ("Write in the style of a news report.", "Write in a poetic style.", "Write like a fairy tale."),
    "role_imitation": ("Answer as a museum guide.", "Answer as a detective.", "Answer as a teacher."),
    "tone": ("Use a humorous tone.", "Use a formal tone.", "Use an enthusiastic tone."),
    "target_audience": ("Write for young children.", "Write for experts.", "Write for a social media audience."),
    "situation": ("Answer as if describing the picture over the phone.", "Answer as if giving a tour."),
    "perspective": ("Write in the first person.", "Write in the second person."),
    "prior_condition": ("If the picture contains a person, describe them first.",
                        "If there is text in the image, quote it first."),
    "keyword_variation": ("Use three different words for the main object.",),
}

# Judged sub-types, and which of "mention" / "multiple_mention" are judged when written without a literal keyword.
JUDGED_FALLBACK: dict[str, tuple[str, ...]] = {
    "mention": ("Mention the main colour you see.",),
    "multiple_mention": ("Mention the main object at least twice.",),
}


def write_constraint(key: str, rng: np.random.Generator, keywords: Sequence[str] = ()) -> Constraint:
  """A concrete constraint of sub-type (or rule writer) `key`: rule-checked where a rule writer
  exists and has what it needs (keyword writers need candidates), otherwise judged by the sub-type's
  judge method with a template text."""
  if key in RULE_WRITERS and (key not in ("mention", "multiple_mention", "not_mention") or keywords):
    return RULE_WRITERS[key](rng, keywords)
  s = sub_type(key)
  templates = JUDGED_TEMPLATES.get(key) or JUDGED_FALLBACK.get(key)
  if templates is None:
    raise ValueError(f"sub-type {key!r} is rule-only and its writer needs keyword candidates")
  method = next(m for m in s.methods if m in (DIRECT, COMPARE))
  return Constraint(key, str(rng.choice(templates)), method)
