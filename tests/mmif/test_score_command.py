"""The MM-IFEval scoring command: reports written, the paper's arithmetic end to end, judges built
from the flags, and exit status 2 with one paragraph for bad input."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from typing import ClassVar

import pytest

from jaxlab.mmif import judge_backends, score
from tests.mmif.test_mmifeval import FakeJudge, benchmark_rows, make_files, prediction_rows, write_jsonl

CONTAINS = "check_whether_whole_response_contain_certain_substrings"


def run(argv: list[str]) -> int:
  return score.main([str(a) for a in argv])


def paper_sized_files(tmp_path) -> tuple[str, str, str]:
  """75 C items of 8 rule constraints passing 429 in all (71.5%) and 25 P items with 11 right (44.0%)."""
  c_rows, p_rows, predictions = [], [], []
  for i in range(75):
    passed = 6 if i < 54 else 5  # 54 * 6 + 21 * 5 = 429 of 600
    constraints = [{"key": "mention", "value": f"Say k{j}.", "judge": {
        "method": "rule_based", "verify_funcs": [{"func": CONTAINS, "params": [[f"k{j}"]]}]}} for j in range(8)]
    c_rows.append({"id": i, "infer_type": "main", "tag": "C-Level", "instruction": "Describe.",
                   "constraints": constraints, "image": f"c{i}.jpg"})
    predictions.append({"id": i, "tag": "C-Level", "prediction": " ".join(f"k{j}" for j in range(passed))})
  for i in range(25):
    p_rows.append({"id": i, "tag": "P-Level", "question": "What?", "answer": ["x"], "image": f"p{i}.jpg"})
    predictions.append({"id": i, "tag": "P-Level", "prediction": "[yes]" if i < 11 else "[no]"})
  return (write_jsonl(tmp_path / "C-Level.jsonl", c_rows), write_jsonl(tmp_path / "P-Level.jsonl", p_rows),
          write_jsonl(tmp_path / "preds.jsonl", predictions))


class FakeChatJudge(FakeJudge):
  """Stands in for OpenAIChatJudge: records how the command built it."""

  built: ClassVar[list[tuple]] = []

  def __init__(self, base_url, model, *, timeout_s=60.0, max_retries=3, **kwargs):
    super().__init__({("perception", "[yes]"): "right", ("perception", "[no]"): "wrong",
                      ("perception", "[p1]"): "right", ("perception", "[p2]"): "wrong",
                      ("direct", "[c1]"): "Summary: Score of constraint_1: 1/1, Score of constraint_2: 1/1",
                      ("compare", "[c1]"): "Summary: False", ("direct", "[c2]"): "Summary: Score of constraint_1: 0/1"})
    FakeChatJudge.built.append((base_url, model, timeout_s, max_retries))


@pytest.fixture
def fake_chat_judge(monkeypatch):
  FakeChatJudge.built = []
  monkeypatch.setattr(judge_backends, "OpenAIChatJudge", FakeChatJudge)
  return FakeChatJudge


def test_paper_counts_give_the_paper_average_end_to_end(tmp_path, fake_chat_judge, capsys):
  c_path, p_path, preds = paper_sized_files(tmp_path)
  out = tmp_path / "report"
  assert run(["--items", c_path, "--items", p_path, "--predictions", preds, "--out", out,
              "--judge-url", "http://judge:8000/v1", "--judge-model", "judge-7b",
              "--judge-timeout", "5", "--judge-retries", "2"]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["summary"] == {"C-Level": 71.5, "P-Level": 44.0, "Avg": 64.6, "C-Level (rule constraints only)": 71.5}
  assert report["counts"]["c_scored"] == 75 and report["counts"]["p_scored"] == 25
  assert fake_chat_judge.built == [("http://judge:8000/v1", "judge-7b", 5.0, 2)]  # one judge for both roles
  printed = capsys.readouterr().out
  assert "C-Level: 71.5 over 75 of 75 items" in printed and "Avg (count-weighted): 64.6" in printed
  assert "| Avg (count-weighted) | 64.6 | 100 | 0 |" in (out / "report.md").read_text()
  rows = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
  assert len(rows) == 100 and rows[0]["score"] == 0.75 and rows[-1]["score"] == 0.0
  assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary files left


def test_released_layout_with_judge_and_a_separate_perception_model(tmp_path, fake_chat_judge):
  items, preds = make_files(tmp_path)
  out = tmp_path / "out"
  assert run(["--items", items, "--predictions", preds, "--out", out, "--judge-url", "http://j/v1",
              "--judge-model", "big", "--perception-judge-model", "small"]) == 0
  assert [b[1] for b in fake_chat_judge.built] == ["big", "small"]
  report = json.loads((out / "report.json").read_text())
  # c1: rules 1 and 0, direct 1 and 1, compare False: 3/5; c2: rule 1, direct 0: 1/2; p1 and p2: right, wrong
  assert report["summary"]["C-Level"] == 55.0 and report["summary"]["P-Level"] == 50.0
  assert report["summary"]["Avg"] == 52.5


def test_without_a_judge_the_command_reports_rule_only_and_gaps(tmp_path, capsys):
  items, preds = make_files(tmp_path)
  out = tmp_path / "out"
  assert run(["--items", items, "--predictions", preds, "--out", out]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["summary"] == {"C-Level": None, "P-Level": None, "Avg": None, "C-Level (rule constraints only)": 75.0}
  assert report["constraint_gaps"] == {"no judge": 4} and len(report["unscored_items"]["no judge"]) == 4
  printed = capsys.readouterr().out
  assert "C-Level, rule constraints only (not the paper's C-Level): 75.0 over 2 items" in printed
  assert "unscored items: 4; no judge: 4" in printed


def test_allow_missing_scores_the_rest_and_lists_the_gap(tmp_path):
  items, preds = make_files(tmp_path, predictions=prediction_rows(lambda k: k != ("c2", "main", None)))
  out = tmp_path / "out"
  assert run(["--items", items, "--predictions", preds, "--out", out]) == 2
  assert not out.exists()
  assert run(["--items", items, "--predictions", preds, "--out", out, "--allow-missing"]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["unscored_items"]["no prediction"] == ["C-Level id c2"]
  assert report["counts"]["c_rule_only_items"] == 1


@pytest.mark.parametrize("problem, message", [
    ("extra", r"1 prediction\(s\) match no benchmark row: id 'ghost'"),
    ("bad_func", r"mmifeval\.jsonl line 2 constraint 0 .*unknown verify_func 'check_nothing'"),
    ("no_file", r"No such file or directory"),
])
def test_bad_input_exits_2_with_one_paragraph(tmp_path, capsys, problem, message):
  rows, predictions = benchmark_rows(), prediction_rows()
  if problem == "extra":
    predictions.append({"id": "ghost", "prediction": "boo"})
  if problem == "bad_func":
    rows[1]["constraints"][0]["judge"]["verify_funcs"][0]["func"] = "check_nothing"
  items, preds = make_files(tmp_path, rows=rows, predictions=predictions)
  if problem == "no_file":
    preds = str(tmp_path / "absent.jsonl")
  out = tmp_path / "out"
  assert run(["--items", items, "--predictions", preds, "--out", out]) == 2
  err = capsys.readouterr().err
  assert err.startswith("mmif score: bad input") and err.count("\n") == 1
  assert re.search(message, err)
  assert not out.exists()


def test_a_missing_image_the_judge_needs_exits_2(tmp_path, fake_chat_judge, capsys):
  items, preds = make_files(tmp_path, images=False)
  assert run(["--items", items, "--predictions", preds, "--out", tmp_path / "out",
              "--judge-url", "http://j/v1", "--judge-model", "m"]) == 2
  assert "image(s) the direct judge needs are missing" in capsys.readouterr().err


def test_judge_flags_must_come_together(tmp_path):
  items, preds = make_files(tmp_path)
  with pytest.raises(SystemExit) as info:
    run(["--items", items, "--predictions", preds, "--out", tmp_path / "o", "--judge-url", "http://j/v1"])
  assert info.value.code == 2


def test_the_module_runs_as_a_command(tmp_path):
  items, preds = make_files(tmp_path, predictions=prediction_rows(lambda k: k[0] != "p2"))
  result = subprocess.run([sys.executable, "-m", "jaxlab.mmif.score", "--items", items, "--predictions", preds,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60, check=False,
                          cwd=pathlib.Path(__file__).resolve().parents[2])
  assert result.returncode == 2, result.stderr
  assert "P-Level id 'p2'" in result.stderr and "--allow-missing" in result.stderr
