r"""InternVL3's test-time scaling at small scale: a VisualPRM-style process reward model picks the best of 8.

Task (`jaxlab.vlm.counting_task`): 1 to 5 coloured shapes on a 56 px tile; "How many shapes are
there?"; the answer is four steps, one count per colour and then the total ("red two ; green zero ;
blue one ; total three"). `config.sft` is `configs/vlm_sft.py` on that task with a short budget, as in
`configs/vlm_mpo.py`, but with a 4-layer language model (with 2, the PRM learned little beyond the
share of "+" labels), so the policy is imperfect and sampling has room to help.

PRM data (`config.prm`): `prm.samples_per_image` solutions per training image sampled from the SFT
policy at `prm.temperature`, plus the true solution; each step is labelled "+" when that step itself
is right (`grade_solution`; labels are not cascaded); judgements of the majority label are dropped
from the loss until it is at most `prm.balance_ratio` times the minority. The PRM is the same
architecture initialised from the SFT weights, trained with `config.train` / `config.optimizer` /
`config.checkpoint` (the job's own loop, in workdir/prm) on the judgement positions only
(`jaxlab.posttrain.prm`). Best-of-N (`config.bon`): `bon.n` samples per held-out image; solution
score = mean over steps of P("+"); the argmax is kept. `bon.json` / `bon.md`: greedy, majority vote,
PRM Best-of-N and oracle Best-of-N accuracy (final total right), and the PRM's step accuracy.

Variants:
  default: SFT 300 steps of 32; PRM data 512 images x 8 samples (+ the truth), "+" judgements cut to 1:1;
           PRM 600 steps of 32 at lr 3e-3; 512 held-out images x 8 samples at temperature 1.0. Measured
           (2026-12-06, 2 shared CPU cores, 381 s in all), final total right:
             greedy 0.803 | one sample 0.709 | majority of 8 0.762 | PRM Best-of-8 0.680 | oracle 0.967
           PRM step accuracy 0.707 on 16,378 held-out steps; it orders 0.60 of the (right, wrong)
           candidate pairs of an image right, so PRM Best-of-8 loses to majority vote and to one sample.
           Other settings and the reasons: docs/posttrain.md, "InternVL3's Best-of-N under a process reward model".
  smoke:   a 20-step 1-layer SFT, 32 images x 2 samples of PRM data, 6 PRM steps, 16 held-out images;
           for tests (about 1 minute in process on 2 CPU cores).

  python -m launch.run --config=configs/vlm_prm.py --workdir=runs/vlm_prm
"""

import ml_collections

from configs import vlm_mpo
from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def sft_config(variant: str) -> ml_collections.ConfigDict:
  """configs/vlm_mpo.py's SFT stage (the counting task, a short budget) with a deeper language model."""
  sft = vlm_mpo.sft_config(variant)
  sft.model.lm_layers = 1 if variant == "smoke" else 4  # With 2 the PRM learned little beyond the share of "+" labels.
  if variant == "smoke":
    sft.train.update(num_steps=20, log_every=10)
  return sft


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "vlm_prm"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.sft = sft_config(variant)

  c.prm = ml_collections.ConfigDict(dict(
      num_images=512,  # training images for the PRM (their own seed, unseen in SFT)
      samples_per_image=8,  # sampled solutions per image, besides the true one
      temperature=1.0, top_p=1.0,
      max_new_tokens=16,  # a right answer is 12 ids, <|im_end|> included
      max_steps=6,  # judgement slots per chat; later steps of a longer solution go unscored
      balance_ratio=1.0,  # judgements of the majority label per minority one, at most; 0: keep all
      global_batch_size=32, prefetch_threads=1,
      num_eval_records=64,  # held-out chats for the loss and judgement accuracy during training
      rows_per_call=128,  # rows per generation / scoring call (one compiled shape each)
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, warmup_steps=20, final_lr_fraction=0.05, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=600, log_every=50, eval_every=200, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1000, keep=1, async_save=True))
  c.bon = ml_collections.ConfigDict(dict(n=8, temperature=1.0, top_p=1.0, num_eval=512))

  if variant == "smoke":
    c.prm.update(num_images=32, samples_per_image=2, num_eval_records=16, rows_per_call=64, global_batch_size=8)
    c.train.update(num_steps=6, log_every=3, eval_every=0)
    c.bon.update(num_eval=16)
  return c
