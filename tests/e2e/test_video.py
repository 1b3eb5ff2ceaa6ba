"""Structural Video Diffusion end to end (in process): the smoke run trains, samples the test clips, scores
them and writes the GIF; the same task reads clips from folders in the on-disk layout."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.testing.tensorboard import read_images
from jaxlab.video import disk
from jaxlab.video.synthetic import generate_clip
from launch.config_loader import load_config
from launch.tasks import video_train

pytestmark = pytest.mark.e2e


def test_smoke_trains_samples_and_scores(tmp_path):
  config = load_config("configs/video_train.py:smoke")
  result = video_train.run(config, tmp_path)
  assert result.status == "completed" and result.final_step == config.train.num_steps
  results = json.loads((tmp_path / "results.json").read_text())
  rows = results["rows"]
  assert set(rows) == {"model", "ground_truth", "reference_copy"}
  # The ground truth against itself: SSIM 1, no depth or normal error, identities told apart.
  assert rows["ground_truth"]["ssim"] == pytest.approx(1.0, abs=1e-5)
  assert rows["ground_truth"]["identity_all_frames"] >= 0.8
  assert rows["ground_truth"]["depth_abs_rel"] == pytest.approx(0.0, abs=1e-5)
  assert rows["ground_truth"]["normal_mean"] == pytest.approx(0.0, abs=0.1)
  assert np.isfinite(rows["model"]["psnr"]) and rows["model"]["psnr"] < rows["ground_truth"]["psnr"]
  gif = iio.imread(tmp_path / "samples.gif")
  d = config.data
  # Frames x (rows: truth, RGB, depth, normal) x (columns: clips), each tile with a 1-pixel border, upscaled.
  assert gif.shape[0] == d.num_frames
  assert gif.shape[1] == 4 * (d.image_size + 2) * 4 and gif.shape[2] == config.evaluation.gif_clips * (d.image_size + 2) * 4
  assert "| reference_copy |" in (tmp_path / "results.md").read_text()
  # TensorBoard: per GIF clip, rows reference | RGB frames, then depth and normal frames.
  ((step, logged),) = read_images(tmp_path / "train" / "tb")["samples"]
  assert step == config.train.num_steps
  rows = config.evaluation.gif_clips * 3
  assert logged.shape == (rows * (d.image_size + 2) - 2, (d.num_frames + 1) * (d.image_size + 2) - 2, 3)


def _write_clips(root, config, count, first_seed):
  d = config.data
  for i in range(count):
    clip = generate_clip(first_seed + i, num_frames=d.num_frames, height=d.image_size, width=d.image_size,
                         num_people=(2, 3), num_identities=d.num_identities)
    disk.write_clip(clip, root / f"clip_{i:03d}")


def test_disk_clips_are_what_the_task_trains_on(tmp_path):
  config = load_config("configs/video_train.py:smoke")
  _write_clips(tmp_path / "train", config, 3, 0)
  _write_clips(tmp_path / "test", config, 2, 100)
  config.data.update(source="disk", train_root=str(tmp_path / "train"), test_root=str(tmp_path / "test"))
  train, test = video_train.build_clips(config)
  assert (len(train), len(test)) == (3, 2)
  expected = generate_clip(100, num_frames=config.data.num_frames, height=config.data.image_size,
                           width=config.data.image_size, num_people=(2, 3), num_identities=config.data.num_identities)
  np.testing.assert_array_equal(test[0].masks_fhw, expected.masks_fhw)
  np.testing.assert_allclose(test[0].rgb_fhwc, expected.rgb_fhwc, atol=1 / 255)


@pytest.mark.slow
def test_rgb_only_baseline_trains_on_disk_clips(tmp_path):
  config = load_config("configs/video_train.py:smoke")
  _write_clips(tmp_path / "clips" / "train", config, 8, 0)
  _write_clips(tmp_path / "clips" / "test", config, 8, 100)
  config.data.update(source="disk", train_root=str(tmp_path / "clips" / "train"),
                     test_root=str(tmp_path / "clips" / "test"))
  config.model.update(modalities=("rgb",), identity=False)
  result = video_train.run(config, tmp_path / "run")
  assert result.status == "completed"
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["modalities"] == ["rgb"] and not results["identity_embeddings"]
  assert "depth_abs_rel" not in results["rows"]["model"]


def test_bad_configs_are_refused_before_training():
  config = load_config("configs/video_train.py:smoke")
  config.model.modalities = ("depth",)
  with pytest.raises(ValueError, match="rgb"):
    video_train.check_config(config, {"data": 1})
  config = load_config("configs/video_train.py:smoke")
  with pytest.raises(ValueError, match="context"):
    video_train.check_config(config, {"data": 1, "context": 3})
