r"""A small mixture-of-experts LM trained on the Shakespeare plays: the model MxMoE quantizes.

Qwen2-MoE layout (routed experts, one shared expert with a sigmoid gate, q/k/v bias),
byte-level BPE trained on the training plays, Hamlet and The Tempest held out whole.
Variants:

  default: 4 layers, width 128, 8 experts (top-2) of width 128 plus a gated shared expert,
           vocabulary 4096, 128-token windows, 1,200 steps of 16 windows (about 1.6
           passes over the 1.56M training tokens); sized to train in under 30 minutes on 2
           CPU cores.
  smoke:   2 layers, width 128 (the smallest that 128-row quantization groups allow), 4
           experts, 40 steps: the whole pipeline in about a minute.

  python -m launch.run --config=configs/moe_lm.py --workdir=runs/moe_lm
  # then: python -m launch.run --config=configs/mxmoe_quantize.py --config.model=runs/moe_lm/model ...
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "moe_lm"
  c.seed = 0
  c.cpu_devices = 1  # one device: on 2 cores, more fake devices only add communication

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))

  c.data = ml_collections.ConfigDict(dict(
      vocab_size=4096, validation_plays=("hamlet", "tempest"), seq_len=128, global_batch_size=16,
      num_eval_windows=64, prefetch_threads=1,
  ))
  c.model = ml_collections.ConfigDict(dict(
      architecture="qwen2_moe", hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32,
      num_experts=8, top_k=2, moe_intermediate_size=128, norm_topk_prob=False,
      shared_expert_intermediate_size=128, shared_expert_gate=True, attention_bias=True,
      rope_theta=10_000.0, rms_norm_eps=1e-6, max_position_embeddings=2048, tie_word_embeddings=False,
      router_aux_loss_coef=0.01, dtype="float32",
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, warmup_steps=100, final_lr_fraction=0.1, b1=0.9, b2=0.95, weight_decay=0.1,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=1200, log_every=50, eval_every=200, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=200, keep=2, async_save=True))
  # Sliding-window perplexity over the held-out plays at the end (max_tokens 0 = all of them).
  c.evaluation = ml_collections.ConfigDict(dict(stride=64, batch_size=16, max_tokens=0))

  if variant == "smoke":
    c.data.update(vocab_size=512, seq_len=32, global_batch_size=8, num_eval_windows=8)
    c.model.update(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=64, num_experts=4,
                   moe_intermediate_size=128, shared_expert_intermediate_size=128, max_position_embeddings=256)
    c.optimizer.update(warmup_steps=5)
    c.train.update(num_steps=40, log_every=10, eval_every=20)
    c.checkpoint.update(save_every=20)
    c.evaluation.update(stride=32, batch_size=8, max_tokens=4096)
  return c
