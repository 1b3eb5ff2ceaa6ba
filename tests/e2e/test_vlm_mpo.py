"""InternVL3's post-training recipe end to end (in process): SFT, pairs on disk, DPO and MPO runs, the table."""

import json

import pytest

from jaxlab.posttrain import read_pairs
from launch.config_loader import load_config
from launch.tasks import vlm_mpo

pytestmark = pytest.mark.e2e


def test_smoke_variant_writes_pairs_and_a_result_per_method(tmp_path):
  config = load_config("configs/vlm_mpo.py:smoke")
  result = vlm_mpo.run(config, tmp_path)
  assert result.status == "completed"
  pairs = read_pairs(tmp_path / "pairs" / "pairs.jsonl")
  assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
  assert all((tmp_path / "pairs" / path).exists() for p in pairs for path in p["image"])
  results = json.loads((tmp_path / "results.json").read_text())
  for name in ("sft", "dpo", "mpo"):
    assert 0.0 <= results[name]["final_accuracy"] <= 1.0
  # MPO's generation term is part of its loss; DPO's loss has only the preference term.
  assert results["mpo"]["train"]["train/generation"] > 0
  assert "| SFT + mpo |" in (tmp_path / "results.md").read_text()


def test_a_task_the_verifier_cannot_grade_is_refused():
  config = load_config("configs/vlm_mpo.py:smoke")
  config.sft.data.task = "shapes"
  with pytest.raises(ValueError, match="counting"):
    vlm_mpo.check_config(config, {"data": 1})
