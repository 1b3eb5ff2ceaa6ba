"""A jaxlab VLM answering MM-IF prompts in batches: greedy (or sampled) cached decoding of left-padded prompts.

A request is (prompt text, image path or None). Requests with an image get it as one tile where the
prompt starts; requests without one (the "drop the image" rejection variant) get a text-only prompt
and are decoded in their own batches, since one batch has one pixel layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jaxlab.mmif.engine import IMAGE_MARK
from jaxlab.posttrain.pairs import ChatPairTokenizer


class VlmResponder:
  """`__call__(requests) -> responses` for a jaxlab `InternVLModel` (module docstring)."""

  def __init__(self, model, params, tokenizer: ChatPairTokenizer, load_image: Callable[[str], np.ndarray],
               decode: Callable[[Sequence[int]], str], *, max_new_tokens: int, batch_size: int = 32,
               generate_kwargs: dict | None = None):
    self.model, self.params, self.tokenizer = model, params, tokenizer
    self.load_image, self.decode = load_image, decode
    self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
    self.generate_kwargs = dict(generate_kwargs or {})

  def __call__(self, requests: Sequence[tuple[str, str | None]]) -> list[str]:
    out: list[str | None] = [None] * len(requests)
    for with_image in (True, False):
      indices = [i for i, (_, image) in enumerate(requests) if (image is not None) == with_image]
      for start in range(0, len(indices), self.batch_size):
        chunk = indices[start:start + self.batch_size]
        for i, text in zip(chunk, self._generate([requests[i] for i in chunk], with_image)):
          out[i] = text
    return out  # type: ignore[return-value]

  def _generate(self, chunk: list[tuple[str, str | None]], with_image: bool) -> list[str]:
    from jaxlab.vlm.generate import generate  # Deferred: building data needs no model.

    prompts = [self.tokenizer.encode_prompt(IMAGE_MARK + text if with_image else text, int(with_image), None)
               for text, _ in chunk]
    width = -(-max(len(p) for p in prompts) // 32) * 32  # Widths in steps of 32: few compiled shapes.
    rows = len(prompts)
    ids = np.full((self.batch_size, width), self.tokenizer.pad_id, np.int32)
    mask = np.zeros((self.batch_size, width), bool)
    for r in range(self.batch_size):  # A short last chunk repeats its last row: one compiled batch size.
      p = prompts[min(r, rows - 1)]
      ids[r, width - len(p):] = p
      mask[r, width - len(p):] = True
    pixels = None
    if with_image:
      tiles = [np.asarray(self.load_image(chunk[min(r, rows - 1)][1]), np.float32) for r in range(self.batch_size)]
      pixels = jnp.asarray(np.concatenate([t[None] if t.ndim == 3 else t for t in tiles]))
    tokens = np.asarray(generate(self.model, self.params, jnp.asarray(ids), pixels, jnp.asarray(mask),
                                 max_new_tokens=self.max_new_tokens, eos_id=self.tokenizer.eos_id,
                                 pad_id=self.tokenizer.pad_id, **self.generate_kwargs))
    return [self._text(row) for row in tokens[:rows]]

  def _text(self, row: np.ndarray) -> str:
    ids = [int(t) for t in row]
    if self.tokenizer.eos_id in ids:
      ids = ids[:ids.index(self.tokenizer.eos_id)]
    return self.decode([t for t in ids if t != self.tokenizer.pad_id])
