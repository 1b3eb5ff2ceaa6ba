"""MetricWriter (JSONL + TensorBoard scalars and images), image_grid, read_metrics and ProgressBar."""

import io
import json
import math
import time

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.metrics import MetricWriter
from jaxlab.metrics import ProgressBar
from jaxlab.metrics import ProgressLog
from jaxlab.metrics import image_grid
from jaxlab.metrics import read_metrics
from jaxlab.testing.tensorboard import read_images, read_scalars


def test_jsonl_round_trip_with_mixed_value_types(tmp_path):
  before = time.time()
  with MetricWriter(tmp_path, enabled=True) as writer:
    writer.write(1, {"loss/train": 2.5, "perf/tokens": np.int64(4096), "lr": jnp.float32(0.125)})
    writer.write(2, {"loss/train": np.array(1.75, np.float32), "ok": True})
    # Each write is on disk before close: a crash after it would lose nothing.
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
  records = read_metrics(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in records] == [1, 2]
  assert records[0]["loss/train"] == 2.5
  assert records[0]["perf/tokens"] == 4096 and isinstance(records[0]["perf/tokens"], int)
  assert records[0]["lr"] == 0.125
  assert records[1]["loss/train"] == 1.75
  assert records[1]["ok"] == 1
  for record in records:
    assert before <= record["time"] <= time.time()


def test_non_finite_values_are_strings_in_json_and_floats_when_read(tmp_path):
  with MetricWriter(tmp_path, enabled=True) as writer:
    writer.write(3, {"a": float("nan"), "b": np.float32(np.inf), "c": -math.inf, "d": 1.0})
  line = json.loads((tmp_path / "metrics.jsonl").read_text())  # strict JSON parses
  assert (line["a"], line["b"], line["c"]) == ("nan", "inf", "-inf")
  (record,) = read_metrics(tmp_path)
  assert math.isnan(record["a"]) and record["b"] == math.inf and record["c"] == -math.inf
  assert record["d"] == 1.0


def test_second_writer_appends_to_the_same_file(tmp_path):
  with MetricWriter(tmp_path, enabled=True) as writer:
    writer.write(1, {"loss": 1.0})
    writer.write(2, {"loss": 0.5})
  with MetricWriter(tmp_path, enabled=True) as resumed:
    resumed.write(3, {"loss": 0.25})
  records = read_metrics(tmp_path)
  assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 0.5), (3, 0.25)]


def test_disabled_writer_creates_nothing(tmp_path):
  workdir = tmp_path / "run"
  with MetricWriter(workdir, enabled=False) as writer:
    assert not writer.enabled
    writer.write(1, {"loss": 1.0})
  assert not workdir.exists()


@pytest.mark.parametrize(
    "metrics, key",
    [
        ({"fine": 1.0, "vector": np.ones(3)}, "vector"),
        ({"matrix": jnp.zeros((1, 1))}, "matrix"),
        ({"name": "adam"}, "name"),
        ({"missing": None}, "missing"),
        ({"step": 1.0}, "step"),
    ],
)
def test_bad_values_raise_naming_the_key_and_write_nothing(tmp_path, metrics, key):
  with MetricWriter(tmp_path, enabled=True) as writer:
    with pytest.raises(ValueError, match=repr(key)):
      writer.write(1, metrics)
  assert read_metrics(tmp_path) == []


def test_tensorboard_event_file_holds_the_scalars(tmp_path):
  written = {1: {"loss/train": 2.0, "lr": 0.5}, 5: {"loss/train": 1.25, "lr": 0.25}}
  with MetricWriter(tmp_path, enabled=True) as writer:
    for step, metrics in written.items():
      writer.write(step, metrics)
  scalars = read_scalars(tmp_path / "tb")
  assert set(scalars) == {"loss/train", "lr"}
  for tag in scalars:
    assert scalars[tag] == [(step, metrics[tag]) for step, metrics in written.items()]


def test_images_round_trip_through_the_event_file(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  grey = rng.random((4, 6)).astype(np.float32)
  loud = np.array([[[-0.5, 0.25, 1.5]]], np.float32)  # floats outside [0, 1] are clipped
  with MetricWriter(tmp_path, enabled=True) as writer:
    writer.write_images(3, {"eval/rgb": rgb, "eval/grey": jnp.asarray(grey)})
    writer.write_images(7, {"eval/rgb": rgb[::-1], "clipped": loud})
  images = read_images(tmp_path / "tb")
  assert set(images) == {"eval/rgb", "eval/grey", "clipped"}
  assert [step for step, _ in images["eval/rgb"]] == [3, 7]
  np.testing.assert_array_equal(images["eval/rgb"][0][1], rgb)
  np.testing.assert_array_equal(images["eval/rgb"][1][1], rgb[::-1])
  ((step, decoded),) = images["eval/grey"]
  assert step == 3 and decoded.shape == (4, 6, 3)
  np.testing.assert_allclose(decoded, np.repeat(grey[..., None], 3, -1) * 255, atol=0.5)
  np.testing.assert_array_equal(images["clipped"][0][1], [[[0, 64, 255]]])
  assert read_metrics(tmp_path) == []  # images are not JSONL records
  assert read_scalars(tmp_path / "tb") == {}


@pytest.mark.parametrize(
    "image, key, message",
    [
        (np.zeros((4, 4, 4), np.uint8), "rgba", r"\[H, W, 3\] or \[H, W\]"),
        (np.zeros((2, 4, 4, 3), np.uint8), "batch", "got shape"),
        (np.zeros((4,), np.float32), "vector", "got shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty", "empty"),
        (np.full((2, 2), np.nan, np.float32), "nan", "NaN or infinite"),
        (np.full((2, 2, 3), np.inf, np.float32), "inf", "NaN or infinite"),
        (np.zeros((2, 2, 3), np.int32), "ints", "dtype int32"),
    ],
)
def test_bad_images_raise_naming_the_key_and_write_nothing(tmp_path, image, key, message):
  with MetricWriter(tmp_path, enabled=True) as writer:
    with pytest.raises(ValueError, match=f"{key!r}.*{message}"):
      writer.write_images(1, {"fine": np.zeros((2, 2, 3), np.uint8), key: image})
  assert read_images(tmp_path / "tb") == {}


def test_images_disabled_is_a_no_op_and_closed_is_an_error(tmp_path):
  workdir = tmp_path / "run"
  with MetricWriter(workdir, enabled=False) as writer:
    writer.write_images(1, {"x": np.full((2, 2), np.nan)})  # not even validated
  assert not workdir.exists()
  writer = MetricWriter(tmp_path, enabled=True)
  writer.close()
  with pytest.raises(ValueError, match="closed"):
    writer.write_images(1, {"x": np.zeros((2, 2), np.uint8)})


def test_image_grid_places_tiles_row_by_row():
  tiles = np.stack([np.full((2, 3, 3), i / 10, np.float32) for i in range(5)])
  grid = image_grid(tiles, columns=3, pad=1, pad_value=1.0)
  assert grid.shape == (2 * 2 + 1, 3 * 3 + 2, 3) and grid.dtype == np.float32
  for i in range(5):
    r, c = divmod(i, 3)
    np.testing.assert_array_equal(grid[r * 3:r * 3 + 2, c * 4:c * 4 + 3], tiles[i])
  assert np.all(grid[2] == 1.0) and np.all(grid[:, 3] == 1.0)  # gaps
  assert np.all(grid[3:, 8:] == 1.0)  # the empty sixth cell


def test_image_grid_defaults_and_uint8():
  tiles = np.zeros((4, 2, 2), np.uint8)  # grey
  grid = image_grid(tiles)  # ceil(sqrt(4)) = 2 columns, 2-pixel gaps
  assert grid.shape == (6, 6) and grid.dtype == np.uint8
  assert grid[2, 0] == 255 and grid[0, 0] == 0
  assert image_grid(tiles[:1], columns=8).shape == (2, 2)  # never wider than the batch
  with pytest.raises(ValueError, match="non-empty batch"):
    image_grid(np.zeros((0, 2, 2, 3)))


def test_progress_bar_is_off_when_stderr_is_not_a_terminal():
  # pytest captures stderr, so it is not a tty here.
  with ProgressBar(10) as bar:
    assert not bar.enabled
    bar.update(3, loss=1.0)


def test_progress_bar_off_for_a_non_terminal_stream_and_on_when_forced():
  assert not ProgressBar(10, file=io.StringIO()).enabled
  stream = io.StringIO()
  with ProgressBar(10, initial=2, enabled=True, desc="fit", file=stream) as bar:
    assert bar.enabled
    bar.update()
    bar.update(3, loss=0.123456)
  text = stream.getvalue()
  assert "fit" in text
  assert "6/10" in text
  assert "step/s" in text  # the rate
  assert "<00:00" in text  # elapsed<remaining: the ETA
  assert "loss=0.1235" in text


def test_progress_log_line_has_rate_and_time_left(caplog):
  now = [100.0]
  progress = ProgressLog(300, initial=0, clock=lambda: now[0])
  progress.start()
  now[0] += 50.0  # 100 steps in 50 s: 2 steps/s, 200 steps left: 100 s
  with caplog.at_level("INFO", logger="jaxlab.train"):
    line = progress.report(100, {"train/loss": 0.04123, "train/psnr": 24.312, "train/grad_norm": 3.0, "eval/accuracy": 0.5})
  assert line == "step 100/300 (33%) | loss 0.04123 | psnr 24.31 | eval accuracy 0.5 | 2 steps/s | ETA 1m40s"
  assert caplog.records[-1].getMessage() == line
  now[0] += 7200.0
  assert progress.report(200, {"train/loss": 0.03}).endswith("ETA 2h00m")


def test_progress_log_disabled_writes_nothing(caplog):
  with caplog.at_level("INFO", logger="jaxlab.train"):
    assert ProgressLog(10, enabled=False).report(5, {"train/loss": 1.0}) is None
  assert not caplog.records
