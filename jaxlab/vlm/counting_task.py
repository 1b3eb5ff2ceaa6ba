"""A harder synthetic task: count the shapes of each colour, then the total, as a short chain of steps.

Record i of `CountingSource` is drawn from `np.random.default_rng((seed, i))`: between 1 and
`max_shapes` shapes, each with a random colour (red, green, blue), kind (square, circle,
triangle), size in [min_fraction, max_fraction] of the tile and a position where its box
overlaps no other box, painted on a white tile. The question is "How many shapes are there?";
the answer is a chain of four steps separated by ";", one count per colour and then the total:

  red two ; green zero ; blue one ; total three <|im_end|>

so a model must see every shape and add. Steps can be graded one by one (`grade_solution`),
which is what a process reward model learns from. Records have the layout of
`jaxlab.vlm.shapes_task` ("input_ids", "targets", "loss_mask", "pixels"), with "counts" int32 [3]
(per colour) in place of "colour" and "shape"; every record has the same length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxlab.vlm.shapes_task import (COLOURS, SHAPES, SPECIAL_TOKENS, WORDS, ShapesVocab, image_question_ids, normalize,
                                    paint_shape)

QUESTION = "How many shapes are there?"
NUMBERS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")
STEP_SEPARATOR = ";"
TOTAL = "total"
JUDGEMENTS: tuple[str, ...] = ("+", "-")  # A process reward model's verdict on one step.
COUNTING_TOKENS: tuple[str, ...] = (SPECIAL_TOKENS + WORDS
                                    + ("How", "many", "shapes", "are", "there", TOTAL, STEP_SEPARATOR)
                                    + JUDGEMENTS + NUMBERS)
STEP_NAMES: tuple[str, ...] = COLOURS + (TOTAL,)


def counting_vocab() -> ShapesVocab:
  """The word-level vocabulary of the counting task (the shapes task's words, then its own)."""
  return ShapesVocab(COUNTING_TOKENS)


def solution_steps(counts: Sequence[int]) -> list[str]:
  """The four correct steps for per-colour `counts`: ["red two", "green zero", "blue one", "total three"]."""
  counts = [int(c) for c in counts]
  values = counts + [sum(counts)]
  if len(counts) != len(COLOURS) or min(values) < 0 or max(values) >= len(NUMBERS):
    raise ValueError(f"counts must be {len(COLOURS)} ints with a total below {len(NUMBERS)}, got {counts}")
  return [f"{name} {NUMBERS[v]}" for name, v in zip(STEP_NAMES, values)]


def solution_text(counts: Sequence[int]) -> str:
  return f" {STEP_SEPARATOR} ".join(solution_steps(counts))


@dataclasses.dataclass(frozen=True)
class SolutionGrade:
  """How a generated solution compares with the truth.

  Attributes:
    steps: the solution's steps as text, split at ";" (up to `<|im_end|>`).
    step_correct: per step, True when it names the expected colour (or "total") in its place
      and the right count. Steps beyond the fourth are wrong.
    answer: the number word after "total" in the last step, or None.
    final_correct: the answer equals the true total.
  """

  steps: tuple[str, ...]
  step_correct: tuple[bool, ...]
  answer: str | None
  final_correct: bool


def grade_solution(vocab: ShapesVocab, ids: Sequence[int], counts: Sequence[int]) -> SolutionGrade:
  """Grades the generated ids (read up to the first `<|im_end|>`) against per-colour `counts`."""
  ids = [int(i) for i in ids]
  if vocab.im_end_id in ids:
    ids = ids[:ids.index(vocab.im_end_id)]
  words = [vocab.tokens[i] for i in ids if i != vocab.pad_id]
  steps, current = [], []
  for word in words:
    if word == STEP_SEPARATOR:
      steps.append(" ".join(current))
      current = []
    else:
      current.append(word)
  if current or steps:
    steps.append(" ".join(current))
  expected = solution_steps(counts)
  step_correct = tuple(k < len(expected) and step == expected[k] for k, step in enumerate(steps))
  last = steps[-1].split() if steps else []
  answer = last[1] if len(last) == 2 and last[0] == TOTAL else None
  return SolutionGrade(tuple(steps), step_correct, answer, answer == NUMBERS[sum(int(c) for c in counts)])


class CountingSource:
  """Random-access source (grain's RandomAccessDataSource protocol) of counting records."""

  def __init__(self, tile_size: int = 56, *, tokens_per_tile: int = 4, max_shapes: int = 4,
               min_fraction: float = 0.25, max_fraction: float = 0.4, seed: int = 0, length: int = 100_000):
    """Args:
      tile_size: image side in pixels, >= 16.
      tokens_per_tile: `<IMG_CONTEXT>` tokens the model makes of one tile.
      max_shapes: at most this many shapes per image (at least 1), <= 6.
      min_fraction, max_fraction: shape size range as fractions of the tile.
      seed: non-negative int; record i depends only on (seed, i).
      length: number of records, >= 1.
    """
    for name, value, low in (("tile_size", tile_size, 16), ("tokens_per_tile", tokens_per_tile, 1),
                             ("max_shapes", max_shapes, 1), ("seed", seed, 0), ("length", length, 1)):
      if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if max_shapes >= len(NUMBERS):
      raise ValueError(f"max_shapes must be below {len(NUMBERS)} (the largest count word), got {max_shapes}")
    if not (0 < min_fraction <= max_fraction <= 0.5):
      raise ValueError(f"need 0 < min_fraction <= max_fraction <= 0.5, got {min_fraction!r}, {max_fraction!r}")
    self._args = dict(tile_size=int(tile_size), tokens_per_tile=int(tokens_per_tile), max_shapes=int(max_shapes),
                      min_fraction=float(min_fraction), max_fraction=float(max_fraction), seed=int(seed),
                      length=int(length))
    self.vocab = counting_vocab()
    self._prompt_ids = image_question_ids(self.vocab, QUESTION, int(tokens_per_tile))

  @property
  def prompt_length(self) -> int:
    """Ids of the prompt (up to and including `<|im_start|>assistant\\n`) at the start of every record."""
    return len(self._prompt_ids)

  @property
  def prompt_ids(self) -> list[int]:
    return list(self._prompt_ids)

  @property
  def tile_size(self) -> int:
    return self._args["tile_size"]

  def answer_ids(self, counts: Sequence[int]) -> list[int]:
    """The solution's ids, `<|im_end|>` included."""
    return self.vocab.encode(solution_text(counts)) + [self.vocab.im_end_id]

  def __len__(self) -> int:
    return self._args["length"]

  def scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 [t, t, 3] in [0, 1], counts int32 [3]) of record `index`."""
    if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
      raise IndexError(f"record {index!r} out of range [0, {len(self)})")
    a = self._args
    t = a["tile_size"]
    rng = np.random.default_rng((a["seed"], int(index)))
    wanted = int(rng.integers(1, a["max_shapes"] + 1))
    lo, hi = max(3, int(round(a["min_fraction"] * t))), max(3, int(round(a["max_fraction"] * t)))
    image = np.ones((t, t, 3), np.float32)
    counts = np.zeros(len(COLOURS), np.int32)
    boxes: list[tuple[int, int, int]] = []
    for _ in range(64 * wanted):  # Rejection sampling of non-overlapping boxes; fewer shapes if it cannot fit.
      if len(boxes) == wanted:
        break
      side = int(rng.integers(lo, hi + 1))
      top, left = int(rng.integers(t - side + 1)), int(rng.integers(t - side + 1))
      if any(top < bt + bs and bt < top + side and left < bl + bs and bl < left + side for bt, bl, bs in boxes):
        continue
      colour, kind = int(rng.integers(len(COLOURS))), int(rng.integers(len(SHAPES)))
      paint_shape(image, COLOURS[colour], SHAPES[kind], top, left, side)
      boxes.append((top, left, side))
      counts[colour] += 1
    return image, counts

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    image, counts = self.scene(index)
    ids = np.asarray(self._prompt_ids + self.answer_ids(counts), np.int32)
    mask = np.zeros(len(ids) - 1, np.float32)
    mask[self.prompt_length - 1:] = 1.0  # Targets from the first answer word to <|im_end|>.
    return {"input_ids": ids[:-1], "targets": ids[1:], "loss_mask": mask, "pixels": normalize(image)[None],
            "counts": counts}

  def __getstate__(self) -> dict:
    return dict(self._args)

  def __setstate__(self, state: dict) -> None:
    state = dict(state)
    self.__init__(state.pop("tile_size"), **state)

  def __repr__(self) -> str:
    return "CountingSource(" + ", ".join(f"{k}={v!r}" for k, v in self._args.items()) + ")"
