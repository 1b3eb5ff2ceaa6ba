"""Best-of-N under a process reward model end to end (in process): the smoke variant writes bon.json and bon.md."""

import json

import pytest

from launch.config_loader import load_config
from launch.tasks import vlm_prm

pytestmark = pytest.mark.e2e

ACCURACIES = ("greedy_accuracy", "sample_accuracy", "majority_accuracy", "prm_best_of_n_accuracy",
              "oracle_best_of_n_accuracy", "prm_step_accuracy")


def test_smoke_variant_writes_the_best_of_n_report(tmp_path):
  config = load_config("configs/vlm_prm.py:smoke")
  result = vlm_prm.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.train.num_steps
  report = json.loads((tmp_path / "bon.json").read_text())
  assert report["n"] == 8 and report["num_eval_images"] == config.bon.num_eval
  for key in ACCURACIES:
    assert 0.0 <= report[key] <= 1.0, key
    assert result.last_eval_metrics[f"bon/{key}"] == report[key]
  # Every selection from the 8 samples is one of them, so none beats "any of the 8 is right". (Greedy is a
  # separate decode and may.)
  for key in ("sample_accuracy", "majority_accuracy", "prm_best_of_n_accuracy"):
    assert report["oracle_best_of_n_accuracy"] >= report[key], key
  data = report["prm_data"]
  assert data["records"] > 0 and data["plus_supervised"] + data["minus_supervised"] > 0
  assert report["eval_steps"] > 0
  assert "PRM Best-of-8" in (tmp_path / "bon.md").read_text()
  assert (tmp_path / "sft" / "accuracy.json").is_file() and (tmp_path / "prm" / "checkpoints").is_dir()
