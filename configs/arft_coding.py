r"""Visual-ARFT's agentic coding at small scale: SFT on gold steps, GRPO, then live evaluation with the code tool.

Data (`jaxlab.agent.coding_data`, or the released MAT files with `data.source="mat"`): coloured
shapes on crops of scikit-image's photographs, degraded by the spec's distortions (rotation90,
rotation180, dark, overexposure, blur, noise; crop questions about a small shape in one corner),
with gold trajectories `<problem>` -> `<code>` (PIL that undoes the damage) -> `<answer>`, split
into single-step samples. Evaluation questions use held-out photographs; "simple" has one
problem, "hard" two. Models (`launch.tasks.arft`): a tiny InternVL-style VLM trained from scratch
three ways: to answer directly (no tools), by SFT on the gold steps, and by SFT then GRPO (G = 8,
R = format + accuracy, beta 0.04, the SFT model as reference). Evaluation runs the chain live:
up to 5 rounds, the model's code executed in the sandbox, the output image sent back.

Deviations from the paper, at this scale: the policy is a small VLM trained here (not
Qwen2.5-VL), the GRPO learning rate is far above TRL's 1e-6 default (the tiny model moves
nothing at 1e-6 in a few hundred steps), and images are 112 px, not 720.

Variants:
  default: see docs/PERFORMANCE.md for its table and time on 2 CPU cores.
  smoke:   a few trajectories, 28 px tiles, a one-layer LM and two steps per stage, for tests.

  python -m launch.run --config=configs/arft_coding.py --workdir=runs/arft_coding
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def agent_config(task: str, variant: str) -> ml_collections.ConfigDict:
  """The settings both Visual-ARFT tasks share; `task` is "coding" or "search"."""
  c = ml_collections.ConfigDict()
  c.task = "arft"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.data = ml_collections.ConfigDict(dict(
      task=task, source="generated", num_train=2000, num_eval=200, tile_size=112, max_prompt_length=320,
      max_length=384, prefetch_threads=1,
      # data.source="mat": the released MAT json files (jaxlab.agent.mat_data); the corpus for search is
      # one document per line (or a jsonl with "contents"/"text").
      mat_train="", mat_eval="", image_root="", corpus="",
  ))
  c.model = ml_collections.ConfigDict(dict(
      patch_size=14, downsample_ratio=0.5,
      vision_hidden=64, vision_layers=2, vision_heads=2,
      lm_hidden=128, lm_layers=3, lm_heads=4, lm_kv_heads=2,
      freeze_vision=False,
  ))
  c.sft = ml_collections.ConfigDict(dict(num_steps=1000, global_batch_size=16, learning_rate=3e-3, warmup_steps=50,
                                         weighting="token"))
  c.grpo = ml_collections.ConfigDict(dict(
      num_steps=40, prompts_per_step=8, group_size=8, beta=0.04, temperature=1.0, max_new_tokens=136,
      learning_rate=1e-4, warmup_steps=10, code_reward=1.0, log_every=10,
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, warmup_steps=50, final_lr_fraction=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=0, log_every=50, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=1, async_save=True))
  c.evaluation = ml_collections.ConfigDict(dict(max_rounds=5, batch_size=32, max_new_tokens=136))  # Code turns: <= 129.

  if variant == "smoke":
    c.data.update(num_train=8, num_eval=8, tile_size=28)
    c.model.update(vision_hidden=32, vision_layers=1, lm_hidden=32, lm_layers=1, lm_heads=2, lm_kv_heads=1)
    c.sft.update(num_steps=4, global_batch_size=8, warmup_steps=1)
    c.grpo.update(num_steps=2, prompts_per_step=8, group_size=4, max_new_tokens=24, warmup_steps=1, log_every=1)
    c.train.update(log_every=1)
    c.evaluation.update(max_rounds=2, batch_size=8, max_new_tokens=24)
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return agent_config("coding", pick_variant(arg, VARIANTS))
