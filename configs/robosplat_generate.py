r"""RoboSplat demonstration generation in the pybullet tabletop (`jaxlab.robosplat`).

  python -m launch.run --config=configs/robosplat_generate.py --workdir=runs/robosplat_generate

Records the one scripted source demonstration (pick the red cube, place it in the tray),
captures the scene from many views, reconstructs it as Gaussians (background fitted with
jaxlab's 3DGS fitting, robot links and objects from their meshes coloured by the masked
captures), then generates demonstrations: object positions on the spec's 10 x 10 grid with
random yaw, motion by inverse kinematics between the transformed keyframes, lighting, table
texture and camera edits drawn per frame. Writes, in the workdir:

  source/      the source demonstration with the simulator's images (LeRobot v2.1 layout)
  generated/   the generated demonstrations (the same layout; resumed when present)
  report.json  reconstruction PSNR, demos written and skipped (with reasons), frames/s
  preview.png  first frames of a few generated demonstrations beside the simulator's

Variants:
  default: 24 orbit views, 300 fitting steps, 100 demonstrations of 2 x 64 x 64 images.
  smoke:   6 views, 4 fitting steps, 2 demonstrations of 32 x 32 images, for tests.
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "robosplat_generate"
  c.seed = 0
  c.cpu_devices = 1  # one render program per demonstration; more devices are allowed and idle
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.scene = ml_collections.ConfigDict(dict(
      source_object="cube",
      num_views=24, capture_width=64, oversample=2,
      points_per_link=500, points_per_object=600, background_points=6000, fit_steps=300,
  ))
  c.generate = ml_collections.ConfigDict(dict(
      num_demos=100, grid=(10, 10), random_yaw=True,
      object_names=("cube",),  # object-type replacement: e.g. ("cube", "lego", "duck", "cylinder")
      embodiments=("panda",),  # embodiment replacement: e.g. ("panda", "iiwa")
      image_size=64,
  ))
  c.edits = ml_collections.ConfigDict(dict(
      lighting=True, lighting_prob=0.5, texture=True, texture_prob=0.5, camera_jitter=True, camera_prob=0.5,
      per_episode=False,  # False: re-drawn every frame, as the released generator does
  ))
  if variant == "smoke":
    c.scene.update(num_views=6, capture_width=32, oversample=1, points_per_link=60, points_per_object=80,
                   background_points=800, fit_steps=4)
    c.generate.update(num_demos=2, grid=(2, 2), image_size=32)
  return c
