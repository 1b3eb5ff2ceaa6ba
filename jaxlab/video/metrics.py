"""Video metrics: appearance (PSNR, SSIM), structure (relative depth, normal angles), and crossing frames.

NumPy in, Python floats (or a bool [F] array) out, computed in float64 except SSIM (float32, via
`jaxlab.splat.fit.ssim`). Every function checks shapes and finiteness and raises ValueError naming
the problem.

- `video_psnr`, `video_ssim`: images in [0, 1] (decode model outputs with `decode_rgb` first);
  the mean over frames of the per-frame score. Identical frames have PSNR inf, and so does the mean.
- `depth_errors`: the affine-invariant protocol of relative depth estimators (MiDaS, DepthCrafter):
  the prediction is relative inverse depth (e.g. `decode_depth`'s output) known only up to scale
  and shift; one least-squares scale and shift over the whole clip (the encoding is per clip, so a
  per-frame fit would hide flicker) maps it onto the target's inverse depth; the aligned inverse
  depth is clamped below at 1 / max target depth (no pixel farther than the farthest ground truth,
  and no division by values <= 0) and inverted. Then, over the valid pixels:
    abs_rel = mean(|d - d*| / d*),  rmse = sqrt(mean((d - d*)^2)) (target units),
    delta1 = fraction of pixels with max(d / d*, d* / d) < 1.25.
- `normal_angle_error`: angle between unit normals in degrees: mean, median and the fractions
  under 11.25, 22.5 and 30 degrees (the usual surface-normal thresholds).
- `frames_after_crossing`: frames from the first left-right swap of two identities' mask centroids.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxlab.splat.fit import ssim

# Normal-angle thresholds in degrees, and how they are named in the result.
ANGLE_THRESHOLDS = {"under_11_25": 11.25, "under_22_5": 22.5, "under_30": 30.0}
# Values this far outside [0, 1] count as images in another range (e.g. [-1, 1]), not rounding.
_RANGE_TOLERANCE = 1e-4


def _as_array(fn: str, name: str, x, ndim: int, last: int | None = None) -> np.ndarray:
  a = np.asarray(x, np.float64)
  if a.ndim != ndim or (last is not None and a.shape[-1] != last):
    want = "[F, H, W]" if ndim == 3 else f"[F, H, W, {last if last is not None else 'C'}]"
    raise ValueError(f"{fn} needs {name} as {want}, got shape {a.shape}")
  if not np.isfinite(a).all():
    raise ValueError(f"{fn}: {name} holds NaN or inf")
  return a


def _pair(fn: str, pred, target, ndim: int, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  p = _as_array(fn, "pred", pred, ndim, last)
  t = _as_array(fn, "target", target, ndim, last)
  if p.shape != t.shape:
    raise ValueError(f"{fn} needs pred and target of one shape, got {p.shape} and {t.shape}")
  return p, t


def _check_unit_range(fn: str, images: dict[str, np.ndarray]) -> None:
  for name, a in images.items():
    if a.min() < -_RANGE_TOLERANCE or a.max() > 1.0 + _RANGE_TOLERANCE:
      raise ValueError(f"{fn} needs {name} in [0, 1], got [{a.min():.3g}, {a.max():.3g}]; "
                       "decode [-1, 1] video with decode_rgb first")


def _mask(fn: str, mask_fhw, shape_fhw: tuple[int, ...]) -> np.ndarray:
  if mask_fhw is None:
    return np.ones(shape_fhw, bool)
  mask = np.asarray(mask_fhw)
  if mask.shape != shape_fhw:
    raise ValueError(f"{fn} needs mask as [F, H, W] = {shape_fhw}, got shape {mask.shape}")
  if mask.dtype != bool:
    raise ValueError(f"{fn} needs a bool mask, got dtype {mask.dtype}")
  if not mask.any():
    raise ValueError(f"{fn}: the mask selects no pixel")
  return mask


def video_psnr(pred_fhwc, target_fhwc) -> float:
  """Mean over frames of the per-frame PSNR in dB, -10 log10(MSE), for [F, H, W, C] videos in [0, 1]."""
  p, t = _pair("video_psnr", pred_fhwc, target_fhwc, 4)
  _check_unit_range("video_psnr", {"pred": p, "target": t})
  mse_f = np.mean(np.square(p - t).reshape(p.shape[0], -1), axis=1)
  with np.errstate(divide="ignore"):
    return float(np.mean(-10.0 * np.log10(mse_f)))


@functools.cache
def _ssim_per_frame():
  return jax.jit(jax.vmap(ssim))


def video_ssim(pred_fhwc, target_fhwc) -> float:
  """Mean over frames of SSIM (`jaxlab.splat.fit.ssim`, 11 x 11 Gaussian window) for [F, H, W, C] videos in [0, 1]."""
  p, t = _pair("video_ssim", pred_fhwc, target_fhwc, 4)
  _check_unit_range("video_ssim", {"pred": p, "target": t})
  ssim_f = _ssim_per_frame()(p.astype(np.float32), t.astype(np.float32))
  return float(np.mean(np.asarray(ssim_f, np.float64)))


def depth_errors(pred_fhw, target_fhw, *, mask_fhw=None) -> dict[str, float]:
  """Relative-depth errors after one least-squares scale-and-shift alignment per clip (module docstring).

  Args:
    pred_fhw: [F, H, W] predicted relative inverse depth (any scale and shift; larger = nearer).
    target_fhw: [F, H, W] ground-truth depth (e.g. metres), > 0 wherever evaluated.
    mask_fhw: optional bool [F, H, W], the pixels to evaluate and fit on (default: all).

  Returns:
    dict with "abs_rel", "rmse", "delta1", and the fitted "scale" and "shift" (aligned inverse
    depth = scale * pred + shift).
  """
  fn = "depth_errors"
  p, t = _pair(fn, pred_fhw, target_fhw, 3)
  mask = _mask(fn, mask_fhw, t.shape)
  p, t = p[mask], t[mask]
  if (t <= 0).any():
    raise ValueError(f"{fn} needs target depth > 0 on the evaluated pixels, got a minimum of {t.min():.3g}; "
                     "pass metric depth, not the [-1, 1] encoding")
  design = np.stack([p, np.ones_like(p)], axis=1)
  (scale, shift), *_ = np.linalg.lstsq(design, 1.0 / t, rcond=None)
  inverse = np.maximum(scale * p + shift, 1.0 / t.max())
  d = 1.0 / inverse
  return {
      "abs_rel": float(np.mean(np.abs(d - t) / t)),
      "rmse": float(np.sqrt(np.mean(np.square(d - t)))),
      "delta1": float(np.mean(np.maximum(d / t, t / d) < 1.25)),
      "scale": float(scale),
      "shift": float(shift),
  }


def normal_angle_error(pred_fhwc, target_fhwc, mask_fhw=None) -> dict[str, float]:
  """Angles between predicted and target normals in degrees, over the pixels of mask_fhw (default: all).

  Both are normalized first; a zero-length prediction counts as 90 degrees off. The target must
  hold unit normals (length within 0.5 of 1) on the evaluated pixels.

  Returns:
    dict with "mean" and "median" (degrees) and the fractions "under_11_25", "under_22_5", "under_30".
  """
  fn = "normal_angle_error"
  p, t = _pair(fn, pred_fhwc, target_fhwc, 4, 3)
  mask = _mask(fn, mask_fhw, t.shape[:3])
  p, t = p[mask], t[mask]
  t_length = np.linalg.norm(t, axis=-1)
  if np.abs(t_length - 1.0).max() > 0.5:
    raise ValueError(f"{fn} needs unit target normals, got lengths in [{t_length.min():.3g}, {t_length.max():.3g}]")
  p_length = np.linalg.norm(p, axis=-1)
  cosine = np.sum(p * t, axis=-1) / (np.where(p_length > 0, p_length, 1.0) * t_length)
  angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
  result = {"mean": float(np.mean(angle)), "median": float(np.median(angle))}
  for name, threshold in ANGLE_THRESHOLDS.items():
    result[name] = float(np.mean(angle < threshold))
  return result


def frames_after_crossing(masks_fhw, *, min_pixels: int = 4) -> np.ndarray:
  """bool [F]: True from the first frame at which two identities have swapped left-right order.

  For each pair of identities, the order of their mask centroids' x is taken in the first frame in
  which both are visible (>= min_pixels pixels; frame 0 when both are visible there) and whose
  centroids differ in x; a frame in which both are visible and the order is reversed is a crossing.

  Args:
    masks_fhw: [F, H, W] integer identity labels, 0 = background.
    min_pixels: a region smaller than this counts as not visible.
  """
  masks = np.asarray(masks_fhw)
  if masks.ndim != 3:
    raise ValueError(f"frames_after_crossing needs masks as [F, H, W], got shape {masks.shape}")
  if not np.issubdtype(masks.dtype, np.integer):
    raise ValueError(f"frames_after_crossing needs integer identity labels, got dtype {masks.dtype}")
  if (masks < 0).any():
    raise ValueError(f"frames_after_crossing needs labels >= 0, got {int(masks.min())}")
  if min_pixels < 1:
    raise ValueError(f"frames_after_crossing needs min_pixels >= 1, got {min_pixels}")
  f, _, w = masks.shape
  labels = int(masks.max()) + 1
  index = (np.arange(f)[:, None, None] * labels + masks).ravel()
  x_centre = np.broadcast_to(np.arange(w) + 0.5, masks.shape).ravel()
  count_fl = np.bincount(index, minlength=f * labels).reshape(f, labels)
  sum_x_fl = np.bincount(index, weights=x_centre, minlength=f * labels).reshape(f, labels)
  visible_fl = count_fl >= min_pixels
  centroid_fl = sum_x_fl / np.maximum(count_fl, 1)
  first_crossing = f
  for i in range(1, labels):
    for j in range(i + 1, labels):
      both_f = visible_fl[:, i] & visible_fl[:, j]
      order_f = np.where(both_f, np.sign(centroid_fl[:, i] - centroid_fl[:, j]), 0.0)
      ordered = np.nonzero(order_f)[0]
      if ordered.size == 0:
        continue
      swapped = np.nonzero(order_f == -order_f[ordered[0]])[0]
      if swapped.size:
        first_crossing = min(first_crossing, int(swapped[0]))
  return np.arange(f) >= first_crossing
