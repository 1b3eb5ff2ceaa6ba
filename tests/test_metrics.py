"""MetricWriter (JSONL + TensorBoard), read_metrics and ProgressBar."""

import io
import json
import math
import pathlib
import struct
import time

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from jaxlab.metrics import MetricWriter
from jaxlab.metrics import ProgressBar
from jaxlab.metrics import ProgressLog
from jaxlab.metrics import read_metrics


def _read_tfrecords(path: pathlib.Path) -> list[bytes]:
  """Payloads of a TFRecord file: uint64 length, uint32 crc, payload, uint32 crc."""
  data = path.read_bytes()
  payloads, offset = [], 0
  while offset < len(data):
    (length,) = struct.unpack_from("<Q", data, offset)
    offset += 8 + 4
    payloads.append(data[offset:offset + length])
    offset += length + 4
  assert offset == len(data), "truncated record"
  return payloads


def _tensorboard_scalars(workdir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  scalars: dict[str, list[tuple[int, float]]] = {}
  event_files = sorted((workdir / "tb").glob("events.out.tfevents.*"))
  assert event_files, "no TensorBoard event file written"
  for event_file in event_files:
    for payload in _read_tfrecords(event_file):
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


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
  scalars = _tensorboard_scalars(tmp_path)
  assert set(scalars) == {"loss/train", "lr"}
  for tag in scalars:
    assert scalars[tag] == [(step, metrics[tag]) for step, metrics in written.items()]


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
