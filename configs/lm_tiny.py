r"""A tiny decoder-only LM that learns to sort token sequences.

The task has a known solution (the sorted half of each sequence is fully determined by the
first half), so accuracy says whether the whole stack (data, sharding, model, op, optimizer,
loop) works. Variants:

  default: length-12 sequences over 16 symbols, 4 layers.
  smoke:   length-8 sequences over 8 symbols, 2 layers, 300 steps; reaches >= 0.90 held-out
           token accuracy on the sorted half in about a minute on 2 CPU cores (a test checks it).

  python -m launch.run --config=configs/lm_tiny.py:smoke --workdir=/tmp/lm_tiny
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")

# Held-out token accuracy the smoke variant must reach (asserted by tests/e2e/test_lm_tiny.py).
SMOKE_TARGET_ACCURACY = 0.90


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "lm_tiny"
  c.seed = 0
  c.cpu_devices = 4  # fake devices when the run is on CPU, so the mesh below is real

  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1, expert=1))  # any device count
  c.sharding = ml_collections.ConfigDict(dict(presets=("data", "fsdp"), min_sharded_size=4096))

  c.data = ml_collections.ConfigDict(
      dict(length=12, num_symbols=16, num_train_examples=1 << 24, num_eval_examples=512, global_batch_size=64, prefetch_threads=1)
  )
  c.model = ml_collections.ConfigDict(
      dict(embed_dim=128, num_layers=4, num_heads=4, head_dim=32, mlp_dim=512, rope_base=10_000.0, norm_eps=1e-6, dtype="float32")
  )
  c.optimizer = ml_collections.ConfigDict(
      dict(learning_rate=2e-3, warmup_steps=100, final_lr_fraction=0.05, b1=0.9, b2=0.98, weight_decay=0.01, grad_clip_norm=1.0)
  )
  c.train = ml_collections.ConfigDict(dict(num_steps=3000, log_every=50, eval_every=500, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=500, keep=3, async_save=True))

  if variant == "smoke":
    c.data.update(length=8, num_symbols=8, global_batch_size=64)
    c.model.update(embed_dim=64, num_layers=2, num_heads=4, head_dim=16, mlp_dim=256)
    c.optimizer.update(learning_rate=3e-3, warmup_steps=30)
    c.train.update(num_steps=300, log_every=20, eval_every=100)
    c.checkpoint.update(save_every=50, keep=3)
  return c


def get_sweep() -> list[dict]:
  """Learning rate x depth, on whatever variant the config spec selects."""
  return [{"optimizer.learning_rate": lr, "model.num_layers": layers} for lr in (1e-3, 3e-3) for layers in (2, 4)]
