"""MM-IFEngine's constraint taxonomy: 6 classes, 32 sub-types, each with how it is evaluated.

The evaluation methods are MM-IFEval's `judge.method` values:

  rule_based   a Python verifier decides (`jaxlab.mmif.verifiers`, the `verify_funcs` list)
  direct_gpt   a judge model reads the response and the constraint (all of an item's direct-judge
               constraints in one prompt)
  cmp_gpt      a judge compares the response with the model's answer to the same prompt without
               the constraint (style, tone, audience: things only visible as a change)

"Mention" and "multiple mention" keywords are checked by rule when the keyword is literal and by a
direct judge otherwise, so they list both methods; the first is the default a generator writes.
"""

from __future__ import annotations

import dataclasses

RULE, DIRECT, COMPARE = "rule_based", "direct_gpt", "cmp_gpt"
JUDGE_METHODS: tuple[str, ...] = (RULE, DIRECT, COMPARE)


@dataclasses.dataclass(frozen=True)
class SubType:
  """One constraint sub-type: its key (as in MM-IFEval's `constraint["key"]`), class and methods."""

  key: str
  constraint_class: str
  methods: tuple[str, ...]
  description: str

  @property
  def method(self) -> str:
    """The default evaluation method (the first listed)."""
    return self.methods[0]


def _sub(key: str, cls: str, methods: str | tuple[str, ...], description: str) -> SubType:
  return SubType(key, cls, (methods,) if isinstance(methods, str) else methods, description)


RHETORIC, FORMAT, LENGTH, MATH, ACTION, KEYWORD = (
    "rhetoric_logic", "format", "text_length", "math", "action", "keyword")
CLASSES: tuple[str, ...] = (RHETORIC, FORMAT, LENGTH, MATH, ACTION, KEYWORD)

SUB_TYPES: tuple[SubType, ...] = (
    _sub("rhetoric", RHETORIC, COMPARE, "use a rhetorical device (metaphor, parallelism, ...)"),
    _sub("logical_relation", RHETORIC, DIRECT, "structure the answer by a logical relation (cause, contrast, ...)"),
    _sub("natural_language", FORMAT, DIRECT, "answer in a given natural language"),
    _sub("part_of_speech", FORMAT, DIRECT, "use or avoid a part of speech"),
    _sub("sentence_structure", FORMAT, DIRECT, "use a sentence structure (questions, imperatives, ...)"),
    _sub("tense", FORMAT, DIRECT, "write in a given tense"),
    _sub("highlight", FORMAT, DIRECT, "highlight parts (bold, quotes, capitals)"),
    _sub("title", FORMAT, DIRECT, "give the answer a title"),
    _sub("case", FORMAT, DIRECT, "letter case of the answer or parts of it"),
    _sub("unstrict_format", FORMAT, DIRECT, "a loose layout (a letter, a dialogue, headed sections)"),
    _sub("strict_format", FORMAT, DIRECT, "a machine-readable format (JSON, XML, a table)"),
    _sub("number_and_list", FORMAT, DIRECT, "numbered or bulleted lists"),
    _sub("wrap_up", FORMAT, DIRECT, "end with a summary or conclusion"),
    _sub("first_letter", FORMAT, DIRECT, "words or lines starting with given letters (an acrostic)"),
    _sub("punctuation", FORMAT, RULE, "use or avoid a punctuation mark"),
    _sub("style", FORMAT, COMPARE, "write in a literary or register style"),
    _sub("paragraph_limit", LENGTH, RULE, "number of paragraphs (or sentences per paragraph)"),
    _sub("sentence_limit", LENGTH, RULE, "number of sentences"),
    _sub("word_limit", LENGTH, RULE, "number of words (in all, or per paragraph)"),
    _sub("precision", MATH, RULE, "decimal places of the numbers (or of percentages)"),
    _sub("scientific_notation", MATH, RULE, "numbers in scientific notation with a given mantissa precision"),
    _sub("role_imitation", ACTION, COMPARE, "answer as a given character or profession"),
    _sub("tone", ACTION, COMPARE, "a tone (formal, humorous, ...)"),
    _sub("target_audience", ACTION, COMPARE, "write for a given audience"),
    _sub("situation", ACTION, COMPARE, "answer as if in a given situation"),
    _sub("prefix_suffix", ACTION, RULE, "begin or end the answer, its paragraphs or sentences with given text"),
    _sub("perspective", ACTION, DIRECT, "a narrative person or point of view"),
    _sub("prior_condition", ACTION, DIRECT, "if a condition holds in the image, answer a given way"),
    _sub("mention", KEYWORD, (RULE, DIRECT), "mention given keywords"),
    _sub("not_mention", KEYWORD, RULE, "never mention given words or characters"),
    _sub("multiple_mention", KEYWORD, (RULE, DIRECT), "mention keywords a given number of times"),
    _sub("keyword_variation", KEYWORD, DIRECT, "use synonyms or variations of a keyword"),
)

BY_KEY: dict[str, SubType] = {s.key: s for s in SUB_TYPES}
RULE_SUB_TYPES: tuple[str, ...] = tuple(s.key for s in SUB_TYPES if RULE in s.methods)


def sub_type(key: str) -> SubType:
  """The sub-type named `key`; KeyError naming the known keys otherwise."""
  try:
    return BY_KEY[key]
  except KeyError:
    raise KeyError(f"unknown constraint sub-type {key!r}; known: {', '.join(BY_KEY)}") from None


def sub_types_of(constraint_class: str) -> tuple[SubType, ...]:
  if constraint_class not in CLASSES:
    raise KeyError(f"unknown constraint class {constraint_class!r}; known: {', '.join(CLASSES)}")
  return tuple(s for s in SUB_TYPES if s.constraint_class == constraint_class)
