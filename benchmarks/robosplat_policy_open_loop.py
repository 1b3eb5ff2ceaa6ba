"""Open-loop checks of trained RoboSplat policies on recorded episodes (no simulator needed).

  python benchmarks/robosplat_policy_open_loop.py --runs runs/pol_a runs/pol_b \
      --episodes runs/gen/source:0 runs/gen/generated:0 runs/gen/generated:50 \
      --first-frames runs/gen/generated

Per policy run (a `configs/robosplat_policy.py` workdir, loaded by
`launch.tasks.robosplat_policy.load_trained_policy`):

* `--episodes DATASET:INDEX`: every frame's first predicted action against the recorded one:
  mean absolute joint error (rad) and the fraction of frames whose gripper command agrees.
  Small per-step errors compound in closed loop; this separates them from what the policy sees.
* `--first-frames DATASET`: at frame 0 every episode starts from the same joints, so only the
  images tell where the object is. The end-effector position the policy's first chunk leads
  to (forward kinematics of its last joint targets) is compared with the recorded one over
  all episodes: the spread of the recorded positions, the spread of the predicted ones, their
  correlation along x and y, and the mean error (m). A policy that ignores the object
  predicts one position for all (spread near 0).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax.numpy as jnp
import numpy as np

from jaxlab.robosplat import kinematics
from jaxlab.robosplat.embodiments import get_embodiment
from jaxlab.robosplat.episodes import EpisodeDataset
from launch.tasks.robosplat_policy import load_trained_policy


def per_frame_errors(runner, dataset: EpisodeDataset, index: int) -> tuple[float, float]:
  state_t8, action_t8 = dataset.state_action(index)
  firsts = []
  for f in range(len(state_t8)):
    images = dataset.frame_images(index, f, runner.camera_names)
    firsts.append(runner.plan(dict(zip(runner.camera_names, images)), state_t8[f])[0])
  first = np.stack(firsts)
  joint_error = float(np.abs(first[:, :7] - action_t8[:, :7]).mean())
  gripper = float(((first[:, 7] > 0) == (action_t8[:, 7] > 0.5)).mean())
  return joint_error, gripper


def first_frame_reach(runner, dataset: EpisodeDataset) -> dict[str, float]:
  chunk = runner.model.config.chunk
  predicted, recorded = [], []
  for e in range(len(dataset)):
    model = get_embodiment(dataset.metadata(e).get("embodiment", "panda")).model()
    state_t8, action_t8 = dataset.state_action(e)
    images = dataset.frame_images(e, 0, runner.camera_names)
    plan = runner.plan(dict(zip(runner.camera_names, images)), state_t8[0])
    last = min(chunk, len(action_t8)) - 1
    for joints, out in ((plan[last, :7], predicted), (action_t8[last, :7], recorded)):
      qpos = jnp.asarray(np.concatenate([joints, [0.04, 0.04]]), jnp.float32)
      out.append(np.asarray(kinematics.end_effector_pose(model, qpos))[:3, 3])
  predicted, recorded = np.stack(predicted), np.stack(recorded)
  corr = [float(np.corrcoef(predicted[:, i], recorded[:, i])[0, 1]) if predicted[:, i].std() > 0 else 0.0
          for i in range(2)]
  return {"recorded_spread_m": float(recorded[:, :2].std(0).mean()),
          "predicted_spread_m": float(predicted[:, :2].std(0).mean()),
          "corr_x": corr[0], "corr_y": corr[1], "error_m": float(np.linalg.norm(predicted - recorded, axis=1).mean())}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", nargs="+", required=True)
  parser.add_argument("--episodes", nargs="*", default=[], help="DATASET:EPISODE_INDEX")
  parser.add_argument("--first-frames", nargs="*", default=[], help="DATASET")
  args = parser.parse_args(argv)
  for run in map(pathlib.Path, args.runs):
    runner = load_trained_policy(run)
    for spec in args.episodes:
      root, index = spec.rsplit(":", 1)
      joint_error, gripper = per_frame_errors(runner, EpisodeDataset(root), int(index))
      print(f"{run.name} on {spec}: joint error {joint_error:.4f} rad, gripper agreement {gripper:.3f}")
    for root in args.first_frames:
      r = first_frame_reach(runner, EpisodeDataset(root))
      print(f"{run.name} first frames of {root}: recorded spread {r['recorded_spread_m']:.3f} m, predicted spread "
            f"{r['predicted_spread_m']:.3f} m, corr x {r['corr_x']:.2f} y {r['corr_y']:.2f}, "
            f"error {r['error_m']:.3f} m")
  return 0


if __name__ == "__main__":
  sys.exit(main())
