"""MM-IFEval files and scores: the released layout read and checked, predictions matched, rule and
judged constraints scored, gaps reported instead of counted as 0, and the count-weighted average."""

from __future__ import annotations

import json
import os

import pytest

from jaxlab.mmif import mmifeval, scoring
from jaxlab.mmif.judges import JudgeUnavailable
from jaxlab.mmif.records import ConstraintError

NOT_CONTAIN = "check_whether_whole_response_not_contain_certain_substring"
WORD_RANGE = "check_whether_response_word_count_in_range"
BEGINS = "check_whether_whole_response_begin_with_certain_substring"


def rule(key: str, func: str, params: list) -> dict:
  return {"key": key, "value": f"Obey the {key} rule.",
          "judge": {"method": "rule_based", "verify_funcs": [{"func": func, "params": params}]}}


def judged(key: str, method: str) -> dict:
  return {"key": key, "value": f"Mind the {key}.", "judge": {"method": method}}


def write_jsonl(path, rows: list[dict]) -> str:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def benchmark_rows() -> list[dict]:
  """Two C items (rule, direct_gpt, cmp_gpt; one auxiliary row, placed first) and two P items."""
  c1_constraints = [rule("not_mention", NOT_CONTAIN, ["Sorry"]), rule("word_limit", WORD_RANGE, [1, 5]),
                    judged("highlight", "direct_gpt"), judged("title", "direct_gpt"), judged("tone", "cmp_gpt")]
  return [
      {"id": "c1", "infer_type": "aux_cmp_gpt", "tag": "C-Level", "del_cons": "tone",
       "instruction": "Describe the car.", "constraints": c1_constraints[:4], "image": "imgs/c1.jpg"},
      {"id": "c1", "infer_type": "main", "tag": "C-Level", "instruction": "Describe the car.",
       "constraints": c1_constraints, "image": "imgs/c1.jpg"},
      {"id": "c2", "infer_type": "main", "tag": "C-Level", "instruction": "Name the scene.",
       "constraints": [rule("prefix_suffix", BEGINS, ["[c2]"]), judged("title", "direct_gpt")],
       "img_path": "imgs/c2.jpg"},
      {"id": "p1", "tag": "P-Level", "question": "What is parked?", "answer": ["red", "car"], "image": "imgs/p1.jpg"},
      {"id": "p2", "infer_type": "main", "tag": "P-Level", "question": "What rides by?", "answer": ["bus"],
       "image_local_name": "imgs/p2.jpg"},
  ]


PREDICTIONS = {
    ("c1", "main", None): "[c1] A calm red car parked on a quiet street today.",  # 11 words: word_limit fails
    ("c1", "aux_cmp_gpt", "tone"): "[c1-aux] A red car.",
    ("c2", "main", None): "[c2] Title: Street",
    ("p1", "main", None): "[p1] a red car",
    ("p2", "main", None): "[p2] a blue bike",
}


def prediction_rows(keep=lambda key: True) -> list[dict]:
  rows = []
  for (item_id, infer_type, del_cons), text in PREDICTIONS.items():
    if keep((item_id, infer_type, del_cons)):
      row = {"id": item_id, "infer_type": infer_type, "prediction": text}
      rows.append(row | ({"del_cons": del_cons} if del_cons else {}))
  return rows


def make_files(tmp_path, rows=None, predictions=None, images=True) -> tuple[str, str]:
  if images:
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for name in ("c1", "c2", "p1", "p2"):
      (tmp_path / "imgs" / f"{name}.jpg").write_bytes(b"jpg")
  items = write_jsonl(tmp_path / "mmifeval.jsonl", benchmark_rows() if rows is None else rows)
  preds = write_jsonl(tmp_path / "preds.jsonl", prediction_rows() if predictions is None else predictions)
  return items, preds


class FakeJudge:
  """A judge backend with canned replies, chosen by the prompt's kind and the tag in the response."""

  def __init__(self, replies: dict[tuple[str, str], str]):
    self.replies, self.calls = replies, []

  def __call__(self, prompt: str, image: str | None) -> str:
    if "Reference list:" in prompt:
      kind = "perception"
    elif "answer without the constraint begins" in prompt:
      kind = "compare"
    else:
      kind = "direct"
    self.calls.append((kind, prompt, image))
    for (reply_kind, tag), reply in self.replies.items():
      if reply_kind == kind and tag in prompt:
        return reply
    raise AssertionError(f"no canned {kind} reply for prompt {prompt[:200]!r}")


def good_judge() -> FakeJudge:
  return FakeJudge({
      ("direct", "[c1]"): ("Judgement: bold yes, no title.\n"
                           "Summary: Score of constraint_1: 1/1, Score of constraint_2: 0/1"),
      ("compare", "[c1]"): "Reasoning: clearly calmer.\nSummary: True",
      ("direct", "[c2]"): "Looks fine to me overall.",  # no scores: unparsable
      ("perception", "[p1]"): "right",
      ("perception", "[p2]"): "wrong",
  })


def scored(tmp_path, judge=None, **kwargs) -> scoring.ScoreReport:
  items, preds = make_files(tmp_path)
  attached = mmifeval.attach_predictions(mmifeval.read_mmifeval(items), mmifeval.read_predictions(preds))
  return scoring.score_items(attached, judge=judge, **kwargs)


def by_id(report: scoring.ScoreReport) -> dict:
  return {item.id: item for item in report.items}


# -- reading ----------------------------------------------------------------------------------------


def test_reads_the_released_layout_with_aux_rows_and_image_keys(tmp_path):
  items_path, _ = make_files(tmp_path)
  items = mmifeval.read_mmifeval(items_path)
  assert [(type(i).__name__, i.id) for i in items] == [
      ("ComposeItem", "c1"), ("ComposeItem", "c2"), ("PerceptionItem", "p1"), ("PerceptionItem", "p2")]
  c1, c2, p1, p2 = items
  assert [c.key for c in c1.constraints] == ["not_mention", "word_limit", "highlight", "title", "tone"]
  assert [c.method for c in c1.constraints][2:] == ["direct_gpt", "direct_gpt", "cmp_gpt"]
  assert c1.prompt == ("Describe the car. Obey the not_mention rule. Obey the word_limit rule. "
                       "Mind the highlight. Mind the title. Mind the tone.")
  (aux,) = c1.aux
  assert aux.del_cons == "tone" and "tone" not in aux.prompt and aux.where.endswith("line 1")
  assert c2.aux == () and c2.where.endswith("mmifeval.jsonl line 3")
  assert c1.image == os.path.join(str(tmp_path), "imgs/c1.jpg")
  assert c2.image == os.path.join(str(tmp_path), "imgs/c2.jpg")  # "img_path"
  assert p2.image == os.path.join(str(tmp_path), "imgs/p2.jpg")  # "image_local_name"
  assert p1.answer == ("red", "car") and p1.prompt == "What is parked?"
  elsewhere = mmifeval.read_mmifeval(items_path, image_root="/data/mmif")
  assert elsewhere[0].image == "/data/mmif/imgs/c1.jpg"


def test_the_two_levels_may_sit_in_separate_files_and_tags_may_be_absent(tmp_path):
  rows = benchmark_rows()
  for row in rows:
    del row["tag"]
  c_path = write_jsonl(tmp_path / "c.jsonl", rows[:3])
  p_path = write_jsonl(tmp_path / "p.jsonl", rows[3:])
  preds = write_jsonl(tmp_path / "preds.jsonl", prediction_rows())
  items = mmifeval.read_scoring_inputs([c_path, p_path], [preds])
  assert [i.level for i in items] == ["C-Level", "C-Level", "P-Level", "P-Level"]
  assert items[0].prediction == PREDICTIONS[("c1", "main", None)]
  assert items[0].aux_predictions == {"tone": "[c1-aux] A red car."}


@pytest.mark.parametrize("mutate, error, message", [
    (lambda rows: rows[1]["constraints"][0]["judge"]["verify_funcs"][0].update(func="check_no_such_thing"),
     ConstraintError, r"mmifeval\.jsonl line 2 constraint 0.*unknown verify_func 'check_no_such_thing'"),
    (lambda rows: rows[1]["constraints"][1]["judge"]["verify_funcs"][0].update(params=[9, 2]),
     ConstraintError, r"mmifeval\.jsonl line 2 constraint 1.*'lower_bound' \(9\) exceeds 'upper_bound' \(2\)"),
    (lambda rows: rows[2]["constraints"][1]["judge"].update(method="ask_a_friend"),
     ConstraintError, r"mmifeval\.jsonl line 3 constraint 1.*unknown judge method 'ask_a_friend'"),
    (lambda rows: rows[2].pop("instruction"),
     ValueError, r"mmifeval\.jsonl line 3: missing or non-string 'instruction'"),
    (lambda rows: rows[3].pop("answer"),
     ValueError, r"mmifeval\.jsonl line 4: 'answer' must be a non-empty list"),
    (lambda rows: rows[0].update(del_cons="style"),
     ValueError, r"mmifeval\.jsonl line 1: del_cons 'style' names no constraint of item 'c1'"),
    (lambda rows: rows[0].update(del_cons="title"),
     ValueError, r"mmifeval\.jsonl line 1: del_cons 'title' is a direct_gpt constraint"),
    (lambda rows: rows[4].update(id="p1"),
     ValueError, r"mmifeval\.jsonl line 5: P-Level id 'p1' repeats the row at .*line 4"),
    (lambda rows: rows[4].update(tag="X-Level"), ValueError, r"mmifeval\.jsonl line 5: unknown tag 'X-Level'"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, mutate, error, message):
  rows = benchmark_rows()
  mutate(rows)
  items_path, _ = make_files(tmp_path, rows=rows)
  with pytest.raises(error, match=message):
    mmifeval.read_mmifeval(items_path)


def test_a_line_that_is_not_json_is_named(tmp_path):
  items_path, _ = make_files(tmp_path)
  with open(items_path, "a") as f:
    f.write("{not json\n")
  with pytest.raises(ValueError, match=r"mmifeval\.jsonl line 6 is not valid JSON"):
    mmifeval.read_mmifeval(items_path)


# -- predictions ------------------------------------------------------------------------------------


def test_full_rows_and_minimal_rows_are_both_predictions(tmp_path):
  items_path, _ = make_files(tmp_path)
  full = [row | {"prediction": PREDICTIONS[(row["id"], row.get("infer_type", "main"), row.get("del_cons"))]}
          for row in benchmark_rows()]
  for predictions in (full, prediction_rows()):
    preds = write_jsonl(tmp_path / "p.jsonl", predictions)
    items = mmifeval.attach_predictions(mmifeval.read_mmifeval(items_path), mmifeval.read_predictions(preds))
    assert [i.prediction for i in items] == [PREDICTIONS[(i.id, "main", None)] for i in items]
    assert items[0].aux_predictions == {"tone": "[c1-aux] A red car."}


def test_missing_and_extra_predictions_are_listed(tmp_path):
  drop = {("c2", "main", None), ("c1", "aux_cmp_gpt", "tone")}
  extra = [{"id": "zz9", "prediction": "stray"}]
  items_path, preds = make_files(tmp_path, predictions=prediction_rows(lambda k: k not in drop) + extra)
  items, predictions = mmifeval.read_mmifeval(items_path), mmifeval.read_predictions(preds)
  with pytest.raises(ValueError) as info:
    mmifeval.attach_predictions(items, predictions)
  message = str(info.value)
  assert "1 prediction(s) match no benchmark row: id 'zz9'" in message and "preds.jsonl line 4" in message
  assert "2 benchmark row(s) have no prediction" in message
  assert "C-Level id 'c1' (aux_cmp_gpt, del_cons 'tone')" in message and "C-Level id 'c2'" in message
  with pytest.raises(ValueError, match="match no benchmark row"):  # extra ones stay an error
    mmifeval.attach_predictions(items, predictions, allow_missing=True)


def test_allow_missing_leaves_gaps_that_are_reported_not_zeroed(tmp_path):
  drop = {("c2", "main", None), ("c1", "aux_cmp_gpt", "tone"), ("p2", "main", None)}
  items_path, preds = make_files(tmp_path, predictions=prediction_rows(lambda k: k not in drop))
  items = mmifeval.attach_predictions(mmifeval.read_mmifeval(items_path), mmifeval.read_predictions(preds),
                                      allow_missing=True)
  assert items[1].prediction is None and items[0].aux_predictions == {}
  report = scoring.score_items(items, judge=good_judge())
  scores = by_id(report)
  assert scores["c2"].score is None and scores["c2"].gaps == ("no prediction",)
  assert scores["p2"].score is None and scores["p2"].gaps == ("no prediction",)
  tone = next(c for c in scores["c1"].constraints if c.key == "tone")
  assert tone.score is None and tone.gap == "no aux prediction" and scores["c1"].score is None
  assert report.c_level is None and report.p_level == 100.0 and report.avg is None
  assert report.unscored_items == {"no aux prediction": ("C-Level id c1",), "no prediction": ("C-Level id c2",
                                                                                               "P-Level id p2")}
  assert report.counts["c_unscored"] == 2 and report.counts["p_scored"] == 1
  markdown = report.to_markdown()
  assert "- no prediction: 2 (C-Level id c2, P-Level id p2)" in markdown


def test_ids_shared_by_both_levels_need_a_tag_on_the_prediction(tmp_path):
  rows = [row for row in benchmark_rows() if row["id"] in ("c2", "p1")]
  rows[1]["id"] = "c2"
  items_path = write_jsonl(tmp_path / "both.jsonl", rows)
  items = mmifeval.read_mmifeval(items_path)
  untagged = write_jsonl(tmp_path / "u.jsonl", [{"id": "c2", "prediction": "a"}, {"id": "c2", "prediction": "b"}])
  with pytest.raises(ValueError, match=r"u\.jsonl line 1: id 'c2' is both a C-Level and a P-Level id"):
    mmifeval.attach_predictions(items, mmifeval.read_predictions(untagged))
  tagged = write_jsonl(tmp_path / "t.jsonl", [{"id": "c2", "tag": "P-Level", "prediction": "b"},
                                              {"id": "c2", "tag": "C-Level", "prediction": "a"}])
  attached = mmifeval.attach_predictions(items, mmifeval.read_predictions(tagged))
  assert [(i.level, i.prediction) for i in attached] == [("C-Level", "a"), ("P-Level", "b")]


# -- scoring ----------------------------------------------------------------------------------------


def test_rule_direct_and_compare_constraints_with_a_fake_judge(tmp_path):
  judge = good_judge()
  report = scored(tmp_path, judge)
  c1, _, p1, p2 = report.items
  assert [(c.key, c.score) for c in c1.constraints] == [
      ("not_mention", 1), ("word_limit", 0), ("highlight", 1), ("title", 0), ("tone", 1)]
  assert c1.score == pytest.approx(3 / 5) and c1.rule_score == 0.5
  assert (p1.score, p2.score) == (1.0, 0.0) and p2.raw == "wrong"
  assert report.c_level == pytest.approx(60.0) and report.p_level == 50.0
  assert report.avg == pytest.approx((1 * 60.0 + 2 * 50.0) / 3)  # weighted by scored items, not (C + P) / 2
  assert report.c_level_rule_only == pytest.approx(75.0)  # c1 1/2, c2 1/1
  direct = [call for call in judge.calls if call[0] == "direct"]
  assert len(direct) == 2  # all of an item's direct constraints in one call, with its image
  assert direct[0][2] == os.path.join(str(tmp_path), "imgs/c1.jpg")
  assert "Constraint_1: Mind the highlight." in direct[0][1] and "Constraint_2: Mind the title." in direct[0][1]
  (compare,) = [call for call in judge.calls if call[0] == "compare"]
  assert "[c1-aux] A red car." in compare[1] and "Mind the tone." in compare[1] and compare[2] is None
  assert report.sub_types["title"] == scoring.SubTypeStats(scored=1, passed=0, unscored=1)
  assert report.sub_types["word_limit"].pass_rate == 0.0 and report.sub_types["tone"].pass_rate == 100.0
  summary = report.to_json()["summary"]
  assert summary == {"C-Level": 60.0, "P-Level": 50.0, "Avg": 53.3, "C-Level (rule constraints only)": 75.0}


def test_an_unparsable_judge_answer_is_a_gap_not_a_pass(tmp_path):
  report = scored(tmp_path, good_judge())
  c2 = by_id(report)["c2"]
  title = c2.constraints[1]
  assert title.score is None and title.gap == "judge unparsable" and title.raw == "Looks fine to me overall."
  assert c2.score is None and c2.gaps == ("judge unparsable",)
  assert report.counts["c_scored"] == 1 and report.constraint_gaps == {"judge unparsable": 1}
  assert report.unscored_items == {"judge unparsable": ("C-Level id c2",)}
  assert report.sub_types["prefix_suffix"].passed == 1  # its rule constraint still counts per sub-type


def test_an_unavailable_judge_is_a_gap_counted_by_kind(tmp_path):
  def down(prompt, image):
    raise JudgeUnavailable("connection refused")

  report = scored(tmp_path, down)
  assert report.c_level is None and report.p_level is None and report.avg is None
  assert report.constraint_gaps == {"judge unavailable": 4}  # c1: 2 direct + 1 compare, c2: 1 direct
  assert len(report.unscored_items["judge unavailable"]) == 4  # both C items and both P items
  assert report.c_level_rule_only == pytest.approx(75.0)


def test_without_a_judge_judged_constraints_are_unscored_and_rules_give_a_rule_only_level(tmp_path):
  report = scored(tmp_path)
  c1 = by_id(report)["c1"]
  assert [(c.key, c.score, c.gap) for c in c1.constraints] == [
      ("not_mention", 1, None), ("word_limit", 0, None), ("highlight", None, "no judge"),
      ("title", None, "no judge"), ("tone", None, "no judge")]
  assert report.c_level is None and report.p_level is None and report.avg is None
  assert report.c_level_rule_only == pytest.approx(75.0)
  assert report.unscored_items == {"no judge": ("C-Level id c1", "C-Level id c2", "P-Level id p1", "P-Level id p2")}
  assert report.constraint_gaps == {"no judge": 4}
  assert "| C-Level, rule constraints only | 75.0 | 2 |" in report.to_markdown()


def test_a_missing_image_is_an_error_only_when_a_judge_needs_it(tmp_path):
  items_path, preds = make_files(tmp_path, images=False)
  items = mmifeval.attach_predictions(mmifeval.read_mmifeval(items_path), mmifeval.read_predictions(preds))
  assert scoring.score_items(items).c_level_rule_only == pytest.approx(75.0)
  judge = good_judge()
  with pytest.raises(FileNotFoundError, match=r"2 image\(s\) the direct judge needs are missing.*line 2.*c1\.jpg"):
    scoring.score_items(items, judge=judge)
  assert judge.calls == []  # refused before any judge call


def test_a_separate_perception_judge_takes_the_p_level(tmp_path):
  perception = FakeJudge({("perception", "[p1]"): "right", ("perception", "[p2]"): "right"})
  report = scored(tmp_path, good_judge(), perception_judge=perception)
  assert report.p_level == 100.0 and len(perception.calls) == 2


def test_the_average_weighs_levels_by_item_count():
  avg = scoring.average(71.5, 300, 44.0, 100)  # GPT-4o in the paper
  assert avg == (3 * 71.5 + 44.0) / 4 == 64.625
  assert f"{avg:.1f}" == "64.6" and round(avg, 1) == 64.6
  assert scoring.average(80.0, 1, 20.0, 3) == 35.0
  assert scoring.average(None, 0, 44.0, 100) is None and scoring.average(71.5, 300, None, 0) is None


def test_the_report_serializes(tmp_path):
  report = scored(tmp_path, good_judge())
  data = json.loads(json.dumps(report.to_json()))
  assert data["counts"] == {"c_items": 2, "c_scored": 1, "c_unscored": 1, "p_items": 2, "p_scored": 2,
                            "p_unscored": 0, "c_rule_only_items": 2}
  assert data["items"][0]["constraints"][2]["raw"].startswith("Judgement: bold yes")
  assert data["sub_types"]["highlight"] == {"scored": 1, "passed": 1, "unscored": 0, "pass_rate": 100.0}
  markdown = report.to_markdown()
  assert "| C-Level | 60.0 | 1 | 1 |" in markdown and "| Avg (count-weighted) | 53.3 | 3 | 1 |" in markdown
