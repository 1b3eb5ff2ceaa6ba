"""Text conventions of the rule verifiers: cleaned lines, paragraphs, sentences and words."""

from __future__ import annotations

import pysbd.utils
import pytest

from jaxlab.mmif import text
from jaxlab.mmif.text import clean_lines, split_paragraphs, split_sentences, split_words


def test_clean_lines_strips_each_line_and_the_whole():
  assert clean_lines("  \n  a  \n\t b\t\r\n\n  ") == "a\nb"
  assert clean_lines("one line") == "one line"
  assert clean_lines(" \t\n ") == ""


@pytest.mark.parametrize("response, expected", [
    ("a\n\nb", ["a", "b"]),
    ("a\n   \t \nb", ["a", "b"]),                     # a blank line holding spaces and a tab
    ("a\nb\n\n\n\nc", ["a\nb", "c"]),                 # one newline keeps a paragraph together
    ("\n\n  first  \n  \n\n  second\n  line \n\n", ["first", "second\nline"]),
    ("café ☕\n\n日本語の段落", ["café ☕", "日本語の段落"]),
    ("", []),
    (" \n\t\n ", []),
])
def test_split_paragraphs(response, expected):
  assert split_paragraphs(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("Hello, world!", ["Hello", "world"]),
    ("A well-known fact, e.g. 3.5% growth.", ["A", "well-known", "fact", "e.g.", "3.5", "growth."]),
    ("café au lait", ["café", "au", "lait"]),
    ("日本語 です", ["日本語", "です"]),
    ("smile 😀 — done", ["smile", "done"]),         # emoji and em dash are deleted, not words
    ("a ... b", ["a", "...", "b"]),                  # "." survives, as in the released count
    ("don't (x) [y]", ["dont", "x", "y"]),
    ("", []),
])
def test_split_words(response, expected):
  assert split_words(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("Dr. Smith arrived. He was late.", ["Dr. Smith arrived.", "He was late."]),
    ("Use tools, e.g. hammers. Then rest.", ["Use tools, e.g. hammers.", "Then rest."]),
    ("The U.S. economy grew. Prices rose.", ["The U.S. economy grew.", "Prices rose."]),
    ("Mr. Brown paid 3.5 dollars. Growth was 1.50%. Done.",
     ["Mr. Brown paid 3.5 dollars.", "Growth was 1.50%.", "Done."]),
    ("Wait... what happened? Nobody knows.", ["Wait... what happened?", "Nobody knows."]),
    ('He said, "Stop." Then he left.', ['He said, "Stop."', "Then he left."]),
    ("It costs 3. That is cheap.", ["It costs 3.", "That is cheap."]),
    ("1. First item.\n2. Second item.", ["1. First item.", "2. Second item."]),
    ("First sentence.Second sentence.", ["First sentence.Second sentence."]),
    ("Line one\nLine two", ["Line one", "Line two"]),  # a line break ends a sentence (punkt: no)
    ("I love café. 日本語の文です。次の文です。", ["I love café.", "日本語の文です。", "次の文です。"]),
    ("  Hello 😀.   \n\n  World!  ", ["Hello 😀.", "World!"]),
])
def test_split_sentences(response, expected):
  assert split_sentences(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("It was great!!! Amazing.", ["It was great!!!", "Amazing."]),
    ("Why?!? Because.", ["Why?!?", "Because."]),
    ('Really?! "Yes," she said.', ["Really?!", '"Yes," she said.']),
    ("Great! amazing.", ["Great! amazing."]),              # lowercase next: pysbd keeps it whole
    ('She yelled "Stop!" and ran.', ['She yelled "Stop!" and ran.']),
])
def test_split_sentences_after_exclamation_and_question_runs(response, expected):
  assert split_sentences(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("**Note.** Next one.", ["**Note.**", "Next one."]),      # pysbd: "**Note." and "** Next one."
    ("This is *done.* Then.", ["This is *done.*", "Then."]),
    ("1. **Step one.** Do it.\n2. **Step two.** Done.",
     ["1. **Step one.**", "Do it.", "2. **Step two.**", "Done."]),
])
def test_split_sentences_keeps_closing_marks_with_their_sentence(response, expected):
  assert split_sentences(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("Options: a) red, b) blue.", ["Options: a) red, b) blue."]),  # pysbd: three segments
    ("- a.\n- b.", ["- a.", "- b."]),                                # pysbd: "- " cut off each item
    ("1) a.\n2) b.", ["1) a.", "2) b."]),
    ("iv. Fourth. v. Fifth.", ["iv. Fourth.", "v. Fifth."]),        # pysbd: "iv." alone
    ("i. First.\nii. Second.", ["i. First.", "ii. Second."]),
])
def test_split_sentences_keeps_list_markers_with_their_item(response, expected):
  assert split_sentences(response) == expected


def test_split_sentences_drops_segments_without_letters_or_digits():
  assert split_sentences("Para one.\n\n---\n\nPara two.") == ["Para one.", "Para two."]
  assert split_sentences("Great job!\n🎉") == ["Great job!"]
  assert split_sentences("Step 1.\n2.") == ["Step 1.", "2."]  # a digit is enough to keep it


@pytest.mark.parametrize("response", ["", "   ", "\n \t\n"])
def test_split_sentences_blank(response):
  assert split_sentences(response) == []


def test_split_sentences_keeps_text_the_segmenter_skips(monkeypatch):
  # pysbd drops a sentence it altered internally; the stretch it skipped must survive as a segment.
  class Skipping:

    def __init__(self, **kwargs):
      pass

    def segment(self, s):
      first, last = s.index("One."), s.index("Three.")
      return [pysbd.utils.TextSpan("One. ", first, first + 5), pysbd.utils.TextSpan("Three.", last, len(s))]

  monkeypatch.setattr(text.pysbd, "Segmenter", Skipping)
  assert split_sentences("One. Two. Three.") == ["One.", "Two.", "Three."]
