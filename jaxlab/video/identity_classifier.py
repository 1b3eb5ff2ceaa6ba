"""Identity consistency: a per-identity appearance classifier applied to each tracked mask region.

A region is the pixels of one identity in one frame (from the ground-truth masks, so a generated
video is judged on the regions where each person should be). Its feature is the normalized joint
RGB histogram (bins^3 cells, summing to 1) followed by the mean colour (3 values in [0, 1]). Each
identity's centroid is the mean feature of its regions in the frames given to `fit` (the reference
frame, or all ground-truth frames: the caller decides). A region is classified as the identity
with the nearest centroid (Euclidean); identities without a centroid are never predicted.
A video that swaps two people's appearance after they cross scores below 1.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np


def _check_inputs(frames_fhwc, masks_fhw, num_identities: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  frames = np.asarray(frames_fhwc, np.float64)
  masks = np.asarray(masks_fhw)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"identity classifier needs frames as [F, H, W, 3], got shape {frames.shape}")
  if masks.shape != frames.shape[:3]:
    raise ValueError(f"identity classifier needs masks as [F, H, W] = {frames.shape[:3]}, got shape {masks.shape}")
  if not np.issubdtype(masks.dtype, np.integer):
    raise ValueError(f"identity classifier needs integer mask labels, got dtype {masks.dtype}")
  if not np.isfinite(frames).all():
    raise ValueError("identity classifier: frames hold NaN or inf")
  if frames.min() < 0.0 or frames.max() > 1.0:
    raise ValueError(f"identity classifier needs frames in [0, 1], got [{frames.min():.3g}, {frames.max():.3g}]")
  if num_identities is not None and (masks.min() < 0 or masks.max() > num_identities):
    raise ValueError(f"identity classifier needs mask labels in [0, N = {num_identities}], "
                     f"got [{int(masks.min())}, {int(masks.max())}]")
  return frames, masks


def region_features(frames_fhwc, masks_fhw, num_identities: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
  """Features of every (frame, identity) region and their pixel counts.

  Returns:
    features_fnd float64 [F, N, bins^3 + 3] (zeros for empty regions) and counts_fn int [F, N].
  """
  frames, masks = _check_inputs(frames_fhwc, masks_fhw, num_identities)
  f = frames.shape[0]
  cells = bins**3
  quantized = np.minimum((frames * bins).astype(np.int64), bins - 1)
  colour = (quantized[..., 0] * bins + quantized[..., 1]) * bins + quantized[..., 2]
  region = np.arange(f)[:, None, None] * (num_identities + 1) + masks
  regions = f * (num_identities + 1)
  histogram = np.bincount((region * cells + colour).ravel(), minlength=regions * cells).reshape(regions, cells)
  counts = np.bincount(region.ravel(), minlength=regions)
  sums = np.stack([np.bincount(region.ravel(), weights=frames[..., c].ravel(), minlength=regions) for c in range(3)],
                  axis=1)
  denominator = np.maximum(counts, 1)[:, None]
  features = np.concatenate([histogram / denominator, sums / denominator], axis=1)
  features = features.reshape(f, num_identities + 1, cells + 3)[:, 1:]  # drop the background
  return features, counts.reshape(f, num_identities + 1)[:, 1:]


@dataclasses.dataclass(frozen=True, eq=False)
class IdentityClassifier:
  """Nearest-centroid appearance classifier; build it with `IdentityClassifier.fit`.

  centroids_nd: float64 [N, bins^3 + 3], NaN rows for identities never seen in the fit frames.
  """

  centroids_nd: np.ndarray
  bins: int
  min_pixels: int

  @property
  def num_identities(self) -> int:
    return self.centroids_nd.shape[0]

  @classmethod
  def fit(cls, frames_fhwc, masks_fhw, num_identities: int, *, bins: int = 4,
          min_pixels: int = 4) -> IdentityClassifier:
    """Centroids from the regions of the given ground-truth frames.

    Args:
      frames_fhwc: [F, H, W, 3] RGB in [0, 1] (e.g. the reference frame as F = 1, or all GT frames).
      masks_fhw: [F, H, W] identity labels in [0, N], 0 = background.
      num_identities: N.
      bins: histogram bins per colour channel, >= 1.
      min_pixels: regions with fewer pixels are ignored (here and in `predict`), >= 1.
    """
    for name, value in (("num_identities", num_identities), ("bins", bins), ("min_pixels", min_pixels)):
      if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"IdentityClassifier.fit needs an integer {name} >= 1, got {value!r}")
    features_fnd, counts_fn = region_features(frames_fhwc, masks_fhw, int(num_identities), int(bins))
    used_fn = counts_fn >= min_pixels
    if not used_fn.any():
      raise ValueError(f"IdentityClassifier.fit found no region with >= {min_pixels} pixels")
    used = used_fn[..., None]
    num_used_n = used_fn.sum(axis=0)
    with np.errstate(invalid="ignore"):
      centroids = np.where(used, features_fnd, 0.0).sum(axis=0) / num_used_n[:, None]
    centroids[num_used_n == 0] = np.nan
    return cls(centroids_nd=centroids, bins=int(bins), min_pixels=int(min_pixels))

  def predict(self, frames_fhwc, masks_fhw) -> np.ndarray:
    """int32 [F, N]: entry [f, n - 1] is the predicted identity (1..N) of identity n's region in frame f,
    -1 where that region has fewer than min_pixels pixels."""
    features_fnd, counts_fn = region_features(frames_fhwc, masks_fhw, self.num_identities, self.bins)
    distance_fnk = np.linalg.norm(features_fnd[:, :, None, :] - self.centroids_nd[None, None], axis=-1)
    distance_fnk = np.where(np.isnan(distance_fnk), np.inf, distance_fnk)
    predicted_fn = np.argmin(distance_fnk, axis=-1).astype(np.int32) + 1
    return np.where(counts_fn >= self.min_pixels, predicted_fn, -1).astype(np.int32)


def identity_consistency(classifier: IdentityClassifier, frames_fhwc, masks_fhw, frame_mask_f=None) -> dict:
  """Fraction of regions classified as their own identity, over the frames selected by frame_mask_f.

  Args:
    classifier: a fitted `IdentityClassifier`.
    frames_fhwc: [F, H, W, 3] RGB in [0, 1] (e.g. a generated video, decoded).
    masks_fhw: [F, H, W] the tracked (ground-truth) identity masks.
    frame_mask_f: optional bool [F] (e.g. `frames_after_crossing(masks)`); default all frames.

  Returns:
    dict(accuracy=float, num_regions=int); accuracy is NaN when no region (>= min_pixels) is selected.
  """
  predicted_fn = classifier.predict(frames_fhwc, masks_fhw)
  f, n = predicted_fn.shape
  if frame_mask_f is None:
    frame_mask_f = np.ones(f, bool)
  frame_mask_f = np.asarray(frame_mask_f)
  if frame_mask_f.shape != (f,) or frame_mask_f.dtype != bool:
    raise ValueError(f"identity_consistency needs frame_mask as bool [F] = ({f},), got {frame_mask_f.dtype} "
                     f"{frame_mask_f.shape}")
  selected = predicted_fn[frame_mask_f]
  own = np.broadcast_to(np.arange(1, n + 1, dtype=np.int32), selected.shape)
  scored = selected >= 1
  num_regions = int(scored.sum())
  accuracy = float(np.mean(selected[scored] == own[scored])) if num_regions else float("nan")
  return {"accuracy": accuracy, "num_regions": num_regions}
