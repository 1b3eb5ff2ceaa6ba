"""The fixed-order grain pipeline and the hand-off of host batches to global jax.Arrays.

Order, always: source -> shuffle -> repeat -> map -> batch -> per-process slice -> iterate
(-> optional thread prefetch). Every process builds the same global stream from one seed
and keeps only its own chunks of it, so

  global batch k == concat over p of (process p's local batch k)
                 == batch k of the same pipeline built with process_count=1.

Process p's local batch k holds global elements [k*B + p*b, k*B + (p+1)*b), with B the
global and b = B / process_count the local batch size. The slice is taken on grain's lazy
`MapDataset`, so `map_fn` and source reads run only for this process's elements.

The iterator (`iter(dataset)`) is a grain `DatasetIterator`: its `get_state()` is a small
JSON-serialisable dict and `set_state()` on a freshly built iterator resumes exactly. Close
it (`iterator.close()`) when done: with prefetch threads it owns a thread pool.
"""

from collections.abc import Callable, Sequence
import sys
from typing import Any

import grain
import jax
import numpy as np

_MAX_SEED = 2**32  # grain's index shuffle takes a uint32 seed.


def build_batches(
    source: Sequence[Any] | grain.MapDataset,
    *,
    global_batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    map_fn: Callable[[Any], Any] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    prefetch_threads: int = 0,
) -> grain.IterDataset:
  """Builds this process's stream of local batches.

  Args:
    source: random-access data (`len` + `__getitem__`) whose elements are pytrees of
      numpy arrays, or a finite `grain.MapDataset`.
    global_batch_size: B, elements per step summed over all processes.
    seed: the one shuffle seed, identical on every process, in [0, 2**32). Each epoch
      gets its own order derived from it.
    shuffle: False keeps source order (useful for evaluation).
    num_epochs: passes over the source; None repeats forever.
    map_fn: per-element transform, applied after shuffling and before batching.
    process_index: this process's rank; defaults to `jax.process_index()`.
    process_count: number of processes; defaults to `jax.process_count()`.
    prefetch_threads: 0 reads synchronously in the consuming thread; n > 0 reads up to
      2*n local batches ahead on n threads.

  Returns:
    A `grain.IterDataset` of local batches: each leaf has leading dim
    b = global_batch_size // process_count. A trailing partial global batch is dropped.

  Raises:
    ValueError: bad sizes, ranks, seed or epochs; global_batch_size not divisible by
      process_count; a source too small to fill one global batch.
  """
  process_index, process_count = _resolve_processes(process_index, process_count)
  local_batch_size = _local_batch_size(global_batch_size, process_count)
  if not 0 <= seed < _MAX_SEED:
    raise ValueError(f"seed must be in [0, 2**32), got {seed}.")
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f"num_epochs must be a positive int or None (forever), got {num_epochs}.")
  if prefetch_threads < 0:
    raise ValueError(f"prefetch_threads must be >= 0, got {prefetch_threads}.")

  elements = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
  num_source_elements = len(elements)
  if num_source_elements == 0:
    raise ValueError("source is empty; it must hold at least one element.")
  if num_source_elements >= sys.maxsize:
    raise ValueError("source must be finite; pass num_epochs=None to repeat it forever.")

  if shuffle:
    elements = elements.shuffle(seed=seed)
  # Shuffle before repeat: the index shuffle folds the epoch into its seed, so every epoch
  # is a fresh permutation and no element repeats within an epoch.
  elements = elements.repeat(num_epochs)
  if map_fn is not None:
    elements = elements.map(map_fn)

  num_global_batches = len(elements) // global_batch_size
  if num_global_batches == 0:
    raise ValueError(
        f"source has {num_source_elements} elements x {num_epochs} epochs, fewer than "
        f"one global batch of {global_batch_size}."
    )
  local_chunks = elements.batch(local_batch_size, drop_remainder=True)
  # Cut to whole global batches first, so no process keeps a chunk of the partial last one.
  local_chunks = local_chunks[: num_global_batches * process_count]
  local_batches = local_chunks[process_index::process_count]

  read_options = grain.ReadOptions(
      num_threads=prefetch_threads, prefetch_buffer_size=2 * prefetch_threads
  )
  return local_batches.to_iter_dataset(read_options)


def make_global_batch(local_batch: Any, sharding: jax.sharding.NamedSharding) -> Any:
  """Assembles host-local numpy batches into global `jax.Array`s.

  Args:
    local_batch: pytree of arrays with this process's local batch as leading dim.
    sharding: a NamedSharding whose first spec entry names the mesh axes that split the
      batch. Each leaf gets a sharding that keeps those axes on dim 0 and replicates the
      other dims, so leaves of any rank >= 1 share one batch sharding.

  Returns:
    The same pytree of `jax.Array`s with global leading dim = local * process_count.
  """
  if not isinstance(sharding, jax.sharding.NamedSharding):
    raise TypeError(f"sharding must be a jax.sharding.NamedSharding, got {type(sharding).__name__}.")
  process_count = jax.process_count()

  def to_global(path, leaf):
    leaf = np.asarray(leaf)
    if leaf.ndim == 0:
      raise ValueError(
          f"leaf {jax.tree_util.keystr(path)} is a scalar; every leaf needs a leading batch dim."
      )
    global_shape = (leaf.shape[0] * process_count, *leaf.shape[1:])
    return jax.make_array_from_process_local_data(
        batch_dim_sharding(sharding, leaf.ndim), leaf, global_shape
    )

  return jax.tree_util.tree_map_with_path(to_global, local_batch)


def batch_dim_sharding(
    sharding: jax.sharding.NamedSharding, ndim: int
) -> jax.sharding.NamedSharding:
  """`sharding` reduced to its first-dim mesh axes, replicated over the other ndim-1 dims."""
  spec = sharding.spec
  batch_axes = spec[0] if len(spec) else None
  return jax.sharding.NamedSharding(
      sharding.mesh,
      jax.sharding.PartitionSpec(batch_axes, *([None] * (ndim - 1))),
      memory_kind=sharding.memory_kind,
  )


def _resolve_processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if process_count < 1:
    raise ValueError(f"process_count must be >= 1, got {process_count}.")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}.")
  return process_index, process_count


def _local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size < 1:
    raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
  if global_batch_size % process_count:
    raise ValueError(
        f"global_batch_size {global_batch_size} is not divisible by process_count "
        f"{process_count}; every process must get the same local batch size."
    )
  return global_batch_size // process_count
