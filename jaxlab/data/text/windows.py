"""Fixed-length language-model windows over one token stream, as a random-access grain source.

Window i covers `tokens[s_i : s_i + seq_len + 1]`; its record is

  {"inputs": tokens[s_i : s_i + seq_len], "targets": tokens[s_i + 1 : s_i + seq_len + 1],
   "loss_mask": ones(seq_len)}

(int32, int32, float32: the record format of `jaxlab.data.sorting.SortingSource`), so it feeds
`jaxlab.data.build_batches` and the LM train step unchanged. Every position is scored.

Starts s_i, two modes:
  * strided (default): s_i = offset + i * stride. With stride == seq_len (the default) the
    windows tile the stream and each token after `offset` is a target exactly once; the
    tail shorter than one window is dropped.
  * random (`seed` given): `num_windows` starts drawn uniformly from every valid start,
    from `np.random.default_rng(seed)`, so window boundaries fall anywhere but the same
    seed always gives the same windows.
Ordering and shuffling of windows is `build_batches`' job; this source is deterministic.
"""

from __future__ import annotations

import numpy as np


class TokenWindows:
  """Random-access source of (inputs, targets, loss_mask) windows of length seq_len."""

  def __init__(
      self,
      tokens: np.ndarray,
      seq_len: int,
      *,
      stride: int | None = None,
      offset: int = 0,
      seed: int | None = None,
      num_windows: int | None = None,
  ):
    """Args:
      tokens: 1-D integer token stream (e.g. from `encode_corpus`), ids < 2**31.
      seq_len: model input length; each window reads seq_len + 1 tokens.
      stride: strided mode: distance between starts (default seq_len).
      offset: strided mode: start of window 0.
      seed: if given, random mode with this seed (stride and offset must be left unset).
      num_windows: random mode: how many windows (default: as many as strided mode with
        stride seq_len gives). Strided mode: at most this many (default: all that fit).
    """
    tokens_n = np.asarray(tokens)
    if tokens_n.ndim != 1 or not np.issubdtype(tokens_n.dtype, np.integer):
      raise TypeError(f"tokens must be a 1-D integer array, got {tokens_n.dtype} of shape {tokens_n.shape}.")
    if not _is_int(seq_len) or seq_len < 1:
      raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}.")
    if tokens_n.size < seq_len + 1:
      raise ValueError(f"tokens has {tokens_n.size} ids, fewer than one window of seq_len + 1 = {seq_len + 1}.")
    if tokens_n.min() < 0 or tokens_n.max() > np.iinfo(np.int32).max:
      raise ValueError("tokens must hold ids in [0, 2**31) to fit the int32 records.")
    if num_windows is not None and (not _is_int(num_windows) or num_windows < 1):
      raise ValueError(f"num_windows must be an int >= 1 or None, got {num_windows!r}.")
    last_start = tokens_n.size - seq_len - 1  # the largest valid start

    if seed is None:
      stride = seq_len if stride is None else stride
      if not _is_int(stride) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}.")
      if not _is_int(offset) or not 0 <= offset <= last_start:
        raise ValueError(f"offset must be an int in [0, {last_start}] for this stream, got {offset!r}.")
      starts = np.arange(offset, last_start + 1, stride, dtype=np.int64)
      if num_windows is not None:
        starts = starts[:num_windows]
    else:
      if stride is not None or offset != 0:
        raise ValueError("stride and offset are for strided mode; leave them unset when seed is given.")
      if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
      if num_windows is None:
        num_windows = (tokens_n.size - 1) // seq_len
      starts = np.random.default_rng(seed).integers(0, last_start + 1, size=num_windows, dtype=np.int64)

    self._tokens_n = tokens_n
    self._seq_len = int(seq_len)
    self._starts = starts
    self._starts.flags.writeable = False

  @property
  def seq_len(self) -> int:
    return self._seq_len

  @property
  def starts(self) -> np.ndarray:
    """Start offset of each window in the token stream (read-only)."""
    return self._starts

  def __len__(self) -> int:
    return len(self._starts)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not _is_int(index) or not 0 <= index < len(self._starts):
      raise IndexError(f"window {index} out of range [0, {len(self._starts)})")
    start = int(self._starts[index])
    span_t = self._tokens_n[start : start + self._seq_len + 1].astype(np.int32)
    return {"inputs": span_t[:-1], "targets": span_t[1:], "loss_mask": np.ones(self._seq_len, np.float32)}


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
