"""A synthetic sequence-sorting task with a known solution, for end-to-end training checks.

Example i is `[BOS, x_1..x_n, SEP, sort(x)_1..sort(x)_n]` with x_j drawn uniformly from
`num_symbols` symbols. A model sees the sequence shifted by one and is scored only on the
sorted half, which is fully determined by the first half: a perfect model reaches 100%.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SortingSource:
  """Random-access source of sorting examples; example i depends only on (seed, i)."""

  num_examples: int
  length: int
  num_symbols: int
  seed: int = 0

  @property
  def bos_id(self) -> int:
    return self.num_symbols

  @property
  def sep_id(self) -> int:
    return self.num_symbols + 1

  @property
  def vocab_size(self) -> int:
    return self.num_symbols + 2

  @property
  def seq_len(self) -> int:
    """Length of the model input (and target) sequence."""
    return 2 * self.length + 1

  def __len__(self) -> int:
    return self.num_examples

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < self.num_examples:
      raise IndexError(f"example {index} out of range [0, {self.num_examples})")
    rng = np.random.default_rng((self.seed, index))
    x_n = rng.integers(0, self.num_symbols, size=self.length)
    sequence = np.concatenate([[self.bos_id], x_n, [self.sep_id], np.sort(x_n)]).astype(np.int32)
    loss_mask = np.zeros(self.seq_len, np.float32)
    loss_mask[self.length :] = 1.0  # positions whose next token is a sorted symbol
    return {"inputs": sequence[:-1], "targets": sequence[1:], "loss_mask": loss_mask}
