"""Shots as fixed-shape training records for GenDoP (a grain random-access source).

Record i:

  text_ids   int32 [77]          the caption's BPE ids (pad 0)
  input_ids  int32 [301]         [BOS] + the 300 pose tokens
  targets    int32 [301]         the 300 pose tokens + [EOS] (every position is supervised)
  rgb        float32 [H, W, 3]   the first frame in [-1, 1]      (only with `with_rgbd`)
  depth      float32 [H, W]      its depth in scene units, clipped to [0, 10]     (idem)

Tokens come from `jaxlab.camera.tokenizer.encode` (with or without the trajectory normalization),
computed once at construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxlab.camera import tokenizer as pose_tokenizer
from jaxlab.camera.datadop import Shot
from jaxlab.camera.text import encode_captions

CAPTION_KINDS = ("motion", "directorial")


def caption_of(shot: Shot, kind: str) -> str:
  if kind == "motion":
    return shot.motion_caption
  if kind == "directorial":
    return shot.directorial_caption
  raise ValueError(f"caption kind must be one of {CAPTION_KINDS}, got {kind!r}")


def shot_tokens(shot: Shot, *, normalize: bool = True) -> np.ndarray:
  return pose_tokenizer.encode(shot.c2w_n44, shot.fl_x, shot.fl_y, shot.width, shot.height, normalize=normalize)


class ShotSource:
  """The records above over `shots` (module docstring)."""

  def __init__(self, shots: Sequence[Shot], caption_tokenizer, *, caption: str, normalize: bool = True,
               with_rgbd: bool = False, text_length: int = 77):
    if not shots:
      raise ValueError("ShotSource needs at least one shot")
    self.shots, self.with_rgbd = list(shots), bool(with_rgbd)
    self.text_ids = encode_captions(caption_tokenizer, [caption_of(s, caption) for s in self.shots], length=text_length)
    self.tokens = np.stack([shot_tokens(s, normalize=normalize) for s in self.shots]).astype(np.int32)
    if with_rgbd and any(s.rgb_hw3 is None or s.depth_hw is None for s in self.shots):
      missing = [s.name for s in self.shots if s.rgb_hw3 is None or s.depth_hw is None][:3]
      raise ValueError(f"RGBD conditioning needs every shot's first-frame RGB and depth; missing for e.g. {missing}")

  def __len__(self) -> int:
    return len(self.shots)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    input_ids, targets = pose_tokenizer.training_sequence(self.tokens[index])
    record = {"text_ids": self.text_ids[index], "input_ids": np.asarray(input_ids, np.int32),
              "targets": np.asarray(targets, np.int32)}
    if self.with_rgbd:
      shot = self.shots[index]
      record["rgb"] = shot.rgb_hw3.astype(np.float32) / 127.5 - 1.0
      record["depth"] = np.clip(shot.depth_hw.astype(np.float32), 0.0, 10.0)
    return record
