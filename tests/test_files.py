"""jaxlab.files: a failed write keeps the old file, no temporary is left, bad JSON is named."""

import json
import os
import stat

import numpy as np
import pytest

from jaxlab import files


def _leftovers(directory):
  return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_failure_mid_write_keeps_the_previous_file(tmp_path):
  path = tmp_path / "report.json"
  path.write_text('{"good": 1}\n')
  with pytest.raises(RuntimeError, match="boom"):
    with files.atomic_open(path) as f:
      f.write('{"half')
      raise RuntimeError("boom")
  assert path.read_text() == '{"good": 1}\n'
  assert _leftovers(tmp_path) == []


def test_write_json_refuses_nan_before_touching_the_file(tmp_path):
  path = tmp_path / "metrics.json"
  files.write_json(path, {"loss": 1.5})
  with pytest.raises(ValueError):
    files.write_json(path, {"loss": float("nan")})
  assert json.loads(path.read_text()) == {"loss": 1.5}
  assert _leftovers(tmp_path) == []


def test_overwrite_false_refuses_an_existing_file(tmp_path):
  path = tmp_path / "a.txt"
  files.write_text(path, "first", overwrite=False)
  with pytest.raises(FileExistsError, match="a.txt"):
    files.write_text(path, "second", overwrite=False)
  assert path.read_text() == "first"
  files.write_text(path, "second")
  assert path.read_text() == "second"


def test_a_replaced_file_keeps_its_mode(tmp_path):
  path = tmp_path / "run.sh"
  path.write_text("old")
  os.chmod(path, 0o750)
  files.write_text(path, "new")
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o750


def test_missing_directory_is_named_unless_asked_to_make_it(tmp_path):
  target = tmp_path / "no" / "such" / "x.bin"
  with pytest.raises(FileNotFoundError, match="does not exist"):
    files.write_bytes(target, b"x")
  files.write_bytes(target, b"x", make_parents=True)
  assert target.read_bytes() == b"x"


def test_broken_json_names_file_line_and_column(tmp_path):
  path = tmp_path / "config.json"
  path.write_text('{\n  "a": 1,\n  "b": \n}\n')
  with pytest.raises(files.JSONFileError, match=r"config\.json.*line 4, column 1"):
    files.read_json_object(path)
  path.write_text("[1, 2]")
  with pytest.raises(files.JSONFileError, match="JSON array"):
    files.read_json_object(path)


def test_require_finite_names_the_array_and_first_index():
  x = np.zeros((3, 4), np.float32)
  x[2, 1] = np.inf
  x[2, 3] = np.nan
  with pytest.raises(files.NonFiniteError, match=r"w_q holds 2 non-finite.*\(2, 1\)"):
    files.require_finite(x, "w_q")
  files.require_finite(np.arange(5), "ints")
  files.require_finite(np.ones(3, np.float32), "ones")


def test_read_jsonl_objects_names_the_bad_line(tmp_path):
  good = tmp_path / "good.jsonl"
  good.write_text('{"a": 1}\n\n{"b": 2}\n')
  assert files.read_jsonl_objects(good) == [{"a": 1}, {"b": 2}]
  for text, message in (('{"a": 1}\nnot json\n', "line 2 is not valid JSON"),
                        ('{"a": 1}\n[1, 2]\n', "line 2 must be a JSON object")):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    with pytest.raises(files.JSONFileError, match=message):
      files.read_jsonl_objects(bad)
  (tmp_path / "latin.jsonl").write_bytes(b'{"a": "\xff"}\n')
  with pytest.raises(files.JSONFileError, match="not UTF-8"):
    files.read_jsonl_objects(tmp_path / "latin.jsonl")
