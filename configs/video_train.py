r"""Structural Video Diffusion at small scale: animate a reference image of several people into a video
driven by their 2-D poses and a camera path, denoising RGB (and depth and normals) jointly by rectified flow.

Data (`jaxlab.video.synthetic`, or clip folders in the `jaxlab.video.disk` layout with `data.source="disk"`):
2 to 5 articulated figures with distinct clothes walk, turn, cross and occlude each other under a moving
camera; each clip has RGB, depth, normals, identity masks, OpenPose-18 poses and cameras. Test clips are
drawn from other seeds. Model (`jaxlab.video.model`): a pixel-space spatio-temporal transformer with
reference attention, a pose guider, Plücker camera maps, identity embeddings through a zero-initialized
convolution (`model.identity`) and modality branches for depth and normals (`model.modalities`).

Variants, the spec's ablation (Structural Video Diffusion, Table 'baseline / + ID / + multi-modality / both'):
  default:    identity embeddings and RGB + depth + normal branches ("both").
  baseline:   RGB only, no identity embeddings.
  identity:   RGB only, with identity embeddings.
  structure:  RGB + depth + normal branches, no identity embeddings.
  no_normal:  identity embeddings and RGB + depth (the normal branch switched off).
  smoke:      a few tiny clips and steps, for tests.

  python -m launch.run --config=configs/video_train.py --workdir=runs/video_both
  python -m launch.run --config=configs/video_train.py:baseline --workdir=runs/video_baseline
  # Frames split over 4 devices for the temporal attention (context parallel):
  python -m launch.run --config=configs/video_train.py --workdir=runs/video_cp \
      --config.mesh.context=4 --config.mesh.data=-1 --config.sharding.presets='("data","context")'
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "baseline", "identity", "structure", "no_normal", "smoke")
ALL_MODALITIES = ("rgb", "depth", "normal")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "video_train"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, context=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.data = ml_collections.ConfigDict(dict(
      source="generated", num_train=384, num_test=16, num_frames=8, image_size=32, min_people=2, max_people=5,
      num_identities=5, global_batch_size=8, prefetch_threads=1,
      # source="disk": folders of clips in the jaxlab.video.disk layout.
      train_root="", test_root="",
  ))
  c.model = ml_collections.ConfigDict(dict(
      modalities=ALL_MODALITIES, identity=True, identity_channels=16, patch_size=4, width=64, depth=4, num_heads=4,
      mlp_ratio=4.0, use_pose=True, use_camera=True, use_reference=True,
  ))
  c.flow = ml_collections.ConfigDict(dict(sigma_kind="logit_normal"))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=5e-4, warmup_steps=50, final_lr_fraction=0.1, b1=0.9, b2=0.99, weight_decay=0.01,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=600, log_every=50, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=300, keep=1, async_save=True))
  c.evaluation = ml_collections.ConfigDict(dict(batch_size=8, num_steps=16, seed=1234, gif_clips=4))

  if variant == "baseline":
    c.model.update(modalities=("rgb",), identity=False)
  elif variant == "identity":
    c.model.update(modalities=("rgb",), identity=True)
  elif variant == "structure":
    c.model.update(modalities=ALL_MODALITIES, identity=False)
  elif variant == "no_normal":
    c.model.update(modalities=("rgb", "depth"), identity=True)
  elif variant == "smoke":
    c.data.update(num_train=8, num_test=8, num_frames=4, image_size=16, max_people=3, num_identities=3)
    c.model.update(width=16, depth=3, num_heads=2, identity_channels=4)
    c.train.update(num_steps=3, log_every=1)
    c.checkpoint.update(save_every=3)
    c.evaluation.update(num_steps=2, gif_clips=2)
  return c
