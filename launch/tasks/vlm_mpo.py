"""InternVL3's post-training recipe at small scale (configs/vlm_mpo.py): SFT, MMPR-style pairs, DPO / MPO.

Stages, each in its own folder of the workdir (a rerun resumes or reuses what is there):

  sft/         `launch.tasks.vlm_sft` on the counting task (`config.sft`)
  pairs/       N sampled solutions per training prompt from the SFT model; the verifier (is the
               final total right?) splits them; pairs.jsonl + images/*.png in the MMPR layout
  <method>/    one preference run per `config.posttrain.methods` entry (`jaxlab.posttrain.PRESETS`:
               dpo, mpo, mpo_no_quality, mpo_no_generation), each from the SFT parameters with the
               SFT model as the frozen reference

and `results.json` / `results.md`: held-out greedy accuracy (final total, and the whole chain
exact) of the SFT model and of every method.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
from ml_collections import ConfigDict
from PIL import Image

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.posttrain import (ChatPairTokenizer, PreferencePairSource, PreferenceTrainState, ReferencePolicy,
                              SingleTileLoader, build_pairs, make_preference_step, read_pairs, vlm_logits_fn,
                              vlm_sampler, write_pairs)
from jaxlab.sharding import axis_rules, batch_sharding, logical_rules, make_mesh
from jaxlab.train import LoopResult
from jaxlab.vlm import generate as vlm_generate
from jaxlab.vlm.counting_task import QUESTION, CountingSource, grade_solution
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.shapes_task import unnormalize
from launch.tasks import vlm_sft
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

STAGE_SEED_OFFSETS = {"pairs": 2, "eval": 3}  # Prompt seeds beside the SFT's train (seed) and eval (seed + 1).


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  vlm_sft.check_config(config.sft, mesh_sizes)
  require_batch_divisible(config, "posttrain.global_batch_size", mesh_sizes)
  require_batch_divisible(config, "pairs.prompt_batch_size", mesh_sizes)
  if config.sft.data.task != "counting":
    raise ValueError(f"config.sft.data.task must be 'counting' (the task the verifier grades), got "
                     f"{config.sft.data.task!r}")


def decode_solution(vocab, ids) -> str:
  """Generated ids -> the response text up to (not including) the first `<|im_end|>`, padding dropped."""
  ids = [int(i) for i in ids]
  if vocab.im_end_id in ids:
    ids = ids[:ids.index(vocab.im_end_id)]
  return vocab.decode([i for i in ids if i != vocab.pad_id])


def greedy_accuracy(model, params, source: CountingSource, *, batch_size: int, max_new_tokens: int) -> dict:
  """Held-out greedy accuracy: the final total right, and the whole chain exactly right."""
  p = source.prompt_length
  final = exact = 0
  examples = []
  for start in range(0, len(source), batch_size):
    batch = stack_examples([source[i] for i in range(start, min(start + batch_size, len(source)))])
    out = np.asarray(vlm_generate(model, params, jnp.asarray(batch["input_ids"][:, :p]),
                                  jnp.asarray(batch["pixels"][:, 0]), max_new_tokens=max_new_tokens,
                                  eos_id=source.vocab.im_end_id, pad_id=source.vocab.pad_id))
    for row, counts in zip(out, batch["counts"]):
      grade = grade_solution(source.vocab, row, counts)
      final += grade.final_correct
      exact += all(grade.step_correct) and len(grade.step_correct) == 4
      if len(examples) < 4:
        examples.append({"counts": counts.tolist(), "generated": decode_solution(source.vocab, row)})
  return {"final_accuracy": final / len(source), "exact_accuracy": exact / len(source), "num_examples": len(source),
          "examples": examples}


def make_pairs(config: ConfigDict, model, params, workdir: pathlib.Path, mesh, rules) -> pathlib.Path:
  """Samples solutions from the SFT model, verifies them and writes pairs.jsonl (skipped when it exists)."""
  out_dir = workdir / "pairs"
  path = out_dir / "pairs.jsonl"
  if path.exists():
    log.info("Reusing the pairs in %s", path)
    return path
  c = config.pairs
  source = vlm_sft.task_source(config.sft, seed=config.sft.seed + STAGE_SEED_OFFSETS["pairs"], length=c.num_prompts)
  vocab, p = source.vocab, source.prompt_length
  sample = vlm_sampler(model, group_size=c.samples_per_prompt, max_new_tokens=c.max_new_tokens,
                       eos_id=vocab.im_end_id, pad_id=vocab.pad_id, temperature=c.temperature, top_p=c.top_p)
  rows = batch_sharding(mesh, rules, 2)
  images_dir = out_dir / "images"
  images_dir.mkdir(parents=True, exist_ok=True)
  prompts, samples = [], []
  key = jax.random.key(config.sft.seed + STAGE_SEED_OFFSETS["pairs"])
  for start in range(0, c.num_prompts, c.prompt_batch_size):
    indices = [min(i, c.num_prompts - 1) for i in range(start, start + c.prompt_batch_size)]  # last batch padded
    batch = stack_examples([source[i] for i in indices])
    prompt = {"input_ids": batch["input_ids"][:, :p], "pixels": batch["pixels"]}
    completions = np.asarray(sample(params, make_global_batch(prompt, rows), jax.random.fold_in(key, start)))
    completions = completions.reshape(len(indices), c.samples_per_prompt, -1)
    for row, i in enumerate(indices[:c.num_prompts - start]):
      image_path = images_dir / f"{i:06d}.png"
      if jax.process_index() == 0 and not image_path.exists():
        pixels = np.clip(unnormalize(batch["pixels"][row, 0]) * 255 + 0.5, 0, 255).astype(np.uint8)
        with files.atomic_open(image_path, "wb") as f:
          Image.fromarray(pixels).save(f, format="PNG")
      answers = [decode_solution(vocab, ids) for ids in completions[row]]
      if c.reference_as_chosen:  # The gold chain joins the candidates (for prompts the model never solves).
        answers.append(decode_solution(vocab, source.answer_ids(batch["counts"][row])))
      prompts.append({"image": f"images/{i:06d}.png", "question": QUESTION, "counts": batch["counts"][row].tolist()})
      samples.append(answers)

  verify = lambda record, answer: grade_solution(vocab, vocab.encode(answer), record["counts"]).final_correct
  records, report = build_pairs(prompts, samples, verify, pairs_per_prompt=c.pairs_per_prompt, seed=config.sft.seed)
  if not records:
    raise ValueError(f"no preference pairs: every prompt's samples were all correct or all wrong ({report}); "
                     "raise pairs.temperature or pairs.samples_per_prompt, or set pairs.reference_as_chosen")
  if jax.process_index() == 0:
    write_pairs(path, records)
    files.write_text(out_dir / "report.json", json.dumps(dataclasses.asdict(report), indent=2) + "\n")
  if jax.process_count() > 1:  # Every process reads the pairs process 0 wrote.
    multihost_utils.sync_global_devices("jaxlab_vlm_mpo_pairs_written")
  return path


def pair_source(config: ConfigDict, path: pathlib.Path, source: CountingSource) -> PreferencePairSource:
  vocab = source.vocab
  tokens_per_tile = source.prompt_ids.count(vocab.image_token_id)
  tokenizer = ChatPairTokenizer(vocab.encode, eos_id=vocab.im_end_id, pad_id=vocab.pad_id,
                                tokens_per_tile=tokens_per_tile)
  max_length = source.prompt_length + config.pairs.max_new_tokens + 1
  return PreferencePairSource(read_pairs(path), tokenizer, SingleTileLoader(source.tile_size), max_length,
                              on_bad="drop")


def method_config(config: ConfigDict, method: str) -> ConfigDict:
  """The ConfigDict `run_train_loop` reads for one preference run."""
  c = ConfigDict(config.to_dict())
  c.method = method
  return c


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  sft_result = vlm_sft.run(config.sft, workdir / "sft", stop_requested=stop_requested)
  if sft_result.status != "completed":
    return sft_result
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  eval_source = vlm_sft.task_source(config.sft, seed=config.sft.seed + STAGE_SEED_OFFSETS["eval"],
                                    length=config.evaluation.num_eval)
  vocab = eval_source.vocab
  seq_len = len(eval_source[0]["input_ids"])
  model = InternVLModel(vlm_sft.model_config_from(config.sft, len(vocab), vocab.image_token_id, seq_len))
  logits_fn = vlm_logits_fn(model)
  evaluate = lambda params: greedy_accuracy(model, params, eval_source, batch_size=config.evaluation.batch_size,
                                            max_new_tokens=config.pairs.max_new_tokens)
  results = {}
  result = sft_result
  with jax.set_mesh(mesh), axis_rules(rules):
    sft_params = sft_result.state.params
    results["sft"] = evaluate(sft_params)
    pairs_path = make_pairs(config, model, sft_params, workdir, mesh, rules)
    source = pair_source(config, pairs_path, eval_source)
    results["pairs"] = {"num_pairs": len(source), "dropped": source.drop_report.dropped}
    reference = ReferencePolicy(logits_fn, sft_params)
    rows = batch_sharding(mesh, rules, 2)
    to_device = lambda b: reference.with_pair_logprobs(make_global_batch(b, rows))
    for method in config.posttrain.methods:
      c = method_config(config, method)
      optimizer = optimizer_from_config(c.optimizer, c.train.num_steps)
      state = jax.jit(lambda p: PreferenceTrainState.create(p, optimizer))(jax.tree.map(jnp.copy, sft_params))
      step = make_preference_step(logits_fn, optimizer, weights=method,
                                  state_shardings=jax.tree.map(lambda x: x.sharding, state))
      batches = build_batches(source, global_batch_size=c.posttrain.global_batch_size, seed=c.seed,
                              prefetch_threads=c.posttrain.prefetch_threads)
      result = run_train_loop(state, c, workdir / method, train_step=step, batches=batches, to_device=to_device,
                              rng=jax.random.key(c.seed), evaluate=None, stop_requested=stop_requested)
      if result.status != "completed":
        return result
      results[method] = evaluate(result.state.params)
      results[method]["train"] = {k: v for k, v in result.last_train_metrics.items() if k.startswith("train/")}
      log.info("%s: final accuracy %.3f (SFT %.3f)", method, results[method]["final_accuracy"],
               results["sft"]["final_accuracy"])
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", results_table(results, config.posttrain.methods))
  result.last_eval_metrics.update({f"{m}/final_accuracy": results[m]["final_accuracy"]
                                   for m in ("sft", *config.posttrain.methods)})
  return result


def results_table(results: dict, methods) -> str:
  lines = ["| model | final total right | whole chain exact |", "|---|---|---|"]
  for name in ("sft", *methods):
    r = results[name]
    lines.append(f"| {'SFT' if name == 'sft' else 'SFT + ' + name} | {r['final_accuracy']:.3f} | "
                 f"{r['exact_accuracy']:.3f} |")
  return "\n".join(lines) + f"\n\n{results['pairs']['num_pairs']} pairs, {results['sft']['num_examples']} held-out images.\n"
