"""MAT F1 / EM: aliases, EM forcing F1, no answer, CJK characters, splits and the command."""

import json

import pytest

from jaxlab.agent.mat_score import main, score_answer, score_records


def test_max_over_aliases_and_em_forces_f1():
  assert score_answer("The Eiffel Tower", ["La tour Eiffel", "eiffel tower"]) == (1.0, 1.0)
  f1, em = score_answer("Eiffel", ["Eiffel Tower"])
  assert em == 0.0 and f1 == pytest.approx(2 / 3)
  assert score_answer("Eiffel", "Eiffel Tower")[0] == pytest.approx(2 / 3)  # one string is one alias


def test_no_answer_scores_zero():
  for prediction in (None, "", "  the  "):
    assert score_answer(prediction, ["the"]) == (0.0, 0.0)


def test_cjk_text_is_compared_by_character():
  assert score_answer("北京市", ["北京"])[0] == pytest.approx(0.8)
  assert score_answer("北京", ["北京"]) == (1.0, 1.0)


def test_records_by_split_and_the_command(tmp_path, capsys):
  records = [
      {"id": 1, "prediction": "Paris", "answers": ["paris"], "split": "simple"},
      {"id": 2, "prediction": None, "answers": ["1889"], "split": "hard"},
      {"id": 3, "prediction": "red car", "answers": ["red"], "split": "hard"},
  ]
  report = score_records(records)
  assert report["all"]["count"] == 3 and report["all"]["no_answer"] == 1
  assert report["simple"] == {"f1": 100.0, "em": 100.0, "count": 1, "no_answer": 0}
  assert report["hard"]["em"] == 0.0 and report["hard"]["f1"] == pytest.approx(100 * (2 / 3) / 2)
  path = tmp_path / "pred.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
  assert main([str(path), "--out", str(tmp_path / "report.json")]) == 0
  assert "simple: F1 100.00 EM 100.00" in capsys.readouterr().out
  assert json.loads((tmp_path / "report.json").read_text())["all"]["count"] == 3


def test_bad_input_is_named(tmp_path):
  with pytest.raises(ValueError, match="record 0 .*no 'answers'"):
    score_records([{"id": 5, "prediction": "x"}])
  with pytest.raises(ValueError, match="no records"):
    score_records([])
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"answers": ["a"]}\nnot json\n')
  with pytest.raises(ValueError, match="bad.jsonl line 2 is not valid JSON"):
    main([str(bad)])
