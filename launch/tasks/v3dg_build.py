"""Builds one LOD bundle (`jaxlab.splat.lod.build_bundle`) and writes it with a report and a preview.

Outputs in the workdir: `bundle.npz`, `report.json` (per level: Gaussians, clusters, groups,
local-splatting loss at the first and last iteration; build seconds) and `levels.png` (every
level rendered from one camera, finest on the left), also written as the TensorBoard image
"levels" (step 0) in `tb/`. Each file is written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.metrics import MetricWriter
from jaxlab.splat import Camera, estimate_capacity_for, load_ply, look_at, render
from jaxlab.splat.exports import save_png, side_by_side
from jaxlab.splat.lod import BuildSettings, LocalSplatSettings, build_bundle, save_bundle
from jaxlab.splat.lod.assets import donut_gaussians, scene_gaussians
from jaxlab.train import LoopResult
from launch.config_loader import ConfigError
from launch.tasks.common import record_config

log = logging.getLogger(__name__)
EMBEDDED = {"scene": scene_gaussians, "donut": donut_gaussians}


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """The input must name a PLY that exists or an embedded asset (called by launch.run before the run)."""
  del mesh_sizes
  if config.input.ply:
    if not pathlib.Path(config.input.ply).is_file():
      raise ConfigError(f"input.ply={config.input.ply!r} is not a file; pass an INRIA 3DGS PLY or leave it empty")
  elif config.input.embedded not in EMBEDDED:
    raise ConfigError(f"input.embedded={config.input.embedded!r}; choose one of {sorted(EMBEDDED)}")
  try:
    build_settings(config)  # the settings' own checks, at config time
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.build / config.local_splat: {e}") from None


def build_settings(config: ConfigDict) -> BuildSettings:
  return BuildSettings(**dict(config.build), local_splat=LocalSplatSettings(**dict(config.local_splat)), seed=config.seed)


def _preview(path: pathlib.Path, bundle, size: int) -> np.ndarray:
  """All levels side by side from one camera looking at the asset's centre from above and aside.

  Writes them to `path` as PNG and returns the pixels, uint8 [size, levels * size, 3].
  """
  means = np.asarray(bundle.gaussians.means, np.float64)
  center = np.median(means, axis=0)
  radius = float(np.percentile(np.linalg.norm(means - center, axis=1), 95))
  eye = center + radius * np.array([0.0, -2.2, 1.6])
  pose = look_at(eye, center, up_3=np.array([0.0, 0.0, 1.0]))
  focal = size / (2 * math.tan(math.radians(25)))
  camera = Camera.from_opencv(pose, fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size)
  # Every level padded to the finest one's size: one compiled render serves them all.
  levels = [jax.tree.map(jnp.asarray, bundle.level_gaussians(l)) for l in range(bundle.num_levels)]
  levels = [g.pad_to(levels[0].num) for g in levels]
  capacity = max(estimate_capacity_for(g, camera) for g in levels)
  images = [np.asarray(render(g, camera, capacity=capacity, on_overflow="warn").rgb) for g in levels]
  image = side_by_side(np.concatenate(images[:-1], axis=1) if len(images) > 1 else images[0], images[-1])
  save_png(path, image)
  return image


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  del stop_requested  # a build is one pass; a stopped run is simply run again
  record_config(config, workdir)
  if config.input.ply:
    gaussians = load_ply(config.input.ply)
    source = config.input.ply
  else:
    gaussians = EMBEDDED[config.input.embedded](config.input.num_points, seed=config.seed)
    source = f"embedded:{config.input.embedded}"
  log.info("Building a LOD bundle from %s (%d Gaussians).", source, int(np.sum(np.asarray(gaussians.active))))
  bundle, report = build_bundle(gaussians, build_settings(config))
  save_bundle(workdir / "bundle.npz", bundle)
  summary = {"source": source, **dataclasses.asdict(report)}
  files.write_text(workdir / "report.json", json.dumps(summary, indent=2, allow_nan=True) + "\n")
  levels = _preview(workdir / "levels.png", bundle, config.outputs.preview_size)
  with MetricWriter(workdir) as writer:
    writer.write_images(0, {"levels": levels})
  log.info("Bundle: %d levels, Gaussians per level %s, built in %.1f s.", bundle.num_levels, report.gaussians_per_level,
           report.seconds)
  metrics = {"build_seconds": report.seconds, "levels": float(bundle.num_levels),
             "gaussians_total": float(sum(report.gaussians_per_level))}
  return LoopResult(state=None, status="completed", start_step=0, final_step=0, last_train_metrics={},
                    last_eval_metrics=metrics)
