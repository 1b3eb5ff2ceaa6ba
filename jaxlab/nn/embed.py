"""Token embedding table with a logical (vocab, embed) layout."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.sharding import axes
from jaxlab.sharding.annotate import constrain, param_with_axes


class Embed(nn.Module):
  """Looks up token ids; `attend` maps hidden states back to vocabulary logits (tied head)."""

  vocab_size: int
  features: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    init = param_with_axes(nn.initializers.normal(stddev=1.0), (axes.VOCAB, axes.EMBED))
    self.table_vd = self.param("embedding", init, (self.vocab_size, self.features), self.param_dtype)

  def __call__(self, ids_bt: jax.Array) -> jax.Array:
    """[batch, time] int ids -> [batch, time, features]."""
    # Gather the whole embedding dimension first (FSDP's weight all-gather): a lookup into an
    # embed-sharded table would make the partitioner reshard the batch-sharded activations.
    table_vd = constrain(self.table_vd, (axes.VOCAB, None))
    return jnp.take(table_vd, ids_bt, axis=0).astype(self.dtype)

  def attend(self, x_btd: jax.Array) -> jax.Array:
    """[batch, time, features] -> [batch, time, vocab] logits."""
    return jnp.einsum("btd,vd->btv", x_btd, self.table_vd.astype(self.dtype))
