"""configs/lm_tiny.py: its variants load and its sweep's Slurm and SkyPilot files validate."""

import pathlib

import pytest
import yaml

from launch import sweep
from launch.config_loader import load_config, load_sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
LM_TINY = REPO / "configs" / "lm_tiny.py"


def test_variants_load():
  assert load_config(f"{LM_TINY}:default").to_dict() == load_config(str(LM_TINY)).to_dict()
  assert load_config(f"{LM_TINY}:smoke").to_dict() != load_config(str(LM_TINY)).to_dict()


@pytest.mark.parametrize("variant", ["default", "smoke"])
def test_sweep_job_files_validate(tmp_path, fake_hosts, check_argvs, variant):
  spec = f"{LM_TINY}:{variant}"
  entries = load_sweep(spec)
  out = tmp_path / "sweep"
  assert sweep.main([f"--config={spec}", "--backend=slurm", f"--out={out}", "--nodes=2", "--gpus_per_node=8"]) == 0
  assert sweep.main([f"--config={spec}", "--backend=skypilot", f"--out={out}", "--nodes=2", "--accelerators=H100:8"]) == 0
  runs = sweep.plan_sweep(spec, str(out))
  for run, entry in zip(runs, entries, strict=True):
    argvs = fake_hosts.run_sbatch(out / "sweep.sbatch", array_task_id=run.index, nodes=2)
    check_argvs(argvs, config_spec=spec, overrides=entry, workdir=run.workdir, coordinator_host="node-a", port=8476, nodes=2)
    task = yaml.safe_load((out / "skypilot" / f"{pathlib.PurePath(run.workdir).name}.yaml").read_text())
    argvs = fake_hosts.run_skypilot(task["run"], nodes=2)
    check_argvs(argvs, config_spec=spec, overrides=entry, workdir=run.workdir, coordinator_host="10.0.0.5", port=8476, nodes=2)
