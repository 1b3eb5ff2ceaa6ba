"""Supervised fine-tuning of a tiny InternVL-style VLM on the synthetic shapes task (configs/vlm_sft.py).

Outputs in the workdir, besides checkpoints and metrics: `accuracy.json` (exact-answer accuracy of
greedy generation on held-out records, with a few decoded examples).
"""

import json
import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.vlm.counting_task import CountingSource
from jaxlab.vlm.shapes_task import ShapesSource
from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.posttrain import ChatPairTokenizer
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm import generate as vlm_generate
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.model import InternVLModel
from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.sft_loss import WEIGHTINGS, sft_loss
from jaxlab.vlm.vision import InternVisionConfig
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

_FIELDS = ("input_ids", "targets", "loss_mask", "pixels")
TASKS = ("shapes", "counting")


def model_config_from(config: ConfigDict, vocab_size: int, image_token_id: int, seq_len: int) -> InternVLConfig:
  m, t = config.model, config.data.tile_size
  vision = InternVisionConfig(hidden_size=m.vision_hidden, num_hidden_layers=m.vision_layers,
                              num_attention_heads=m.vision_heads, intermediate_size=4 * m.vision_hidden,
                              attention_bias=True, image_size=(t, t), patch_size=(m.patch_size, m.patch_size))
  text = Qwen2Config(vocab_size=vocab_size, hidden_size=m.lm_hidden, intermediate_size=4 * m.lm_hidden,
                     num_hidden_layers=m.lm_layers, num_attention_heads=m.lm_heads, num_key_value_heads=m.lm_kv_heads,
                     max_position_embeddings=max(64, 2 * seq_len))
  projector = ProjectorConfig(m.vision_hidden, m.lm_hidden, downsample_ratio=m.downsample_ratio)
  return InternVLConfig(vision=vision, projector=projector, text=text, image_token_id=image_token_id,
                        image_seq_length=1)


def tokens_per_tile(config: ConfigDict) -> int:
  """Image tokens one `config.data.tile_size` tile becomes (patch grid after the pixel shuffle)."""
  k = round(1 / config.model.downsample_ratio)
  return (config.data.tile_size // config.model.patch_size // k) ** 2


def piece_tokenizer(config: ConfigDict, vocab) -> ChatPairTokenizer:
  """ChatML prompts and responses encoded by a `jaxlab.vlm.piece_vocab.PieceVocab` (or a subclass)."""
  return ChatPairTokenizer(vocab.encode, eos_id=vocab.im_end_id, pad_id=vocab.pad_id,
                           tokens_per_tile=tokens_per_tile(config))


def piece_model(config: ConfigDict, vocab) -> InternVLModel:
  """The config's VLM over a piece vocabulary, with room for `data.max_length` + `evaluation.max_new_tokens`."""
  seq_len = config.data.max_length + config.evaluation.max_new_tokens
  return InternVLModel(model_config_from(config, len(vocab), vocab.image_token_id, seq_len))


def with_frozen_vision(optimizer: optax.GradientTransformation, freeze: bool) -> optax.GradientTransformation:
  """The optimizer, with zero updates (and no optimizer state) for the vision tower when `freeze`."""
  if not freeze:
    return optimizer
  labels = lambda params: {k: ("frozen" if k == "vision_tower" else "train") for k in params}
  return optax.multi_transform({"train": optimizer, "frozen": optax.set_to_zero()}, labels)


def v2pe_deltas(config: ConfigDict) -> tuple[float | str | None, float | None]:
  """(train, eval) `ShapesSource.v2pe_delta` of `config.data.v2pe`: "off", or "sample" (a delta per
  image in training, `config.data.v2pe_eval_delta` at evaluation)."""
  mode = config.data.v2pe
  if mode == "off":
    return None, None
  if mode != "sample":
    raise ValueError(f"config.data.v2pe must be 'off' or 'sample', got {mode!r}")
  return "sample", float(config.data.v2pe_eval_delta)


def answer_accuracy(model, params, source: ShapesSource, indices, *, batch_size: int = 32) -> dict:
  """Greedy answers to the prompts of `source[indices]`; exact match of the answer words up to `<|im_end|>`.

  Records with V2PE positions are decoded from those positions."""
  vocab, p = source.vocab, source.prompt_length
  hits, examples = 0, []
  for start in range(0, len(indices), batch_size):
    batch = stack_examples([source[i] for i in indices[start:start + batch_size]])
    prompt_bt = jnp.asarray(batch["input_ids"][:, :p])
    pixels = jnp.asarray(batch["pixels"].reshape(-1, *batch["pixels"].shape[2:]))
    expected = [list(row[p - 1:]) for row in batch["targets"]]  # The answer's ids, <|im_end|> included.
    positions = jnp.asarray(batch["positions"][:, :p]) if "positions" in batch else None
    out = np.asarray(vlm_generate(model, params, prompt_bt, pixels, max_new_tokens=max(map(len, expected)),
                                  eos_id=vocab.im_end_id, pad_id=vocab.pad_id, positions_bt=positions))
    for row, want in zip(out, expected):
      got = list(row[:len(want)])
      hits += got == want
      if len(examples) < 8:
        examples.append({"expected": vocab.decode(want), "generated": vocab.decode(row)})
  return {"answer_accuracy": hits / len(indices), "num_examples": len(indices), "examples": examples}


def task_source(config: ConfigDict, *, seed: int, length: int, v2pe_delta=None) -> ShapesSource | CountingSource:
  """The records of `config.data.task`: "shapes" (one shape: colour and kind) or "counting" (1 to
  `data.max_shapes` shapes: per-colour counts and the total, `jaxlab.vlm.counting_task`)."""
  d = config.data
  k = round(1 / config.model.downsample_ratio)
  tokens_per_tile = (d.tile_size // config.model.patch_size // k) ** 2
  task = d.get("task", "shapes")
  if task == "shapes":
    return ShapesSource(d.tile_size, tokens_per_tile=tokens_per_tile, min_fraction=d.min_fraction,
                        max_fraction=d.max_fraction, seed=seed, length=length, v2pe_delta=v2pe_delta)
  if task != "counting":
    raise ValueError(f"config.data.task must be one of {TASKS}, got {task!r}")
  if v2pe_delta is not None:
    raise ValueError("config.data.v2pe applies to the shapes task only; set it to 'off' for task='counting'")
  return CountingSource(d.tile_size, tokens_per_tile=tokens_per_tile, max_shapes=d.max_shapes,
                        min_fraction=d.min_fraction, max_fraction=d.max_fraction, seed=seed, length=length)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Batches that the mesh splits must divide over it (called by launch.run before the run)."""
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  if config.loss.weighting not in WEIGHTINGS:
    raise ValueError(f"config.loss.weighting={config.loss.weighting!r} is not one of {WEIGHTINGS}")
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  d = config.data
  train_delta, eval_delta = v2pe_deltas(config)
  fields = _FIELDS + (("positions",) if train_delta else ())
  train_source = task_source(config, seed=config.seed, length=config.train.num_steps * d.global_batch_size,
                             v2pe_delta=train_delta)
  eval_source = task_source(config, seed=config.seed + 1, length=d.num_eval, v2pe_delta=eval_delta)
  batches = build_batches(train_source, global_batch_size=d.global_batch_size, seed=config.seed,
                          prefetch_threads=d.prefetch_threads, map_fn=lambda r: {f: r[f] for f in fields})

  vocab = train_source.vocab
  seq_len = len(train_source[0]["input_ids"])
  model_config = model_config_from(config, len(vocab), vocab.image_token_id, seq_len)
  model = InternVLModel(model_config)
  optimizer = with_frozen_vision(optimizer_from_config(config.optimizer, config.train.num_steps),
                                 config.model.freeze_vision)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  shardings = {"input_ids": batch_sharding(mesh, rules, 2), "targets": batch_sharding(mesh, rules, 2),
               "loss_mask": batch_sharding(mesh, rules, 2), "pixels": batch_sharding(mesh, rules, 5)}
  if "positions" in fields:
    shardings["positions"] = batch_sharding(mesh, rules, 2)

  def loss_fn(params, batch, rng):
    del rng
    pixels = batch["pixels"].reshape(-1, *batch["pixels"].shape[2:])  # [B, 1, t, t, 3] -> [B, t, t, 3]
    # V2PE: float positions with each record's delta; absent, tokens are numbered 0, 1, ...
    logits, _ = model.apply({"params": params}, batch["input_ids"], pixels, positions_bt=batch.get("positions"))
    return sft_loss(logits, batch["targets"], batch["loss_mask"], weighting=config.loss.weighting)

  with jax.set_mesh(mesh), axis_rules(rules):
    first = stack_examples([train_source[0]])
    variables, _ = init_sharded(model.init, init_rng, jnp.asarray(first["input_ids"]),
                                jnp.asarray(first["pixels"][:, 0]), mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_train_step(loss_fn, optimizer, state_shardings=state_shardings, batch_shardings=shardings)

    eval_batch = stack_examples([{f: eval_source[i][f] for f in fields} for i in range(len(eval_source))])

    @jax.jit
    def eval_step(params):
      return loss_fn(params, jax.tree.map(jnp.asarray, eval_batch), None)[1]

    result = run_train_loop(
        state, config, workdir, train_step=train_step, batches=batches,
        to_device=lambda b: make_global_batch(b, shardings["input_ids"]), rng=train_rng,
        evaluate=eval_step, stop_requested=stop_requested,
    )
    if result.status != "completed":
      return result
    params = jax.device_get(result.state.params)

  accuracy = answer_accuracy(model, params, eval_source, list(range(len(eval_source))))
  accuracy.update(step=result.final_step, weighting=config.loss.weighting, freeze_vision=config.model.freeze_vision,
                  v2pe=config.data.v2pe, v2pe_eval_delta=eval_delta)
  if jax.process_index() == 0:
    files.write_text(workdir / "accuracy.json", json.dumps(accuracy, indent=2) + "\n")
  log.info("Exact-answer accuracy on %d held-out records: %.3f", accuracy["num_examples"], accuracy["answer_accuracy"])
  result.last_eval_metrics["answer_accuracy"] = accuracy["answer_accuracy"]
  return result
