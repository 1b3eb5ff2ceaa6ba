"""Open-loop error of trained RoboSplat policies on recorded episodes (no simulator needed).

  python benchmarks/robosplat_policy_open_loop.py --runs runs/pol_a runs/pol_b \
      --episodes runs/gen/source:0 runs/gen/generated:0 runs/gen/generated:50

For each policy run (a `configs/robosplat_policy.py` workdir: its newest checkpoint and
`normalizer.json`, the default "small" preset) and each episode, every frame's first
predicted action is compared with the recorded one: mean absolute joint error (rad) and the
fraction of frames whose gripper command agrees. Small per-step errors that look harmless
here compound in closed loop, which this separates from what the policy sees.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from configs.robosplat_policy import get_config
from jaxlab.checkpoint import Checkpointer
from jaxlab.robosplat.episodes import EpisodeDataset
from jaxlab.robosplat.policy import Normalizer, PolicyConfig, VisuomotorPolicy, init_policy_params
from jaxlab.train import TrainState
from launch.tasks.common import optimizer_from_config


def load_policy(run: pathlib.Path, preset: str, image_size: int):
  config = get_config()
  model = VisuomotorPolicy(PolicyConfig.preset(preset, chunk=config.policy.chunk, image_size=image_size))
  state = TrainState.create(init_policy_params(model, jax.random.key(0)),
                            optimizer_from_config(config.optimizer, config.train.num_steps))
  checkpointer = Checkpointer(run / "checkpoints", save_every=1, keep=1, async_save=False)
  try:
    restored = checkpointer.restore_latest(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))
  finally:
    checkpointer.close()
  if restored is None:
    raise SystemExit(f"{run}: no checkpoint to restore")
  stats = json.loads((run / "normalizer.json").read_text())
  normalizer = Normalizer(**{k: jnp.asarray(v, jnp.float32) for k, v in stats.items()})
  params = restored.state.params
  return jax.jit(lambda images, state: model.apply({"params": params}, images, state, normalizer))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", nargs="+", required=True)
  parser.add_argument("--episodes", nargs="+", required=True, help="DATASET:EPISODE_INDEX")
  parser.add_argument("--preset", default="small")
  parser.add_argument("--cameras", nargs="+", default=["front", "side"])
  args = parser.parse_args(argv)
  for run in map(pathlib.Path, args.runs):
    for spec in args.episodes:
      root, index = spec.rsplit(":", 1)
      dataset = EpisodeDataset(root)
      size = dataset.cameras[args.cameras[0]][0]
      forward = load_policy(run, args.preset, size)
      state_t8, action_t8 = dataset.state_action(int(index))
      images = np.stack([dataset.frame_images(int(index), f, args.cameras) for f in range(len(state_t8))])
      first = np.asarray(forward(images, state_t8))[:, 0]
      joint_error = float(np.abs(first[:, :7] - action_t8[:, :7]).mean())
      gripper = float(((first[:, 7] > 0) == (action_t8[:, 7] > 0.5)).mean())
      print(f"{run.name} on {spec}: joint error {joint_error:.4f} rad, gripper agreement {gripper:.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
