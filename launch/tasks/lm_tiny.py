"""Trains the decoder-only LM on the synthetic sorting task (configs/lm_tiny.py)."""

import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from jaxlab.data import build_batches, make_global_batch
from jaxlab.data.sorting import SortingSource
from jaxlab.models import DecoderLM, DecoderLMConfig
from jaxlab.sharding import assert_params_sharded, axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step, masked_cross_entropy
from launch.tasks.common import optimizer_from_config, process_share, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Batches that the mesh splits must divide over it (called by launch.run before the run)."""
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  require_batch_divisible(config, "data.num_eval_examples", mesh_sizes)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  log.info("Mesh %s over %d devices (%d processes).", dict(mesh.shape), mesh.size, jax.process_count())

  d = config.data
  train_source = SortingSource(d.num_train_examples, d.length, d.num_symbols, seed=config.seed)
  eval_source = SortingSource(d.num_eval_examples, d.length, d.num_symbols, seed=config.seed + 1_000_003)
  batches = build_batches(train_source, global_batch_size=d.global_batch_size, seed=config.seed, prefetch_threads=d.prefetch_threads)

  model = DecoderLM(DecoderLMConfig(vocab_size=train_source.vocab_size, **config.model))
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  root_rng = jax.random.key(config.seed)
  init_rng, train_rng = jax.random.split(root_rng)
  batch_sharding_ = batch_sharding(mesh, rules, ndim=2)

  def loss_fn(params, batch, rng):
    del rng  # the model has no dropout
    logits_btv = model.apply({"params": params}, batch["inputs"])
    return masked_cross_entropy(logits_btv, batch["targets"], batch["loss_mask"])

  with jax.set_mesh(mesh), axis_rules(rules):
    dummy_ids = jnp.zeros((1, train_source.seq_len), jnp.int32)
    variables, variable_shardings = init_sharded(model.init, init_rng, dummy_ids, mesh=mesh, rules=rules)
    params = variables["params"]
    assert_params_sharded(params, min_size=config.sharding.min_sharded_size)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(params)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_train_step(loss_fn, optimizer, state_shardings=state_shardings, batch_shardings=batch_sharding_)

    eval_batch = make_global_batch(stack_examples([eval_source[i] for i in process_share(len(eval_source))]), batch_sharding_)

    @jax.jit
    def eval_step(params, batch):
      logits_btv = model.apply({"params": params}, batch["inputs"])
      return masked_cross_entropy(logits_btv, batch["targets"], batch["loss_mask"])[1]

    # The batch is an argument, not a closed-over constant: it spans every process's devices.
    evaluate = lambda params: eval_step(params, eval_batch)

    return run_train_loop(
        state, config, workdir, train_step=train_step, batches=batches,
        to_device=lambda b: make_global_batch(b, batch_sharding_), rng=train_rng, evaluate=evaluate,
        stop_requested=stop_requested,
    )
