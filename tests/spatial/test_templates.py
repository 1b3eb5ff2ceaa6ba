"""Question, answer and task templates: coverage of every subtask, placeholders, units, rendering."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest

from jaxlab.spatial import subtasks, templates
from jaxlab.spatial.scoring import extract_answer

# The contract the engine calls render_question with.
EXPECTED_FIELDS = {
    "depth_value_dot": {"color"},
    "depth_value_coord": {"x", "y"},
    "depth_compare_dot": set(),
    "depth_compare_coord": {"x1", "y1", "x2", "y2"},
    "correspondence_mcq": {"color"},
    "correspondence_coord": {"x", "y"},
    **{name: set() for name in subtasks.CAMERA},
    "object_movement_distance_dot": {"color"},
    "object_movement_distance_coord": {"x", "y"},
    "object_movement_vector_dot": {"color"},
    "object_movement_vector_coord": {"x", "y"},
    **{name: {"object"} for name in subtasks.OBJECT_SIZE},
}
SAMPLE_FIELDS = {"color": "red", "object": "table", "x": 512, "y": 233, "x1": 10, "y1": 990, "x2": 700, "y2": 0}
SAMPLE_VALUES = {"scalar": [1234, -56, 0], "vector": [[120, 340, -56]], "coord": [[512, 233], [0, 999]]}
KEYS = list(subtasks.STATIC_SUBTASKS) + [f"object_movement_{k}" for k in subtasks.OBJECT_MOVEMENT_KINDS]


def fields_of(template: str) -> set[str]:
  return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def sample_fields(key: str) -> dict:
  return {name: SAMPLE_FIELDS[name] for name in EXPECTED_FIELDS[key]}


def test_every_subtask_has_questions_answers_and_tasks():
  assert set(templates.QUESTIONS) == set(KEYS) == set(templates.ANSWERS) == set(templates.TASKS)
  for key in KEYS:
    assert 28 <= len(templates.QUESTIONS[key]) <= 40, key
    assert len(templates.ANSWERS[key]) >= 10, key
    assert len(templates.TASKS[key]) >= 3, key
    assert len(set(templates.QUESTIONS[key])) == len(templates.QUESTIONS[key]), f"{key}: repeated question"
    assert len(set(templates.ANSWERS[key])) == len(templates.ANSWERS[key]), f"{key}: repeated answer"


@pytest.mark.parametrize("key", KEYS)
def test_questions_of_a_subtask_share_one_placeholder_set(key):
  sets = {frozenset(fields_of(q)) for q in templates.QUESTIONS[key]}
  assert sets == {frozenset(EXPECTED_FIELDS[key])}, key
  assert templates.QUESTION_FIELDS[key] == EXPECTED_FIELDS[key]


@pytest.mark.parametrize("key", KEYS)
def test_answer_templates_hold_one_backticked_value(key):
  for answer in templates.ANSWERS[key]:
    assert fields_of(answer) == {"value"}, answer
    assert answer.count("`{value}`") == 1 and answer.count("`") == 2, answer


def test_questions_and_tasks_hold_no_backticks_or_image_marks():
  for table in (templates.QUESTIONS, templates.TASKS):
    for key, texts in table.items():
      for text in texts:
        assert "`" not in text and "<image>" not in text, (key, text)
  for key, texts in templates.TASKS.items():
    assert all(fields_of(t) == set() for t in texts), key


@pytest.mark.parametrize("key", KEYS)
def test_rendered_answer_gives_back_the_formatted_value(key):
  kind = subtasks.answer_kind(key)
  values = list(subtasks.LABEL_CHOICES.get(key, ())) if kind == "label" else SAMPLE_VALUES[kind]
  assert values
  for value in values:
    for answer in templates.ANSWERS[key]:  # every template, not only those a seed happens to draw
      assert extract_answer(answer.format(value=templates.format_value(kind, value))) == \
          templates.format_value(kind, value)
    rendered = templates.render_answer(key, np.random.default_rng(0), value)
    assert extract_answer(rendered) == templates.format_value(kind, value)


def test_format_value_by_kind():
  assert templates.format_value("label", " left ") == "left"
  assert templates.format_value("scalar", 12.6) == "13"
  assert templates.format_value("scalar", np.float32(-3.4)) == "-3"
  assert templates.format_value("vector", np.array([120.2, 339.7, -56.0])) == "[ 120 , 340 , -56 ]"
  assert templates.format_value("coord", (512, 233)) == "[ 512 , 233 ]"
  with pytest.raises(ValueError, match="coord"):
    templates.format_value("coord", [1, 2, 3])
  with pytest.raises(ValueError, match="finite"):
    templates.format_value("scalar", float("nan"))
  with pytest.raises(ValueError, match="answer kind"):
    templates.format_value("number", 3)
  with pytest.raises(ValueError, match="label"):
    templates.format_value("label", "  ")


@pytest.mark.parametrize("key", KEYS)
def test_render_question_fills_every_field(key):
  fields = sample_fields(key)
  seen = set()
  for seed in range(60):
    text = templates.render_question(key, np.random.default_rng(seed), **fields)
    assert "{" not in text and "}" not in text
    for value in fields.values():
      assert str(value) in text
    seen.add(text)
  assert len(seen) >= 10, f"{key}: the rng hardly varies the phrasing"
  rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
  assert templates.render_question(key, rng_a, **fields) == templates.render_question(key, rng_b, **fields)


def test_render_question_refuses_wrong_fields():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="missing \\['y'\\]"):
    templates.render_question("depth_value_coord", rng, x=3)
  with pytest.raises(ValueError, match="0-1000"):
    templates.render_question("depth_value_coord", rng, x=3.5, y=2)
  with pytest.raises(ValueError, match="0-1000"):
    templates.render_question("depth_value_coord", rng, x=1001, y=2)
  with pytest.raises(ValueError, match="no templates"):
    templates.render_question("depth_guess", rng)


def test_render_question_ignores_fields_the_subtask_does_not_use():
  everything = dict(SAMPLE_FIELDS, x=3.5)  # unused fields are not even checked
  for key in KEYS:
    used = sample_fields(key)
    if "x" in used:
      continue
    with_all = templates.render_question(key, np.random.default_rng(5), **everything)
    assert with_all == templates.render_question(key, np.random.default_rng(5), **used)


def test_object_movement_accepts_the_full_subtask_name():
  rng = np.random.default_rng(1)
  name = subtasks.object_movement_subtask("room_figures", "vector_coord")
  assert templates.template_key(name) == "object_movement_vector_coord"
  text = templates.render_question(name, rng, x=5, y=995)
  assert re.search(r"\b5\b", text) and "995" in text
  answer = templates.render_answer(name, rng, [1, -2, 3])
  assert extract_answer(answer) == "[ 1 , -2 , 3 ]"
  distance = subtasks.object_movement_subtask("adt", "distance_dot")
  assert extract_answer(templates.render_answer(distance, rng, 87.6)) == "88"
  assert templates.render_task(distance, rng) in templates.TASKS["object_movement_distance_dot"]


def test_tasks_state_the_units():
  for key in KEYS:
    kind = subtasks.answer_kind(key)
    texts = templates.TASKS[key]
    if kind == "coord" or key.endswith("_coord"):
      assert all("1000" in t for t in texts), key
    if key in ("camera_yaw_degrees", "camera_pitch_degrees"):
      assert all("degrees" in t for t in texts), key
    elif kind in ("scalar", "vector"):
      assert all("millimetres" in t for t in texts), key
    if kind == "vector":
      assert all(all(w in t for w in ("right", "down", "forward", "first camera")) for t in texts), key
    if kind == "label":
      choices = subtasks.LABEL_CHOICES[key]
      assert all(all(c in t for c in choices) for t in texts) or key == "correspondence_mcq" and \
          all("A, B, C and D" in t for t in texts), key


def test_vocabulary_stays_modest():
  words = set()
  for table in (templates.QUESTIONS, templates.ANSWERS, templates.TASKS):
    for texts in table.values():
      for text in texts:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
  assert len(words) < 450, len(words)
