"""RunSource follows a splat_fit run folder: real orbax checkpoints of a FitState, read-only, with damaged
and vanishing steps skipped, the final PLY as a fallback, and presets from the run's dataset."""

import hashlib
import json
import math
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from configs.splat_fit import get_config
from jaxlab.checkpoint import Checkpointer
from jaxlab.splat import save_ply
from jaxlab.splat.datasets import load_dataset
from jaxlab.splat.fit import FitSettings, init_fit_state
from jaxlab.view import run_source
from jaxlab.view.run_source import RunSource
from tests.view.conftest import make_gaussians

SETTINGS = FitSettings()


@pytest.fixture(scope="module")
def fit_state():
  """A real FitState (Adam moments and densification statistics included) of 20 Gaussians in 32 slots."""
  return init_fit_state(make_gaussians(20, seed=1, sh_degree=1, capacity=32), SETTINGS)


def _save(workdir, steps_and_states):
  checkpointer = Checkpointer(workdir / "checkpoints", save_every=1, keep=10, async_save=False)
  for step, state in steps_and_states:
    assert checkpointer.save(step, state, {"next_index": step})
  checkpointer.close()


def _moved(state, offset):
  return state.replace(params=state.params.replace(means=state.params.means + offset))


def _assert_same_gaussians(got, want):
  for name in ("means", "log_scales", "quats", "opacity_logits", "sh", "active"):
    assert_array_equal(np.asarray(getattr(got, name)), np.asarray(getattr(want, name)), err_msg=name)


def _listing(root: pathlib.Path):
  """Every path under `root` with its size, mtime and content hash: any move, delete or write changes it."""
  entries = []
  for path in sorted(root.rglob("*")):
    stat = path.lstat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    entries.append((str(path.relative_to(root)), stat.st_size if path.is_file() else 0, stat.st_mtime_ns, digest))
  return entries


def test_empty_folder_waits_for_the_first_checkpoint(tmp_path):
  source = RunSource(tmp_path)
  assert source.poll() is None and source.poll() is None
  assert f"waiting for the first checkpoint in {tmp_path / 'checkpoints'}" in source.status()
  assert source.kind == "run" and source.background == (0.0, 0.0, 0.0)
  assert list(tmp_path.iterdir()) == []  # nothing created


def test_poll_returns_each_newer_step_once(tmp_path, fit_state):
  _save(tmp_path, [(10, fit_state)])
  source = RunSource(tmp_path)
  first = source.poll()
  assert first.step == 10 and first.label == "checkpoint step 10"
  _assert_same_gaussians(first.gaussians, fit_state.params)
  assert "checkpoint step 10 (20 Gaussians)" in source.status()
  assert source.poll() is None
  _save(tmp_path, [(20, _moved(fit_state, 1.0))])
  second = source.poll()
  assert second.step == 20
  assert_allclose(np.asarray(second.gaussians.means), np.asarray(fit_state.params.means) + 1.0)
  assert source.poll() is None
  # Without config.json the presets orbit the first snapshot's active Gaussians, and status says why.
  assert [p.name for p in source.presets] == ["front", "right", "back", "left", "top"]
  assert "no config.json" in source.status()


def test_damaged_newest_step_is_skipped_and_nothing_is_touched(tmp_path, fit_state):
  _save(tmp_path, [(10, fit_state), (20, _moved(fit_state, 2.0))])
  for path in (tmp_path / "checkpoints" / "20" / "state").rglob("*"):
    if path.is_file():  # every file of the newest step cut in half, as by a crash mid-copy
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  (tmp_path / "checkpoints" / "30.orbax-checkpoint-tmp-1700000000").mkdir()  # a save in progress
  (tmp_path / "checkpoints" / "30.orbax-checkpoint-tmp-1700000000" / "junk").write_bytes(b"partial")
  before = _listing(tmp_path)
  source = RunSource(tmp_path)
  snapshot = source.poll()
  assert snapshot.step == 10
  _assert_same_gaussians(snapshot.gaussians, fit_state.params)
  status = source.status()
  assert "checkpoint step 10" in status and "skipped checkpoint step 20 unreadable" in status
  assert "30" not in status.replace(str(tmp_path), "")  # the temporary folder is not a step
  assert source.poll() is None and "step 20" in source.status()
  assert _listing(tmp_path) == before
  assert not (tmp_path / "checkpoints_rejected").exists()
  # The run goes on: its next step is picked up.
  _save(tmp_path, [(40, _moved(fit_state, 4.0))])
  assert source.poll().step == 40


def test_step_deleted_while_reading_is_skipped(tmp_path, fit_state, monkeypatch):
  _save(tmp_path, [(10, fit_state), (20, _moved(fit_state, 2.0))])
  real_read = run_source.read_checkpoint_gaussians

  def rotated_away(step_dir):  # the run's keep=K rotation deletes the step between listing and reading
    if pathlib.Path(step_dir).name == "20":
      shutil.rmtree(step_dir)
    return real_read(step_dir)

  monkeypatch.setattr(run_source, "read_checkpoint_gaussians", rotated_away)
  source = RunSource(tmp_path)
  assert source.poll().step == 10
  assert "step 20" in source.status()
  assert source.poll() is None and "step 20" not in source.status()  # gone from the listing


def test_falls_back_to_the_final_ply(tmp_path, fit_state):
  gaussians = make_gaussians(12, seed=4, sh_degree=2)
  ply = tmp_path / "point_cloud" / "iteration_300" / "point_cloud.ply"
  ply.parent.mkdir(parents=True)
  save_ply(ply, gaussians)
  (tmp_path / "point_cloud" / "iteration_100").mkdir()  # no PLY inside: ignored
  source = RunSource(tmp_path)
  snapshot = source.poll()
  assert snapshot.step == 300 and "point_cloud" in snapshot.label
  _assert_same_gaussians(snapshot.gaussians, gaussians)
  assert source.poll() is None
  _save(tmp_path, [(400, fit_state)])
  assert source.poll().step == 400


def test_checkpoint_without_gaussians_is_skipped_with_the_reason(tmp_path):
  _save(tmp_path, [(5, {"params": {"w": np.ones((3, 2), np.float32)}, "step": np.int32(5)})])
  source = RunSource(tmp_path)
  assert source.poll() is None
  assert "not a Gaussians pytree" in source.status()


def _write_config(workdir, **data):
  config = get_config("smoke")
  config.data.update(data)
  (workdir / "config.json").write_text(json.dumps(json.loads(config.to_json_best_effort()), indent=2))
  return config


def test_presets_and_background_come_from_the_run_dataset(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXLAB_CACHE", str(tmp_path / "cache"))
  workdir = tmp_path / "run"
  workdir.mkdir()
  config = _write_config(workdir, background=(1.0, 1.0, 1.0), synthetic_width=16, synthetic_height=12,
                         synthetic_num_train=3, synthetic_num_test=2, synthetic_num_points=50)
  source = RunSource(workdir)
  assert source.background == (1.0, 1.0, 1.0)
  scene_dir = next((tmp_path / "cache").iterdir())  # the embedded scene, generated on first use
  splits = [load_dataset(scene_dir, format="blender", split=split) for split in ("test", "train")]
  assert [p.name for p in source.presets] == [*splits[0].names, *splits[1].names]
  cameras = jax.tree.map(lambda *x: np.concatenate(x), *(s.cameras for s in splits))
  for i, preset in enumerate(source.presets):
    assert_allclose(preset.camera_to_world_44, np.linalg.inv(np.asarray(cameras.world_to_camera[i], np.float64)), atol=1e-6)
    assert preset.fov_y == pytest.approx(2 * math.atan(config.data.synthetic_height / (2 * float(cameras.fy[i]))))
  assert "camera presets" not in source.status()


def test_a_config_written_after_the_viewer_started_is_read(tmp_path):
  # The viewer is often started first; the run writes config.json when it starts.
  source = RunSource(tmp_path)
  assert "no config.json" in source.status()
  _write_config(tmp_path, path=str(tmp_path / "no_such_dataset"), background=(0.0, 0.5, 1.0))
  assert source.poll() is None
  assert source.background == (0.0, 0.5, 1.0) and "no config.json" not in source.status()


def test_unloadable_dataset_does_not_fail(tmp_path, fit_state):
  _write_config(tmp_path, path=str(tmp_path / "no_such_dataset"), background=(0.0, 0.5, 1.0))
  _save(tmp_path, [(10, fit_state)])
  source = RunSource(tmp_path)
  assert source.presets == [] and source.background == (0.0, 0.5, 1.0)
  assert source.poll().step == 10
  assert len(source.presets) == 5  # the orbit around the first snapshot
  assert "dataset cameras unavailable" in source.status() and "no_such_dataset" in source.status()


def test_missing_workdir_is_a_source_error(tmp_path):
  with pytest.raises(run_source.SourceError, match="does not exist"):
    RunSource(tmp_path / "nowhere")
  assert not os.path.exists(tmp_path / "nowhere")
