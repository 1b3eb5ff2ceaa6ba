"""MM-IFEval's judge-model checks: the three judge prompts, strict parsers of the judges' replies, and
`run_*` helpers that turn a backend's reply (or its failure) into a `Verdict`.

  direct    all of an item's direct-judge constraints in one prompt, with the image and the response; the
            judge explains, then ends with "Score of constraint_1: x/1, Score of constraint_2: x/1, ..."
  compare   a text-only judge sees one constraint, the answer under it and the model's answer to the
            same prompt without it; it ends with "Summary: True" or "Summary: False" (False when the
            two answers are very similar or the constraint is not met)
  perception (P-Level) a text-only judge sees the question, the response and the gold list and answers
            only "right" (every gold element is in the response) or "wrong"

A backend is any `(prompt, image path or None) -> reply text` callable (`JudgeBackend`; an HTTP and a
jaxlab-model backend are in `jaxlab.mmif.judge_backends`); judges run at temperature 0. A reply the
parsers cannot read, or a backend that cannot answer, gives a `Verdict` with no scores and the failure
kind: a judge failure is never scored as a pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

UNPARSABLE, UNAVAILABLE = "unparsable", "unavailable"
FAILURE_KINDS: tuple[str, ...] = (UNPARSABLE, UNAVAILABLE)


class JudgeParseError(ValueError):
  """A judge reply that does not say its verdict in the asked format; `.text` is the reply."""

  def __init__(self, message: str, text: str):
    super().__init__(message)
    self.text = text


class JudgeUnavailable(RuntimeError):
  """A backend that could not answer: timeout, connection refused, HTTP error after retries, malformed reply."""


@runtime_checkable
class JudgeBackend(Protocol):
  """A judge model: the reply to `prompt`, with the image at path `image` (None: text only).

  Raises JudgeUnavailable when it cannot answer.
  """

  def __call__(self, prompt: str, image: str | None) -> str:
    ...


@dataclasses.dataclass(frozen=True)
class Verdict:
  """One judge call's outcome.

  Attributes:
    scores: one 0/1 per judged constraint (a compare or perception judge gives one); None on failure.
    failure: None, "unparsable" (the reply holds no readable verdict) or "unavailable" (no reply).
    raw: the judge's reply ("" when there was none).
    detail: why it failed (the parse or backend error), "" on success.
  """

  scores: tuple[int, ...] | None
  failure: str | None
  raw: str
  detail: str = ""

  def __post_init__(self):
    if self.failure is not None and self.failure not in FAILURE_KINDS:
      raise ValueError(f"Verdict.failure must be None or one of {FAILURE_KINDS}, got {self.failure!r}")
    if (self.scores is None) == (self.failure is None):
      raise ValueError("a Verdict has scores exactly when it has no failure")

  @property
  def ok(self) -> bool:
    return self.failure is None


# ---------------------------------------------------------------- direct judge


def direct_judge_prompt(constraint_texts: Sequence[str], response: str) -> str:
  """The direct judge's prompt: every constraint of the item, numbered from 1, judged in one reply."""
  _check_texts(constraint_texts)
  n = len(constraint_texts)
  listed = "\n".join(f"Constraint_{i + 1}: {text}" for i, text in enumerate(constraint_texts))
  summary = ", ".join(f"Score of constraint_{i + 1}: x/1" for i in range(n))
  return (
      "You are grading whether an AI assistant's answer about the attached image obeys a list of "
      "constraints.\n"
      "Rules for grading:\n"
      "- Judge each constraint on its own, strictly, and the same way every time.\n"
      "- Look at the image whenever a constraint depends on what it shows.\n"
      "- A constraint the answer satisfies completely scores 1; anything less (partly met, ignored, "
      "broken) scores 0. No other scores are allowed.\n\n"
      f"[answer begins]\n{response}\n[answer ends]\n\n"
      f"[constraints begin] ({n} in all)\n{listed}\n[constraints end]\n\n"
      "Explain your decision for every constraint above, leaving none out. Then finish with a single "
      "summary line that scores all of them, written exactly in this form (x is 0 or 1):\n"
      "Judgement: <your explanation>\n"
      f"Summary: {summary}\n"
  )


# "Score of constraint_3: 1/1"; the value and the total are read as numbers so that "0.5/1" or "2/1"
# are caught as malformed instead of being skipped.
_SCORE = re.compile(r"score\s+of\s+constraint[\s_-]*(\d+)\s*[:=]?\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)",
                    re.IGNORECASE)
_SUMMARY = re.compile(r"summary", re.IGNORECASE)


def _clean(text: str) -> str:
  """Markdown emphasis and code marks dropped, whitespace runs (newlines too) made one space."""
  return re.sub(r"\s+", " ", re.sub(r"[*`]", "", text)).strip()


def parse_direct_scores(text: str, num_constraints: int) -> tuple[int, ...]:
  """The 0/1 score of each of constraint_1..constraint_n in a direct judge's reply.

  Mentions are matched case-insensitively, through markdown `*` and any whitespace. The summary (the
  text after the last "summary" that comes before a score) decides: a constraint scored there takes
  that score, whatever its explanation said earlier; one the summary leaves out takes its score from
  the earlier text. Within either part a constraint may be scored several times only with the same
  score.

  Raises:
    JudgeParseError: a constraint with no score, a score other than 0/1 or 1/1, a constraint scored
      differently twice in the same part, or a score for a constraint number outside 1..n.
  """
  if not isinstance(num_constraints, int) or num_constraints < 1:
    raise ValueError(f"num_constraints must be a positive int, got {num_constraints!r}")
  cleaned = _clean(text)
  matches = list(_SCORE.finditer(cleaned))
  if not matches:
    raise JudgeParseError("the direct judge's reply holds no 'Score of constraint_k: x/1'", text)
  summary_starts = [m.start() for m in _SUMMARY.finditer(cleaned) if m.start() < matches[-1].start()]
  summary_start = summary_starts[-1] if summary_starts else len(cleaned)
  earlier: dict[int, set[int]] = {}
  summary: dict[int, set[int]] = {}
  for m in matches:
    index, value = int(m.group(1)), _binary_score(m, text)
    if not 1 <= index <= num_constraints:
      raise JudgeParseError(f"the judge scored constraint_{index}, but there are only {num_constraints}", text)
    (summary if m.start() > summary_start else earlier).setdefault(index, set()).add(value)
  scores = []
  for index in range(1, num_constraints + 1):
    seen = summary.get(index) or earlier.get(index)
    if not seen:
      raise JudgeParseError(f"the direct judge gave no score for constraint_{index}", text)
    if len(seen) > 1:
      raise JudgeParseError(f"the direct judge gave constraint_{index} both 0/1 and 1/1", text)
    scores.append(seen.pop())
  return tuple(scores)


def _binary_score(match: re.Match, text: str) -> int:
  value, total = match.group(2), match.group(3)
  if value not in ("0", "1") or total != "1":
    raise JudgeParseError(f"constraint_{match.group(1)} was scored {value}/{total}; only 0/1 or 1/1 are allowed",
                          text)
  return int(value)


# ---------------------------------------------------------------- compare judge


def compare_judge_prompt(constraint_text: str, response_with: str, response_without: str) -> str:
  """The compare judge's prompt: one constraint, the answer under it and the answer without it."""
  _check_texts([constraint_text])
  return (
      "You decide whether an AI model's answer follows a constraint it was given, and reply True or "
      "False. You get the constraint, the model's answer when the constraint was part of the request, "
      "and, for comparison, the model's answer to the same request with the constraint left out.\n\n"
      f"[constraint begins]\n{constraint_text}\n[constraint ends]\n\n"
      f"[answer with the constraint begins]\n{response_with}\n[answer with the constraint ends]\n\n"
      f"[answer without the constraint begins]\n{response_without}\n[answer without the constraint ends]\n\n"
      "Decide in two steps:\n"
      "1. Put the two answers side by side. If they are very much alike, the constraint made no real "
      "difference to the answer: the verdict is False.\n"
      "2. Otherwise check the answer with the constraint against what the constraint asks. If it falls "
      "short, the verdict is False; if it clearly does what the constraint asks, the verdict is True.\n\n"
      "Give your reasons briefly, following the two steps, then end with a one-line summary holding "
      "only your verdict, exactly in this form:\n"
      "Reasoning: <your reasons>\n"
      "Summary: True (or: Summary: False)\n"
  )


_TRUE_FALSE = re.compile(r"\b(true|false)\b", re.IGNORECASE)


def parse_compare_verdict(text: str) -> bool:
  """The compare judge's verdict: the first True/False after the last "summary" (any case, markdown ok).

  Strict: when the line that holds that word also holds the other one ("Summary: True/False", or
  "False, though true that ..."), the reply is unparsable.

  Raises:
    JudgeParseError: no "summary", no True/False after the last one, or both on the verdict's line.
  """
  starts = [m.end() for m in _SUMMARY.finditer(text)]
  if not starts:
    raise JudgeParseError("the compare judge's reply has no 'Summary'", text)
  after = re.sub(r"[*`]", "", text[starts[-1]:])
  first = _TRUE_FALSE.search(after)
  if first is None:
    raise JudgeParseError("the compare judge's reply has no True or False after its last 'Summary'", text)
  line_start = after.rfind("\n", 0, first.start()) + 1
  line_end = after.find("\n", first.end())
  line = after[line_start:None if line_end < 0 else line_end]
  if len({w.lower() for w in _TRUE_FALSE.findall(line)}) > 1:
    raise JudgeParseError(f"the compare judge's summary holds both True and False: {line.strip()!r}", text)
  return first.group(1).lower() == "true"


# ---------------------------------------------------------------- perception judge


def perception_judge_prompt(question: str, response: str, gold: Sequence[str]) -> str:
  """The P-Level judge's prompt: question, response and the gold list as a JSON array of strings."""
  if isinstance(gold, str) or not all(isinstance(g, str) for g in gold):
    raise TypeError(f"gold must be a sequence of strings, got {gold!r}")
  gold_json = json.dumps(list(gold), ensure_ascii=False)
  return (
      "You are checking a model's answer against a list of reference points. Find the answer in the "
      "model's output and decide whether it contains every point of the reference list; the list is "
      "a JSON array of strings. The answer passes only if each element of the list appears in it "
      "(as a substring is enough); the order does not matter.\n\n"
      f"Question: {question}\n"
      f"Model output: {response}\n"
      f"Reference list: {gold_json}\n\n"
      "Reply with one word and nothing else: 'right' if the answer contains every reference point, "
      "'wrong' if it does not.\n"
  )


_RIGHT_WRONG = re.compile(r"\b(right|wrong)\b", re.IGNORECASE)
# "not right", "isn't wrong", "not quite right": a verdict word under a negation says the opposite.
_NEGATED = re.compile(r"(?:\b(?:not|no|never)|n['’]t)\s+(?:\w+\s+)?$", re.IGNORECASE)


def parse_perception_verdict(text: str) -> bool:
  """True for "right", False for "wrong".

  The reply is normally the bare word (any case, surrounded by whitespace, quotes, markdown or
  punctuation). A longer reply is accepted only when exactly one of the two words occurs in it as a
  word, never right after a negation ("not right"): the released scorer would read "not right,
  wrong" as right, this parser refuses it.

  Raises:
    JudgeParseError: neither word, both words, or a negated one.
  """
  bare = re.sub(r"[\s\"'`*.,:;!()\[\]]+", "", text).lower()
  if bare in ("right", "wrong"):
    return bare == "right"
  unmarked = re.sub(r"[*`\"]", "", text)
  found = list(_RIGHT_WRONG.finditer(unmarked))
  words = {m.group(1).lower() for m in found}
  if len(words) != 1:
    raise JudgeParseError(f"the perception judge's reply holds {'both' if words else 'neither'} of 'right' "
                          "and 'wrong'", text)
  if any(_NEGATED.search(unmarked[:m.start()]) for m in found):
    raise JudgeParseError("the perception judge's verdict word is negated", text)
  return words == {"right"}


# ---------------------------------------------------------------- running a judge


def run_direct_judge(backend: JudgeBackend, constraint_texts: Sequence[str], response: str,
                     image: str | None) -> Verdict:
  """Scores an item's direct-judge constraints in one call: scores (0/1 each, in order) or a failure."""
  prompt = direct_judge_prompt(constraint_texts, response)
  return _run(backend, prompt, image, lambda reply: parse_direct_scores(reply, len(constraint_texts)))


def run_compare_judge(backend: JudgeBackend, constraint_text: str, response_with: str,
                      response_without: str) -> Verdict:
  """Judges one compare constraint (text only): scores (1,) or (0,), or a failure."""
  prompt = compare_judge_prompt(constraint_text, response_with, response_without)
  return _run(backend, prompt, None, lambda reply: (int(parse_compare_verdict(reply)),))


def run_perception_judge(backend: JudgeBackend, question: str, response: str, gold: Sequence[str]) -> Verdict:
  """Judges one P-Level answer (text only): scores (1,) for right, (0,) for wrong, or a failure."""
  prompt = perception_judge_prompt(question, response, gold)
  return _run(backend, prompt, None, lambda reply: (int(parse_perception_verdict(reply)),))


def _run(backend: JudgeBackend, prompt: str, image: str | None, parse) -> Verdict:
  try:
    reply = backend(prompt, None if image is None else os.fspath(image))
  except JudgeUnavailable as e:
    return Verdict(None, UNAVAILABLE, "", str(e))
  if not isinstance(reply, str):
    return Verdict(None, UNPARSABLE, "", f"the backend returned {type(reply).__name__}, not text")
  try:
    return Verdict(parse(reply), None, reply)
  except JudgeParseError as e:
    return Verdict(None, UNPARSABLE, reply, str(e))


def _check_texts(texts: Sequence[str]) -> None:
  if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
    raise ValueError(f"a judge needs one or more constraint texts (strings), got {texts!r}")
