"""Tests for `jaxlab.mxmoe.checkpoint`: what saving does to folders that already exist."""

import os

import numpy as np
import pytest

from jaxlab.mxmoe import checkpoint
from jaxlab.mxmoe.checkpoint import load_quantized, save_quantized


def _params(value):
  return {"embed": np.full((4, 8), value, np.float32), "layers_0": {"norm": np.arange(8, dtype=np.float32)}}


def _folder_bytes(folder):
  return {p.name: p.read_bytes() if p.is_file() else "folder" for p in sorted(folder.iterdir())}


def test_overwrite_refuses_a_folder_with_foreign_files_and_deletes_nothing(tmp_path):
  path = tmp_path / "q"
  save_quantized(path, _params(1.0))
  (path / "notes.txt").write_text("the user's own notes\n")
  (path / "plots").mkdir()
  before = _folder_bytes(path)
  with pytest.raises(FileExistsError, match=r"not part of a checkpoint \(notes.txt, plots\)"):
    save_quantized(path, _params(2.0), overwrite=True)
  assert _folder_bytes(path) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # No temporary folder left behind.
  params, _ = load_quantized(path)
  np.testing.assert_array_equal(params["embed"], 1.0)


def test_overwrite_replaces_a_previous_checkpoint(tmp_path):
  path = tmp_path / "q"
  save_quantized(path, _params(1.0), extra={"run": 1})
  os.chmod(path, 0o750)
  with pytest.raises(FileExistsError, match="not empty"):
    save_quantized(path, _params(2.0))
  save_quantized(path, _params(2.0), overwrite=True, extra={"run": 2})
  params, meta = load_quantized(path)
  np.testing.assert_array_equal(params["embed"], 2.0)
  assert meta["run"] == 2
  assert os.stat(path).st_mode & 0o777 == 0o750
  assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]


def test_a_failure_while_swapping_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
  path = tmp_path / "q"
  save_quantized(path, _params(1.0))
  before = _folder_bytes(path)
  real_rename, real_replace = os.rename, os.replace

  def failing(rename):
    def move(src, dst, *args, **kwargs):  # Fails to give the new folder its name; putting the old one back works.
      if os.fspath(dst) == os.fspath(path) and not os.fspath(src).endswith(".old"):
        raise OSError("disk unplugged")
      return rename(src, dst, *args, **kwargs)
    return move

  monkeypatch.setattr(checkpoint.os, "rename", failing(real_rename))
  monkeypatch.setattr(checkpoint.os, "replace", failing(real_replace))
  with pytest.raises(OSError, match="unplugged"):
    save_quantized(path, _params(2.0), overwrite=True)
  monkeypatch.undo()
  assert _folder_bytes(path) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]


def test_non_finite_metadata_is_refused_before_writing(tmp_path):
  path = tmp_path / "q"
  save_quantized(path, _params(1.0))
  before = _folder_bytes(path)
  with pytest.raises(ValueError, match="not strict JSON"):
    save_quantized(path, _params(2.0), overwrite=True, extra={"perplexity": float("nan")})
  assert _folder_bytes(path) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]


def test_a_file_in_the_way_is_refused(tmp_path):
  (tmp_path / "q").write_text("not a folder\n")
  with pytest.raises(FileExistsError, match="not a folder"):
    save_quantized(tmp_path / "q", _params(1.0), overwrite=True)
  assert (tmp_path / "q").read_text() == "not a folder\n"
