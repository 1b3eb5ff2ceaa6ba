"""What one Visual-ARFT run reads: the generated sets, the corpus file, and the vocabulary they need."""

import ml_collections
import pytest

from jaxlab.agent.datasets import build_agent_data, read_corpus, vocabulary_texts
from jaxlab.agent.vocab import AgentVocab


def _data_config(task, **overrides):
  fields = dict(task=task, source="generated", num_train=4, num_eval=4, tile_size=56, mat_train="", mat_eval="",
                image_root="", corpus="")
  return ml_collections.ConfigDict({**fields, **overrides})


@pytest.mark.parametrize("task", ["coding", "search"])
def test_generated_data_and_a_vocabulary_without_unknown_pieces(task):
  data = build_agent_data(_data_config(task, num_train=40), seed=0)
  assert len(data.train) == 40 and len(data.eval_items) == 4
  assert {item.split for item in data.eval_items} == {"simple", "hard"}
  assert bool(data.corpus) == (task == "search")
  texts = vocabulary_texts(data, tokens_per_tile=4)
  vocab = AgentVocab.from_texts(texts)
  assert all(vocab.encode_counting_unknown(t)[1] == 0 for t in texts)
  if task == "coding":  # The model writes the answers: each must be a piece training taught it to write.
    train_vocab = AgentVocab.from_texts(texts[:len(texts) - len(data.eval_items)])
    assert all(train_vocab.encode_counting_unknown(item.answers[0])[1] == 0 for item in data.eval_items)


def test_corpus_files(tmp_path):
  lines = tmp_path / "corpus.txt"
  lines.write_text("Paris lies on the Seine.\n\n  Lyon lies on the Rhone.  \n")
  assert read_corpus(lines) == ("Paris lies on the Seine.", "Lyon lies on the Rhone.")
  jsonl = tmp_path / "corpus.jsonl"
  jsonl.write_text('{"contents": "doc one"}\n{"text": "doc two"}\n')
  assert read_corpus(jsonl) == ("doc one", "doc two")
  (tmp_path / "bad.jsonl").write_text('{"contents": "ok"}\nnot json\n')
  with pytest.raises(ValueError, match="bad.jsonl:2"):
    read_corpus(tmp_path / "bad.jsonl")
  (tmp_path / "empty.txt").write_text("\n\n")
  with pytest.raises(ValueError, match="no documents"):
    read_corpus(tmp_path / "empty.txt")
  with pytest.raises(FileNotFoundError, match="no corpus file"):
    read_corpus(tmp_path / "missing.txt")


def test_bad_sources_are_named():
  with pytest.raises(ValueError, match="data.source"):
    build_agent_data(ml_collections.ConfigDict(dict(_data_config("coding").to_dict(), source="web")), seed=0)
  with pytest.raises(ValueError, match="data.task"):
    build_agent_data(_data_config("chat"), seed=0)
  with pytest.raises(ValueError, match="mat_train"):
    build_agent_data(ml_collections.ConfigDict(dict(_data_config("search").to_dict(), source="mat")), seed=0)
