"""Answered MM-IFInstruct items as fixed-shape SFT records (a grain random-access source), and their images.

Record i:

  input_ids  int32 [L]            the ChatML prompt (image tokens in place of `<image>`), the response,
                                  `<|im_end|>`; right padded
  targets    int32 [L]            input_ids shifted by one
  loss_mask  float32 [L]          1 where the target is a response token or its `<|im_end|>`
  pixels     float32 [1, t, t, 3] the image as one normalized tile

Items whose prompt and response do not fit L are dropped at construction and counted (`dropped`,
with the first few ids in the log): nothing is cut mid-response.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.mmif.engine import IMAGE_MARK, InstructItem
from jaxlab.posttrain.pairs import ChatPairTokenizer

log = logging.getLogger(__name__)


def image_path(item: InstructItem, root: str | os.PathLike) -> str:
  """The item's image path, joined to `root` when relative."""
  path = pathlib.Path(item.image)
  return str(path if path.is_absolute() else pathlib.Path(root) / path)


class InstructSftSource:
  """The records above over answered `items` (module docstring)."""

  def __init__(self, items: Sequence[InstructItem], tokenizer: ChatPairTokenizer,
               load_image: Callable[[str], np.ndarray], *, image_root: str | os.PathLike, max_length: int):
    self.tokenizer, self.load_image, self.image_root = tokenizer, load_image, image_root
    kept, dropped = [], []
    for item in items:
      if item.response is None:
        raise ValueError(f"item {item.id} has no response to train on")
      prompt_ids = tokenizer.encode_prompt(IMAGE_MARK + item.prompt, 1, None)
      response_ids = tokenizer.encode_response(item.response) + [tokenizer.eos_id]
      if len(prompt_ids) + len(response_ids) > max_length:
        dropped.append(f"{item.id} ({len(prompt_ids)} + {len(response_ids)} tokens)")
        continue
      kept.append((item, prompt_ids, response_ids))
    if dropped:
      log.warning("Dropped %d of %d items longer than max_length=%d, e.g. %s", len(dropped), len(items), max_length,
                  dropped[:3])
    if not kept:
      raise ValueError(f"no item fits max_length={max_length} (all {len(items)} dropped)")
    self.records, self.dropped = kept, len(dropped)
    need = max(len(p) + len(r) for _, p, r in kept)
    self.max_length = min(int(max_length), -(-need // 16) * 16)  # Only as long as the longest item needs.

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    item, prompt_ids, response_ids = self.records[int(index)]
    ids = prompt_ids + response_ids
    input_ids = np.full(self.max_length, self.tokenizer.pad_id, np.int32)
    input_ids[:len(ids)] = ids
    targets = np.full(self.max_length, self.tokenizer.pad_id, np.int32)
    targets[:len(ids) - 1] = ids[1:]
    loss_mask = np.zeros(self.max_length, np.float32)
    loss_mask[len(prompt_ids) - 1:len(ids) - 1] = 1.0  # Targets that are response tokens or the eos.
    pixels = np.asarray(self.load_image(image_path(item, self.image_root)), np.float32)
    return {"input_ids": input_ids, "targets": targets, "loss_mask": loss_mask,
            "pixels": pixels[None] if pixels.ndim == 3 else pixels}
