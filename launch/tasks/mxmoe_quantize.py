"""MxMoE post-training quantization of a trained MoE LM, against uniform RTN and GPTQ baselines.

Reads the model (`config.model`: a Hugging Face-format folder with tokenizer.json, e.g. the
`model/` folder `configs/moe_lm.py` writes), calibrates on training text, and for every
budget builds uniform RTN, uniform GPTQ and MxMoE assignments, quantizes, and evaluates
perplexity on the held-out plays and greedy continuations against the float model. Writes:

  assignments/<name>.json   per-block schemes (the MxMoE ones with their layer statistics)
  quantized/<name>/         the quantized params of each MxMoE model (`load_quantized`)
  results.json, report.md   the table; ppl_vs_bits.png the plot
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
from collections.abc import Callable

import jax
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data.text import TokenWindows, load_tokenizer, prepare_shakespeare
from jaxlab.eval import distinct_n, greedy_generate, prefix_agreement, sliding_window_perplexity
from jaxlab.moe.models import MoEDecoderLM, load_pretrained
from jaxlab.mxmoe import assignment as assignment_lib
from jaxlab.mxmoe import pipeline
from jaxlab.mxmoe.assignment import save_assignment
from jaxlab.mxmoe.checkpoint import save_quantized
from jaxlab.mxmoe.cost import block_times, load_cost_model
from jaxlab.mxmoe.rotation import rotate_moe_lm
from jaxlab.quant_formats.scheme import parse_scheme
from jaxlab.train import LoopResult
from launch.config_loader import ConfigError
from launch.tasks.common import record_config
from launch.tasks.mxmoe_report import write_report

log = logging.getLogger(__name__)


def _model_throughput(config, calib, assignment, cost_model, batch_tokens: int) -> float:
  """Estimated MoE-block time (seconds) of the whole model's experts for a batch, from the cost model."""
  total = 0.0
  for i in pipeline.moe_layers(config):
    blocks = pipeline.layer_blocks(config, calib, i, batch_tokens)
    schemes = assignment_lib.layer_schemes(assignment, i)
    for block in blocks:
      name = schemes[block.kind][block.expert]
      total += block_times(cost_model, [block], [name])[0][0]
  return total


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """The model folder must be given and exist, and the agreement length fit the generated tokens (called by launch.run before the run)."""
  del mesh_sizes
  if not config.model:
    raise ConfigError("model is required: --config.model=DIR, a Hugging Face-format folder with tokenizer.json")
  if not pathlib.Path(config.model).expanduser().is_dir():
    raise ConfigError(f"model={config.model!r} is not a folder: give --config.model=DIR, a Hugging Face-format folder")
  e = config.evaluation
  if not 1 <= e.agreement_k <= e.new_tokens:
    raise ConfigError(f"evaluation.agreement_k={e.agreement_k} must lie in [1, evaluation.new_tokens={e.new_tokens}] "
                      f"(it compares the first k generated tokens): use --config.evaluation.agreement_k="
                      f"{max(1, min(e.agreement_k, e.new_tokens))}")


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  del stop_requested  # Each step is short; a stopped run is simply run again.
  started = time.time()
  if not config.model:
    raise ConfigError("config.model is required: --config.model=DIR, a Hugging Face-format folder with tokenizer.json")
  record_config(config, workdir)  # nothing here restores a checkpoint, so nothing to check first
  model_dir = pathlib.Path(config.model)
  if not model_dir.is_dir():
    raise FileNotFoundError(
        f"config.model={config.model!r} is not a folder; models load from disk only (no hub downloads): "
        "pass the folder configs/moe_lm.py writes (WORKDIR/model) or a downloaded checkpoint")
  model_config, params = load_pretrained(model_dir)
  model_config = dataclasses.replace(model_config, moe_implementation=config.moe_implementation or None)
  tokenizer_path = model_dir / "tokenizer.json"
  if not tokenizer_path.is_file():
    raise FileNotFoundError(f"{tokenizer_path} is missing: the model folder must hold the tokenizer it was trained with")
  d = config.data
  corpus = prepare_shakespeare(vocab_size=load_tokenizer(tokenizer_path).get_vocab_size(),
                               validation=tuple(d.validation_plays), tokenizer_path=tokenizer_path)
  if config.rotate:
    params = rotate_moe_lm(model_config, params, jax.random.key(config.seed))
    model_config = dataclasses.replace(model_config, tie_word_embeddings=False)
  model = MoEDecoderLM(model_config)

  calib_windows = TokenWindows(corpus.train_tokens, d.calibration_seq_len, seed=config.seed,
                               num_windows=d.calibration_sequences)
  calib_tokens = np.stack([calib_windows[i]["inputs"] for i in range(len(calib_windows))])
  calib = pipeline.calibrate(model_config, params, calib_tokens)
  log.info("Calibrated on %d sequences of %d tokens.", *calib_tokens.shape)
  cost_model = load_cost_model(config.cost.device_kind, config.cost.table_dir or None)

  e = config.evaluation
  val_tokens = np.asarray(corpus.validation_tokens)[: e.max_tokens or None]
  prompts_end = (e.num_prompts - 1) * e.prompt_stride + e.prompt_len
  if prompts_end > len(val_tokens):
    raise ValueError(
        f"evaluation.num_prompts={e.num_prompts} prompts of evaluation.prompt_len={e.prompt_len} every "
        f"evaluation.prompt_stride={e.prompt_stride} tokens need {prompts_end} validation tokens; there are "
        f"{len(val_tokens)} (evaluation.max_tokens={e.max_tokens}): lower evaluation.prompt_stride to at most "
        f"{max(0, (len(val_tokens) - e.prompt_len) // max(1, e.num_prompts - 1))}")
  prompts = np.stack([val_tokens[i * e.prompt_stride:i * e.prompt_stride + e.prompt_len] for i in range(e.num_prompts)])

  def evaluate(p):
    logits_fn = jax.jit(lambda tokens_bt: model.apply({"params": p}, tokens_bt)[0])
    ppl = sliding_window_perplexity(logits_fn, val_tokens, context=e.context, stride=e.stride, batch_size=e.batch_size)
    continuation = np.asarray(greedy_generate(logits_fn, prompts, e.new_tokens))
    return float(ppl.perplexity), continuation

  float_ppl, float_continuation = evaluate(params)
  rows = [{"name": "float", "method": "float", "bits": 16.0, "perplexity": float_ppl, "weight_only": True, "distinct_2": distinct_n(
      float_continuation.tolist(), 2), "agreement_prefix": float(e.new_tokens), "agreement_first_k": 1.0}]
  log.info("float: perplexity %.3f", float_ppl)
  assignments_dir, quantized_dir = workdir / "assignments", workdir / "quantized"
  assignments_dir.mkdir(parents=True, exist_ok=True)

  bf16 = pipeline.uniform_assignment(model_config, "bf16")
  bf16_times = {batch: _model_throughput(model_config, calib, bf16, cost_model, batch)
                for batch in config.cost.batch_tokens}

  def record(name, method, assignment, q_params):
    ppl, continuation = evaluate(q_params)
    agreements = [prefix_agreement(a.tolist(), b.tolist(), k=e.agreement_k)
                  for a, b in zip(continuation, float_continuation)]
    row = {
        "name": name, "method": method, "bits": pipeline.average_bits(assignment, model_config), "perplexity": ppl,
        "weight_only": all(parse_scheme(s).a_bits == 16 for s in assignment["menu"]),
        "distinct_2": distinct_n(continuation.tolist(), 2),
        "agreement_prefix": float(np.mean([a.prefix_len for a in agreements])),
        "agreement_first_k": float(np.mean([a.match_fraction for a in agreements])),
    }
    for batch, bf16_seconds in bf16_times.items():
      seconds = _model_throughput(model_config, calib, assignment, cost_model, batch)
      row[f"speedup_vs_bf16_at_{batch}"] = bf16_seconds / seconds if seconds else None
    rows.append(row)
    save_assignment(assignments_dir / f"{name}.json", assignment)
    log.info("%s: %.3f bits, perplexity %.3f", name, row["bits"], ppl)
    return row

  for budget in config.budgets:
    scheme = budget.uniform_scheme
    uniform = pipeline.uniform_assignment(model_config, scheme)
    record(f"rtn_{scheme}", "RTN", uniform, pipeline.quantize_model(model_config, params, None, uniform, method="rtn"))
    record(f"gptq_{scheme}", "GPTQ", uniform, pipeline.quantize_model(model_config, params, calib, uniform))
    assignment = pipeline.mxmoe_assignment(
        model_config, params, calib, menu=tuple(budget.menu), avg_bits=budget.avg_bits, r=budget.r,
        cost_model=cost_model, batch_tokens=budget.batch_tokens,
    )
    q_params = pipeline.quantize_model(model_config, params, calib, assignment)
    name = f"mxmoe_{budget.avg_bits:g}bits_r{budget.r:g}"
    record(name, "MxMoE", assignment, q_params)
    save_quantized(quantized_dir / name, jax.device_get(q_params), assignment=assignment, overwrite=True,
                   extra={"model": str(model_dir), "rotated": bool(config.rotate)})

  results = {"model": str(model_dir), "cost_source": cost_model.source, "rotate": bool(config.rotate),
             "calibration": list(calib_tokens.shape), "evaluation": e.to_dict(), "rows": rows,
             "seconds": time.time() - started}
  # Python's JSON, not strict: a diverged model's infinite perplexity is a result worth keeping.
  files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
  write_report(workdir, results)
  final = {f"perplexity/{row['name']}": row["perplexity"] for row in rows}
  return LoopResult(state=None, status="completed", start_step=0, final_step=0, last_train_metrics={},
                    last_eval_metrics=final)
