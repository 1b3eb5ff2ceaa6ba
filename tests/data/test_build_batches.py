"""build_batches: shapes, epoch coverage and reshuffling, per-process slices, lazy map, resume."""

import json

import numpy as np
import pytest

from jaxlab.data import build_batches

_NUM_ELEMENTS = 64
_FEATURE_DIM = 3


def _source(num_elements: int = _NUM_ELEMENTS) -> list[dict[str, np.ndarray]]:
  # `x` encodes the id so the tests can check that features travel with their element.
  return [
      {"id": np.int64(i), "x": np.full((_FEATURE_DIM,), i, np.float32)}
      for i in range(num_elements)
  ]


def _take(dataset, num_batches: int) -> list[dict[str, np.ndarray]]:
  iterator = iter(dataset)
  batches = [next(iterator) for _ in range(num_batches)]
  iterator.close()
  return batches


def test_batches_have_local_shapes_and_consistent_fields():
  batches = _take(
      build_batches(_source(), global_batch_size=16, seed=3, process_index=1, process_count=2),
      num_batches=3,
  )
  for batch in batches:
    assert batch["id"].shape == (8,)
    assert batch["x"].shape == (8, _FEATURE_DIM)
    assert batch["x"].dtype == np.float32
    np.testing.assert_array_equal(batch["x"], np.repeat(batch["id"][:, None], _FEATURE_DIM, 1))


def test_unshuffled_stream_is_source_order():
  batches = list(build_batches(
      _source(), global_batch_size=8, seed=0, shuffle=False, num_epochs=1,
      process_index=0, process_count=1,
  ))
  np.testing.assert_array_equal(np.concatenate([b["id"] for b in batches]), np.arange(64))


def test_each_epoch_sees_every_element_once_and_is_reshuffled():
  batch_size = 8
  batches_per_epoch = _NUM_ELEMENTS // batch_size
  batches = list(build_batches(
      _source(), global_batch_size=batch_size, seed=7, num_epochs=3,
      process_index=0, process_count=1,
  ))
  assert len(batches) == 3 * batches_per_epoch
  ids = np.concatenate([b["id"] for b in batches]).reshape(3, _NUM_ELEMENTS)
  for epoch_ids in ids:
    np.testing.assert_array_equal(np.sort(epoch_ids), np.arange(_NUM_ELEMENTS))
  assert not np.array_equal(ids[0], np.arange(_NUM_ELEMENTS)), "first epoch not shuffled"
  assert not np.array_equal(ids[0], ids[1]), "epoch 1 repeats epoch 0's order"
  assert not np.array_equal(ids[1], ids[2]), "epoch 2 repeats epoch 1's order"


def test_seed_controls_order():
  def first_ids(seed):
    return _take(build_batches(_source(), global_batch_size=16, seed=seed,
                               process_index=0, process_count=1), 1)[0]["id"]

  np.testing.assert_array_equal(first_ids(5), first_ids(5))
  assert not np.array_equal(first_ids(5), first_ids(6))


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_slices_concatenate_to_single_process_batches(process_count):
  # 3 epochs of 64 with B=16 crosses epoch boundaries and an infinite stream is the default.
  global_batch_size, num_batches = 16, 13
  single = _take(build_batches(_source(), global_batch_size=global_batch_size, seed=11,
                               process_index=0, process_count=1), num_batches)
  per_process = [
      _take(build_batches(_source(), global_batch_size=global_batch_size, seed=11,
                          process_index=p, process_count=process_count), num_batches)
      for p in range(process_count)
  ]
  for k in range(num_batches):
    for key in ("id", "x"):
      joined = np.concatenate([per_process[p][k][key] for p in range(process_count)])
      np.testing.assert_array_equal(joined, single[k][key])


def test_partial_last_global_batch_is_dropped_on_every_process():
  # 20 elements, B=8: two whole global batches. With b=4 there are five local chunks; the
  # fifth belongs to the partial global batch and process 0 must not yield it.
  for process_index in (0, 1):
    batches = list(build_batches(
        _source(20), global_batch_size=8, seed=0, num_epochs=1,
        process_index=process_index, process_count=2,
    ))
    assert len(batches) == 2
  single = list(build_batches(_source(20), global_batch_size=8, seed=0, num_epochs=1,
                              process_index=0, process_count=1))
  assert len(single) == 2


def test_map_fn_runs_only_on_this_process_elements():
  mapped_ids = []

  def record_and_scale(element):
    mapped_ids.append(int(element["id"]))
    return {"id": element["id"], "x": element["x"] * 2}

  num_batches = 3
  batches = _take(
      build_batches(_source(), global_batch_size=16, seed=2, map_fn=record_and_scale,
                    process_index=1, process_count=2),
      num_batches,
  )
  yielded_ids = np.concatenate([b["id"] for b in batches])
  assert len(mapped_ids) == num_batches * 8
  assert sorted(mapped_ids) == sorted(yielded_ids.tolist())
  np.testing.assert_array_equal(batches[0]["x"][:, 0], 2.0 * batches[0]["id"])
  other = _take(build_batches(_source(), global_batch_size=16, seed=2,
                              process_index=0, process_count=2), num_batches)
  other_ids = np.concatenate([b["id"] for b in other])
  assert not set(mapped_ids) & set(other_ids.tolist())


@pytest.mark.parametrize("prefetch_threads", [0, 2])
def test_state_json_round_trip_resumes_identical_stream(prefetch_threads):
  def build():
    return build_batches(_source(), global_batch_size=16, seed=4, map_fn=lambda e: e,
                         process_index=1, process_count=2, prefetch_threads=prefetch_threads)

  reference = _take(build(), 12)
  iterator = iter(build())
  for _ in range(5):
    next(iterator)
  saved = json.loads(json.dumps(iterator.get_state()))
  iterator.close()

  resumed = iter(build())
  resumed.set_state(saved)
  rest = [next(resumed) for _ in range(7)]
  resumed.close()
  for got, want in zip(rest, reference[5:]):
    np.testing.assert_array_equal(got["id"], want["id"])
    np.testing.assert_array_equal(got["x"], want["x"])


def test_prefetch_threads_do_not_change_the_stream():
  def ids(threads):
    batches = _take(build_batches(_source(), global_batch_size=8, seed=9, prefetch_threads=threads,
                                  process_index=0, process_count=1), 10)
    return np.concatenate([b["id"] for b in batches])

  np.testing.assert_array_equal(ids(3), ids(0))


def test_accepts_a_grain_map_dataset():
  import grain

  source = grain.MapDataset.source(_source())
  batches = list(build_batches(source, global_batch_size=8, seed=0, shuffle=False, num_epochs=1,
                               process_index=0, process_count=1))
  np.testing.assert_array_equal(np.concatenate([b["id"] for b in batches]), np.arange(64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(global_batch_size=6, process_count=4, process_index=0), "not divisible by process_count"),
        (dict(global_batch_size=8, process_count=2, process_index=2), "process_index"),
        (dict(global_batch_size=8, num_epochs=0), "num_epochs"),
        (dict(global_batch_size=8, seed=-1), "seed"),
        (dict(global_batch_size=128, num_epochs=1), "fewer than one global batch"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
  kwargs = {"seed": 0, "process_index": 0, "process_count": 1, **kwargs}
  with pytest.raises(ValueError, match=message):
    build_batches(_source(), **kwargs)
