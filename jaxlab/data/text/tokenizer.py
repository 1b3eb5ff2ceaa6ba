"""Byte-level BPE tokenizers (HF `tokenizers`) trained on a corpus, and corpus -> token stream.

Byte-level means every string maps to bytes first, and the 256 byte symbols are always in the
vocabulary: nothing is out of vocabulary, and `tokenizer.decode(tokenizer.encode(s).ids) == s`
for any s that does not itself contain a special-token string (those encode to their special
id, which `decode` drops unless `skip_special_tokens=False`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
import os
import pathlib

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from jaxlab import files

END_OF_TEXT = "<|endoftext|>"
_NUM_BYTES = 256


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = (END_OF_TEXT,),
) -> tokenizers.Tokenizer:
  """Trains a GPT-2-style byte-level BPE tokenizer.

  Args:
    texts: the training documents (any iterable of str; read once).
    vocab_size: the largest vocabulary allowed: special tokens + 256 bytes + merges. Fewer
      entries result when no pair is frequent enough to merge further.
    min_frequency: a pair must occur this often to be merged.
    special_tokens: added first, so they get ids 0, 1, ...; never split or merged.

  Returns:
    A `tokenizers.Tokenizer` with the ByteLevel pre-tokenizer (GPT-2 split regex, no prefix
    space) and the ByteLevel decoder.
  """
  if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
    raise TypeError(f"texts must be an iterable of str documents, got {type(texts).__name__}.")
  special_tokens = list(special_tokens) if not isinstance(special_tokens, str) else None
  if special_tokens is None or not all(isinstance(t, str) and t for t in special_tokens):
    raise TypeError("special_tokens must be a collection of non-empty strings.")
  if len(set(special_tokens)) != len(special_tokens):
    raise ValueError(f"special_tokens has duplicates: {special_tokens}.")
  min_vocab = _NUM_BYTES + len(special_tokens)
  if not isinstance(vocab_size, int) or vocab_size < min_vocab:
    raise ValueError(
        f"vocab_size must be an int >= {min_vocab} (256 bytes + {len(special_tokens)} special tokens), "
        f"got {vocab_size!r}."
    )
  if not isinstance(min_frequency, int) or min_frequency < 1:
    raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}.")

  tokenizer = tokenizers.Tokenizer(models.BPE())
  # No prefix space: an inserted space would break decode(encode(s)) == s.
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size,
      min_frequency=min_frequency,
      special_tokens=special_tokens,
      # All 256 byte symbols, seen in training or not, so any input stays encodable.
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      show_progress=False,
  )
  tokenizer.train_from_iterator(_checked_texts(texts), trainer=trainer)
  return tokenizer


def save_tokenizer(tokenizer: tokenizers.Tokenizer, path: str | os.PathLike) -> pathlib.Path:
  """Writes the tokenizer as one JSON file (HF `tokenizer.json` format, as `Tokenizer.save` writes it);
  returns the path. The file is replaced in one rename, so a failure leaves the previous one intact."""
  if not isinstance(tokenizer, tokenizers.Tokenizer):
    raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}.")
  path = pathlib.Path(path)
  files.write_text(path, tokenizer.to_str(pretty=True), make_parents=True)
  return path


def load_tokenizer(path: str | os.PathLike) -> tokenizers.Tokenizer:
  """Reads a tokenizer written by `save_tokenizer` (or any HF `tokenizer.json`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"path must be a tokenizer JSON file, {path} does not exist.")
  return tokenizers.Tokenizer.from_file(str(path))


def encode_corpus(
    tokenizer: tokenizers.Tokenizer,
    texts: Mapping[str, str],
    *,
    separator: str = END_OF_TEXT,
) -> np.ndarray:
  """Encodes documents into one token stream, `separator`'s id between consecutive documents.

  Args:
    tokenizer: a trained tokenizer whose vocabulary holds `separator`.
    texts: {name: document}; documents are taken in the mapping's order.
    separator: the token placed between documents (not before the first or after the last).

  Returns:
    A 1-D array of token ids: uint16 when the vocabulary fits in 2**16 ids, else uint32.
  """
  if not isinstance(tokenizer, tokenizers.Tokenizer):
    raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}.")
  if not isinstance(texts, Mapping):
    raise TypeError(f"texts must be a mapping of name -> document, got {type(texts).__name__}.")
  if not texts:
    raise ValueError("texts is empty; there is nothing to encode.")
  bad = [name for name, text in texts.items() if not isinstance(text, str)]
  if bad:
    raise TypeError(f"texts must map names to str documents; {bad[:5]} do not.")
  separator_id = tokenizer.token_to_id(separator)
  if separator_id is None:
    raise ValueError(f"separator {separator!r} is not in the tokenizer's vocabulary.")

  dtype = np.uint16 if tokenizer.get_vocab_size() <= np.iinfo(np.uint16).max + 1 else np.uint32
  encodings = tokenizer.encode_batch(list(texts.values()), add_special_tokens=False)
  pieces = []
  for i, encoding in enumerate(encodings):
    if i:
      pieces.append(np.array([separator_id], dtype))
    pieces.append(np.asarray(encoding.ids, dtype))
  return np.concatenate(pieces)


def _checked_texts(texts: Iterable[str]) -> Iterator[str]:
  # Checked lazily so a streamed corpus is never held in memory twice.
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"texts must hold str documents; item {i} is {type(text).__name__}.")
    yield text
