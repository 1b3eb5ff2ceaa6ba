"""The launch.run command line: flag parsing, config resolution, workdir checks, distributed detection."""

import pathlib
import subprocess
import sys

import ml_collections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launch.cli import (
    RunArgs,
    WorkdirError,
    check_workdir_writable,
    detect_multiprocess_environment,
    parse_run_args,
    resolve_config,
    run_command,
    should_initialize_distributed,
)
from launch.config_loader import ConfigError, apply_overrides, flatten

REPO = pathlib.Path(__file__).resolve().parents[2]
_COORD = ["--coordinator_address=10.0.0.1:1234", "--num_processes=4", "--process_id=3"]


def test_minimal_flags():
  args = parse_run_args(["--config=c.py:smoke", "--workdir=/tmp/w"])
  assert args == RunArgs(config_spec="c.py:smoke", workdir="/tmp/w", overrides={}, distributed="auto")
  assert args.coordinator_address is None and args.num_processes is None and args.process_id is None


def test_space_separated_values_and_overrides():
  args = parse_run_args(["--config", "c.py", "--workdir", "w", "--config.model.num_layers=4", "--config.name=a=b", "--config.empty="])
  assert (args.config_spec, args.workdir) == ("c.py", "w")
  assert args.overrides == {"model.num_layers": "4", "name": "a=b", "empty": ""}


def test_repeated_override_keeps_the_last():
  args = parse_run_args(["--config=c.py", "--workdir=w", "--config.seed=1", "--config.seed=2"])
  assert args.overrides == {"seed": "2"}


def test_coordinator_flags():
  args = parse_run_args(["--config=c.py", "--workdir=w", *_COORD, "--distributed=on"])
  assert (args.coordinator_address, args.num_processes, args.process_id, args.distributed) == ("10.0.0.1:1234", 4, 3, "on")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--workdir=w"], "missing required flag --config"),
        (["--config=c.py"], "missing required flag --workdir"),
        ([], "--config and --workdir"),
        (["--config=c.py", "--workdir=w", "--wrokdir=x"], "unknown flag --wrokdir; did you mean --workdir"),
        (["--config=c.py", "--workdir=w", "--lr=3"], "unknown flag --lr"),
        (["--config=c.py", "--workdir=w", "extra"], "unexpected argument 'extra'"),
        (["--config=c.py", "--workdir=w", "-v"], "unexpected argument '-v'"),
        (["--help"], "usage: python -m launch.run"),
        (["--config=c.py", "--workdir=w", "--config.seed"], "malformed override.*'=' is required"),
        (["--config=c.py", "--workdir=w", "--config..seed=1"], "malformed override"),
        (["--config=c.py", "--workdir=w", "--config.=1"], "malformed override"),
        (["--config=c.py", "--workdir=w", "--config.model.2x=1"], "malformed override"),
        (["--config=c.py", "--config=d.py", "--workdir=w"], "--config is given twice"),
        (["--config=c.py", "--workdir="], "--workdir needs a non-empty value"),
        (["--config=c.py", "--workdir"], "--workdir needs a value"),
        (["--config=c.py", "--workdir", "--config.seed=1"], "--workdir needs a value"),
        (["--config=c.py", "--workdir=w", "--distributed=maybe"], "not one of auto, on, off"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h:1"], "--num_processes, --process_id as well"),
        (["--config=c.py", "--workdir=w", "--num_processes=2", "--process_id=0"], "--coordinator_address as well"),
        (["--config=c.py", "--workdir=w", *_COORD, "--distributed=off"], "contradicts"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h", "--num_processes=2", "--process_id=0"], "HOST:PORT"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h:99999", "--num_processes=2", "--process_id=0"], "HOST:PORT"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h:1", "--num_processes=two", "--process_id=0"], "not an integer"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h:1", "--num_processes=0", "--process_id=0"], "at least 1"),
        (["--config=c.py", "--workdir=w", "--coordinator_address=h:1", "--num_processes=2", "--process_id=2"], "must be below"),
    ],
)
def test_bad_flags_raise_config_error(argv, match):
  with pytest.raises(ConfigError, match=match):
    parse_run_args(argv)


def test_resolve_config_applies_typed_overrides(sample_config):
  args = parse_run_args([f"--config={sample_config}:small", "--workdir=w", "--config.optimizer.learning_rate=5e-4", "--config.mesh_shape=(4, 2)"])
  config = resolve_config(args)
  assert config.model.num_layers == 1  # from the variant
  assert config.optimizer.learning_rate == 5e-4 and config.mesh_shape == (4, 2)


def test_resolve_config_reports_unknown_key(sample_config):
  args = parse_run_args([f"--config={sample_config}", "--workdir=w", "--config.optimizer.lr=1"])
  with pytest.raises(ConfigError, match="unknown config key 'optimizer.lr'"):
    resolve_config(args)


_VALUES = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.tuples(st.integers(-5, 5), st.text(max_size=4)),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(value=_VALUES)
def test_run_command_round_trips_through_the_parser(value):
  # A field of the value's own kind and a None-valued field, set through the command line
  # and directly, must end up equal.
  config = ml_collections.ConfigDict({"typed": value, "free": None})
  overrides = {"typed": value, "free": value}
  argv = run_command("c.py:smoke", "/w d", overrides, coordinator_address="h:1", num_processes=2, process_id=1, distributed="on")
  assert argv[:3] == ["python", "-m", "launch.run"]
  args = parse_run_args(argv[3:])
  assert (args.config_spec, args.workdir, args.process_id, args.distributed) == ("c.py:smoke", "/w d", 1, "on")
  via_cli = flatten(apply_overrides(config, args.overrides))
  direct = flatten(apply_overrides(config, overrides))
  assert via_cli == direct
  assert {k: type(v) for k, v in via_cli.items()} == {k: type(v) for k, v in direct.items()}


def test_workdir_is_created_and_probe_removed(tmp_path):
  target = tmp_path / "a" / "b"
  workdir = check_workdir_writable(str(target))
  assert workdir == target and workdir.is_absolute() and workdir.is_dir()
  assert list(workdir.iterdir()) == []


def test_workdir_under_a_regular_file_is_rejected(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(WorkdirError, match="cannot create workdir") as e:
    check_workdir_writable(blocker / "run")
  assert isinstance(e.value, OSError) and str(blocker / "run") in str(e.value)


def test_workdir_that_is_a_file_is_rejected(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(WorkdirError):
    check_workdir_writable(blocker)


def test_url_workdir_is_rejected():
  with pytest.raises(WorkdirError, match="URL"):
    check_workdir_writable("gs://bucket/run")


def test_launch_run_rejects_unwritable_workdir_before_importing_jax(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  code = (
      "import sys\nfrom launch.run import main\n"
      f"rc = main(['--config=configs/lm_tiny.py:smoke', '--workdir={blocker}/run'])\n"
      "print('RESULT', rc, 'jax' in sys.modules)\n"
  )
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert "RESULT 2 False" in result.stdout, result.stdout + result.stderr
  assert "workdir" in result.stderr


_COORDINATED = RunArgs("c.py", "w", {}, "h:1", 2, 0, "auto")
_PLAIN = RunArgs("c.py", "w")


@pytest.mark.parametrize(
    "run_args, environ, expected",
    [
        (_PLAIN, {}, False),
        (_COORDINATED, {}, True),
        (RunArgs("c.py", "w", distributed="on"), {}, True),
        (RunArgs("c.py", "w", distributed="off"), {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}, False),
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}, True),
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}, False),
        # Inside a one-task step of a multi-task job, the step's count decides.
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "1"}, False),
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2"}, True),
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "1"}, False),
        (_PLAIN, {"SLURM_NTASKS": "8"}, False),  # a stray variable outside a job
        (_PLAIN, {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "lots"}, False),
        (_PLAIN, {"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, True),
        (_PLAIN, {"TPU_WORKER_HOSTNAMES": "t0"}, False),
        (_PLAIN, {"TPU_WORKER_HOSTNAMES": "t0,"}, False),
        (_PLAIN, {"MEGASCALE_NUM_SLICES": "2"}, True),
        (_PLAIN, {"OMPI_COMM_WORLD_SIZE": "4"}, True),
        (_PLAIN, {"OMPI_COMM_WORLD_SIZE": "1"}, False),
    ],
)
def test_should_initialize_distributed(run_args, environ, expected):
  assert should_initialize_distributed(run_args, environ) is expected


def test_detection_names_the_launcher():
  assert "slurm" in detect_multiprocess_environment({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"})
  assert "tpu" in detect_multiprocess_environment({"TPU_WORKER_HOSTNAMES": "a,b"})
  assert detect_multiprocess_environment({}) is None


def test_run_args_rejects_unknown_distributed_mode():
  with pytest.raises(ConfigError, match="auto, on, off"):
    RunArgs("c.py", "w", distributed="sometimes")
