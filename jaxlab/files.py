"""Reading and writing files so that bad input is named and a crash never costs a file.

Reading: `read_json_object` names the file, line and column of broken JSON;
`require_finite` names what holds a NaN or infinity (a tensor, a parameter) without copying
a memory-mapped array.

Writing:

Every writer in jaxlab goes through here: the bytes go to a hidden temporary file in the
destination's directory, are flushed to disk, and only then take the destination's name in
one rename. A failure at any point (an exception while producing the bytes, a full disk, a
kill) leaves the previous file as it was and removes the temporary one.

`overwrite=False` never replaces an existing file, even against a racing writer (the final
step is a hard link, which fails if the name exists).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

_FINITE_CHUNK = 2**24  # elements scanned at a time: bounded memory for memory-mapped arrays


class JSONFileError(ValueError):
  """A JSON file that does not parse, or whose top level is not an object; the message names the file."""


class NonFiniteError(ValueError):
  """An array read from a file holds NaN or infinity; the message names it."""


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
  """The JSON object in the file at `path`.

  Raises:
    FileNotFoundError: no such file.
    JSONFileError (a ValueError): the file is not UTF-8 JSON (its path, line and column named),
      or its top level is not an object.
  """
  path = os.fspath(path)
  with open(path, encoding="utf-8") as f:
    try:
      value = json.load(f)
    except json.JSONDecodeError as e:
      raise JSONFileError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError as e:
      raise JSONFileError(f"{path} is not valid JSON: not UTF-8 text (byte {e.start})") from None
  if not isinstance(value, dict):
    kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
    raise JSONFileError(f"{path} must hold a JSON object, got a JSON {kind}")
  return value


def read_jsonl_objects(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The JSON objects of a jsonl file, one per non-blank line.

  Raises:
    FileNotFoundError: no such file.
    JSONFileError (a ValueError): a line is not UTF-8 JSON or not an object (path and line named).
  """
  path = os.fspath(path)
  records = []
  with open(path, encoding="utf-8", errors="strict") as f:
    try:
      lines = list(f)
    except UnicodeDecodeError as e:
      raise JSONFileError(f"{path} is not UTF-8 text (byte {e.start})") from None
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise JSONFileError(f"{path} line {number} is not valid JSON: {e.msg}") from None
    if not isinstance(record, dict):
      raise JSONFileError(f"{path} line {number} must be a JSON object")
    records.append(record)
  return records


def require_finite(array: np.ndarray, what: str) -> None:
  """Raises NonFiniteError naming `what` when `array` (any float dtype, bfloat16 and float8 included)
  holds NaN or infinity; integer and boolean arrays pass. Scans in chunks, so a memory-mapped array
  is not copied."""
  if np.dtype(array.dtype).kind in "biuOSU":
    return
  flat = np.asarray(array).reshape(-1)
  for start in range(0, flat.size, _FINITE_CHUNK):
    bad = np.flatnonzero(~np.isfinite(flat[start:start + _FINITE_CHUNK]))
    if bad.size:
      first = tuple(int(i) for i in np.unravel_index(start + bad[0], np.shape(array)))
      count = sum(int(np.count_nonzero(~np.isfinite(flat[i:i + _FINITE_CHUNK])))
                  for i in range(start, flat.size, _FINITE_CHUNK))
      raise NonFiniteError(f"{what} holds {count} non-finite value(s) (NaN or inf), the first at index {first}")


def create_temp_file(directory: str, basename: str) -> tuple[int, str]:
  """(fd, path) of a fresh hidden file `.<basename>.<random>.tmp` in `directory`; the umask sets its mode.

  For writers that stage several files and rename them together at the end.
  """
  flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
  for _ in range(16):
    tmp_path = os.path.join(directory, f".{basename}.{secrets.token_hex(6)}.tmp")
    try:
      return os.open(tmp_path, flags, 0o666), tmp_path
    except FileExistsError:
      continue
  raise FileExistsError(f"could not create a temporary file in {directory}")


def _publish(tmp_path: str, path: str, overwrite: bool) -> None:
  """Gives the finished temporary file the destination's name in one step."""
  if overwrite:
    os.replace(tmp_path, path)
    return
  try:
    os.link(tmp_path, path)  # fails if `path` exists: no-clobber even against a racing writer
  except FileExistsError:
    raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it") from None
  except OSError:  # filesystems without hard links: check, then rename
    if os.path.exists(path):
      raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it") from None
    os.replace(tmp_path, path)
    return
  os.unlink(tmp_path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, overwrite: bool = True,
                make_parents: bool = False, encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
  """Yields a stream whose contents replace `path` only if the `with` block ends normally.

  Args:
    path: the destination file.
    mode: "w" (text) or "wb" (bytes).
    overwrite: replace an existing file; False raises FileExistsError (before any work if
      the file is already there, and again at the end if one appeared meanwhile).
    make_parents: create missing parent directories; otherwise a missing one is an error.
    encoding: text encoding for mode "w".
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
  path = os.fspath(path)
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
  directory = os.path.dirname(os.path.abspath(path))
  if make_parents:
    os.makedirs(directory, exist_ok=True)
  elif not os.path.isdir(directory):
    raise FileNotFoundError(f"directory {directory} does not exist; cannot write {path}")
  fd, tmp_path = create_temp_file(directory, os.path.basename(path))
  try:
    with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as stream:
      yield stream
      stream.flush()
      os.fsync(stream.fileno())
    if overwrite and os.path.isfile(path):
      shutil.copymode(path, tmp_path)  # a replaced file keeps its permissions
    _publish(tmp_path, path, overwrite)
  finally:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)


def write_bytes(path: str | os.PathLike, data: bytes, **kwargs) -> None:
  """`path` holds exactly `data` afterwards, or is unchanged if anything failed."""
  with atomic_open(path, "wb", **kwargs) as f:
    f.write(data)


def write_text(path: str | os.PathLike, text: str, **kwargs) -> None:
  """`path` holds exactly `text` afterwards, or is unchanged if anything failed."""
  with atomic_open(path, "w", **kwargs) as f:
    f.write(text)


def write_json(path: str | os.PathLike, value: Any, *, indent: int = 2, sort_keys: bool = True, **kwargs) -> None:
  """JSON (strict: NaN and infinity are refused before anything is written) plus a newline."""
  text = json.dumps(value, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
  write_text(path, text, **kwargs)
