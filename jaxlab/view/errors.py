"""The one error the viewer's sources raise for bad input."""

from __future__ import annotations

import os


class SourceError(ValueError):
  """A missing or damaged input; the message names the path and the problem."""


def naming(path: str | os.PathLike, error: BaseException) -> SourceError:
  """A SourceError with `error`'s message, prefixed by `path` unless the message names it already."""
  path = os.fspath(path)
  message = str(error).strip() or type(error).__name__
  named = path in message or os.path.abspath(path) in message
  return SourceError(message if named else f"{path}: {message}")
