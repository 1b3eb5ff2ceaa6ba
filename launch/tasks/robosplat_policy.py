"""Trains a visuomotor policy on demonstrations and judges it in closed loop (configs/robosplat_policy.py).

Outputs in the workdir besides checkpoints and metrics: `normalizer.json` (the statistics the
policy's inputs and outputs are scaled by) and `closed_loop.json` (success rate per axis, and
per episode the variation, outcome and steps). With no `data.dir`, the source demonstration
is recorded into `workdir/source` first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable

import jax
import numpy as np
from ml_collections import ConfigDict

from jaxlab import files
from jaxlab.data import build_batches, make_global_batch
from jaxlab.robosplat.augment import AugmentSettings, make_augment
from jaxlab.robosplat.episodes import ChunkedFrameSource, EpisodeDataset, EpisodeFormatError
from jaxlab.robosplat.policy import (PolicyConfig, PolicyRunner, VisuomotorPolicy, action_chunks, dummy_inputs,
                                     fit_normalizer, make_policy_train_step)
from jaxlab.sharding import axis_rules, batch_sharding, init_sharded, logical_rules, make_mesh
from jaxlab.train import LoopResult, TrainState
from launch.config_loader import ConfigError
from launch.tasks.common import optimizer_from_config, run_train_loop
from launch.validate import require_batch_divisible

log = logging.getLogger(__name__)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """The batch must split over the mesh and `data.dir`, when given, must be a dataset."""
  require_batch_divisible(config, "data.global_batch_size", mesh_sizes)
  if config.data.dir and not (pathlib.Path(config.data.dir) / "meta" / "info.json").is_file():
    raise ConfigError(f"data.dir={config.data.dir!r} holds no meta/info.json; point it at a LeRobot-layout "
                      "folder (e.g. the `generated/` of configs/robosplat_generate.py) or leave it empty")
  from jaxlab.robosplat.sim.closed_loop import AXES  # noqa: PLC0415 (needs no simulator to import)

  unknown = [a for a in config.eval.axes if a not in AXES]
  if unknown:
    raise ConfigError(f"eval.axes: unknown axis {unknown}; choose from {AXES}")
  try:
    PolicyConfig.preset(config.policy.preset, chunk=config.policy.chunk, joint_targets=config.policy.joint_targets)
    AugmentSettings(**{k: v for k, v in dict(config.augment).items() if k != "enabled"})
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.policy / config.augment: {e}") from None


def _dataset_dir(config: ConfigDict, workdir: pathlib.Path) -> pathlib.Path:
  """`data.dir`, or the source demonstration recorded into workdir/source (process 0 writes it)."""
  if config.data.dir:
    return pathlib.Path(config.data.dir)
  source_dir = workdir / "source"
  if jax.process_index() == 0 and not (source_dir / "meta" / "info.json").is_file():
    from jaxlab.robosplat.generate import open_writer, write_source_episode  # noqa: PLC0415
    from jaxlab.robosplat.sim.cameras import default_cameras  # noqa: PLC0415
    from jaxlab.robosplat.sim.source_demo import demo_images, record_source_demo  # noqa: PLC0415
    from jaxlab.robosplat.sim.world import CONTROL_HZ  # noqa: PLC0415

    demo = record_source_demo()
    cameras = default_cameras(PolicyConfig.preset(config.policy.preset).image_size)
    with open_writer(source_dir, cameras, fps=CONTROL_HZ) as writer:
      write_source_episode(writer, demo, demo_images(demo, cameras))
  return source_dir


def _normalizer(dataset: EpisodeDataset, chunk: int):
  states, chunks, masks = [], [], []
  for e in range(len(dataset)):
    state_t8, action_t8 = dataset.state_action(e)
    c, m = action_chunks(action_t8, chunk)
    states.append(state_t8), chunks.append(c), masks.append(m)
  return fit_normalizer(np.concatenate(states), np.concatenate(chunks), np.concatenate(masks))


def closed_loop(config: ConfigDict, runner: PolicyRunner, image_size: int) -> dict:
  """Success per axis of `config.eval` in the simulator, cameras at the policy's image size."""
  from jaxlab.robosplat.sim.cameras import default_cameras  # noqa: PLC0415
  from jaxlab.robosplat.sim.closed_loop import evaluate, sample_variations  # noqa: PLC0415

  e = config.eval
  variations = [v for axis in e.axes for v in sample_variations(axis, e.episodes_per_axis, seed=e.seed)]
  result = evaluate(runner, variations, max_steps=e.max_steps, cameras=default_cameras(image_size))
  result["episodes"] = [{"axis": v.axis, "object": v.object_name, "object_xy_yaw": v.object_xy_yaw,
                         "table_texture": v.table_texture, "success": s, "steps": n}
                        for v, s, n in zip(variations, result.pop("successes"), result.pop("steps"))]
  return result


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(("data",))
  data_dir = _dataset_dir(config, workdir)
  try:
    dataset = EpisodeDataset(data_dir)
  except (OSError, EpisodeFormatError) as error:
    raise ConfigError(f"data.dir {data_dir}: {error}") from None
  cameras = tuple(config.data.cameras)
  source = ChunkedFrameSource(dataset, chunk_size=config.policy.chunk, cameras=cameras)
  image_size = dataset.cameras[cameras[0]][0]
  policy_config = PolicyConfig.preset(config.policy.preset, chunk=config.policy.chunk, num_cameras=len(cameras),
                                      image_size=image_size, joint_targets=config.policy.joint_targets)
  normalizer = _normalizer(dataset, policy_config.chunk)
  files.write_text(workdir / "normalizer.json", json.dumps(
      {f.name: np.asarray(getattr(normalizer, f.name)).tolist() for f in dataclasses.fields(normalizer)}) + "\n")
  log.info("policy data: %s (%d episodes, %d frames), cameras %s at %d px", data_dir, len(dataset),
           dataset.num_frames, cameras, image_size)
  model = VisuomotorPolicy(policy_config)
  optimizer = optimizer_from_config(config.optimizer, config.train.num_steps)
  augment = None
  if config.augment.enabled:
    augment = make_augment(AugmentSettings(**{k: v for k, v in dict(config.augment).items() if k != "enabled"}))
  batches = build_batches(source, global_batch_size=config.data.global_batch_size, seed=config.seed,
                          prefetch_threads=config.data.prefetch_threads)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  shardings = {"images": batch_sharding(mesh, rules, ndim=5), "state": batch_sharding(mesh, rules, ndim=2),
               "actions": batch_sharding(mesh, rules, ndim=3), "action_mask": batch_sharding(mesh, rules, ndim=2)}
  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(model.init, init_rng, *dummy_inputs(policy_config), mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_policy_train_step(model, optimizer, normalizer, augment=augment, state_shardings=state_shardings,
                                        batch_shardings=shardings)
    result = run_train_loop(state, config, workdir, train_step=train_step, batches=batches,
                            to_device=lambda b: make_global_batch(b, shardings["images"]), rng=train_rng,
                            evaluate=None, stop_requested=stop_requested)
  if result.status != "completed" or jax.process_index() != 0:
    return result
  params = jax.device_get(result.state.params)
  runner = PolicyRunner(model, params, normalizer, cameras, execute_steps=config.eval.execute_steps)
  report = {"data_dir": str(data_dir), "train_episodes": len(dataset), "train_frames": dataset.num_frames,
            **closed_loop(config, runner, image_size)}
  files.write_text(workdir / "closed_loop.json", json.dumps(report, indent=2) + "\n")
  log.info("closed loop: success %.2f over %d episodes; by axis %s", report["success_rate"], report["num_episodes"],
           report["by_axis"])
  metrics = {f"success/{axis}": rate for axis, rate in report["by_axis"].items()}
  metrics["success_rate"] = report["success_rate"]
  return LoopResult(state=result.state, status=result.status, start_step=result.start_step,
                    final_step=result.final_step, last_train_metrics=result.last_train_metrics,
                    last_eval_metrics=metrics)
