"""Byte-level BPE: exact round trips, vocabulary limits, save/load, and the joined corpus stream."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.data.text import END_OF_TEXT, encode_corpus, load_tokenizer, save_tokenizer, train_bpe

_CORPUS = [
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n",
    "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n"
    "And all the clouds that lour'd upon our house\nIn the deep bosom of the ocean buried.\n",
    "We are such stuff\nAs dreams are made on, and our little life\nIs rounded with a sleep.\n",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
  return train_bpe(_CORPUS, vocab_size=400)


@pytest.mark.parametrize("text", [
    "To be, or not to be",
    "  leading spaces, trailing tabs\t\t\n\n\nand blank lines\r\n",
    "unseen: Zqxj wörld naïve façade 漢字 😀 \x00\x7f",
    "",
])
def test_decode_inverts_encode(tokenizer, text):
  ids = tokenizer.encode(text).ids
  assert tokenizer.decode(ids) == text


def test_vocab_is_bytes_specials_and_merges(tokenizer):
  vocab = tokenizer.get_vocab()
  assert 256 < tokenizer.get_vocab_size() <= 400
  assert vocab[END_OF_TEXT] == 0
  # Frequent words became single tokens: fewer tokens than bytes.
  ids = tokenizer.encode("To be, or not to be, that is the question").ids
  assert len(ids) < len("To be, or not to be, that is the question") / 2


def test_min_frequency_limits_merges():
  loose = train_bpe(_CORPUS, vocab_size=2000, min_frequency=2)
  strict = train_bpe(_CORPUS, vocab_size=2000, min_frequency=5)  # every document occurs 4 times
  assert strict.get_vocab_size() < loose.get_vocab_size()


def test_special_token_is_one_id_and_survives_decode_when_asked(tokenizer):
  text = f"is the question{END_OF_TEXT}Now is"
  ids = tokenizer.encode(text).ids
  assert ids.count(0) == 1
  assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_save_load_round_trip(tokenizer, tmp_path):
  path = save_tokenizer(tokenizer, tmp_path / "sub" / "tokenizer.json")
  loaded = load_tokenizer(path)
  text = "Whether 'tis nobler in the mind, façade 😀"
  assert loaded.encode(text).ids == tokenizer.encode(text).ids
  assert loaded.get_vocab() == tokenizer.get_vocab()
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load_tokenizer(tmp_path / "missing.json")


def test_save_replaces_the_file_in_one_rename(tokenizer, tmp_path):
  path = tmp_path / "tokenizer.json"
  other = train_bpe(_CORPUS[:1], vocab_size=300)
  save_tokenizer(other, path)
  with open(path, "rb") as old:
    before = path.read_bytes()
    save_tokenizer(tokenizer, path)
    assert old.read() == before  # A reader of the old file never sees it truncated or half-written.
  assert load_tokenizer(path).get_vocab() == tokenizer.get_vocab()
  assert path.read_text() == tokenizer.to_str(pretty=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"]


def test_encode_corpus_joins_documents_with_end_of_text(tokenizer):
  docs = {"b": "We are such stuff", "a": "As dreams are made on", "c": "rounded with a sleep.\n"}
  stream = encode_corpus(tokenizer, docs)
  assert stream.dtype == np.uint16 and stream.ndim == 1
  # Independent check: the stream decodes to the documents joined by the marker, in dict order.
  assert tokenizer.decode(stream.tolist(), skip_special_tokens=False) == END_OF_TEXT.join(docs.values())
  assert (stream == 0).sum() == len(docs) - 1


def test_encode_corpus_uses_uint32_for_large_vocabularies():
  big = train_bpe(_CORPUS, vocab_size=300)
  big.add_special_tokens([f"<|s{i}|>" for i in range(2**16)])
  assert big.get_vocab_size() > 2**16
  stream = encode_corpus(big, {"x": "We are such stuff <|s65535|>"})
  assert stream.dtype == np.uint32 and stream.max() == big.token_to_id("<|s65535|>") > 2**16 - 1


def test_bad_arguments_raise_before_training(tokenizer):
  with pytest.raises(TypeError, match="iterable of str"):
    train_bpe("a single string", vocab_size=300)
  with pytest.raises(ValueError, match="vocab_size"):
    train_bpe(_CORPUS, vocab_size=100)
  with pytest.raises(ValueError, match="min_frequency"):
    train_bpe(_CORPUS, vocab_size=300, min_frequency=0)
  with pytest.raises(TypeError, match="item 1"):
    train_bpe(["ok", 3], vocab_size=300)
  with pytest.raises(TypeError, match="mapping"):
    encode_corpus(tokenizer, ["not", "a", "dict"])
  with pytest.raises(ValueError, match="empty"):
    encode_corpus(tokenizer, {})
  with pytest.raises(ValueError, match="not in the tokenizer"):
    encode_corpus(tokenizer, {"a": "x"}, separator="<|nope|>")
