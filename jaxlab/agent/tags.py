"""The tagged step format of Visual-ARFT (`specs/specs-models.md` §4).

A model turn is `<think>…</think>` followed by exactly one action:

    search:  <search>query</search>
    coding:  <problem>{'rotation90', 'dark'}</problem>  |  <code>```python …```</code>
    both:    <answer>…</answer>

The environment answers a search with `<information> 1. Content: … 2. Content: … </information>`.
`parse_step` never raises on model text: a turn that breaks the format comes back with
`Step.error` naming what is wrong (cut mid-tag, a tag twice, no action, text outside the tags).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Sequence

ACTIONS = ("search", "problem", "code", "answer")
# Any of these twice in one turn makes the turn malformed (the spec's duplicated-tag rule).
COUNTED_TAGS = ("think", "answer", "search", "code", "problem")
PROBLEM_LABELS = ("rotation90", "rotation180", "dark", "overexposure", "blur", "noise", "crop", "none")

_STEP = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<(?P<action>search|problem|code|answer)>(?P<content>.*?)"
                   r"</(?P=action)>\s*$", re.DOTALL)
_PYTHON_BLOCK = re.compile(r"```(?:python|py)?\s*\n?(?P<code>.*?)```", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Step:
  """One parsed turn.

  Attributes:
    think: the reasoning text ("" when malformed).
    action: one of ACTIONS, or "" when the turn is malformed.
    content: the action's text, stripped (for `code`, the Python inside the fence).
    error: "" for a well-formed turn, else what is wrong with it.
  """

  think: str
  action: str
  content: str
  error: str = ""

  @property
  def ok(self) -> bool:
    return not self.error


def _tag_counts(text: str) -> dict[str, int]:
  return {tag: len(re.findall(rf"<{tag}>", text)) for tag in COUNTED_TAGS}


def parse_step(text: str | bytes) -> Step:
  """Parses one model turn (see the module doc); never raises on bad model output."""
  if isinstance(text, bytes):
    try:
      text = text.decode("utf-8")
    except UnicodeDecodeError as e:
      return Step("", "", "", f"not UTF-8 ({e.reason} at byte {e.start})")
  twice = [tag for tag, n in _tag_counts(text).items() if n > 1]
  if twice:
    return Step("", "", "", f"tag <{twice[0]}> appears {_tag_counts(text)[twice[0]]} times")
  match = _STEP.match(text)
  if match is None:
    return Step("", "", "", _why_malformed(text))
  action, content = match["action"], match["content"].strip()
  if action == "code":
    block = _PYTHON_BLOCK.search(content)
    content = block["code"].strip() if block else content
  return Step(match["think"].strip(), action, content)


def _why_malformed(text: str) -> str:
  opened = re.findall(r"<(think|search|problem|code|answer)>", text)
  closed = re.findall(r"</(think|search|problem|code|answer)>", text)
  if not opened or opened[0] != "think":
    return "the turn must start with <think>…</think>"
  for tag in opened:
    if tag not in closed:
      return f"<{tag}> is never closed (output cut mid-tag?)"
  think_end = text.find("</think>")
  if re.search(r"<(search|problem|code|answer)>", text[:think_end]):
    return "an action tag inside <think>…</think> (nested tags)"
  if not any(tag in ACTIONS for tag in opened):
    return f"no action after </think>: expected one of {['<' + a + '>' for a in ACTIONS]}"
  if sum(tag in ACTIONS for tag in opened) > 1:
    return "more than one action in the turn"
  return "text outside the <think> and action tags"


def parse_problem_labels(content: str) -> frozenset[str] | None:
  """The label set of a `<problem>` step (`{'rotation90', 'dark'}`), or None if unreadable.

  Accepts a Python set/list/tuple literal of strings or a comma-separated list; every label
  must be one of PROBLEM_LABELS.
  """
  text = content.strip()
  try:
    value = ast.literal_eval(text)
    items = [value] if isinstance(value, str) else list(value)
  except (ValueError, SyntaxError, TypeError):
    items = [part.strip(" '\"{}[]()") for part in text.split(",")]
  labels = [str(item).strip().lower() for item in items if str(item).strip()]
  if not labels or any(label not in PROBLEM_LABELS for label in labels):
    return None
  return frozenset(labels)


def format_information(results: Sequence[str]) -> str:
  """The environment's reply to a search: `<information> 1. Content: … 2. Content: … </information>`."""
  body = " ".join(f"{i}. Content: {' '.join(str(r).split())}" for i, r in enumerate(results, 1))
  return f"<information> {body} </information>"
