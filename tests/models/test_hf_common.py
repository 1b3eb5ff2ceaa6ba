"""jaxlab.models.hf_common: importable on its own; exports replace only their own files, atomically;
readers name the file of broken JSON and the tensor holding NaN or infinity."""

import json
import os
import re
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from jaxlab import files
from jaxlab.models import hf_common, safetensors_io
from jaxlab.models.hf_config import JSONFileError


@pytest.mark.parametrize("module", ["jaxlab.models.hf_common", "jaxlab.moe.models.config", "jaxlab.vlm.hf_io"])
def test_module_imports_first_in_a_fresh_interpreter(module):
  result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


# Writing an export into a directory: only its own files are replaced.

MARKER = ("jaxlab_export", "TestModel")
_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_CONFIG = {"model_type": "test", "hidden_size": 4}


def _tensors(seed: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {f"w{i}": rng.normal(size=(4, 4)).astype(np.float32) for i in range(6)}


def _save(directory, tensors, num_shards, marker=MARKER, config=_CONFIG):
  """Writes `tensors` as `num_shards` shards of consecutive names."""
  names = sorted(tensors)
  groups = [names[i::num_shards] for i in range(num_shards)]
  shards = [lambda group=group: {n: tensors[n] for n in group} for group in groups]
  hf_common.write_checkpoint(str(directory), config, shards, marker)


def _read(directory) -> dict[str, np.ndarray]:
  checkpoint = safetensors_io.Checkpoint(directory)
  return {name: np.array(checkpoint.read(name)) for name in checkpoint.names}


def _snapshot(directory) -> dict[str, bytes]:
  """{relative path: bytes} of every file under `directory`."""
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def _add_user_files(directory):
  os.makedirs(directory / "user" / "deep", exist_ok=True)
  (directory / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
  (directory / "README.md").write_text("# my model\n")
  (directory / "user" / "deep" / "notes.bin").write_bytes(b"\x00\x01keep")
  # Not an export file, though it is a safetensors file: it stays.
  safetensors_io.write_file(directory / "adapter.safetensors", {"a": np.ones(2, np.float32)}, {"format": "pt"})


def _user_files(directory) -> dict[str, bytes]:
  export = {"config.json", safetensors_io.INDEX_NAME, safetensors_io.SINGLE_NAME}
  return {k: v for k, v in _snapshot(directory).items()
          if k not in export and not _SHARD.fullmatch(k)}


def _assert_same(a, b):
  assert sorted(a) == sorted(b)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])


def test_saving_into_an_export_keeps_every_file_it_did_not_write(tmp_path):
  out = tmp_path / "out"
  _save(out, _tensors(0), 1)
  _add_user_files(out)
  before = _user_files(out)
  assert len(before) == 4
  for seed, num_shards in ((1, 1), (2, 3), (3, 1)):
    _save(out, _tensors(seed), num_shards)
    assert _user_files(out) == before
    _assert_same(_read(out), _tensors(seed))
  with open(out / "config.json") as f:
    assert json.load(f) == _CONFIG
  # A reader holding the old files keeps reading the old bytes: files are renamed into place, not rewritten.
  with open(out / "model.safetensors", "rb") as old_weights, open(out / "config.json", "rb") as old_config:
    weights, config = (out / "model.safetensors").read_bytes(), (out / "config.json").read_bytes()
    _save(out, _tensors(4), 1, config=dict(_CONFIG, hidden_size=8))
    assert old_weights.read() == weights and old_config.read() == config
  _assert_same(_read(out), _tensors(4))


def test_resaving_with_another_shard_count_removes_only_its_own_stale_shards(tmp_path):
  out = tmp_path / "out"
  # A shard-named file another tool wrote (no marker) and one of another kind of jaxlab export.
  out.mkdir()
  safetensors_io.write_file(out / "model-00009-of-00009.safetensors", {"x": np.zeros(1, np.float32)}, {"format": "pt"})
  safetensors_io.write_file(out / "model-00008-of-00009.safetensors", {"x": np.zeros(1, np.float32)},
                            {"format": "pt", MARKER[0]: "OtherModel"})
  foreign = _snapshot(out)
  for seed, num_shards in ((0, 3), (1, 2), (2, 1), (3, 3), (4, 3)):
    _save(out, _tensors(seed), num_shards, config=dict(_CONFIG, seed=seed))
    weights = [safetensors_io.SINGLE_NAME] if num_shards == 1 else (
        [f"model-{i + 1:05d}-of-{num_shards:05d}.safetensors" for i in range(num_shards)]
        + [safetensors_io.INDEX_NAME])
    assert sorted(os.listdir(out)) == sorted(["config.json", *weights, *foreign])
    _assert_same(_read(out), _tensors(seed))
  assert {k: v for k, v in _snapshot(out).items() if k in foreign} == foreign


def test_failure_while_writing_keeps_the_previous_export_and_other_files(tmp_path):
  out = tmp_path / "out"
  _save(out, _tensors(0), 3)
  _add_user_files(out)
  before, user_files = _snapshot(out), _user_files(out)
  new = _tensors(1)

  def broken(i):
    def shard():
      if i == 1:
        raise RuntimeError("shard failed")
      return {n: new[n] for n in sorted(new)[i::2]}
    return shard

  with pytest.raises(RuntimeError, match="shard failed"):
    hf_common.write_checkpoint(str(out), {"model_type": "new"}, [broken(0), broken(1)], MARKER)
  assert _snapshot(out) == before  # Nothing replaced, nothing removed, no temporary file left.
  _assert_same(_read(out), _tensors(0))
  _save(out, new, 2)
  _assert_same(_read(out), new)
  assert _user_files(out) == user_files
  with pytest.raises(RuntimeError, match="shard failed"):
    hf_common.write_checkpoint(str(tmp_path / "fresh"), _CONFIG, [broken(1)], MARKER)
  assert sorted(os.listdir(tmp_path)) == ["out"]  # A directory created for the export is removed.


def test_foreign_directory_needs_overwrite_and_keeps_its_other_files(tmp_path):
  out = tmp_path / "hub"
  out.mkdir()
  # A sharded checkpoint another tool wrote, next to its tokenizer.
  first = {"a": np.ones(3, np.float32)}
  safetensors_io.write_file(out / "model-00001-of-00002.safetensors", first, {"format": "pt"})
  safetensors_io.write_file(out / "model-00002-of-00002.safetensors", {"b": np.zeros(2, np.float32)},
                            {"format": "pt"})
  weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
  (out / safetensors_io.INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
  (out / "tokenizer.json").write_text("{}")
  with pytest.raises(ValueError, match=r"not a jaxlab Test export \(it holds \[.*'tokenizer.json'\]\).*overwrite=True"):
    hf_common.prepare_export_dir(out, overwrite=False, marker=MARKER, what="Test")
  before = _snapshot(out)
  hf_common.prepare_export_dir(out, overwrite=True, marker=MARKER, what="Test")
  _save(out, _tensors(5), 1)
  # The foreign index would take precedence over the new file: it goes; its shards stay.
  after = _snapshot(out)
  assert safetensors_io.INDEX_NAME not in after
  for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer.json"):
    assert after[name] == before[name]
  _assert_same(_read(out), _tensors(5))
  # Now an export: written into again without overwrite=True; another kind of export is refused by name.
  assert hf_common.prepare_export_dir(out, overwrite=False, marker=MARKER, what="Test") == str(out)
  with pytest.raises(ValueError, match="it holds a jaxlab TestModel export"):
    hf_common.prepare_export_dir(out, overwrite=False, marker=(MARKER[0], "Other"), what="Other")


# Reading: broken JSON names its file; NaN and infinity name their tensor.


def test_bad_config_json_names_the_file_line_and_column(tmp_path):
  (tmp_path / "config.json").write_text('{\n  "model_type": "qwen2",\n  "hidden_size": 16,,\n}')
  message = re.escape(f"{tmp_path / 'config.json'} is not valid JSON: ") + ".* line 3, column 21"
  with pytest.raises(JSONFileError, match=message):
    hf_common.read_config_json(tmp_path)
  (tmp_path / "config.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match="config.json must hold a JSON object, got a JSON array"):
    hf_common.read_config_json(tmp_path)
  (tmp_path / "config.json").write_bytes(b'{"a": "\xff"}')
  with pytest.raises(ValueError, match="config.json is not valid JSON: not UTF-8"):
    hf_common.read_config_json(tmp_path)


def test_bad_index_json_names_the_file_line_and_column(tmp_path):
  _save(tmp_path / "out", _tensors(0), 2)
  index = tmp_path / "out" / safetensors_io.INDEX_NAME
  index.write_text(index.read_text().replace('"weight_map": {', '"weight_map": {{', 1))
  with pytest.raises(ValueError, match=re.escape(f"{index} is not valid JSON: ") + r".* line \d+, column \d+"):
    safetensors_io.Checkpoint(tmp_path / "out")


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e5m2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_tensor_is_refused_naming_tensor_and_file(tmp_path, dtype, bad):
  good = np.arange(6, dtype=np.float32).reshape(2, 3)
  broken = good.copy()
  broken[1, 2] = bad
  path = tmp_path / "model.safetensors"
  safetensors_io.write_file(path, {"good": good.astype(dtype), "layers.1.w": broken.astype(dtype),
                                   "ids": np.array([1, 2], np.int32)}, {"format": "pt"})
  checkpoint = safetensors_io.Checkpoint(tmp_path)
  np.testing.assert_array_equal(checkpoint.read("good"), good.astype(dtype))
  np.testing.assert_array_equal(checkpoint.read("ids"), [1, 2])
  message = re.escape(f"tensor 'layers.1.w' in {path}") + r" holds 1 non-finite value\(s\).*index \(1, 2\)"
  with pytest.raises(safetensors_io.NonFiniteError, match=message):
    checkpoint.read("layers.1.w")
  assert np.isnan(np.asarray(checkpoint.read("layers.1.w", check_finite=False), np.float32)[1, 2]) == np.isnan(bad)


def test_finiteness_is_checked_in_chunks(monkeypatch):
  monkeypatch.setattr(files, "_FINITE_CHUNK", 4)
  x = np.zeros((5, 3), np.float32)
  safetensors_io.require_finite(x, "x")
  x[4, 1] = x[0, 1] = np.inf
  with pytest.raises(ValueError, match=r"x holds 2 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 1\)"):
    safetensors_io.require_finite(x, "x")
  x[0, 1] = 0
  with pytest.raises(ValueError, match=r"x holds 1 non-finite .* index \(4, 1\)"):
    safetensors_io.require_finite(x, "x")
