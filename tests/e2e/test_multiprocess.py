"""Two processes (gloo collectives, 2 fake CPU devices each) train like one process with 4."""

import socket

import pytest

from tests.e2e.conftest import finish, result, run, start_run

pytestmark = pytest.mark.e2e

OVERRIDES = {"train.num_steps": 16, "train.log_every": 4, "checkpoint.save_every": 8}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.multiprocess
def test_two_processes_match_one_process(tmp_path, env):
  single = tmp_path / "single"
  run(single, {**OVERRIDES, "cpu_devices": 4}, env=env)

  multi = tmp_path / "multi"
  port = _free_port()
  procs = [
      start_run(
          multi,
          {**OVERRIDES, "cpu_devices": 2},
          env=env,
          extra_args=(f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"),
      )
      for i in range(2)
  ]
  outputs = [finish(p) for p in procs]
  assert "on 4 devices" in outputs[0] and "[p1]" in outputs[1]

  a, b = result(single), result(multi)
  assert b["final_step"] == a["final_step"] == 16
  for key in ("train/loss", "train/accuracy", "eval/loss", "eval/accuracy", "train/grad_norm"):
    # Same data, same math; only the all-reduce order may differ between gloo and in-process.
    assert b[key] == pytest.approx(a[key], rel=1e-5), key
  assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["16", "8"]
  assert (multi / "log.process_1.txt").exists() and not (multi / "metrics.jsonl").read_text().count("\n") == 0
