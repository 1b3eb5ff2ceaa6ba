"""The agent's transcript vocabulary: `jaxlab.vlm.piece_vocab.PieceVocab` with the agent's tags and code fences.

Tags, prose and Python cut into lossless pieces (see `jaxlab.vlm.piece_vocab`): what the sandbox
and the parser read is what the model wrote; an unknown piece decodes as "<unk>", which no tag or
Python accepts.
"""

from __future__ import annotations

from jaxlab.vlm.piece_vocab import BASE_SPECIAL_TOKENS, PAD, UNK, PieceVocab

__all__ = ["AGENT_TAGS", "AgentVocab", "FENCES", "PAD", "SPECIAL_TOKENS", "UNK", "pieces"]

AGENT_TAGS: tuple[str, ...] = tuple(f"<{slash}{tag}>" for tag in ("think", "search", "problem", "code", "answer",
                                                                  "information", "query") for slash in ("", "/"))
FENCES: tuple[str, ...] = ("```python", "```")
SPECIAL_TOKENS: tuple[str, ...] = BASE_SPECIAL_TOKENS + AGENT_TAGS + FENCES


class AgentVocab(PieceVocab):
  """Token <-> id over the special tokens (pad = 0, unk = 1, ChatML, image, tags, fences) and the corpus's pieces."""

  SPECIAL_TOKENS = SPECIAL_TOKENS
  KIND = "agent vocabulary"


def pieces(text: str) -> list[str]:
  """`text` cut into the agent vocabulary's pieces; their concatenation is `text`."""
  return AgentVocab.pieces(text)
