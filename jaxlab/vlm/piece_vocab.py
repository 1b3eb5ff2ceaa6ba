"""A lossless word-piece vocabulary for small VLMs trained from scratch, built from a corpus.

Pieces are the special tokens (ChatML, image tokens, plus any a task adds), words and single
punctuation marks each carrying the spaces before them (" river", "    im", " ("), a newline with the
spaces before it, and runs of spaces (before a special token they stand alone). Decoding
concatenates pieces, so `decode(encode(text)) == text` for text made only of known pieces: what a
verifier, parser or sandbox reads is what the model wrote. A piece outside the vocabulary encodes as
`<unk>` (counted by `encode_counting_unknown`) and decodes as "<unk>".

Subclasses fix their special tokens (`jaxlab.agent.vocab.AgentVocab` adds the agent's tags).
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
BASE_SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT)


def piece_pattern(special_tokens: Sequence[str], split_digits: bool = False) -> re.Pattern:
  """The regex that cuts text into pieces (module docstring) around `special_tokens`.

  With `split_digits`, every digit is a piece of its own ("1234" -> "1", "2", "3", "4"), so numbers of
  any size need only ten pieces.
  """
  specials = "|".join(re.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
  word = r"\d|[^\W\d]+" if split_digits else r"\w+"
  return re.compile(rf"(?:{specials})|[ \t]+(?=(?:{specials}))|[ \t]*\n|[ \t]*(?:{word}|[^\w\s])|[ \t]+|\s")


class PieceVocab:
  """Token <-> id over the special tokens (pad = 0, unk = 1) and the corpus's pieces."""

  SPECIAL_TOKENS: tuple[str, ...] = BASE_SPECIAL_TOKENS
  SPLIT_DIGITS = False  # Subclasses for numeric answers set True (digits as single pieces).
  KIND = "vocabulary"  # How errors name it ("agent vocabulary", ...).
  _pattern: re.Pattern = piece_pattern(BASE_SPECIAL_TOKENS)

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if cls.SPECIAL_TOKENS[:len(BASE_SPECIAL_TOKENS)] != BASE_SPECIAL_TOKENS:
      raise TypeError(f"{cls.__name__}.SPECIAL_TOKENS must start with {BASE_SPECIAL_TOKENS}")
    cls._pattern = piece_pattern(cls.SPECIAL_TOKENS, cls.SPLIT_DIGITS)

  def __init__(self, tokens: Sequence[str]):
    tokens = tuple(tokens)
    if tokens[:len(self.SPECIAL_TOKENS)] != self.SPECIAL_TOKENS:
      raise ValueError(f"a {type(self).__name__} must start with its special tokens {self.SPECIAL_TOKENS}")
    if len(set(tokens)) != len(tokens):
      raise ValueError("the vocabulary lists a token twice")
    self.tokens = tokens
    self.ids = {t: i for i, t in enumerate(tokens)}
    self.pad_id = self.ids[PAD]
    self.unk_id = self.ids[UNK]
    self.im_end_id = self.ids[IM_END]
    self.image_token_id = self.ids[IMG_CONTEXT]

  @classmethod
  def pieces(cls, text: str) -> list[str]:
    """`text` cut into pieces; their concatenation is `text`."""
    return cls._pattern.findall(text)

  @classmethod
  def from_texts(cls, texts: Iterable[str], *, min_count: int = 1):
    """The special tokens, then every piece seen at least `min_count` times (most frequent first)."""
    counts = collections.Counter(p for text in texts for p in cls.pieces(text))
    special = set(cls.SPECIAL_TOKENS)
    kept = sorted((p for p, n in counts.items() if n >= min_count and p not in special), key=lambda p: (-counts[p], p))
    return cls(cls.SPECIAL_TOKENS + tuple(kept))

  def __len__(self) -> int:
    return len(self.tokens)

  def encode(self, text: str) -> list[int]:
    return [self.ids.get(p, self.unk_id) for p in self.pieces(text)]

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
        raise ValueError(f"id {i} is outside the {self.KIND} [0, {len(self.tokens)})")
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
  def load(cls, path: str | pathlib.Path):
    path = pathlib.Path(path)
    try:
      tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
    except FileNotFoundError:
      raise FileNotFoundError(f"no {cls.KIND} at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise ValueError(f"{path} is not an {cls.KIND} file ({e})" if cls.KIND[0] in "aeiou" else f"{path} is not a {cls.KIND} file ({e})") from None
    return cls(tokens)
