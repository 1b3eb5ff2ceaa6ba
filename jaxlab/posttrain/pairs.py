"""Preference pairs as fixed-length arrays for DPO / MPO steps: a grain random-access source.

`PreferencePairSource` reads pair records (a jsonl file or in-memory records, layout in
`jaxlab.posttrain.pair_records`) and turns record i into

  {"chosen_ids":   int32 [T],   "chosen_mask":   float32 [T],
   "rejected_ids": int32 [T],   "rejected_mask": float32 [T],
   "pixels":       float32 [K, t, t, 3]   (only when the records have images)}

with T = max_length; batching adds a leading [B]. Each *_ids row (input_ids_t) is prompt + response +
eos, right-padded with the tokenizer's pad id; its *_mask row (response_mask_t) is 1 on the response
tokens and the eos, 0 on the prompt and the padding, the mask `jaxlab.posttrain.sequence_logprobs`
takes. Chosen and rejected share the prompt and so the pixels: K = images per record * tiles per
image, in prompt order. Every record of a source has the same number of images (pixels need one
shape per batch). Rows are padded, not packed.

Tokenizing is pluggable (`PairTokenizer`): `ChatPairTokenizer` renders the prompt with `render_chat`
and `expand_image_tokens` and encodes it with any `str -> list[int]` function, e.g. `ShapesVocab.encode`
(`shapes_pair_tokenizer`) or a Hugging Face tokenizer's encode without special tokens. Prompt and
response are encoded separately, so a response starts on a token boundary. Image loading is pluggable
too (`load_image(path) -> float32 [tiles, t, t, 3]`); `SingleTileLoader` resizes to one tile.

Bad records. Problems are found when the source is built, by encoding every record:
  "empty_response"       chosen or rejected is empty or whitespace (or encodes to no tokens);
  "identical_responses"  chosen and rejected are the same text (ignoring outer whitespace);
  "missing_image"        an image file does not exist or is not an image (`check_image`);
  "unencodable"          the tokenizer refuses the prompt or a response;
  "too_long"             prompt + response + eos exceeds max_length (a response is never truncated).
on_bad="error" (the default: a data bug should stop the run, not quietly shrink the data) raises
`PairRecordError` naming the record ("<file> line <n>" or "record <i>") and the problem; on_bad="drop"
leaves the record out and counts it in `drop_report` (logged as a warning). Malformed JSON, missing keys
and wrong types always raise `PairFormatError`. An image that passes the header check but fails to
decode later raises `PairRecordError` at read time: a random-access source cannot drop then.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from jaxlab.posttrain.pair_records import RESPONSE_KEYS, canonical_record, read_labelled_pairs
from jaxlab.vlm.chat_template import render_chat
from jaxlab.vlm.image_tokens import expand_image_tokens
from jaxlab.vlm.tiling import TILE_SIZE, dynamic_preprocess

log = logging.getLogger(__name__)

IMAGE_MARK = "<image>"  # MMPR / original-InternVL placeholder inside a question
DROP_REASONS = ("empty_response", "identical_responses", "missing_image", "unencodable", "too_long")
_EXAMPLES_PER_REASON = 5


class PairRecordError(ValueError):
  """A pair record whose content cannot be trained on; `where` names it, `reason` is one of DROP_REASONS."""

  def __init__(self, where: str, reason: str, detail: str):
    super().__init__(f"{where}: {reason}: {detail}")
    self.where, self.reason = where, reason


class PairTokenizer(Protocol):
  """What `PreferencePairSource` needs from a tokenizer."""

  eos_id: int
  pad_id: int

  def encode_prompt(self, question: str, num_images: int, system: str | None) -> list[int]:
    """Ids of the whole prompt, image tokens included, ending where the response starts."""

  def encode_response(self, text: str) -> list[int]:
    """Ids of a response, without the eos."""


class ChatPairTokenizer:
  """ChatML prompts (`render_chat`, image tokens by `expand_image_tokens`) encoded by any `str -> ids` function.

  The prompt is one user turn plus the assistant opening. A question holding `<image>` placeholders
  (one per image, each optionally followed by a newline) gets its images there; otherwise the images go
  first, then the text, as in `jaxlab.vlm.shapes_task`.
  """

  def __init__(self, encode: Callable[[str], Sequence[int]], *, eos_id: int, pad_id: int,
               tokens_per_tile: int, tiles_per_image: int = 1):
    """Args:
      encode: text -> ids, adding no special tokens of its own (for a transformers tokenizer:
        `lambda s: tok(s, add_special_tokens=False)["input_ids"]`).
      eos_id: id that ends a response (`<|im_end|>` for ChatML models).
      pad_id: id that fills the rest of each row.
      tokens_per_tile: `<IMG_CONTEXT>` tokens the model makes of one tile.
      tiles_per_image: tiles `load_image` gives per image.
    """
    self.encode, self.eos_id, self.pad_id = encode, int(eos_id), int(pad_id)
    self.tokens_per_tile, self.tiles_per_image = int(tokens_per_tile), int(tiles_per_image)

  def encode_prompt(self, question: str, num_images: int, system: str | None = None) -> list[int]:
    pieces = question.split(IMAGE_MARK)
    if len(pieces) == 1:
      parts = [{"type": "image"}] * num_images + [{"type": "text", "text": question}]
    elif len(pieces) - 1 != num_images:
      raise ValueError(f"question holds {len(pieces) - 1} {IMAGE_MARK} placeholders but the record has "
                       f"{num_images} images")
    else:
      parts = [{"type": "text", "text": pieces[0]}] if pieces[0] else []
      for piece in pieces[1:]:
        piece = piece.removeprefix("\n")  # the rendered image part already ends its line
        parts += [{"type": "image"}] + ([{"type": "text", "text": piece}] if piece else [])
    prompt = render_chat([{"role": "user", "content": parts}], system=system)
    prompt = expand_image_tokens(prompt, [self.tiles_per_image] * num_images, tokens_per_tile=self.tokens_per_tile)
    return [int(i) for i in self.encode(prompt)]

  def encode_response(self, text: str) -> list[int]:
    return [int(i) for i in self.encode(text)]


def shapes_pair_tokenizer(tokens_per_tile: int = 1) -> ChatPairTokenizer:
  """The shapes task's word-level vocabulary and prompt layout: eos `<|im_end|>`, pad `<pad>`, one tile per image."""
  from jaxlab.vlm.shapes_task import ShapesVocab  # Deferred: only this helper needs the task module.

  vocab = ShapesVocab()
  return ChatPairTokenizer(vocab.encode, eos_id=vocab.im_end_id, pad_id=vocab.pad_id, tokens_per_tile=tokens_per_tile)


class SingleTileLoader:
  """path -> float32 [1, t, t, 3]: the image in RGB, resized (bicubic) to one tile, ImageNet-normalized."""

  def __init__(self, tile_size: int = TILE_SIZE):
    self.tile_size = int(tile_size)

  def __call__(self, path: str) -> np.ndarray:
    with Image.open(path) as image:
      rgb = image.convert("RGB")
    return dynamic_preprocess(rgb, tile_size=self.tile_size, min_num=1, max_num=1, use_thumbnail=False)


def check_image_file(path: str) -> None:
  """Raises OSError unless `path` is a file PIL recognises as an image (reads the header only)."""
  with Image.open(path):  # opening parses the header and raises if no format recognises it
    pass


@dataclasses.dataclass
class DropReport:
  """Records a source left out: how many per reason, and the first few of each, named."""

  total: int = 0
  kept: int = 0
  counts: dict[str, int] = dataclasses.field(default_factory=dict)
  examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

  @property
  def dropped(self) -> int:
    return sum(self.counts.values())

  def add(self, error: PairRecordError) -> None:
    self.counts[error.reason] = self.counts.get(error.reason, 0) + 1
    shown = self.examples.setdefault(error.reason, [])
    if len(shown) < _EXAMPLES_PER_REASON:
      shown.append(str(error))

  def __str__(self) -> str:
    per_reason = ", ".join(f"{reason} {count}" for reason, count in sorted(self.counts.items()))
    first = [shown[0] for shown in self.examples.values()]
    return (f"dropped {self.dropped} of {self.total} pair records ({per_reason or 'none'})"
            + (f"; e.g. {'; '.join(first)}" if first else ""))


class PreferencePairSource:
  """Random-access source (grain's RandomAccessDataSource protocol) of padded preference pairs."""

  def __init__(
      self,
      pairs: str | os.PathLike | Sequence[Mapping[str, Any]],
      tokenizer: PairTokenizer,
      load_image: Callable[[str], np.ndarray] | None,
      max_length: int,
      *,
      on_bad: str = "error",
      check_image: Callable[[str], None] = check_image_file,
      image_root: str | os.PathLike | None = None,
  ):
    """Args:
      pairs: a jsonl path, or records in that layout.
      tokenizer: a `PairTokenizer` (e.g. `shapes_pair_tokenizer()` or a `ChatPairTokenizer`).
      load_image: path -> float32 [tiles, t, t, 3] (or [t, t, 3], one tile); None for text-only data.
      max_length: T, tokens per row; prompt + response + eos must fit.
      on_bad: "error" raises on the first bad record; "drop" leaves bad records out and counts them in
        `drop_report`.
      check_image: raises OSError / ValueError for an image path that cannot be loaded; runs when the
        source is built.
      image_root: folder for relative image paths of in-memory records (a jsonl's own are relative to its
        folder).

    Raises:
      PairFormatError: malformed records. PairRecordError: a bad record under on_bad="error".
      ValueError: bad arguments, images without load_image, or records with different image counts.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
      raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
    if on_bad not in ("error", "drop"):
      raise ValueError(f"on_bad must be 'error' or 'drop', got {on_bad!r}")
    if isinstance(pairs, (str, os.PathLike)):
      labelled = read_labelled_pairs(pairs)
    else:
      labelled = [(f"record {i}", canonical_record(r, f"record {i}", image_root)) for i, r in enumerate(pairs)]
    self.tokenizer, self.load_image, self.check_image = tokenizer, load_image, check_image
    self.max_length = max_length
    self.drop_report = DropReport(total=len(labelled))
    self._kept: list[tuple[str, dict[str, Any]]] = []
    for where, record in labelled:
      try:
        self._check(where, record)
      except PairRecordError as error:
        if on_bad == "error":
          raise
        self.drop_report.add(error)
        continue
      self._kept.append((where, record))
    self.drop_report.kept = len(self._kept)
    if self.drop_report.dropped:
      log.warning("PreferencePairSource: %s", self.drop_report)
    self.num_images = self._common_image_count()

  def __len__(self) -> int:
    return len(self._kept)

  def where(self, index: int) -> str:
    """The file line ("<path> line <n>") or "record <i>" that element `index` comes from."""
    return self._kept[index][0]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
      raise IndexError(f"pair {index!r} out of range [0, {len(self)})")
    where, record = self._kept[int(index)]
    prompt_ids, response_ids = self._encode(where, record)
    element: dict[str, np.ndarray] = {}
    for key in RESPONSE_KEYS:
      element[f"{key}_ids"], element[f"{key}_mask"] = self._row(prompt_ids, response_ids[key])
    if self.num_images:
      element["pixels"] = self._pixels(where, record["image"])
    return element

  def _encode(self, where: str, record: Mapping[str, Any]) -> tuple[list[int], dict[str, list[int]]]:
    try:
      prompt_ids = self.tokenizer.encode_prompt(record["question"], len(record.get("image", ())),
                                                record.get("system_prompt"))
      response_ids = {key: self.tokenizer.encode_response(record[key]) for key in RESPONSE_KEYS}
    except ValueError as error:
      raise PairRecordError(where, "unencodable", str(error)) from error
    return prompt_ids, response_ids

  def _check(self, where: str, record: Mapping[str, Any]) -> None:
    """Raises PairRecordError for the record's first problem, in DROP_REASONS order."""
    for key in RESPONSE_KEYS:
      if not record[key].strip():
        raise PairRecordError(where, "empty_response", f"the {key} response is empty")
    if record["chosen"].strip() == record["rejected"].strip():
      raise PairRecordError(where, "identical_responses", "chosen and rejected are the same text")
    images = record.get("image", [])
    if images and self.load_image is None:
      raise ValueError(f"{where}: the record has images but the source was given no load_image")
    for path in images:
      try:
        self.check_image(path)
      except (OSError, ValueError) as error:
        raise PairRecordError(where, "missing_image", f"image {path} cannot be read ({error})") from error
    prompt_ids, response_ids = self._encode(where, record)
    for key in RESPONSE_KEYS:
      if not response_ids[key]:
        raise PairRecordError(where, "empty_response", f"the {key} response encodes to no tokens")
      length = len(prompt_ids) + len(response_ids[key]) + 1
      if length > self.max_length:
        raise PairRecordError(where, "too_long", f"prompt ({len(prompt_ids)} tokens) + {key} response "
                              f"({len(response_ids[key])} tokens) + eos = {length} > max_length {self.max_length}")

  def _common_image_count(self) -> int:
    counts = {len(record.get("image", ())) for _, record in self._kept}
    if len(counts) > 1:
      first = {}
      for where, record in self._kept:
        first.setdefault(len(record.get("image", ())), where)
      named = ", ".join(f"{n} at {w}" for n, w in sorted(first.items()))
      raise ValueError(f"records have different numbers of images ({named}); pixels need one shape per source")
    return counts.pop() if counts else 0

  def _row(self, prompt_ids: list[int], response_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids_t, response_mask_t) of prompt + response + eos, padded to max_length."""
    ids = prompt_ids + response_ids + [self.tokenizer.eos_id]
    input_ids_t = np.full(self.max_length, self.tokenizer.pad_id, np.int32)
    input_ids_t[:len(ids)] = ids
    response_mask_t = np.zeros(self.max_length, np.float32)
    response_mask_t[len(prompt_ids):len(ids)] = 1.0
    return input_ids_t, response_mask_t

  def _pixels(self, where: str, paths: Sequence[str]) -> np.ndarray:
    tiles_per_image = getattr(self.tokenizer, "tiles_per_image", None)
    per_image = []
    for path in paths:
      try:
        tiles = np.asarray(self.load_image(path), np.float32)
      except (OSError, ValueError) as error:
        raise PairRecordError(where, "missing_image", f"image {path} cannot be loaded ({error})") from error
      tiles = tiles[None] if tiles.ndim == 3 else tiles
      if tiles.ndim != 4 or (tiles_per_image is not None and tiles.shape[0] != tiles_per_image):
        raise ValueError(f"{where}: load_image gave shape {tiles.shape} for {path}; expected "
                         f"[{tiles_per_image or 'tiles'}, t, t, 3] to match the prompt's image tokens")
      per_image.append(tiles)
    return np.concatenate(per_image, axis=0)

  def __repr__(self) -> str:
    return f"PreferencePairSource({len(self)} pairs, max_length={self.max_length}, num_images={self.num_images})"
