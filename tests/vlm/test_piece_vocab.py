"""PieceVocab: lossless pieces, and digits as single pieces where a subclass asks for them."""

from jaxlab.vlm.piece_vocab import PieceVocab


class _DigitVocab(PieceVocab):
  SPLIT_DIGITS = True


def test_digits_split_only_where_asked_and_text_round_trips():
  text = "Depth `1234` mm, [ 12 , -5 ] at x2.<|im_end|>"
  assert " 1234" not in _DigitVocab.pieces(text) and "4" in _DigitVocab.pieces(text)
  assert "`1234" not in PieceVocab.pieces(text) and "1234" in PieceVocab.pieces(text)
  for cls in (PieceVocab, _DigitVocab):
    vocab = cls.from_texts([text])
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode_counting_unknown(text)[1] == 0
  digits = _DigitVocab.from_texts(["0123456789"])
  assert digits.encode_counting_unknown("`98765`")[1] == 2  # Only the two unseen backticks: any number is known.
