"""RoboSplat end to end: generate demonstrations, train a policy on them, judge it in closed loop."""

import json

import imageio.v3 as iio
import pytest

from jaxlab.testing.tensorboard import read_images
from tests.e2e.conftest import result, run

pytest.importorskip("pybullet")
pytestmark = pytest.mark.e2e

GENERATE = "configs/robosplat_generate.py"
POLICY = "configs/robosplat_policy.py"
# Each variant's generation shortened to one demonstration and two fitting steps (same code paths).
GENERATE_SHORT = {"": {"scene.num_views": 4, "scene.fit_steps": 2, "generate.num_demos": 1},
                  ":smoke": {"generate.num_demos": 1}}
POLICY_SHORT = {"train.num_steps": 2, "train.log_every": 1, "train.eval_every": 0, "checkpoint.save_every": 2,
                "eval.axes": "('nominal',)", "eval.episodes_per_axis": 1, "eval.max_steps": 3}


def test_generated_episodes_train_a_policy_that_runs_in_closed_loop(tmp_path, env):
  generate = tmp_path / "generate"
  run(generate, GENERATE_SHORT[":smoke"], env=env, config=f"{GENERATE}:smoke", timeout=900)
  report = json.loads((generate / "report.json").read_text())
  assert report["episodes_in_dataset"] == 1 and report["this_run"]["written"] == 1
  assert report["this_run"]["frames_per_second"] > 0
  preview = iio.imread(generate / "preview.png")
  assert preview.shape == (64, 64, 3) and preview.std() > 10  # sim frame | generated frame, not blank
  ((step, logged),) = read_images(generate / "tb")["preview"]
  assert step == 1 and (logged == preview).all()  # step: episodes in the dataset
  # A rerun keeps the dataset and appends only what is missing (nothing here).
  run(generate, GENERATE_SHORT[":smoke"], env=env, config=f"{GENERATE}:smoke", timeout=900)
  assert json.loads((generate / "report.json").read_text())["episodes_in_dataset"] == 1
  assert len(read_images(generate / "tb")["preview"]) == 1

  policy = tmp_path / "policy"
  run(policy, {**POLICY_SHORT, "data.dir": str(generate / "generated")}, env=env, config=f"{POLICY}:smoke")
  assert result(policy)["final_step"] == 2
  closed = json.loads((policy / "closed_loop.json").read_text())
  assert closed["train_episodes"] == 1 and closed["num_episodes"] == 1
  assert closed["episodes"][0]["axis"] == "nominal" and closed["episodes"][0]["steps"] == 3
  # The finished run reloads as a closed-loop policy with the shape and statistics it trained with.
  import numpy as np  # noqa: PLC0415

  from launch.tasks.robosplat_policy import load_trained_policy  # noqa: PLC0415

  runner = load_trained_policy(policy)
  images = {name: np.zeros((32, 32, 3), np.uint8) for name in runner.camera_names}
  assert runner.plan(images, np.zeros(8)).shape == (runner.model.config.chunk, 8)
  with pytest.raises(FileNotFoundError, match="no config.json"):
    load_trained_policy(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("variant", sorted(GENERATE_SHORT))
def test_robosplat_generate_runs(tmp_path, env, variant, devices):
  workdir = tmp_path / "generate"
  out = run(workdir, {"cpu_devices": devices, **GENERATE_SHORT[variant]}, env=env, config=f"{GENERATE}{variant}",
            timeout=1800)
  assert f"on {devices} devices" in out
  assert json.loads((workdir / "report.json").read_text())["episodes_in_dataset"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("variant", ["", ":smoke"])
def test_robosplat_policy_runs_on_the_source_demonstration(tmp_path, env, variant, devices):
  workdir = tmp_path / "policy"
  out = run(workdir, {**POLICY_SHORT, "cpu_devices": devices}, env=env, config=f"{POLICY}{variant}", timeout=1800)
  assert f"on {devices} devices" in out
  assert result(workdir)["final_step"] == 2 and (workdir / "closed_loop.json").is_file()
