"""SpatialQA records: the jsonl round trip and the checks on malformed lines."""

import json

import pytest

from jaxlab.spatial.qa import QAFormatError, SpatialQA, prompt_with_images, read_items, subtask_counts, write_items


def _item(item_id="a", images=("x.png", "y.png"), answer="It moved `left`.", kind="label", gt="left"):
  return SpatialQA(id=item_id, subtask="camera_left_right", images=images,
                   question=prompt_with_images(len(images), "Task.", "Where?"), answer=answer, answer_kind=kind,
                   gt_value=gt, widths=(128,) * len(images), heights=(96,) * len(images))


def test_round_trip_keeps_every_field(tmp_path):
  items = [_item(), SpatialQA(id="b", subtask="camera_vector", images=("z.png",),
                              question=prompt_with_images(1, "T", "Q"), answer="`[ 1 , -2 , 3 ]`",
                              answer_kind="vector", gt_value=(1.0, -2.0, 3.0), widths=(64,), heights=(48,),
                              meta={"scene": "s"})]
  write_items(tmp_path / "q.jsonl", items)
  back = read_items(tmp_path / "q.jsonl")
  assert back == items
  assert subtask_counts(back) == {"camera_left_right": 1, "camera_vector": 1}
  row = json.loads((tmp_path / "q.jsonl").read_text().splitlines()[0])
  assert row["conversations"][0]["value"].startswith("Image-1: <image>\nImage-2: <image>\nTask.\nWhere?")


@pytest.mark.parametrize("change, message", [
    (dict(images=("x.png",)), "marks for 1 images"),
    (dict(answer="left"), "no backticked value"),
    (dict(kind="number"), "answer_kind"),
])
def test_malformed_items_are_refused(change, message):
  kwargs = dict(images=("x.png", "y.png"), answer="`left`", kind="label")
  kwargs.update(change)
  images = kwargs.pop("images")
  with pytest.raises(QAFormatError, match=message):
    if len(images) == 1:
      SpatialQA(id="a", subtask="s", images=images, question=prompt_with_images(2, "T", "Q"), answer=kwargs["answer"],
                answer_kind=kwargs["kind"], gt_value="left", widths=(1,), heights=(1,))
    else:
      _item(images=images, answer=kwargs["answer"], kind=kwargs["kind"])


def test_reader_names_the_line_of_a_bad_row_and_repeated_ids(tmp_path):
  good = json.dumps(_item().to_json())
  (tmp_path / "bad.jsonl").write_text(good + "\n{\"id\": 3}\n")
  with pytest.raises(QAFormatError, match=r"bad.jsonl:2"):
    read_items(tmp_path / "bad.jsonl")
  (tmp_path / "twice.jsonl").write_text(good + "\n" + good + "\n")
  with pytest.raises(QAFormatError, match="appears twice"):
    read_items(tmp_path / "twice.jsonl")
