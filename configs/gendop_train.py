r"""GenDoP at small scale: camera trajectories (30 poses) from motion or directorial captions, optionally with
the first frame's RGB and depth, by an OPT-style decoder over pose tokens; motion F1 and CLaTr-style metrics
against a random trajectory and caption nearest-neighbour retrieval.

Data (`jaxlab.camera.synthetic`, or DataDoP shots with `data.source="datadop"`): 120-frame camera moves of
1 to 3 segments composed from the 27 translation x 7 rotation classes, with speed changes and smooth
transitions, around Gaussian scenes; motion captions and directorial captions (scene content, intent)
from templates; test shots use held-out templates and scenes. Tokens: the paper's 300-token layout
(`tokens.normalize=False`: the ablation without trajectory normalization). Model: a small decoder
(`model.preset` "small" / "base" (the paper's 12 x 1024) / "large" with the sizes below overriding it);
text through a BPE and a small transformer trained here (no CLIP weights offline).

Variants:
  default:          motion captions, text only.
  text_directorial: directorial captions, text only.
  rgbd_text:        directorial captions plus the first frame's RGB and depth (two vision towers).
  smoke:            a few shots and steps, for tests.

  python -m launch.run --config=configs/gendop_train.py --workdir=runs/gendop_motion
  python -m launch.run --config=configs/gendop_train.py:rgbd_text --workdir=runs/gendop_rgbd
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "text_directorial", "rgbd_text", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "gendop_train"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.data = ml_collections.ConfigDict(dict(
      source="generated", num_train=1024, num_test=128, image_size=32, caption="motion", global_batch_size=16,
      prefetch_threads=1,
      # source="datadop": folders of DataDoP shots (jaxlab.camera.datadop layout).
      train_root="", test_root="",
  ))
  c.tokens = ml_collections.ConfigDict(dict(normalize=True))
  c.model = ml_collections.ConfigDict(dict(
      preset="small", conditioning="text", hidden_size=128, num_heads=4, num_layers=4, dropout=0.1,
      caption_vocab_size=2000, text_width=64, text_layers=2, text_heads=4,
      vision_hidden=32, vision_layers=1, vision_heads=2, vision_image_size=28, vision_patch_size=14,
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, warmup_steps=50, final_lr_fraction=0.1, b1=0.9, b2=0.95, weight_decay=0.01,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=400, log_every=50, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=400, keep=1, async_save=True))
  # num_train_shots: F1 also on that many training shots (seen caption templates); 0 skips it.
  c.evaluation = ml_collections.ConfigDict(dict(batch_size=64, top_k=10, greedy=False, num_train_shots=128))
  c.clatr = ml_collections.ConfigDict(dict(steps=300, batch_size=64, learning_rate=1e-3, coverage_k=5))

  if variant == "text_directorial":
    c.data.caption = "directorial"
  elif variant == "rgbd_text":
    c.data.caption = "directorial"
    c.model.conditioning = "rgbd_text"
  elif variant == "smoke":
    c.data.update(num_train=16, num_test=8, global_batch_size=8)
    c.model.update(hidden_size=32, num_heads=2, num_layers=1, caption_vocab_size=2000, text_width=16, text_layers=1,
                   text_heads=2)
    c.train.update(num_steps=3, log_every=1)
    c.checkpoint.update(save_every=3)
    c.evaluation.update(batch_size=8, num_train_shots=8)
    c.clatr.update(steps=3, batch_size=8)
  return c
