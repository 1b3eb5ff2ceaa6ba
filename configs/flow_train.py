r"""A small class-conditional DiT trained by flow matching on crops of scikit-image's photographs.

The model HiFlow guides (`benchmarks/hiflow_eval.py`). Data: random square crops (a quarter
to all of the shorter side) of the colour photographs bundled with scikit-image, flipped at
random and downscaled to `data.image_size`; the class is the source photograph (set
`data.conditional=False` for an unconditional model). Rectified flow, logit-normal sigmas.
Variants:

  default: 32 px, patch 4 (64 tokens), width 128, 6 blocks, 1,500 steps of 64 crops;
           40 min on 2 CPU cores shared with other jobs (1.1 steps/s once alone).
  smoke:   16 px, width 32, 2 blocks, 30 steps: the whole task in well under a minute.

  python -m launch.run --config=configs/flow_train.py --workdir=runs/flow_train

Outputs besides checkpoints and metrics: `model/` (DiT config and parameters, what
`benchmarks/hiflow_eval.py --model` reads), `samples.png` (a grid of native-resolution
samples, one row per class), `sample_stats.json` (structure statistics of samples against
noise and against real crops).
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "flow_train"
  c.seed = 0
  c.cpu_devices = 1  # On 2 cores, more fake devices only add communication.

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))

  c.data = ml_collections.ConfigDict(dict(
      image_size=32, min_crop_fraction=0.25, conditional=True, global_batch_size=64, prefetch_threads=1,
  ))
  c.model = ml_collections.ConfigDict(dict(
      patch_size=4, width=128, depth=6, num_heads=4, mlp_ratio=4.0, rope_theta=100.0,
  ))
  c.flow = ml_collections.ConfigDict(dict(sigma_kind="logit_normal", label_dropout=0.1))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, warmup_steps=100, final_lr_fraction=0.05, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=1500, log_every=50, eval_every=500, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=500, keep=2, async_save=True))
  # Native-resolution samples at the end: `per_class` per class (or 8 x 8 unconditional).
  c.sampling = ml_collections.ConfigDict(dict(num_steps=30, shift=1.0, guidance_scale=2.0, per_class=8, seed=1))

  if variant == "smoke":
    c.data.update(image_size=16, global_batch_size=8)
    c.model.update(width=32, depth=2, num_heads=2)
    c.optimizer.update(warmup_steps=5)
    c.train.update(num_steps=30, log_every=10, eval_every=15)
    c.checkpoint.update(save_every=15)
    c.sampling.update(num_steps=4, per_class=2)
  return c
