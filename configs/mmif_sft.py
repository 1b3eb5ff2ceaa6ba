r"""MM-IFEngine's SFT at small scale: image tasks with rule-checkable constraints, SFT of a tiny VLM, rule C-Level.

Data (`jaxlab.mmif.synthetic`, or an MM-IFInstruct jsonl with `data.source="jsonl"`): 1 to 3 coloured
shapes on a 56 px tile; a task of one of the five MM-IFEngine types; 1 to 4 constraints drawn from ten
rule writers (paragraph, sentence and word counts, prefixes and suffixes, punctuation, keyword
mention / count / ban, spelled-out numbers, percentage and number precision), contradictory ones
rejected (`jaxlab.mmif.compatibility`); the teacher's response, kept when it meets >= 80 % of the
constraints. Model: a tiny InternVL-style VLM trained from scratch (`launch.tasks.mmif_sft`).
Evaluation: greedy answers to held-out items (new scenes and draws), every constraint checked by the
rule verifiers; C-Level as MM-IFEval defines it.

Variants:
  default: see docs/PERFORMANCE.md for its table and time on 2 CPU cores.
  smoke:   a few items, a one-layer LM and a few steps, for tests.

  python -m launch.run --config=configs/mmif_sft.py --workdir=runs/mmif_sft
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "mmif_sft"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.data = ml_collections.ConfigDict(dict(
      source="generated", num_train=3000, num_eval=512, min_constraints=1, max_constraints=4, tile_size=56,
      max_length=192, global_batch_size=16, prefetch_threads=1,
      # source="jsonl": MM-IFInstruct files (jaxlab.mmif.engine layout), image paths relative to each file.
      train_jsonl="", eval_jsonl="",
  ))
  c.model = ml_collections.ConfigDict(dict(
      patch_size=14, downsample_ratio=0.5,
      vision_hidden=64, vision_layers=2, vision_heads=2,
      lm_hidden=128, lm_layers=3, lm_heads=4, lm_kv_heads=2,
      freeze_vision=False,
  ))
  c.loss = ml_collections.ConfigDict(dict(weighting="token"))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=2e-3, warmup_steps=50, final_lr_fraction=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=1000, log_every=100, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=1, async_save=True))
  c.evaluation = ml_collections.ConfigDict(dict(batch_size=64, max_new_tokens=96))

  if variant == "smoke":
    c.data.update(num_train=16, num_eval=8, max_length=160, global_batch_size=8)
    c.model.update(vision_hidden=32, vision_layers=1, lm_hidden=32, lm_layers=1, lm_heads=2, lm_kv_heads=1)
    c.train.update(num_steps=3, log_every=1)
    c.evaluation.update(batch_size=8, max_new_tokens=16)
  return c
