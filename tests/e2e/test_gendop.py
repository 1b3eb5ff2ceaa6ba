"""GenDoP end to end (in process): the smoke run trains, generates, scores against its baselines and plots;
and the same task on DataDoP-layout files written from shots (data read, not generated)."""

import json

import imageio.v3 as iio
import pytest

from jaxlab.camera.datadop import write_shot
from jaxlab.camera.synthetic import make_shots
from jaxlab.testing.tensorboard import read_images
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
  assert 0.0 <= rows["model"]["f1"] <= 1.0 and 0.0 <= results["train_shots_f1"] <= 1.0
  assert (tmp_path / "trajectories.png").stat().st_size > 1000
  ((step, logged),) = read_images(tmp_path / "train" / "tb")["trajectories"]
  assert step == config.train.num_steps
  assert (logged == iio.imread(tmp_path / "trajectories.png")[..., :3]).all()
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


def test_zero_quaternion_poses_take_the_previous_rotation():
  """Sampled tokens can put every quaternion value in the middle bin (q = 0, no rotation): such a pose takes
  the previous pose's rotation (identity for pose 0), is counted, and the row then decodes."""
  import numpy as np

  from jaxlab.camera import tokenizer as pose_tokenizer

  tokens = np.full((2, 300), pose_tokenizer.OFFSET + 128)
  tokens[1, :4] = pose_tokenizer.OFFSET + np.array([256, 128, 128, 128])  # Row 1, pose 0: identity.
  tokens[1, 10:14] = pose_tokenizer.OFFSET + np.array([200, 150, 128, 128])
  with pytest.raises(pose_tokenizer.TrajectoryError):
    pose_tokenizer.decode(tokens[0])
  repaired, count = gendop_train.repair_rotations(tokens)
  assert count == 2
  np.testing.assert_array_equal(repaired[1, 20:24], tokens[1, 10:14])  # Pose 2 copies pose 1.
  poses, _ = gendop_train.decoded(repaired)
  np.testing.assert_allclose(poses[0, :, :3, :3], np.broadcast_to(np.eye(3), (30, 3, 3)), atol=1e-9)
