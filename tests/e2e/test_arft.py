"""Visual-ARFT end to end (in process): SFT, GRPO and live evaluation on the generated sets and on files in
the released MAT layout; the predictions files score the same under the MAT scorer's command."""

import json

import pytest

from jaxlab.agent import mat_score
from launch.config_loader import load_config
from launch.tasks import arft
from tests.agent.test_mat_data import _search_benchmark, _search_training

pytestmark = pytest.mark.e2e


def _check_results(workdir):
  results = json.loads((workdir / "results.json").read_text())
  for name in arft.MODELS:
    assert {"all", "loop"} <= set(results[name])
    assert 0.0 <= results[name]["all"]["f1"] <= 100.0
    predictions = workdir / "eval" / f"{name}.jsonl"
    assert mat_score.main([str(predictions), "--out", str(workdir / f"{name}_score.json")]) == 0
    rescored = json.loads((workdir / f"{name}_score.json").read_text())
    assert rescored["all"] == results[name]["all"]  # The written predictions are what was scored.
  assert results["grpo_train"]["reward_counts"]["turns"] > 0
  assert "| SFT + GRPO |" in (workdir / "results.md").read_text()
  return results


def test_coding_smoke_trains_both_stages_and_evaluates_with_the_sandbox(tmp_path):
  config = load_config("configs/arft_coding.py:smoke")
  result = arft.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.grpo.num_steps
  results = _check_results(tmp_path)
  assert results["direct"]["loop"]["mean_rounds"] == 1.0  # No tools: one turn.
  assert {"simple", "hard"} <= set(results["sft"])
  # A rerun reuses the finished stages and the vocabulary.
  vocab = (tmp_path / "vocab.json").read_text()
  assert arft.run(config, tmp_path).status == "completed" and (tmp_path / "vocab.json").read_text() == vocab


def test_search_smoke_on_files_in_the_released_mat_layout(tmp_path):
  data = tmp_path / "mat"
  train, benchmark = _search_training(data), _search_benchmark(data)
  corpus = data / "corpus.txt"
  corpus.write_text("Paris lies on the Seine.\nThe Rijksmuseum holds The Night Watch.\n")
  config = load_config("configs/arft_search.py:smoke")
  config.data.update(source="mat", mat_train=str(train), mat_eval=str(benchmark), corpus=str(corpus), num_train=0,
                     num_eval=0)
  result = arft.run(config, tmp_path / "run")
  assert result.status == "completed"
  results = _check_results(tmp_path / "run")
  assert results["data"]["eval_questions"] == 2 and results["data"]["train_trajectories"] == 2


def test_bad_configs_are_refused(tmp_path):
  config = load_config("configs/arft_search.py:smoke")
  config.evaluation.max_rounds = 6
  with pytest.raises(ValueError, match="max_rounds"):
    arft.check_config(config, {"data": 1})
  config = load_config("configs/arft_search.py:smoke")
  config.data.source = "web"
  with pytest.raises(ValueError, match="data.source"):
    arft.run(config, tmp_path)
  config.data.update(source="mat", mat_train="", mat_eval="")
  with pytest.raises(ValueError, match="mat_train"):
    arft.run(config, tmp_path)
