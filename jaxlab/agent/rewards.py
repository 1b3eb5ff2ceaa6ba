"""Visual-ARFT rewards (`specs/specs-models.md` §4): R = R_format + R_accuracy, in [0, 2].

- format (1/0): the turn parses (`tags.parse_step`: `<think>` then one action, no counted tag
  twice) and, when a gold step is given, its action is the gold step's;
- accuracy, by the gold step's action (0 when the turn has no such action tag):
  - answer: token F1 after SQuAD normalization, overlap counted on *unique* tokens and divided
    by the full predicted and gold token counts (the spec's counting, not SQuAD's multiset);
  - search: cosine similarity of sentence embeddings of the two queries, 0 below 0.5;
  - code: a constant (the paper's 1; the released code uses 0.9), the code is not checked;
  - problem: 1 for the exact label set; 0.5 when the gold set is two labels, one of them a
    rotation, and the prediction is that rotation alone.

The search reward takes any sentence encoder `texts -> [N, D]` (e.g. all-MiniLM-L6-v2 through
sentence-transformers, as the paper). `HashedTrigramEncoder` is the default stand-in needing no
weights: character-trigram counts hashed into a fixed vector, so queries that share words
score high and unrelated ones low, with no notion of synonyms.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.agent.tags import parse_problem_labels, parse_step

SEARCH_SIMILARITY_FLOOR = 0.5
ROTATIONS = frozenset({"rotation90", "rotation180"})

Encoder = Callable[[Sequence[str]], np.ndarray]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
  """SQuAD normalization: lower case, no punctuation, no articles (a, an, the), single spaces."""
  text = str(text).lower().translate(_PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def answer_f1(prediction: str, gold: str) -> float:
  """Token F1 with overlap on unique tokens over the full token counts; 0 if either is empty."""
  pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
  if not pred_tokens or not gold_tokens:
    return 0.0
  same = len(set(pred_tokens) & set(gold_tokens))
  if same == 0:
    return 0.0
  precision, recall = same / len(pred_tokens), same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


class HashedTrigramEncoder:
  """Stand-in sentence encoder: character trigrams of the normalized text hashed into `dim` counts."""

  def __init__(self, dim: int = 4096):
    self.dim = int(dim)

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), self.dim), np.float32)
    for row, text in enumerate(texts):
      padded = f"  {normalize_answer(text)}  "
      for i in range(len(padded) - 2):
        out[row, zlib.crc32(padded[i:i + 3].encode()) % self.dim] += 1.0
    return out


def search_reward(prediction: str, gold: str, encoder: Encoder | None = None) -> float:
  """Cosine similarity of the two queries' embeddings, zeroed below 0.5."""
  if not prediction.strip() or not gold.strip():
    return 0.0
  vectors = np.asarray((encoder or HashedTrigramEncoder())([prediction, gold]), np.float64)
  norms = np.linalg.norm(vectors, axis=1)
  if np.any(norms == 0):
    return 0.0
  cosine = float(vectors[0] @ vectors[1] / (norms[0] * norms[1]))
  return cosine if cosine >= SEARCH_SIMILARITY_FLOOR else 0.0


def problem_reward(prediction: str, gold: str) -> float:
  """1 for the gold label set; 0.5 for the rotation alone of a two-label gold set with a rotation."""
  predicted, expected = parse_problem_labels(prediction), parse_problem_labels(gold)
  if predicted is None or expected is None:
    return 0.0
  if predicted == expected:
    return 1.0
  rotation = expected & ROTATIONS
  if len(expected) == 2 and len(rotation) == 1 and predicted == rotation:
    return 0.5
  return 0.0


def format_reward(text: str | bytes, expected_action: str | None = None) -> float:
  """1.0 when the turn is well formed (and its action is `expected_action`, when given), else 0."""
  step = parse_step(text)
  return float(step.ok and (expected_action is None or step.action == expected_action))


def _action_content(text: str, action: str) -> str | None:
  match = re.search(rf"<{action}>(.*?)</{action}>", text, re.DOTALL)
  return None if match is None else match.group(1).strip()


def step_reward(text: str | bytes, gold_step: str, *, encoder: Encoder | None = None,
                code_reward: float = 1.0) -> dict[str, float]:
  """{"format", "accuracy", "total"} of a sampled turn against the gold next step (a tagged turn)."""
  gold = parse_step(gold_step)
  if not gold.ok:
    raise ValueError(f"the gold step is malformed: {gold.error}")
  fmt = format_reward(text, gold.action)
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  content = _action_content(text, gold.action)
  if content is None:
    accuracy = 0.0
  elif gold.action == "answer":
    accuracy = answer_f1(content, gold.content)
  elif gold.action == "search":
    accuracy = search_reward(content, gold.content, encoder)
  elif gold.action == "code":
    accuracy = float(code_reward)
  else:
    accuracy = problem_reward(content, gold.content)
  return {"format": fmt, "accuracy": accuracy, "total": fmt + accuracy}
