"""A lossless word-piece vocabulary for agent transcripts (tags, prose, Python), built from a corpus.

Pieces are the special tokens (ChatML, image tokens, the agent's tags and code fences), words and
single punctuation marks each carrying the spaces before them (" river", "    im", " ("), a newline
with the spaces before it, and runs of spaces (before a special token they stand alone). Decoding concatenates pieces, so
`decode(encode(text)) == text` for text made only of known pieces: what the sandbox and the
parser read is what the model wrote. A piece outside the vocabulary encodes as `<unk>` (counted by
`encode_counting_unknown`), and decodes as "<unk>", which no tag or Python accepts.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
from collections.abc import Iterable, Sequence

from jaxlab import files
from jaxlab.vlm.chat_template import IM_END, IM_START
from jaxlab.vlm.image_tokens import IMG_CONTEXT, IMG_END, IMG_START

PAD = "<pad>"
UNK = "<unk>"
AGENT_TAGS: tuple[str, ...] = tuple(f"<{slash}{tag}>" for tag in ("think", "search", "problem", "code", "answer",
                                                                  "information", "query") for slash in ("", "/"))
FENCES: tuple[str, ...] = ("```python", "```")
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT) + AGENT_TAGS + FENCES
_SPECIALS = "|".join(re.escape(s) for s in sorted(SPECIAL_TOKENS, key=len, reverse=True))
_PIECE = re.compile(rf"(?:{_SPECIALS})|[ \t]+(?=(?:{_SPECIALS}))|[ \t]*\n|[ \t]*(?:\w+|[^\w\s])|[ \t]+|\s")


def pieces(text: str) -> list[str]:
  """`text` cut into pieces (module docstring); their concatenation is `text`."""
  return _PIECE.findall(text)


class AgentVocab:
  """Token <-> id over the special tokens (pad = 0, unk = 1) and the corpus's pieces."""

  def __init__(self, tokens: Sequence[str]):
    tokens = tuple(tokens)
    if tokens[:len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
      raise ValueError("an agent vocabulary must start with its special tokens (pad, unk, ChatML, image, tags)")
    if len(set(tokens)) != len(tokens):
      raise ValueError("the vocabulary lists a token twice")
    self.tokens = tokens
    self.ids = {t: i for i, t in enumerate(tokens)}
    self.pad_id = self.ids[PAD]
    self.unk_id = self.ids[UNK]
    self.im_end_id = self.ids[IM_END]
    self.image_token_id = self.ids[IMG_CONTEXT]

  @classmethod
  def from_texts(cls, texts: Iterable[str], *, min_count: int = 1) -> AgentVocab:
    """The special tokens, then every piece seen at least `min_count` times (most frequent first)."""
    counts = collections.Counter(p for text in texts for p in pieces(text))
    special = set(SPECIAL_TOKENS)
    kept = sorted((p for p, n in counts.items() if n >= min_count and p not in special), key=lambda p: (-counts[p], p))
    return cls(SPECIAL_TOKENS + tuple(kept))

  def __len__(self) -> int:
    return len(self.tokens)

  def encode(self, text: str) -> list[int]:
    return [self.ids.get(p, self.unk_id) for p in pieces(text)]

  def encode_counting_unknown(self, text: str) -> tuple[list[int], int]:
    """(ids, number of pieces outside the vocabulary)."""
    ids = self.encode(text)
    return ids, sum(i == self.unk_id for i in ids)

  def decode(self, ids: Sequence[int]) -> str:
    """The text of `ids` (pads dropped); ids outside the vocabulary raise ValueError."""
    out = []
    for i in ids:
      i = int(i)
      if not 0 <= i < len(self.tokens):
        raise ValueError(f"id {i} is outside the agent vocabulary [0, {len(self.tokens)})")
      if i != self.pad_id:
        out.append(self.tokens[i])
    return "".join(out)

  def decode_response(self, ids: Sequence[int]) -> str:
    """The generated text up to (not including) the first `<|im_end|>`."""
    ids = [int(i) for i in ids]
    if self.im_end_id in ids:
      ids = ids[:ids.index(self.im_end_id)]
    return self.decode(ids)

  def save(self, path: str | pathlib.Path) -> None:
    files.write_text(pathlib.Path(path), json.dumps({"tokens": list(self.tokens)}, ensure_ascii=False) + "\n")

  @classmethod
  def load(cls, path: str | pathlib.Path) -> AgentVocab:
    path = pathlib.Path(path)
    try:
      tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
    except FileNotFoundError:
      raise FileNotFoundError(f"no agent vocabulary at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise ValueError(f"{path} is not an agent vocabulary file ({e})") from None
    return cls(tokens)
