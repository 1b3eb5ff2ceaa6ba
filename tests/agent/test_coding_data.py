"""The generated MAT-Coding-like data: valid trajectories, gold code that the sandbox agrees with, right answers."""

import dataclasses
import re

import numpy as np
import pytest

from jaxlab.agent.coding_data import (
    CORNERS,
    EVAL_PHOTOS,
    HARD_COMBOS,
    TRAIN_PHOTOS,
    CodingSettings,
    answer_vocabulary,
    apply_distortion,
    canonical_labels,
    fix_image,
    format_labels,
    gold_code,
    make_coding_example,
    make_coding_trajectories,
)
from jaxlab.agent.records import NO_OBSERVATION, split_into_steps
from jaxlab.agent.sandbox import SandboxLimits, run_image_code
from jaxlab.agent.tags import PROBLEM_LABELS, parse_problem_labels, parse_step

PLAIN = CodingSettings(image_size=56, background="plain")
LIMITS = SandboxLimits(wall_seconds=20.0)
_RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def _mae(a, b) -> float:
  return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def _example_with(labels, settings=PLAIN, split="train"):
  """The first example whose labels are `labels` (one-label ones forced through the weights)."""
  if len(labels) == 1:
    weights = tuple(float(label == labels[0]) for label in PROBLEM_LABELS)
    settings = dataclasses.replace(settings, hard_fraction=0.0, label_weights=weights)
  else:
    settings = dataclasses.replace(settings, hard_fraction=1.0)
  for i in range(200):
    example = make_coding_example(i, seed=7, split=split, settings=settings)
    if example.labels == tuple(labels):
      return example
  raise AssertionError(f"no example with labels {labels}")


def test_examples_depend_only_on_seed_and_index():
  first = make_coding_trajectories(4, seed=3, settings=PLAIN)
  again = make_coding_trajectories(4, seed=3, settings=PLAIN)
  other = make_coding_trajectories(4, seed=4, settings=PLAIN)
  for a, b in zip(first, again):
    assert (a.id, a.question, a.steps, a.answers) == (b.id, b.question, b.steps, b.answers)
    np.testing.assert_array_equal(a.image, b.image)
    for oa, ob in zip(a.observations, b.observations):
      assert (oa.image is None) == (ob.image is None)
      if oa.image is not None:
        np.testing.assert_array_equal(oa.image, ob.image)
  assert any(not np.array_equal(a.image, b.image) for a, b in zip(first, other))
  np.testing.assert_array_equal(make_coding_example(2, seed=3, settings=PLAIN).image, first[2].image)


@pytest.mark.parametrize("settings", [PLAIN, CodingSettings(image_size=28, background="photo"),
                                      CodingSettings(image_size=96, background="photo", max_shapes=1)])
def test_trajectories_are_well_formed_and_their_labels_parse(settings):
  examples = [make_coding_example(i, seed=11, settings=settings) for i in range(40)]
  assert {len(e.labels) for e in examples} == {1, 2}
  for e in examples:
    t = e.trajectory
    assert t.task == "coding" and t.split == "train" and t.image.shape == (settings.image_size,) * 2 + (3,)
    steps = [parse_step(s) for s in t.steps]
    assert all(s.ok for s in steps), t.steps
    expected = ["problem", "answer"] if e.labels == ("none",) else ["problem", "code", "answer"]
    assert [s.action for s in steps] == expected
    assert parse_problem_labels(steps[0].content) == frozenset(e.labels)
    assert steps[0].content == format_labels(e.labels)
    assert steps[-1].content == t.answers[0] == e.answer and e.answer in answer_vocabulary()
    assert all(len(s.think.split()) <= 12 for s in steps)
    for step, obs in zip(steps, t.observations):
      if step.action == "code":
        assert obs.image is not None and obs.image.dtype == np.uint8 and obs.image.shape == t.image.shape
        assert len(step.content.splitlines()) <= 8
      else:
        assert obs is NO_OBSERVATION
  assert len(split_into_steps([e.trajectory for e in examples])) == sum(len(e.trajectory.steps) for e in examples)


def test_the_texts_come_from_a_small_vocabulary():
  words = set()
  for i in range(150):
    t = make_coding_example(i, seed=5, settings=CodingSettings(image_size=48, background="plain")).trajectory
    for text in (t.question,) + t.steps:
      words |= set(re.findall(r"\w+|[^\w\s]", text))
  assert len(words) < 150, sorted(words)  # tags and Python included


def test_eval_items_are_split_by_label_count_on_held_out_backgrounds():
  assert not set(TRAIN_PHOTOS) & set(EVAL_PHOTOS)
  examples = [make_coding_example(i, split="eval", settings=PLAIN) for i in range(30)]
  assert {e.trajectory.split for e in examples} == {"simple", "hard"}
  for e in examples:
    assert e.trajectory.split == ("simple" if len(e.labels) == 1 else "hard")
    assert e.trajectory.item.split == e.trajectory.split and e.trajectory.item.answers == (e.answer,)
  assert all(len(make_coding_example(i, split="hard", settings=PLAIN).labels) == 2 for i in range(5))
  assert all(len(make_coding_example(i, split="simple", settings=PLAIN).labels) == 1 for i in range(5))
  # Training backgrounds are flat colours, evaluation ones gradients: compare the pixels no shape covers.
  for split, flat in (("train", True), ("eval", False)):
    for i in range(5):
      e = make_coding_example(i, split=split, settings=PLAIN)
      free = np.ones(e.clean.shape[:2], bool)
      for s in e.shapes:
        free[s.top:s.top + s.size, s.left:s.left + s.size] = False
      assert (np.ptp(e.clean[free], axis=0).max() <= 1) == flat
  assert make_coding_trajectories(1, split="eval")[0].id != make_coding_trajectories(1, split="train")[0].id


def test_answers_are_right_on_the_clean_image():
  settings = CodingSettings(image_size=64, background="plain", hard_fraction=0.5)
  kinds = set()
  for i in range(80):
    e = make_coding_example(i, seed=2, settings=settings)
    kinds.add(e.kind)
    target, size = e.shapes[0], settings.image_size
    row, col = target.centre
    # The target's own colour at its centre (every shape covers its box centre).
    np.testing.assert_array_equal(e.clean[int(row), int(col)], _RGB[target.colour])
    big = [s for s in e.shapes if not e.corner or s is not target]
    assert len({s.colour for s in big}) == len(big) == len({s.shape for s in big})
    if e.kind == "side":
      distances = {"left": col, "right": size - col, "top": row, "bottom": size - row}
      assert e.answer == min(distances, key=distances.get)
      assert sorted(distances.values())[1] - distances[e.answer] > 0.1 * size
    elif e.kind == "colour":
      assert [s.colour for s in big if s.shape in e.question] == [e.answer]
    elif e.kind == "shape":
      assert [s.shape for s in big if f" {s.colour} " in e.question] == [e.answer]
    else:
      third = size // 3
      top = 0 if e.corner.startswith("top") else size - third
      left = 0 if e.corner.endswith("left") else size - third
      inside = [s for s in e.shapes if s.top < top + third and s.top + s.size > top
                and s.left < left + third and s.left + s.size > left]
      assert inside == [target] and target.size <= 0.1 * size
      assert target.top >= top and target.top + target.size <= top + third
      assert e.answer == (target.colour if e.kind == "corner_colour" else target.shape)
  assert kinds == {"side", "colour", "shape", "corner_colour", "corner_shape"}


def test_distortions_are_defined_as_documented():
  clean = make_coding_example(0, seed=1, settings=PLAIN).clean
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(apply_distortion(clean, ["rotation90"], rng), np.rot90(clean, 1))
  np.testing.assert_array_equal(apply_distortion(clean, ["rotation180"], rng), np.rot90(clean, 2))
  np.testing.assert_array_equal(apply_distortion(clean, ["crop"], rng), clean)
  dark = apply_distortion(clean, ["dark"], rng).astype(float)
  bright = apply_distortion(clean, ["overexposure"], rng).astype(float)
  assert 0.21 < dark.sum() / clean.astype(float).sum() < 0.29
  assert 0.21 < (255 - bright).sum() / (255 - clean.astype(float)).sum() < 0.29
  noisy = apply_distortion(clean, ["noise"], rng)
  changed = np.any(noisy != clean, axis=-1)
  assert 0.05 < changed.mean() < 0.2 and set(np.unique(noisy[changed])) <= {0, 255}
  # Counter-clockwise: pixel (row, col) moves to (S - 1 - col, row), so a shape on the left ends up at the bottom.
  e = _example_with(("rotation90",))
  row, col = (int(v) for v in e.shapes[0].centre)
  np.testing.assert_array_equal(e.image[55 - col, row], _RGB[e.shapes[0].colour])


@pytest.mark.parametrize("labels", [(label,) for label in PROBLEM_LABELS if label != "none"]
                         + [("rotation90", "dark"), ("noise", "crop")])
def test_gold_code_in_the_sandbox_matches_the_observation_and_fixes_the_image(labels):
  e = _example_with(labels)
  code = parse_step(e.trajectory.steps[1]).content
  assert code == gold_code(labels, e.question, 56)
  result = run_image_code(code, e.image, LIMITS)
  assert result.ok, (result.error, result.output)
  observation = e.trajectory.observations[1].image
  assert _mae(result.image, observation) < 0.5  # same PIL calls and JPEG round trips: identical in practice
  fixed = fix_image(e.image, labels, e.question, file_round_trip=False)
  if "crop" in labels:
    # The corner square fills the output: the small shape covers about 9x the pixels it did.
    ref = fix_image(e.clean, ("crop",), e.question, file_round_trip=False)
    small = e.shapes[0]
    box = e.clean[small.top:small.top + small.size, small.left:small.left + small.size].astype(int)
    colour = np.asarray(_RGB[small.colour])
    before = np.all(np.abs(box - colour) < 60, axis=-1).sum()
    after = np.all(np.abs(ref.astype(int) - colour) < 60, axis=-1).sum()
    assert after > 5 * before > 0
  else:
    ref = e.clean
  if set(labels) <= {"rotation90", "rotation180", "crop"}:
    np.testing.assert_array_equal(fixed, ref)
    assert _mae(result.image, ref) < 12  # JPEG in and out only
  else:
    assert _mae(fixed, ref) < _mae(e.image if "crop" not in labels else fix_image(
        e.image, ("crop",), e.question, file_round_trip=False), ref)


def test_photo_backgrounds_fix_through_the_sandbox_too():
  e = _example_with(("rotation180", "overexposure"), settings=CodingSettings(image_size=112))
  result = run_image_code(gold_code(e.labels, e.question, 112), e.image, LIMITS)
  assert result.ok and _mae(result.image, e.trajectory.observations[1].image) < 0.5
  assert _mae(result.image, e.clean) < 0.3 * _mae(e.image, e.clean)


def test_gold_code_is_one_canonical_line_per_label():
  question = "What shape is the small one in the bottom right corner?"
  code = gold_code({"crop", "dark"}, question, 56)
  assert code.splitlines()[2:-1] == ["img = img.point(lambda v: v * 4)", "w, h = img.size",
                                     "img = img.crop((w - w // 3, h - h // 3, w, h)).resize((w, h))"]
  other = "What colour is the small shape in the bottom right corner?"
  assert gold_code(["crop"], question, 56) == gold_code(["crop"], other, 448)
  assert len({gold_code(["crop"], f"What colour is the small shape in the {c} corner?", 56) for c in CORNERS}) == 4
  assert len(gold_code(["none"], question, 56).splitlines()) == 3
  assert format_labels({"dark", "rotation90"}) == "{'rotation90', 'dark'}"
  assert all(canonical_labels(combo) == combo for combo in HARD_COMBOS)


@pytest.mark.parametrize("call, message", [
    (lambda: canonical_labels(["rotation90", "rotation180"]), "at most one rotation"),
    (lambda: canonical_labels(["none", "dark"]), "'none' must come alone"),
    (lambda: canonical_labels(["sepia"]), "labels must be"),
    (lambda: gold_code(["crop"], "What colour is the square?", 56), "naming one of"),
    (lambda: make_coding_trajectories(-1), "n must be"),
    (lambda: make_coding_trajectories(1, split="test"), "split must be"),
    (lambda: make_coding_trajectories(1, seed=-2), "seed must be"),
])
def test_bad_calls_raise(call, message):
  with pytest.raises(ValueError, match=message):
    call()


@pytest.mark.parametrize("field, value", [
    ("image_size", 20), ("image_size", 2000), ("image_size", 112.0), ("hard_fraction", 1.5),
    ("hard_fraction", float("nan")), ("label_weights", (1.0,) * 3), ("label_weights", (0.0,) * 8),
    ("label_weights", (-1.0,) + (1.0,) * 7), ("max_shapes", 0), ("max_shapes", 4), ("background", "noise"),
])
def test_bad_settings_raise_naming_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    CodingSettings(**{field: value})
