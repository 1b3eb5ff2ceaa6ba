"""The embedded MM-IFEngine set: shape scenes, tasks with rule-checkable constraints, and a teacher that answers.

A scene (`scene(seed)`) holds 1 to 3 shapes of distinct colour and kind (`jaxlab.vlm.shapes_task`'s
red / green / blue squares, circles and triangles) in distinct regions of a white tile. Its words
(colours and kinds present, and a few generic words) are the keyword candidates of its constraints.

`Teacher` stands in for the strong model that answers MM-IFInstruct prompts: it writes sentences
about the scene in the register of the task type, and builds the response to the constraints it
is given (paragraph and sentence counts, word bounds, prefixes and suffixes, keyword counts,
forbidden words and marks, percentages and their precision, numerals spelled out). It tries up to
`attempts` random constructions and returns the first that every rule verifier accepts (else the
one that meets most). With probability `ignore_prob` it ignores one constraint, as a real model
sometimes does: the >= 80 % filter then has something to remove.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from jaxlab.mmif import constraint_writers as w
from jaxlab.mmif.engine import InstructItem, integrate_constraints, satisfaction
from jaxlab.mmif.records import Constraint
from jaxlab.mmif.tasks import ImageRecord, Task, generate_tasks
from jaxlab.mmif.taxonomy import RULE
from jaxlab.vlm.shapes_task import COLOURS, SHAPES, paint_shape

REGIONS: tuple[str, ...] = ("left", "right", "top", "bottom")
GENERIC_WORDS: tuple[str, ...] = ("picture", "simple", "bright", "calm", "clean")
EXPERIMENT_WRITERS: tuple[str, ...] = ("paragraph_limit", "sentence_limit", "word_limit", "prefix_suffix",
                                       "punctuation", "mention", "multiple_mention", "not_mention", "no_numerals",
                                       "precision")
NUMBER_WORDS = w.NUMBER_WORDS

_SHAPE_SENTENCES: dict[str, tuple[str, ...]] = {
    "descriptive_analysis": ("There is a {c} {s} on the {r}.", "A {c} {s} sits near the {r} edge.",
                             "The {c} {s} stands out on the white ground.", "On the {r}, we see a {c} {s}."),
    "emotion_perspective": ("The {c} {s} feels calm.", "Seeing the {c} {s} on the {r} makes me happy.",
                            "The {c} {s} looks lonely, yet proud."),
    "creative_writing": ("Once, a {c} {s} lived on the {r}.", "The {c} {s} dreamed of the sky.",
                         "Every night the {c} {s} rolled to the {r}."),
    "social_media_content": ("Check out this {c} {s}.", "Loving the {c} {s} on the {r}.",
                             "This {c} {s}, so neat."),
    "role_play": ("As your guide, I show you a {c} {s}.", "Here, on the {r}, rests a {c} {s}.",
                  "I see a {c} {s} on the {r}."),
}
_FILLERS: tuple[str, ...] = ("The background is white.", "The picture is simple.", "Everything looks bright and clean.",
                             "The scene feels calm.", "It is a clean picture.", "The shapes do not touch.",
                             "Nothing else is there.", "The colours are bright, and the lines are sharp.")
_GENERIC_SENTENCES: dict[str, tuple[str, ...]] = {
    "picture": ("It is a nice picture.", "The picture is small.", "This picture has a white frame.",
                "A picture like this is easy to read."),
    "simple": ("The layout is simple.", "Simple forms fill the space.", "Each form is simple.",
               "The idea here is simple."),
    "bright": ("The colours are bright.", "Bright paint covers each form.", "The light feels bright.",
               "Every edge looks bright."),
    "calm": ("The mood is calm.", "Calm order rules here.", "A calm feeling fills the frame.", "It all stays calm."),
    "clean": ("The edges are clean.", "Clean white space surrounds them.", "The design is clean.",
              "Each line is clean."),
}


@dataclasses.dataclass(frozen=True)
class Scene:
  """Shapes as (colour, kind, region) triples."""

  shapes: tuple[tuple[str, str, str], ...]

  @property
  def keywords(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys([c for c, _, _ in self.shapes] + [s for _, s, _ in self.shapes])) + GENERIC_WORDS

  @property
  def subject(self) -> str:
    return "the picture" if len(self.shapes) > 1 else f"the {self.shapes[0][1]}"


def scene(seed: int | tuple) -> Scene:
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 4))
  colours = rng.permutation(COLOURS)[:n]
  kinds = rng.permutation(SHAPES)[:n]
  regions = rng.permutation(REGIONS)[:n]
  return Scene(tuple((str(c), str(s), str(r)) for c, s, r in zip(colours, kinds, regions)))


def render(s: Scene, tile_size: int) -> np.ndarray:
  """uint8 [t, t, 3]: each shape a third of the tile wide, centred in its region."""
  image = np.ones((tile_size, tile_size, 3), np.float32)
  side = max(4, tile_size // 3)
  far = tile_size - side - 1
  mid = (tile_size - side) // 2
  corners = {"left": (mid, 1), "right": (mid, far), "top": (1, mid), "bottom": (far, mid)}
  for colour, kind, region in s.shapes:
    top, left = corners[region]
    paint_shape(image, colour, kind, top, left, side)
  return np.round(image * 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class _Needs:
  """What the teacher reads from rule constraints."""

  paragraphs: tuple[int, int] = (1, 3)
  sentences: tuple[int, int] = (1, 8)
  per_paragraph: tuple[int, int] = (1, 4)
  words: tuple[int, int] = (1, 10_000)
  prefix: str = ""
  suffix: str = ""
  opener: str = ""
  exclaim: bool = False
  forbidden: tuple[str, ...] = ()
  forbidden_words: tuple[str, ...] = ()
  keyword_counts: tuple[tuple[str, int, int], ...] = ()
  percent_precision: int | None = None
  number_precision: int | None = None
  no_numerals: bool = False


def _read_needs(constraints: Sequence[Constraint]) -> _Needs:
  needs: dict = {}
  keyword_counts, forbidden, forbidden_words = [], [], []

  def narrow(name, lo, hi):
    old = needs.get(name, getattr(_Needs, name))
    needs[name] = (max(old[0], lo), min(old[1], hi))

  for c in constraints:
    for f in c.verify_funcs if c.method == RULE else ():
      name, p = f["func"], f["params"]
      if name == w.PARAGRAPHS:
        narrow("paragraphs", *p)
      elif name == w.SENTENCES:
        narrow("sentences", *p)
      elif name == w.SENTENCES_PER_PARAGRAPH:
        narrow("per_paragraph", *p)
      elif name == w.WORDS:
        narrow("words", *p)
      elif name == w.BEGINS:
        needs["prefix"] = p[0]
      elif name == w.ENDS:
        needs["suffix"] = p[0]
      elif name == w.PARAGRAPH_BEGINS:
        needs["opener"] = p[0]
      elif name == w.SENTENCE_ENDS:
        needs["exclaim"] = True
      elif name == w.NOT_CONTAIN:
        forbidden += list(p[0])
      elif name == w.KEYWORD_EACH:
        for k in p[0]:
          (forbidden_words.append(k) if p[2] == 0 else keyword_counts.append((k, p[1], min(p[2], 3))))
      elif name == w.PERCENT_PRECISION:
        needs["percent_precision"] = p[0]
      elif name == w.NUMBER_PRECISION:
        needs["number_precision"] = p[0]
      elif name == w.NO_NUMERALS:
        needs["no_numerals"] = True
  return _Needs(**needs, forbidden=tuple(forbidden), forbidden_words=tuple(forbidden_words),
                keyword_counts=tuple(keyword_counts))


def _word_count(sentence: str, word: str) -> int:
  return len(re.findall(rf"(?<!\w){re.escape(word.lower())}(?!\w)", sentence.lower()))


class Teacher:
  """Writes a response to a scene's task under rule constraints (module docstring)."""

  def __init__(self, *, ignore_prob: float = 0.25, attempts: int = 24):
    self.ignore_prob, self.attempts = float(ignore_prob), int(attempts)

  def __call__(self, s: Scene, task_type: str, constraints: Sequence[Constraint], rng: np.random.Generator) -> str:
    followed = list(constraints)
    if followed and rng.random() < self.ignore_prob:
      followed.pop(int(rng.integers(len(followed))))
    needs = _read_needs(followed)
    best, best_score = "", -1.0
    for _ in range(self.attempts):
      text = self._attempt(s, task_type, needs, rng)
      score = satisfaction(text, followed) if followed else 1.0
      if score is None or score == 1.0:
        return text
      if score > best_score:
        best, best_score = text, score
    return best

  def _sentence_pool(self, s: Scene, task_type: str, needs: _Needs, rng: np.random.Generator) -> list[str]:
    pool = [t.format(c=c, s=k, r=r) for c, k, r in s.shapes for t in _SHAPE_SENTENCES[task_type]]
    pool += list(_FILLERS)
    counted = {k.lower() for k, _, _ in needs.keyword_counts}
    keep = lambda x: (not any(f in x for f in needs.forbidden)
                      and not any(_word_count(x, f) for f in needs.forbidden_words)
                      and not any(_word_count(x, k) for k in counted))
    pool = [x for x in pool if keep(x)]
    rng.shuffle(pool)
    return pool

  def _keyword_sentences(self, s: Scene, task_type: str, needs: _Needs, rng: np.random.Generator) -> list[str]:
    """Exactly the required number of sentences naming each counted keyword once."""
    out = []
    for keyword, lo, hi in needs.keyword_counts:
      times = int(rng.integers(lo, hi + 1))
      k = keyword.lower()
      candidates = [t.format(c=c, s=kind, r=r) for c, kind, r in s.shapes for t in _SHAPE_SENTENCES[task_type]
                    if k in (c, kind)] + list(_GENERIC_SENTENCES.get(k, ()))
      candidates = [x for x in candidates if _word_count(x, k) == 1 and not any(f in x for f in needs.forbidden)
                    and all(_word_count(x, o.lower()) == 0 for o, _, _ in needs.keyword_counts if o.lower() != k)]
      if not candidates:
        candidates = [f"The word {keyword} fits this picture."]
      times = max(lo, min(times, len(candidates)))  # Distinct sentences where the bounds allow.
      order = rng.permutation(len(candidates))
      out += [candidates[order[j % len(candidates)]] for j in range(times)]
    return out

  def _number_sentence(self, s: Scene, needs: _Needs, rng: np.random.Generator) -> list[str]:
    n = len(s.shapes)
    noun = "shape" if n == 1 else "shapes"
    if needs.percent_precision is not None:
      share = 100.0 / n
      digits = needs.percent_precision if needs.number_precision is None else needs.number_precision
      return [f"Each shape takes {share:.{digits}f}% of the count."]
    if needs.number_precision is not None:
      return [f"I count {n:.{needs.number_precision}f} {noun}."]
    if needs.no_numerals:
      return [f"I count {NUMBER_WORDS[n]} {noun}."] if rng.random() < 0.5 else []
    return [f"I count {n} {noun}."] if rng.random() < 0.3 else []

  def _attempt(self, s: Scene, task_type: str, needs: _Needs, rng: np.random.Generator) -> str:
    p_lo, p_hi = needs.paragraphs
    paragraphs = int(rng.integers(max(p_lo, 1), max(p_lo, min(p_hi, 3)) + 1))
    required = self._keyword_sentences(s, task_type, needs, rng) + self._number_sentence(s, needs, rng)
    s_lo = max(needs.sentences[0], paragraphs * needs.per_paragraph[0], len(required), 1)
    s_hi = min(needs.sentences[1], paragraphs * needs.per_paragraph[1], 8)
    target_words = min(needs.words[1], max(needs.words[0], 30)) if needs.words != (1, 10_000) else 30
    guess = int(np.clip(round(target_words / 7), s_lo, max(s_lo, s_hi)))
    count = int(np.clip(guess + rng.integers(-1, 2), s_lo, max(s_lo, s_hi)))
    pool = self._sentence_pool(s, task_type, needs, rng)
    body = required + pool[:max(0, count - len(required))]
    rng.shuffle(body)
    if needs.exclaim:
      body = [x[:-1] + "!" if x.endswith(".") else x for x in body]
    sizes = self._split(len(body), paragraphs, needs.per_paragraph, rng)
    blocks, start = [], 0
    for size in sizes:
      block = " ".join(body[start:start + size])
      start += size
      blocks.append(f"{needs.opener} {block}" if needs.opener else block)
    if needs.prefix:
      first = blocks[0]
      if needs.prefix.endswith((",", ":")) and first[:1].isupper():
        first = first[:1].lower() + first[1:]
      blocks[0] = f"{needs.prefix} {first}"
    if needs.suffix:
      blocks[-1] = f"{blocks[-1]} {needs.suffix}"
    return "\n\n".join(blocks)

  @staticmethod
  def _split(n: int, parts: int, per: tuple[int, int], rng: np.random.Generator) -> list[int]:
    """n sentences into `parts` paragraphs, each within `per` where possible, none empty."""
    parts = max(1, min(parts, n))
    sizes = [1] * parts
    for _ in range(n - parts):
      open_ = [i for i in range(parts) if sizes[i] < per[1]] or list(range(parts))
      sizes[open_[int(rng.integers(len(open_)))]] += 1
    return sizes


def make_items(num_items: int, *, seed: int, min_constraints: int = 1, max_constraints: int = 4,
               writers: Sequence[str] = EXPERIMENT_WRITERS, teacher: Teacher | None = None,
               image_dir: str = "images") -> tuple[list[InstructItem], dict[str, Scene]]:
  """`num_items` answered items (one task per scene, image path `image_dir/<id>.png`) and their scenes by id.

  Item i uses scene (seed, i) and the random stream (seed, i, 1), so a set is the same on every
  process and the train and evaluation sets (different seeds) never share a draw.
  """
  teacher = teacher or Teacher()
  items, scenes = [], {}
  for i in range(num_items):
    sc = scene((seed, i))
    rng = np.random.default_rng((seed, i, 1))
    item_id = f"{seed}-{i:06d}"
    image = ImageRecord(f"{image_dir}/{item_id}.png", sc.subject, sc.keywords)
    task: Task = generate_tasks([image], rng)[0]
    n = int(rng.integers(min_constraints, max_constraints + 1))
    constraints = integrate_constraints(task, rng, num_constraints=n, writers=writers)
    response = teacher(sc, task.task_type, constraints, rng)
    items.append(InstructItem(item_id, image.path, task.task_type, task.instruction, constraints, response))
    scenes[item_id] = sc
  return items, scenes
