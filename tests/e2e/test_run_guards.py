"""What `launch.run` refuses before it touches a workdir: a busy workdir, a checkpoint of other
shapes, impossible settings. Each refusal is the last thing printed, in one paragraph."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from launch.workdir_lock import WorkdirLock
from tests.e2e.conftest import REPO, launch_args, run

pytestmark = pytest.mark.e2e

QUICK = {"train.num_steps": 2, "checkpoint.save_every": 1, "train.log_every": 1, "train.eval_every": 0}


def _refused(workdir, overrides, env, timeout=300) -> str:
  proc = subprocess.run(launch_args(workdir, overrides), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 2, f"expected a refusal (exit 2), got {proc.returncode}:\n{proc.stderr[-4000:]}"
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("launch.run: error: "), proc.stderr[-4000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
  return last


def test_second_run_on_a_held_workdir_is_refused_naming_the_holder(tmp_path, env):
  workdir = tmp_path / "run"
  workdir.mkdir()
  started = time.monotonic()
  with WorkdirLock(workdir):
    message = _refused(workdir, {}, env)
  assert time.monotonic() - started < 60  # refused before jax starts, not after a step
  assert f"in use by another run: process {os.getpid()} on host {socket.gethostname()}, started " in message
  assert not (workdir / "config.json").exists()


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
  code = ("import sys, time; from launch.workdir_lock import WorkdirLock; "
          "WorkdirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)")
  holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  try:
    lock = WorkdirLock(tmp_path)
    try:
      lock.acquire()
      raise AssertionError("the lock of a live holder was granted")
    except OSError as e:
      assert f"process {holder.pid}" in str(e)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with WorkdirLock(tmp_path):  # the kernel dropped the dead holder's lock
    holder_info = json.loads((tmp_path / "run.lock").read_text())
    assert holder_info["pid"] == os.getpid()


def test_checkpoint_of_other_shapes_is_refused_before_config_json_changes(tmp_path, env):
  workdir = tmp_path / "run"
  run(workdir, QUICK, env=env)
  config_before = (workdir / "config.json").read_bytes()
  steps_before = sorted(p.name for p in (workdir / "checkpoints").iterdir())

  message = _refused(workdir, {**QUICK, "model.mlp_dim": 128}, env)
  assert "holds parameters of other shapes than this config builds" in message
  assert "model.mlp_dim 256 -> 128" in message and "(--config.model.mlp_dim=256)" in message
  assert re.search(r": saved float32\[[0-9,]*256[0-9,]*\], now float32\[[0-9,]*128[0-9,]*\]", message), message
  assert (workdir / "config.json").read_bytes() == config_before
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == steps_before
  assert not (workdir / "checkpoints_rejected").exists()


def test_changed_settings_that_keep_shapes_resume_and_keep_the_old_config(tmp_path, env):
  workdir = tmp_path / "run"
  run(workdir, QUICK, env=env)
  old = json.loads((workdir / "config.json").read_text())
  out = run(workdir, {**QUICK, "train.num_steps": 3}, env=env)
  assert "Resumed from checkpoint step 2" in out
  assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 3
  [kept] = workdir.glob("config.*.json")
  assert json.loads(kept.read_text()) == old


def test_impossible_settings_are_refused_at_config_time_naming_the_key(tmp_path, env):
  message = _refused(tmp_path / "a", {"train.num_steps": -5}, env)
  assert "train.num_steps=-5" in message and "cannot be negative" in message
  message = _refused(tmp_path / "b", {"data.global_batch_size": 63}, env)
  assert "data.global_batch_size=63 does not divide over the 4 devices" in message
  assert "--config.data.global_batch_size=64" in message
  message = _refused(tmp_path / "c", {"model.dtype": "float31"}, env)
  assert "model.dtype='float31'" in message and "bfloat16" in message
  for name in "abc":
    assert not (tmp_path / name / "config.json").exists()
