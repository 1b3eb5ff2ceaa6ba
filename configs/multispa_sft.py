r"""Multi-SpatialMLLM at small scale: MultiSPA questions from generated rooms and point tracks, multi-image SFT
of a tiny VLM with LoRA on its language model, per-subtask accuracy on disjoint scenes.

Data (`jaxlab.spatial`): rooms ray-cast with textured walls, furniture boxes and a camera path
(depth, correspondence, camera movement and object size questions), and track scenes whose boxes move
rigidly (`room_objects`) or as multi-part figures (`room_figures`) (object movement): all 26 subtasks.
Visual prompts drawn on the images, answers in backticks. Or MultiSPA jsonl files (`data.source="jsonl"`,
e.g. written by `python -m jaxlab.spatial.generate` from ScanNet scenes and TAPVid-3D npz files).
Model: a tiny InternVL-style VLM; LoRA (rank 16, as the paper) on the language model's attention and MLP
projections, the vision tower and projector frozen (`lora.rank=0`: full fine-tuning of all but
`model.frozen`). The paper starts from InternVL2-8B; here the base is randomly initialised (no hub),
so the untrained row is a floor, not a pretrained model's score.

Variants:
  default: see docs/PERFORMANCE.md for its table and time on 2 CPU cores.
  smoke:   two scenes per split, a one-layer LM and a few steps, for tests.

  python -m launch.run --config=configs/multispa_sft.py --workdir=runs/multispa
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")

# The language model's attention and MLP projections (jaxlab.nn.lora regexes over parameter paths).
LM_PROJECTIONS = (r"^language_model/layers_\d+/attention/(q|k|v|o)/kernel$",
                  r"^language_model/layers_\d+/mlp/(gate|up|down)/kernel$")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "multispa_sft"
  c.seed = 0
  c.cpu_devices = 1
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.sharding = ml_collections.ConfigDict(dict(presets=("data",), min_sharded_size=4096))
  c.data = ml_collections.ConfigDict(dict(
      source="generated", train_rooms=48, train_tracks=24, eval_rooms=8, eval_tracks=2,
      track_sources=("room_objects", "room_figures"), items_per_scene=72, image_height=96, image_width=128,
      num_frames=16, num_workers=2, tile_size=112, max_images=2, max_length=224, global_batch_size=16,
      prefetch_threads=1,
      # source="jsonl": MultiSPA files (jaxlab.spatial.qa layout), image paths relative to each file.
      train_jsonl="", eval_jsonl="",
  ))
  c.engine = ml_collections.ConfigDict(dict(
      overlap_low=0.06, overlap_high=0.35, overlap_bin=0.01, num_pairs=64, depth_tolerance=0.05, dot_radius=3,
      max_cover_images=2, min_translation_m=0.05, min_angle_deg=3.0, min_depth_gap=0.1, movement_candidates=256,
      movement_bin_m=0.05, min_movement_m=0.01,
  ))
  c.model = ml_collections.ConfigDict(dict(
      patch_size=14, downsample_ratio=0.5,
      vision_hidden=64, vision_layers=2, vision_heads=2,
      lm_hidden=128, lm_layers=3, lm_heads=4, lm_kv_heads=2,
      frozen=("vision_tower", "projector"),
  ))
  c.lora = ml_collections.ConfigDict(dict(rank=16, alpha=32.0, targets=LM_PROJECTIONS))
  c.loss = ml_collections.ConfigDict(dict(weighting="token"))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=2e-3, warmup_steps=50, final_lr_fraction=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip_norm=1.0,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=1200, log_every=100, eval_every=0, max_nonfinite_streak=5))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=1200, keep=1, async_save=True))
  c.evaluation = ml_collections.ConfigDict(dict(batch_size=64, max_new_tokens=40))
  c.export = ml_collections.ConfigDict(dict(merged=True))

  if variant == "smoke":
    c.data.update(train_rooms=1, train_tracks=1, eval_rooms=1, eval_tracks=1, items_per_scene=8, num_frames=8,
                  image_height=48, image_width=64, num_workers=0, tile_size=56, global_batch_size=8)
    c.engine.update(num_pairs=8, movement_candidates=32)
    c.model.update(vision_hidden=32, vision_layers=1, lm_hidden=32, lm_layers=1, lm_heads=2, lm_kv_heads=1)
    c.lora.update(rank=4)
    c.train.update(num_steps=3, log_every=1)
    c.checkpoint.update(save_every=3)
    c.evaluation.update(batch_size=8, max_new_tokens=12)
  return c
