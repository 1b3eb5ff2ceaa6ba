"""Every config's default and smoke variants run on hosts with 1, 2, 4 and 8 devices.

`--config.cpu_devices=N` gives the run N fake CPU devices, as a host with N GPUs would have.
The default tier runs the main job's smoke variant on 8 devices (the case that once died in
an IndivisibleError); the slow tier runs every smoke variant on each count, and every default
variant on 8, for a few steps each.
"""

import pytest

from tests.e2e.conftest import result, run

FEW_STEPS = {"train.num_steps": 2, "train.log_every": 1, "train.eval_every": 0, "checkpoint.save_every": 2}
TRAINING = {
    "lm_tiny": ("configs/lm_tiny.py", {}),
    "splat_fit": ("configs/splat_fit.py", {"outputs.turntable_frames": 2, "outputs.num_test_renders": 1}),
    "flow_train": ("configs/flow_train.py", {"sampling.num_steps": 2, "sampling.per_class": 1}),
    "vlm_sft": ("configs/vlm_sft.py", {"data.num_eval": 8}),
    "moe_lm": ("configs/moe_lm.py", {"evaluation.max_tokens": 256}),
}


def test_main_job_smoke_on_8_devices_spreads_views(tmp_path, env):
  workdir = tmp_path / "splat8"
  out = run(workdir, {**FEW_STEPS, **TRAINING["splat_fit"][1], "cpu_devices": 8}, env=env, config="configs/splat_fit.py:smoke")
  assert "on 8 devices" in out
  summary = result(workdir)
  assert summary["status"] == "completed" and summary["final_step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("name", sorted(TRAINING))
def test_smoke_variant_runs(tmp_path, env, name, devices):
  path, overrides = TRAINING[name]
  workdir = tmp_path / "run"
  out = run(workdir, {**FEW_STEPS, **overrides, "cpu_devices": devices}, env=env, config=f"{path}:smoke", timeout=900)
  assert f"on {devices} devices" in out
  assert result(workdir)["final_step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TRAINING))
def test_default_variant_runs_on_8_devices(tmp_path, env, name):
  path, overrides = TRAINING[name]
  workdir = tmp_path / "run"
  out = run(workdir, {**FEW_STEPS, **overrides, "cpu_devices": 8}, env=env, config=path, timeout=1800)
  assert "on 8 devices" in out
  assert result(workdir)["final_step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 8])
def test_mxmoe_quantize_smoke_runs(tmp_path, env, devices):
  model_run = tmp_path / "moe"
  run(model_run, {**FEW_STEPS, **TRAINING["moe_lm"][1], "cpu_devices": devices}, env=env, config="configs/moe_lm.py:smoke", timeout=900)
  workdir = tmp_path / "mxmoe"
  out = run(workdir, {"model": str(model_run / "model"), "cpu_devices": devices}, env=env, config="configs/mxmoe_quantize.py:smoke",
            timeout=1800)
  assert f"on {devices} devices" in out
  assert (workdir / "results.json").is_file()
