"""MultiSPA items as fixed-shape multi-image SFT records (a grain random-access source).

Record i:

  input_ids  int32 [L]              the ChatML prompt (each `<image>` expanded to its image tokens), the
                                    answer, `<|im_end|>`; right padded
  targets    int32 [L]              input_ids shifted by one
  loss_mask  float32 [L]            1 where the target is an answer token or its `<|im_end|>`
  pixels     float32 [K, t, t, 3]   the item's images as one tile each, then zero tiles up to K

Every record holds K images' worth of image tokens, so a batch's tiles line up with its image tokens
row by row: an item with fewer than K images gets the image tokens of its unused slots at the end of
its right padding, where causal attention never lets an earlier position see them and the loss mask
is 0. Items that do not fit L are dropped and counted (`dropped`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.posttrain.pairs import ChatPairTokenizer
from jaxlab.spatial.qa import SpatialQA

log = logging.getLogger(__name__)


class SpatialSftSource:
  """The records above over `items` (module docstring)."""

  def __init__(self, items: Sequence[SpatialQA], tokenizer: ChatPairTokenizer, load_image: Callable[[str], np.ndarray],
               *, image_root: str | os.PathLike, max_length: int, max_images: int, image_token_id: int):
    self.tokenizer, self.load_image, self.image_root = tokenizer, load_image, image_root
    self.max_images, self.image_token_id = int(max_images), int(image_token_id)
    per_image = tokenizer.tokens_per_tile * tokenizer.tiles_per_image
    kept, dropped = [], []
    for item in items:
      if len(item.images) > self.max_images:
        dropped.append(f"{item.id} ({len(item.images)} images)")
        continue
      prompt_ids = tokenizer.encode_prompt(item.question, len(item.images), None)
      answer_ids = tokenizer.encode_response(item.answer) + [tokenizer.eos_id]
      need = len(prompt_ids) + len(answer_ids) + (self.max_images - len(item.images)) * per_image
      if need > max_length:
        dropped.append(f"{item.id} ({need} tokens)")
        continue
      kept.append((item, prompt_ids, answer_ids))
    if dropped:
      log.warning("Dropped %d of %d items (over max_length=%d or max_images=%d), e.g. %s", len(dropped), len(items),
                  max_length, max_images, dropped[:3])
    if not kept:
      raise ValueError(f"no item fits max_length={max_length} and max_images={max_images} (all {len(items)} dropped)")
    self.records, self.dropped, self.max_length = kept, len(dropped), int(max_length)
    self._per_image = per_image

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    item, prompt_ids, answer_ids = self.records[int(index)]
    ids = prompt_ids + answer_ids
    input_ids = np.full(self.max_length, self.tokenizer.pad_id, np.int32)
    input_ids[:len(ids)] = ids
    unused = (self.max_images - len(item.images)) * self._per_image
    if unused:
      input_ids[self.max_length - unused:] = self.image_token_id
    targets = np.full(self.max_length, self.tokenizer.pad_id, np.int32)
    targets[:len(ids) - 1] = ids[1:]
    loss_mask = np.zeros(self.max_length, np.float32)
    loss_mask[len(prompt_ids) - 1:len(ids) - 1] = 1.0
    tiles = [np.asarray(self.load_image(p), np.float32) for p in item.image_paths(self.image_root)]
    tiles = [t[None] if t.ndim == 3 else t for t in tiles]
    pixels = np.zeros((self.max_images * self.tokenizer.tiles_per_image, *tiles[0].shape[1:]), np.float32)
    pixels[:sum(len(t) for t in tiles)] = np.concatenate(tiles)
    return {"input_ids": input_ids, "targets": targets, "loss_mask": loss_mask, "pixels": pixels}
