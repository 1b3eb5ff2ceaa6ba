"""A MAT-Search-like multi-hop visual question set over a local text corpus (Visual-ARFT agentic search).

The world (`build_world`, deterministic per `SearchSettings.seed`) holds fictional cities. Each has an
emblem, a river, a founder, a founding year and a country; each river rises in hills and flows into a
lake, each founder was born in a village, each country has a capital. Every name is one made-up word
built from syllables. An emblem is a red, green or blue square, circle or triangle on a plain, striped
or checkered white, yellow, black or purple field: 108 combinations (`EMBLEMS`).

The corpus (`build_corpus`) is one or two template sentences per document, plus distractors:

  The emblem of Torvi is a red circle on a striped yellow field. Torvi lies on the river Kelda, was
  founded by Brasu in 1432 and belongs to Demora.
  The river Kelda rises in the Sarno hills.      The river Kelda flows into lake Meitu.
  Brasu was born in the village of Gatro.        The capital of Demora is Pilau.

A question shows the emblem (on a photograph crop or a plain background) and asks about the city it
belongs to, never naming it:

- simple (one search, then answer): the answer is in the emblem's document: the city's river,
  founder, founding year or country. Gold query: the emblem in fixed words
  ("emblem red circle striped yellow field").
- hard (two searches, then answer): the answer is one hop further: where the river rises, which lake
  it flows into, the founder's village, the country's capital. The second gold query is a name read
  in the first result plus a relation word ("Kelda rises"), so it cannot be written from the question.

Gold observations are the real replies of `search_step(world.index, query)`; an item whose gold query
does not bring the needed document into the top `TOP_K` is redrawn. Train and eval questions use
disjoint cities, hence disjoint emblems and facts: eval emblems are unseen combinations of the same
visual words, so a model must read the image and copy names from the `<information>` it is given
rather than recall them. With `SearchSettings.eval_emblems="seen"` the eval cities wear the train
cities' emblems instead and are described by a corpus of their own (`SearchWorld.eval_documents`):
the picture is familiar, the facts behind it are not, and answering from memory gives the train
world's fact. The eval entities' names are the train entities' names dealt out again to
other roles (a train river's name may name an eval founder): every eval fact is new, but every word
a model must write has been written in training, which a word-level vocabulary needs (a word never
seen as a target cannot be generated).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from jaxlab.agent.records import NO_OBSERVATION, Observation, Trajectory
from jaxlab.agent.search import TOP_K, BM25Index, search_step, tokenize
from jaxlab.data.images.photos import PHOTO_NAMES, area_resize, load_photos
from jaxlab.vlm.shapes_task import COLOURS, SHAPES, paint_shape

PATTERNS: tuple[str, ...] = ("plain", "striped", "checkered")
FIELD_COLOURS: tuple[str, ...] = ("white", "yellow", "black", "purple")
SIMPLE_RELATIONS: tuple[str, ...] = ("river", "founder", "year", "country")
HARD_RELATIONS: tuple[str, ...] = ("source", "lake", "village", "capital")
ITEM_SPLITS: tuple[str, ...] = ("train", "eval", "simple", "hard")
EVAL_EMBLEMS: tuple[str, ...] = ("new", "seen")

_FIELD_RGB = {"white": (1.0, 1.0, 1.0), "yellow": (1.0, 0.85, 0.1), "black": (0.08, 0.08, 0.08),
              "purple": (0.55, 0.2, 0.65)}
# The second colour of stripes and checks: the field colour pulled 40% towards black (light fields) or white.
_PATTERN_RGB = {name: tuple(0.6 * c + 0.4 * (0.0 if name in ("white", "yellow") else 1.0) for c in rgb)
                for name, rgb in _FIELD_RGB.items()}
_CITIES_PER_COUNTRY = 6
_YEARS = (1100, 1900)
_MAX_DRAWS = 64

_QUESTIONS = {
    "river": "Which river does the city with this emblem lie on?",
    "founder": "Who founded the city with this emblem?",
    "year": "In which year was the city with this emblem founded?",
    "country": "Which country does the city with this emblem belong to?",
    "source": "Where does the river of the city with this emblem rise?",
    "lake": "Into which lake does the river of the city with this emblem flow?",
    "village": "In which village was the founder of the city with this emblem born?",
    "capital": "What is the capital of the country the city with this emblem belongs to?",
}
# Hard relation -> the simple relation whose value the second query names.
_BRIDGE = {"source": "river", "lake": "river", "village": "founder", "capital": "country"}
_EMBLEM_THINK = "The image shows {emblem}."
_CITY_THINK = {
    "river": "{city} has this emblem and lies on the river {river}.",
    "founder": "{city} has this emblem and was founded by {founder}.",
    "year": "{city} has this emblem and was founded in {year}.",
    "country": "{city} has this emblem and belongs to {country}.",
}
_SECOND_QUERY = {"source": "{river} rises", "lake": "{river} flows", "village": "{founder} born",
                 "capital": "{country} capital"}
# One sentence each: the hard relation's document, also the think of the answering turn.
_FACTS = {
    "source": "The river {river} rises in the {source} hills.",
    "lake": "The river {river} flows into lake {lake}.",
    "village": "{founder} was born in the village of {village}.",
    "capital": "The capital of {country} is {capital}.",
}
_CITY_DOCUMENT = ("The emblem of {city} is {emblem}. {city} lies on the river {river}, was founded by {founder} "
                  "in {year} and belongs to {country}.")
_ALIASES = {"river": ("the river {river}", "river {river}"), "source": ("the {source} hills", "{source} hills"),
            "lake": ("lake {lake}",), "village": ("the village of {village}",)}
_DISTRACTORS = (
    "Fishermen on the river {river} catch {fish} in {season}.",
    "{founder} worked as a {trade} and sold {goods} in {city}.",
    "Traders from {country} bring {goods} to {city} every {season}.",
    "A {colour} {shape} is painted on the old gate of {city}.",
    "Snow covers the {source} hills every {season}.",
    "Boats carry {goods} across lake {lake} in {season}.",
)
_FILLERS = {
    "fish": ("trout", "eel", "pike", "carp", "perch"),
    "season": ("spring", "summer", "autumn", "winter"),
    "trade": ("weaver", "potter", "smith", "miller", "tanner", "baker"),
    "goods": ("salt", "wool", "amber", "timber", "honey", "copper"),
    "colour": COLOURS,
    "shape": SHAPES,
}

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "ei", "au")
_CODAS = ("", "", "", "n", "r", "l", "s", "k")


@dataclasses.dataclass(frozen=True)
class Emblem:
  """A shape of `colour` on a `pattern` field of `field` colour."""

  colour: str
  shape: str
  pattern: str
  field: str

  @property
  def description(self) -> str:
    """The emblem in the corpus's words: "a red circle on a striped yellow field"."""
    return f"a {self.colour} {self.shape} on a {self.pattern} {self.field} field"

  @property
  def query(self) -> str:
    """The gold first search: "emblem red circle striped yellow field"."""
    return f"emblem {self.colour} {self.shape} {self.pattern} {self.field} field"


EMBLEMS: tuple[Emblem, ...] = tuple(Emblem(c, s, p, f) for c in COLOURS for s in SHAPES for p in PATTERNS
                                    for f in FIELD_COLOURS)


@dataclasses.dataclass(frozen=True)
class City:
  """One city and everything the corpus says about it (names are single words); `split` is "train" or "eval"."""

  city: str
  emblem: Emblem
  river: str
  source: str
  lake: str
  founder: str
  village: str
  year: int
  country: str
  capital: str
  split: str

  @property
  def facts(self) -> dict[str, str]:
    """Template fields: every attribute as text, the emblem as its description."""
    out = {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}
    out["emblem"] = self.emblem.description
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSettings:
  """How the world and its images are made.

  Fields:
    image_size: side of the square question images in pixels, in [56, 448].
    num_entities: cities in the world, in [2, len(EMBLEMS)] (each has its own emblem).
    num_distractors: distractor documents added to the corpus, >= 0.
    eval_fraction: share of the cities kept for eval questions, in (0, 1); each split gets at least one.
    photo_probability: chance that an emblem is painted on a photograph crop rather than a plain colour.
    eval_emblems: "new": eval cities have emblems no train city has, in one corpus with the train
      cities (a model must describe unseen combinations of the visual words); "seen": eval cities
      take the train cities' emblems and live in a corpus of their own (`SearchWorld.eval_documents`),
      so the emblems are familiar but every fact behind them is new and must be searched.
    seed: the world's seed, >= 0 (questions take their own seed).
  """

  image_size: int = 112
  num_entities: int = 96
  num_distractors: int = 150
  eval_fraction: float = 0.25
  photo_probability: float = 0.75
  eval_emblems: str = "new"
  seed: int = 0

  def __post_init__(self):
    if self.eval_emblems not in EVAL_EMBLEMS:
      raise ValueError(f"SearchSettings.eval_emblems must be one of {EVAL_EMBLEMS}, got {self.eval_emblems!r}")
    for name, low, high in (("image_size", 56, 448), ("num_entities", 2, len(EMBLEMS)),
                            ("num_distractors", 0, None), ("seed", 0, None)):
      value = getattr(self, name)
      if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"SearchSettings.{name} must be an int {bound}, got {value!r}")
    for name, closed in (("eval_fraction", False), ("photo_probability", True)):
      value = getattr(self, name)
      ok = _is_number(value) and ((0 <= value <= 1) if closed else (0 < value < 1))
      if not ok:
        raise ValueError(f"SearchSettings.{name} must be a number in {'[0, 1]' if closed else '(0, 1)'}, "
                         f"got {value!r}")

  @property
  def num_eval(self) -> int:
    """Cities kept for eval questions (at least one, and at least one left for training)."""
    return min(self.num_entities - 1, max(1, round(self.num_entities * self.eval_fraction)))


@dataclasses.dataclass(frozen=True, eq=False)
class SearchWorld:
  """The cities, the corpus (`documents`) and its BM25 index; eval questions search `eval_documents`
  (`eval_index`), the same corpus unless `settings.eval_emblems` is "seen"."""

  settings: SearchSettings
  cities: tuple[City, ...]
  documents: tuple[str, ...]
  index: BM25Index = dataclasses.field(repr=False)
  eval_documents: tuple[str, ...] = ()
  eval_index: BM25Index | None = dataclasses.field(default=None, repr=False)

  def index_for(self, split: str) -> BM25Index:
    """The index a question of `split` ("train" or an eval split) searches."""
    return self.index if split == "train" or self.eval_index is None else self.eval_index

  def documents_for(self, split: str) -> tuple[str, ...]:
    return self.documents if split == "train" or self.eval_index is None else self.eval_documents

  def cities_in(self, split: str) -> tuple[City, ...]:
    """The cities of "train" or "eval"."""
    return tuple(c for c in self.cities if c.split == split)

  @property
  def names(self) -> frozenset[str]:
    """Every made-up name in the world."""
    keys = ("city", "river", "source", "lake", "founder", "village", "country", "capital")
    return frozenset(getattr(c, k) for c in self.cities for k in keys)


def city_document(city: City) -> str:
  """The document holding the city's emblem and every simple fact."""
  return _CITY_DOCUMENT.format(**city.facts)


def fact_document(city: City, relation: str) -> str:
  """The document holding the hard `relation`'s fact ("The river Kelda rises in the Sarno hills.")."""
  return _FACTS[relation].format(**city.facts)


def build_world(settings: SearchSettings | None = None) -> SearchWorld:
  """The world of `settings` (default `SearchSettings()`); the same settings give the same world."""
  settings = settings or SearchSettings()
  rng = np.random.default_rng((settings.seed, 0, 0))  # Three ints: never an item's (seed, i) stream.
  names = _NameMaker(rng)
  emblems = [EMBLEMS[i] for i in rng.permutation(len(EMBLEMS))[:settings.num_entities]]
  num_train = settings.num_entities - settings.num_eval
  if settings.eval_emblems == "seen":  # Eval cities wear train emblems (each once), in their own corpus.
    emblems = emblems[:num_train] + [emblems[i] for i in rng.permutation(num_train)[:settings.num_eval]]
  cities = []
  train_roles: dict[str, str] = {}  # name -> its role in training
  for split, split_emblems in (("train", emblems[:num_train]), ("eval", emblems[num_train:])):
    if split == "eval":  # Eval entities take the train entities' names in other roles (see the module doc).
      new_name = _Redealer([list(train_roles)[i] for i in rng.permutation(len(train_roles))], train_roles)
    else:
      def new_name(role: str) -> str:
        name = names.new()
        train_roles[name] = role
        return name
    num_countries = max(1, round(len(split_emblems) / _CITIES_PER_COUNTRY))
    countries = [(new_name("country"), new_name("capital")) for _ in range(num_countries)]
    for emblem in split_emblems:
      country, capital = countries[int(rng.integers(num_countries))]
      cities.append(City(city=new_name("city"), emblem=emblem, river=new_name("river"), source=new_name("source"),
                         lake=new_name("lake"), founder=new_name("founder"), village=new_name("village"),
                         year=int(rng.integers(*_YEARS)), country=country, capital=capital, split=split))
  if settings.eval_emblems == "new":
    documents = _corpus(rng, cities, settings.num_distractors)
    return SearchWorld(settings, tuple(cities), documents, BM25Index(documents), documents)
  groups = [[c for c in cities if c.split == split] for split in ("train", "eval")]
  documents, eval_documents = (_corpus(rng, group, settings.num_distractors) for group in groups)
  return SearchWorld(settings, tuple(cities), documents, BM25Index(documents), eval_documents,
                     BM25Index(eval_documents))


def _corpus(rng: np.random.Generator, cities: list[City], num_distractors: int) -> tuple[str, ...]:
  documents = [city_document(c) for c in cities]
  documents += [fact_document(c, r) for c in cities for r in ("source", "lake", "village")]
  documents += sorted({fact_document(c, "capital") for c in cities})
  documents += [_distractor(rng, cities) for _ in range(num_distractors)]
  return tuple(documents[i] for i in rng.permutation(len(documents)))  # Order says nothing about the facts.


def build_corpus(seed: int = 0, settings: SearchSettings | None = None) -> list[str]:
  """The documents of the world of `settings` (default `SearchSettings()`) with its seed set to `seed`."""
  return list(build_world(dataclasses.replace(settings or SearchSettings(), seed=seed)).documents)


def make_search_trajectories(n: int, *, world: SearchWorld, split: str = "train", seed: int = 0) -> list[Trajectory]:
  """`n` gold search trajectories; item i depends only on (world, split, seed, i).

  Args:
    n: number of items, >= 0.
    world: from `build_world`.
    split: "train": questions on the train cities, each simple or hard by a fair coin, labelled
      "train". "eval": questions on the eval cities, simple at even i and hard at odd i (half each,
      as MAT-Search's 75/75), labelled so. "simple" or "hard": eval questions of that kind only.
    seed: the questions' seed, >= 0.
  """
  if not _is_int(n) or n < 0:
    raise ValueError(f"n must be an int >= 0, got {n!r}")
  return [search_trajectory(world, split=split, seed=seed, index=i) for i in range(n)]


def search_trajectory(world: SearchWorld, *, split: str, seed: int, index: int) -> Trajectory:
  """Item `index` of `make_search_trajectories(…, split=split, seed=seed)`."""
  if split not in ITEM_SPLITS:
    raise ValueError(f"split must be one of {ITEM_SPLITS}, got {split!r}")
  if not _is_int(seed) or seed < 0 or not _is_int(index) or index < 0:
    raise ValueError(f"seed and index must be ints >= 0, got {seed!r} and {index!r}")
  rng = np.random.default_rng((seed, index))
  if split == "train":
    hard, label = bool(rng.random() < 0.5), "train"
  else:
    hard = index % 2 == 1 if split == "eval" else split == "hard"
    label = "hard" if hard else "simple"
  cities = world.cities_in("train" if split == "train" else "eval")
  relations = HARD_RELATIONS if hard else SIMPLE_RELATIONS
  for _ in range(_MAX_DRAWS):
    city = cities[int(rng.integers(len(cities)))]
    relation = relations[int(rng.integers(len(relations)))]
    gold = _gold_turns(world.index_for(split), city, relation)
    if gold is not None:
      break
  else:
    raise RuntimeError(f"no {label} question of split {split!r} whose gold searches retrieve their documents "
                       f"in {_MAX_DRAWS} draws (seed {seed}, index {index})")
  steps, observations, answers = gold
  image = emblem_image(city.emblem, world.settings.image_size, rng, world.settings.photo_probability)
  return Trajectory(id=f"search-{split}-{seed}-{index}", task="search", question=_QUESTIONS[relation], image=image,
                    steps=steps, observations=observations, answers=answers, split=label)


def _gold_turns(index: BM25Index, city: City, relation: str):
  """(steps, observations, answers) of the gold solution, or None when a gold search misses its document."""
  facts = city.facts
  searches = [(_EMBLEM_THINK.format(**facts), city.emblem.query, city_document(city))]
  if relation in _BRIDGE:
    searches.append((_CITY_THINK[_BRIDGE[relation]].format(**facts), _SECOND_QUERY[relation].format(**facts),
                     fact_document(city, relation)))
    final_think = _FACTS[relation].format(**facts)
  else:
    final_think = _CITY_THINK[relation].format(**facts)
  steps, observations = [], []
  for think, query, needed in searches:
    if needed not in index.search(query, TOP_K):
      return None
    information, error = search_step(index, query, TOP_K)
    if error:
      return None
    steps.append(f"<think>{think}</think><search>{query}</search>")
    observations.append(Observation(text=information))
  answer = facts[relation]
  steps.append(f"<think>{final_think}</think><answer>{answer}</answer>")
  observations.append(NO_OBSERVATION)
  answers = (answer,) + tuple(alias.format(**facts) for alias in _ALIASES.get(relation, ()))
  return tuple(steps), tuple(observations), answers


def emblem_image(emblem: Emblem, image_size: int, rng: np.random.Generator, photo_probability: float = 0.75
                 ) -> np.ndarray:
  """uint8 [image_size, image_size, 3]: the emblem, framed, at a random place and size on a background.

  The background is a random square crop of a scikit-image photograph (with `photo_probability`) or a
  plain random colour. The field's side is 55-85% of the image, the shape's 55% of the field.
  """
  if rng.random() < photo_probability:
    image_hw3 = _photo_crop(rng, image_size)
  else:
    image_hw3 = np.broadcast_to(rng.uniform(0.2, 0.9, 3), (image_size, image_size, 3)).copy()
  field = int(rng.uniform(0.55, 0.85) * image_size)
  frame = max(1, image_size // 56)
  box = field + 2 * frame
  top, left = int(rng.integers(image_size - box + 1)), int(rng.integers(image_size - box + 1))
  image_hw3[top:top + box, left:left + box] = 1.0 if emblem.field in ("black", "purple") else 0.0
  paint_emblem(image_hw3[top + frame:top + frame + field, left + frame:left + frame + field], emblem)
  return np.clip(np.round(image_hw3 * 255.0), 0, 255).astype(np.uint8)


def paint_emblem(field_hw3: np.ndarray, emblem: Emblem) -> None:
  """Paints `emblem` over a square float [0, 1] RGB view, in place: the patterned field, the shape centred."""
  side = field_hw3.shape[0]
  field_hw3[:] = _FIELD_RGB[emblem.field]
  band = max(2, side // 8)
  yy, xx = np.mgrid[0:side, 0:side] // band
  if emblem.pattern == "striped":
    field_hw3[xx % 2 == 1] = _PATTERN_RGB[emblem.field]
  elif emblem.pattern == "checkered":
    field_hw3[(xx + yy) % 2 == 1] = _PATTERN_RGB[emblem.field]
  shape_side = max(4, round(0.55 * side))
  offset = (side - shape_side) // 2
  paint_shape(field_hw3, emblem.colour, emblem.shape, offset, offset, shape_side)


def _photo_crop(rng: np.random.Generator, size: int) -> np.ndarray:
  """float64 [size, size, 3] in [0, 1]: a random square crop (30-100% of the shorter side) of a photograph."""
  name = PHOTO_NAMES[int(rng.integers(len(PHOTO_NAMES)))]
  photo_hw3 = load_photos([name])[0]
  height, width, _ = photo_hw3.shape
  side = max(1, int(rng.uniform(0.3, 1.0) * min(height, width)))
  top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
  # Keep every step-th pixel first so the box-filter resize sums at most ~2 * size pixels a side.
  step = max(1, side // (2 * size))
  crop_hw3 = photo_hw3[top:top + side, left:left + side][:step * (side // step):step, :step * (side // step):step]
  return area_resize(crop_hw3, size)


def _distractor(rng: np.random.Generator, cities: list[City]) -> str:
  """A template sentence about a random city's names that answers none of the questions."""
  template = _DISTRACTORS[int(rng.integers(len(_DISTRACTORS)))]
  fields = dict(cities[int(rng.integers(len(cities)))].facts)
  fields.update({k: v[int(rng.integers(len(v)))] for k, v in _FILLERS.items()})
  return template.format(**fields)


@functools.lru_cache(maxsize=1)
def _template_words() -> frozenset[str]:
  """Every word the templates use: no made-up name may be one of them."""
  texts = [*_QUESTIONS.values(), *_CITY_THINK.values(), *_SECOND_QUERY.values(), *_FACTS.values(), _EMBLEM_THINK,
           _CITY_DOCUMENT, *_DISTRACTORS, *(a for v in _ALIASES.values() for a in v), "emblem field",
           *PATTERNS, *FIELD_COLOURS, *(w for v in _FILLERS.values() for w in v)]
  return frozenset(tokenize(" ".join(texts)))


class _NameMaker:
  """Unique pronounceable names: two or three onset-vowel syllables, an optional final consonant, <= 8 letters."""

  def __init__(self, rng: np.random.Generator):
    self._rng = rng
    self._taken = set(_template_words())

  def _pick(self, options: tuple[str, ...]) -> str:
    return options[int(self._rng.integers(len(options)))]

  def new(self) -> str:
    while True:
      syllables = 2 if self._rng.random() < 0.7 else 3
      word = "".join(self._pick(_ONSETS) + self._pick(_VOWELS) for _ in range(syllables)) + self._pick(_CODAS)
      if len(word) <= 8 and word not in self._taken:
        self._taken.add(word)
        return word.capitalize()


class _Redealer:
  """Deals `names` out again, each once, never in the role `roles` gave it before."""

  def __init__(self, names: list[str], roles: dict[str, str]):
    self._names, self._roles = list(names), roles

  def __call__(self, role: str) -> str:
    for i, name in enumerate(self._names):
      if self._roles[name] != role:
        return self._names.pop(i)
    raise ValueError(f"too few train names to name the eval entities' {role}s; raise num_entities or eval_fraction")


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(
      value)
