"""The README's main job end to end: train, checkpoint, resume, stop on SIGTERM, recover."""

import importlib.util
import signal
import time

import pytest

from jaxlab.metrics import read_metrics
from tests.e2e.conftest import REPO, finish, result, run, start_run

pytestmark = pytest.mark.e2e


def _smoke_target() -> float:
  spec = importlib.util.spec_from_file_location("lm_tiny", REPO / "configs" / "lm_tiny.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.SMOKE_TARGET_ACCURACY


def test_smoke_reaches_target_accuracy_and_resumes(tmp_path, env):
  workdir = tmp_path / "run"
  run(workdir, env=env)
  summary = result(workdir)
  assert summary["status"] == "completed" and summary["final_step"] == 300
  assert summary["eval/accuracy"] >= _smoke_target(), summary
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [200, 250, 300]
  rows = read_metrics(workdir / "metrics.jsonl")
  train_steps = [r["step"] for r in rows if "train/loss" in r]
  assert train_steps == list(range(20, 301, 20))
  assert rows[0]["train/loss"] > 3 * rows[-1].get("train/loss", summary["train/loss"])  # it learned
  assert any(p.name.startswith("events.out.tfevents") for p in (workdir / "tb").iterdir())
  assert (workdir / "config.json").exists()

  again = run(workdir, env=env)
  assert "Resumed from checkpoint step 300" in again
  assert result(workdir)["start_step"] == 300


def test_sigterm_saves_and_resume_matches_uninterrupted_run(tmp_path, env):
  overrides = {"train.num_steps": 80, "train.log_every": 2, "checkpoint.save_every": 1000}
  straight = tmp_path / "straight"
  run(straight, overrides, env=env)

  stopped = tmp_path / "stopped"
  proc = start_run(stopped, overrides, env=env)
  deadline = time.monotonic() + 240
  while not (stopped / "metrics.jsonl").exists() or not read_metrics(stopped / "metrics.jsonl"):
    assert proc.poll() is None and time.monotonic() < deadline, "run ended before any metrics were written"
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out = finish(proc)
  summary = result(stopped)
  assert summary["status"] == "preempted", out[-3000:]
  stop_step = summary["final_step"]
  assert 0 < stop_step < 80
  assert (stopped / "checkpoints" / str(stop_step)).is_dir()  # saved although save_every is 1000

  resumed_out = run(stopped, overrides, env=env)
  assert f"Resumed from checkpoint step {stop_step}" in resumed_out
  a, b = result(straight), result(stopped)
  assert b["final_step"] == 80 and b["status"] == "completed"
  for key in ("eval/loss", "eval/accuracy", "train/loss"):
    assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key


def test_truncated_newest_checkpoint_is_reported_and_previous_used(tmp_path, env):
  workdir = tmp_path / "run"
  overrides = {"train.num_steps": 40, "checkpoint.save_every": 10, "checkpoint.keep": 5, "train.log_every": 10}
  run(workdir, overrides, env=env)
  newest = workdir / "checkpoints" / "40"
  victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])

  out = run(workdir, {**overrides, "train.num_steps": 50}, env=env)
  assert "Checkpoint step 40" in out and "unusable" in out
  assert "Resumed from checkpoint step 30" in out
  assert result(workdir)["start_step"] == 30 and result(workdir)["final_step"] == 50
  assert any(p.name.startswith("40.") for p in (workdir / "checkpoints_rejected").iterdir())
