"""Sweep expansion, the manifest, the local backend (with a fake runner) and the sweep CLI."""

import json
import pathlib
import re
import subprocess
import sys
import types

import pytest

from launch import sweep
from launch.cli import parse_run_args, resolve_config
from launch.config_loader import ConfigError, flatten, load_sweep

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_run_slug_is_short_and_folder_safe():
  slug = sweep.run_slug({"optimizer.learning_rate": 3e-4, "mesh_shape": (2, 4), "name": "a b/c'd"})
  assert re.fullmatch(r"[A-Za-z0-9._+-]+", slug), slug
  assert slug.startswith("learning_rate-0.0003_mesh_shape-2_4")
  assert len(sweep.run_slug({f"k{i}": "x" * 30 for i in range(5)})) <= 48
  assert sweep.run_slug({}) == "base"


def test_plan_gives_each_run_its_own_workdir(sample_config, tmp_path):
  spec = str(sample_config)
  runs = sweep.plan_sweep(spec, str(tmp_path / "out"))
  entries = load_sweep(spec)
  assert [run.index for run in runs] == list(range(len(entries)))
  assert [run.overrides for run in runs] == entries
  workdirs = [pathlib.Path(run.workdir) for run in runs]
  assert len(set(workdirs)) == len(runs)
  for index, workdir in enumerate(workdirs):
    assert workdir.parent == tmp_path / "out" / "runs"
    assert workdir.name.startswith(f"{index}_")


def test_plan_reports_a_bad_base_override(sample_config, tmp_path):
  with pytest.raises(ConfigError, match="unknown config key 'optimizer.lr'"):
    sweep.plan_sweep(str(sample_config), str(tmp_path), {"optimizer.lr": "1"})


class FakeRunner:
  """Records each argv; fails (status 3) at the given call index."""

  def __init__(self, fail_at=None):
    self.calls = []
    self.fail_at = fail_at

  def __call__(self, argv):
    self.calls.append(list(argv))
    return types.SimpleNamespace(returncode=3 if len(self.calls) - 1 == self.fail_at else 0)


def test_local_runs_in_order_with_valid_commands(sample_config, tmp_path):
  spec = f"{sample_config}:small"
  runs = sweep.plan_sweep(spec, str(tmp_path))
  runner = FakeRunner()
  sweep.run_local(spec, runs, runner=runner, python="/venv/bin/python", log=lambda _: None)
  assert len(runner.calls) == len(runs)
  for run, argv in zip(runs, runner.calls):
    assert argv[:3] == ["/venv/bin/python", "-m", "launch.run"]
    args = parse_run_args(argv[3:])
    assert args.workdir == run.workdir
    resolved = flatten(resolve_config(args))
    assert all(resolved[key] == value for key, value in run.overrides.items())


def test_local_stops_at_the_first_failure(sample_config, tmp_path):
  spec = str(sample_config)
  runs = sweep.plan_sweep(spec, str(tmp_path))
  runner = FakeRunner(fail_at=1)
  with pytest.raises(sweep.SweepRunError) as e:
    sweep.run_local(spec, runs, runner=runner, log=lambda _: None)
  assert len(runner.calls) == 2
  assert e.value.run == runs[1] and e.value.returncode == 3
  assert runs[1].workdir in str(e.value) and "runs 2..3 were not started" in str(e.value)


def test_local_main_reports_failure_and_writes_manifest(sample_config, tmp_path, monkeypatch, capsys):
  runner = FakeRunner(fail_at=2)
  monkeypatch.setattr(subprocess, "run", runner)
  out = tmp_path / "out"
  assert sweep.main([f"--config={sample_config}", "--backend=local", f"--out={out}"]) == 1
  assert len(runner.calls) == 3
  assert "run 2 (" in capsys.readouterr().err
  content = json.loads((out / "sweep.json").read_text())
  assert content["backend"] == "local" and len(content["runs"]) == 4


def test_manifest_commands_resolve_to_the_sweep_values(sample_config, tmp_path):
  spec = str(sample_config)
  out = tmp_path / "out"
  assert sweep.main([f"--config={spec}", "--backend=slurm", f"--out={out}"]) == 0
  content = json.loads((out / "sweep.json").read_text())
  assert content["config"] == spec and content["job_files"] == [str(out / "sweep.sbatch")]
  for index, (record, entry) in enumerate(zip(content["runs"], load_sweep(spec), strict=True)):
    assert record["index"] == index
    args = parse_run_args(record["command"][3:])
    assert args.workdir == record["workdir"]
    resolved = flatten(resolve_config(args))
    assert {key: resolved[key] for key in entry} == entry


def test_dry_run_writes_nothing(sample_config, tmp_path, capsys):
  out = tmp_path / "out"
  for backend in ("local", "slurm", "skypilot"):
    assert sweep.main([f"--config={sample_config}", f"--backend={backend}", f"--out={out}", "--dry_run"]) == 0
  assert not out.exists()
  printed = capsys.readouterr().out
  assert "#SBATCH --array=0-3" in printed and "num_nodes: 1" in printed and "launch.run" in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--backend=skypilot", "--partition=gpu"], "--partition applies to --backend=slurm only"),
        (["--backend=slurm", "--accelerators=H100:8"], "--accelerators applies to --backend=skypilot only"),
        (["--backend=local", "--nodes=2"], "runs on this host"),
        (["--backend=slurm", "--nodes=0"], "at least 1"),
        (["--backend=skypilot", "--gpus_per_node=8"], "needs --accelerators"),
        (["--backend=slurm", "--port=0"], "--port"),
        (["--backend=cloud"], "invalid choice"),
        (["--backend=slurm", "--bogus=1"], "is not a config override"),
        (["--backend=slurm", "--config.optimizer.lr=1"], "nearest valid keys: optimizer"),
    ],
)
def test_bad_sweep_flags_exit_with_status_2(sample_config, tmp_path, capsys, flags, message):
  with pytest.raises(SystemExit) as e:
    sweep.main([f"--config={sample_config}", f"--out={tmp_path / 'out'}", *flags])
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_config_without_sweep_exits_with_status_2(write_config, tmp_path, capsys):
  path = write_config("import ml_collections\ndef get_config(arg=None):\n  return ml_collections.ConfigDict({'a': 1})\n")
  with pytest.raises(SystemExit):
    sweep.main([f"--config={path}", "--backend=slurm", f"--out={tmp_path / 'out'}"])
  assert "get_sweep" in capsys.readouterr().err


def test_module_entry_point(sample_config, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.sweep", f"--config={sample_config}", "--backend=slurm", f"--out={tmp_path}", "--dry_run"],
      cwd=REPO, capture_output=True, text=True, timeout=60,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("#!/bin/bash")
