"""Visual-ARFT at small scale (configs/arft_coding.py, configs/arft_search.py): SFT on gold steps, then GRPO,
then evaluation with live tools.

Stages, each in its own folder of the workdir (a rerun resumes or reuses what is there):

  vocab.json   the word-piece vocabulary of the training chains, the corpus and the questions
  direct/      the no-tools baseline: SFT to answer the question in one turn
  sft/         SFT on the single-step samples of the gold trajectories (`jaxlab.agent.records`)
  grpo/        GRPO (G completions per prompt, R = format + accuracy) from the SFT weights, with
               the SFT model as the frozen reference
  eval/        `<model>.jsonl`: the live runs on the evaluation questions (MAT predictions layout)

and `results.json` / `results.md`: MAT F1 / EM on the simple and hard splits for the three models,
with the loop's error counts.
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.agent.datasets import AgentData, build_agent_data, vocabulary_texts
from jaxlab.agent.loop import VlmStepPolicy, agent_metrics, run_agent
from jaxlab.agent.records import split_into_steps
from jaxlab.agent.search import BM25Index
from jaxlab.agent.step_source import AgentStepSource
from jaxlab.agent.tools import AgentTools
from jaxlab.agent.training import StepRewardFn, grpo_prompt_batch, sft_loss_fn
from jaxlab.agent.vocab import AgentVocab
from jaxlab.data import batch_dim_sharding, build_batches, make_global_batch
from jaxlab.posttrain import GrpoSettings, ReferencePolicy, make_grpo_step, vlm_logits_fn, vlm_sampler
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm.model import InternVLModel
from launch.tasks import vlm_sft
from launch.tasks.vlm_sft import tokens_per_tile
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

MODELS = ("direct", "sft", "grpo")
_RECORD_FIELDS = ("input_ids", "targets", "loss_mask", "pixels")


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  require_batch_divisible(config, "sft.global_batch_size", mesh_sizes)
  require_batch_divisible(config, "grpo.prompts_per_step", mesh_sizes)
  if config.grpo.group_size < 2:
    raise ValueError(f"config.grpo.group_size must be >= 2 (GRPO's advantages need a group), got "
                     f"{config.grpo.group_size}")
  if not 1 <= config.evaluation.max_rounds <= 5:
    raise ValueError(f"config.evaluation.max_rounds must be in [1, 5] (the spec's loop), got "
                     f"{config.evaluation.max_rounds}")



def stage_config(config: ConfigDict, stage: str) -> ConfigDict:
  """The ConfigDict `run_train_loop` reads for one training stage (`config.sft` or `config.grpo`)."""
  s = config.grpo if stage == "grpo" else config.sft
  c = ConfigDict(config.to_dict())
  c.stage = stage
  c.optimizer = ConfigDict(dict(config.optimizer.to_dict(), learning_rate=s.learning_rate,
                                warmup_steps=s.warmup_steps))
  c.train = ConfigDict(dict(config.train.to_dict(), num_steps=s.num_steps,
                            log_every=s.get("log_every", config.train.log_every)))
  return c


def load_vocab(config: ConfigDict, data: AgentData, workdir: pathlib.Path) -> AgentVocab:
  """The vocabulary in the workdir (a resumed run keeps its ids), else one built from the data."""
  path = workdir / "vocab.json"
  if path.exists():
    return AgentVocab.load(path)
  vocab = AgentVocab.from_texts(vocabulary_texts(data, tokens_per_tile=tokens_per_tile(config)))
  if jax.process_index() == 0:
    vocab.save(path)
  return vocab


def train_sft(config: ConfigDict, source: AgentStepSource, model, workdir: pathlib.Path, mesh, rules,
              stop_requested) -> LoopResult:
  c = stage_config(config, "sft")
  optimizer = vlm_sft.with_frozen_vision(optimizer_from_config(c.optimizer, c.train.num_steps),
                                         config.model.freeze_vision)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  rows = batch_sharding(mesh, rules, 2)
  loss_fn = sft_loss_fn(model, weighting=config.sft.weighting)
  first = stack_examples([source[0]])
  variables, _ = init_sharded(model.init, init_rng, jnp.asarray(first["input_ids"]), jnp.asarray(first["pixels"][0]),
                              mesh=mesh, rules=rules)
  state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
  train_step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state))
  batches = build_batches(source, global_batch_size=config.sft.global_batch_size, seed=config.seed,
                          prefetch_threads=config.data.prefetch_threads,
                          map_fn=lambda r: {f: r[f] for f in _RECORD_FIELDS})
  return run_train_loop(state, c, workdir, train_step=train_step, batches=batches,
                        to_device=lambda b: make_global_batch(b, rows), rng=train_rng, evaluate=None,
                        stop_requested=stop_requested)


def train_grpo(config: ConfigDict, source: AgentStepSource, model, sft_params, workdir: pathlib.Path, mesh, rules,
               stop_requested) -> tuple[LoopResult, StepRewardFn]:
  c = stage_config(config, "grpo")
  g = config.grpo
  vocab = source.vocab
  optimizer = vlm_sft.with_frozen_vision(optimizer_from_config(c.optimizer, c.train.num_steps),
                                         config.model.freeze_vision)
  logits_fn = vlm_logits_fn(model)
  sample = vlm_sampler(model, group_size=g.group_size, max_new_tokens=g.max_new_tokens, eos_id=vocab.im_end_id,
                       pad_id=vocab.pad_id, temperature=g.temperature, top_p=1.0)
  reward_fn = StepRewardFn(source, group_size=g.group_size, code_reward=g.code_reward)
  state = jax.jit(lambda p: TrainState.create(p, optimizer))(jax.tree.map(jnp.copy, sft_params))
  rows = batch_sharding(mesh, rules, 2)
  place = lambda batch: {k: jax.device_put(v, batch_dim_sharding(rows, v.ndim)) for k, v in batch.items()}
  step = make_grpo_step(logits_fn, sample, reward_fn, ReferencePolicy(logits_fn, sft_params), optimizer,
                        eos_id=vocab.im_end_id, settings=GrpoSettings(group_size=g.group_size, beta=g.beta),
                        state_shardings=jax.tree.map(lambda x: x.sharding, state), rollout_sharding=place)
  batches = build_batches(source, global_batch_size=g.prompts_per_step, seed=config.seed + 1,
                          prefetch_threads=config.data.prefetch_threads, map_fn=grpo_prompt_batch)
  result = run_train_loop(state, c, workdir, train_step=step, batches=batches,
                          to_device=lambda b: make_global_batch(b, rows), rng=jax.random.key(config.seed + 1),
                          evaluate=None, stop_requested=stop_requested)
  return result, reward_fn


def evaluate(config: ConfigDict, data: AgentData, model, params, vocab: AgentVocab, *, mode: str) -> tuple[dict, list]:
  """Live runs on the evaluation questions: (MAT metrics, predictions records)."""
  e = config.evaluation
  tools = AgentTools(search=BM25Index(data.corpus) if data.corpus else None)
  policy = VlmStepPolicy(model, params, vocab, tile_size=config.data.tile_size, tokens_per_tile=tokens_per_tile(config),
                         max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                         max_prompt_length=config.data.max_prompt_length)
  transcripts = run_agent(data.eval_items, policy, tools, max_rounds=e.max_rounds, mode=mode)
  metrics = agent_metrics(transcripts)
  metrics["loop"]["prompts_cut"] = policy.too_long
  return metrics, [t.record() for t in transcripts]


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  data = build_agent_data(config.data, seed=config.seed)
  vocab = load_vocab(config, data, workdir)
  d = config.data
  source_kwargs = dict(tile_size=d.tile_size, tokens_per_tile=tokens_per_tile(config),
                       max_prompt_length=d.max_prompt_length, max_length=d.max_length)
  steps = AgentStepSource(split_into_steps(data.train), vocab, **source_kwargs)
  direct = AgentStepSource([s for s in split_into_steps(data.train) if s.index == len(s.trajectory.steps) - 1],
                           vocab, mode="direct", **source_kwargs)
  model = InternVLModel(vlm_sft.model_config_from(config, len(vocab), vocab.image_token_id, d.max_length))
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  results = {"data": {"train_trajectories": len(data.train), "step_samples": len(steps), "dropped_steps": steps.dropped,
                      "eval_questions": len(data.eval_items), "corpus_documents": len(data.corpus),
                      "vocabulary": len(vocab), "source": d.source}}
  params = {}
  with jax.set_mesh(mesh), axis_rules(rules):
    for name, source in (("direct", direct), ("sft", steps)):
      result = train_sft(config, source, model, workdir / name, mesh, rules, stop_requested)
      if result.status != "completed":
        return result
      params[name] = result.state.params
    result, reward_fn = train_grpo(config, steps, model, params["sft"], workdir / "grpo", mesh, rules, stop_requested)
    if result.status != "completed":
      return result
    params["grpo"] = result.state.params
    results["grpo_train"] = {"last": {k: v for k, v in result.last_train_metrics.items() if k.startswith("train/")},
                             "reward_counts": dict(reward_fn.counts)}
  for name in MODELS:
    metrics, records = evaluate(config, data, model, jax.device_get(params[name]), vocab,
                                mode="direct" if name == "direct" else "tools")
    results[name] = metrics
    if jax.process_index() == 0:
      (workdir / "eval").mkdir(exist_ok=True)
      files.write_text(workdir / "eval" / f"{name}.jsonl",
                       "".join(json.dumps(r, ensure_ascii=False, default=_jsonable) + "\n" for r in records))
    log.info("%s: F1 %.2f EM %.2f (%s)", name, metrics["all"]["f1"], metrics["all"]["em"], metrics["loop"])
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2, default=_jsonable) + "\n")
    files.write_text(workdir / "results.md", results_table(results))
  result.last_eval_metrics.update({f"{m}/{split}_{k}": results[m][split][k] for m in MODELS
                                   for split in ("all", "simple", "hard") if split in results[m] for k in ("f1", "em")})
  return result


def _jsonable(value):
  return value.item() if isinstance(value, np.generic) else str(value)


def results_table(results: dict) -> str:
  names = {"direct": "no tools (direct answer)", "sft": "SFT on gold steps", "grpo": "SFT + GRPO"}
  lines = ["| model | simple F1 / EM | hard F1 / EM | all F1 / EM | no answer | questions with tool errors |",
           "|---|---|---|---|---|---|"]
  for name in MODELS:
    r = results[name]
    cell = lambda split: f"{r[split]['f1']:.1f} / {r[split]['em']:.1f}" if split in r else "–"
    lines.append(f"| {names[name]} | {cell('simple')} | {cell('hard')} | {cell('all')} | {r['loop']['no_answer']} | "
                 f"{r['loop']['questions_with_errors']} |")
  return "\n".join(lines) + f"\n\n{results['data']}\n"
