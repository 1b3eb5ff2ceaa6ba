"""InternVL3's Best-of-N under a VisualPRM-style process reward model, at small scale (configs/vlm_prm.py).

Stages, each in its own folder of the workdir where it trains (a rerun resumes or restores it):

  sft/   `launch.tasks.vlm_sft` on the counting task (`config.sft`): the policy
  prm/   the PRM, initialised from the SFT weights, trained on the judgement positions of chats
         built from sampled and true solutions (`jaxlab.posttrain.prm`)

Images: the SFT trains on seed s (`config.sft.seed`) and evaluates on s + 1; the PRM's training
images are s + 2 and Best-of-N is measured on s + 3. Sampling and scoring are deterministic given
the seeds, so a rerun rebuilds the same PRM data. Outputs: `bon.json` and `bon.md` (greedy, single
sample, majority vote, PRM Best-of-N and oracle Best-of-N accuracy of the final total; the PRM's
step accuracy on held-out steps; the PRM data's label counts).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.posttrain.policy import vlm_logits_fn
from jaxlab.posttrain.prm import (PLUS, balance_labels, best_of_n, majority_vote, prm_length, prm_record, score_batch,
                                  split_steps)
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm import generate as vlm_generate
from jaxlab.vlm.counting_task import NUMBERS, CountingSource, grade_solution
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.sft_loss import sft_loss
from launch.config_loader import ConfigError
from launch.tasks import vlm_sft
from launch.tasks.common import optimizer_from_config, record_config, run_train_loop, stack_examples
from launch.validate import check_mesh, require_batch_divisible

log = logging.getLogger(__name__)

STAGE_SEED_OFFSETS = {"prm": 2, "eval": 3}  # Image seeds beside the SFT's train (seed) and eval (seed + 1).
_FIELDS = ("input_ids", "targets", "loss_mask", "pixels")


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """The SFT stage's checks on its own mesh, and the PRM batch over the job's (called by launch.run)."""
  vlm_sft.check_config(config.sft, check_mesh(config.sft, math.prod(mesh_sizes.values())))
  require_batch_divisible(config, "prm.global_batch_size", mesh_sizes)
  if config.sft.data.task != "counting":
    raise ConfigError(f"config.sft.data.task must be 'counting' (the task whose steps can be graded), got "
                      f"{config.sft.data.task!r}")
  for key, value, low in (("bon.n", config.bon.n, 1), ("bon.num_eval", config.bon.num_eval, 1),
                          ("prm.max_steps", config.prm.max_steps, 1), ("prm.num_images", config.prm.num_images, 1),
                          ("prm.rows_per_call", config.prm.rows_per_call, 1)):
    if value < low:
      raise ConfigError(f"{key}={value} must be at least {low} (e.g. --config.{key}={low})")


class PrmRecords:
  """Random-access PRM records (`jaxlab.posttrain.prm.prm_record`) with the pixels of each one's image."""

  def __init__(self, records: Sequence[dict], image_of_record: Sequence[int], pixels_mhwc: np.ndarray):
    self._records, self._image, self._pixels = list(records), list(image_of_record), pixels_mhwc

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {**self._records[index], "pixels": self._pixels[self._image[index]][None]}


def images_of(source: CountingSource) -> tuple[np.ndarray, np.ndarray]:
  """(normalized pixels [M, t, t, 3], per-colour counts [M, 3]) of every record of `source`."""
  records = [source[i] for i in range(len(source))]
  return np.stack([r["pixels"][0] for r in records]), np.stack([r["counts"] for r in records])


def generate_rows(model, params, prompt_ids: Sequence[int], pixels_mhwc: np.ndarray, image_of_row: np.ndarray, *,
                  rows_per_call: int, max_new_tokens: int, eos_id: int, pad_id: int, method: str = "greedy",
                  temperature: float = 1.0, top_p: float = 1.0, key: jax.Array | None = None) -> np.ndarray:
  """[R, max_new_tokens] continuations of the (one, shared) prompt over image `image_of_row[r]` for each row.

  Calls hold `rows_per_call` rows (the last one padded), so every call has one compiled shape.
  """
  prompt_bt = jnp.asarray(np.broadcast_to(np.asarray(prompt_ids, np.int32), (rows_per_call, len(prompt_ids))))
  out = []
  for k, start in enumerate(range(0, len(image_of_row), rows_per_call)):
    images = image_of_row[start:start + rows_per_call]
    padded = np.concatenate([images, np.full(rows_per_call - len(images), images[-1])])
    ids = vlm_generate(model, params, prompt_bt, jnp.asarray(pixels_mhwc[padded]), max_new_tokens=max_new_tokens,
                       method=method, temperature=temperature, top_p=top_p, eos_id=eos_id, pad_id=pad_id,
                       key=None if key is None else jax.random.fold_in(key, k))
    out.append(np.asarray(ids)[:len(images)])
  return np.concatenate(out)


def build_records(vocab, solutions: np.ndarray | Sequence[Sequence[int]], image_of_row: Sequence[int],
                  counts_m3: np.ndarray, *, tokens_per_tile: int, length: int, max_steps: int):
  """(grades, records) of solutions: a record per solution with at least one step, else None."""
  grades, records = [], []
  for ids, image in zip(solutions, image_of_row):
    grade = grade_solution(vocab, ids, counts_m3[image])
    steps = split_steps(vocab, ids)
    grades.append(grade)
    records.append(prm_record(vocab, steps, grade.step_correct, tokens_per_tile=tokens_per_tile, length=length,
                              max_steps=max_steps) if steps else None)
  return grades, records


def balance_records(records: list[dict], *, max_ratio: float, seed: int) -> tuple[list[int], dict]:
  """Drops judgements of the majority label from the loss in place; (indices of records that keep any, counts)."""
  labels = np.stack([r["step_labels"] for r in records])
  mask = np.stack([r["step_mask"] for r in records])
  kept = balance_labels(labels, mask, max_ratio=max_ratio, seed=seed)
  for record, row_mask in zip(records, kept):
    record["loss_mask"] = np.zeros_like(record["loss_mask"])
    record["loss_mask"][record["judge_positions"][row_mask != 0]] = 1.0
  count = lambda m, v: int(np.sum((m != 0) & (labels == v)))
  stats = {"plus_steps": count(mask, 1), "minus_steps": count(mask, 0), "plus_supervised": count(kept, 1),
           "minus_supervised": count(kept, 0)}
  return [i for i, row in enumerate(kept) if row.any()], stats


def score_records(model, params, records: Sequence[dict | None], image_of_row: Sequence[int], pixels_mhwc, *,
                  rows_per_call: int, plus_id: int, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """(step scores [R, S], solution scores [R]); a solution without a record (no steps) scores 0."""
  present = [i for i, r in enumerate(records) if r is not None]
  steps_rs, scores_r = np.zeros((len(records), max_steps), np.float32), np.zeros(len(records), np.float32)
  logits_fn = vlm_logits_fn(model)
  score = jax.jit(lambda p, b: score_batch(logits_fn, p, b, plus_id))
  for start in range(0, len(present), rows_per_call):
    rows = present[start:start + rows_per_call]
    padded = rows + [rows[-1]] * (rows_per_call - len(rows))
    batch = stack_examples([{k: records[i][k] for k in ("input_ids", "judge_positions", "step_mask")}
                            for i in padded])
    batch["pixels"] = pixels_mhwc[[image_of_row[i] for i in padded]]
    step_probs, solution = jax.device_get(score(params, jax.tree.map(jnp.asarray, batch)))
    steps_rs[rows], scores_r[rows] = step_probs[:len(rows)], solution[:len(rows)]
  return steps_rs, scores_r


def bon_metrics(grades: list, scores_r: np.ndarray, greedy_grades: list, counts_m3: np.ndarray, n: int) -> dict:
  """Accuracies of the final total: greedy, one sample, majority vote, PRM Best-of-N, oracle Best-of-N; and how
often the PRM scores a right candidate above a wrong one of the same image."""
  num = len(greedy_grades)
  majority = prm = oracle = 0
  ordered, pairs = 0.0, 0
  for i in range(num):
    group, scores = grades[i * n:(i + 1) * n], scores_r[i * n:(i + 1) * n]
    majority += majority_vote([g.answer for g in group]) == NUMBERS[int(np.sum(counts_m3[i]))]
    prm += group[best_of_n(scores)].final_correct
    oracle += any(g.final_correct for g in group)
    right = np.asarray([g.final_correct for g in group])
    gap = scores[right][:, None] - scores[~right][None, :]  # [right, wrong] score differences of one image
    ordered, pairs = ordered + np.sum(gap > 0) + 0.5 * np.sum(gap == 0), pairs + gap.size
  return {"greedy_accuracy": float(np.mean([g.final_correct for g in greedy_grades])),
          "sample_accuracy": float(np.mean([g.final_correct for g in grades])),
          "majority_accuracy": majority / num, "prm_best_of_n_accuracy": prm / num,
          "oracle_best_of_n_accuracy": oracle / num,
          # Over images with right and wrong candidates: (right, wrong) pairs the PRM orders right, ties half.
          "prm_pairwise_accuracy": float(ordered / pairs) if pairs else None}


def step_metrics(records: Sequence[dict | None], steps_rs: np.ndarray, scores_r: np.ndarray, grades: list) -> dict:
  """The PRM as a step classifier ("+" when P("+") > 0.5) on held-out steps, and its mean solution scores."""
  present = [i for i, r in enumerate(records) if r is not None]
  correct = np.asarray([g.final_correct for g in grades])
  scores = {"mean_score_right_solutions": float(np.mean(scores_r[correct])) if correct.any() else None,
            "mean_score_wrong_solutions": float(np.mean(scores_r[~correct])) if (~correct).any() else None}
  if not present:
    return {"prm_step_accuracy": None, "prm_step_accuracy_plus": None,
            "prm_step_accuracy_minus": None, "eval_steps": 0, "eval_minus_steps": 0, **scores}
  mask = np.stack([records[i]["step_mask"] for i in present]) != 0
  labels_rs = np.stack([records[i]["step_labels"] for i in present]) != 0
  predicted_rs = steps_rs[present] > 0.5
  labels, predicted = labels_rs[mask], predicted_rs[mask]
  by_step = [float(np.mean(predicted_rs[mask[:, k], k] == labels_rs[mask[:, k], k])) if mask[:, k].any() else None
             for k in range(mask.shape[1])]
  return {"prm_step_accuracy": float(np.mean(predicted == labels)),
          "prm_step_accuracy_plus": float(np.mean(predicted[labels])) if labels.any() else None,
          "prm_step_accuracy_minus": float(np.mean(~predicted[~labels])) if (~labels).any() else None,
          "prm_step_accuracy_by_step": by_step, "eval_steps": int(labels.size),
          "eval_minus_steps": int(np.sum(~labels)), **scores}


def _fraction(value: float | None) -> str:
  return "n/a" if value is None else f"{value:.3f}"


def bon_table(report: dict) -> str:
  n, t = report["n"], report["temperature"]
  rows = [("greedy", "greedy_accuracy"), (f"one sample (T = {t})", "sample_accuracy"),
          (f"majority vote of {n}", "majority_accuracy"), (f"PRM Best-of-{n}", "prm_best_of_n_accuracy"),
          (f"oracle Best-of-{n} (any of {n} right)", "oracle_best_of_n_accuracy")]
  lines = ["| selection | final total right |", "|---|---|"] + [f"| {name} | {report[k]:.3f} |" for name, k in rows]
  return ("\n".join(lines) + f"\n\n{report['num_eval_images']} held-out images. The PRM orders "
          f"{_fraction(report['prm_pairwise_accuracy'])} of (right, wrong) candidate pairs of an image right. "
          f"PRM step accuracy "
          f"{_fraction(report['prm_step_accuracy'])} on {report['eval_steps']} held-out steps "
          f"({_fraction(report['prm_step_accuracy_plus'])} on \"+\", {_fraction(report['prm_step_accuracy_minus'])} "
          f"on the {report['eval_minus_steps']} \"-\").\n")


def make_prm_data(config: ConfigDict, policy, policy_params, source: CountingSource, layout: dict,
                  key: jax.Array) -> tuple[PrmRecords, dict]:
  """The PRM's training chats: sampled solutions of the images of `source`, plus each image's true one."""
  c, vocab = config.prm, source.vocab
  pixels, counts = images_of(source)
  rows = np.repeat(np.arange(len(source)), c.samples_per_image)
  sampled = generate_rows(policy, policy_params, source.prompt_ids, pixels, rows, method="sample",
                          temperature=c.temperature, top_p=c.top_p, key=key, max_new_tokens=c.max_new_tokens,
                          rows_per_call=c.rows_per_call, eos_id=vocab.im_end_id, pad_id=vocab.pad_id)
  solutions = list(sampled) + [source.answer_ids(image_counts) for image_counts in counts]
  rows = np.concatenate([rows, np.arange(len(source))])
  _, records = build_records(vocab, solutions, rows, counts, **layout)
  present = [i for i, r in enumerate(records) if r is not None]
  keep, stats = balance_records([records[i] for i in present], max_ratio=c.balance_ratio, seed=config.sft.seed)
  stats.update(solutions=len(solutions), without_steps=len(solutions) - len(present),
               over_max_steps=sum(len(split_steps(vocab, s)) > c.max_steps for s in solutions), records=len(keep))
  if not keep:
    raise ValueError(f"no PRM training chats: {stats}")
  return PrmRecords([records[present[i]] for i in keep], [int(rows[present[i]]) for i in keep], pixels), stats


def train_prm(config: ConfigDict, model, policy_params, train_data: PrmRecords, eval_batch: dict | None,
              workdir: pathlib.Path, stop_requested: Callable[[], bool]) -> LoopResult:
  """The PRM, started from the policy's weights, trained on the judgement positions in workdir/prm."""
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  shardings = {f: batch_sharding(mesh, rules, 5 if f == "pixels" else 2) for f in _FIELDS}

  def loss_fn(params, batch, rng):
    del rng
    pixels = batch["pixels"].reshape(-1, *batch["pixels"].shape[2:])  # [B, 1, t, t, 3] -> [B, t, t, 3]
    logits, _ = model.apply({"params": params}, batch["input_ids"], pixels)
    # Every judgement weighs the same; token_accuracy is the judgement accuracy (argmax over the vocabulary).
    return sft_loss(logits, batch["targets"], batch["loss_mask"], weighting="token")

  with jax.set_mesh(mesh), axis_rules(rules):
    first = stack_examples([train_data[0]])
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    variables, _ = init_sharded(model.init, init_rng, jnp.asarray(first["input_ids"]),
                                jnp.asarray(first["pixels"][:, 0]), mesh=mesh, rules=rules)
    # The PRM starts from the policy, as VisualPRM starts from InternVL.
    params = jax.tree.map(lambda target, value: jax.device_put(value, target.sharding), variables["params"],
                          policy_params)
    optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(params)
    train_step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state),
                                 batch_shardings=shardings)
    evaluate = None
    if eval_batch is not None:
      evaluate = jax.jit(lambda p: loss_fn(p, jax.tree.map(jnp.asarray, eval_batch), None)[1])
    batches = build_batches(train_data, global_batch_size=config.prm.global_batch_size, seed=config.sft.seed,
                            prefetch_threads=config.prm.prefetch_threads, map_fn=lambda r: {f: r[f] for f in _FIELDS})
    (workdir / "prm").mkdir(parents=True, exist_ok=True)
    return run_train_loop(state, config, workdir / "prm", train_step=train_step, batches=batches,
                          to_device=lambda x: make_global_batch(x, shardings["input_ids"]), rng=train_rng,
                          evaluate=evaluate, stop_requested=stop_requested)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  record_config(config, workdir)
  seconds = {}
  tick = time.perf_counter()
  (workdir / "sft").mkdir(parents=True, exist_ok=True)
  sft_result = vlm_sft.run(config.sft, workdir / "sft", stop_requested=stop_requested)
  if sft_result.status != "completed":
    return sft_result
  policy_params = jax.device_get(sft_result.state.params)
  seconds["sft"] = time.perf_counter() - tick

  c, b, seed = config.prm, config.bon, config.sft.seed
  train_source = vlm_sft.task_source(config.sft, seed=seed + STAGE_SEED_OFFSETS["prm"], length=c.num_images)
  eval_source = vlm_sft.task_source(config.sft, seed=seed + STAGE_SEED_OFFSETS["eval"], length=b.num_eval)
  vocab = eval_source.vocab
  tokens_per_tile = eval_source.prompt_ids.count(vocab.image_token_id)
  policy = InternVLModel(vlm_sft.model_config_from(config.sft, len(vocab), vocab.image_token_id,
                                                   len(eval_source[0]["input_ids"])))
  length = prm_length(vocab, max_steps=c.max_steps, max_step_tokens=c.max_new_tokens, tokens_per_tile=tokens_per_tile)
  # Same parameters as the policy; only the accepted sequence length differs (RoPE has no table).
  prm_model = InternVLModel(vlm_sft.model_config_from(config.sft, len(vocab), vocab.image_token_id, length))
  layout = dict(tokens_per_tile=tokens_per_tile, length=length, max_steps=c.max_steps)
  key = jax.random.key(seed + STAGE_SEED_OFFSETS["prm"])

  tick = time.perf_counter()
  train_data, data_stats = make_prm_data(config, policy, policy_params, train_source, layout,
                                         jax.random.fold_in(key, 0))
  log.info("PRM data: %s", data_stats)
  # Held-out solutions: greedy, and bon.n samples per image.
  sample = dict(rows_per_call=c.rows_per_call, eos_id=vocab.im_end_id, pad_id=vocab.pad_id,
                max_new_tokens=c.max_new_tokens)
  eval_pixels, eval_counts = images_of(eval_source)
  greedy = generate_rows(policy, policy_params, eval_source.prompt_ids, eval_pixels, np.arange(b.num_eval), **sample)
  greedy_grades = [grade_solution(vocab, ids, counts) for ids, counts in zip(greedy, eval_counts)]
  eval_rows = np.repeat(np.arange(b.num_eval), b.n)
  candidates = generate_rows(policy, policy_params, eval_source.prompt_ids, eval_pixels, eval_rows, method="sample",
                             temperature=b.temperature, top_p=b.top_p, key=jax.random.fold_in(key, 1), **sample)
  eval_grades, eval_records = build_records(vocab, candidates, eval_rows, eval_counts, **layout)
  seconds["sampling"] = time.perf_counter() - tick

  tick = time.perf_counter()
  held_out = [i for i, r in enumerate(eval_records) if r is not None][:c.num_eval_records]
  eval_data = PrmRecords(eval_records, eval_rows, eval_pixels)
  eval_batch = stack_examples([{f: eval_data[i][f] for f in _FIELDS} for i in held_out]) if held_out else None
  result = train_prm(config, prm_model, policy_params, train_data, eval_batch, workdir, stop_requested)
  if result.status != "completed":
    return result
  prm_params = jax.device_get(result.state.params)
  seconds["prm_training"] = time.perf_counter() - tick

  tick = time.perf_counter()
  steps_rs, scores_r = score_records(prm_model, prm_params, eval_records, eval_rows, eval_pixels,
                                     rows_per_call=c.rows_per_call, plus_id=vocab.ids[PLUS], max_steps=c.max_steps)
  seconds["scoring"] = time.perf_counter() - tick
  report = {"n": b.n, "temperature": b.temperature, "top_p": b.top_p, "num_eval_images": b.num_eval,
            **bon_metrics(eval_grades, scores_r, greedy_grades, eval_counts, b.n),
            **step_metrics(eval_records, steps_rs, scores_r, eval_grades),
            "sft_answer_accuracy": sft_result.last_eval_metrics.get("answer_accuracy"),
            "prm_data": data_stats, "prm_step": result.final_step,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}
  if jax.process_index() == 0:
    files.write_text(workdir / "bon.json", json.dumps(report, indent=2) + "\n")
    files.write_text(workdir / "bon.md", bon_table(report))
  log.info("Best-of-%d on %d held-out images: greedy %.3f, majority %.3f, PRM %.3f, oracle %.3f", b.n, b.num_eval,
           report["greedy_accuracy"], report["majority_accuracy"], report["prm_best_of_n_accuracy"],
           report["oracle_best_of_n_accuracy"])
  result.last_eval_metrics.update({f"bon/{k}": float(report[k]) for k in (
      "greedy_accuracy", "sample_accuracy", "majority_accuracy", "prm_best_of_n_accuracy", "oracle_best_of_n_accuracy",
      "prm_step_accuracy") if report[k] is not None})
  return result
