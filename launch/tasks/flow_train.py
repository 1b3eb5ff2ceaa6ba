"""Trains a DiT by flow matching on crops of scikit-image's photographs (configs/flow_train.py).

Outputs in the workdir, besides checkpoints and metrics:
  model/             the DiT (`jaxlab.flow.dit_io`), what `benchmarks/hiflow_eval.py --model` reads;
  samples.png        native-resolution samples, one row per class (8 x 8 when unconditional),
                     also the TensorBoard image "samples" (tb/) at the final step;
  sample_stats.json  neighbour-pixel correlation and spectrum slope of the samples, of
                     Gaussian noise and of real crops at the same size.
"""

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
from jaxlab.data.images import PHOTO_NAMES, PhotoCropSource
from jaxlab.flow import image_stats
from jaxlab.flow.dit import DiT, DiTConfig
from jaxlab.flow.dit_io import save_dit
from jaxlab.flow.matching import flow_matching_loss, noisy_sample, velocity_target
from jaxlab.flow.samplers import classifier_free_guidance, euler_sample
from jaxlab.flow.schedules import sigma_schedule
from jaxlab.metrics import MetricWriter
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState, make_train_step
from launch.tasks.common import optimizer_from_config, run_train_loop, stack_examples
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)

_NUM_EVAL_CROPS = 64


def model_config_from(config: ConfigDict) -> DiTConfig:
  num_classes = len(PHOTO_NAMES) if config.data.conditional else 0
  return DiTConfig(image_size=config.data.image_size, in_channels=3, num_classes=num_classes, **config.model.to_dict())


def image_grid(images_bhwc: np.ndarray, columns: int) -> np.ndarray:
  """uint8 [rows * H, columns * W, C] from images in [-1, 1], row-major, one-pixel gaps."""
  b, h, w, c = images_bhwc.shape
  rows = -(-b // columns)
  grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 255, np.uint8)
  pixels = np.clip((np.asarray(images_bhwc) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
  for i, image in enumerate(pixels):
    r, col = divmod(i, columns)
    grid[r * (h + 1): r * (h + 1) + h, col * (w + 1): col * (w + 1) + w] = image
  return grid


def structure_stats(images_bhwc) -> dict:
  return {"neighbor_correlation": float(np.mean(image_stats.neighbor_correlation(images_bhwc))),
          "spectrum_slope": float(np.mean(image_stats.spectrum_slope(images_bhwc)))}


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Batches that the mesh splits must divide over it (called by launch.run before the run)."""
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(tuple(config.sharding.presets))
  d = config.data
  num_crops = config.train.num_steps * d.global_batch_size
  train_source = PhotoCropSource(d.image_size, min_crop_fraction=d.min_crop_fraction, seed=config.seed,
                                 length=num_crops)
  eval_source = PhotoCropSource(d.image_size, min_crop_fraction=d.min_crop_fraction, seed=config.seed + 1,
                                length=_NUM_EVAL_CROPS)
  batches = build_batches(train_source, global_batch_size=d.global_batch_size, seed=config.seed,
                          prefetch_threads=d.prefetch_threads)

  model_config = model_config_from(config)
  model = DiT(model_config)
  null_label = model_config.num_classes  # The extra row of the label table.
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  init_rng, train_rng, eval_rng = jax.random.split(jax.random.key(config.seed), 3)
  image_sharding = batch_sharding(mesh, rules, ndim=4)
  label_sharding = batch_sharding(mesh, rules, ndim=1)
  shardings = {"image": image_sharding, "label": label_sharding}

  def labels_of(batch, rng):
    if not d.conditional:
      return None
    drop = jax.random.bernoulli(rng, config.flow.label_dropout, batch["label"].shape)
    return jnp.where(drop, null_label, batch["label"])

  def loss_fn(params, batch, rng):
    label_rng, flow_rng = jax.random.split(rng)
    velocity_fn = lambda x, sigma, labels: model.apply({"params": params}, x, sigma, labels)
    loss, aux = flow_matching_loss(velocity_fn, batch["image"], labels_of(batch, label_rng), flow_rng,
                                   sigma_kind=config.flow.sigma_kind)
    return loss, {"loss": loss, "mean_sigma": jnp.mean(aux["sigma"])}

  with jax.set_mesh(mesh), axis_rules(rules):
    size = d.image_size
    dummy_labels = jnp.zeros((1,), jnp.int32) if d.conditional else None
    variables, _ = init_sharded(model.init, init_rng, jnp.zeros((1, size, size, 3)), jnp.ones((1,)), dummy_labels,
                                mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_train_step(loss_fn, optimizer, state_shardings=state_shardings, batch_shardings=shardings)

    # A fixed held-out set of (crop, noise, sigma): its loss is comparable across evaluations.
    eval_batch = stack_examples([eval_source[i] for i in range(len(eval_source))])
    noise_rng, sigma_rng = jax.random.split(eval_rng)
    eval_noise = jax.random.normal(noise_rng, eval_batch["image"].shape)
    eval_sigma = jax.random.uniform(sigma_rng, (len(eval_source),), minval=0.02, maxval=0.98)

    @jax.jit
    def eval_step(params):
      x0 = jnp.asarray(eval_batch["image"])
      labels = jnp.asarray(eval_batch["label"]) if d.conditional else None
      v = model.apply({"params": params}, noisy_sample(x0, eval_noise, eval_sigma), eval_sigma, labels)
      return {"loss": jnp.mean((v - velocity_target(x0, eval_noise)) ** 2)}

    result = run_train_loop(
        state, config, workdir, train_step=train_step, batches=batches,
        to_device=lambda b: make_global_batch(b, image_sharding), rng=train_rng,
        evaluate=eval_step, stop_requested=stop_requested,
    )
    if result.status != "completed":
      return result
    params = jax.device_get(result.state.params)

  s = config.sampling
  if d.conditional:
    labels = np.repeat(np.arange(model_config.num_classes), s.per_class).astype(np.int32)
    columns = s.per_class
  else:
    labels, columns = None, 8
  count = len(labels) if labels is not None else 64
  velocity_fn = lambda x, sigma, cond: model.apply({"params": params}, x, sigma, cond)
  if d.conditional and s.guidance_scale != 1.0:
    velocity_fn = classifier_free_guidance(velocity_fn, s.guidance_scale, jnp.full((count,), null_label, jnp.int32))
  noise = jax.random.normal(jax.random.key(s.seed), (count, size, size, 3))
  sigmas = jnp.asarray(sigma_schedule(s.num_steps, shift=s.shift))
  samples = np.asarray(jax.jit(lambda n: euler_sample(velocity_fn, n, sigmas, None if labels is None
                                                      else jnp.asarray(labels)))(noise))
  samples = np.clip(samples, -1.0, 1.0)
  real = stack_examples([eval_source[i] for i in range(min(count, len(eval_source)))])["image"]
  stats = {"samples": structure_stats(samples), "gaussian_noise": structure_stats(np.asarray(noise)),
           "real_crops": structure_stats(real), "num_samples": count, "image_size": size,
           "sampling": s.to_dict(), "step": result.final_step,
           "classes": list(PHOTO_NAMES) if d.conditional else None}
  if jax.process_index() == 0:
    grid = image_grid(samples, columns)
    files.write_bytes(workdir / "samples.png", iio.imwrite("<bytes>", grid, extension=".png"))
    with MetricWriter(workdir) as writer:
      writer.write_images(result.final_step, {"samples": grid})
    files.write_text(workdir / "sample_stats.json", json.dumps(stats, indent=2) + "\n")
    save_dit(workdir / "model", model_config, params, overwrite=True)
    log.info("Wrote samples.png, sample_stats.json and model/ to %s.", workdir)
  log.info("Neighbour correlation: samples %.3f, noise %.3f, real crops %.3f; spectrum slope: samples %.2f, "
           "noise %.2f, real %.2f.", stats["samples"]["neighbor_correlation"],
           stats["gaussian_noise"]["neighbor_correlation"], stats["real_crops"]["neighbor_correlation"],
           stats["samples"]["spectrum_slope"], stats["gaussian_noise"]["spectrum_slope"],
           stats["real_crops"]["spectrum_slope"])
  result.last_eval_metrics.update({f"sample_{k}": v for k, v in stats["samples"].items()})
  return result
