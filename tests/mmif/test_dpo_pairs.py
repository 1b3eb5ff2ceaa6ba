"""MM-IFDPO: how many constraints each rejection variant drops, degraded prompts, and pair records."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif.dpo_pairs import VARIANTS, DegradedPrompt, degrade, make_pairs, num_dropped
from jaxlab.mmif.engine import IMAGE_MARK, InstructItem
from jaxlab.mmif.records import Constraint, test_prompt
from jaxlab.mmif.taxonomy import COMPARE, RULE
from jaxlab.posttrain import read_pairs, write_pairs


def rule(key: str, text: str, func: str, *params) -> Constraint:
  return Constraint(key, text, RULE, ({"func": func, "params": list(params)},))


CONSTRAINTS = (
    rule("paragraph_limit", "Write a single paragraph.", w.PARAGRAPHS, 1, 1),
    rule("punctuation", "Do not use any commas.", w.NOT_CONTAIN, [","]),
    rule("word_limit", "Keep the answer under 20 words.", w.WORDS, 1, 19),
    rule("mention", 'Mention "red" at least once.', w.KEYWORD_EACH, ["red"], 1, w.MANY),
    rule("prefix_suffix", 'Begin your answer with "Note:"', w.BEGINS, "Note:"),
)
GOOD = "Note: the red square sits on the left."           # Meets all five.
FOUR = "Note: the red square sits on the left, alone."    # A comma: four of five.
THREE = "Note, the red square sits on the left, alone."   # A comma and no prefix: three of five.
PLAIN = "A square sits on the left."                      # Meets paragraph, punctuation and word limits only.


def item(i: int = 0, n: int = 5, response: str | None = GOOD) -> InstructItem:
  return InstructItem(f"id{i}", f"images/{i}.png", "descriptive_analysis", "Describe the picture.",
                      CONSTRAINTS[:n], response)


# ---------------------------------------------------------------- num_dropped and degrade


@pytest.mark.parametrize("variant, expected", [
    ("drop_third", [1, 1, 1, 2, 2, 2]),
    ("drop_two_thirds", [1, 2, 2, 3, 4, 4]),
    ("drop_all", [1, 2, 3, 4, 5, 6]),
    ("drop_image", [0, 0, 0, 0, 0, 0]),
])
def test_num_dropped(variant, expected):
  assert [num_dropped(n, variant) for n in range(1, 7)] == expected


def test_num_dropped_rounds_up():
  for n in range(1, 40):
    assert num_dropped(n, "drop_third") == -(-n // 3)
    assert num_dropped(n, "drop_two_thirds") == -(-2 * n // 3)
  assert num_dropped(0, "drop_third") == 0


def test_unknown_variant_raises():
  with pytest.raises(ValueError, match="unknown rejection variant 'drop_half'.*drop_image"):
    num_dropped(3, "drop_half")
  with pytest.raises(ValueError, match="unknown rejection variant"):
    degrade(item(), "drop_half", np.random.default_rng(0))


@pytest.mark.parametrize("variant", ["drop_third", "drop_two_thirds", "drop_all"])
def test_degrade_drops_that_many_in_order(variant):
  removed = set()
  for n in range(1, 6):
    for seed in range(8):
      it = item(n=n)
      d = degrade(it, variant, np.random.default_rng(seed))
      assert isinstance(d, DegradedPrompt) and d.item_id == it.id and d.with_image
      assert len(d.dropped) == num_dropped(n, variant)
      keys = [c.key for c in it.constraints]
      assert list(d.dropped) == [k for k in keys if k in d.dropped]  # Listed in item order.
      kept = [c for c in it.constraints if c.key not in d.dropped]
      assert d.prompt == test_prompt(it.instruction, kept)
      assert d.prompt != it.prompt
      removed.update(d.dropped)
  assert removed == {c.key for c in CONSTRAINTS}  # Which ones go is drawn.


def test_drop_all_leaves_the_instruction():
  d = degrade(item(), "drop_all", np.random.default_rng(0))
  assert d.prompt == "Describe the picture."
  assert d.dropped == tuple(c.key for c in CONSTRAINTS)


def test_drop_image_keeps_the_full_prompt():
  it = item()
  d = degrade(it, "drop_image", np.random.default_rng(0))
  assert d.prompt == it.prompt and not d.with_image and d.dropped == ()


def test_degrade_needs_a_constraint_to_drop():
  with pytest.raises(ValueError, match="item id0: no constraint to drop"):
    degrade(item(n=0), "drop_third", np.random.default_rng(0))
  assert degrade(item(n=0), "drop_image", np.random.default_rng(0)).prompt == "Describe the picture."


def test_degrade_is_seeded():
  a = [degrade(item(), "drop_third", np.random.default_rng(s)).dropped for s in range(10)]
  assert a == [degrade(item(), "drop_third", np.random.default_rng(s)).dropped for s in range(10)]


# ---------------------------------------------------------------- make_pairs


def prompts(items, variant="drop_third"):
  return [degrade(it, variant, np.random.default_rng(i)) for i, it in enumerate(items)]


def test_pair_layout():
  items = [item(0), item(1, response=FOUR)]
  degraded = prompts(items)
  records, report = make_pairs(items, degraded, [PLAIN, PLAIN], "drop_third")
  assert report.pairs == 2 and len(records) == 2
  for record, it, d in zip(records, items, degraded):
    assert set(record) == {"id", "image", "question", "chosen", "rejected", "variant", "dropped"}
    assert record["id"] == it.id and record["image"] == it.image
    assert record["question"] == IMAGE_MARK + it.prompt  # The full prompt, whatever was dropped.
    assert record["question"].startswith("<image>")
    assert record["chosen"] == it.response and record["rejected"] == PLAIN
    assert record["variant"] == "drop_third" and record["dropped"] == list(d.dropped)


def test_chosen_below_threshold_is_left_out():
  items = [item(0, response=THREE), item(1, response=FOUR), item(2, response=None), item(3, response="")]
  records, report = make_pairs(items, prompts(items), [PLAIN] * 4, "drop_all")
  assert [r["id"] for r in records] == ["id1"]
  assert report.chosen_below_threshold == 3 and report.pairs == 1


def test_threshold_is_an_argument():
  items = [item(0, response=THREE)]
  records, report = make_pairs(items, prompts(items), [PLAIN], "drop_all", threshold=0.6)
  assert len(records) == 1 and report.chosen_below_threshold == 0


def test_identical_answers_are_left_out():
  items = [item(0), item(1)]
  records, report = make_pairs(items, prompts(items), ["  " + GOOD + "\n", PLAIN], "drop_two_thirds")
  assert [r["id"] for r in records] == ["id1"]
  assert report.identical == 1 and report.pairs == 1


def test_rejected_meeting_all_is_counted_and_kept():
  items = [item(0), item(1)]
  also_good = "Note: a red square is on the left."
  records, report = make_pairs(items, prompts(items), [also_good, PLAIN], "drop_image")
  assert report.rejected_meets_all == 1 and report.pairs == 2
  assert [r["rejected"] for r in records] == [also_good, PLAIN]
  records, report = make_pairs(items, prompts(items), [also_good, PLAIN], "drop_image",
                               skip_rejected_meeting_all=True)
  assert report.rejected_meets_all == 1 and report.pairs == 1
  assert [r["id"] for r in records] == ["id1"]


def test_misaligned_inputs_raise():
  items = [item(0), item(1)]
  degraded = prompts(items)
  with pytest.raises(ValueError, match="must have the same length"):
    make_pairs(items, degraded, [PLAIN], "drop_third")
  with pytest.raises(ValueError, match="must have the same length"):
    make_pairs(items, degraded[:1], [PLAIN, PLAIN], "drop_third")
  with pytest.raises(ValueError, match="degraded prompt of item id1 is paired with item id0"):
    make_pairs(items, degraded[::-1], [PLAIN, PLAIN], "drop_third")


def test_judged_constraints_do_not_block_a_pair():
  tone = Constraint("tone", "Use a formal tone.", COMPARE)
  it = dataclasses.replace(item(), constraints=CONSTRAINTS + (tone,))
  records, report = make_pairs([it], prompts([it]), [PLAIN], "drop_third")
  assert report.pairs == 1 and records[0]["question"].endswith("Use a formal tone.")


def test_pairs_load_through_read_pairs(tmp_path):
  items = [item(i) for i in range(3)]
  records = []
  for variant in VARIANTS:
    made, _ = make_pairs(items, prompts(items, variant), [PLAIN] * 3, variant)
    records += made
  assert len(records) == 12
  (tmp_path / "images").mkdir()
  for i in range(3):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "images" / f"{i}.png")
  path = tmp_path / "pairs.jsonl"
  assert write_pairs(path, records) == 12
  loaded = read_pairs(path)
  assert len(loaded) == 12
  for record, back in zip(records, loaded):
    assert back["image"] == [str(tmp_path / record["image"])]
    assert os.path.isfile(back["image"][0])
    assert {k: back[k] for k in ("id", "question", "chosen", "rejected", "variant", "dropped")} == \
        {k: record[k] for k in ("id", "question", "chosen", "rejected", "variant", "dropped")}
    assert back["question"].count(IMAGE_MARK) == 1
