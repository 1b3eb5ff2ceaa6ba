"""GenDoP end to end (in process): the smoke run trains, generates, scores against its baselines and plots;
and the same task on DataDoP-layout files written from shots (data read, not generated)."""

import json

import pytest

from jaxlab.camera.datadop import write_shot
from jaxlab.camera.synthetic import make_shots
from launch.config_loader import load_config
from launch.tasks import gendop_train

pytestmark = pytest.mark.e2e


def test_smoke_trains_generates_and_scores(tmp_path):
  config = load_config("configs/gendop_train.py:smoke")
  result = gendop_train.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.train.num_steps
  results = json.loads((tmp_path / "results.json").read_text())
  rows = results["rows"]
  assert set(rows) == {"model", "reference", "random", "retrieval"}
  # The reference against itself: every motion tag matches, FID 0, full coverage.
  assert rows["reference"]["f1"] == pytest.approx(1.0)
  assert rows["reference"]["fid"] == pytest.approx(0.0, abs=1e-6) and rows["reference"]["coverage"] == 1.0
  assert 0.0 <= rows["model"]["f1"] <= 1.0
  assert (tmp_path / "trajectories.png").stat().st_size > 1000
  assert "| retrieval |" in (tmp_path / "results.md").read_text()


def test_rgbd_text_on_datadop_files(tmp_path):
  for split, seed in (("train", 3), ("test", 4)):
    for shot in make_shots(8 if split == "train" else 4, seed, split=split, image_size=32):
      write_shot(tmp_path / "datadop" / split / shot.name, shot)
  config = load_config("configs/gendop_train.py:smoke")
  config.model.conditioning = "rgbd_text"
  config.data.update(source="datadop", train_root=str(tmp_path / "datadop" / "train"),
                     test_root=str(tmp_path / "datadop" / "test"), global_batch_size=8)
  config.evaluation.batch_size = 4
  config.clatr.batch_size = 4
  result = gendop_train.run(config, tmp_path / "run")
  assert result.status == "completed"
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["num_train"] == 8 and results["num_test"] == 4
