"""V2PE position ids: text tokens step by 1, the visual tokens of image i step by a small delta_i.

Rule, along one sequence: p_0 = 0 (whatever the first token is). After that,
  * a visual token of image i:   p_t = p_{t-1} + delta_i,
  * a text token:                p_t = ceil(p_{t-1}) + 1,
so text positions are integers, the first visual token of an image sits delta_i after the token
before it, and the first text token after an image continues at ceil(last image position) + 1.
This is the V2PE rule of the InternVL training code (with `<img>` / `</img>` counted as text).
delta_i is 1 / stride with stride in {1, 2, 4, ..., 256}; training draws the stride uniformly
from that set per image (`sample_deltas`), and delta = 1 everywhere gives plain 0, 1, 2, ....

Positions are multiples of 1/256, so they are computed exactly in integer units of 1/256 and
converted to float32 once (correctly rounded; exact below 2**16 with delta 1/256 and below 2**24
with delta = 1). Runs on the host with numpy, in the input pipeline, like the tokenization.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MAX_STRIDE = 256
V2PE_DELTAS: tuple[float, ...] = tuple(1.0 / 2**k for k in range(9))  # 1, 1/2, ..., 1/256
_UNITS = MAX_STRIDE  # positions are whole multiples of 1 / _UNITS


def _delta_units(deltas: Any, name: str) -> np.ndarray:
  """[N] int64 deltas in units of 1/256, after checking each delta is in V2PE_DELTAS."""
  values = np.asarray(deltas)
  if values.ndim != 1:
    raise ValueError(f"{name} must be a 1-D sequence of per-image deltas, got shape {values.shape}")
  if values.size and not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
    raise ValueError(f"{name} must hold numbers, got dtype {values.dtype}")
  values = values.astype(np.float64)
  bad = [float(v) for v in values if float(v) not in V2PE_DELTAS]
  if bad:
    raise ValueError(f"{name} must hold deltas in {{1, 1/2, 1/4, ..., 1/256}}, got {bad}")
  return np.round(values * _UNITS).astype(np.int64)


def _check_row(is_visual_t: np.ndarray, image_index_t: np.ndarray, num_images: int, where: str) -> None:
  text_index = image_index_t[~is_visual_t]
  if text_index.size and np.any(text_index != -1):
    raise ValueError(f"{where}image_index must be -1 on text tokens, got {np.unique(text_index).tolist()}")
  visual_index = image_index_t[is_visual_t]
  if visual_index.size and (visual_index.min() < 0 or visual_index.max() >= num_images):
    raise ValueError(
        f"{where}image_index of visual tokens must lie in [0, {num_images}) for {num_images} deltas, "
        f"got range [{visual_index.min()}, {visual_index.max()}]"
    )


def _as_mask(name: str, value: Any, ndim: int) -> np.ndarray:
  array = np.asarray(value)
  if array.ndim != ndim:
    raise ValueError(f"{name} must have {ndim} axes, got shape {array.shape}")
  if array.dtype != np.bool_:
    raise ValueError(f"{name} must be a bool array, got dtype {array.dtype}")
  return array


def _as_index(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
  array = np.asarray(value)
  if array.shape != shape:
    raise ValueError(f"{name} must have shape {shape} (the mask's), got {array.shape}")
  if array.size and not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
  return array.astype(np.int64)


def _position_units(is_visual_t: np.ndarray, image_index_t: np.ndarray, units_n: np.ndarray) -> np.ndarray:
  """[T] int64 positions in units of 1/256 for one unpadded, validated row."""
  if is_visual_t.size == 0:
    return np.zeros(0, np.int64)
  step_t = np.zeros(is_visual_t.shape, np.int64)
  step_t[is_visual_t] = units_n[image_index_t[is_visual_t]]
  # Segment g >= 1 is the g-th text token plus the visual tokens after it; segment 0 holds
  # visual tokens before the first text token.
  segment_t = np.cumsum(~is_visual_t)
  num_segments = int(segment_t[-1]) + 1
  cum_t = np.cumsum(step_t)
  base_s = np.zeros(num_segments, np.int64)  # cum_t just before each segment's first visual token
  base_s[segment_t[~is_visual_t]] = cum_t[~is_visual_t]
  total_s = np.zeros(num_segments, np.int64)
  np.add.at(total_s, segment_t, step_t)
  # Anchor = position (units) of the token a segment's visual tokens step from. Segment 0 has
  # none: a virtual anchor puts a leading visual token at 0, or the first text token at 0.
  anchor_s = np.zeros(num_segments, np.int64)
  anchor_s[0] = -step_t[0] if is_visual_t[0] else -_UNITS
  last_0 = anchor_s[0] + total_s[0]
  # Next anchor = (ceil(last position of the segment) + 1), in units.
  first_text = (-(-last_0 // _UNITS) + 1) * _UNITS
  # Text anchors are whole numbers, so ceil(anchor + total) = anchor + ceil(total).
  step_s = (-(-total_s[1:] // _UNITS) + 1) * _UNITS
  anchor_s[1:] = first_text + np.cumsum(np.concatenate([[0], step_s]).astype(np.int64))[:-1]
  return anchor_s[segment_t] + cum_t - base_s[segment_t]


def _to_float32(units: np.ndarray) -> np.ndarray:
  return units.astype(np.float32) / np.float32(_UNITS)  # power-of-two scale: exact


def v2pe_position_ids(is_visual_t: Any, image_index_t: Any, deltas: Sequence[float]) -> np.ndarray:
  """V2PE positions of one unpadded sequence.

  Args:
    is_visual_t: [T] bool, True on `<IMG_CONTEXT>` tokens.
    image_index_t: [T] int, the image of each visual token, -1 on text tokens.
    deltas: [N] per-image position step, each in {1, 1/2, ..., 1/256}.

  Returns:
    [T] float32 positions (see the module docstring for the rule).
  """
  is_visual_t = _as_mask("is_visual_t", is_visual_t, 1)
  image_index_t = _as_index("image_index_t", image_index_t, is_visual_t.shape)
  units_n = _delta_units(deltas, "deltas")
  _check_row(is_visual_t, image_index_t, units_n.size, "")
  return _to_float32(_position_units(is_visual_t, image_index_t, units_n))


def v2pe_position_ids_batch(
    is_visual_bt: Any,
    image_index_bt: Any,
    deltas_b: Sequence[Sequence[float]],
    attention_mask_bt: Any,
) -> np.ndarray:
  """V2PE positions of a left-padded batch: padding gets 0, each row's first real token 0.

  Args:
    is_visual_bt: [B, T] bool, True on `<IMG_CONTEXT>` tokens (never on padding).
    image_index_bt: [B, T] int, image of each visual token within its row, -1 elsewhere.
    deltas_b: B per-row delta sequences (or a [B, N] array), deltas in {1, 1/2, ..., 1/256}.
    attention_mask_bt: [B, T] bool or 0/1, False/0 on padding; padding must be on the left.

  Returns:
    [B, T] float32 positions.
  """
  is_visual_bt = _as_mask("is_visual_bt", is_visual_bt, 2)
  image_index_bt = _as_index("image_index_bt", image_index_bt, is_visual_bt.shape)
  mask_bt = np.asarray(attention_mask_bt)
  if mask_bt.shape != is_visual_bt.shape:
    raise ValueError(f"attention_mask_bt must have shape {is_visual_bt.shape}, got {mask_bt.shape}")
  if mask_bt.size and not np.all((mask_bt == 0) | (mask_bt == 1)):
    raise ValueError("attention_mask_bt must hold only 0/1 (or False/True)")
  mask_bt = mask_bt.astype(bool)
  if isinstance(deltas_b, (str, bytes)) or len(deltas_b) != is_visual_bt.shape[0]:
    raise ValueError(f"deltas_b must hold one delta sequence per row ({is_visual_bt.shape[0]}), got {deltas_b!r}")
  units_b = [_delta_units(d, f"deltas_b[{b}]") for b, d in enumerate(deltas_b)]
  num_pad_b = (~mask_bt).sum(axis=1)
  for b in range(is_visual_bt.shape[0]):
    pad = num_pad_b[b]
    if np.any(~mask_bt[b, pad:]):
      raise ValueError(
          f"row {b}: attention_mask_bt must be left padding (zeros, then ones), got {mask_bt[b].astype(int)}"
      )
    if np.any(is_visual_bt[b, :pad]) or np.any(image_index_bt[b, :pad] != -1):
      raise ValueError(f"row {b}: padding tokens must be text (is_visual False, image_index -1)")
    _check_row(is_visual_bt[b, pad:], image_index_bt[b, pad:], units_b[b].size, f"row {b}: ")
  units_bt = np.zeros(is_visual_bt.shape, np.int64)
  for b in range(is_visual_bt.shape[0]):
    pad = num_pad_b[b]
    units_bt[b, pad:] = _position_units(is_visual_bt[b, pad:], image_index_bt[b, pad:], units_b[b])
  return _to_float32(units_bt)


def sample_deltas(rng: Any, num_images: int) -> np.ndarray:
  """[num_images] float32 deltas drawn uniformly from {1, 1/2, ..., 1/256} (V2PE training).

  Args:
    rng: a numpy `np.random.Generator` or a jax PRNG key (jax.random.key or PRNGKey).
    num_images: how many deltas to draw.
  """
  if isinstance(num_images, bool) or not isinstance(num_images, numbers.Integral) or num_images < 0:
    raise ValueError(f"num_images must be a non-negative int, got {num_images!r}")
  num_choices = len(V2PE_DELTAS)
  if isinstance(rng, np.random.Generator):
    log2_stride_n = rng.integers(0, num_choices, size=int(num_images))
  elif isinstance(rng, jax.Array) and (
      jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) or (rng.dtype == jnp.uint32 and rng.shape == (2,))
  ):
    log2_stride_n = np.asarray(jax.random.randint(rng, (int(num_images),), 0, num_choices))
  else:
    raise TypeError(f"rng must be a np.random.Generator or a jax PRNG key, got {type(rng).__name__}")
  return np.asarray(V2PE_DELTAS, np.float32)[log2_stride_n]
