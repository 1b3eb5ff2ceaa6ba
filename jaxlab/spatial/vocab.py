"""The piece vocabulary of MultiSPA prompts and answers: words and punctuation as pieces, every digit
its own piece (millimetres, degrees and coordinates of any size from ten digit pieces)."""

from __future__ import annotations

from jaxlab.vlm.piece_vocab import PieceVocab


class SpatialVocab(PieceVocab):
  SPLIT_DIGITS = True
  KIND = "spatial vocabulary"
