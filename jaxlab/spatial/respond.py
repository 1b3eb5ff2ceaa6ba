"""A jaxlab VLM answering MultiSPA questions in batches (greedy, cached decoding of left-padded prompts).

Questions are batched by their number of images (one pixel layout per batch); a short last batch
repeats its last row, so each image count compiles once per prompt width (widths in steps of 32).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jaxlab.posttrain.pairs import ChatPairTokenizer
from jaxlab.spatial.qa import SpatialQA


def answer_questions(model, params, items: Sequence[SpatialQA], *, tokenizer: ChatPairTokenizer,
                     load_image: Callable[[str], np.ndarray], decode: Callable[[Sequence[int]], str],
                     image_root: str | os.PathLike, max_new_tokens: int, batch_size: int = 32) -> list[str]:
  from jaxlab.vlm.generate import generate  # Deferred: reading and scoring need no model.

  out: list[str | None] = [None] * len(items)
  for count in sorted({len(i.images) for i in items}):
    indices = [k for k, i in enumerate(items) if len(i.images) == count]
    for start in range(0, len(indices), batch_size):
      chunk = [items[k] for k in indices[start:start + batch_size]]
      prompts = [tokenizer.encode_prompt(i.question, count, None) for i in chunk]
      width = -(-max(len(p) for p in prompts) // 32) * 32
      ids = np.full((batch_size, width), tokenizer.pad_id, np.int32)
      mask = np.zeros((batch_size, width), bool)
      tiles = []
      for r in range(batch_size):
        row = min(r, len(chunk) - 1)
        p = prompts[row]
        ids[r, width - len(p):] = p
        mask[r, width - len(p):] = True
        for path in chunk[row].image_paths(image_root):
          t = np.asarray(load_image(path), np.float32)
          tiles.append(t[None] if t.ndim == 3 else t)
      tokens = np.asarray(generate(model, params, jnp.asarray(ids), jnp.asarray(np.concatenate(tiles)),
                                   jnp.asarray(mask), max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id,
                                   pad_id=tokenizer.pad_id))
      for k, row in zip(indices[start:start + batch_size], tokens[:len(chunk)]):
        seq = [int(t) for t in row]
        if tokenizer.eos_id in seq:
          seq = seq[:seq.index(tokenizer.eos_id)]
        out[k] = decode([t for t in seq if t != tokenizer.pad_id])
  return out  # type: ignore[return-value]
