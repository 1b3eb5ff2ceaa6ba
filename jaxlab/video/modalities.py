"""Channel layout of the denoised video: which modalities, in which order, and how each is encoded.

The denoiser works on `x_...c` in pixel space, values in [-1, 1], with the channels of the chosen
modalities concatenated in the fixed order of `MODALITIES` (any subset that starts with "rgb"):

  rgb     3 channels  2 * rgb - 1
  depth   1 channel   per-clip relative depth: inverse depth mapped affinely to [-1, 1] over the
                      whole clip (nearest pixel of the clip = +1, farthest = -1), the way video depth
                      estimators output relative depth; a clip of one constant depth encodes as 0
  normal  3 channels  the camera-space unit normal (OpenCV axes) as is

`split_modalities` and the `decode_*` helpers take NumPy or jax arrays with any leading axes and
return the same array type.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxlab import _compat
from jaxlab.video.clip import ClipError, VideoClip

MODALITIES = ("rgb", "depth", "normal")
MODALITY_CHANNELS = {"rgb": 3, "depth": 1, "normal": 3}


def check_modalities(modalities: Any) -> tuple[str, ...]:
  """Validates a modality selection and returns it as a tuple.

  Raises ValueError for a bare string, an empty selection, unknown names, duplicates, a selection
  not starting with "rgb", or one out of the order of `MODALITIES`.
  """
  if isinstance(modalities, str) or not isinstance(modalities, (tuple, list)):
    raise ValueError(f"modalities must be a tuple of names from {MODALITIES}, e.g. ('rgb', 'depth'), "
                     f"got {modalities!r}")
  names = tuple(modalities)
  unknown = [m for m in names if m not in MODALITY_CHANNELS]
  if unknown:
    raise ValueError(f"unknown modality {unknown[0]!r} in {names}; choose from {MODALITIES}")
  if len(set(names)) != len(names):
    raise ValueError(f"modalities {names} name a modality twice")
  if not names or names[0] != "rgb":
    raise ValueError(f"modalities must start with 'rgb', got {names}")
  if list(names) != sorted(names, key=MODALITIES.index):
    raise ValueError(f"modalities {names} must follow the channel order {MODALITIES}")
  return names


def channels_of(modalities: Any) -> int:
  """Total channel count of a modality selection (rgb 3, depth 1, normal 3)."""
  return sum(MODALITY_CHANNELS[m] for m in check_modalities(modalities))


def _xp(x: Any):
  """The array module that keeps x's type: jax.numpy for jax arrays and tracers, NumPy otherwise."""
  return jax.numpy if isinstance(x, (jax.Array, _compat.Tracer)) else np


def split_modalities(x_c: Any, modalities: Any) -> dict[str, Any]:
  """Splits [..., C] into {name: [..., C_name]} along the last axis, in the order of `modalities`."""
  names = check_modalities(modalities)
  channels = channels_of(names)
  shape = tuple(np.shape(x_c))
  if not shape or shape[-1] != channels:
    raise ValueError(f"modalities {names} need {channels} channels in the last axis, got shape {shape}")
  parts, start = {}, 0
  for name in names:
    parts[name] = x_c[..., start:start + MODALITY_CHANNELS[name]]
    start += MODALITY_CHANNELS[name]
  return parts


def _check_channels(fn: str, x: Any, channels: int) -> None:
  shape = tuple(np.shape(x))
  if not shape or shape[-1] != channels:
    raise ValueError(f"{fn} needs {channels} channel(s) in the last axis, got shape {shape}")


def decode_rgb(x_c3: Any) -> Any:
  """[-1, 1] encoded RGB [..., 3] -> RGB in [0, 1], clipped."""
  _check_channels("decode_rgb", x_c3, 3)
  xp = _xp(x_c3)
  return xp.clip((x_c3 + 1.0) * 0.5, 0.0, 1.0)


def decode_depth(x_c1: Any) -> Any:
  """Encoded depth [..., 1] -> relative inverse depth [...] in [0, 1] (1 = near), clipped; the channel axis is dropped."""
  _check_channels("decode_depth", x_c1, 1)
  xp = _xp(x_c1)
  return xp.clip((x_c1[..., 0] + 1.0) * 0.5, 0.0, 1.0)


def decode_normal(x_c3: Any) -> Any:
  """Normal channels [..., 3] -> unit normals [..., 3]; zero vectors stay zero."""
  _check_channels("decode_normal", x_c3, 3)
  xp = _xp(x_c3)
  squared = xp.sum(xp.square(x_c3), axis=-1, keepdims=True)
  positive = squared > 0
  # sqrt and the division see 1 where the vector is zero, so gradients through that branch stay finite.
  return xp.where(positive, x_c3 / xp.sqrt(xp.where(positive, squared, 1.0)), 0.0)


def encode_depth(depth_fhw: np.ndarray) -> np.ndarray:
  """Metric depth [F, H, W] (> 0) -> float32 [F, H, W, 1]: inverse depth mapped to [-1, 1] over the clip."""
  inverse = 1.0 / np.asarray(depth_fhw, np.float64)
  near, far = inverse.max(), inverse.min()
  if near == far:  # one constant depth: no relative structure to encode
    return np.zeros(inverse.shape + (1,), np.float32)
  return (2.0 * (inverse - far) / (near - far) - 1.0).astype(np.float32)[..., None]


def encode_modalities(clip: VideoClip, modalities: Any) -> np.ndarray:
  """The clip's frames in the channel layout above: float32 [F, H, W, channels_of(modalities)].

  Raises ClipError when the clip lacks depth or normals that `modalities` asks for.
  """
  names = check_modalities(modalities)
  parts = []
  for name in names:
    if name == "rgb":
      parts.append(2.0 * clip.rgb_fhwc - 1.0)
    elif name == "depth":
      if clip.depth_fhw is None:
        raise ClipError(f"{clip.name}: modality 'depth' is asked for but the clip has no depth")
      parts.append(encode_depth(clip.depth_fhw))
    else:
      if clip.normal_fhwc is None:
        raise ClipError(f"{clip.name}: modality 'normal' is asked for but the clip has no normals")
      parts.append(clip.normal_fhwc)
  return np.concatenate(parts, axis=-1).astype(np.float32)
