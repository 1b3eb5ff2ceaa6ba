"""GenDoP at small scale (configs/gendop_train.py): camera trajectories from captions (and the first frame's
RGB-D), an OPT-style decoder over pose tokens, evaluated by the motion F1 and CLaTr-style metrics.

Workdir:

  caption_tokenizer.json   the BPE trained on the training captions
  train/                   the run (checkpoints, metrics)
  eval/generated.npz       test tokens: reference, generated, and the baselines' (random, retrieval)
  results.json, results.md F1, CLaTr-CLIP, coverage and FID of the model, the reference trajectories
                           themselves, a random training trajectory, and caption nearest-neighbour retrieval
  trajectories.png         reference and generated camera paths of a few test shots (top view), also the
                           TensorBoard image "trajectories" in train/tb/ at the final step

The F1 compares motion tags of the generated and the reference trajectory, both decoded from tokens
(the reference from its normalized tokens), resampled from 30 to 120 poses. The CLaTr-style metrics use
an embedding trained here on the training shots (`jaxlab.camera.clatr`); coverage and FID compare the
generated test trajectories with the real ones.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import pathlib
from collections.abc import Callable

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import tokenizers
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.camera import clatr, motion_tags
from jaxlab.camera import tokenizer as pose_tokenizer
from jaxlab.camera.datadop import Shot, read_datadop
from jaxlab.camera.model import GenDoP, GenDoPConfig, generate, loss
from jaxlab.camera.records import CAPTION_KINDS, ShotSource, caption_of, shot_tokens
from jaxlab.camera.synthetic import make_shots
from jaxlab.camera.text import encode_captions, train_caption_tokenizer
from jaxlab.camera.trajectory import resample
from jaxlab.data import build_batches, make_global_batch
from jaxlab.metrics import MetricWriter
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.vlm.config import InternVisionConfig
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

SOURCES = ("generated", "datadop")
_TRAIN_DIR = "train"  # the training run's workdir inside the task's
CONDITIONINGS = ("text", "rgbd_text")


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  d = config.data
  if d.source not in SOURCES:
    raise ValueError(f"config.data.source must be one of {SOURCES}, got {d.source!r}")
  if d.source == "datadop" and not (d.train_root and d.test_root):
    raise ValueError("config.data.source='datadop' needs config.data.train_root and config.data.test_root")
  if d.caption not in CAPTION_KINDS:
    raise ValueError(f"config.data.caption must be one of {CAPTION_KINDS}, got {d.caption!r}")
  if config.model.conditioning not in CONDITIONINGS:
    raise ValueError(f"config.model.conditioning must be one of {CONDITIONINGS}, got {config.model.conditioning!r}")


@dataclasses.dataclass
class Shots:
  train: list[Shot]
  test: list[Shot]


def build_shots(config: ConfigDict) -> Shots:
  d = config.data
  rgbd = config.model.conditioning == "rgbd_text"
  if d.source == "datadop":
    return Shots(read_datadop(d.train_root, require_rgbd=rgbd), read_datadop(d.test_root, require_rgbd=rgbd))
  return Shots(make_shots(d.num_train, config.seed, split="train", image_size=d.image_size, render=rgbd),
               make_shots(d.num_test, config.seed + 1, split="test", image_size=d.image_size, render=rgbd))


def caption_tokenizer(config: ConfigDict, shots: Shots, workdir: pathlib.Path) -> tokenizers.Tokenizer:
  """The BPE of the training captions (both kinds), saved once in the workdir."""
  path = workdir / "caption_tokenizer.json"
  if path.exists():
    return tokenizers.Tokenizer.from_file(str(path))
  texts = [caption_of(s, k) for s in shots.train for k in CAPTION_KINDS]
  tok = train_caption_tokenizer(texts, vocab_size=config.model.caption_vocab_size)
  if jax.process_index() == 0:
    files.write_text(path, tok.to_str())
  return tok


def model_config(config: ConfigDict) -> GenDoPConfig:
  m = config.model
  vision = InternVisionConfig(hidden_size=m.vision_hidden, num_hidden_layers=m.vision_layers,
                              num_attention_heads=m.vision_heads, intermediate_size=4 * m.vision_hidden,
                              image_size=(m.vision_image_size, m.vision_image_size),
                              patch_size=(m.vision_patch_size, m.vision_patch_size))
  return GenDoPConfig.preset(m.preset, hidden_size=m.hidden_size, num_heads=m.num_heads, num_layers=m.num_layers,
                             dropout=m.dropout, conditioning=m.conditioning, caption_vocab_size=m.caption_vocab_size,
                             text_width=m.text_width, text_layers=m.text_layers, text_heads=m.text_heads,
                             vision=vision)


def _images(batch: dict):
  return batch.get("rgb"), batch.get("depth")


def train(config: ConfigDict, source: ShotSource, model: GenDoP, workdir: pathlib.Path,
          stop_requested: Callable[[], bool]) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

  def loss_fn(params, batch, rng):
    rgb, depth = _images(batch)
    logits = model.apply({"params": params}, batch["text_ids"], rgb, depth, batch["input_ids"],
                         deterministic=False, rngs={"dropout": rng})
    value = loss(logits, batch["targets"])
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["targets"])
    return value, {"token_accuracy": accuracy}

  with jax.set_mesh(mesh), axis_rules(rules):
    rows = batch_sharding(mesh, rules, 2)
    first = {k: jnp.asarray(v) for k, v in stack_examples([source[0]]).items()}
    rgb, depth = _images(first)
    variables, _ = init_sharded(model.init, init_rng, first["text_ids"], rgb, depth, first["input_ids"],
                                mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state))
    batches = build_batches(source, global_batch_size=config.data.global_batch_size, seed=config.seed,
                            prefetch_threads=config.data.prefetch_threads)
    return run_train_loop(state, config, workdir, train_step=step, batches=batches,
                          to_device=lambda b: make_global_batch(b, rows), rng=train_rng, evaluate=None,
                          stop_requested=stop_requested)


def generate_tokens(config: ConfigDict, model: GenDoP, params, source: ShotSource) -> np.ndarray:
  """Sampled pose tokens [N, 300] for every record of `source` (top-k, one key per batch)."""
  out = []
  b = config.evaluation.batch_size
  for start in range(0, len(source), b):
    idx = [min(i, len(source) - 1) for i in range(start, start + b)]  # A short last batch repeats a row.
    batch = stack_examples([source[i] for i in idx])
    rgb, depth = _images(batch)
    key = jax.random.key(config.seed + 17 + start)
    tokens = generate(model, params, jnp.asarray(batch["text_ids"]), None if rgb is None else jnp.asarray(rgb),
                      None if depth is None else jnp.asarray(depth), key, top_k=config.evaluation.top_k,
                      greedy=config.evaluation.greedy)
    out.append(np.asarray(tokens)[:min(b, len(source) - start)])
  return np.concatenate(out)


def complete_tokens(tokens_n300: np.ndarray) -> tuple[np.ndarray, int]:
  """Rows that ended early (EOS after 10k tokens) repeat their last pose to 30 poses; returns the count."""
  out, short = tokens_n300.copy(), 0
  for row in out:
    ended = np.flatnonzero(row < pose_tokenizer.OFFSET)
    if len(ended):
      short += 1
      n = max(ended[0] // pose_tokenizer.VALUES_PER_POSE, 1) * pose_tokenizer.VALUES_PER_POSE
      last = row[n - pose_tokenizer.VALUES_PER_POSE:n]
      row[n:] = np.tile(last, (pose_tokenizer.POSE_TOKENS - n) // pose_tokenizer.VALUES_PER_POSE)
  return out, short


def repair_rotations(tokens_n300: np.ndarray) -> tuple[np.ndarray, int]:
  """Poses whose quaternion tokens decode to (near) zero, which no rotation has, take the previous pose's
  quaternion (identity for pose 0); returns the tokens and how many rows needed it."""
  out, repaired = tokens_n300.copy(), 0
  values = out.reshape(len(out), pose_tokenizer.NUM_POSES, pose_tokenizer.VALUES_PER_POSE)
  half = pose_tokenizer.NUM_BINS // 2
  identity = np.array([pose_tokenizer.NUM_BINS, half, half, half]) + pose_tokenizer.OFFSET
  for row in values:
    q = (row[:, :4] - pose_tokenizer.OFFSET) / half - 1.0
    bad = np.linalg.norm(q, axis=1) < 1e-3
    if bad.any():
      repaired += 1
      for p in np.flatnonzero(bad):
        row[p, :4] = identity if p == 0 else row[p - 1, :4]
  return out, repaired


def decoded(tokens_n300: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(c2w [N, 30, 4, 4] with the scale applied, focal ratios [N, 30, 2])."""
  poses, focals = zip(*[pose_tokenizer.decode(t)[:2] for t in tokens_n300])
  return np.stack(poses), np.stack(focals)


def motion_f1(generated_n300: np.ndarray, reference_n300: np.ndarray) -> float:
  gen, _ = decoded(generated_n300)
  ref, _ = decoded(reference_n300)
  up = lambda c: np.stack([resample(x, 120) for x in c])
  return float(motion_tags.trajectory_f1(up(gen), up(ref)))


def features(tokens_n300: np.ndarray) -> np.ndarray:
  """CLaTr pose values [N, 30, 10] of decoded trajectories (normalized again, so any tokens compare)."""
  poses, focals = decoded(tokens_n300)
  return np.stack([clatr.pose_features(p, f) for p, f in zip(poses, focals)])


def retrieval_tokens(train_captions: list[str], test_captions: list[str], train_tokens: np.ndarray) -> np.ndarray:
  """For each test caption, the tokens of the training shot whose caption is nearest (bag of words, cosine)."""
  words = sorted({w for c in train_captions + test_captions for w in c.lower().split()})
  index = {w: i for i, w in enumerate(words)}

  def bags(captions):
    m = np.zeros((len(captions), len(words)))
    for r, c in enumerate(captions):
      for w in c.lower().split():
        m[r, index[w]] += 1
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)

  return train_tokens[np.argmax(bags(test_captions) @ bags(train_captions).T, axis=1)]


def evaluate(config: ConfigDict, model: GenDoP, params, shots: Shots, tok: tokenizers.Tokenizer,
             workdir: pathlib.Path, *, step: int) -> dict:
  """Generates and scores the test trajectories; writes eval/generated.npz and trajectories.png (also the
  TensorBoard image "trajectories", at `step`)."""
  d = config.data
  rgbd = config.model.conditioning == "rgbd_text"
  normalize = config.tokens.normalize
  test_source = ShotSource(shots.test, tok, caption=d.caption, normalize=normalize, with_rgbd=rgbd)
  generated, short = complete_tokens(generate_tokens(config, model, params, test_source))
  generated, repaired = repair_rotations(generated)
  reference = np.stack([shot_tokens(s, normalize=True) for s in shots.test])
  train_tokens = np.stack([shot_tokens(s, normalize=True) for s in shots.train])
  rng = np.random.default_rng(config.seed)
  candidates = {
      "model": generated,
      "reference": reference,
      "random": train_tokens[rng.integers(len(train_tokens), size=len(reference))],
      "retrieval": retrieval_tokens([caption_of(s, d.caption) for s in shots.train],
                                    [caption_of(s, d.caption) for s in shots.test], train_tokens),
  }
  c = config.clatr
  train_ids = encode_captions(tok, [caption_of(s, d.caption) for s in shots.train], truncate=True)
  test_ids = encode_captions(tok, [caption_of(s, d.caption) for s in shots.test], truncate=True)
  clatr_config = clatr.ClatrConfig.tiny(text_vocab_size=tok.get_vocab_size())
  emb_model, emb_params, losses = clatr.train_clatr(train_ids, features(train_tokens), steps=c.steps,
                                                    batch_size=min(c.batch_size, len(train_ids)),
                                                    learning_rate=c.learning_rate, seed=config.seed,
                                                    config=clatr_config)
  text_emb = clatr.embed_texts(emb_model, emb_params, test_ids)
  real_emb = clatr.embed_trajectories(emb_model, emb_params, features(reference))
  rows = {}
  for name, tokens in candidates.items():
    emb = clatr.embed_trajectories(emb_model, emb_params, features(tokens))
    rows[name] = {"f1": motion_f1(tokens, reference), "clatr_clip": clatr.clatr_clip(text_emb, emb),
                  "coverage": clatr.coverage(real_emb, emb, k=min(c.coverage_k, len(reference) - 1)),
                  "fid": clatr.frechet_distance(real_emb, emb)}
    log.info("%s: F1 %.3f, CLaTr-CLIP %.2f, coverage %.3f, FID %.2f", name, *rows[name].values())
  if jax.process_index() == 0:
    (workdir / "eval").mkdir(parents=True, exist_ok=True)
    with files.atomic_open(workdir / "eval" / "generated.npz", "wb") as f:
      np.savez(f, **candidates)
    plot = plot_trajectories(workdir / "trajectories.png", generated[:4], reference[:4],
                             [caption_of(s, d.caption) for s in shots.test[:4]])
    with MetricWriter(workdir / _TRAIN_DIR) as writer:
      writer.write_images(step, {"trajectories": plot})
  seen_f1 = seen_caption_f1(config, model, params, shots, tok)
  if seen_f1 is not None:
    log.info("F1 on %d training shots (seen caption templates): %.3f", config.evaluation.num_train_shots, seen_f1)
  return {"rows": rows, "train_shots_f1": seen_f1, "ended_early": short, "rotations_repaired": repaired,
          "num_test": len(reference),
          "num_train": len(train_tokens),
          "clatr_final_loss": float(np.mean(losses[-10:]))}


def seen_caption_f1(config: ConfigDict, model: GenDoP, params, shots: Shots, tok: tokenizers.Tokenizer) -> float | None:
  """Motion F1 on the first `evaluation.num_train_shots` training shots (captions from the training
  templates), generated as the test shots are: what the model learned, apart from how it generalizes."""
  count = min(config.evaluation.num_train_shots, len(shots.train))
  if count <= 0:
    return None
  d = config.data
  seen = shots.train[:count]
  source = ShotSource(seen, tok, caption=d.caption, normalize=config.tokens.normalize,
                      with_rgbd=config.model.conditioning == "rgbd_text")
  generated, _ = complete_tokens(generate_tokens(config, model, params, source))
  generated, _ = repair_rotations(generated)
  return motion_f1(generated, np.stack([shot_tokens(s, normalize=True) for s in seen]))


def plot_trajectories(path: pathlib.Path, generated: np.ndarray, reference: np.ndarray, captions: list[str]) -> np.ndarray:
  """Top view (camera x against z of frame 0) of reference and generated positions, one panel per shot.

  Writes the plot to `path` as PNG and returns its pixels, uint8 [H, W, 3].
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  gen, _ = decoded(generated)
  ref, _ = decoded(reference)
  fig, axes = plt.subplots(1, len(gen), figsize=(4 * len(gen), 4), squeeze=False)
  for ax, g, r, caption in zip(axes[0], gen, ref, captions):
    for poses, colour, label in ((r, "tab:blue", "reference"), (g, "tab:orange", "generated")):
      ax.plot(poses[:, 0, 3], poses[:, 2, 3], "-o", ms=2, color=colour, label=label)
      ax.quiver(poses[::5, 0, 3], poses[::5, 2, 3], poses[::5, 0, 2], poses[::5, 2, 2], color=colour, width=0.004)
    ax.set_title("\n".join(caption[i:i + 48] for i in range(0, min(len(caption), 144), 48)), fontsize=7)
    ax.set_xlabel("x (right)")
    ax.set_ylabel("z (forward)")
    ax.axis("equal")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=90)
  plt.close(fig)
  files.write_bytes(path, png.getvalue())
  return iio.imread(png.getvalue())[..., :3]  # the figure is opaque: alpha is all 255


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  shots = build_shots(config)
  tok = caption_tokenizer(config, shots, workdir)
  source = ShotSource(shots.train, tok, caption=config.data.caption, normalize=config.tokens.normalize,
                      with_rgbd=config.model.conditioning == "rgbd_text")
  model = GenDoP(model_config(config))
  result = train(config, source, model, workdir / _TRAIN_DIR, stop_requested)
  if result.status != "completed":
    return result
  results = evaluate(config, model, jax.device_get(result.state.params), shots, tok, workdir, step=result.final_step)
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", results_table(results))
  result.last_eval_metrics["model/f1"] = results["rows"]["model"]["f1"]
  return result


def results_table(results: dict) -> str:
  lines = ["| trajectories | F1 | CLaTr-CLIP | coverage | FID |", "|---|---:|---:|---:|---:|"]
  for name, r in results["rows"].items():
    lines.append(f"| {name} | {r['f1']:.3f} | {r['clatr_clip']:.2f} | {r['coverage']:.3f} | {r['fid']:.2f} |")
  seen = results.get("train_shots_f1")
  if seen is not None:
    lines.append(f"| model, on training shots (seen templates) | {seen:.3f} | - | - | - |")
  return "\n".join(lines) + (f"\n\n{results['num_train']} training and {results['num_test']} test shots; "
                             f"{results['ended_early']} generated rows ended early; "
                             f"{results['rotations_repaired']} had a pose with zero quaternion tokens (given the "
                             "previous pose's rotation).\n")
