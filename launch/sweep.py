"""Expands a config file's `get_sweep()` into runs; runs them here or writes job files.

  python -m launch.sweep --config=configs/lm_tiny.py:smoke --backend=slurm --out=sweeps/lr \
      [--nodes=2] [--gpus_per_node=8] [--partition=gpu] [--time=04:00:00] [--port=8476] \
      [--accelerators=H100:8] [--setup="pip install -e ."] [--config.KEY=VALUE ...] [--dry_run]

Run i gets the workdir OUT/runs/<i>_<slug of its overrides>. Backends:
  local:    runs one after another in this process's Python; stops at the first failure.
  slurm:    writes OUT/sweep.sbatch, an array job with one task per run (`sbatch` it).
  skypilot: writes OUT/skypilot/<i>_<slug>.yaml, one task per run (`sky launch` each).
OUT/sweep.json lists every run's index, overrides, workdir and command. `--config.KEY=VALUE`
flags apply to every run; a sweep value for the same key wins. `--dry_run` prints what would
be run or written and touches nothing.
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxlab import files
from launch.cli import parse_override_flag, run_command
from launch.config_loader import ConfigError, apply_overrides, flatten, format_override_value, load_config, load_sweep, split_spec
from launch.jobs import DEFAULT_COORDINATOR_PORT, SweepRun
from launch.jobs import skypilot, slurm

BACKENDS = ("local", "slurm", "skypilot")


class SweepRunError(RuntimeError):
  """A local sweep run exited with a non-zero status; later runs were not started."""

  def __init__(self, run: SweepRun, returncode: int, total: int):
    self.run = run
    self.returncode = returncode
    message = f"run {run.index} ({run.workdir}) failed with exit status {returncode}"
    if run.index + 1 < total:
      message += f"; runs {run.index + 1}..{total - 1} were not started"
    super().__init__(message)


def run_slug(overrides: Mapping[str, Any], max_len: int = 48) -> str:
  """A short folder-safe name for a run, from the last part of each key and its value."""
  parts = []
  for key, value in overrides.items():
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", format_override_value(value)).strip("_")
    parts.append(f"{key.rsplit('.', 1)[-1]}-{text}")
  slug = "_".join(parts)[:max_len].rstrip("_-.")
  return slug or "base"


def plan_sweep(config_spec: str, out_dir: str, base_overrides: Mapping[str, Any] | None = None) -> list[SweepRun]:
  """The runs of the sweep: base overrides, then each sweep entry, each checked against the config."""
  # Checks each base override by name and keeps its typed value, so sweep.json shows types.
  resolved = flatten(apply_overrides(load_config(config_spec), base_overrides or {}))
  base = {key: resolved[key] for key in base_overrides or {}}
  runs = []
  for index, entry in enumerate(load_sweep(config_spec)):
    workdir = pathlib.PurePath(out_dir) / "runs" / f"{index}_{run_slug(entry)}"
    runs.append(SweepRun(index=index, overrides={**base, **entry}, workdir=str(workdir)))
  return runs


def manifest(config_spec: str, backend: str, runs: Sequence[SweepRun], job_files: Sequence[str] = ()) -> dict[str, Any]:
  """What `sweep.json` records: the sweep's source and, per run, its overrides and command."""
  return {
      "config": config_spec,
      "backend": backend,
      "job_files": list(job_files),
      "runs": [
          {
              "index": run.index,
              "overrides": run.overrides,
              "workdir": run.workdir,
              "command": run_command(config_spec, run.workdir, run.overrides),
          }
          for run in runs
      ],
  }


def write_manifest(out_dir: str | pathlib.Path, content: Mapping[str, Any]) -> pathlib.Path:
  path = pathlib.Path(out_dir) / "sweep.json"
  path.parent.mkdir(parents=True, exist_ok=True)
  # Values without a JSON form (none in a valid sweep) are recorded by repr rather than lost.
  files.write_text(path, json.dumps(content, indent=2, default=repr) + "\n")
  return path


def run_local(
    config_spec: str,
    runs: Sequence[SweepRun],
    *,
    runner: Callable[[list[str]], Any] | None = None,
    python: str = sys.executable,
    log: Callable[[str], None] = print,
) -> None:
  """Runs each run's `launch.run` command in order; raises SweepRunError on the first failure.

  `runner(argv)` returns an object with `returncode`; None means `subprocess.run`.
  """
  runner = runner or subprocess.run
  for run in runs:
    argv = run_command(config_spec, run.workdir, run.overrides, python=python)
    log(f"[sweep] run {run.index + 1}/{len(runs)}: {' '.join(argv)}")
    returncode = runner(argv).returncode
    if returncode != 0:
      raise SweepRunError(run, returncode, len(runs))


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m launch.sweep",
      description="Expand a config file's get_sweep() into runs, run them locally or write Slurm/SkyPilot job files.",
      epilog="Extra --config.KEY=VALUE flags apply to every run.",
      allow_abbrev=False,
  )
  parser.add_argument("--config", required=True, help="path/to/file.py[:variant] defining get_sweep()")
  parser.add_argument("--backend", required=True, choices=BACKENDS)
  parser.add_argument("--out", required=True, help="sweep folder: runs/, sweep.json and job files go here")
  parser.add_argument("--nodes", type=int, default=1, help="hosts per run (slurm, skypilot)")
  parser.add_argument("--gpus_per_node", type=int, default=None, help="slurm --gpus-per-node; skypilot accelerator count")
  parser.add_argument("--partition", default=None, help="slurm partition")
  parser.add_argument("--time", default=None, help="slurm time limit, e.g. 04:00:00")
  parser.add_argument("--accelerators", default=None, help="skypilot accelerators, e.g. H100:8, or H100 with --gpus_per_node")
  parser.add_argument("--setup", default=None, help=f"skypilot setup command (default: {skypilot.DEFAULT_SETUP})")
  parser.add_argument("--port", type=int, default=DEFAULT_COORDINATOR_PORT, help="jax coordinator port (slurm, skypilot)")
  parser.add_argument("--dry_run", action="store_true", help="print what would run or be written; touch nothing")
  return parser


def _check_backend_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
  only = {"partition": "slurm", "time": "slurm", "accelerators": "skypilot", "setup": "skypilot"}
  for flag, backend in only.items():
    if getattr(args, flag) is not None and args.backend != backend:
      parser.error(f"--{flag} applies to --backend={backend} only")
  if args.backend == "local" and (args.nodes != 1 or args.gpus_per_node is not None):
    parser.error("--backend=local runs on this host: drop --nodes and --gpus_per_node")
  if args.nodes < 1:
    parser.error(f"--nodes must be at least 1, got {args.nodes}")
  if args.gpus_per_node is not None and args.gpus_per_node < 1:
    parser.error(f"--gpus_per_node must be at least 1, got {args.gpus_per_node}")
  if not 0 < args.port < 65536:
    parser.error(f"--port must be in 1..65535, got {args.port}")
  if args.backend == "skypilot" and args.gpus_per_node is not None:
    if not args.accelerators or ":" in args.accelerators:
      parser.error("with --backend=skypilot, --gpus_per_node needs --accelerators=TYPE (without a count), e.g. H100")


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
  _check_backend_flags(args, parser)
  try:
    base = dict(parse_override_flag(token) for token in extra)
    runs = plan_sweep(args.config, args.out, base)
  except ConfigError as e:
    parser.error(str(e))
  out = pathlib.Path(args.out)
  name = re.sub(r"[^A-Za-z0-9_-]+", "_", pathlib.PurePath(split_spec(args.config)[0]).stem)
  job_files: list[str] = []

  if args.backend == "local":
    if args.dry_run:
      for run in runs:
        print(" ".join(run_command(args.config, run.workdir, run.overrides)))
      return 0
    write_manifest(out, manifest(args.config, args.backend, runs))
    try:
      run_local(args.config, runs)
    except SweepRunError as e:
      print(f"launch.sweep: {e}", file=sys.stderr)
      return 1
    print(f"[sweep] all {len(runs)} runs finished; workdirs under {out / 'runs'}")
    return 0

  if args.backend == "slurm":
    text = slurm.sbatch_script(
        args.config, runs, nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
        time=args.time, job_name=f"sweep_{name}", log_dir=str(out / "logs"), port=args.port,
    )
    if args.dry_run:
      print(text)
      return 0
    job_files.append(str(slurm.write_sbatch(out / "sweep.sbatch", text, out / "logs")))
    hint = f"submit from the repository root: sbatch {job_files[0]}"
  else:
    accelerators = args.accelerators
    if accelerators and args.gpus_per_node is not None:
      accelerators = f"{accelerators}:{args.gpus_per_node}"
    setup = args.setup if args.setup is not None else skypilot.DEFAULT_SETUP
    texts = [
        skypilot.task_yaml(args.config, run, nodes=args.nodes, accelerators=accelerators, setup=setup, name=f"sweep-{name}", port=args.port)
        for run in runs
    ]
    if args.dry_run:
      print("\n---\n".join(texts))
      return 0
    job_files.extend(str(p) for p in skypilot.write_tasks(out / "skypilot", runs, texts))
    hint = f"launch each from the repository root: sky launch -c NAME {out / 'skypilot'}/<run>.yaml"
  write_manifest(out, manifest(args.config, args.backend, runs, job_files))
  print(f"[sweep] {len(runs)} runs; wrote {', '.join(job_files)} and {out / 'sweep.json'}; {hint}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
