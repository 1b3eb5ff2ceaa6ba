"""SkyPilot: one task YAML per sweep run, `num_nodes` hosts each, one process per host.

SkyPilot syncs the working directory (`workdir: .`) to every node, runs `setup` once per
node, then `run` on every node with SKYPILOT_NODE_IPS (newline-separated, head node first),
SKYPILOT_NUM_NODES and SKYPILOT_NODE_RANK set; those give the coordinator flags. Launch a
task from the repository root: `sky launch -c NAME path/to/task.yaml`.
"""

import json
import pathlib
import shlex
from collections.abc import Sequence

from jaxlab import files
from launch.cli import run_command
from launch.jobs import DEFAULT_COORDINATOR_PORT, SweepRun, multiline_command

DEFAULT_SETUP = "pip install -e ."


def _block(text: str, indent: str = "  ") -> str:
  """A YAML literal block scalar body: every line indented, the text kept verbatim."""
  return "\n".join(indent + line if line else "" for line in text.splitlines())


def task_yaml(
    config_spec: str,
    run: SweepRun,
    *,
    nodes: int = 1,
    accelerators: str | None = None,
    setup: str = DEFAULT_SETUP,
    name: str = "sweep",
    port: int = DEFAULT_COORDINATOR_PORT,
) -> str:
  """The text of a SkyPilot task that runs one sweep run on `nodes` nodes."""
  if nodes < 1:
    raise ValueError(f"nodes must be at least 1, got {nodes}")
  argv = run_command(config_spec, run.workdir, run.overrides)
  command = multiline_command(
      shlex.join(argv[:3]),
      [
          *(shlex.quote(word) for word in argv[3:]),
          f'--coordinator_address="$(echo "$SKYPILOT_NODE_IPS" | head -n1):{port}"',
          '--num_processes="$SKYPILOT_NUM_NODES"',
          '--process_id="$SKYPILOT_NODE_RANK"',
      ],
  )
  resources = ["resources:", f"  accelerators: {json.dumps(accelerators)}"] if accelerators else ["resources: {}"]
  lines = [
      f"# SkyPilot task: run {run.index} of the sweep over {config_spec}.",
      "# Launch from the repository root: sky launch -c NAME path/to/this.yaml",
      f"name: {json.dumps(f'{name}-{run.index}')}",
      f"num_nodes: {nodes}",
      *resources,
      "workdir: .",
      "setup: |",
      _block(setup),
      "run: |",
      _block(command),
      "",
  ]
  return "\n".join(lines)


def write_tasks(out_dir: str | pathlib.Path, runs: Sequence[SweepRun], texts: Sequence[str]) -> list[pathlib.Path]:
  """Writes one `<run folder name>.yaml` per run under `out_dir`; returns the paths in run order."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = []
  for run, text in zip(runs, texts, strict=True):
    path = out_dir / f"{pathlib.PurePath(run.workdir).name}.yaml"
    files.write_text(path, text)
    paths.append(path)
  return paths
