"""MM-IFEngine's DPO at small scale (configs/mmif_dpo.py): SFT, MM-IFDPO pairs under each rejection variant, DPO.

Stages, each in its own folder of the workdir (a rerun resumes or reuses what is there):

  sft/                 `launch.tasks.mmif_sft` (`config.sft`): data, vocabulary, SFT, its evaluation
  pairs/<variant>.jsonl  for `pairs.num_prompts` training items: chosen = the item's response (it meets
                       >= 80 % of the constraints), rejected = the SFT model's greedy answer to the
                       degraded prompt (`jaxlab.mmif.dpo_pairs`: drop 1/3, 2/3 or all constraints, or
                       the image); `jaxlab.posttrain`'s pair layout
  <variant>/           sigmoid DPO from the SFT weights with the SFT model as the frozen reference

and `results.json` / `results.md`: the rule-checked C-Level on the held-out items of the SFT model and
of each DPO model, with per-sub-type pass rates; `sft/eval/<variant>.jsonl` the predictions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.mmif.dpo_pairs import VARIANTS, degrade, make_pairs
from jaxlab.mmif.sft_source import image_path
from jaxlab.posttrain import (MpoWeights, PreferencePairSource, PreferenceTrainState, ReferencePolicy, SingleTileLoader,
                              make_preference_step, vlm_logits_fn, write_pairs)
from jaxlab.sharding import axis_rules, batch_sharding, logical_rules, make_mesh
from jaxlab.train import LoopResult
from launch.tasks import mmif_sft
from launch.tasks.common import optimizer_from_config, run_train_loop
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  mmif_sft.check_config(config.sft, mesh_sizes)
  require_batch_divisible(config, "posttrain.global_batch_size", mesh_sizes)
  unknown = [v for v in config.posttrain.variants if v not in VARIANTS]
  if unknown or not config.posttrain.variants:
    raise ValueError(f"config.posttrain.variants must be a non-empty subset of {VARIANTS}, got "
                     f"{tuple(config.posttrain.variants)}")


def make_variant_pairs(config: ConfigDict, variant: str, items, data: mmif_sft.MmifData, answer,
                       out_dir: pathlib.Path) -> tuple[pathlib.Path, dict]:
  """pairs/<variant>.jsonl (reused when there) and its report."""
  path = out_dir / f"{variant}.jsonl"
  report_path = out_dir / f"{variant}.report.json"
  if path.exists() and report_path.exists():
    return path, json.loads(report_path.read_text())
  degraded = [degrade(item, variant, np.random.default_rng((config.seed, i, VARIANTS.index(variant))))
              for i, item in enumerate(items)]
  rejected = answer([(d.prompt, image_path(item, data.train_root) if d.with_image else None)
                     for d, item in zip(degraded, items)])
  records, report = make_pairs(items, degraded, rejected, variant,
                               skip_rejected_meeting_all=config.pairs.skip_rejected_meeting_all)
  for record in records:  # Image paths relative to the pairs file, as the pair layout reads them.
    record["image"] = os.path.relpath(image_path_of(record, data), out_dir)
  summary = dataclasses.asdict(report)
  if not records:
    raise ValueError(f"no preference pairs for {variant}: {summary}")
  if jax.process_index() == 0:
    write_pairs(path, records)
    files.write_text(report_path, json.dumps(summary, indent=2) + "\n")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"jaxlab_mmif_pairs_{variant}")
  return path, summary


def image_path_of(record: dict, data: mmif_sft.MmifData) -> str:
  path = pathlib.Path(record["image"])
  return str(path if path.is_absolute() else data.train_root / path)


def variant_config(config: ConfigDict, variant: str) -> ConfigDict:
  """The ConfigDict `run_train_loop` reads for one DPO run."""
  c = ConfigDict(config.to_dict())
  c.variant = variant
  return c


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  sft_dir = workdir / "sft"
  sft_result = mmif_sft.run(config.sft, sft_dir, stop_requested=stop_requested)
  if sft_result.status != "completed":
    return sft_result
  sft_config = config.sft
  data = mmif_sft.build_data(sft_config, sft_dir)
  vocab = mmif_sft.load_vocab(data, sft_dir)
  tokenizer = mmif_sft.make_tokenizer(sft_config, vocab)
  model = mmif_sft.make_model(sft_config, vocab)
  logits_fn = vlm_logits_fn(model)
  sft_params = sft_result.state.params
  results = json.loads((sft_dir / "results.json").read_text())
  items = mmif_sft.kept_items(data.train)[:config.pairs.num_prompts]
  answer = mmif_sft.responder(sft_config, model, jax.device_get(sft_params), vocab)
  pairs_dir = workdir / "pairs"
  pairs_dir.mkdir(parents=True, exist_ok=True)
  mesh = make_mesh(dict(sft_config.mesh))
  rules = logical_rules(tuple(sft_config.sharding.presets))
  result = sft_result
  results["pairs"] = {}
  for variant in config.posttrain.variants:
    path, report = make_variant_pairs(config, variant, items, data, answer, pairs_dir)
    source = PreferencePairSource(path, tokenizer, SingleTileLoader(sft_config.data.tile_size),
                                  config.pairs.max_length, on_bad="drop")
    results["pairs"][variant] = dict(report, trained=len(source), dropped=source.drop_report.dropped)
    c = variant_config(config, variant)
    with jax.set_mesh(mesh), axis_rules(rules):
      rows = batch_sharding(mesh, rules, 2)
      reference = ReferencePolicy(logits_fn, sft_params)
      optimizer = optimizer_from_config(c.optimizer, c.train.num_steps)
      state = jax.jit(lambda p: PreferenceTrainState.create(p, optimizer))(jax.tree.map(jnp.copy, sft_params))
      step = make_preference_step(logits_fn, optimizer, weights=MpoWeights(1.0, 0.0, 0.0, beta=c.posttrain.beta),
                                  state_shardings=jax.tree.map(lambda x: x.sharding, state))
      batches = build_batches(source, global_batch_size=c.posttrain.global_batch_size, seed=c.seed,
                              prefetch_threads=c.posttrain.prefetch_threads)
      result = run_train_loop(state, c, workdir / variant, train_step=step, batches=batches,
                              to_device=lambda b: reference.with_pair_logprobs(make_global_batch(b, rows)),
                              rng=jax.random.key(c.seed), evaluate=None, stop_requested=stop_requested)
    if result.status != "completed":
      return result
    results[variant] = mmif_sft.evaluate(sft_config, variant, model, jax.device_get(result.state.params), vocab,
                                         data, sft_dir)
    results[variant]["train"] = {k: v for k, v in result.last_train_metrics.items() if k.startswith("train/")}
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", mmif_sft.results_table(results, ("sft", *config.posttrain.variants))
                     + f"\npairs: {results['pairs']}\n")
  result.last_eval_metrics.update({f"{m}/c_level": results[m]["c_level"] for m in ("sft", *config.posttrain.variants)})
  return result
