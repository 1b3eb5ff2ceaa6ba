"""A synthetic image question-answer task: one coloured shape on white, "What is in the image?" -> "<colour> <shape>".

Record i of `ShapesSource` is drawn from `np.random.default_rng((seed, i))`: a colour (red, green,
blue), a shape (square, circle, triangle), a size (side or diameter) in [min_fraction, max_fraction]
of the tile and a position where the shape fits whole, painted in pure colour on a white
tile_size x tile_size image. The text goes through a word-level vocabulary (`ShapesVocab`):
the ChatML prompt of `render_chat` with its image placeholder expanded by `expand_image_tokens`,
then the answer words and `<|im_end|>`. A record is

  {"input_ids": int32 [T], "targets": int32 [T] (input_ids shifted by one), "loss_mask": float32 [T]
   (1 where the target is an answer word or <|im_end|>), "pixels": float32 [1, t, t, 3] ImageNet-
   normalized NHWC (one tile), "colour": int32, "shape": int32}

plus, with `v2pe_delta`, "positions": float32 [T] V2PE positions of input_ids and "v2pe_delta".

Every record has the same length, and the prompt is its first `prompt_length` ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from jaxlab.nn.v2pe import V2PE_DELTAS, sample_deltas, v2pe_position_ids
from jaxlab.vlm.chat_template import IM_END, IM_START, render_chat
from jaxlab.vlm.image_tokens import IMG_CONTEXT, IMG_END, IMG_START, expand_image_tokens
from jaxlab.vlm.tiling import IMAGENET_MEAN, IMAGENET_STD

COLOURS: tuple[str, ...] = ("red", "green", "blue")
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
QUESTION = "What is in the image?"
PAD = "<pad>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT)
WORDS: tuple[str, ...] = ("\n", "user", "assistant", "system", "What", "is", "in", "the", "image", "?") + COLOURS + SHAPES
_RGB = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + r"|\n|\?|[^\s?<]+)")


class ShapesVocab:
  """Word-level tokenizer of the task's text: the special tokens first (pad = 0), then the words."""

  def __init__(self, tokens: Sequence[str] = SPECIAL_TOKENS + WORDS):
    self.tokens = tuple(tokens)
    self.ids = {tok: i for i, tok in enumerate(self.tokens)}
    self.pad_id = self.ids[PAD]
    self.im_end_id = self.ids[IM_END]
    self.image_token_id = self.ids[IMG_CONTEXT]

  def __len__(self) -> int:
    return len(self.tokens)

  def encode(self, text: str) -> list[int]:
    """Ids of the special tokens, newlines, "?" and whitespace-separated words of `text`.

    Raises:
      ValueError: a word outside the vocabulary (named).
    """
    pieces = _SPLIT.findall(text)
    unknown = sorted({p for p in pieces if p not in self.ids})
    if unknown or "".join(pieces) != re.sub(r"[ \t]+", "", text):
      raise ValueError(f"text holds words outside the shapes vocabulary: {unknown or text!r}")
    return [self.ids[p] for p in pieces]

  def decode(self, ids: Sequence[int]) -> str:
    """Space-joined tokens (no space around newlines)."""
    out = ""
    for i in ids:
      i = int(i)
      if not 0 <= i < len(self.tokens):
        raise ValueError(f"id {i} is outside the shapes vocabulary [0, {len(self.tokens)})")
      tok = self.tokens[i]
      out += tok if (not out or out.endswith("\n") or tok in ("\n", "?")) else " " + tok
    return out


def draw_shape(tile_size: int, colour: str, shape: str, top: int, left: int, side: int) -> np.ndarray:
  """float32 [t, t, 3] in [0, 1]: white, with `shape` painted in `colour` inside the side x side box at (top, left).

  The triangle points up: apex at the box's top middle, base along its bottom row.
  """
  image = np.ones((tile_size, tile_size, 3), np.float32)
  paint_shape(image, colour, shape, top, left, side)
  return image


def paint_shape(image_hwc: np.ndarray, colour: str, shape: str, top: int, left: int, side: int) -> None:
  """Paints `shape` in `colour` into the side x side box at (top, left) of a square image, in place."""
  tile_size = image_hwc.shape[0]
  if colour not in _RGB or shape not in SHAPES:
    raise ValueError(f"unknown colour {colour!r} or shape {shape!r}; expected {COLOURS} and {SHAPES}")
  if side < 1 or top < 0 or left < 0 or top + side > tile_size or left + side > tile_size:
    raise ValueError(f"box (top={top}, left={left}, side={side}) does not fit a {tile_size} px tile")
  yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5  # Pixel centres inside the box.
  if shape == "square":
    inside = np.ones((side, side), bool)
  elif shape == "circle":
    r = side / 2
    inside = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
  else:
    inside = np.abs(xx - side / 2) <= 0.5 * yy  # Half-width grows from 0 at the top to side/2 at the bottom.
  image_hwc[top:top + side, left:left + side][inside] = _RGB[colour]


def image_question_ids(vocab: ShapesVocab, question: str, tokens_per_tile: int) -> list[int]:
  """Ids of the ChatML prompt "one image, then `question`", up to `<|im_start|>assistant\n`."""
  messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
  return vocab.encode(expand_image_tokens(render_chat(messages), [1], tokens_per_tile=tokens_per_tile))


def normalize(image_hwc: np.ndarray) -> np.ndarray:
  """[0, 1] RGB -> ImageNet-normalized float32, as `jaxlab.vlm.tiling` normalizes tiles."""
  mean = np.asarray(IMAGENET_MEAN, np.float32)
  std = np.asarray(IMAGENET_STD, np.float32)
  return ((image_hwc - mean) / std).astype(np.float32)


def unnormalize(pixels_hwc: np.ndarray) -> np.ndarray:
  return pixels_hwc * np.asarray(IMAGENET_STD, np.float32) + np.asarray(IMAGENET_MEAN, np.float32)


class ShapesSource:
  """Random-access source (grain's RandomAccessDataSource protocol) of shape question-answer records."""

  def __init__(
      self,
      tile_size: int = 28,
      *,
      tokens_per_tile: int = 1,
      min_fraction: float = 0.4,
      max_fraction: float = 0.8,
      seed: int = 0,
      length: int = 100_000,
      v2pe_delta: float | str | None = None,
  ):
    """Args:
      tile_size: image side in pixels, >= 8.
      tokens_per_tile: `<IMG_CONTEXT>` tokens the model makes of one tile (e.g. 1 for 28 px, patch 14, shuffle 2).
      min_fraction, max_fraction: shape size range as fractions of the tile, 0 < min <= max <= 1.
      seed: non-negative int; record i depends only on (seed, i).
      length: number of records, >= 1.
      v2pe_delta: None: records carry no positions. A delta in `jaxlab.nn.v2pe.V2PE_DELTAS`: each
        record gets "positions", the V2PE positions of its input ids with that step for the image
        tokens (inference). "sample": a delta drawn per record from (seed, i) (V2PE training).
    """
    for name, value, low in (("tile_size", tile_size, 8), ("tokens_per_tile", tokens_per_tile, 1),
                             ("seed", seed, 0), ("length", length, 1)):
      if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not (0 < min_fraction <= max_fraction <= 1):
      raise ValueError(f"need 0 < min_fraction <= max_fraction <= 1, got {min_fraction!r}, {max_fraction!r}")
    if not (v2pe_delta is None or v2pe_delta == "sample" or v2pe_delta in V2PE_DELTAS):
      raise ValueError(f"v2pe_delta must be None, 'sample' or one of {V2PE_DELTAS}, got {v2pe_delta!r}")
    self._args = dict(tile_size=int(tile_size), tokens_per_tile=int(tokens_per_tile), min_fraction=float(min_fraction),
                      max_fraction=float(max_fraction), seed=int(seed), length=int(length), v2pe_delta=v2pe_delta)
    self.vocab = ShapesVocab()
    self._prompt_ids = image_question_ids(self.vocab, QUESTION, int(tokens_per_tile))

  @property
  def prompt_length(self) -> int:
    """Ids of the prompt (up to and including `<|im_start|>assistant\\n`) at the start of every record."""
    return len(self._prompt_ids)

  @property
  def tile_size(self) -> int:
    return self._args["tile_size"]

  def answer_ids(self, colour: int, shape: int) -> list[int]:
    """The answer's ids, `<|im_end|>` included."""
    return self.vocab.encode(f"{COLOURS[colour]} {SHAPES[shape]}") + [self.vocab.im_end_id]

  def __len__(self) -> int:
    return self._args["length"]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not _is_int(index) or not 0 <= index < len(self):
      raise IndexError(f"record {index!r} out of range [0, {len(self)})")
    a = self._args
    t = a["tile_size"]
    rng = np.random.default_rng((a["seed"], int(index)))
    colour, shape = int(rng.integers(len(COLOURS))), int(rng.integers(len(SHAPES)))
    lo, hi = max(2, int(round(a["min_fraction"] * t))), max(2, int(round(a["max_fraction"] * t)))
    side = int(rng.integers(lo, max(lo, hi) + 1))
    top, left = int(rng.integers(t - side + 1)), int(rng.integers(t - side + 1))
    image = draw_shape(t, COLOURS[colour], SHAPES[shape], top, left, side)
    ids = np.asarray(self._prompt_ids + self.answer_ids(colour, shape), np.int32)
    mask = np.zeros(len(ids) - 1, np.float32)
    mask[self.prompt_length - 1:] = 1.0  # Targets from the first answer word to <|im_end|>.
    record = {"input_ids": ids[:-1], "targets": ids[1:], "loss_mask": mask, "pixels": normalize(image)[None],
              "colour": np.array(colour, np.int32), "shape": np.array(shape, np.int32)}
    if a["v2pe_delta"] is not None:
      record.update(self._v2pe(record["input_ids"], index))
    return record

  def _v2pe(self, input_ids_t: np.ndarray, index: int) -> dict[str, np.ndarray]:
    """{"positions": [T] float32 V2PE positions, "v2pe_delta": the image's delta} of one record."""
    delta = self._args["v2pe_delta"]
    if delta == "sample":  # Its own stream: the record's image and text do not depend on it.
      delta = float(sample_deltas(np.random.default_rng((self._args["seed"], int(index), 1)), 1)[0])
    is_visual_t = input_ids_t == self.vocab.image_token_id
    positions_t = v2pe_position_ids(is_visual_t, np.where(is_visual_t, 0, -1), [delta])
    return {"positions": positions_t, "v2pe_delta": np.array(delta, np.float32)}

  def __getstate__(self) -> dict:
    return dict(self._args)

  def __setstate__(self, state: dict) -> None:
    state = dict(state)
    self.__init__(state.pop("tile_size"), **state)

  def __repr__(self) -> str:
    return "ShapesSource(" + ", ".join(f"{k}={v!r}" for k, v in self._args.items()) + ")"


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
