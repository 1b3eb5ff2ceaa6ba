"""The MultiSPA scorer: answer extraction, thresholds at their boundaries, the report and the command."""

from __future__ import annotations

import json

import pytest

from jaxlab import files
from jaxlab.spatial import qa, scoring
from jaxlab.spatial import score as score_command
from jaxlab.spatial.scoring import (
  PredictionsError,
  extract_answer,
  is_correct,
  parse_numbers,
)


def make_item(item_id="q", kind="scalar", gt=1000.0, subtask=None, widths=(128,), heights=(96,)):
  subtask = subtask or {"label": "camera_left_right", "scalar": "camera_distance", "vector": "camera_vector",
                        "coord": "correspondence_coord"}[kind]
  images = tuple(f"img{i}.png" for i in range(len(widths)))
  question = qa.prompt_with_images(len(images), "task", "question?")
  return qa.SpatialQA(id=item_id, subtask=subtask, images=images, question=question, answer="It is `x`.",
                      answer_kind=kind, gt_value=gt, widths=tuple(widths), heights=tuple(heights))


def test_extract_answer_takes_the_last_backticked_span():
  assert extract_answer("First `left`, no wait: `right`.") == "right"
  assert extract_answer("The vector is ` [ 1 , 2 , 3 ] `") == "[ 1 , 2 , 3 ]"
  assert extract_answer("no backticks at all") is None
  assert extract_answer("empty `` then nothing") is None
  assert extract_answer("`A` and then an empty `` span") == "A"


def test_parse_numbers():
  assert parse_numbers("[ 12 , -3.5 , 4e2 ]") == [12.0, -3.5, 400.0]
  assert parse_numbers("about \u221240 mm") == [-40.0]
  assert parse_numbers("none") == []


@pytest.mark.parametrize("gt,prediction,correct", [
    (1000, "`1200`", True), (1000, "`800`", True),  # exactly 20 % off
    (1000, "`1201`", False), (1000, "`799`", False),
    (35, "`42`", True), (35, "`28`", True), (35, "`42.1`", False), (35, "`27.9`", False),
    (-50, "`-60`", True), (-50, "`-61`", False), (-50, "`50`", False),
    (0, "`0`", True), (0, "`1`", False),
    (1000, "1000", False),  # no backticks
    (1000, "`1000 or 1100`", False),  # two numbers for one value
    (1000, "It is `1,000` mm.", False),
])
def test_scalar_within_twenty_percent(gt, prediction, correct):
  assert is_correct(make_item(kind="scalar", gt=float(gt)), prediction) is correct


@pytest.mark.parametrize("prediction,correct", [
    ("`[ 300 , 400 , 100 ]`", True),  # error 100 = 20 % of the norm 500
    ("`[ 360 , 480 , 0 ]`", True),  # error 100 along the vector itself
    ("`[ 300 , 400 , 101 ]`", False),
    ("`[ 300 , 400 ]`", False),  # wrong length
    ("`[ 300 , 400 , 0 , 0 ]`", False),
    ("The move is [ 300 , 400 , 0 ]", False),
    ("`[300,400,-100]`", True),
])
def test_vector_within_twenty_percent_of_the_norm(prediction, correct):
  assert is_correct(make_item(kind="vector", gt=(300.0, 400.0, 0.0)), prediction) is correct


@pytest.mark.parametrize("prediction,correct", [
    ("`[ 550 , 500 ]`", True),  # 50 / 1000 of 200 px = 10 px = exactly 5 % of the width
    ("`[ 551 , 500 ]`", False),
    ("`[ 450 , 500 ]`", True),
    # y is scaled by the last image's height (100 px): 60 / 1000 -> 6 px, within 10 px. In the first (square,
    # 100 px wide) image, or in the 0-1000 space, the same offset would be too far.
    ("`[ 500 , 560 ]`", True),
    ("`[ 500 , 601 ]`", False),
    ("`[ 500 , 500 , 0 ]`", False),
    ("`[ 500 ]`", False),
])
def test_coordinate_within_five_percent_of_the_last_images_width(prediction, correct):
  item = make_item(kind="coord", gt=(500.0, 500.0), widths=(100, 200), heights=(100, 100))
  assert is_correct(item, prediction) is correct


def test_coordinate_distance_is_euclidean():
  item = make_item(kind="coord", gt=(500.0, 500.0), widths=(200,), heights=(150,))
  # dx = 40 / 1000 * 200 = 8 px, dy = 40 / 1000 * 150 = 6 px: 10 px, exactly the limit.
  assert is_correct(item, "`[ 540 , 540 ]`")
  assert not is_correct(item, "`[ 541 , 540 ]`")
  assert is_correct(item, "`[ 500 , 566 ]`")  # 9.9 px
  assert not is_correct(item, "`[ 500 , 567 ]`")  # 10.05 px


@pytest.mark.parametrize("prediction,correct", [
    ("`left`", True), ("`  LEFT `", True), ("The camera moved to the `Left`.", True),
    ("`right`", False), ("`left turn`", False), ("left", False), ("`right` or rather `left`", True),
])
def test_labels_match_ignoring_case_and_whitespace(prediction, correct):
  assert is_correct(make_item(kind="label", gt="left"), prediction) is correct


def test_labels_collapse_inner_whitespace():
  item = make_item(kind="label", gt="forward ", subtask="camera_forward_backward")
  assert is_correct(item, "`\tFORWARD`")


def items_for_report():
  return [
      make_item("a1", "label", "left", subtask="camera_left_right"),
      make_item("b1", "scalar", 100.0, subtask="camera_distance"),
      make_item("b2", "scalar", 100.0, subtask="camera_distance"),
      make_item("b3", "scalar", 100.0, subtask="camera_distance"),
  ]


def test_report_means_over_subtasks_and_counts_unparsed():
  predictions = {"a1": "`left`", "b1": "`110`", "b2": "no answer", "b3": "`[ 1 , 2 ]`"}
  report = scoring.score(items_for_report(), predictions)
  assert report.per_subtask["camera_left_right"] == {"accuracy": 100.0, "count": 1, "unparsed": 0}
  distance = report.per_subtask["camera_distance"]
  assert distance["count"] == 3 and distance["unparsed"] == 2
  assert distance["accuracy"] == pytest.approx(100.0 / 3)
  assert report.mean_accuracy == pytest.approx((100.0 + 100.0 / 3) / 2)  # not the item mean (50 %)
  assert report.num_items == 4 and report.missing == ()
  table = report.to_markdown()
  assert "camera_distance" in table and "33.33" in table and "66.67" in table


def test_missing_and_extra_predictions():
  items = items_for_report()
  with pytest.raises(PredictionsError, match="'b3'"):
    scoring.score(items, {"a1": "`left`", "b1": "`100`", "b2": "`100`"})
  report = scoring.score(items, {"a1": "`left`", "b1": "`100`", "b2": "`100`"}, allow_missing=True)
  assert report.missing == ("b3",)
  assert report.per_subtask["camera_distance"]["accuracy"] == pytest.approx(200.0 / 3)
  assert "b3" in report.to_markdown()
  with pytest.raises(PredictionsError, match="'zz'"):
    scoring.score(items, {"a1": "", "b1": "", "b2": "", "b3": "", "zz": ""}, allow_missing=True)


def test_malformed_ground_truth_is_an_error():
  with pytest.raises(ValueError, match="coord"):
    is_correct(make_item(kind="coord", gt=(1.0, 2.0, 3.0)), "`[ 1 , 2 ]`")


def write_jsonl(path, rows):
  files.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_read_predictions(tmp_path):
  path = tmp_path / "preds.jsonl"
  write_jsonl(path, [{"id": "a", "prediction": "`1`"}, {"id": 7, "prediction": "x"}])
  assert scoring.read_predictions(path) == {"a": "`1`", "7": "x"}
  write_jsonl(path, [{"id": "a", "prediction": "`1`"}, {"id": "a", "prediction": "`2`"}])
  with pytest.raises(PredictionsError, match=":2: id 'a' appears twice"):
    scoring.read_predictions(path)
  write_jsonl(path, [{"id": "a", "answer": "`1`"}])
  with pytest.raises(PredictionsError, match="'prediction'"):
    scoring.read_predictions(path)


def test_command_writes_the_report(tmp_path, capsys):
  items_path, preds_path = tmp_path / "items.jsonl", tmp_path / "preds.jsonl"
  qa.write_items(items_path, items_for_report())
  write_jsonl(preds_path, [{"id": "a1", "prediction": "`right`"}, {"id": "b1", "prediction": "`100`"},
                           {"id": "b2", "prediction": "`90`"}, {"id": "b3", "prediction": "`200`"}])
  out, md = tmp_path / "out" / "report.json", tmp_path / "report.md"
  argv = ["--items", str(items_path), "--predictions", str(preds_path), "--out", str(out), "--markdown", str(md)]
  assert score_command.main(argv) == 0
  report = json.loads(out.read_text())
  assert report["per_subtask"]["camera_left_right"]["accuracy"] == 0.0
  assert report["per_subtask"]["camera_distance"]["accuracy"] == pytest.approx(200.0 / 3)
  assert report["mean_accuracy"] == pytest.approx(100.0 / 3)
  assert report["num_items"] == 4 and report["missing"] == []
  assert "camera_distance" in md.read_text() and "camera_distance" in capsys.readouterr().out


def test_command_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
  items_path, preds_path, out = tmp_path / "items.jsonl", tmp_path / "preds.jsonl", tmp_path / "report.json"
  qa.write_items(items_path, items_for_report())
  write_jsonl(preds_path, [{"id": "a1", "prediction": "`left`"}])
  argv = ["--items", str(items_path), "--predictions", str(preds_path), "--out", str(out)]
  assert score_command.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error:") and "no prediction" in err and err.count("\n") == 1
  assert not out.exists()
  assert score_command.main(argv + ["--allow-missing"]) == 0
  assert json.loads(out.read_text())["missing"] == ["b1", "b2", "b3"]
  missing_file = ["--items", str(tmp_path / "nope.jsonl"), "--predictions", str(preds_path), "--out", str(out)]
  assert score_command.main(missing_file) == 2
