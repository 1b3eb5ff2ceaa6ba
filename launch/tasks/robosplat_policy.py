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
from jaxlab.robosplat.episodes import ChunkedFrameSource, ConcatSource, EpisodeDataset, EpisodeFormatError
from jaxlab.robosplat.policy import (Normalizer, ObjectStats, PolicyConfig, PolicyRunner, VisuomotorPolicy,
                                     action_chunks, dummy_inputs, fit_normalizer, init_policy_params,
                                     make_policy_train_step)
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
  for extra in config.data.extra_dirs:
    if not (pathlib.Path(extra) / "meta" / "info.json").is_file():
      raise ConfigError(f"data.extra_dirs: {extra!r} holds no meta/info.json; every entry must be a "
                        "LeRobot-layout folder")
  from jaxlab.robosplat.sim.closed_loop import AXES  # noqa: PLC0415 (needs no simulator to import)

  unknown = [a for a in config.eval.axes if a not in AXES]
  if unknown:
    raise ConfigError(f"eval.axes: unknown axis {unknown}; choose from {AXES}")
  if config.policy.object_weight < 0 or config.policy.state_noise < 0:
    raise ConfigError(f"policy.object_weight and policy.state_noise must be >= 0; got {config.policy.object_weight} "
                      f"and {config.policy.state_noise}")
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


def _open_datasets(config: ConfigDict, workdir: pathlib.Path) -> list[EpisodeDataset]:
  """`data.dir` (or the recorded source demonstration) and `data.extra_dirs`, opened."""
  datasets = []
  for data_dir in (_dataset_dir(config, workdir), *map(pathlib.Path, config.data.extra_dirs)):
    try:
      datasets.append(EpisodeDataset(data_dir))
    except (OSError, EpisodeFormatError) as error:
      raise ConfigError(f"data.dir {data_dir}: {error}") from None
  cameras = tuple(config.data.cameras)
  for dataset in datasets[1:]:
    for camera in cameras:
      if dataset.cameras.get(camera) != datasets[0].cameras.get(camera):
        raise ConfigError(f"data: camera {camera!r} is {dataset.cameras.get(camera)} in {dataset.root} but "
                          f"{datasets[0].cameras.get(camera)} in {datasets[0].root}; the datasets cannot be mixed")
  return datasets


def _normalizer(datasets: list[EpisodeDataset], chunk: int):
  states, chunks, masks = [], [], []
  for dataset in datasets:
    for e in range(len(dataset)):
      state_t8, action_t8 = dataset.state_action(e)
      c, m = action_chunks(action_t8, chunk)
      states.append(state_t8), chunks.append(c), masks.append(m)
  return fit_normalizer(np.concatenate(states), np.concatenate(chunks), np.concatenate(masks))


def _object_stats(datasets: list[EpisodeDataset]) -> ObjectStats:
  """Standardization of the episodes' object positions (metadata "object_xy_yaw")."""
  positions = [d.metadata(e).get("object_xy_yaw") for d in datasets for e in range(len(d))]
  positions = [p[:2] for p in positions if p is not None and len(p) >= 2]
  if not positions:
    raise ConfigError(f"policy.object_weight > 0 but no episode of {[str(d.root) for d in datasets]} records its "
                      "object position (metadata 'object_xy_yaw'); set policy.object_weight=0")
  return ObjectStats.fit(positions)


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


def load_trained_policy(workdir: str | pathlib.Path, *, execute_steps: int | None = None) -> PolicyRunner:
  """The newest checkpoint of a finished run of this task as a closed-loop `PolicyRunner`.

  Reads the run's `config.json` (policy shape, cameras) and `normalizer.json`; the image size
  is the one the run trained at (its `policy_config.json` entry). Errors name what is missing.
  """
  from jaxlab.checkpoint import Checkpointer  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  for name in ("config.json", "normalizer.json", "policy_config.json"):
    if not (workdir / name).is_file():
      raise FileNotFoundError(f"{workdir} is not a finished robosplat_policy run: no {name}")
  config = json.loads((workdir / "config.json").read_text())
  policy_config = PolicyConfig(**json.loads((workdir / "policy_config.json").read_text()))
  normalizer = Normalizer.from_dict(json.loads((workdir / "normalizer.json").read_text()))
  model = VisuomotorPolicy(policy_config)
  optimizer = optimizer_from_config(ConfigDict(config["optimizer"]), config["train"]["num_steps"])
  abstract = jax.eval_shape(lambda: TrainState.create(init_policy_params(model, jax.random.key(0)), optimizer))
  checkpointer = Checkpointer(workdir / "checkpoints", save_every=1, keep=1, async_save=False)
  try:
    restored = checkpointer.restore_latest(abstract)
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"{workdir / 'checkpoints'} holds no checkpoint")
  steps = config["eval"]["execute_steps"] if execute_steps is None else execute_steps
  return PolicyRunner(model, restored.state.params, normalizer, tuple(config["data"]["cameras"]),
                      execute_steps=steps)


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  mesh = make_mesh(dict(config.mesh))
  rules = logical_rules(("data",))
  datasets = _open_datasets(config, workdir)
  cameras = tuple(config.data.cameras)
  use_object = config.policy.object_weight > 0
  object_stats = _object_stats(datasets) if use_object else None
  sources = [ChunkedFrameSource(d, chunk_size=config.policy.chunk, cameras=cameras, object_positions=use_object)
             for d in datasets]
  source = sources[0] if len(sources) == 1 else ConcatSource(sources)
  image_size = datasets[0].cameras[cameras[0]][0]
  policy_config = PolicyConfig.preset(config.policy.preset, chunk=config.policy.chunk, num_cameras=len(cameras),
                                      image_size=image_size, joint_targets=config.policy.joint_targets,
                                      object_head=use_object)
  normalizer = _normalizer(datasets, policy_config.chunk)
  files.write_text(workdir / "normalizer.json", json.dumps(normalizer.as_dict()) + "\n")
  files.write_text(workdir / "policy_config.json", json.dumps(dataclasses.asdict(policy_config)) + "\n")
  num_episodes, num_frames = sum(len(d) for d in datasets), sum(d.num_frames for d in datasets)
  log.info("policy data: %s (%d episodes, %d frames), cameras %s at %d px", [str(d.root) for d in datasets],
           num_episodes, num_frames, cameras, image_size)
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
  if use_object:
    shardings.update(object_xy=batch_sharding(mesh, rules, ndim=2), object_mask=batch_sharding(mesh, rules, ndim=1))
  with jax.set_mesh(mesh), axis_rules(rules):
    variables, _ = init_sharded(model.init, init_rng, *dummy_inputs(policy_config), mesh=mesh, rules=rules)
    state = jax.jit(lambda p: TrainState.create(p, optimizer))(variables["params"])
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    train_step = make_policy_train_step(model, optimizer, normalizer, augment=augment,
                                        state_noise=config.policy.state_noise, object_weight=config.policy.object_weight,
                                        object_stats=object_stats, state_shardings=state_shardings,
                                        batch_shardings=shardings)
    result = run_train_loop(state, config, workdir, train_step=train_step, batches=batches,
                            to_device=lambda b: make_global_batch(b, shardings["images"]), rng=train_rng,
                            evaluate=None, stop_requested=stop_requested)
  if result.status != "completed" or jax.process_index() != 0:
    return result
  params = jax.device_get(result.state.params)
  runner = PolicyRunner(model, params, normalizer, cameras, execute_steps=config.eval.execute_steps)
  report = {"data_dirs": [str(d.root) for d in datasets], "train_episodes": num_episodes, "train_frames": num_frames,
            **closed_loop(config, runner, image_size)}
  files.write_text(workdir / "closed_loop.json", json.dumps(report, indent=2) + "\n")
  log.info("closed loop: success %.2f over %d episodes; by axis %s", report["success_rate"], report["num_episodes"],
           report["by_axis"])
  metrics = {f"success/{axis}": rate for axis, rate in report["by_axis"].items()}
  metrics["success_rate"] = report["success_rate"]
  return LoopResult(state=result.state, status=result.status, start_step=result.start_step,
                    final_step=result.final_step, last_train_metrics=result.last_train_metrics,
                    last_eval_metrics=metrics)
