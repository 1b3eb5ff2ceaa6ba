"""Trains a mixture-of-experts decoder LM on the Shakespeare plays (configs/moe_lm.py).

Outputs in the workdir, besides checkpoints and metrics:
  model/       the trained model in Hugging Face format (config.json, model.safetensors) plus
               tokenizer.json: what `configs/mxmoe_quantize.py --config.model=W/model` reads;
  perplexity.json  sliding-window perplexity on the held-out plays.
"""

import json
import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.data.text import TokenWindows, prepare_shakespeare, save_tokenizer
from jaxlab.eval import sliding_window_perplexity
from jaxlab.moe.models import MoEDecoderLM, MoELMConfig, save_pretrained
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step, masked_cross_entropy
from launch.tasks.common import optimizer_from_config, process_share, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)


def model_config_from(config: ConfigDict, vocab_size: int) -> MoELMConfig:
  return MoELMConfig(vocab_size=vocab_size, **config.model.to_dict())


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Batches that the mesh splits must divide over it (called by launch.run before the run)."""
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  require_batch_divisible(config, "data.num_eval_windows", mesh_sizes)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  d = config.data
  corpus = prepare_shakespeare(
      vocab_size=d.vocab_size, validation=tuple(d.validation_plays), tokenizer_path=workdir / "tokenizer.json"
  )
  log.info("Corpus: %d train tokens (%d plays), %d validation tokens (%s).", corpus.train_tokens.size,
           len(corpus.train_documents), corpus.validation_tokens.size, ", ".join(corpus.validation_documents))
  num_windows = config.train.num_steps * d.global_batch_size
  train_source = TokenWindows(corpus.train_tokens, d.seq_len, seed=config.seed, num_windows=num_windows)
  eval_source = TokenWindows(corpus.validation_tokens, d.seq_len, num_windows=d.num_eval_windows)
  batches = build_batches(train_source, global_batch_size=d.global_batch_size, seed=config.seed,
                          prefetch_threads=d.prefetch_threads)

  model_config = model_config_from(config, corpus.vocab_size)
  model = MoEDecoderLM(model_config)
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  tokens_sharding = batch_sharding(mesh, rules, ndim=2)
  aux_weight = model_config.router_aux_loss_coef

  def loss_fn(params, batch, rng):
    del rng  # no dropout
    logits_btv, aux = model.apply({"params": params}, batch["inputs"])
    loss, metrics = masked_cross_entropy(logits_btv, batch["targets"], batch["loss_mask"])
    metrics = dict(metrics, load_balancing_loss=aux.load_balancing_loss, perplexity=jnp.exp(loss))
    return loss + aux_weight * aux.load_balancing_loss, metrics

  with jax.set_mesh(mesh), axis_rules(rules):
    dummy = jnp.zeros((1, d.seq_len), jnp.int32)
    variables, _ = init_sharded(model.init, init_rng, dummy, mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_train_step(loss_fn, optimizer, state_shardings=state_shardings, batch_shardings=tokens_sharding)
    eval_batch = make_global_batch(stack_examples([eval_source[i] for i in process_share(len(eval_source))]), tokens_sharding)

    @jax.jit
    def eval_step(params, batch):
      logits_btv, _ = model.apply({"params": params}, batch["inputs"])
      _, metrics = masked_cross_entropy(logits_btv, batch["targets"], batch["loss_mask"])
      return dict(metrics, perplexity=jnp.exp(metrics["loss"]))

    result = run_train_loop(
        state, config, workdir, train_step=train_step, batches=batches,
        to_device=lambda b: make_global_batch(b, tokens_sharding), rng=train_rng,
        evaluate=lambda params: eval_step(params, eval_batch), stop_requested=stop_requested,
    )
    if result.status != "completed":
      return result

    params = jax.device_get(result.state.params)
    logits_fn = jax.jit(lambda tokens_bt: model.apply({"params": params}, tokens_bt)[0])
    e = config.evaluation
    tokens = np.asarray(corpus.validation_tokens)[: e.max_tokens or None]
    ppl = sliding_window_perplexity(logits_fn, tokens, context=d.seq_len,
                                    stride=e.stride, batch_size=e.batch_size)
  report = {"validation_plays": list(corpus.validation_documents), "perplexity": float(ppl.perplexity),
            "num_tokens": int(ppl.num_tokens), "context": d.seq_len, "stride": e.stride, "step": result.final_step}
  files.write_text(workdir / "perplexity.json", json.dumps(report, indent=2) + "\n")
  log.info("Validation perplexity (sliding window, context %d, stride %d): %.2f over %d tokens.", d.seq_len,
           e.stride, ppl.perplexity, ppl.num_tokens)
  if jax.process_index() == 0:
    model_dir = workdir / "model"
    save_pretrained(params, model_config, model_dir, overwrite=True)
    save_tokenizer(corpus.tokenizer, model_dir / "tokenizer.json")
    log.info("Wrote the trained model (Hugging Face format) and tokenizer to %s.", model_dir)
  result.last_eval_metrics["sliding_window_perplexity"] = float(ppl.perplexity)
  return result
