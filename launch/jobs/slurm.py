"""Slurm: one sbatch array job per sweep, one array task per run, one process per node.

Each array task reads its workdir and overrides from bash arrays indexed by
SLURM_ARRAY_TASK_ID, takes the coordinator host from the first node of the allocation, and
starts one `launch.run` process per node with `srun`. SLURM_PROCID differs per process, so
it is expanded inside each task (by `bash -c`), not by the batch script.
"""

import pathlib
import re
import shlex
from collections.abc import Sequence

from jaxlab import files
from launch.cli import override_flags
from launch.jobs import DEFAULT_COORDINATOR_PORT, SweepRun, multiline_command

# Appends the per-process flags inside each srun task, then runs the command it was given.
_PER_TASK = 'exec "$@" --num_processes="$SLURM_NTASKS" --process_id="$SLURM_PROCID"'


def _bash_array(name: str, items: Sequence[str]) -> str:
  return "\n".join([f"{name}=(", *(f"  {shlex.quote(item)}" for item in items), ")"])


def _job_name(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "sweep"


def sbatch_script(
    config_spec: str,
    runs: Sequence[SweepRun],
    *,
    nodes: int = 1,
    gpus_per_node: int | None = None,
    partition: str | None = None,
    time: str | None = None,
    job_name: str = "sweep",
    log_dir: str = "logs",
    port: int = DEFAULT_COORDINATOR_PORT,
) -> str:
  """The text of an sbatch array job that runs every sweep run on `nodes` nodes.

  Submit it from the repository root (relative paths in it are relative to that directory).
  """
  if not runs:
    raise ValueError("a sweep needs at least one run")
  if [run.index for run in runs] != list(range(len(runs))):
    raise ValueError("sweep runs must be indexed 0..n-1 in order: the index is SLURM_ARRAY_TASK_ID")
  if nodes < 1:
    raise ValueError(f"nodes must be at least 1, got {nodes}")
  directives = [
      f"--job-name={_job_name(job_name)}",
      f"--array=0-{len(runs) - 1}",
      f"--nodes={nodes}",
      "--ntasks-per-node=1",
  ]
  if gpus_per_node:
    directives.append(f"--gpus-per-node={gpus_per_node}")
  if partition:
    directives.append(f"--partition={partition}")
  if time:
    directives.append(f"--time={time}")
  directives.append(f"--output={log_dir}/%A_%a.out")

  command = multiline_command(
      f"srun --nodes={nodes} --ntasks-per-node=1 --kill-on-bad-exit=1",
      [
          f"bash -c {shlex.quote(_PER_TASK)} launch_run",
          "python -m launch.run",
          shlex.quote(f"--config={config_spec}"),
          '--workdir="$RUN_WORKDIR"',
          f'--coordinator_address="$COORDINATOR_HOST:{port}"',
          '"${RUN_OVERRIDES[@]}"',
      ],
  )
  override_lines = [shlex.join(override_flags(run.overrides)) for run in runs]
  return "\n".join([
      "#!/bin/bash",
      f"# Sweep over {config_spec}: {len(runs)} runs, one array task each, {nodes} node(s) per run.",
      "# Submit from the repository root: sbatch path/to/sweep.sbatch",
      *(f"#SBATCH {d}" for d in directives),
      "set -eo pipefail",
      "",
      "# Per run, indexed by SLURM_ARRAY_TASK_ID.",
      _bash_array("WORKDIRS", [run.workdir for run in runs]),
      "# Each entry is a shell-quoted list of --config.KEY=VALUE flags.",
      _bash_array("OVERRIDES", override_lines),
      "",
      'RUN_WORKDIR="${WORKDIRS[$SLURM_ARRAY_TASK_ID]}"',
      "# eval only splits the shell-quoted words written above into an array.",
      'eval "RUN_OVERRIDES=(${OVERRIDES[$SLURM_ARRAY_TASK_ID]})"',
      "# sed reads all hosts: `head` would close the pipe early, and pipefail would stop the job.",
      'COORDINATOR_HOST="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)"',
      "",
      command,
      "",
  ])


def write_sbatch(path: str | pathlib.Path, text: str, log_dir: str | pathlib.Path) -> pathlib.Path:
  """Writes the script and creates its log folder (Slurm does not create it)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(log_dir).mkdir(parents=True, exist_ok=True)
  files.write_text(path, text)
  return path
