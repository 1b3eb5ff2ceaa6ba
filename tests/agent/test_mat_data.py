"""MAT readers on small files in the released layout: fields, splits, trajectories and bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from jaxlab.agent.mat_data import (ImageDecodeError, read_mat_benchmark, read_mat_training,
                                   read_mat_training_records, unique_trajectories)
from jaxlab.agent.records import NO_OBSERVATION, Observation, current_image

RED, GREEN, BLUE, GRAY = (200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 90)


def _image(path, color, size=(5, 4)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new("RGB", size, color).save(path)


def _json(path, records):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
  return path


def _search_benchmark(root, records=None):
  images = root / "MAT-Benchmark" / "MAT-Search-image"
  _image(images / "1.jpg", RED)
  _image(images / "2.png", GREEN)
  records = records or [
      {"id": 1, "question": "Which river flows through the capital of this country?", "answer": "Seine",
       "image_path": "1.jpg"},
      {"id": 2, "question": " Is this painting housed in the same museum as The Night Watch? ",
       "answer": ["Yes", "yes, the Rijksmuseum"], "image_path": "2.png"},
  ]
  return _json(root / "MAT-Benchmark" / "MAT-Search.json", records)


def _coding_benchmark(root):
  images = root / "MAT-Benchmark" / "MAT-Coding-image"
  for name, color in (("rotation180_1_ori.png", RED), ("rotation180_1_proc.png", GREEN),
                      ("crop_8_ori.png", BLUE), ("crop_8_proc.png", GRAY)):
    _image(images / name, color)
  return _json(root / "MAT-Benchmark" / "MAT-Coding.json", [
      {"id": 12, "question": "What is the serving size of the beverage?", "answers": ["1 Can (473ml)"],
       "ori_image_path": "rotation180_1_ori.png", "processed_image_path": "rotation180_1_proc.png",
       "type": ["rotation180"], "split": "simple"},
      {"id": 119, "question": "Recognize the text within the [366, 723, 506, 851] of the image.",
       "answers": ["SINCE 1994"], "ori_image_path": "crop_8_ori.png", "processed_image_path": "crop_8_proc.png",
       "type": ["crop"], "split": "hard"},
  ])


QUERY = "<query> Which river flows through the capital of this country? </query>"
SEARCH_1 = "<think> The flag is France's. </think>\n<search> river through Paris </search>"
INFO_1 = "<information> 1. Content: Paris lies on the Seine. </information>"
ANSWER_1 = "<think> The Seine flows through Paris. </think>\n<answer> Seine </answer>"
ANSWER_2 = "<think> This is the Eiffel Tower. </think>\n<answer> Paris </answer>"


def _search_training(root):
  _image(root / "MAT-Training" / "rft_agent_search_20_images" / "france.jpg", RED)
  _image(root / "MAT-Training" / "rft_agent_search_20_images" / "tower.png", BLUE)
  # The answer record first: grouping must not depend on file order.
  return _json(root / "MAT-Training" / "rft_agent_search_20.json", [
      {"image_path": "france.jpg", "problem": f"{QUERY}\n{SEARCH_1}\n{INFO_1}", "solution": ANSWER_1},
      {"image_path": "tower.png", "problem": "<query> In which city is this? </query>", "solution": ANSWER_2},
      {"image_path": "france.jpg", "problem": QUERY, "solution": SEARCH_1},
  ])


PROBLEM = "<think> The text is upside down. </think>\n<problem> {'rotation180'} </problem>"
TIPS = "<tips> Now that we have identified the issue in the image: ['rotation180'], please fix it. </tips>"
CODE = ("<think> Rotate it back. </think>\n<code>\n```python\nimport cv2\nimg = cv2.imread('path_to_input_image.jpg')\n"
        "cv2.imwrite('path_to_output_image.jpg', cv2.rotate(img, cv2.ROTATE_180))\n```\n</code>")
ANSWER_3 = "<think> It reads 81. </think>\n<answer> 81 </answer>"
NONE = "<think> The image is clean. </think>\n<problem> {'none'} </problem>"
ANSWER_4 = "<think> It says TAEST. </think>\n<answer> TAEST </answer>"


def _coding_rows():
  ruler, word = "<query> What is the biggest number on this ruler? </query>", "<query> What is written? </query>"
  return [
      {"type": "pre_problem", "image_path": "rotation180_60_proc.png", "problem": ruler,
       "solution": "<problem> {'rotation180'} </problem>", "gt": PROBLEM},
      {"type": "pre_code", "image_path": "rotation180_60_proc.png", "problem": ruler, "context": f"{PROBLEM}\n{TIPS}",
       "solution": CODE.split("\n", 1)[1], "gt": CODE},
      {"type": "pre_answer", "image_path": "rotation180_60_ori.png", "problem": ruler,
       "context": f"{PROBLEM}\n{TIPS}\n{CODE}", "solution": "<answer> 81 </answer>", "gt": ANSWER_3},
      {"type": "pre_problem", "image_path": "none_79_proc.png", "problem": word,
       "solution": "<problem> {'none'} </problem>", "gt": NONE},
      {"type": "pre_answer", "image_path": "none_79_ori.png", "problem": word, "context": NONE,
       "solution": "<answer> TAEST </answer>", "gt": ANSWER_4},
  ]


def _coding_training(root, rows=None):
  images = root / "MAT-Training" / "rft_agent_code_1_2k_images"
  for name, color in (("rotation180_60_proc.png", GREEN), ("rotation180_60_ori.png", RED),
                      ("none_79_proc.png", GRAY), ("none_79_ori.png", GRAY)):
    _image(images / name, color)
  return _json(root / "MAT-Training" / "rft_agent_code_1_2k.json", rows or _coding_rows())


def _color(image):
  return tuple(int(v) for v in np.asarray(image)[0, 0])


# ------------------------------------------------------------------------------------------------
# Benchmark


def test_search_benchmark_fields(tmp_path):
  items = read_mat_benchmark(_search_benchmark(tmp_path / "MAT"))
  assert [i.id for i in items] == ["1", "2"] and {i.task for i in items} == {"search"}
  assert items[0].answers == ("Seine",) and items[1].answers == ("Yes", "yes, the Rijksmuseum")
  assert items[1].question == " Is this painting housed in the same museum as The Night Watch? "  # verbatim
  assert items[0].image.dtype == np.uint8 and items[0].image.shape == (4, 5, 3)
  assert np.abs(np.asarray(items[0].image, int) - RED).max() < 16  # JPEG is lossy
  assert _color(items[1].image) == GREEN
  assert [i.split for i in items] == ["simple", "simple"]


def test_coding_benchmark_picks_the_degraded_image_except_for_crop(tmp_path):
  items = read_mat_benchmark(_coding_benchmark(tmp_path / "MAT"))
  assert [(i.id, i.task, i.split) for i in items] == [("12", "coding", "simple"), ("119", "coding", "hard")]
  assert _color(items[0].image) == GREEN  # processed_image_path
  assert _color(items[1].image) == BLUE  # crop: ori_image_path
  assert items[0].answers == ("1 Can (473ml)",)


def test_simple_hard_by_position_when_records_carry_no_split(tmp_path):
  one = {"question": "q", "answer": "a", "image_path": "1.jpg"}
  path = _search_benchmark(tmp_path / "MAT", [dict(one, id=i) for i in range(77)])
  assert [i.split for i in read_mat_benchmark(path)] == ["simple"] * 75 + ["hard"] * 2
  _image(tmp_path / "c" / "x.png", RED)
  rows = [{"id": i, "question": "q", "answers": ["a"], "processed_image_path": "x.png", "type": ["dark"]}
          for i in range(71)]
  items = read_mat_benchmark(_json(tmp_path / "c" / "MAT-Coding.json", rows))
  assert [i.split for i in items] == ["simple"] * 70 + ["hard"]


def test_jsonl_image_root_and_explicit_task(tmp_path):
  _image(tmp_path / "pictures" / "a.png", BLUE)
  path = tmp_path / "bench.jsonl"
  path.write_text('{"id": "x1", "question": "q", "answer": "a", "image_path": "a.png"}\n\n')
  with pytest.raises(ValueError, match="cannot tell"):
    read_mat_benchmark(_json(tmp_path / "other.json", [{"id": 1, "question": "q"}]))
  with pytest.raises(ValueError, match="task must be one of"):
    read_mat_benchmark(path, task="vqa")
  items = read_mat_benchmark(path, image_root=tmp_path / "pictures", task="search")
  assert items[0].id == "x1" and _color(items[0].image) == BLUE


# ------------------------------------------------------------------------------------------------
# Training


def test_search_training_groups_records_into_trajectories(tmp_path):
  path = _search_training(tmp_path / "MAT")
  records = read_mat_training_records(path)
  assert [r.step_type for r in records] == ["pre_answer", "pre_answer", "pre_search"]
  assert records[0].prompt.startswith(QUERY) and records[0].solution == ANSWER_1 and records[0].context == ""
  samples = read_mat_training(path)
  assert [(s.trajectory.id, s.index, s.kind) for s in samples] == [
      ("france", 1, "answer"), ("tower", 0, "answer"), ("france", 0, "search")]
  france, tower = unique_trajectories(samples)
  assert samples[0].trajectory is samples[2].trajectory
  assert france.question == "Which river flows through the capital of this country?"
  assert france.steps == (SEARCH_1, ANSWER_1) and france.answers == ("Seine",) and france.split == "train"
  assert france.observations == (Observation(text=INFO_1), NO_OBSERVATION)
  assert samples[0].previous == (SEARCH_1,) and samples[2].solution == SEARCH_1
  assert tower.steps == (ANSWER_2,) and _color(tower.image) == BLUE


def test_coding_training_turns_and_pictures(tmp_path):
  path = _coding_training(tmp_path / "MAT")
  records = read_mat_training_records(path)
  assert [r.step_type for r in records] == ["pre_problem", "pre_code", "pre_answer", "pre_problem", "pre_answer"]
  assert records[1].gold_step == CODE and records[1].solution.startswith("<code>") and records[0].context == ""
  samples = read_mat_training(path)
  assert [(s.trajectory.id, s.index, s.kind) for s in samples] == [
      ("rotation180_60", 0, "problem"), ("rotation180_60", 1, "code"), ("rotation180_60", 2, "answer"),
      ("none_79", 0, "problem"), ("none_79", 1, "answer")]
  ruler = samples[0].trajectory
  assert ruler.steps == (PROBLEM, CODE, ANSWER_3) and ruler.answers == ("81",)
  assert ruler.observations[0].text == TIPS and ruler.observations[0].image is None
  assert _color(ruler.observations[1].image) == RED  # the code turn's output: the clean picture
  # Each sample sees the picture its released record shows.
  for sample, record in zip(samples[:3], records[:3], strict=True):
    assert _color(current_image(sample.trajectory, sample.previous_observations)) == _color(record.image)
  clean = samples[3].trajectory
  assert clean.steps == (NONE, ANSWER_4) and clean.observations == (NO_OBSERVATION, NO_OBSERVATION)


def test_training_task_from_keys_and_missing_steps(tmp_path):
  rows = _coding_rows()[:2]  # no pre_answer
  path = _coding_training(tmp_path / "MAT", rows)
  moved = _json(tmp_path / "MAT" / "MAT-Training" / "steps.json", rows)
  assert {r.task for r in read_mat_training_records(moved, image_root=path.parent / "rft_agent_code_1_2k_images")} \
      == {"coding"}
  with pytest.raises(ValueError, match=r"no pre_answer record .*record 0.*record 1"):
    read_mat_training(path)


def test_training_turns_that_disagree_are_named(tmp_path):
  path = _search_training(tmp_path / "MAT")
  rows = json.loads(path.read_text())
  rows[2]["solution"] = "<think> x </think>\n<search> capital of Spain </search>"
  _json(path, rows)
  with pytest.raises(ValueError, match=r"record 2: gold turn 0 of trajectory 'france'"):
    read_mat_training(path)
  rows[1]["solution"] = "<answer> Paris </answer>"  # no <think>: not a whole turn
  rows[2]["solution"] = SEARCH_1
  _json(path, rows)
  with pytest.raises(ValueError, match=r"'tower': gold step 0 is malformed .*record 1"):
    read_mat_training(path)


# ------------------------------------------------------------------------------------------------
# Bad input


def test_missing_file_and_broken_json(tmp_path):
  with pytest.raises(FileNotFoundError, match="no MAT file"):
    read_mat_benchmark(tmp_path / "MAT-Search.json")
  bad = tmp_path / "MAT-Search.json"
  bad.write_text('[\n  {"id": 1,\n   "question": "q" "answer": "a"}\n]')
  with pytest.raises(ValueError, match="line 3"):
    read_mat_benchmark(bad)
  bad.write_text('{"id": 1, "question": "q", "answer": "a", "image_path": "1.jpg"}\n{"id": 2,\n')
  with pytest.raises(ValueError, match="line 2 is not valid JSON"):
    read_mat_benchmark(bad)
  bad.write_text("[1, 2]")
  with pytest.raises(ValueError, match="record 0 must be a JSON object"):
    read_mat_benchmark(bad)
  bad.write_text("[]")
  with pytest.raises(ValueError, match="no records"):
    read_mat_benchmark(bad)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("answer"), r"record 1 \(id 2\): missing key 'answer'"),
    (lambda r: r.pop("id"), r"record 1: missing key 'id'"),
    (lambda r: r.update(answer={"a": 1}), "'answer' must be str or list"),
    (lambda r: r.update(answer=[]), "non-empty list"),
    (lambda r: r.update(split="medium"), "'split' must be 'simple' or 'hard'"),
    (lambda r: r.update(id=1), "id '1' is already used by"),
])
def test_bad_benchmark_records_are_named(tmp_path, change, message):
  path = _search_benchmark(tmp_path / "MAT")
  rows = json.loads(path.read_text())
  change(rows[1])
  _json(path, rows)
  with pytest.raises(ValueError, match=message):
    read_mat_benchmark(path)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("gt"), r"record 1: missing key 'gt'"),
    (lambda r: r.pop("context"), r"record 1: missing key 'context'"),
    (lambda r: r.update(type="pre_search"), "'type' must be one of"),
    (lambda r: r.update(problem="   "), "holds no question"),
])
def test_bad_training_records_are_named(tmp_path, change, message):
  rows = _coding_rows()
  change(rows[1])
  with pytest.raises(ValueError, match=message):
    read_mat_training(_coding_training(tmp_path / "MAT", rows))


def test_bad_images_raise_or_are_skipped_with_a_count(tmp_path):
  path = _search_benchmark(tmp_path / "MAT")
  images = path.parent / "MAT-Search-image"
  (images / "2.png").unlink()
  with pytest.raises(FileNotFoundError, match=r"record 1 \(id 2\): image '2.png' not found"):
    read_mat_benchmark(path)
  items, skipped = read_mat_benchmark(path, skip_bad_images=True)
  assert [i.id for i in items] == ["1"] and skipped == 1
  (images / "2.png").write_bytes(b"not a png")
  with pytest.raises(ImageDecodeError, match=r"2\.png cannot be decoded"):
    read_mat_benchmark(path)
  assert read_mat_benchmark(path, skip_bad_images=True)[1] == 1


def test_training_bad_image_leaves_out_its_whole_trajectory(tmp_path):
  path = _coding_training(tmp_path / "MAT")
  (path.parent / "rft_agent_code_1_2k_images" / "rotation180_60_ori.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="rotation180_60_ori.png cannot be decoded"):
    read_mat_training(path)
  records, skipped = read_mat_training_records(path, skip_bad_images=True)
  assert len(records) == 4 and skipped == 1
  samples, skipped = read_mat_training(path, skip_bad_images=True)
  assert [s.trajectory.id for s in samples] == ["none_79", "none_79"] and skipped == 3
