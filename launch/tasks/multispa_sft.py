"""Multi-SpatialMLLM at small scale (configs/multispa_sft.py): MultiSPA questions from generated (or read)
scenes, multi-image SFT of jaxlab's VLM with LoRA on the language model (vision tower and projector
frozen), and the uniform metric per subtask on scenes disjoint from training.

Workdir:

  data/train/train.jsonl, data/eval/eval.jsonl   the MultiSPA items and their images (generated once, or
                                                 `data.source="jsonl"` reads the user's)
  data/stats.json                                counts per subtask, skip reasons, QA pairs per second
  vocab.json                                     the piece vocabulary (digits as single pieces)
  sft/                                           the run (checkpoints, metrics)
  eval/<model>.jsonl                             predictions of each model (rescored by
                                                 `python -m jaxlab.spatial.score`)
  results.json, results.md                       per-subtask accuracy: trained, untrained, training prior,
                                                 chance
  export/                                        the trained model with LoRA merged, as a Hugging Face
                                                 InternVL checkpoint (`export.merged=True`)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.nn.lora import LoraConfig, apply_with_lora, init_lora, lora_optimizer, merge_lora, num_params
from jaxlab.posttrain import SingleTileLoader
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.spatial.baselines import chance_accuracy, prior_predictions
from jaxlab.spatial.dataset import write_dataset
from jaxlab.spatial.plans import EngineConfig
from jaxlab.spatial.qa import SpatialQA, read_items
from jaxlab.spatial.respond import answer_questions
from jaxlab.spatial.scoring import score, subtask_order
from jaxlab.spatial.sft_source import SpatialSftSource
from jaxlab.spatial.source import MultiSpaSource
from jaxlab.spatial.vocab import SpatialVocab
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm.chat_template import render_chat
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.sft_loss import sft_loss
from launch.tasks.vlm_sft import piece_model as make_model
from launch.tasks.vlm_sft import piece_tokenizer as make_tokenizer
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

SOURCES = ("generated", "jsonl")
_EVAL_SEED_OFFSET = 100_000  # Evaluation scenes: seeds no training scene uses.


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  d = config.data
  if d.source not in SOURCES:
    raise ValueError(f"config.data.source must be one of {SOURCES}, got {d.source!r}")
  if d.source == "jsonl" and not (d.train_jsonl and d.eval_jsonl):
    raise ValueError("config.data.source='jsonl' needs config.data.train_jsonl and config.data.eval_jsonl")
  if config.lora.rank < 0:
    raise ValueError(f"config.lora.rank must be >= 0 (0: full fine-tuning), got {config.lora.rank}")



def scene_specs(d: ConfigDict, seed: int, rooms: int, tracks: int) -> list[tuple]:
  """`rooms` generated rooms and `tracks` track scenes per track source, seeds from `seed`."""
  specs = [("room", seed + k) for k in range(rooms)]
  specs += [("track", seed + k, source) for source in d.track_sources for k in range(tracks)]
  return specs


def engine_config(config: ConfigDict) -> EngineConfig:
  return EngineConfig(**dict(config.engine))


def _write_generated(config: ConfigDict, data_dir: pathlib.Path, name: str, seed: int, rooms: int,
                     tracks: int) -> pathlib.Path:
  """The split's items and PNGs under data_dir/name (kept when already there); stats in data/stats.json."""
  out = data_dir / name
  path = out / f"{name}.jsonl"
  if path.exists():
    return path
  d = config.data
  source = MultiSpaSource(scene_specs(d, seed, rooms, tracks), items_per_scene=d.items_per_scene, seed=seed,
                          config=engine_config(config), height=d.image_height, width=d.image_width,
                          num_frames=d.num_frames, id_prefix=name)
  if jax.process_index() == 0:
    stats = write_dataset(source, out, name, num_workers=d.num_workers)
    log.info("%s: %d QA pairs in %.1f s (%.1f per second, %d workers); unfilled %s", name, stats.items, stats.seconds,
             stats.qa_per_second, d.num_workers, stats.unfilled)
    record = dataclasses.asdict(stats) | {"qa_per_second": stats.qa_per_second, "workers": d.num_workers}
    stats_path = data_dir / "stats.json"
    merged = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    files.write_text(stats_path, json.dumps(merged | {name: record}, indent=2) + "\n")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"jaxlab_multispa_data_{name}")
  return path


@dataclasses.dataclass
class SpatialData:
  train: list[SpatialQA]
  eval: list[SpatialQA]
  train_root: pathlib.Path
  eval_root: pathlib.Path


def build_data(config: ConfigDict, workdir: pathlib.Path) -> SpatialData:
  d = config.data
  if d.source == "jsonl":
    train_path, eval_path = pathlib.Path(d.train_jsonl), pathlib.Path(d.eval_jsonl)
  else:
    data_dir = workdir / "data"
    train_path = _write_generated(config, data_dir, "train", config.seed, d.train_rooms, d.train_tracks)
    eval_path = _write_generated(config, data_dir, "eval", config.seed + _EVAL_SEED_OFFSET, d.eval_rooms,
                                 d.eval_tracks)
  return SpatialData(read_items(train_path), read_items(eval_path), train_path.parent, eval_path.parent)


def load_vocab(data: SpatialData, workdir: pathlib.Path) -> SpatialVocab:
  path = workdir / "vocab.json"
  if path.exists():
    return SpatialVocab.load(path)
  texts = [render_chat([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}])]
  texts += [t for i in data.train + data.eval for t in (i.question, i.answer)]
  vocab = SpatialVocab.from_texts(texts)
  if jax.process_index() == 0:
    vocab.save(path)
  return vocab




def lora_config(config: ConfigDict) -> LoraConfig | None:
  """None for full fine-tuning (`lora.rank == 0`)."""
  c = config.lora
  return None if c.rank == 0 else LoraConfig(rank=c.rank, alpha=c.alpha, targets=tuple(c.targets))


def make_optimizer(config: ConfigDict) -> optax.GradientTransformation:
  """LoRA: only the adapters train. Full fine-tuning: all but the vision tower (and projector) train."""
  inner = optimizer_from_config(config.optimizer, config.train.num_steps)
  if lora_config(config) is not None:
    return lora_optimizer(inner)
  frozen = set(config.model.frozen)
  labels = lambda params: {"base": {k: ("frozen" if k in frozen else "train") for k in params["base"]}, "lora": {}}
  return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, labels)


def init_params(config: ConfigDict, model: InternVLModel, first: dict, mesh, rules) -> dict:
  """{"base": the model's params, "lora": the adapters (B = 0) or {} for full fine-tuning}, sharded."""
  base_rng, lora_rng = jax.random.split(jax.random.key(config.seed))
  ids, pixels = jnp.asarray(first["input_ids"]), jnp.asarray(first["pixels"][0])
  variables, _ = init_sharded(model.init, base_rng, ids, pixels, mesh=mesh, rules=rules)
  params = {"base": variables["params"], "lora": {}}
  lora = lora_config(config)
  if lora is not None:
    with axis_rules(rules):
      abstract = jax.eval_shape(model.init, base_rng, ids, pixels)["params"]
    params["lora"], _ = init_sharded(functools.partial(init_lora, params=abstract, config=lora), lora_rng,
                                     mesh=mesh, rules=rules)
  return params


def model_params(config: ConfigDict, params: dict) -> dict:
  """The model's params with the adapters merged in (what evaluation and export use)."""
  lora = lora_config(config)
  return params["base"] if lora is None else merge_lora(params["base"], params["lora"], lora)


def train(config: ConfigDict, source: SpatialSftSource, model: InternVLModel, workdir: pathlib.Path,
          stop_requested: Callable[[], bool]) -> tuple[LoopResult, dict]:
  """(the loop's result, the initial params)."""
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  optimizer = make_optimizer(config)
  lora = lora_config(config)

  def loss_fn(params, batch, rng):
    del rng
    pixels = batch["pixels"].reshape(-1, *batch["pixels"].shape[2:])
    if lora is None:
      logits, _ = model.apply({"params": params["base"]}, batch["input_ids"], pixels)
    else:
      logits, _ = apply_with_lora(model.apply, params["base"], params["lora"], lora, batch["input_ids"], pixels)
    return sft_loss(logits, batch["targets"], batch["loss_mask"], weighting=config.loss.weighting)

  with jax.set_mesh(mesh), axis_rules(rules):
    rows = batch_sharding(mesh, rules, 2)
    initial = init_params(config, model, stack_examples([source[0]]), mesh, rules)
    log.info("Parameters: %d in the model, %d trained (%s)", num_params(initial["base"]),
             num_params(initial["lora"]) if lora else num_params(initial["base"]), "LoRA" if lora else "full")
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(initial)
    step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state))
    batches = build_batches(source, global_batch_size=config.data.global_batch_size, seed=config.seed,
                            prefetch_threads=config.data.prefetch_threads)
    result = run_train_loop(state, config, workdir, train_step=step, batches=batches,
                            to_device=lambda b: make_global_batch(b, rows), rng=jax.random.key(config.seed + 1),
                            evaluate=None, stop_requested=stop_requested)
  return result, initial


def evaluate(config: ConfigDict, name: str, model, params, vocab: SpatialVocab, data: SpatialData,
             workdir: pathlib.Path) -> dict:
  """Greedy answers to the evaluation items, scored; predictions written to eval/<name>.jsonl."""
  loader = SingleTileLoader(config.data.tile_size)
  answers = answer_questions(model, params, data.eval, tokenizer=make_tokenizer(config, vocab), load_image=loader,
                             decode=vocab.decode, image_root=data.eval_root,
                             max_new_tokens=config.evaluation.max_new_tokens,
                             batch_size=config.evaluation.batch_size)
  predictions = {i.id: a for i, a in zip(data.eval, answers)}
  write_predictions(workdir / "eval" / f"{name}.jsonl", predictions)
  report = score(data.eval, predictions)
  log.info("%s: mean accuracy %.1f over %d subtasks", name, report.mean_accuracy, len(report.per_subtask))
  out = report_dict(report)
  out["examples"] = [{"question": i.question.splitlines()[-1], "answer": i.answer, "prediction": a}
                     for i, a in list(zip(data.eval, answers))[:4]]
  return out


def write_predictions(path: pathlib.Path, predictions: dict[str, str]) -> None:
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, "".join(json.dumps({"id": k, "prediction": v}, ensure_ascii=False) + "\n"
                                   for k, v in predictions.items()))


def report_dict(report) -> dict:
  return {"mean_accuracy": report.mean_accuracy, "num_items": report.num_items,
          "per_subtask": {k: dict(v) for k, v in report.per_subtask.items()}}


def baselines(data: SpatialData, workdir: pathlib.Path) -> dict:
  prior = prior_predictions(data.train, data.eval)
  write_predictions(workdir / "eval" / "prior.jsonl", prior)
  result = {"prior": report_dict(score(data.eval, prior))}
  chance = {s: chance_accuracy(s) for s in result["prior"]["per_subtask"]}
  result["chance"] = {"per_subtask": {s: {"accuracy": a} for s, a in chance.items() if a is not None}}
  return result


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  data = build_data(config, workdir)
  vocab = load_vocab(data, workdir)
  tokenizer = make_tokenizer(config, vocab)
  model = make_model(config, vocab)
  source = SpatialSftSource(data.train, tokenizer, SingleTileLoader(config.data.tile_size), image_root=data.train_root,
                            max_length=config.data.max_length, max_images=config.data.max_images,
                            image_token_id=vocab.image_token_id)
  result, initial = train(config, source, model, workdir / "sft", stop_requested)
  if result.status != "completed":
    return result
  trained = jax.device_get(model_params(config, result.state.params))
  results = {"data": {"train_items": len(data.train), "eval_items": len(data.eval),
                      "dropped_too_long": source.dropped, "vocabulary": len(vocab)},
             "trained": evaluate(config, "trained", model, trained, vocab, data, workdir),
             "untrained": evaluate(config, "untrained", model, jax.device_get(initial["base"]), vocab, data, workdir),
             **baselines(data, workdir)}
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", results_table(results))
    if config.export.merged:
      from jaxlab.vlm.hf_io import save_pretrained  # Deferred: only the export needs the writer.
      save_pretrained(trained, model.config, workdir / "export")
  result.last_eval_metrics["trained/mean_accuracy"] = results["trained"]["mean_accuracy"]
  return result


def results_table(results: dict) -> str:
  """Per-subtask accuracy (%) of the trained and untrained model, the training prior and chance."""
  columns = ("trained", "untrained", "prior", "chance")
  subtasks = sorted(results["trained"]["per_subtask"], key=subtask_order)
  lines = ["| subtask | items | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
  for s in subtasks:
    cells = []
    for c in columns:
      row = results[c]["per_subtask"].get(s)
      cells.append(f"{row['accuracy']:.1f}" if row and row.get("accuracy") is not None else "–")
    lines.append(f"| {s} | {results['trained']['per_subtask'][s]['count']} | " + " | ".join(cells) + " |")
  means = [f"{results[c]['mean_accuracy']:.1f}" if "mean_accuracy" in results[c] else "–" for c in columns]
  lines.append("| **mean** | " + str(results["trained"]["num_items"]) + " | " + " | ".join(means) + " |")
  return "\n".join(lines) + f"\n\n{results['data']}\n"
