"""Helpers that start `python -m launch.run` as real subprocesses."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LM_TINY = "configs/lm_tiny.py:smoke"


def run_env(cache_dir: pathlib.Path) -> dict[str, str]:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # the run sets its own device count from the config
  env["JAX_PLATFORMS"] = "cpu"
  # Identical programs compile once across the subprocesses of a test.
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["PYTHONUNBUFFERED"] = "1"
  return env


def launch_args(workdir: pathlib.Path, overrides: dict | None = None, config: str = LM_TINY) -> list[str]:
  args = [sys.executable, "-m", "launch.run", f"--config={config}", f"--workdir={workdir}"]
  return args + [f"--config.{k}={v}" for k, v in (overrides or {}).items()]


def start_run(workdir, overrides=None, *, env, extra_args=(), config: str = LM_TINY) -> subprocess.Popen:
  return subprocess.Popen([*launch_args(workdir, overrides, config), *extra_args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, f"launch.run exited with {proc.returncode}:\n{out[-6000:]}"
  return out


def run(workdir, overrides=None, *, env, timeout: float = 300, config: str = LM_TINY) -> str:
  return finish(start_run(workdir, overrides, env=env, config=config), timeout)


def result(workdir: pathlib.Path) -> dict:
  return json.loads((workdir / "result.json").read_text())


@pytest.fixture
def env(tmp_path_factory):
  return run_env(tmp_path_factory.mktemp("jax_cache"))
