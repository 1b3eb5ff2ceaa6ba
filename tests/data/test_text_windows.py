"""TokenWindows: window contents, coverage, deterministic random starts, and use with build_batches."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.data import build_batches
from jaxlab.data.sorting import SortingSource
from jaxlab.data.text import TokenWindows


def _stream(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 5000, size=n).astype(np.uint16)


def test_records_match_the_sorting_source_format():
  reference = SortingSource(num_examples=2, length=4, num_symbols=5)[0]
  record = TokenWindows(_stream(50), seq_len=9)[0]
  assert record.keys() == reference.keys()
  for key in record:
    assert record[key].dtype == reference[key].dtype
    assert record[key].shape == (9,)


def test_strided_windows_read_the_stream_shifted_by_one():
  tokens = _stream(103)
  windows = TokenWindows(tokens, seq_len=8, stride=5, offset=2)
  expected_starts = [s for s in range(2, 103, 5) if s + 9 <= 103]  # every window that fits
  assert len(windows) == len(expected_starts)
  for i, start in enumerate(expected_starts):
    record = windows[i]
    np.testing.assert_array_equal(record["inputs"], tokens[start : start + 8].astype(np.int64))
    np.testing.assert_array_equal(record["targets"], tokens[start + 1 : start + 9].astype(np.int64))
    np.testing.assert_array_equal(record["loss_mask"], np.ones(8))


def test_default_stride_targets_every_token_once():
  tokens = np.arange(1, 42, dtype=np.int32)  # distinct ids, so positions can be recovered
  windows = TokenWindows(tokens, seq_len=8)
  targets = np.concatenate([windows[i]["targets"] for i in range(len(windows))])
  assert len(windows) == (41 - 1) // 8
  np.testing.assert_array_equal(targets, tokens[1 : 1 + 8 * len(windows)])


def test_random_starts_are_deterministic_and_in_bounds():
  tokens = _stream(500)
  a = TokenWindows(tokens, seq_len=16, seed=3)
  b = TokenWindows(tokens, seq_len=16, seed=3)
  c = TokenWindows(tokens, seq_len=16, seed=4)
  assert len(a) == (500 - 1) // 16
  np.testing.assert_array_equal(a.starts, b.starts)
  assert not np.array_equal(a.starts, c.starts)
  many = TokenWindows(tokens, seq_len=16, seed=0, num_windows=5000)
  assert many.starts.min() == 0 and many.starts.max() == 500 - 17  # both ends reachable
  for i in (0, 7, len(a) - 1):
    start = a.starts[i]
    np.testing.assert_array_equal(a[i]["targets"], tokens[start + 1 : start + 17])


def test_feeds_build_batches():
  tokens = _stream(1000)
  windows = TokenWindows(tokens, seq_len=12)
  batches = list(build_batches(
      windows, global_batch_size=8, seed=1, num_epochs=1, process_index=0, process_count=1,
  ))
  assert len(batches) == len(windows) // 8
  for batch in batches:
    assert batch["inputs"].shape == batch["targets"].shape == batch["loss_mask"].shape == (8, 12)
    assert batch["inputs"].dtype == np.int32
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
  # Shuffled, yet each window appears at most once per epoch.
  firsts = [tuple(row) for b in batches for row in b["inputs"][:, :3]]
  assert len(set(firsts)) == len(firsts)


def test_bad_arguments():
  tokens = _stream(20)
  with pytest.raises(TypeError, match="1-D integer"):
    TokenWindows(tokens.astype(np.float32), seq_len=4)
  with pytest.raises(ValueError, match="seq_len"):
    TokenWindows(tokens, seq_len=0)
  with pytest.raises(ValueError, match="fewer than one window"):
    TokenWindows(tokens, seq_len=20)
  with pytest.raises(ValueError, match="stride"):
    TokenWindows(tokens, seq_len=4, stride=0)
  with pytest.raises(ValueError, match="offset"):
    TokenWindows(tokens, seq_len=4, offset=16)
  with pytest.raises(ValueError, match="leave them unset"):
    TokenWindows(tokens, seq_len=4, seed=0, stride=2)
  with pytest.raises(ValueError, match=r"\[0, 2\*\*31\)"):
    TokenWindows(np.array([0, 2**31, 1], np.int64), seq_len=1)
  with pytest.raises(IndexError):
    TokenWindows(tokens, seq_len=4)[5]
