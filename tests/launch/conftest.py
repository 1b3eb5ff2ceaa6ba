"""Fixtures for launch tests: a small config file, and fake Slurm/SkyPilot hosts.

The fake hosts execute generated job files with bash for real; only `srun`, `scontrol` and
`python` are replaced, by scripts that record what would have been started. So a test sees
the argv each process would receive after the shell has done its quoting and expansion.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from launch.cli import parse_run_args, resolve_config, should_initialize_distributed
from launch.config_loader import apply_overrides, flatten, load_config

SAMPLE_CONFIG = '''
"""A small config with one field of each kind the override parser handles."""
import ml_collections

VARIANTS = ("base", "small")


def get_config(arg=None):
  variant = arg or VARIANTS[0]
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.name = "run"
  c.use_bias = True
  c.init_checkpoint = None
  c.max_steps = ml_collections.config_dict.placeholder(int)
  c.mesh_shape = (1, -1)
  c.layer_sizes = [8, 16]
  c.optimizer = ml_collections.ConfigDict(dict(learning_rate=1e-3, b1=0.9, schedule="cosine"))
  c.model = ml_collections.ConfigDict(dict(num_layers=2, dropout=0.0, dtype="float32"))
  if variant == "small":
    c.model.num_layers = 1
  return c


def get_sweep():
  return [
      {"optimizer.learning_rate": 3e-4, "model.num_layers": 4, "mesh_shape": (2, 4)},
      {"optimizer.learning_rate": 1e-2, "name": "has space 'and quotes'", "use_bias": False},
      {"init_checkpoint": "/ckpt/dir with space", "max_steps": 7},
      {"optimizer.schedule": "$HOME", "init_checkpoint": 123, "layer_sizes": [1, 2, 3]},
  ]
'''

NODE_HOSTS = ("node-a", "node-b", "node-c", "node-d")
NODE_IPS = ("10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8")

_FAKE_SRUN = """#!/bin/bash
# Drops srun's own options, then starts the command once per task as srun would.
while [[ "$1" == --* ]]; do shift; done
for ((i = 0; i < FAKE_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_NTASKS=$FAKE_NTASKS SLURM_LOCALID=0 "$@" || exit $?
done
"""

_FAKE_SCONTROL = """#!/bin/bash
[[ "$1 $2 $3" == "show hostnames $FAKE_NODELIST" ]] || { echo "unexpected scontrol call: $*" >&2; exit 1; }
printf '%s\\n' $FAKE_HOSTS
"""

_FAKE_PYTHON = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def sample_config(tmp_path) -> pathlib.Path:
  path = tmp_path / "cfgs" / "sample.py"
  path.parent.mkdir()
  path.write_text(SAMPLE_CONFIG)
  return path


@pytest.fixture
def write_config(tmp_path):
  """Writes a config file from (dedented) source text; returns its path."""

  def write(source: str, name: str = "cfg.py") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path

  return write


class FakeHosts:
  """Runs job-file shell text on fake hosts and returns the `launch.run` argv of each process."""

  def __init__(self, root: pathlib.Path):
    if shutil.which("bash") is None:
      pytest.skip("bash is not available")
    self.bin = root / "fake_bin"
    self.bin.mkdir()
    for name, text in (("srun", _FAKE_SRUN), ("scontrol", _FAKE_SCONTROL), ("python", _FAKE_PYTHON)):
      (self.bin / name).write_text(text)
      (self.bin / name).chmod(0o755)
    self.log = root / "argv.jsonl"
    self.home = root / "home"

  def _run(self, args: list[str], env: dict[str, str]) -> list[list[str]]:
    self.log.unlink(missing_ok=True)
    base_env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "ARGV_LOG": str(self.log), "HOME": str(self.home)}
    result = subprocess.run(["bash", *args], env={**base_env, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"job script failed:\n{result.stderr}"
    return [json.loads(line) for line in self.log.read_text().splitlines()]

  def run_sbatch(self, script: pathlib.Path, array_task_id: int, nodes: int) -> list[list[str]]:
    hosts = NODE_HOSTS[:nodes]
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": str(array_task_id),
        "SLURM_JOB_NODELIST": f"node-[a-{hosts[-1][-1]}]",
        "SLURM_NTASKS": str(nodes),
        "SLURM_PROCID": "0",  # the batch script's own value; each task must see its own
        "FAKE_NODELIST": f"node-[a-{hosts[-1][-1]}]",
        "FAKE_HOSTS": " ".join(hosts),
        "FAKE_NTASKS": str(nodes),
    }
    return self._run([str(script)], env)

  def run_skypilot(self, run_text: str, nodes: int) -> list[list[str]]:
    """Runs the task's `run` text once per node, as SkyPilot does."""
    argvs = []
    for rank in range(nodes):
      env = {"SKYPILOT_NODE_IPS": "\n".join(NODE_IPS[:nodes]) + "\n", "SKYPILOT_NUM_NODES": str(nodes), "SKYPILOT_NODE_RANK": str(rank)}
      argvs.extend(self._run(["-c", run_text], env))
    return argvs


@pytest.fixture
def fake_hosts(tmp_path) -> FakeHosts:
  return FakeHosts(tmp_path)


def check_launch_run_argvs(argvs, *, config_spec, overrides, workdir, coordinator_host, port, nodes):
  """Every argv is a valid `launch.run` call whose resolved config carries `overrides`."""
  assert len(argvs) == nodes, f"expected one process per node, got {len(argvs)}"
  base = load_config(config_spec)
  expected = flatten(apply_overrides(base, overrides))
  process_ids = []
  for argv in argvs:
    assert argv[:2] == ["-m", "launch.run"], argv
    args = parse_run_args(argv[2:])
    assert args.config_spec == config_spec
    assert args.workdir == workdir
    assert args.coordinator_address == f"{coordinator_host}:{port}"
    assert args.num_processes == nodes
    assert should_initialize_distributed(args, environ={})
    process_ids.append(args.process_id)
    resolved = flatten(resolve_config(args))
    assert resolved == expected
    for key, value in overrides.items():
      assert resolved[key] == value and type(resolved[key]) is type(value), (key, resolved[key], value)
  assert sorted(process_ids) == list(range(nodes))


@pytest.fixture
def check_argvs():
  """`check_launch_run_argvs`, for test modules (conftest is not importable by name)."""
  return check_launch_run_argvs
