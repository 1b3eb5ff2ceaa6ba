r"""Supervised fine-tuning of a tiny random InternVL-style VLM on the synthetic shapes task.

Data (`jaxlab.vlm.shapes_task`): one red/green/blue square/circle/triangle on a white tile, the
question "What is in the image?", the answer "<colour> <shape>". The loss is `jaxlab.vlm.sft_loss`
on the answer tokens (`loss.weighting`: "sqrt", InternVL's square averaging, or "token" / "sample");
`model.freeze_vision` keeps the vision tower fixed (zero updates). `data.v2pe`: "off" (positions 0, 1,
2, ...) or "sample" (V2PE: each training image's tokens step by a delta drawn from {1, 1/2, ..., 1/256};
evaluation and generation use `data.v2pe_eval_delta`). `data.task="counting"` swaps in the harder task of
`jaxlab.vlm.counting_task` (1 to `data.max_shapes` shapes; the answer counts each colour, then the total;
sizes `data.min_fraction`..`max_fraction` must then be at most 0.5), which `configs/vlm_mpo.py` starts from.
At the end, greedy generation
on held-out records gives the exact-answer accuracy (`accuracy.json`).
Variants:

  default: 56 px tiles (4 image tokens), vision 64 wide x 2 layers, LM 64 wide x 2 layers, 600 steps of 32:
           answer accuracy 1.00 on the 96 held-out records, eval loss 4.5e-4, in 80 s on 2 CPU cores
           (`python -m launch.run --config=configs/vlm_sft.py --workdir=...`, 2026-11-26). With
           `--config.data.v2pe=sample`: 1.00 as well, decoding at delta 1 (eval loss 1.2e-3) and at
           delta 1/16 (`--config.data.v2pe_eval_delta=0.0625`, eval loss 9.5e-4), 66 s each.
  smoke:   28 px tiles (2 x 2 patches -> 1 image token after pixel shuffle), vision 48 x 2, LM 32 x 1,
           800 steps of 32: >= 0.9 answer accuracy on 96 held-out records (SMOKE_MIN_ACCURACY); the
           in-process test took 3 to 5 minutes on 2 shared CPU cores (8 fake devices).

Shapes span 60-100% of the tile: at 40-80% the smoke model reached only 0.5-0.7 accuracy in 300-900 steps.

  python -m launch.run --config=configs/vlm_sft.py:smoke --workdir=runs/vlm_sft
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")
SMOKE_MIN_ACCURACY = 0.9  # What the smoke variant reaches (checked by tests/e2e/test_vlm_sft.py).


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "vlm_sft"
  c.seed = 0
  c.cpu_devices = 1

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))

  c.data = ml_collections.ConfigDict(dict(
      task="shapes", tile_size=56, min_fraction=0.6, max_fraction=1.0, global_batch_size=32, prefetch_threads=1,
      num_eval=96, v2pe="off", v2pe_eval_delta=1.0, max_shapes=4,
  ))
  c.model = ml_collections.ConfigDict(dict(
      patch_size=14, downsample_ratio=0.5,
      vision_hidden=64, vision_layers=2, vision_heads=2,
      lm_hidden=64, lm_layers=2, lm_heads=2, lm_kv_heads=1,
      freeze_vision=False,
  ))
  c.loss = ml_collections.ConfigDict(dict(weighting="sqrt"))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, warmup_steps=30, final_lr_fraction=0.05, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=600, log_every=50, eval_every=200, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=1, async_save=True))

  if variant == "smoke":
    c.data.update(tile_size=28)
    c.model.update(vision_hidden=48, vision_layers=2, lm_hidden=32, lm_layers=1)
    c.train.update(num_steps=800, log_every=100, eval_every=400)
    c.checkpoint.update(save_every=1000)
  return c
