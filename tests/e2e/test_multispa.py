"""Multi-SpatialMLLM end to end (in process): LoRA SFT on generated scenes, the predictions rescored by the
scoring command, the merged export loaded back; and the same task on MultiSPA files made by the generate
command from ScanNet-layout and TAPVid-3D files written by hand (data not made by the room generator)."""

import json

import jax
import numpy as np
import pytest

from jaxlab.spatial import generate, score
from jaxlab.spatial.qa import read_items
from jaxlab.vlm import hf_io
from launch.config_loader import load_config
from launch.tasks import multispa_sft
from tests.spatial.test_readers import make_clip, make_scannet_scene

pytestmark = pytest.mark.e2e


def test_smoke_trains_with_lora_scores_rescore_and_exports_merged(tmp_path):
  config = load_config("configs/multispa_sft.py:smoke")
  result = multispa_sft.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.train.num_steps
  results = json.loads((tmp_path / "results.json").read_text())
  for name in ("trained", "untrained", "prior"):
    assert results[name]["num_items"] == results["data"]["eval_items"] > 0
  # Chance is listed exactly for the label subtasks present.
  assert set(results["chance"]["per_subtask"]) <= {s for s in results["prior"]["per_subtask"]
                                                   if not s.startswith(("object_", "depth_value"))}
  out = tmp_path / "report.json"
  assert score.main(["--items", str(tmp_path / "data" / "eval" / "eval.jsonl"), "--predictions",
                     str(tmp_path / "eval" / "trained.jsonl"), "--out", str(out)]) == 0
  assert json.loads(out.read_text())["mean_accuracy"] == pytest.approx(results["trained"]["mean_accuracy"])
  # Only the adapters trained; the export holds base + adapters merged.
  params = result.state.params
  _, exported = hf_io.load_pretrained(tmp_path / "export")
  merged = multispa_sft.model_params(config, jax.device_get(params))
  q = ("language_model", "layers_0", "attention", "q", "kernel")
  pick = lambda tree: np.asarray(tree[q[0]][q[1]][q[2]][q[3]][q[4]])
  np.testing.assert_allclose(pick(exported), pick(merged), rtol=1e-6, atol=1e-7)
  assert np.any(pick(merged) != pick(jax.device_get(params["base"])))
  assert "| **mean** |" in (tmp_path / "results.md").read_text()


def test_jsonl_from_scannet_and_tapvid3d_files_trains(tmp_path):
  scans, clips = tmp_path / "scans", tmp_path / "tapvid3d"
  scene_dir = make_scannet_scene(str(scans))
  make_clip(str(clips / "adt" / "clip0.npz"))
  for name in ("train", "eval"):
    assert generate.main(["--out", str(tmp_path / name), "--name", name, "--scannet", scene_dir, "--tapvid3d",
                          str(clips / "adt" / "clip0.npz"), "--rooms", "1", "--items-per-scene", "18",
                          "--height", "48", "--width", "64", "--frames", "8",
                          "--seed", "0" if name == "train" else "1"]) == 0
  items = read_items(tmp_path / "train" / "train.jsonl")
  stats = json.loads((tmp_path / "train" / "train_stats.json").read_text())
  assert stats["items"] == len(items) > 0
  scanned = [i for i in items if i.meta.get("scene", "").startswith("scene")]
  assert scanned, "no question came from the ScanNet-layout scene"
  assert {"depth_value_dot", "depth_value_coord"} <= {i.subtask for i in scanned}
  config = load_config("configs/multispa_sft.py:smoke")
  config.data.source = "jsonl"
  config.data.train_jsonl = str(tmp_path / "train" / "train.jsonl")
  config.data.eval_jsonl = str(tmp_path / "eval" / "eval.jsonl")
  config.export.merged = False
  result = multispa_sft.run(config, tmp_path / "run")
  assert result.status == "completed"
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["trained"]["num_items"] == len(read_items(tmp_path / "eval" / "eval.jsonl"))
