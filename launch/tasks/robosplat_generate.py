"""Generates RoboSplat demonstrations from one simulated source demonstration (configs/robosplat_generate.py).

Outputs in the workdir: `source/` and `generated/` (LeRobot v2.1 episode folders, each
episode committed whole), `scene_parts.npz` (the reconstructed Gaussians), `report.json`
and `preview.png`, also written to `tb/` as the TensorBoard image "preview" by a run that adds
demonstrations (its step: the episodes in the dataset). A rerun in the same workdir reuses the reconstruction, keeps what is
there and appends to `generated/`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable

import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.metrics import MetricWriter
from jaxlab.robosplat.demo_render import EditSettings
from jaxlab.robosplat.episodes import EpisodeDataset
from jaxlab.robosplat.embodiments import EMBODIMENTS
from jaxlab.robosplat.generate import GenerateSettings, generate_demos, open_writer, write_source_episode
from jaxlab.robosplat.sim.cameras import default_cameras
from jaxlab.robosplat.sim.source_demo import demo_images, record_source_demo
from jaxlab.robosplat.sim.world import CONTROL_HZ, OBJECTS
from jaxlab.robosplat.sim_assets import AssetSettings, build_scene_parts, load_scene_parts, save_scene_parts
from jaxlab.splat.exports import save_png, side_by_side
from jaxlab.train import LoopResult
from launch.config_loader import ConfigError
from launch.tasks.common import record_config

log = logging.getLogger(__name__)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Objects must be known and the settings valid (called by launch.run before the run)."""
  del mesh_sizes
  names = (config.scene.source_object, *config.generate.object_names)
  unknown = [n for n in names if n not in OBJECTS]
  if unknown:
    raise ConfigError(f"scene.source_object / generate.object_names: unknown object(s) {unknown}; "
                      f"choose from {sorted(OBJECTS)}")
  unknown = [n for n in config.generate.embodiments if n not in EMBODIMENTS]
  if unknown:
    raise ConfigError(f"generate.embodiments: unknown robot(s) {unknown}; choose from {sorted(EMBODIMENTS)}")
  try:
    generate_settings(config)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.generate / config.edits: {e}") from None


def asset_settings(config: ConfigDict) -> AssetSettings:
  s = config.scene
  return AssetSettings(num_views=s.num_views, capture_width=s.capture_width, oversample=s.oversample,
                       points_per_link=s.points_per_link, points_per_object=s.points_per_object,
                       background_points=s.background_points, fit_steps=s.fit_steps, seed=config.seed)


def generate_settings(config: ConfigDict, seed_offset: int = 0) -> GenerateSettings:
  g = config.generate
  return GenerateSettings(num_demos=g.num_demos, grid=tuple(g.grid), random_yaw=g.random_yaw,
                          object_names=tuple(g.object_names), embodiments=tuple(g.embodiments),
                          edits=EditSettings(**dict(config.edits)),
                          seed=config.seed + seed_offset)


def _preview(path: pathlib.Path, source_dir: pathlib.Path, generated_dir: pathlib.Path) -> np.ndarray | None:
  """Writes preview.png and returns its pixels, uint8 [H, W, 3]; None (no file) before any demonstration."""
  source = EpisodeDataset(source_dir)
  generated = EpisodeDataset(generated_dir)
  cameras = list(source.cameras)
  real = np.concatenate(list(source.frame_images(0, 0, cameras)), 0)
  shown = [np.concatenate(list(generated.frame_images(e, 0, cameras)), 0)
           for e in range(min(len(generated), 4))]
  if not shown:
    return None
  # the simulator's first frame | the first frames of up to four generated demonstrations
  image = side_by_side(real / 255.0, np.concatenate(shown, 1) / 255.0)
  save_png(path, image)
  return image


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  record_config(config, workdir)
  cameras = default_cameras(config.generate.image_size)
  demo = record_source_demo(object_name=config.scene.source_object)
  if not demo.success:
    raise RuntimeError("the scripted source demonstration did not place the object in the tray")
  source_dir = workdir / "source"
  if not (source_dir / "meta" / "info.json").is_file():
    with open_writer(source_dir, cameras, fps=CONTROL_HZ) as writer:
      write_source_episode(writer, demo, demo_images(demo, cameras))
  object_names = tuple(dict.fromkeys((demo.object_name, *config.generate.object_names)))
  parts_path = workdir / "scene_parts.npz"
  parts = load_scene_parts(parts_path) if parts_path.is_file() else None
  embodiments = tuple(config.generate.embodiments)
  # A rerun reuses the reconstruction when it has every object and robot asked for.
  if parts is None or not set(object_names) <= set(parts.objects) or not set(embodiments) <= set(parts.embodiments):
    parts = build_scene_parts(demo.spec, asset_settings(config), object_names=object_names, embodiments=embodiments)
    save_scene_parts(parts_path, parts)
  generated_dir = workdir / "generated"
  resume = (generated_dir / "meta" / "info.json").is_file()
  with open_writer(generated_dir, cameras, fps=CONTROL_HZ, resume=resume, embodiments=embodiments) as writer:
    remaining = config.generate.num_demos - writer.num_episodes
    report = None
    if remaining > 0:  # a rerun continues with fresh draws where the last one stopped
      settings = dataclasses.replace(generate_settings(config, seed_offset=writer.num_episodes), num_demos=remaining)
      report = generate_demos(writer, demo, parts, cameras, settings, stop_requested=stop_requested)
    total = writer.num_episodes
  summary = {"scene": parts.report, "episodes_in_dataset": total,
             "this_run": report.as_dict() if report is not None else "nothing left to generate"}
  files.write_text(workdir / "report.json", json.dumps(summary, indent=2, default=float) + "\n")
  preview = _preview(workdir / "preview.png", source_dir, generated_dir)
  if preview is not None and report is not None:  # a rerun that adds nothing shows nothing new
    with MetricWriter(workdir) as metric_writer:
      metric_writer.write_images(total, {"preview": preview})
  if report is not None:
    log.info("generated %d demonstrations (%d skipped as unreachable) at %.1f frames/s", report.written,
             report.skipped_unreachable, report.frames_per_second)
  metrics = {"episodes": float(total)}
  if report is not None:
    metrics.update(frames_per_second=report.frames_per_second, skipped_unreachable=float(report.skipped_unreachable))
  status = "preempted" if stop_requested() else "completed"
  return LoopResult(state=None, status=status, start_step=0, final_step=0, last_train_metrics={},
                    last_eval_metrics=metrics)
