"""Flow-matching training end to end (in process, tiny), then the HiFlow evaluation on its model."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from benchmarks import hiflow_eval
from jaxlab.data.images import PHOTO_NAMES
from jaxlab.flow.dit_io import load_dit
from jaxlab.metrics import read_metrics
from jaxlab.testing.tensorboard import read_images
from launch.config_loader import apply_overrides, load_config
from launch.tasks import flow_train

# About two minutes on 2 cores (compiling the DiT at three resolutions dominates).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OVERRIDES = {"mesh.data": 1, "mesh.fsdp": -1, "train.num_steps": 12, "train.log_every": 4, "train.eval_every": 6,
             "checkpoint.save_every": 100, "sampling.per_class": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("flow_train")
  config = apply_overrides(load_config("configs/flow_train.py:smoke"), OVERRIDES)
  return workdir, config, flow_train.run(config, workdir)


def test_training_writes_model_samples_and_statistics(trained):
  workdir, config, result = trained
  assert result.status == "completed" and result.final_step == 12
  rows = read_metrics(workdir / "metrics.jsonl")
  assert any("eval/loss" in r for r in rows) and all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
  size = config.data.image_size
  grid = iio.imread(workdir / "samples.png")
  assert grid.shape == (len(PHOTO_NAMES) * (size + 1) - 1, size, 3)  # One sample per class, one column.
  ((step, logged),) = read_images(workdir / "tb")["samples"]
  assert step == 12
  np.testing.assert_array_equal(logged, grid)
  stats = json.loads((workdir / "sample_stats.json").read_text())
  assert abs(stats["gaussian_noise"]["neighbor_correlation"]) < 0.2
  assert stats["real_crops"]["neighbor_correlation"] > 0.4
  assert np.isfinite(stats["samples"]["neighbor_correlation"])
  _, model_config, _ = load_dit(workdir / "model")
  assert model_config.image_size == size and model_config.num_classes == len(PHOTO_NAMES)


def test_hiflow_evaluation_runs_on_the_trained_model(trained, tmp_path):
  workdir, config, _ = trained
  out = tmp_path / "eval"
  argv = ["--model", str(workdir / "model"), "--out-dir", str(out), "--num-seeds", "2", "--num-steps", "6",
          "--stage-steps", "3,2"]
  assert hiflow_eval.main(argv) == 0
  results = json.loads((out / "results.json").read_text())["results"]
  assert set(results) == {"base"} | {f"{f}x/{m}" for f in (2, 4) for m in hiflow_eval.METHODS}
  assert results["2x/upsample"]["lowfreq_err"] == pytest.approx(0.0, abs=1e-6)
  size = config.data.image_size
  assert iio.imread(out / "grid_4x.png").shape == (2 * (4 * size + 2) - 2, 4 * (4 * size + 2) - 2, 3)
