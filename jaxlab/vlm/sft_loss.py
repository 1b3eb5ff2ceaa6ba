"""Supervised fine-tuning loss: float32 cross entropy on the supervised (answer) tokens, three per-token weightings.

With l_b the number of supervised tokens of sample b and CE_bt the cross entropy of token t:

  "token":  every supervised token weighs 1; loss = sum CE / sum of l_b (long answers dominate).
  "sqrt":   every supervised token of sample b weighs 1 / sqrt(l_b) (InternVL's square averaging);
            loss = sum(w * CE) / sum(w), between the two extremes.
  "sample": every supervised token of sample b weighs 1 / l_b, so each sample counts once.

Samples without supervised tokens get weight 0 (not 1/0), and a batch without any gives loss 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

WEIGHTINGS = ("token", "sqrt", "sample")


def token_weights(loss_mask_bt: jax.Array, weighting: str) -> jax.Array:
  """float32 [B, T] weight of every token: 0 off the mask, 1, 1/sqrt(l_b) or 1/l_b on it."""
  if weighting not in WEIGHTINGS:
    raise ValueError(f"unknown loss weighting {weighting!r}; expected one of {WEIGHTINGS}")
  mask_bt = (jnp.asarray(loss_mask_bt) != 0).astype(jnp.float32)
  if weighting == "token":
    return mask_bt
  count_b = jnp.sum(mask_bt, axis=-1, keepdims=True)
  safe_b = jnp.maximum(count_b, 1.0)  # Rows without supervised tokens are all-zero anyway.
  scale_b = jax.lax.rsqrt(safe_b) if weighting == "sqrt" else 1.0 / safe_b
  return mask_bt * scale_b


def sft_loss(
    logits_btv: jax.Array,
    targets_bt: jax.Array,
    loss_mask_bt: jax.Array,
    *,
    weighting: str = "token",
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted mean cross entropy over the supervised tokens.

  Args:
    logits_btv: [B, T, V] next-token logits (any float dtype; the softmax runs in float32).
    targets_bt: [B, T] int ids the logits should predict.
    loss_mask_bt: [B, T], nonzero on supervised tokens.
    weighting: "token", "sqrt" or "sample" (module docstring).

  Returns:
    (loss, metrics) with metrics {"loss", "token_accuracy" (argmax hits on supervised tokens),
    "supervised_tokens"}.

  Raises:
    ValueError: unknown weighting, or shapes that do not line up (both named).
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f"unknown loss weighting {weighting!r}; expected one of {WEIGHTINGS}")
  if logits_btv.ndim != 3 or tuple(targets_bt.shape) != tuple(logits_btv.shape[:2]):
    raise ValueError(f"sft_loss needs logits [B, T, V] and targets [B, T]; got logits {tuple(logits_btv.shape)}, "
                     f"targets {tuple(targets_bt.shape)}")
  if tuple(loss_mask_bt.shape) != tuple(targets_bt.shape):
    raise ValueError(f"loss_mask shape {tuple(loss_mask_bt.shape)} != targets shape {tuple(targets_bt.shape)}")
  logits_btv = logits_btv.astype(jnp.float32)
  ce_bt = optax.softmax_cross_entropy_with_integer_labels(logits_btv, targets_bt)
  w_bt = token_weights(loss_mask_bt, weighting)
  loss = jnp.sum(w_bt * ce_bt) / jnp.maximum(jnp.sum(w_bt), 1e-12)
  mask_bt = (loss_mask_bt != 0).astype(jnp.float32)
  count = jnp.sum(mask_bt)
  hits = jnp.sum(mask_bt * (jnp.argmax(logits_btv, axis=-1) == targets_bt))
  metrics = {"loss": loss, "token_accuracy": hits / jnp.maximum(count, 1.0), "supervised_tokens": count}
  return loss, metrics
