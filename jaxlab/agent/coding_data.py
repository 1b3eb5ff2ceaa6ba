"""A MAT-Coding-like dataset for Visual-ARFT's agentic coding task, made deterministically.

An example is a square `image_size` px picture (a muted crop of a scikit-image photograph, or a
synthetic background) with 1..3 pure-colour shapes (red/green/blue square/circle/triangle, at most
one of each colour and of each shape, so "the circle" and "the blue one" are unambiguous), a
question with a one-word answer from `answer_vocabulary()`, and a degradation that the question
needs undone. Labels and what they do to the clean image (amounts uniform in the ranges):

  rotation90    rotated 90 degrees counter-clockwise (np.rot90, k=1); fix: 90 clockwise (PIL ROTATE_270).
  rotation180   rotated 180 degrees; fix: ROTATE_180.
  dark          x -> x * f, f in EXPOSURE_FACTOR; fix: x -> x * 4 (PIL point, clipped to 0..255).
  overexposure  washed towards white, x -> 255 - (255 - x) * f, f in EXPOSURE_FACTOR; fix: x -> 255 - (255 - x) * 4.
  blur          Gaussian blur of radius r * image_size / 112, r in BLUR_RADIUS; fix: UnsharpMask(radius
                round(2 * image_size / 112), percent 150, threshold 0).
  noise         salt and pepper: a fraction p in NOISE_FRACTION of the pixels set to black or white (a coin
                each); fix: 3x3 median filter.
  crop          nothing degraded: the question is about a small shape (max(4, 6% of the side) px) inside one
                corner square of side image_size // 3; fix: crop that square, resize it back to image_size.
  none          nothing to fix.

Photometric degradations are applied first, then the rotation; the gold code undoes them in
PROBLEM_LABELS order (rotation, brightness, blur, noise, then the crop). Questions by label:

  rotation, alone or with a photometric label   "Which side of the image is the red circle on?"  (a side)
  dark, overexposure                            "What colour is the square?"                     (a colour)
  blur, noise                                   "What shape is the blue one?"                    (a shape)
  crop, alone or with a photometric label       "What colour is the small shape in the top left corner?" or
                                                "What shape is the small one in the top left corner?"
  none                                          any of the first three

The shape a side question names lies within 22% of the image side from that edge and in the middle
third along it; a crop question's corner square holds nothing but its small shape. "simple"
examples carry one label (crop and none included), "hard" ones two (HARD_COMBOS: a rotation or
the crop with a photometric label).

A gold trajectory (`records.Trajectory`, task "coding") is three turns, `<problem>` then `<code>`
then `<answer>`, or two for "none" (`<problem>{'none'}</problem>` then the answer); the code turn's
observation is the image the gold code writes, computed here in-process with the same PIL calls and
the tool's JPEG round trips (`fix_image`), so no subprocess runs at generation time. Every text is a
template over a small word set, and each label has one canonical code line (crop two), so a tiny word-level model can
learn them.

Example i of a dataset is drawn from `np.random.default_rng((seed, i))`. Training ("train") and
evaluation ("eval") sets use different default seeds and disjoint backgrounds: held-out photographs
(EVAL_PHOTOS) or, for synthetic backgrounds, two-colour gradients instead of flat colours.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import numbers
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image, ImageFilter

from jaxlab.agent.records import NO_OBSERVATION, Observation, Trajectory
from jaxlab.agent.sandbox import INPUT_NAME, OUTPUT_NAME
from jaxlab.agent.tags import PROBLEM_LABELS
from jaxlab.vlm.shapes_task import COLOURS, SHAPES, paint_shape

ROTATIONS: tuple[str, ...] = ("rotation90", "rotation180")
PHOTOMETRIC: tuple[str, ...] = ("dark", "overexposure", "blur", "noise")
HARD_COMBOS: tuple[tuple[str, str], ...] = (tuple((r, p) for r in ROTATIONS for p in PHOTOMETRIC)
                                            + tuple((p, "crop") for p in PHOTOMETRIC))
SIDES: tuple[str, ...] = ("left", "right", "top", "bottom")
CORNERS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
QUESTION_KINDS: tuple[str, ...] = ("side", "colour", "shape", "corner_colour", "corner_shape")
BACKGROUNDS: tuple[str, ...] = ("photo", "plain")
ITEM_SPLITS: tuple[str, ...] = ("train", "eval", "simple", "hard")
# Photographs that load from the scikit-image install (no pooch download); greyscale ones are repeated to RGB.
TRAIN_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "rocket", "immunohistochemistry", "camera", "brick")
EVAL_PHOTOS: tuple[str, ...] = ("chelsea", "clock", "coins", "moon")
TRAIN_SEED, EVAL_SEED = 0, 1

EXPOSURE_FACTOR = (0.22, 0.28)  # the fix's x4 maps these to 0.88..1.12 of the clean value (or distance to white)
BLUR_RADIUS = (2.0, 3.0)  # px at 112 px, scaled with image_size
NOISE_FRACTION = (0.1, 0.2)
BIG_SHAPE = (0.18, 0.28)  # side as a fraction of image_size
SMALL_SHAPE = 0.06
SIDE_BAND = 0.08  # a side question's shape starts at most this far (fraction) from its edge
_GAP = 2  # px kept between shapes
JPEG_QUALITY = 95  # run_image_code writes the input at this quality, and the gold code its output

_DIAGNOSIS = {"rotation90": "turned on its side", "rotation180": "upside down", "dark": "too dark",
              "overexposure": "too bright", "blur": "blurry", "noise": "noisy"}
_PLAN = {"rotation90": "rotate it clockwise", "rotation180": "rotate it half a turn", "dark": "brighten it",
         "overexposure": "darken it", "blur": "sharpen it", "noise": "remove the noise",
         "crop": "zoom into the {corner} corner"}
_CODE_HEAD = ("from PIL import Image, ImageFilter", f"img = Image.open('{INPUT_NAME}').convert('RGB')")
_CODE_TAIL = (f"img.save('{OUTPUT_NAME}', quality={JPEG_QUALITY})",)
_CROP_BOXES = {"top left": "(0, 0, w // 3, h // 3)", "top right": "(w - w // 3, 0, w, h // 3)",
               "bottom left": "(0, h - h // 3, w // 3, h)", "bottom right": "(w - w // 3, h - h // 3, w, h)"}


def _round_u8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


@dataclasses.dataclass(frozen=True)
class CodingSettings:
  """How examples are drawn.

  Attributes:
    image_size: side of the square images in px, in [24, 1024].
    hard_fraction: probability that an example is "hard" (two labels, uniform over HARD_COMBOS), in [0, 1].
    label_weights: relative probabilities of the one-label ("simple") examples, aligned with PROBLEM_LABELS;
      non-negative with a positive sum.
    max_shapes: most big shapes in one image, in [1, 3].
    background: "photo" (muted photograph crops) or "plain" (flat colours; gradients for evaluation).
  """

  image_size: int = 112
  hard_fraction: float = 0.5
  label_weights: tuple[float, ...] = (1.0,) * len(PROBLEM_LABELS)
  max_shapes: int = 3
  background: str = "photo"

  def __post_init__(self):
    if not _is_int(self.image_size) or not 24 <= self.image_size <= 1024:
      raise ValueError(f"image_size must be an int in [24, 1024], got {self.image_size!r}")
    if not _is_real(self.hard_fraction) or not 0 <= self.hard_fraction <= 1:
      raise ValueError(f"hard_fraction must be a number in [0, 1], got {self.hard_fraction!r}")
    weights = tuple(self.label_weights) if isinstance(self.label_weights, Iterable) else ()
    if (len(weights) != len(PROBLEM_LABELS) or not all(_is_real(w) and w >= 0 for w in weights)
        or sum(weights) <= 0):
      raise ValueError(f"label_weights must be {len(PROBLEM_LABELS)} non-negative numbers with a positive sum "
                       f"(one per label of {PROBLEM_LABELS}), got {self.label_weights!r}")
    if not _is_int(self.max_shapes) or not 1 <= self.max_shapes <= 3:
      raise ValueError(f"max_shapes must be an int in [1, 3], got {self.max_shapes!r}")
    if self.background not in BACKGROUNDS:
      raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")


@dataclasses.dataclass(frozen=True)
class PlacedShape:
  """A shape painted into the size x size box at (top, left) of the clean image."""

  colour: str
  shape: str
  top: int
  left: int
  size: int

  @property
  def centre(self) -> tuple[float, float]:
    """(row, column) of the box centre in px."""
    return self.top + self.size / 2, self.left + self.size / 2


@dataclasses.dataclass(frozen=True)
class CodingExample:
  """One generated example and how it was made.

  Attributes:
    clean: uint8 [S, S, 3], the image before degradation.
    image: uint8 [S, S, 3], the degraded image the question is asked about.
    labels: the problem labels in PROBLEM_LABELS order.
    kind: the question kind (QUESTION_KINDS).
    question, answer: the question and its one-word answer on the clean image.
    shapes: the shapes painted; `shapes[0]` is the one the question is about.
    corner: the corner a crop question names ("" for other kinds).
    trajectory: the gold trajectory.
  """

  clean: np.ndarray
  image: np.ndarray
  labels: tuple[str, ...]
  kind: str
  question: str
  answer: str
  shapes: tuple[PlacedShape, ...]
  corner: str
  trajectory: Trajectory


def answer_vocabulary() -> tuple[str, ...]:
  """Every answer the dataset gives: colours, shapes and sides."""
  return COLOURS + SHAPES + SIDES


def canonical_labels(labels: Iterable[str]) -> tuple[str, ...]:
  """`labels` in PROBLEM_LABELS order, checked: known labels, "none" alone, at most one rotation.

  Raises:
    ValueError: an unknown label or an impossible combination.
  """
  labels = set(labels) if not isinstance(labels, str) else {labels}
  unknown = sorted(labels - set(PROBLEM_LABELS))
  if unknown or not labels:
    raise ValueError(f"labels must be a non-empty set from {PROBLEM_LABELS}, got {sorted(labels)}")
  if ("none" in labels and len(labels) > 1) or len(labels & set(ROTATIONS)) > 1:
    raise ValueError(f"'none' must come alone and at most one rotation, got {sorted(labels)}")
  return tuple(label for label in PROBLEM_LABELS if label in labels)


def format_labels(labels: Iterable[str]) -> str:
  """The `<problem>` content: a Python set literal in PROBLEM_LABELS order, e.g. "{'rotation90', 'dark'}"."""
  return "{" + ", ".join(f"'{label}'" for label in canonical_labels(labels)) + "}"


# -- degradations and their fixes --------------------------------------------------------------------


def apply_distortion(image_hw3: np.ndarray, labels: Iterable[str], rng: np.random.Generator) -> np.ndarray:
  """uint8 [S, S, 3]: `image_hw3` degraded as `labels` say (module doc), amounts drawn from `rng`."""
  labels = canonical_labels(labels)
  x = np.asarray(image_hw3, np.uint8)
  size = x.shape[0]
  for label in labels:  # photometric ones first, each drawing from rng in label order
    if label == "dark":
      x = _round_u8(x.astype(np.float64) * rng.uniform(*EXPOSURE_FACTOR))
    elif label == "overexposure":
      x = _round_u8(255.0 - (255.0 - x.astype(np.float64)) * rng.uniform(*EXPOSURE_FACTOR))
    elif label == "blur":
      radius = rng.uniform(*BLUR_RADIUS) * size / 112
      x = np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius)))
    elif label == "noise":
      hit = rng.random(x.shape[:2]) < rng.uniform(*NOISE_FRACTION)
      x = x.copy()
      x[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)[:, None]
  if "rotation90" in labels:
    x = np.rot90(x, 1)  # counter-clockwise
  elif "rotation180" in labels:
    x = np.rot90(x, 2)
  return np.ascontiguousarray(x)


def _unsharp_radius(image_size: int) -> int:
  return max(1, round(2 * image_size / 112))


def _crop_zoom(img: Image.Image, corner: str) -> Image.Image:
  w, h = img.size
  box = {"top left": (0, 0, w // 3, h // 3), "top right": (w - w // 3, 0, w, h // 3),
         "bottom left": (0, h - h // 3, w // 3, h), "bottom right": (w - w // 3, h - h // 3, w, h)}[corner]
  return img.crop(box).resize((w, h))


def _fix(label: str, corner: str, image_size: int) -> tuple[str, Callable[[Image.Image], Image.Image]]:
  """One label's gold code line(s) and the same PIL calls as a function, side by side so they agree."""
  if label == "rotation90":
    return "img = img.transpose(Image.Transpose.ROTATE_270)", lambda img: img.transpose(Image.Transpose.ROTATE_270)
  if label == "rotation180":
    return "img = img.transpose(Image.Transpose.ROTATE_180)", lambda img: img.transpose(Image.Transpose.ROTATE_180)
  if label == "dark":
    return "img = img.point(lambda v: v * 4)", lambda img: img.point(lambda v: v * 4)
  if label == "overexposure":
    return "img = img.point(lambda v: 255 - (255 - v) * 4)", lambda img: img.point(lambda v: 255 - (255 - v) * 4)
  if label == "blur":
    radius = _unsharp_radius(image_size)
    return (f"img = img.filter(ImageFilter.UnsharpMask(radius={radius}, percent=150, threshold=0))",
            lambda img: img.filter(ImageFilter.UnsharpMask(radius=radius, percent=150, threshold=0)))
  if label == "noise":
    return "img = img.filter(ImageFilter.MedianFilter(3))", lambda img: img.filter(ImageFilter.MedianFilter(3))
  if label == "crop":
    return f"w, h = img.size\nimg = img.crop({_CROP_BOXES[corner]}).resize((w, h))", lambda img: _crop_zoom(img, corner)
  return "", lambda img: img  # none


def question_corner(question: str) -> str:
  """The corner (CORNERS) a question names, or "" when it names none."""
  return next((corner for corner in CORNERS if f"{corner} corner" in question), "")


def _checked_corner(labels: tuple[str, ...], question: str) -> str:
  corner = question_corner(question)
  if "crop" in labels and not corner:
    raise ValueError(f"a crop fix needs a question naming one of {CORNERS}, got {question!r}")
  return corner


def gold_code(labels: Iterable[str], question: str, image_size: int) -> str:
  """The gold Python for `labels`: open the tool's input, one canonical line per label, save.

  Args:
    labels: the problem labels (any order).
    question: the question; a crop fix zooms into the corner it names.
    image_size: the dataset's image side (sets the unsharp-mask radius).
  """
  labels = canonical_labels(labels)
  corner = _checked_corner(labels, question)
  body = tuple(_fix(label, corner, image_size)[0] for label in labels if label != "none")
  return "\n".join(_CODE_HEAD + body + _CODE_TAIL)


def fix_image(image_hw3: np.ndarray, labels: Iterable[str], question: str, *, file_round_trip: bool = True,
              image_size: int | None = None) -> np.ndarray:
  """uint8 [H, W, 3]: what `gold_code(labels, question, image_size)` writes for `image_hw3`, computed in-process.

  Args:
    image_hw3: uint8 [H, W, 3], the degraded image.
    labels, question: as for `gold_code`.
    file_round_trip: also do the tool's JPEG round trips (the input as `run_image_code` writes it, the
      output as the code saves it), so the result matches the live tool's output.
    image_size: the dataset's image side; default the image's longer side.
  """
  labels = canonical_labels(labels)
  corner = _checked_corner(labels, question)
  image = np.asarray(image_hw3, np.uint8)
  image_size = max(image.shape[:2]) if image_size is None else image_size
  if file_round_trip:
    image = _jpeg_round_trip(image)
  img = Image.fromarray(image).convert("RGB")
  for label in labels:
    img = _fix(label, corner, image_size)[1](img)
  return _jpeg_round_trip(np.asarray(img)) if file_round_trip else np.asarray(img)


def _jpeg_round_trip(image_hw3: np.ndarray) -> np.ndarray:
  buffer = io.BytesIO()
  Image.fromarray(image_hw3).save(buffer, format="JPEG", quality=JPEG_QUALITY)
  with Image.open(buffer) as decoded:
    return np.asarray(decoded.convert("RGB"))


# -- scenes -----------------------------------------------------------------------------------------


@functools.cache
def _photo(name: str) -> np.ndarray:
  """uint8 [H, W, 3] read-only: skimage.data.<name>(), greyscale repeated to RGB."""
  import skimage.data  # Deferred: slow to import, and only photo backgrounds need it.

  image = np.asarray(getattr(skimage.data, name)())
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
  image.flags.writeable = False
  return image


def _background(rng: np.random.Generator, settings: CodingSettings, held_out: bool) -> np.ndarray:
  """float32 [S, S, 3] in [0.3, 0.8]: muted so the pure-colour shapes stand out on it."""
  size = settings.image_size
  if settings.background == "photo":
    names = EVAL_PHOTOS if held_out else TRAIN_PHOTOS
    photo = _photo(names[int(rng.integers(len(names)))])
    height, width, _ = photo.shape
    side = round(rng.uniform(0.4, 1.0) * min(height, width))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BOX)
    rgb = np.asarray(crop, np.float32) / 255
    rgb = 0.5 * rgb + 0.5 * rgb.mean(-1, keepdims=True)  # half desaturated
    return 0.3 + 0.5 * rgb
  colours = 0.55 + 0.3 * rng.random((2, 3))
  if not held_out:
    return np.broadcast_to(colours[0], (size, size, 3)).astype(np.float32)
  ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]  # top-to-bottom gradient
  image = (1 - ramp) * colours[0] + ramp * colours[1]
  image = np.broadcast_to(image, (size, size, 3))
  return np.ascontiguousarray(np.swapaxes(image, 0, 1) if rng.random() < 0.5 else image, np.float32)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
  """Whether boxes (top, left, bottom, right) come within _GAP px of each other."""
  return not (a[2] + _GAP <= b[0] or b[2] + _GAP <= a[0] or a[3] + _GAP <= b[1] or b[3] + _GAP <= a[1])


def _box(top: int, left: int, size: int) -> tuple[int, int, int, int]:
  return top, left, top + size, left + size


def _corner_box(corner: str, image_size: int) -> tuple[int, int, int, int]:
  """The corner square the crop fix zooms into, as (top, left, bottom, right)."""
  c = image_size // 3
  top = 0 if corner.startswith("top") else image_size - c
  left = 0 if corner.endswith("left") else image_size - c
  return top, left, top + c, left + c


def _side_position(rng: np.random.Generator, side: str, size: int, image_size: int) -> tuple[int, int]:
  """(top, left) of a size px box near edge `side`, in the middle third along it."""
  along = int(rng.integers(1, max(1, round(SIDE_BAND * image_size)) + 1))
  across = int(rng.integers(round(0.35 * image_size - size / 2), round(0.65 * image_size - size / 2) + 1))
  far = image_size - size - along
  return {"left": (across, along), "right": (across, far), "top": (along, across), "bottom": (far, across)}[side]


def _corner_position(rng: np.random.Generator, corner: str, size: int, image_size: int) -> tuple[int, int]:
  """(top, left) of a size px box inside the corner square, 1 px clear of its sides."""
  top, left, _, _ = _corner_box(corner, image_size)
  span = image_size // 3 - size - 1
  return top + int(rng.integers(1, span + 1)), left + int(rng.integers(1, span + 1))


def _draw_labels(rng: np.random.Generator, hard_fraction: float, settings: CodingSettings) -> tuple[str, ...]:
  if rng.random() < hard_fraction:
    return HARD_COMBOS[int(rng.integers(len(HARD_COMBOS)))]
  weights = np.asarray(settings.label_weights, np.float64)
  return (PROBLEM_LABELS[int(rng.choice(len(PROBLEM_LABELS), p=weights / weights.sum()))],)


def _question_kind(rng: np.random.Generator, labels: tuple[str, ...]) -> str:
  if "crop" in labels:
    options = ("corner_colour", "corner_shape")
  elif set(labels) & set(ROTATIONS):
    options = ("side",)
  elif set(labels) & {"dark", "overexposure"}:
    options = ("colour",)
  elif set(labels) & {"blur", "noise"}:
    options = ("shape",)
  else:
    options = ("side", "colour", "shape")
  return options[int(rng.integers(len(options)))]


def _place_shapes(rng: np.random.Generator, kind: str, side: str, corner: str,
                  settings: CodingSettings) -> list[PlacedShape]:
  """The target shape (first) where the question needs it, then the other big shapes where they fit."""
  size = settings.image_size
  count = int(rng.integers(1, settings.max_shapes + 1))
  colours = [COLOURS[i] for i in rng.permutation(len(COLOURS))[:count]]
  shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:count]]
  sizes = [int(rng.integers(round(BIG_SHAPE[0] * size), round(BIG_SHAPE[1] * size) + 1)) for _ in range(count)]
  placed, taken = [], []
  if corner:  # the small shape the question asks about; big shapes keep out of its corner square
    small = max(4, round(SMALL_SHAPE * size))
    top, left = _corner_position(rng, corner, small, size)
    placed.append(PlacedShape(COLOURS[int(rng.integers(3))], SHAPES[int(rng.integers(3))], top, left, small))
    taken.append(_corner_box(corner, size))
  for i, (colour, shape, side_px) in enumerate(zip(colours, shapes, sizes)):
    if i == 0 and kind == "side":
      top, left = _side_position(rng, side, side_px, size)
    else:
      for _ in range(30):
        top, left = (int(v) for v in rng.integers(0, size - side_px + 1, 2))
        if not any(_overlaps(_box(top, left, side_px), box) for box in taken):
          break
      else:
        continue  # no room left: fewer shapes
    placed.append(PlacedShape(colour, shape, top, left, side_px))
    taken.append(_box(top, left, side_px))
  return placed


def _question(kind: str, target: PlacedShape, side: str, corner: str) -> tuple[str, str, str]:
  """(question, answer, the answer turn's think text)."""
  c, s = target.colour, target.shape
  if kind == "side":
    return f"Which side of the image is the {c} {s} on?", side, f"The {c} {s} is near the {side} edge."
  if kind == "colour":
    return f"What colour is the {s}?", c, f"The {s} is {c}."
  if kind == "shape":
    return f"What shape is the {c} one?", s, f"The {c} one is a {s}."
  if kind == "corner_colour":
    return f"What colour is the small shape in the {corner} corner?", c, f"The small shape there is {c}."
  return f"What shape is the small one in the {corner} corner?", s, f"The small one there is a {s}."


def _diagnosis(labels: tuple[str, ...], corner: str) -> str:
  if labels == ("none",):
    return "The image is clear."
  if labels == ("crop",):
    return f"The {corner} corner is too small to see."
  text = "The image is " + " and ".join(_DIAGNOSIS[label] for label in labels if label != "crop")
  return text + (f" and the {corner} corner is small." if "crop" in labels else ".")


def _plan(labels: tuple[str, ...], corner: str) -> str:
  return "I will " + " and ".join(_PLAN[label].format(corner=corner) for label in labels) + "."


def make_coding_example(index: int, *, seed: int | None = None, split: str = "train",
                        settings: CodingSettings | None = None) -> CodingExample:
  """Example `index` of a dataset: drawn from `np.random.default_rng((seed, index))` only.

  Args:
    index: non-negative int.
    seed: non-negative int; None: TRAIN_SEED for "train", EVAL_SEED otherwise. Give training and
      evaluation sets different seeds, or they share labels, questions and shape layouts.
    split: "train": training backgrounds, trajectory split "train". "eval": held-out backgrounds,
      split "simple" or "hard" by the label count (hard with probability `settings.hard_fraction`).
      "simple" or "hard": "eval" items of that kind only.
    settings: how examples are drawn (default `CodingSettings()`).
  """
  if split not in ITEM_SPLITS:
    raise ValueError(f"split must be one of {ITEM_SPLITS}, got {split!r}")
  seed = (TRAIN_SEED if split == "train" else EVAL_SEED) if seed is None else seed
  for name, value in (("index", index), ("seed", seed)):
    if not _is_int(value) or value < 0:
      raise ValueError(f"{name} must be a non-negative int, got {value!r}")
  settings = CodingSettings() if settings is None else settings
  rng = np.random.default_rng((int(seed), int(index)))
  size = settings.image_size
  labels = _draw_labels(rng, {"simple": 0.0, "hard": 1.0}.get(split, settings.hard_fraction), settings)
  kind = _question_kind(rng, labels)
  side = SIDES[int(rng.integers(len(SIDES)))] if kind == "side" else ""
  corner = CORNERS[int(rng.integers(len(CORNERS)))] if kind.startswith("corner") else ""
  canvas = np.array(_background(rng, settings, held_out=split != "train"), np.float32)
  shapes = _place_shapes(rng, kind, side, corner, settings)
  for shape in shapes:
    paint_shape(canvas, shape.colour, shape.shape, shape.top, shape.left, shape.size)
  clean = _round_u8(canvas * 255)
  image = apply_distortion(clean, labels, rng)
  question, answer, answer_think = _question(kind, shapes[0], side, corner)

  steps = [f"<think>{_diagnosis(labels, corner)}</think><problem>{format_labels(labels)}</problem>"]
  observations = [NO_OBSERVATION]
  if labels != ("none",):
    code = gold_code(labels, question, size)
    steps.append(f"<think>{_plan(labels, corner)}</think><code>```python\n{code}\n```</code>")
    observations.append(Observation(image=fix_image(image, labels, question, image_size=size)))
  steps.append(f"<think>{answer_think}</think><answer>{answer}</answer>")
  observations.append(NO_OBSERVATION)
  trajectory_split = "train" if split == "train" else ("simple" if len(labels) == 1 else "hard")
  trajectory = Trajectory(id=f"coding-{split}-{seed}-{index}", task="coding", question=question, image=image,
                          steps=tuple(steps), observations=tuple(observations), answers=(answer,),
                          split=trajectory_split)
  return CodingExample(clean=clean, image=image, labels=labels, kind=kind, question=question, answer=answer,
                       shapes=tuple(shapes), corner=corner, trajectory=trajectory)


def make_coding_trajectories(n: int, *, seed: int | None = None, split: str = "train",
                             settings: CodingSettings | None = None) -> list[Trajectory]:
  """Gold trajectories of examples 0..n-1 (`make_coding_example`); `[t.item for t in ...]` gives eval items."""
  if not _is_int(n) or n < 0:
    raise ValueError(f"n must be a non-negative int, got {n!r}")
  return [make_coding_example(i, seed=seed, split=split, settings=settings).trajectory for i in range(int(n))]
