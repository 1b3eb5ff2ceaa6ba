"""Structural Video Diffusion at small scale (configs/video_train.py): trains the video denoiser by rectified
flow on multi-identity clips, samples held-out clips from their reference image, poses, cameras and masks,
and scores them.

Workdir:

  train/                  the run (checkpoints, metrics)
  results.json, results.md  per test set: PSNR and SSIM of the RGB video (frames 1..F-1; frame 0 is the
                          reference), identity consistency (an appearance classifier fitted on each clip's
                          reference frame, applied to every identity's ground-truth mask in the frames after
                          the first crossing), and, for the modalities the model denoises, the depth error
                          (after scale-and-shift alignment) and the normal angle error. Rows: the model, the
                          ground-truth video (the ceiling of the identity metric) and the reference image
                          repeated over the frames (a copy baseline).
  samples.gif             ground truth, generated RGB, and the generated depth and normals of a few test clips
  train/tb/               also, at the final step, the TensorBoard image "samples": per clip of samples.gif a
                          row `reference | generated RGB frames`, then rows of generated depth and normals
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Callable

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.metrics import MetricWriter, image_grid
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from jaxlab.video import disk, metrics, modalities
from jaxlab.video.clip import VideoClip
from jaxlab.video.identity_classifier import IdentityClassifier, identity_consistency
from jaxlab.video.model import VideoCondition, VideoDenoiser, VideoDenoiserConfig
from jaxlab.video.objective import structural_flow_loss
from jaxlab.video.sampling import sample_video
from jaxlab.video.source import VideoClipSource
from jaxlab.video.synthetic import generate_clip
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

SOURCES = ("generated", "disk")
# Test clips come from seeds this far past the training seeds.
_TEST_SEED_OFFSET = 1_000_000
_GIF_SCALE = 4
_TRAIN_DIR = "train"  # the training run's workdir inside the task's


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  require_batch_divisible(config, "evaluation.batch_size", mesh_sizes)
  d = config.data
  if d.source not in SOURCES:
    raise ValueError(f"config.data.source must be one of {SOURCES}, got {d.source!r}")
  if d.source == "disk" and not (d.train_root and d.test_root):
    raise ValueError("config.data.source='disk' needs config.data.train_root and config.data.test_root")
  modalities.check_modalities(tuple(config.model.modalities))
  if not 1 <= d.min_people <= d.max_people <= d.num_identities:
    raise ValueError(f"config.data needs 1 <= min_people <= max_people <= num_identities, got "
                     f"{d.min_people}, {d.max_people}, {d.num_identities}")
  context = mesh_sizes.get("context", 1)
  if d.num_frames % context:
    raise ValueError(f"config.data.num_frames = {d.num_frames} must divide over the context axis ({context} devices)")


def generated_clips(config: ConfigDict, count: int, first_seed: int) -> list[VideoClip]:
  d = config.data
  return [generate_clip(first_seed + i, num_frames=d.num_frames, height=d.image_size, width=d.image_size,
                        num_people=(d.min_people, d.max_people), num_identities=d.num_identities)
          for i in range(count)]


def build_clips(config: ConfigDict) -> tuple[list[VideoClip], list[VideoClip]]:
  d = config.data
  if d.source == "disk":
    return ([disk.read_clip(p) for p in disk.list_clips(d.train_root)],
            [disk.read_clip(p) for p in disk.list_clips(d.test_root)])
  base = config.seed * 10 * _TEST_SEED_OFFSET
  return generated_clips(config, d.num_train, base), generated_clips(config, d.num_test, base + _TEST_SEED_OFFSET)


def model_config(config: ConfigDict, clips: list[VideoClip]) -> VideoDenoiserConfig:
  m = config.model
  first = clips[0]
  num_identities = max(c.num_identities for c in clips) if m.identity else 0
  return VideoDenoiserConfig(
      image_size=first.height, num_frames=first.num_frames, patch_size=m.patch_size, width=m.width, depth=m.depth,
      num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, modalities=tuple(m.modalities), num_identities=num_identities,
      identity_channels=m.identity_channels, use_pose=m.use_pose, use_camera=m.use_camera,
      use_reference=m.use_reference)


def condition_of(batch: dict, cfg: VideoDenoiserConfig) -> VideoCondition:
  """The model's conditions from a batch of records (only those the model uses)."""
  return VideoCondition(
      reference_bhwc=batch["reference"] if cfg.use_reference else None,
      pose_bfhwc=batch["pose_maps"] if cfg.use_pose else None,
      plucker_bfhw6=batch["plucker"] if cfg.use_camera else None,
      identity_bfhw=batch["identity"] if cfg.num_identities else None)


def _as_arrays(batch: dict) -> dict:
  return {k: jnp.asarray(v) for k, v in batch.items()}


def train(config: ConfigDict, model: VideoDenoiser, source: VideoClipSource, workdir: pathlib.Path,
          stop_requested: Callable[[], bool]) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  cfg = model.config
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

  def loss_fn(params, batch, rng):
    velocity_fn = lambda x, sigma, cond: model.apply({"params": params}, x, sigma, cond)
    value, aux = structural_flow_loss(velocity_fn, batch["video"], condition_of(batch, cfg), rng,
                                      modalities=cfg.modalities, sigma_kind=config.flow.sigma_kind)
    return value, {f"mse_{m}": aux[f"mse_{m}"] for m in cfg.modalities}

  with jax.set_mesh(mesh), axis_rules(rules):
    rows = batch_sharding(mesh, rules, 1)
    first = _as_arrays(stack_examples([source[0]]))
    variables, _ = init_sharded(model.init, init_rng, first["video"], jnp.ones((1,)), condition_of(first, cfg),
                                mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    log.info("Video denoiser: %s parameters, modalities %s, identity embeddings %s.", f"{num_params:,}",
             "+".join(cfg.modalities), "on" if cfg.num_identities else "off")
    step = make_train_step(loss_fn, optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state))
    batches = build_batches(source, global_batch_size=config.data.global_batch_size, seed=config.seed,
                            prefetch_threads=config.data.prefetch_threads)
    return run_train_loop(state, config, workdir, train_step=step, batches=batches,
                          to_device=lambda b: make_global_batch(b, rows), rng=train_rng, evaluate=None,
                          stop_requested=stop_requested)


def sample_test_videos(config: ConfigDict, model: VideoDenoiser, params, source: VideoClipSource) -> np.ndarray:
  """Generated videos [N, F, H, W, C] (the model's channel layout) of every test record."""
  e, cfg = config.evaluation, model.config
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))

  @jax.jit
  def sample(params, noise, batch):
    velocity_fn = lambda x, sigma, cond: model.apply({"params": params}, x, sigma, cond)
    return sample_video(velocity_fn, noise, condition_of(batch, cfg), num_steps=e.num_steps)

  out = []
  with jax.set_mesh(mesh), axis_rules(rules):
    for start in range(0, len(source), e.batch_size):
      idx = [min(i, len(source) - 1) for i in range(start, start + e.batch_size)]  # A short last batch repeats.
      batch = _as_arrays(stack_examples([source[i] for i in idx]))
      noise = jax.random.normal(jax.random.key(e.seed + start), batch["video"].shape)
      out.append(np.asarray(sample(params, noise, batch))[:min(e.batch_size, len(source) - start)])
  return np.concatenate(out)


def score_videos(videos_nfhwc: np.ndarray, clips: list[VideoClip], mods: tuple[str, ...]) -> dict:
  """Mean metrics of videos in the model's channel layout against the clips (module docstring)."""
  per_clip = []
  for video, clip in zip(videos_nfhwc, clips):
    parts = modalities.split_modalities(video, mods)
    rgb = modalities.decode_rgb(parts["rgb"])
    row = {"psnr": float(metrics.video_psnr(rgb[1:], clip.rgb_fhwc[1:])),
           "ssim": float(metrics.video_ssim(rgb[1:], clip.rgb_fhwc[1:]))}
    classifier = IdentityClassifier.fit(clip.rgb_fhwc[:1], clip.masks_fhw[:1], clip.num_identities)
    after = metrics.frames_after_crossing(clip.masks_fhw)
    after[0] = False
    if after.any():
      row["identity_after_crossing"] = identity_consistency(classifier, rgb, clip.masks_fhw, after)["accuracy"]
    later = np.arange(clip.num_frames) > 0
    row["identity_all_frames"] = identity_consistency(classifier, rgb, clip.masks_fhw, later)["accuracy"]
    if "depth" in parts:
      errors = metrics.depth_errors(modalities.decode_depth(parts["depth"]), clip.depth_fhw)
      row.update({f"depth_{k}": float(v) for k, v in errors.items()})
    if "normal" in parts:
      errors = metrics.normal_angle_error(modalities.decode_normal(parts["normal"]),
                                          clip.normal_fhwc)
      row.update({f"normal_{k}": float(v) for k, v in errors.items()})
    per_clip.append(row)
  keys = sorted({k for r in per_clip for k in r})
  summary = {k: float(np.nanmean([r[k] for r in per_clip if k in r and r[k] is not None])) for k in keys}
  summary["clips_with_crossing"] = sum("identity_after_crossing" in r for r in per_clip)
  return summary


def evaluate(config: ConfigDict, model: VideoDenoiser, params, test_clips: list[VideoClip],
             workdir: pathlib.Path, *, step: int) -> dict:
  """Samples and scores the test clips; writes samples.gif and, at `step`, the TensorBoard image "samples"."""
  mods = model.config.modalities
  source = VideoClipSource.from_clips(test_clips, modalities=mods)
  generated = sample_test_videos(config, model, params, source)
  truth = np.stack([modalities.encode_modalities(c, mods) for c in test_clips])
  copy = np.stack([np.broadcast_to(2.0 * c.reference_hwc - 1.0, c.rgb_fhwc.shape) for c in test_clips])
  rows = {"model": score_videos(generated, test_clips, mods),
          "ground_truth": score_videos(truth, test_clips, mods),
          "reference_copy": score_videos(copy, test_clips, ("rgb",))}
  for name, row in rows.items():
    log.info("%s: PSNR %.2f dB, SSIM %.3f, identity after crossing %.3f", name, row["psnr"], row["ssim"],
             row.get("identity_after_crossing", float("nan")))
  if jax.process_index() == 0:
    shown = generated[:config.evaluation.gif_clips]
    write_gif(workdir / "samples.gif", shown, test_clips, mods)
    with MetricWriter(workdir / _TRAIN_DIR) as writer:
      writer.write_images(step, {"samples": sample_grid(shown, test_clips, mods)})
  return {"rows": rows, "modalities": list(mods), "identity_embeddings": bool(model.config.num_identities),
          "num_test": len(test_clips), "sampling_steps": config.evaluation.num_steps}


def _to_uint8(image_hwc: np.ndarray) -> np.ndarray:
  return np.clip(np.round(image_hwc * 255.0), 0, 255).astype(np.uint8)


def decoded_views(video_fhwc: np.ndarray, mods: tuple[str, ...]) -> list[np.ndarray]:
  """Generated RGB, then depth (grey) and normals if denoised: each [F, H, W, 3] in [0, 1]."""
  parts = modalities.split_modalities(video_fhwc, mods)
  views = [modalities.decode_rgb(parts["rgb"])]
  if "depth" in parts:
    views.append(np.repeat(modalities.decode_depth(parts["depth"])[..., None], 3, axis=-1))
  if "normal" in parts:
    views.append(0.5 * (modalities.decode_normal(parts["normal"]) + 1.0))
  return views


def sample_grid(videos_nfhwc: np.ndarray, clips: list[VideoClip], mods: tuple[str, ...]) -> np.ndarray:
  """Per clip, a row `reference | generated RGB frames`, then a row each of generated depth and normals if
  denoised (their first cell blank): float32 [N * rows * (H + 2) - 2, (F + 1) * (W + 2) - 2, 3] in [0, 1]."""
  tiles = []
  for video, clip in zip(videos_nfhwc, clips):
    for row, view in enumerate(decoded_views(video, mods)):
      tiles += [clip.reference_hwc if row == 0 else np.ones_like(clip.reference_hwc), *view]
  return image_grid(np.stack(tiles), columns=videos_nfhwc.shape[1] + 1)


def write_gif(path: pathlib.Path, videos_nfhwc: np.ndarray, clips: list[VideoClip], mods: tuple[str, ...]) -> None:
  """One column per clip; rows: ground truth, generated RGB, then generated depth and normals if denoised."""
  views = [decoded_views(video, mods) for video in videos_nfhwc]
  frames = []
  for f in range(videos_nfhwc.shape[1]):
    columns = []
    for clip_views, clip in zip(views, clips):
      tiles = [clip.rgb_fhwc[f], *(view[f] for view in clip_views)]
      columns.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=1.0) for t in tiles]))
    grid = _to_uint8(np.concatenate(columns, axis=1))
    frames.append(np.repeat(np.repeat(grid, _GIF_SCALE, axis=0), _GIF_SCALE, axis=1))
  files.write_bytes(path, iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=250, loop=0))


def results_table(results: dict) -> str:
  columns = [("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".3f"), ("identity_after_crossing", "identity after crossing",
                                                                    ".3f"),
             ("identity_all_frames", "identity, all frames", ".3f"), ("depth_abs_rel", "depth AbsRel", ".3f"),
             ("normal_mean", "normal error (deg)", ".1f")]
  lines = ["| video | " + " | ".join(c[1] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
  for name, row in results["rows"].items():
    cells = [format(row[k], fmt) if k in row else "-" for k, _, fmt in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + (f"\n\n{results['num_test']} test clips, {results['sampling_steps']} Euler steps; "
                             f"modalities {'+'.join(results['modalities'])}, identity embeddings "
                             f"{'on' if results['identity_embeddings'] else 'off'}.\n")


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  train_clips, test_clips = build_clips(config)
  if not train_clips or not test_clips:
    raise ValueError(f"no clips: {len(train_clips)} for training and {len(test_clips)} for testing")
  mods = tuple(config.model.modalities)
  model = VideoDenoiser(model_config(config, train_clips + test_clips))
  source = VideoClipSource.from_clips(train_clips, modalities=mods)
  result = train(config, model, source, workdir / _TRAIN_DIR, stop_requested)
  if result.status != "completed":
    return result
  results = evaluate(config, model, jax.device_get(result.state.params), test_clips, workdir, step=result.final_step)
  if jax.process_index() == 0:
    files.write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
    files.write_text(workdir / "results.md", results_table(results))
  result.last_eval_metrics.update({f"model/{k}": v for k, v in results["rows"]["model"].items()})
  return result
