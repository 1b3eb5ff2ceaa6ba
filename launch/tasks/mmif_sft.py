"""MM-IFEngine's SFT at small scale (configs/mmif_sft.py): instruction data with rule-checkable constraints, SFT of
jaxlab's VLM, and the rule-checked C-Level on held-out items.

Workdir:

  data/train.jsonl, data/eval.jsonl, data/images/   the MM-IFInstruct items (generated ones are written
                                                     here once; `data.source="jsonl"` reads the user's)
  vocab.json                                         the piece vocabulary of every prompt and response
  sft/                                               the SFT run (checkpoints, metrics)
  eval/items.jsonl                                   the held-out items in MM-IFEval's C-Level layout
  eval/sft.jsonl                                     the model's predictions (rescored by
                                                     `python -m jaxlab.mmif.score`)
  results.json, results.md                           C-Level and per-sub-type pass rates

SFT trains on the items whose response meets at least 80 % of its constraints (MM-IFInstruct's filter).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict
from PIL import Image

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.mmif.engine import InstructItem, keep_response, read_instruct, satisfaction, write_instruct
from jaxlab.mmif.respond import VlmResponder
from jaxlab.mmif.sft_source import InstructSftSource, image_path
from jaxlab.mmif.synthetic import make_items, render
from jaxlab.posttrain import SingleTileLoader
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm.chat_template import render_chat
from jaxlab.vlm.piece_vocab import PieceVocab
from jaxlab.vlm.sft_loss import sft_loss
from launch.tasks import vlm_sft
from launch.tasks.vlm_sft import piece_model as make_model
from launch.tasks.vlm_sft import piece_tokenizer as make_tokenizer
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

SOURCES = ("generated", "jsonl")
_EVAL_SEED_OFFSET = 1000  # Held-out scenes and draws: a seed no training item uses.


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  d = config.data
  if d.source not in SOURCES:
    raise ValueError(f"config.data.source must be one of {SOURCES}, got {d.source!r}")
  if d.source == "jsonl" and not (d.train_jsonl and d.eval_jsonl):
    raise ValueError("config.data.source='jsonl' needs config.data.train_jsonl and config.data.eval_jsonl")
  if not 1 <= d.min_constraints <= d.max_constraints:
    raise ValueError(f"need 1 <= data.min_constraints <= data.max_constraints, got {d.min_constraints}, "
                     f"{d.max_constraints}")



@dataclasses.dataclass
class MmifData:
  train: list[InstructItem]
  eval: list[InstructItem]
  train_root: pathlib.Path
  eval_root: pathlib.Path


def _write_generated(config: ConfigDict, data_dir: pathlib.Path, name: str, seed: int, num: int) -> pathlib.Path:
  """Generated items and their PNGs under data_dir (kept when already there)."""
  path = data_dir / f"{name}.jsonl"
  if path.exists():
    return path
  d = config.data
  items, scenes = make_items(num, seed=seed, min_constraints=d.min_constraints, max_constraints=d.max_constraints,
                             image_dir="images")
  if jax.process_index() == 0:
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    for item in items:
      target = data_dir / item.image
      if not target.exists():
        with files.atomic_open(target, "wb") as f:
          Image.fromarray(render(scenes[item.id], d.tile_size)).save(f, format="PNG")
    write_instruct(path, items)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"jaxlab_mmif_data_{name}")
  return path


def build_data(config: ConfigDict, workdir: pathlib.Path) -> MmifData:
  d = config.data
  if d.source == "jsonl":
    train_path, eval_path = pathlib.Path(d.train_jsonl), pathlib.Path(d.eval_jsonl)
  else:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_path = _write_generated(config, data_dir, "train", config.seed, d.num_train)
    eval_path = _write_generated(config, data_dir, "eval", config.seed + _EVAL_SEED_OFFSET, d.num_eval)
  return MmifData(read_instruct(train_path), read_instruct(eval_path), train_path.parent, eval_path.parent)


def vocabulary_texts(data: MmifData) -> list[str]:
  """Every prompt (as the chat template renders it) and response the model reads or writes."""
  texts = [render_chat([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}])]
  for item in data.train + data.eval:
    texts.append(item.prompt)
    texts.append(item.instruction)  # The drop-all rejection prompt.
    if item.response is not None:
      texts.append(item.response)
  return texts


def load_vocab(data: MmifData, workdir: pathlib.Path) -> PieceVocab:
  path = workdir / "vocab.json"
  if path.exists():
    return PieceVocab.load(path)
  vocab = PieceVocab.from_texts(vocabulary_texts(data))
  if jax.process_index() == 0:
    vocab.save(path)
  return vocab




def kept_items(items: Sequence[InstructItem]) -> list[InstructItem]:
  """Answered items whose response meets >= 80 % of its constraints."""
  return [i for i in items if i.response is not None and keep_response(satisfaction(i.response, i.constraints))]


def train_sft(config: ConfigDict, source: InstructSftSource, model, workdir: pathlib.Path,
              stop_requested: Callable[[], bool]) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  optimizer = vlm_sft.with_frozen_vision(optimizer_from_config(config.optimizer, config.train.num_steps),
                                         config.model.freeze_vision)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

  def loss_fn(params, batch, rng):
    del rng
    pixels = batch["pixels"].reshape(-1, *batch["pixels"].shape[2:])
    logits, _ = model.apply({"params": params}, batch["input_ids"], pixels)
    return sft_loss(logits, batch["targets"], batch["loss_mask"], weighting=config.loss.weighting)

  with jax.set_mesh(mesh), axis_rules(rules):
    rows = batch_sharding(mesh, rules, 2)
    first = stack_examples([source[0]])
    variables, _ = init_sharded(model.init, init_rng, jnp.asarray(first["input_ids"]),
                                jnp.asarray(first["pixels"][:, 0]), mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state))
    batches = build_batches(source, global_batch_size=config.data.global_batch_size, seed=config.seed,
                            prefetch_threads=config.data.prefetch_threads)
    return run_train_loop(state, config, workdir, train_step=step, batches=batches,
                          to_device=lambda b: make_global_batch(b, rows), rng=train_rng, evaluate=None,
                          stop_requested=stop_requested)


def responder(config: ConfigDict, model, params, vocab: PieceVocab) -> VlmResponder:
  return VlmResponder(model, params, make_tokenizer(config, vocab), SingleTileLoader(config.data.tile_size),
                      vocab.decode, max_new_tokens=config.evaluation.max_new_tokens,
                      batch_size=config.evaluation.batch_size)


def c_level(items: Sequence[InstructItem], responses: Sequence[str]) -> dict:
  """Rule-checked C-Level (mean over items of the fraction of constraints met) and per-sub-type pass rates."""
  per_item, passes = [], collections.defaultdict(list)
  for item, response in zip(items, responses):
    scored = [(c, satisfaction(response, [c])) for c in item.constraints]
    per_item.append(float(np.mean([s for _, s in scored])))
    for c, s in scored:
      passes[c.key.rsplit("_", 1)[0] if c.key[-1].isdigit() else c.key].append(s)
  return {"c_level": 100 * float(np.mean(per_item)), "all_met": 100 * float(np.mean([s == 1 for s in per_item])),
          "num_items": len(items), "mean_words": float(np.mean([len(r.split()) for r in responses])),
          "sub_types": {k: {"pass_rate": 100 * float(np.mean(v)), "count": len(v)} for k, v in sorted(passes.items())}}


def write_mmifeval_items(items: Sequence[InstructItem], image_root: pathlib.Path, path: pathlib.Path) -> None:
  """The held-out items as MM-IFEval C-Level rows (absolute image paths)."""
  rows = [{"id": i.id, "infer_type": "main", "tag": "C-Level", "instruction": i.instruction,
           "constraints": [c.to_json() for c in i.constraints], "image": image_path(i, image_root)} for i in items]
  files.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def evaluate(config: ConfigDict, name: str, model, params, vocab: PieceVocab, data: MmifData,
             workdir: pathlib.Path) -> dict:
  """Greedy answers to the held-out prompts, scored by the rule verifiers; predictions written to eval/<name>.jsonl."""
  items = data.eval
  answer = responder(config, model, params, vocab)
  responses = answer([(i.prompt, image_path(i, data.eval_root)) for i in items])
  metrics = c_level(items, responses)
  if jax.process_index() == 0:
    out = workdir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "items.jsonl").exists():
      write_mmifeval_items(items, data.eval_root, out / "items.jsonl")
    files.write_text(out / f"{name}.jsonl", "".join(
        json.dumps({"id": i.id, "infer_type": "main", "prediction": r}, ensure_ascii=False) + "\n"
        for i, r in zip(items, responses)))
  metrics["examples"] = [{"prompt": i.prompt, "response": r} for i, r in list(zip(items, responses))[:3]]
  log.info("%s: rule C-Level %.1f (all constraints met on %.1f %%)", name, metrics["c_level"], metrics["all_met"])
  return metrics


def data_summary(data: MmifData, kept: Sequence[InstructItem]) -> dict:
  fractions = [satisfaction(i.response, i.constraints) for i in data.train if i.response is not None]
  return {"train_items": len(data.train), "kept_items": len(kept), "eval_items": len(data.eval),
          "teacher_c_level": 100 * float(np.mean(fractions)) if fractions else None,
          "constraints_per_item": float(np.mean([len(i.constraints) for i in data.train]))}


def teacher_metrics(data: MmifData) -> dict | None:
  """The held-out items' own responses, scored the same way (the data's ceiling)."""
  if any(i.response is None for i in data.eval):
    return None
  return c_level(data.eval, [i.response for i in data.eval])


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  data = build_data(config, workdir)
  kept = kept_items(data.train)
  vocab = load_vocab(data, workdir)
  source = InstructSftSource(kept, make_tokenizer(config, vocab), SingleTileLoader(config.data.tile_size),
                             image_root=data.train_root, max_length=config.data.max_length)
  model = make_model(config, vocab)
  result = train_sft(config, source, model, workdir / "sft", stop_requested)
  if result.status != "completed":
    return result
  results = {"data": dict(data_summary(data, kept), dropped_too_long=source.dropped, vocabulary=len(vocab)),
             "teacher": teacher_metrics(data),
             "sft": evaluate(config, "sft", model, jax.device_get(result.state.params), vocab, data, workdir)}
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", results_table(results, ("sft",)))
  result.last_eval_metrics["sft/c_level"] = results["sft"]["c_level"]
  return result


MODEL_NAMES = {"teacher": "teacher responses (the data)", "sft": "SFT"}


def results_table(results: dict, models: Sequence[str]) -> str:
  """C-Level, all-met rate and per-sub-type pass rates of each model, as markdown."""
  names = [m for m in ("teacher", *models) if results.get(m)]
  sub_types = sorted({k for m in names for k in results[m]["sub_types"]})
  head = "| model | C-Level | all met | words | " + " | ".join(sub_types) + " |"
  lines = [head, "|" + "---|" * (4 + len(sub_types))]
  for m in names:
    r = results[m]
    cells = [f"{r['sub_types'][k]['pass_rate']:.1f}" if k in r["sub_types"] else "–" for k in sub_types]
    label = MODEL_NAMES.get(m, f"SFT + DPO ({m})")
    lines.append(f"| {label} | {r['c_level']:.1f} | {r['all_met']:.1f} | {r['mean_words']:.1f} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines) + f"\n\n{results['data']}\n"
