"""`KVCache`: preallocated per-layer keys and values of a `Qwen2LM` batch, filled by prefill and decode calls.

Every row writes its new tokens into the same slots ([index, index + T)), so a left-padded batch
stays aligned: padding occupies slots too, and `valid_bs` keeps it out of attention. Positions do
not follow slots: each row's next position (`next_position_b`) continues from the positions it was
given, which may be fractional.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlab import _compat
from jaxlab.models.qwen2.config import Qwen2Config
from jaxlab.nn.attention import KV_AXES
from jaxlab.sharding.annotate import constrain


class KVCache(NamedTuple):
  """Keys and values of every layer for a batch of B rows, S slots each (a pytree).

  Attributes:
    keys: L arrays [B, S, KV, hd] in the compute dtype, RoPE already applied.
    values: L arrays [B, S, KV, hd].
    valid_bs: [B, S] bool, slot holds a real (not padding) token of that row.
    index: int32 scalar, slots written so far (the next call writes from here).
    length_b: [B] int32, real tokens of each row so far.
    next_position_b: [B] float32, the position the row's next token takes by default: one past
      the largest position of its real tokens (0 while it has none).
  """

  keys: tuple[jax.Array, ...]
  values: tuple[jax.Array, ...]
  valid_bs: jax.Array
  index: jax.Array
  length_b: jax.Array
  next_position_b: jax.Array

  @property
  def batch_size(self) -> int:
    return self.valid_bs.shape[0]

  @property
  def capacity(self) -> int:
    """S, the number of slots of each row."""
    return self.valid_bs.shape[1]


def init_cache(config: Qwen2Config, batch_size: int, max_len: int, dtype=None) -> KVCache:
  """An empty cache of `max_len` slots per row (zeros; nothing valid).

  Args:
    config: the model's config (layers, KV heads, head dim, compute dtype).
    batch_size: B.
    max_len: S, slots per row: prompt length (padding included) plus tokens to generate.
    dtype: key/value dtype; None: the config's compute dtype.

  Raises:
    TypeError: `config` is not a Qwen2Config.
    ValueError: a non-positive size, or `max_len` above config.max_position_embeddings.
  """
  if not isinstance(config, Qwen2Config):
    raise TypeError(f"config must be a Qwen2Config, got {type(config).__name__}")
  for name, value in (("batch_size", batch_size), ("max_len", max_len)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"init_cache: {name} must be a positive int, got {value!r}")
  if max_len > config.max_position_embeddings:
    raise ValueError(
        f"init_cache: max_len={max_len} exceeds config.max_position_embeddings={config.max_position_embeddings}"
    )
  dtype = jnp.dtype(config.dtype if dtype is None else dtype)
  shape = (batch_size, max_len, config.num_key_value_heads, config.head_dim)
  empty = lambda: tuple(constrain(jnp.zeros(shape, dtype), KV_AXES) for _ in range(config.num_hidden_layers))
  return KVCache(
      keys=empty(),
      values=empty(),
      valid_bs=jnp.zeros((batch_size, max_len), bool),
      index=jnp.zeros((), jnp.int32),
      length_b=jnp.zeros((batch_size,), jnp.int32),
      next_position_b=jnp.zeros((batch_size,), jnp.float32),
  )


def check_cache(cache, config: Qwen2Config, batch_size: int, num_new: int) -> None:
  """Raises if `cache` cannot take `num_new` more tokens of a batch of `batch_size` rows.

  The slot count is checked from shapes; the fill level only when `cache.index` is concrete
  (inside a jitted decode loop the caller sizes the cache).
  """
  if not isinstance(cache, KVCache):
    raise TypeError(f"cache must be a KVCache (see init_cache), got {type(cache).__name__}")
  layers = config.num_hidden_layers
  if len(cache.keys) != layers or len(cache.values) != layers:
    raise ValueError(f"cache has {len(cache.keys)} layers of keys, {len(cache.values)} of values; the model {layers}")
  want = (batch_size, cache.capacity, config.num_key_value_heads, config.head_dim)
  bad = [tuple(a.shape) for a in cache.keys + cache.values if tuple(a.shape) != want]
  if bad:
    raise ValueError(f"cache keys/values must have shape {want} (B, S, KV, hd), got {bad[0]}")
  if num_new > cache.capacity:
    raise ValueError(f"{num_new} new tokens exceed the cache capacity of {cache.capacity} slots")
  if not isinstance(cache.index, _compat.Tracer):
    used = int(cache.index)
    if used + num_new > cache.capacity:
      raise ValueError(
          f"cache holds {used} of {cache.capacity} slots; {num_new} new tokens would exceed its capacity"
      )
