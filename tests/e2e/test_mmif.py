"""MM-IFEngine end to end (in process): SFT on the generated set with the predictions rescored by the MM-IFEval
command, and SFT + DPO on an MM-IFInstruct file written by hand (images of other sizes, not made by the engine)."""

import json

import numpy as np
import pytest
from PIL import Image

from jaxlab.mmif import score
from launch.config_loader import load_config
from launch.tasks import mmif_dpo, mmif_sft

pytestmark = pytest.mark.e2e


def test_sft_smoke_trains_evaluates_and_its_predictions_rescore_the_same(tmp_path):
  config = load_config("configs/mmif_sft.py:smoke")
  result = mmif_sft.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.train.num_steps
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["data"]["train_items"] == config.data.num_train
  assert 0 < results["data"]["kept_items"] <= config.data.num_train
  assert results["teacher"]["c_level"] > 80.0  # The data's own responses meet their constraints.
  out = tmp_path / "report"
  assert score.main(["--items", str(tmp_path / "eval" / "items.jsonl"), "--predictions",
                     str(tmp_path / "eval" / "sft.jsonl"), "--out", str(out)]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["summary"]["C-Level"] == pytest.approx(round(results["sft"]["c_level"], 1))
  assert "| SFT |" in (tmp_path / "results.md").read_text()


def _rule(key, value, func, params):
  return {"key": key, "value": value, "judge": {"method": "rule_based", "verify_funcs": [{"func": func,
                                                                                          "params": params}]}}


def _handmade_instruct(folder, n, seed):
  """n items in the MM-IFInstruct layout, images of odd sizes, responses written here."""
  rng = np.random.default_rng(seed)
  (folder / "pics").mkdir(parents=True, exist_ok=True)
  lines = []
  for i in range(n):
    colour = ["red", "green", "blue"][i % 3]
    pixels = np.zeros((30 + i, 41, 3), np.uint8)
    pixels[..., i % 3] = 200 + rng.integers(0, 55)
    Image.fromarray(pixels).save(folder / "pics" / f"p{i}.jpg")
    constraints = [_rule("sentence_limit", "Use exactly 2 sentences.", "check_whether_response_sentence_number_in_range",
                         [2, 2]),
                   _rule("mention", f'Mention "{colour}" at least once.',
                         "check_whether_each_keyword_in_list_metioned_in_range", [[colour], 1, 99])]
    prompt = "Describe the picture. " + " ".join(c["value"] for c in constraints)
    response = f"The picture is {colour}. It has no shapes."
    lines.append({"id": f"h{i}", "images": [f"pics/p{i}.jpg"], "task_type": "descriptive_analysis",
                  "instruction": "Describe the picture.", "constraints": constraints,
                  "messages": [{"role": "user", "content": "<image>" + prompt},
                               {"role": "assistant", "content": response}]})
  path = folder / "instruct.jsonl"
  path.write_text("".join(json.dumps(line) + "\n" for line in lines))
  return path


def test_dpo_smoke_on_a_handmade_instruct_file(tmp_path):
  train = _handmade_instruct(tmp_path / "train", 8, 0)
  held_out = _handmade_instruct(tmp_path / "eval", 8, 1)
  config = load_config("configs/mmif_dpo.py:smoke")
  config.sft.data.update(source="jsonl", train_jsonl=str(train), eval_jsonl=str(held_out))
  config.posttrain.variants = ("drop_all", "drop_image")
  result = mmif_dpo.run(config, tmp_path / "run")
  assert result.status == "completed"
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["teacher"]["c_level"] == 100.0 and results["data"]["kept_items"] == 8
  for variant in ("drop_all", "drop_image"):
    records = [json.loads(line) for line in (tmp_path / "run" / "pairs" / f"{variant}.jsonl").read_text().splitlines()]
    assert records and all(r["variant"] == variant and r["question"].startswith("<image>") for r in records)
    assert results["pairs"][variant]["trained"] == len(records)
    assert {"c_level", "sub_types"} <= set(results[variant])
  dropped_all = [json.loads(line) for line in (tmp_path / "run" / "pairs" / "drop_all.jsonl").read_text().splitlines()]
  assert all(len(r["dropped"]) == 2 for r in dropped_all)
  assert "SFT + DPO (drop_image)" in (tmp_path / "run" / "results.md").read_text()


def test_bad_configs_are_refused(tmp_path):
  config = load_config("configs/mmif_dpo.py:smoke")
  config.posttrain.variants = ("drop_half",)
  with pytest.raises(ValueError, match="posttrain.variants"):
    mmif_dpo.check_config(config, {"data": 1})
  config = load_config("configs/mmif_sft.py:smoke")
  config.data.source = "hub"
  with pytest.raises(ValueError, match="data.source"):
    mmif_sft.check_config(config, {"data": 1})
  config.data.update(source="jsonl", train_jsonl="")
  with pytest.raises(ValueError, match="train_jsonl"):
    mmif_sft.check_config(config, {"data": 1})
  config = load_config("configs/mmif_sft.py:smoke")
  config.data.update(min_constraints=3, max_constraints=2)
  with pytest.raises(ValueError, match="min_constraints"):
    mmif_sft.check_config(config, {"data": 1})
