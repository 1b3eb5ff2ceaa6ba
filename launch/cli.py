"""The `launch.run` command line: parsing, config resolution, workdir and multi-process checks.

  python -m launch.run --config=configs/lm_tiny.py:smoke --workdir=/tmp/run \
      [--config.optimizer.learning_rate=1e-3 ...] \
      [--coordinator_address=HOST:PORT --num_processes=N --process_id=I] \
      [--distributed=auto|on|off]

Bad flags raise `ConfigError` (a ValueError) with a message naming the problem and the valid
choices; `launch.run` prints it and exits with status 2. Nothing here imports jax, so flag
errors cost no accelerator start-up.
"""

import dataclasses
import difflib
import os
import pathlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from launch.config_loader import ConfigError, apply_overrides, format_override_value, load_config

USAGE = (
    "usage: python -m launch.run --config=path/to/file.py[:variant] --workdir=DIR "
    "[--config.KEY=VALUE ...] [--coordinator_address=HOST:PORT --num_processes=N --process_id=I] "
    "[--distributed=auto|on|off]"
)
DISTRIBUTED_MODES = ("auto", "on", "off")
_VALUE_FLAGS = ("config", "workdir", "coordinator_address", "num_processes", "process_id", "distributed")
_COORDINATOR_FLAGS = ("coordinator_address", "num_processes", "process_id")
_KEY_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class WorkdirError(OSError):
  """The workdir cannot be created or written; raised before any compute starts."""


@dataclasses.dataclass(frozen=True)
class RunArgs:
  """Parsed `launch.run` flags. `overrides` maps dotted config keys to their command-line text."""

  config_spec: str
  workdir: str
  overrides: dict[str, str] = dataclasses.field(default_factory=dict)
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  distributed: str = "auto"

  def __post_init__(self):
    if self.distributed not in DISTRIBUTED_MODES:
      raise ConfigError(f"--distributed={self.distributed!r} is not one of {', '.join(DISTRIBUTED_MODES)}")


def parse_override_flag(token: str) -> tuple[str, str]:
  """Splits `--config.a.b=value` into ("a.b", "value"); anything else is a ConfigError."""
  if not token.startswith("--config."):
    raise ConfigError(f"{token!r} is not a config override; write --config.KEY=VALUE")
  name, eq, value = token[len("--config."):].partition("=")
  if not eq:
    raise ConfigError(f"malformed override {token!r}: write --config.KEY=VALUE (the '=' is required)")
  if not all(_KEY_PART.fullmatch(part) for part in name.split(".")):
    raise ConfigError(f"malformed override {token!r}: KEY must be dotted identifiers such as optimizer.learning_rate")
  return name, value


def _parse_int(flag: str, text: str, minimum: int) -> int:
  try:
    value = int(text)
  except ValueError:
    raise ConfigError(f"--{flag}={text!r} is not an integer") from None
  if value < minimum:
    raise ConfigError(f"--{flag}={value} must be at least {minimum}")
  return value


def _check_coordinator_address(text: str) -> str:
  host, colon, port = text.rpartition(":")
  if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ConfigError(f"--coordinator_address={text!r} must be HOST:PORT with a port in 1..65535")
  return text


def parse_run_args(argv: Sequence[str]) -> RunArgs:
  """Parses `launch.run` flags (without the program name); raises ConfigError on bad flags.

  Named flags take `--flag=value` or `--flag value`; overrides must be `--config.KEY=VALUE`.
  A repeated override replaces the earlier one; a repeated named flag is an error. The three
  coordinator flags come together or not at all.
  """
  values: dict[str, str] = {}
  overrides: dict[str, str] = {}
  i = 0
  while i < len(argv):
    token = argv[i]
    if token in ("-h", "--help"):
      raise ConfigError(USAGE)  # launch.run prints it; nothing is run
    if not token.startswith("--"):
      raise ConfigError(f"unexpected argument {token!r}; {USAGE}")
    name, eq, value = token[2:].partition("=")
    if name.startswith("config."):
      key, value = parse_override_flag(token)
      overrides[key] = value
    elif name in _VALUE_FLAGS:
      if not eq:
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
          raise ConfigError(f"--{name} needs a value: --{name}=VALUE")
        i += 1
        value = argv[i]
      if name in values:
        raise ConfigError(f"--{name} is given twice ({values[name]!r} and {value!r})")
      if not value:
        raise ConfigError(f"--{name} needs a non-empty value")
      values[name] = value
    else:
      near = difflib.get_close_matches(name, _VALUE_FLAGS, n=1)
      hint = f"did you mean --{near[0]}? " if near else ""
      raise ConfigError(f"unknown flag --{name}; {hint}valid flags: {', '.join('--' + f for f in _VALUE_FLAGS)}, --config.KEY=VALUE")
    i += 1

  missing = [f"--{f}" for f in ("config", "workdir") if f not in values]
  if missing:
    raise ConfigError(f"missing required flag {' and '.join(missing)}; {USAGE}")
  given = [f for f in _COORDINATOR_FLAGS if f in values]
  if given and len(given) != len(_COORDINATOR_FLAGS):
    absent = [f"--{f}" for f in _COORDINATOR_FLAGS if f not in values]
    raise ConfigError(f"--{given[0]} needs {', '.join(absent)} as well: give all three coordinator flags or none")
  distributed = values.get("distributed", "auto")
  if distributed not in DISTRIBUTED_MODES:
    raise ConfigError(f"--distributed={distributed!r} is not one of {', '.join(DISTRIBUTED_MODES)}")
  if given and distributed == "off":
    raise ConfigError("--distributed=off contradicts the coordinator flags; drop one or the other")

  num_processes = process_id = None
  if given:
    _check_coordinator_address(values["coordinator_address"])
    num_processes = _parse_int("num_processes", values["num_processes"], 1)
    process_id = _parse_int("process_id", values["process_id"], 0)
    if process_id >= num_processes:
      raise ConfigError(f"--process_id={process_id} must be below --num_processes={num_processes}")
  return RunArgs(
      config_spec=values["config"],
      workdir=values["workdir"],
      overrides=overrides,
      coordinator_address=values.get("coordinator_address"),
      num_processes=num_processes,
      process_id=process_id,
      distributed=distributed,
  )


def resolve_config(run_args: RunArgs) -> ml_collections.ConfigDict:
  """Loads the config named by `--config` and applies the `--config.*` overrides."""
  return apply_overrides(load_config(run_args.config_spec), run_args.overrides)


def check_workdir_writable(path: str | os.PathLike[str]) -> pathlib.Path:
  """Creates the workdir if needed and proves it is writable; returns its absolute path.

  Local (or mounted) file systems only. Every process may call it at once: probe names are
  unique per call.
  """
  text = os.fspath(path)
  if "://" in text:
    raise WorkdirError(f"workdir {text!r} is a URL; give a local or mounted directory")
  workdir = pathlib.Path(text).expanduser().absolute()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f"cannot create workdir {str(workdir)!r}: {e.strerror or e}") from e
  probe = workdir / f".write_probe_{os.getpid()}_{uuid.uuid4().hex}"
  try:
    probe.write_bytes(b"ok")
    probe.unlink()
  except OSError as e:
    raise WorkdirError(f"workdir {str(workdir)!r} is not writable: {e.strerror or e}") from e
  return workdir


def _env_int(environ: Mapping[str, str], *names: str) -> int | None:
  """The first of `names` set to an integer in `environ`, else None."""
  for name in names:
    text = environ.get(name, "").strip()
    if text.isdigit():
      return int(text)
  return None


def detect_multiprocess_environment(environ: Mapping[str, str]) -> str | None:
  """Names the multi-process launcher found in `environ`, or None for a single process.

  Only launchers that `jax.distributed.initialize()` can read without flags count:
    Slurm: the task count of the current step (SLURM_STEP_NUM_TASKS, else SLURM_NTASKS or
      SLURM_NPROCS) is above 1; without a task count, SLURM_JOB_NUM_NODES (or SLURM_NNODES)
      above 1.
    Cloud TPU: TPU_WORKER_HOSTNAMES lists more than one host, or MEGASCALE_NUM_SLICES > 1.
    Open MPI: OMPI_COMM_WORLD_SIZE above 1.
  """
  if "SLURM_JOB_ID" in environ:
    tasks = _env_int(environ, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS")
    if tasks is not None:
      if tasks > 1:
        return f"slurm ({tasks} tasks)"
    else:
      nodes = _env_int(environ, "SLURM_JOB_NUM_NODES", "SLURM_NNODES")
      if nodes is not None and nodes > 1:
        return f"slurm ({nodes} nodes)"
  hosts = [h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  if len(hosts) > 1:
    return f"tpu pod ({len(hosts)} hosts)"
  slices = _env_int(environ, "MEGASCALE_NUM_SLICES")
  if slices is not None and slices > 1:
    return f"tpu multislice ({slices} slices)"
  world = _env_int(environ, "OMPI_COMM_WORLD_SIZE")
  if world is not None and world > 1:
    return f"open mpi ({world} processes)"
  return None


def should_initialize_distributed(run_args: RunArgs, environ: Mapping[str, str]) -> bool:
  """Whether `launch.run` calls `jax.distributed.initialize` (a pure function of its inputs).

  "on": always; "off": never; "auto": when the coordinator flags are given or
  `detect_multiprocess_environment(environ)` finds a multi-process launcher.
  """
  if run_args.distributed == "on":
    return True
  if run_args.distributed == "off":
    return False
  if run_args.coordinator_address is not None:
    return True
  return detect_multiprocess_environment(environ) is not None


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
  """`--config.KEY=VALUE` flags whose values parse back to `overrides`' values."""
  return [f"--config.{key}={format_override_value(value)}" for key, value in overrides.items()]


def run_command(
    config_spec: str,
    workdir: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | str | None = None,
    process_id: int | str | None = None,
    distributed: str | None = None,
    python: str = "python",
) -> list[str]:
  """The argv of a `launch.run` invocation; overrides are rendered so they parse back unchanged.

  Distributed flag values may be shell text (e.g. "$SLURM_PROCID") when the argv is written
  into a job file; they are inserted as given.
  """
  argv = [python, "-m", "launch.run", f"--config={config_spec}", f"--workdir={workdir}"]
  argv.extend(override_flags(overrides or {}))
  distributed_flags = {
      "coordinator_address": coordinator_address,
      "num_processes": num_processes,
      "process_id": process_id,
      "distributed": distributed,
  }
  argv.extend(f"--{name}={value}" for name, value in distributed_flags.items() if value is not None)
  return argv
