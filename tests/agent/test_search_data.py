"""The multi-hop visual search question set: determinism, well-formed gold turns, real retrieval, splits."""

import dataclasses

import numpy as np
import pytest

from jaxlab.agent.records import NO_OBSERVATION
from jaxlab.agent.search import search_step
from jaxlab.agent.search_data import (
    EMBLEMS,
    HARD_RELATIONS,
    SIMPLE_RELATIONS,
    SearchSettings,
    build_corpus,
    build_world,
    city_document,
    fact_document,
    make_search_trajectories,
)
from jaxlab.agent.tags import parse_step


@pytest.fixture(scope="module")
def world():
  return build_world(SearchSettings(image_size=56))


@pytest.fixture(scope="module")
def train(world):
  return make_search_trajectories(40, world=world, split="train", seed=3)


@pytest.fixture(scope="module")
def evaluation(world):
  return make_search_trajectories(24, world=world, split="eval", seed=3)


def _emblem_query(trajectory) -> str:
  return parse_step(trajectory.steps[0]).content


def test_same_seeds_same_data_other_seeds_other_data(world, train):
  again = make_search_trajectories(40, world=build_world(SearchSettings(image_size=56)), split="train", seed=3)
  for a, b in zip(train, again):
    assert (a.id, a.question, a.steps, a.answers, a.split) == (b.id, b.question, b.steps, b.answers, b.split)
    assert [o.text for o in a.observations] == [o.text for o in b.observations]
    np.testing.assert_array_equal(a.image, b.image)
  other = make_search_trajectories(40, world=world, split="train", seed=4)
  assert [t.steps for t in other] != [t.steps for t in train]
  # Item i depends on (seed, i) only, not on how many were asked for.
  assert make_search_trajectories(5, world=world, split="train", seed=3)[4].steps == train[4].steps
  assert build_corpus(7) == build_corpus(7) != build_corpus(8)
  assert build_corpus(0, SearchSettings(image_size=56)) == list(world.documents)


def test_gold_turns_parse_and_observations_are_the_real_search_replies(world, train, evaluation):
  for t in train + evaluation:
    assert t.task == "search" and t.image.shape == (56, 56, 3) and t.image.dtype == np.uint8
    steps = [parse_step(s) for s in t.steps]
    assert all(s.ok for s in steps), t.steps
    assert [s.action for s in steps] in (["search", "answer"], ["search", "search", "answer"])
    assert steps[-1].content == t.answers[0]
    assert all(len(s.think.split()) <= 12 for s in steps)
    for step, observation in zip(steps, t.observations):
      if step.action == "search":
        assert observation.text == search_step(world.index, step.content)[0]
      else:
        assert observation is NO_OBSERVATION


def test_each_observation_holds_what_the_next_turn_needs(world, train, evaluation):
  cities = {c.emblem.query: c for c in world.cities}
  for t in train + evaluation:
    city = cities[_emblem_query(t)]
    first, last = t.observations[0].text, [o.text for o in t.observations if o.text][-1]
    assert city_document(city) in first and city.city in first
    assert t.answers[0] in last
    assert t.answers[0] not in t.question
    if len(t.steps) == 3:
      assert any(fact_document(city, r) in last and getattr(city, r) == t.answers[0] for r in HARD_RELATIONS)


def test_hard_second_query_needs_a_name_from_the_first_result(world, evaluation):
  hard = [t for t in evaluation if t.split == "hard"]
  assert hard
  for t in hard:
    query = parse_step(t.steps[1]).content
    found = [w for w in query.split() if w in world.names and w not in t.question]
    assert found, query
    assert all(w in t.observations[0].text for w in found)
    assert not any(w in _emblem_query(t) for w in found)


def test_train_and_eval_use_disjoint_facts_and_emblems(world, train, evaluation):
  train_cities, eval_cities = world.cities_in("train"), world.cities_in("eval")
  assert len(train_cities) + len(eval_cities) == world.settings.num_entities and eval_cities

  def names(cities):
    skip = ("year", "split", "emblem")
    return {getattr(c, f.name) for c in cities for f in dataclasses.fields(c) if f.name not in skip}

  # Eval names are train names in new roles: every eval fact is unseen, every eval word was written in training.
  assert names(eval_cities) <= names(train_cities)
  facts = lambda cities: {(c.city, relation, value) for c in cities for relation, value in c.facts.items()}
  assert not facts(train_cities) & facts(eval_cities)
  assert not {c.city for c in train_cities} & {c.city for c in eval_cities}
  assert not {c.emblem for c in train_cities} & {c.emblem for c in eval_cities}
  assert {_emblem_query(t) for t in train} <= {c.emblem.query for c in train_cities}
  assert {_emblem_query(t) for t in evaluation} <= {c.emblem.query for c in eval_cities}
  # Eval emblems are new combinations of the visual words training shows.
  train_words = {w for c in train_cities for w in c.emblem.query.split()}
  assert {w for c in eval_cities for w in c.emblem.query.split()} <= train_words
  assert len(set(EMBLEMS)) >= 100


def test_simple_and_hard_splits(world, train, evaluation):
  assert [t.split for t in evaluation] == ["simple", "hard"] * 12
  assert all(len(t.steps) == (2 if t.split == "simple" else 3) for t in evaluation)
  assert {t.split for t in train} == {"train"} and {len(t.steps) for t in train} == {2, 3}
  hard_only = make_search_trajectories(6, world=world, split="hard", seed=0)
  assert {t.split for t in hard_only} == {"hard"} and {len(t.steps) for t in hard_only} == {3}
  questions = {t.question for t in make_search_trajectories(60, world=world, split="train", seed=1)}
  assert len(questions) == len(SIMPLE_RELATIONS + HARD_RELATIONS)


@pytest.mark.parametrize("size", [56, 448])
def test_image_sizes(size):
  world = build_world(SearchSettings(image_size=size, num_entities=4, num_distractors=0))
  for t in make_search_trajectories(2, world=world, split="eval", seed=0):
    assert t.image.shape == (size, size, 3)


@pytest.mark.parametrize("field, value", [
    ("image_size", 55), ("image_size", 449), ("image_size", 112.0), ("num_entities", 1),
    ("num_entities", len(EMBLEMS) + 1), ("num_distractors", -1), ("eval_fraction", 0.0), ("eval_fraction", 1.0),
    ("photo_probability", 1.5), ("photo_probability", float("nan")), ("seed", -1), ("seed", True),
])
def test_bad_settings_name_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    SearchSettings(**{field: value})


def test_bad_arguments_raise(world):
  with pytest.raises(ValueError, match="split"):
    make_search_trajectories(1, world=world, split="test")
  with pytest.raises(ValueError, match="n must"):
    make_search_trajectories(-1, world=world)


def test_seen_emblems_put_new_facts_in_a_corpus_of_their_own():
  world = build_world(SearchSettings(image_size=56, num_entities=24, eval_emblems="seen"))
  train_cities, eval_cities = world.cities_in("train"), world.cities_in("eval")
  assert {c.emblem for c in eval_cities} <= {c.emblem for c in train_cities}
  assert len({c.emblem for c in eval_cities}) == len(eval_cities)
  assert all(city_document(c) in world.eval_documents and city_document(c) not in world.documents
             for c in eval_cities)
  assert not any(city_document(c) in world.eval_documents for c in train_cities)
  for t in make_search_trajectories(6, world=world, split="eval", seed=2):
    for step, observation in zip(t.steps, t.observations):
      parsed = parse_step(step)
      if parsed.action == "search":
        assert observation.text == search_step(world.eval_index, parsed.content)[0]
  with pytest.raises(ValueError, match="eval_emblems"):
    SearchSettings(eval_emblems="old")
