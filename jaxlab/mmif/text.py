"""How MM-IFEval's rule verifiers cut a response into lines, paragraphs, sentences and words.

  clean_lines       every line stripped, lines joined by "\\n", the whole stripped (the released
                    code's `clean_text`, run before any paragraph or sentence split)
  split_paragraphs  blocks of the cleaned text between blank lines (a line of only spaces or tabs
                    is blank); empty blocks dropped
  split_sentences   pysbd's English rules on the cleaned text, run offline. The released code calls
                    nltk's punkt, whose trained model is a data download; docs/mmif_text.md shows
                    where the two disagree. On top of pysbd, five small steps:
                      - the text is cut at every start and end of pysbd's segments, so text that
                        pysbd leaves out (it can, on odd punctuation) is kept, never lost;
                      - closing emphasis, quotes or brackets that pysbd moves to the start of the
                        next segment go back to the sentence they close ("**Note.** Next." is
                        "**Note.**" and "Next.", not "**Note." and "** Next.");
                      - a segment that ends neither in sentence-final punctuation nor at a line
                        break, or that is only a list marker ("iv.", "b)"), is joined to the next
                        (pysbd cuts "Options: a) red, b) blue." into three and "- a." into two);
                      - a run of "!" / "?" followed by a capitalised word ends a sentence (pysbd
                        keeps "Great!!! Next." and "Why?!? Because." whole);
                      - a segment with no letter or digit ("---", "..", an emoji line) is no
                        sentence and is dropped.
                    Unlike punkt, pysbd also ends a sentence at every line break.
  split_words       the released word count: every character that is not a word character,
                    whitespace, "." or "-" deleted, then split on whitespace. `\\w` is Unicode-aware,
                    so "café" is one word; scripts written without spaces ("日本語の文") count as
                    one word per run, as in the released code.
"""

from __future__ import annotations

import itertools
import re

import pysbd

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # Lines are stripped first: a blank line is empty here.
_NOT_WORD_CHAR = re.compile(r"[^\w\s.-]")
_CLOSERS = r"[)\]\"'”’»*_]"  # closing brackets, quotes and markdown emphasis
_OPENERS = "\"'“‘«(["
# A run of "!" / "?" with what closes it, then the whitespace after it.
_MARK_RUN = re.compile(rf"[!?]+{_CLOSERS}*(\s+)")
_TERMINAL = re.compile(rf"[.!?。！？…]{_CLOSERS}*$")
_LEADING_CLOSERS = re.compile(rf"{_CLOSERS}+(?=\s|$)")
_LIST_MARKER = re.compile(r"\(?(?:\d{1,3}|[A-Za-z]|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})[.)]")


def clean_lines(text: str) -> str:
  """Each line stripped, joined by "\\n", the result stripped."""
  return "\n".join(line.strip() for line in text.splitlines()).strip()


def split_paragraphs(text: str) -> list[str]:
  """Blocks of `clean_lines(text)` separated by one or more blank lines; empty blocks dropped."""
  blocks = _PARAGRAPH_BREAK.split(clean_lines(text))
  return [b.strip() for b in blocks if b.strip()]


def split_words(text: str) -> list[str]:
  """Whitespace-separated words after deleting characters other than word chars, spaces, "." and "-"."""
  return _NOT_WORD_CHAR.sub("", text).split()


def split_sentences(text: str) -> list[str]:
  """Sentences of `clean_lines(text)`: pysbd's segments plus the steps in the module docstring."""
  text = clean_lines(text)
  if not text:
    return []
  sentences = []
  for segment in _join_unfinished(_pysbd_pieces(text)):
    for piece in _split_after_marks(segment):
      piece = piece.strip()
      if any(ch.isalnum() for ch in piece):
        sentences.append(piece)
  return sentences


def _pysbd_pieces(text: str) -> list[str]:
  """`text` cut at every start and end of pysbd's segments, each cut moved past closing marks."""
  # A fresh segmenter per call: `segment` keeps state on the instance, and building one is cheap.
  spans = pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)
  inner = {c for s in spans for c in (s.start, s.end) if 0 < c < len(text)}
  cuts = sorted({0, len(text)} | {_past_closers(text, c) for c in inner})
  return [text[a:b] for a, b in itertools.pairwise(cuts)]


def _past_closers(text: str, cut: int) -> int:
  m = _LEADING_CLOSERS.match(text, cut)
  return m.end() if m else cut


def _ends_sentence(segment: str) -> bool:
  body = segment.rstrip()
  if "\n" in segment[len(body):]:
    return True
  return _TERMINAL.search(body) is not None and not _LIST_MARKER.fullmatch(body)


def _join_unfinished(pieces: list[str]) -> list[str]:
  """Joins a piece to the next until they end a sentence (see `_ends_sentence`)."""
  segments, pending = [], ""
  for piece in pieces:
    pending += piece
    if _ends_sentence(pending):
      segments.append(pending)
      pending = ""
  if pending:
    segments.append(pending)
  return segments


def _split_after_marks(segment: str) -> list[str]:
  """Cut `segment` after each "!" / "?" run whose next word starts with a capital letter."""
  pieces, start = [], 0
  for m in _MARK_RUN.finditer(segment):
    following = segment[m.end():].lstrip(_OPENERS)
    if following[:1].isupper():
      pieces.append(segment[start:m.start(1)])
      start = m.end()
  pieces.append(segment[start:])
  return pieces
