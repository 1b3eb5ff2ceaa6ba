"""Losses shared by training tasks."""

import jax
import jax.numpy as jnp
import optax


def masked_cross_entropy(logits_btv: jax.Array, targets_bt: jax.Array, mask_bt: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean next-token cross-entropy over masked positions, in float32.

  Returns:
    (loss, metrics) with metrics `loss`, `accuracy` (argmax hits over masked tokens) and
    `sequence_accuracy` (share of rows whose masked tokens are all right).
  """
  logits_btv = logits_btv.astype(jnp.float32)
  mask_bt = mask_bt.astype(jnp.float32)
  token_loss_bt = optax.softmax_cross_entropy_with_integer_labels(logits_btv, targets_bt)
  denom = jnp.maximum(mask_bt.sum(), 1.0)
  loss = (token_loss_bt * mask_bt).sum() / denom
  hit_bt = (jnp.argmax(logits_btv, axis=-1) == targets_bt).astype(jnp.float32)
  accuracy = (hit_bt * mask_bt).sum() / denom
  row_ok_b = jnp.all((hit_bt > 0) | (mask_bt == 0), axis=-1).astype(jnp.float32)
  return loss, {"loss": loss, "accuracy": accuracy, "sequence_accuracy": row_ok_b.mean()}
