r"""MM-IFEngine's DPO at small scale: SFT (configs/mmif_sft.py), then MM-IFDPO pairs and DPO under each rejection variant.

Pairs (`jaxlab.mmif.dpo_pairs`): for `pairs.num_prompts` training items, chosen = the item's response
(meeting >= 80 % of its constraints), rejected = the SFT model's greedy answer to a degraded prompt:
drop 1/3, 2/3 or all constraints, or drop the image (the paper's four variants; it calls dropping all
the best). One sigmoid DPO run per variant from the SFT weights, the SFT model as the frozen
reference (beta `posttrain.beta`; the paper does not state its beta, LLaMA-Factory's default is 0.1).
`results.md`: rule-checked C-Level on held-out items, SFT against SFT + DPO for each variant.

Deviations at this scale: a tiny VLM trained here instead of Qwen2-VL-7B; the rejecting model is the
SFT model itself (the paper uses Qwen2-VL-7B-Instruct); the DPO learning rate is far above the
paper's 5e-7, which moves a model this small nothing in a few hundred steps.

Variants:
  default: see docs/PERFORMANCE.md for its table and time on 2 CPU cores.
  smoke:   the smoke SFT, a few pairs and two DPO steps per variant, for tests.

  python -m launch.run --config=configs/mmif_dpo.py --workdir=runs/mmif_dpo
"""

import ml_collections

from configs import mmif_sft
from configs.common import pick_variant

VARIANTS = ("default", "smoke")
REJECTIONS = ("drop_third", "drop_two_thirds", "drop_all", "drop_image")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "mmif_dpo"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.sft = mmif_sft.get_config(variant)
  c.pairs = ml_collections.ConfigDict(dict(num_prompts=1024, max_length=192, skip_rejected_meeting_all=False))
  c.posttrain = ml_collections.ConfigDict(dict(variants=REJECTIONS, beta=0.1, global_batch_size=16,
                                               prefetch_threads=1))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-5, warmup_steps=10, final_lr_fraction=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=200, log_every=50, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=1, async_save=True))

  if variant == "smoke":
    c.pairs.update(num_prompts=8, max_length=160)
    c.posttrain.update(global_batch_size=8)
    c.train.update(num_steps=2, log_every=1)
  return c
