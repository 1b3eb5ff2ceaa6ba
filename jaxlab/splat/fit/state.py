"""Settings and state of a 3DGS scene fit.

`FitSettings` holds the recipe's hyperparameters with the defaults of the INRIA 3DGS code
(`arguments/__init__.py` of its current version; the first release used opacity lr 0.05).
`FitState` is the pytree one fit step reads and writes; its `step`, `params`, `opt_state`,
`nonfinite_steps` and `nonfinite_streak` mean what they mean in `jaxlab.train.TrainState`,
so `jaxlab.train.train_loop` can drive it.

Step numbers: `FitState.step` counts steps taken (0 before the first). The step that
starts from `step = s` is the 3DGS "iteration" s + 1; every schedule below (densify from /
until / every, opacity reset, SH increase, position lr decay) is in iterations, exactly as
in the 3DGS training script.
"""

import dataclasses
import math
from typing import Any

import flax.struct
import jax
import numpy as np

from jaxlab.splat.camera import Camera
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.render import OVERFLOW_MODES


@dataclasses.dataclass(frozen=True)
class FitSettings:
  """The 3DGS recipe (defaults of the INRIA code unless noted).

  Loss:
    lambda_dssim: weight of (1 - SSIM); the loss is (1 - l) L1 + l (1 - SSIM).
  Learning rates (Adam, betas 0.9 / 0.999, eps `adam_eps`):
    position_lr_init, position_lr_final: times the scene extent; log-linear decay over
      `position_lr_max_steps` iterations, then held at the final value.
    sh_dc_lr: the DC SH coefficient ("feature_lr"); sh_rest_lr: the higher bands
      (feature_lr / 20 in 3DGS).
    opacity_lr, scaling_lr, rotation_lr: opacity logits, log-scales, quaternions.
  Densification (adaptive density control):
    densify_from, densify_until, densify_every: densify at iterations i with
      from < i < until and i % every == 0; statistics accumulate while i < until.
    densify_grad_threshold: mean view-space gradient norm (NDC units, as 3DGS) that
      triggers a clone (small Gaussians) or a split (large ones).
    percent_dense: "small" means max scale <= percent_dense * scene extent.
    split_scale_divisor: split children get scale / this (0.8 * 2 samples = 1.6).
    min_opacity: prune below this opacity at every densification.
    prune_screen_size: after the first opacity reset, also prune Gaussians whose largest
      screen radius since the last densification exceeds this (pixels) or whose largest
      scale exceeds `prune_world_scale` * scene extent.
    opacity_reset_every, opacity_reset_value: every such iteration (while i < until) opacity
      is capped at this value; with a white background also at i == densify_from (3DGS).
  Spherical harmonics:
    sh_increase_every: the SH degree used starts at 0 and grows by 1 every this many
      iterations; max_sh_degree caps it (None: the Gaussians' own degree).
  Rendering:
    background: colour behind the Gaussians; must match the one the images were
      composited on (white for `load_dataset`'s default; 3DGS defaults to black).
    random_background: render each view on a random colour (3DGS `--random_background`);
      where the batch carries a "mask" (alpha), the target is recomposited on that colour.
    tile_size, eps2d, antialiased, implementation: passed to `jaxlab.splat.render`.
    on_overflow: render's mode for intersection-capacity overflow; the step also reports
      the `overflow` and `num_intersections` metrics whatever the mode.
  """

  lambda_dssim: float = 0.2
  position_lr_init: float = 1.6e-4
  position_lr_final: float = 1.6e-6
  position_lr_max_steps: int = 30_000
  sh_dc_lr: float = 2.5e-3
  sh_rest_lr: float = 2.5e-3 / 20.0
  opacity_lr: float = 0.025
  scaling_lr: float = 5e-3
  rotation_lr: float = 1e-3
  adam_eps: float = 1e-15
  densify_from: int = 500
  densify_until: int = 15_000
  densify_every: int = 100
  densify_grad_threshold: float = 2e-4
  percent_dense: float = 0.01
  split_scale_divisor: float = 1.6
  min_opacity: float = 0.005
  prune_screen_size: float = 20.0
  prune_world_scale: float = 0.1
  opacity_reset_every: int = 3000
  opacity_reset_value: float = 0.01
  sh_increase_every: int = 1000
  max_sh_degree: int | None = None
  background: tuple[float, float, float] = (1.0, 1.0, 1.0)
  random_background: bool = False
  tile_size: int = 16
  eps2d: float = 0.3
  antialiased: bool = False
  on_overflow: str = "warn"
  implementation: str | tuple[str, ...] | None = None

  def __post_init__(self):
    positive = (
        "position_lr_init", "position_lr_final", "position_lr_max_steps", "adam_eps", "densify_every",
        "densify_grad_threshold", "percent_dense", "prune_screen_size", "prune_world_scale", "opacity_reset_every",
        "sh_increase_every", "tile_size")
    for name in positive:
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"FitSettings.{name} must be a finite number > 0; got {value!r}")
    non_negative = ("lambda_dssim", "sh_dc_lr", "sh_rest_lr", "opacity_lr", "scaling_lr", "rotation_lr", "densify_from",
                    "densify_until", "min_opacity", "eps2d")
    for name in non_negative:
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
        raise ValueError(f"FitSettings.{name} must be a finite number >= 0; got {value!r}")
    if self.lambda_dssim > 1:
      raise ValueError(f"FitSettings.lambda_dssim must be in [0, 1]; got {self.lambda_dssim}")
    if not self.split_scale_divisor > 1:
      raise ValueError(f"FitSettings.split_scale_divisor must be > 1 (children are smaller); got {self.split_scale_divisor}")
    if not 0 < self.opacity_reset_value < 1:
      raise ValueError(f"FitSettings.opacity_reset_value must be in (0, 1); got {self.opacity_reset_value}")
    if self.max_sh_degree is not None and self.max_sh_degree not in (0, 1, 2, 3):
      raise ValueError(f"FitSettings.max_sh_degree must be None or one of 0, 1, 2, 3; got {self.max_sh_degree!r}")
    if len(self.background) != 3:
      raise ValueError(f"FitSettings.background must be 3 floats (RGB); got {self.background!r}")
    if self.on_overflow not in OVERFLOW_MODES:
      raise ValueError(f"FitSettings.on_overflow={self.on_overflow!r}; choose one of {OVERFLOW_MODES}")

  @property
  def white_background(self) -> bool:
    return all(float(c) == 1.0 for c in self.background)


@flax.struct.dataclass
class FitState:
  """Everything a fit step reads and writes; a plain pytree, checkpointed as a whole.

  Attributes:
    step: steps taken, skipped ones included (int32 scalar).
    params: the scene, a `Gaussians` buffer of fixed capacity N with an `active` mask.
    opt_state: optax state of `optim.make_optimizer` over `optim.trainable_params(params)`.
    nonfinite_steps: total steps skipped for a non-finite loss or gradient.
    nonfinite_streak: such steps in a row, up to now.
    grad_accum: [N] sum of view-space gradient norms since the last densification.
    grad_count: [N] int32 number of views that saw each Gaussian since then.
    max_radii: [N] largest screen radius (pixels) since then.
    capacity_exhausted: int32 total of Gaussians that densification could not add for
      lack of free slots.
  """

  step: jax.Array
  params: Gaussians
  opt_state: Any
  nonfinite_steps: jax.Array
  nonfinite_streak: jax.Array
  grad_accum: jax.Array
  grad_count: jax.Array
  max_radii: jax.Array
  capacity_exhausted: jax.Array


def scene_extent_from_cameras(cameras: Camera) -> float:
  """3DGS's `cameras_extent`: 1.1 x the largest distance of a camera centre from their mean.

  Scales the position learning rate and the clone / split / prune thresholds.
  """
  centers_v3 = np.asarray(jax.device_get(cameras.camera_center()), np.float64).reshape(-1, 3)
  radius = float(np.max(np.linalg.norm(centers_v3 - centers_v3.mean(axis=0), axis=1)))
  if not radius > 0:
    raise ValueError(
        f"the {centers_v3.shape[0]} camera centre(s) coincide, so they define no scene extent; pass scene_extent yourself")
  return 1.1 * radius
