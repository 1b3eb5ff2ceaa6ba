r"""A visuomotor policy (2 cameras + joint state -> a chunk of joint targets and gripper
commands) trained on RoboSplat demonstrations, then judged in closed loop in pybullet.

  # (a) the one source demonstration with 2D augmentation (recorded here when data.dir is empty)
  python -m launch.run --config=configs/robosplat_policy.py --workdir=runs/policy_source
  # (b) the generated demonstrations
  python -m launch.run --config=configs/robosplat_policy.py --workdir=runs/policy_generated \
      --config.data.dir=runs/robosplat_generate/generated

`data.dir` is any folder in the LeRobot v2.1 layout jaxlab writes (`jaxlab.robosplat.episodes`)
with cameras `data.cameras`; `data.extra_dirs` mixes more such folders in. By default the
policy has an object-position head (trained on each episode's object position) and noise on
its joint state in training: without them a policy trained on generated demonstrations
ignored the object (docs/robosplat.md). After training, the policy drives the simulated robot with the
simulator's own camera images over `eval.axes` (`jaxlab.robosplat.sim.closed_loop`):
held-out object poses, object types, camera placements, lighting, table textures and
the other robot.
Writes `closed_loop.json` (success per axis and per episode) besides checkpoints and metrics.

Variants:
  default: the "small" policy at 64 x 64, 3,000 steps of 64 frames, 10 episodes per axis.
  smoke:   the "tiny" policy at 32 x 32, 6 steps of 4 frames, 1 nominal episode of 6 steps.
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "robosplat_policy"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.data = ml_collections.ConfigDict(dict(
      dir="",  # a LeRobot-layout folder; empty: the source demonstration, recorded into workdir/source
      extra_dirs=(),  # more LeRobot-layout folders (same cameras) mixed in, e.g. a second generation run
      cameras=("front", "side"), global_batch_size=64, prefetch_threads=1,
  ))
  c.policy = ml_collections.ConfigDict(dict(
      preset="small", chunk=8, joint_targets="delta",
      # An object-position head on the image keypoints, trained on the episodes' object
      # positions (0: none); without it a policy on generated demonstrations ignored the object.
      object_weight=1.0,
      state_noise=0.1,  # std of the noise on the state's arm joints in training, in units of their dataset std
  ))
  c.augment = ml_collections.ConfigDict(dict(
      enabled=True, shift=0.08, scale=0.08, rotation_degrees=5.0, brightness=0.2, contrast=0.2, saturation=0.2,
      channel_gain=0.05,
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, warmup_steps=100, final_lr_fraction=0.05, b1=0.9, b2=0.999, weight_decay=1e-4,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=3000, log_every=100, eval_every=1000, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=2, async_save=True))
  c.eval = ml_collections.ConfigDict(dict(
      axes=("nominal", "object_pose", "object_type", "camera", "lighting", "table_texture", "embodiment"),
      episodes_per_axis=10, max_steps=100, execute_steps=4, seed=1,
  ))
  if variant == "smoke":
    c.data.global_batch_size = 8
    c.policy.preset = "tiny"
    c.train.update(num_steps=6, log_every=3, eval_every=3)
    c.checkpoint.update(save_every=3)
    c.optimizer.update(warmup_steps=2)
    c.eval.update(axes=("nominal",), episodes_per_axis=1, max_steps=6)
  return c
