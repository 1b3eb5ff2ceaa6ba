"""Slurm and SkyPilot job files: directives, and the launch.run processes they would start.

The generated files are executed by bash on fake hosts (conftest.FakeHosts); every process
argv is parsed by `parse_run_args` and resolved, and must carry its sweep entry's values.
"""

import re

import pytest
import yaml

from launch import sweep
from launch.config_loader import load_sweep
from launch.jobs import SweepRun, slurm


def _directives(script: str) -> dict[str, str]:
  return dict(re.findall(r"^#SBATCH (--[\w-]+)=(.*)$", script, flags=re.M))


@pytest.mark.parametrize("nodes", [1, 2])
def test_sbatch_array_job_starts_one_valid_run_per_host(sample_config, tmp_path, fake_hosts, check_argvs, nodes):
  spec = f"{sample_config}:small"
  out = tmp_path / "sweep"
  assert sweep.main([f"--config={spec}", "--backend=slurm", f"--out={out}", f"--nodes={nodes}", "--gpus_per_node=8", "--partition=gpu", "--time=01:00:00", "--port=9999"]) == 0
  script = (out / "sweep.sbatch").read_text()
  entries = load_sweep(spec)

  directives = _directives(script)
  assert directives["--array"] == f"0-{len(entries) - 1}"
  assert directives["--nodes"] == str(nodes)
  assert directives["--ntasks-per-node"] == "1"
  assert directives["--gpus-per-node"] == "8"
  assert directives["--partition"] == "gpu"
  assert directives["--time"] == "01:00:00"
  assert (out / "logs").is_dir()  # Slurm does not create the --output folder
  srun_lines = [line for line in script.splitlines() if line.startswith("srun ")]
  assert len(srun_lines) == 1 and "--ntasks-per-node=1" in srun_lines[0]

  runs = sweep.plan_sweep(spec, str(out))
  for index, entry in enumerate(entries):
    argvs = fake_hosts.run_sbatch(out / "sweep.sbatch", array_task_id=index, nodes=nodes)
    check_argvs(argvs, config_spec=spec, overrides=entry, workdir=runs[index].workdir, coordinator_host="node-a", port=9999, nodes=nodes)


def test_skypilot_tasks_start_one_valid_run_per_node(sample_config, tmp_path, fake_hosts, check_argvs):
  spec = str(sample_config)
  out = tmp_path / "sweep"
  assert sweep.main([f"--config={spec}", "--backend=skypilot", f"--out={out}", "--nodes=2", "--accelerators=H100", "--gpus_per_node=8"]) == 0
  entries = load_sweep(spec)
  runs = sweep.plan_sweep(spec, str(out))
  files = sorted((out / "skypilot").glob("*.yaml"), key=lambda p: int(p.name.split("_")[0]))
  assert len(files) == len(entries)
  for index, (file, entry) in enumerate(zip(files, entries)):
    task = yaml.safe_load(file.read_text())
    assert task["num_nodes"] == 2
    assert task["resources"] == {"accelerators": "H100:8"}
    assert task["workdir"] == "."
    assert task["setup"].strip() == "pip install -e ."
    argvs = fake_hosts.run_skypilot(task["run"], nodes=2)
    check_argvs(argvs, config_spec=spec, overrides=entry, workdir=runs[index].workdir, coordinator_host="10.0.0.5", port=8476, nodes=2)


def test_skypilot_without_accelerators_has_empty_resources(sample_config, tmp_path):
  out = tmp_path / "sweep"
  assert sweep.main([f"--config={sample_config}", "--backend=skypilot", f"--out={out}", "--setup=pip install -e .[test]"]) == 0
  task = yaml.safe_load(next((out / "skypilot").glob("0_*.yaml")).read_text())
  assert task["resources"] == {} and task["num_nodes"] == 1
  assert task["setup"].strip() == "pip install -e .[test]"


def test_base_overrides_reach_every_job(sample_config, tmp_path, fake_hosts, check_argvs):
  spec = str(sample_config)
  out = tmp_path / "sweep"
  assert sweep.main([f"--config={spec}", "--backend=slurm", f"--out={out}", "--config.seed=11", "--config.optimizer.learning_rate=0.5"]) == 0
  runs = sweep.plan_sweep(spec, str(out), {"seed": "11", "optimizer.learning_rate": "0.5"})
  for run in runs:
    assert run.overrides["seed"] == 11
    argvs = fake_hosts.run_sbatch(out / "sweep.sbatch", array_task_id=run.index, nodes=1)
    check_argvs(argvs, config_spec=spec, overrides=run.overrides, workdir=run.workdir, coordinator_host="node-a", port=8476, nodes=1)
  # A sweep value wins over a base value for the same key.
  assert [run.overrides["optimizer.learning_rate"] for run in runs][:2] == [3e-4, 1e-2]
  assert runs[2].overrides["optimizer.learning_rate"] == 0.5


def test_sbatch_script_needs_runs_indexed_from_zero():
  runs = [SweepRun(index=1, overrides={}, workdir="w1")]
  with pytest.raises(ValueError, match="indexed 0..n-1"):
    slurm.sbatch_script("c.py", runs)
  with pytest.raises(ValueError, match="at least one run"):
    slurm.sbatch_script("c.py", [])
