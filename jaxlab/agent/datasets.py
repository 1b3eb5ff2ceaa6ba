"""The data of one Visual-ARFT run: training trajectories, evaluation questions and the search corpus.

`build_agent_data(config.data)` reads `data.source`:

  "generated"  the embedded sets: `coding_data` (distorted photographs, gold problem/code/answer
               turns) or `search_data` (a generated world, its corpus, multi-hop emblem questions;
               `data.eval_emblems` "new" or "seen", `search_data.SearchSettings`); the corpus
               is the one evaluation questions search
  "mat"        the released MAT files (`mat_data`): `data.mat_train` (MAT-Training json),
               `data.mat_eval` (MAT-Benchmark json), `data.image_root`, and for search
               `data.corpus`: the documents the search tool indexes, one per line or a jsonl
               of {"contents" | "text": ...}
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from jaxlab.agent import coding_data, mat_data, search_data
from jaxlab.agent.prompt import CODE_RAN, render_prompt
from jaxlab.agent.records import EvalItem, Trajectory, split_into_steps
from jaxlab.agent.step_source import direct_solution
from jaxlab.agent.tags import format_information
from jaxlab.agent.tools import error_observation
from jaxlab.vlm.chat_template import IM_END

SOURCES = ("generated", "mat")


@dataclasses.dataclass(frozen=True)
class AgentData:
  train: list[Trajectory]
  eval_items: list[EvalItem]
  corpus: tuple[str, ...] = ()


def build_agent_data(d, *, seed: int) -> AgentData:
  """The data `d` (a config's `data` block) names; see the module docstring."""
  if d.task not in ("coding", "search"):
    raise ValueError(f"config.data.task must be 'coding' or 'search', got {d.task!r}")
  if d.source == "mat":
    return _mat_data(d)
  if d.source != "generated":
    raise ValueError(f"config.data.source must be one of {SOURCES}, got {d.source!r}")
  image_size = max(d.tile_size, 56)  # The generators draw at least 56 px; tiles are resized to the model's size.
  if d.task == "search":
    settings = search_data.SearchSettings(image_size=image_size, eval_emblems=d.get("eval_emblems", "new"), seed=seed)
    world = search_data.build_world(settings)
    return AgentData(search_data.make_search_trajectories(d.num_train, world=world, split="train", seed=seed),
                     [t.item for t in search_data.make_search_trajectories(d.num_eval, world=world, split="eval",
                                                                           seed=seed + 1)],
                     world.documents_for("eval"))
  settings = coding_data.CodingSettings(image_size=image_size)
  train = coding_data.make_coding_trajectories(d.num_train, seed=seed, split="train", settings=settings)
  evaluation = coding_data.make_coding_trajectories(d.num_eval, seed=seed + 1, split="eval", settings=settings)
  return AgentData(train, [t.item for t in evaluation])


def _mat_data(d) -> AgentData:
  if not d.mat_train or not d.mat_eval:
    raise ValueError("config.data.source='mat' needs config.data.mat_train and config.data.mat_eval (json paths)")
  root = d.image_root or None
  train = mat_data.unique_trajectories(mat_data.read_mat_training(d.mat_train, image_root=root, task=d.task))
  items = mat_data.read_mat_benchmark(d.mat_eval, image_root=root, task=d.task)
  if d.num_train:
    train = train[:d.num_train]
  if d.num_eval:
    items = items[:d.num_eval]
  corpus = ()
  if d.task == "search":
    if not d.corpus:
      raise ValueError("MAT search needs config.data.corpus: the documents the local search tool indexes")
    corpus = read_corpus(d.corpus)
  return AgentData(train, items, corpus)


def read_corpus(path: str | pathlib.Path) -> tuple[str, ...]:
  """Documents from a text file (one per non-empty line) or a jsonl of {"contents" | "text": ...}."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no corpus file at {path}")
  documents = []
  for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    if path.suffix == ".jsonl":
      try:
        record = json.loads(line)
        line = str(record.get("contents", record.get("text")) or "")
      except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{path}:{number}: not a JSON object with 'contents' or 'text' ({e})") from None
    if line:
      documents.append(line)
  if not documents:
    raise ValueError(f"the corpus {path} holds no documents")
  return tuple(documents)


def vocabulary_texts(data: AgentData, *, tokens_per_tile: int) -> list[str]:
  """Every text the vocabulary must cover: the training prompts and turns (with and without tools),
  the evaluation questions, the corpus as search replies, and the tools' fixed replies."""
  texts = [CODE_RAN, error_observation("no such tool").text]
  for sample in split_into_steps(data.train):
    t = sample.trajectory
    texts.append(render_prompt(t.task, t.question, sample.previous, sample.previous_observations,
                               tokens_per_tile=tokens_per_tile) + sample.solution + IM_END)
  for t in data.train:
    texts.append(render_prompt(t.task, t.question, tokens_per_tile=tokens_per_tile, mode="direct")
                 + direct_solution(t) + IM_END)
  texts += [render_prompt(item.task, item.question, tokens_per_tile=tokens_per_tile) for item in data.eval_items]
  texts += [format_information(data.corpus[i:i + 4]) for i in range(0, len(data.corpus), 4)]
  return texts
