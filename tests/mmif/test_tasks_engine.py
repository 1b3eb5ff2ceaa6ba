"""Task generation and image filtering; MM-IFInstruct items, their jsonl, and the response filter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif.engine import (IMAGE_MARK, KEEP_THRESHOLD, InstructItem, keep_response, read_instruct, satisfaction,
                                write_instruct)
from jaxlab.mmif.records import Constraint
from jaxlab.mmif.taxonomy import COMPARE, DIRECT, RULE
from jaxlab.mmif.tasks import TASK_TYPES, ImageRecord, filter_images, generate_tasks

IMAGES = [ImageRecord(f"img{i}.png", f"the thing {i}", ("red",)) for i in range(4)]


def rule(key: str, func: str, *params) -> Constraint:
  return Constraint(key, f"{key} text.", RULE, ({"func": func, "params": list(params)},))


# ---------------------------------------------------------------- tasks


def test_tasks_have_requested_types_and_distinct_templates():
  types = ("creative_writing", "role_play")
  tasks = generate_tasks(IMAGES, np.random.default_rng(0), tasks_per_image=5, task_types=types)
  assert len(tasks) == 5 * len(IMAGES)
  for i, image in enumerate(IMAGES):
    mine = tasks[5 * i:5 * i + 5]
    assert all(t.image == image for t in mine)
    assert all(t.task_type in types for t in mine)
    assert len({t.instruction for t in mine}) == 5
    for t in mine:
      templates = [x.format(subject=image.subject) for x in TASK_TYPES[t.task_type]]
      assert t.instruction in templates


def test_tasks_fill_the_subject():
  tasks = generate_tasks(IMAGES, np.random.default_rng(1), tasks_per_image=3)
  for t in tasks:
    assert t.image.subject in t.instruction and "{" not in t.instruction
  default = generate_tasks([ImageRecord("x.png")], np.random.default_rng(1))[0]
  assert "the image" in default.instruction


def test_all_templates_of_a_type_are_drawn():
  tasks = generate_tasks(IMAGES[:1], np.random.default_rng(2), tasks_per_image=3, task_types=["emotion_perspective"])
  assert sorted(t.instruction for t in tasks) == sorted(x.format(subject="the thing 0")
                                                        for x in TASK_TYPES["emotion_perspective"])


def test_task_types_default_to_all_five():
  assert len(TASK_TYPES) == 5
  tasks = generate_tasks([ImageRecord(f"{i}.png") for i in range(60)], np.random.default_rng(3))
  assert {t.task_type for t in tasks} == set(TASK_TYPES)


def test_tasks_are_seeded():
  a = generate_tasks(IMAGES, np.random.default_rng(7), tasks_per_image=2)
  assert a == generate_tasks(IMAGES, np.random.default_rng(7), tasks_per_image=2)


def test_bad_task_arguments_raise():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="unknown task types \\['poetry'\\]"):
    generate_tasks(IMAGES, rng, task_types=["role_play", "poetry"])
  pool = sum(len(v) for v in TASK_TYPES.values())
  for n in (0, -1, pool + 1):
    with pytest.raises(ValueError, match=f"tasks_per_image must be in \\[1, {pool}\\], got {n}"):
      generate_tasks(IMAGES, rng, tasks_per_image=n)
  with pytest.raises(ValueError, match="must be in \\[1, 3\\], got 4"):
    generate_tasks(IMAGES, rng, tasks_per_image=4, task_types=["social_media_content"])


def test_task_writer_is_called():
  calls = []

  def writer(image, task_type, rng):
    calls.append((image.path, task_type))
    return None if image.path == "img0.png" else f"Written for {image.path} ({task_type})."

  tasks = generate_tasks(IMAGES, np.random.default_rng(4), tasks_per_image=2, task_writer=writer)
  assert calls == [(t.image.path, t.task_type) for t in tasks]
  for t in tasks:
    if t.image.path == "img0.png":
      assert t.instruction in [x.format(subject=t.image.subject) for x in TASK_TYPES[t.task_type]]
    else:
      assert t.instruction == f"Written for {t.image.path} ({t.task_type})."


def test_filter_images(tmp_path):
  def png(name, size):
    path = tmp_path / name
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return str(path)

  big, wide, tiny, thin = png("big.png", (32, 24)), png("wide.png", (40, 16)), png("tiny.png", (8, 8)), \
      png("thin.png", (64, 15))
  garbage = tmp_path / "garbage.png"
  garbage.write_bytes(b"this is not an image")
  missing = str(tmp_path / "missing.png")
  kept, dropped = filter_images([big, tiny, garbage, wide, thin, missing], min_side=16)
  assert kept == [big, wide]
  assert set(dropped) == {tiny, str(garbage), thin, missing}
  assert dropped[tiny] == "8x8 is below 16 px"
  assert dropped[thin] == "64x15 is below 16 px"
  assert dropped[str(garbage)].startswith("unreadable")
  assert dropped[missing].startswith("unreadable")


# ---------------------------------------------------------------- items and jsonl

WORDS = rule("word_limit", w.WORDS, 1, 19)
COMMAS = rule("punctuation", w.NOT_CONTAIN, [","])
TONE = Constraint("tone", "Use a formal tone.", COMPARE)


def items() -> list[InstructItem]:
  return [
      InstructItem("a", "images/a.png", "role_play", "Describe it.", (WORDS, COMMAS, TONE), "A red ball sits here."),
      InstructItem("b", "images/b.png", "creative_writing", "Tell a story.", (WORDS,), None),
      InstructItem("c", "/abs/c.png", "descriptive_analysis", "Name café items.", (), "Un café — bien sûr."),
  ]


def test_item_json_layout():
  record = items()[0].to_json()
  assert record["image"] == "images/a.png" and record["images"] == ["images/a.png"]
  assert record["instruction"] == "Describe it." and record["task_type"] == "role_play"
  assert record["constraints"] == [c.to_json() for c in (WORDS, COMMAS, TONE)]
  prompt = "Describe it. word_limit text. punctuation text. Use a formal tone."
  assert items()[0].prompt == prompt
  assert record["messages"] == [{"role": "user", "content": IMAGE_MARK + prompt},
                                {"role": "assistant", "content": "A red ball sits here."}]
  assert "messages" not in items()[1].to_json()


def test_instruct_round_trip(tmp_path):
  path = tmp_path / "instruct.jsonl"
  assert write_instruct(path, items()) == 3
  lines = path.read_text(encoding="utf-8").splitlines()
  assert len(lines) == 3 and all(json.loads(line)["id"] for line in lines)
  assert "café" in lines[2]  # Written as UTF-8, not escaped.
  assert read_instruct(path) == items()


def test_read_accepts_images_list_and_blank_lines(tmp_path):
  record = items()[0].to_json()
  del record["image"]
  path = tmp_path / "x.jsonl"
  path.write_text("\n" + json.dumps(record) + "\n\n", encoding="utf-8")
  assert read_instruct(path) == [items()[0]]


def _bad_file(tmp_path, line: str):
  path = tmp_path / "bad.jsonl"
  good = json.dumps(items()[0].to_json())
  path.write_text(good + "\n" + line + "\n", encoding="utf-8")
  return path


def test_read_names_file_and_line_for_not_json(tmp_path):
  path = _bad_file(tmp_path, "{not json")
  with pytest.raises(ValueError, match=f"{path} line 2: not JSON"):
    read_instruct(path)


def test_read_names_file_and_line_for_missing_key(tmp_path):
  record = items()[0].to_json()
  del record["instruction"]
  path = _bad_file(tmp_path, json.dumps(record))
  with pytest.raises(ValueError, match=f"{path} line 2: missing \\['instruction'\\]"):
    read_instruct(path)
  record = items()[0].to_json()
  del record["image"], record["images"]
  path = _bad_file(tmp_path, json.dumps(record))
  with pytest.raises(ValueError, match=f"{path} line 2: missing \\['image'\\]"):
    read_instruct(path)


def test_read_names_file_and_line_for_unknown_verify_func(tmp_path):
  record = items()[0].to_json()
  record["constraints"][0]["judge"]["verify_funcs"][0]["func"] = "check_whether_response_word_count_in_ranges"
  path = _bad_file(tmp_path, json.dumps(record))
  with pytest.raises(ValueError, match=f"{path} line 2 constraint 'word_limit': unknown verify_func") as e:
    read_instruct(path)
  assert "did you mean check_whether_response_word_count_in_range" in str(e.value)


def test_read_names_file_and_line_for_bad_constraint(tmp_path):
  record = items()[0].to_json()
  record["constraints"][1]["judge"] = {"method": "gpt"}
  path = _bad_file(tmp_path, json.dumps(record))
  with pytest.raises(ValueError, match=f"{path} line 2 constraint 1: .*unknown judge method 'gpt'"):
    read_instruct(path)


# ---------------------------------------------------------------- satisfaction and the filter


def test_satisfaction_of_rule_constraints():
  short = "A red ball sits here."
  long = " ".join(["word"] * 25) + ", yes."
  assert satisfaction(short, [WORDS, COMMAS]) == 1.0
  assert satisfaction(long, [WORDS, COMMAS]) == 0.0
  assert satisfaction("One, two.", [WORDS, COMMAS]) == 0.5
  assert satisfaction("", [WORDS, COMMAS]) == 0.0  # An empty answer meets nothing.


def test_satisfaction_with_a_judge():
  title = Constraint("title", "Give a title.", DIRECT)
  seen = []

  def judge(response, c):
    seen.append(c.key)
    return {"tone": True, "title": False}.get(c.key)

  assert satisfaction("A red ball sits here.", [WORDS, TONE, title], judge) == pytest.approx(2 / 3)
  assert seen == ["tone", "title"]  # Rule constraints never reach the judge.
  unsure = lambda response, c: None
  assert satisfaction("A red ball sits here.", [WORDS, TONE, title], unsure) == 1.0  # Only WORDS counts.
  assert satisfaction("A red ball sits here.", [WORDS, COMMAS, TONE]) == 1.0  # No judge: TONE left out.


def test_satisfaction_is_none_when_nothing_is_checkable():
  assert satisfaction("Anything.", []) is None
  assert satisfaction("Anything.", [TONE]) is None
  assert satisfaction("Anything.", [TONE], lambda r, c: None) is None


def test_keep_at_exactly_eighty_percent():
  assert KEEP_THRESHOLD == 0.8
  five = [rule(f"k{i}", w.WORDS, 1, 19) for i in range(4)] + [COMMAS]
  fraction = satisfaction("Yes, a red ball.", five)
  assert fraction == 4 / 5
  assert keep_response(fraction)
  assert keep_response(0.8) and keep_response(1.0)
  three_of_four = satisfaction("Yes, a red ball.", five[1:])
  assert three_of_four == 0.75 and not keep_response(three_of_four)
  assert not keep_response(0.79) and not keep_response(0.0) and not keep_response(None)
  assert keep_response(0.5, threshold=0.5) and not keep_response(0.49, threshold=0.5)
