"""MM-IFEval's rule verifiers: one function per rule, by the name its `verify_funcs` use.

Each verifier takes the response first, then the `params` of its `verify_funcs` entry (a list is
passed positionally, an object by keyword), and returns a bool. `VERIFIERS` maps every name,
aliases included, to its function; `validate_verify_funcs` checks a `verify_funcs` list before
anything runs; `verify` ANDs a list; `check_rule_constraint` does it for a `Constraint`. Text is cut
into paragraphs, sentences and words by `jaxlab.mmif.text`.

Conventions:
  - An empty or whitespace-only response fails every verifier: an empty answer follows no
    instruction. (The released code passes it on the "each paragraph/sentence ..." checks, the
    "not contain" checks, the precision checks and the no-numerals check, which hold vacuously.)
  - A number glued to letters is part of a word, not a number: "A4", "H2O", "COVID-19", "mp3",
    "x86_64", "3D", "5km", "1st" are skipped by the two precision checks. Letters of scripts written
    without spaces (Chinese, Japanese, Korean) do not glue: in "价格是3.50元" 3.50 is a number.
  - A number is digits with optional "," thousands groups ("1,234.56"), an optional decimal part
    and an optional exponent; its precision is the number of decimals of the mantissa ("3.2e-4"
    has 1). A period not followed by a digit is punctuation ("It costs 3." is the number 3). Dotted
    runs like "3.11.2" (versions, dates) are not numbers.
  - Keywords are counted case-insensitively (Unicode casefold), as whole words: a match must not be
    preceded or followed by a word character, which also works for keywords that start or end
    with a symbol ("C++", "#tag"). Whitespace inside a keyword matches any run of whitespace.
  - Substring checks (contain, begin, end) are case-sensitive.
  - "each sentence ..." checks fail when the response has no sentence at all.

Where this differs from the released code on purpose:
  - percentage precision 0 means "no decimal point"; the released check fails a whole-number
    percentage ("50%") whatever the precision.
  - no Arabic numerals means no digit 0-9 (or fullwidth ０-９) anywhere; the released regex misses a
    number before a period ("in 2024.") and digits glued to letters ("H2O", "mp3").
  - keyword boundaries are "no word character next to it", not `\\b`: with `\\b`, "C++" is never
    found before a space and is found inside "C++17".
  - precision checks skip a number right after a letter and a hyphen ("COVID-19"); the released
    code reads "19" there.
  - sentences come from pysbd, not punkt (docs/mmif_text.md lists where they disagree).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxlab.mmif.records import Constraint, ConstraintError
from jaxlab.mmif.taxonomy import RULE
from jaxlab.mmif.text import clean_lines, split_paragraphs, split_sentences, split_words

VERIFIERS: dict[str, Callable[..., bool]] = {}


def _verifier(func: Callable[..., bool]) -> Callable[..., bool]:
  """Registers `func` under its name; a blank response fails before `func` runs."""

  @functools.wraps(func)
  def checked(response: str, *args: Any, **kwargs: Any) -> bool:
    if not response.strip():
      return False
    return func(response, *args, **kwargs)

  VERIFIERS[func.__name__] = checked
  return checked


def _in_range(count: int, lower: int, upper: int) -> bool:
  return lower <= count <= upper


# ---------------------------------------------------------------- length

@_verifier
def check_whether_response_paragraph_number_in_range(response: str, lower_bound: int, upper_bound: int) -> bool:
  return _in_range(len(split_paragraphs(response)), lower_bound, upper_bound)


@_verifier
def check_whether_response_sentence_number_in_range(response: str, lower_bound: int, upper_bound: int) -> bool:
  return _in_range(len(split_sentences(response)), lower_bound, upper_bound)


@_verifier
def check_whether_each_paragraph_sentence_number_in_range(response: str, lower_bound: int,
                                                          upper_bound: int) -> bool:
  return all(_in_range(len(split_sentences(p)), lower_bound, upper_bound) for p in split_paragraphs(response))


@_verifier
def check_whether_each_paragraph_sentence_number_in_range_list(response: str, ranges: Sequence[Sequence[int]]) -> bool:
  """Paragraph i has between ranges[i][0] and ranges[i][1] sentences; there are exactly len(ranges)."""
  paragraphs = split_paragraphs(response)
  if len(paragraphs) != len(ranges):
    return False
  return all(_in_range(len(split_sentences(p)), lo, hi) for p, (lo, hi) in zip(paragraphs, ranges))


@_verifier
def check_whether_response_word_count_in_range(response: str, lower_bound: int, upper_bound: int) -> bool:
  return _in_range(len(split_words(response)), lower_bound, upper_bound)


@_verifier
def check_whether_each_paragraph_word_count_in_range(response: str, lower_bound: int, upper_bound: int) -> bool:
  return all(_in_range(len(split_words(p)), lower_bound, upper_bound) for p in split_paragraphs(response))


# ---------------------------------------------------------------- substrings

@_verifier
def check_whether_whole_response_not_contain_certain_substrings(response: str, substrings: Sequence[str]) -> bool:
  return not any(s in response for s in substrings)


@_verifier
def check_whether_whole_response_not_contain_certain_substring(response: str, substring: str) -> bool:
  return substring not in response


@_verifier
def check_whether_whole_response_contain_certain_substrings(response: str, substrings: Sequence[str]) -> bool:
  """Every substring occurs (not in the released code: "mention" constraints with literal text)."""
  return all(s in response for s in substrings)


@_verifier
def check_whether_each_sentence_begin_with_certain_substring(response: str, substring: str) -> bool:
  sentences = split_sentences(response)
  return bool(sentences) and all(s.startswith(substring) for s in sentences)


@_verifier
def check_whether_each_sentence_end_with_certain_substring(response: str, substring: str) -> bool:
  sentences = split_sentences(response)
  return bool(sentences) and all(s.endswith(substring) for s in sentences)


@_verifier
def check_whether_each_paragraph_begin_with_certain_substring(response: str, substring: str) -> bool:
  return all(p.startswith(substring) for p in split_paragraphs(response))


@_verifier
def check_whether_each_paragraph_end_with_certain_substring(response: str, substring: str) -> bool:
  return all(p.endswith(substring) for p in split_paragraphs(response))


@_verifier
def check_whether_whole_response_begin_with_certain_substring(response: str, substring: str) -> bool:
  return response.strip().startswith(substring)


@_verifier
def check_whether_whole_response_end_with_certain_substring(response: str, substring: str) -> bool:
  return response.strip().endswith(substring)


# ---------------------------------------------------------------- keywords

def keyword_count(response: str, keyword: str) -> int:
  """How often `keyword` occurs in `response` as a whole word, ignoring case."""
  body = r"\s+".join(re.escape(part) for part in keyword.casefold().split())
  return len(re.findall(rf"(?<!\w){body}(?!\w)", clean_lines(response).casefold()))


@_verifier
def check_whether_each_keyword_in_list_metioned_in_range(response: str, keywords: Sequence[str],
                                                         lower_bound_times: int, upper_bound_times: int) -> bool:
  return all(_in_range(keyword_count(response, k), lower_bound_times, upper_bound_times) for k in keywords)


@_verifier
def check_whether_total_keyword_in_list_metioned_in_range(response: str, keywords: Sequence[str],
                                                          lower_bound_times: int, upper_bound_times: int) -> bool:
  return _in_range(sum(keyword_count(response, k) for k in keywords), lower_bound_times, upper_bound_times)


# The released data spells "metioned"; the correct spelling is accepted too.
check_whether_each_keyword_in_list_mentioned_in_range = check_whether_each_keyword_in_list_metioned_in_range
check_whether_total_keyword_in_list_mentioned_in_range = check_whether_total_keyword_in_list_metioned_in_range
for _alias in ("check_whether_each_keyword_in_list_mentioned_in_range",
               "check_whether_total_keyword_in_list_mentioned_in_range"):
  VERIFIERS[_alias] = globals()[_alias]
del _alias


# ---------------------------------------------------------------- numbers

# Word characters that glue a digit into a word; CJK scripts are written without spaces, so theirs don't.
_GLUE = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
_NUMBER = re.compile(
    rf"(?<!{_GLUE})(?<!\.)(?<![^\W\d]-)"          # not inside a word, a dotted run, or "COVID-19"
    r"(?P<mantissa>(?>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+))"  # atomic: "1,234km" never yields "1"
    r"(?:[eE][+-]?\d+)?"
    rf"(?!{_GLUE})(?!\.\d)")
_PERCENT = re.compile(_NUMBER.pattern + r"\s*[%％]")
_ARABIC_DIGIT = re.compile(r"[0-9０-９]")


def numbers(response: str) -> list[str]:
  """The numbers of `response` (see the module docstring), as written."""
  return [m.group() for m in _NUMBER.finditer(response)]


def _decimals(mantissa: str) -> int:
  return len(mantissa.split(".")[1]) if "." in mantissa else 0


@_verifier
def check_percentage_number_precision_in_response(response: str, precision: int) -> bool:
  """Every number right before a "%" has exactly `precision` decimals (0: no decimal point)."""
  return all(_decimals(m.group("mantissa")) == precision for m in _PERCENT.finditer(response))


@_verifier
def check_number_precision_in_response(response: str, precision: int) -> bool:
  """Every number has exactly `precision` decimals (in the mantissa, for scientific notation)."""
  return all(_decimals(m.group("mantissa")) == precision for m in _NUMBER.finditer(response))


@_verifier
def check_whether_has_no_arabic_number_in_response(response: str) -> bool:
  return _ARABIC_DIGIT.search(response) is None


# ---------------------------------------------------------------- validation

def _is_int(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _check_count(x: Any) -> str | None:
  return None if _is_int(x) and x >= 0 else f"must be a non-negative int, got {x!r}"


def _check_text(x: Any) -> str | None:
  return None if isinstance(x, str) and x else f"must be a non-empty string, got {x!r}"


def _check_keyword(x: Any) -> str | None:
  return None if isinstance(x, str) and x.strip() else f"must be a string with a non-space character, got {x!r}"


def _check_text_list(x: Any, each: Callable[[Any], str | None] = _check_text) -> str | None:
  if not isinstance(x, (list, tuple)) or not x:
    return f"must be a non-empty list of strings, got {x!r}"
  for i, item in enumerate(x):
    if (problem := each(item)) is not None:
      return f"item {i} {problem}"
  return None


def _check_ranges(x: Any) -> str | None:
  if not isinstance(x, (list, tuple)) or not x:
    return f"must be a non-empty list of [lower, upper] pairs, got {x!r}"
  for i, pair in enumerate(x):
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_int(b) and b >= 0 for b in pair)):
      return f"item {i} must be a [lower, upper] pair of non-negative ints, got {pair!r}"
    if pair[0] > pair[1]:
      return f"item {i} has lower {pair[0]} > upper {pair[1]}"
  return None


# Checks by parameter name: the verifiers share these names, so one table covers them all.
_PARAM_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "lower_bound": _check_count,
    "upper_bound": _check_count,
    "lower_bound_times": _check_count,
    "upper_bound_times": _check_count,
    "precision": _check_count,
    "substring": _check_text,
    "substrings": _check_text_list,
    "keywords": lambda x: _check_text_list(x, _check_keyword),
    "ranges": _check_ranges,
}
_BOUND_PAIRS = (("lower_bound", "upper_bound"), ("lower_bound_times", "upper_bound_times"))


def _bind(name: str, params: Any, where: str) -> dict[str, Any]:
  """The arguments after the response, by parameter name; ConstraintError if they don't fit."""
  signature = inspect.signature(VERIFIERS[name])
  try:
    if params is None:
      bound = signature.bind("")
    elif isinstance(params, Mapping):
      bound = signature.bind("", **params)
    elif isinstance(params, (list, tuple)):
      bound = signature.bind("", *params)
    else:
      raise ConstraintError(f"{where}: {name}: 'params' must be a list or an object, got {type(params).__name__}")
  except TypeError as e:
    raise ConstraintError(f"{where}: {name}{signature}: params {params!r} do not fit: {e}") from None
  arguments = dict(bound.arguments)
  arguments.pop("response")
  return arguments


def validate_verify_funcs(verify_funcs: Any, where: str = "constraint") -> None:
  """Raises ConstraintError naming `where`, the function and the parameter if any entry can't run."""
  if not isinstance(verify_funcs, (list, tuple)) or not verify_funcs:
    raise ConstraintError(f"{where}: 'verify_funcs' must be a non-empty list, got {verify_funcs!r}")
  for entry in verify_funcs:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("func"), str):
      raise ConstraintError(f"{where}: each verify_func must be an object with a string 'func', got {entry!r}")
    name = entry["func"]
    if name not in VERIFIERS:
      close = difflib.get_close_matches(name, VERIFIERS, n=3, cutoff=0.6)
      hint = f"did you mean {', '.join(close)}?" if close else f"none of the {len(VERIFIERS)} known names is close"
      raise ConstraintError(f"{where}: unknown verify_func {name!r}; {hint}")
    arguments = _bind(name, entry.get("params"), where)
    for param, value in arguments.items():
      if (problem := _PARAM_CHECKS[param](value)) is not None:
        raise ConstraintError(f"{where}: {name}: parameter {param!r} {problem}")
    for lower, upper in _BOUND_PAIRS:
      if lower in arguments and arguments[lower] > arguments[upper]:
        raise ConstraintError(f"{where}: {name}: parameter {lower!r} ({arguments[lower]}) "
                              f"exceeds {upper!r} ({arguments[upper]})")


def _call(response: str, entry: Mapping[str, Any]) -> bool:
  params = entry.get("params")
  func = VERIFIERS[entry["func"]]
  if isinstance(params, Mapping):
    return func(response, **params)
  return func(response, *(params or ()))


def verify(response: str, verify_funcs: Any, where: str = "constraint") -> bool:
  """Validates `verify_funcs`, then True only if every function passes on `response`."""
  if not isinstance(response, str):
    raise TypeError(f"{where}: the response must be a string, got {type(response).__name__}")
  validate_verify_funcs(verify_funcs, where)
  return all(_call(response, entry) for entry in verify_funcs)


def check_rule_constraint(response: str, constraint: Constraint) -> bool:
  """Whether `response` satisfies a rule_based constraint; ConstraintError for other methods."""
  where = f"constraint {constraint.key!r}"
  if constraint.method != RULE:
    raise ConstraintError(f"{where}: method {constraint.method!r} needs a judge model, not a {RULE} verifier")
  return verify(response, constraint.verify_funcs, where)
