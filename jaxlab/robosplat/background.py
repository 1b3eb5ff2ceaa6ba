"""The static background (table, tray, floor) fitted to captures with jaxlab's scene fitting.

The captures are taken with the robot and the object hidden, so what is left is static. The
fit starts from Gaussians on the known surfaces (`assets.surface_gaussians`; a COLMAP point
cloud plays this role for a real scene) and runs the 3DGS recipe of `jaxlab.splat.fit` for a
fixed number of steps: densification fills what the surface samples missed (the table's
legs, the floor's shading), and the photometric loss corrects the colours the projection
averaged.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import numpy as np

from jaxlab.splat import Camera, Gaussians, estimate_capacity_for
from jaxlab.splat.fit import FitSettings, evaluate, init_fit_state, make_fit_step, scene_extent_from_cameras

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BackgroundFit:
  """The fitted background and how well it reproduces the captures.

  Attributes:
    gaussians: the scene (inactive slots dropped).
    train_psnr: PSNR over the fitted views at the end (dB).
    initial_psnr: PSNR of the starting Gaussians over the same views (dB).
    num_steps: steps taken.
  """

  gaussians: Gaussians
  train_psnr: float
  initial_psnr: float
  num_steps: int


def _padded(gaussians: Gaussians, capacity: int) -> Gaussians:
  """The scene in a buffer of `capacity` slots (the extra ones inactive), room for densification."""
  extra = capacity - gaussians.num
  if extra <= 0:
    return gaussians

  def pad(x):
    return np.concatenate([np.asarray(x), np.zeros((extra, *x.shape[1:]), np.asarray(x).dtype)])

  padded = jax.tree.map(pad, gaussians)
  quats = np.asarray(padded.quats).copy()
  quats[gaussians.num:, 0] = 1.0
  return padded.replace(quats=quats)


def active_only(gaussians: Gaussians) -> Gaussians:
  """The active Gaussians alone (host-side; shapes shrink)."""
  keep = np.asarray(gaussians.active)
  return jax.tree.map(lambda x: np.asarray(x)[keep], gaussians)


def fit_background(
    initial: Gaussians,
    cameras: Camera,
    images_vhw3: np.ndarray,
    *,
    num_steps: int,
    batch_size: int = 4,
    capacity_factor: float = 2.0,
    settings: FitSettings | None = None,
    seed: int = 0,
) -> BackgroundFit:
  """Fits `initial` to the views with the 3DGS recipe on one device.

  Args:
    initial: starting Gaussians (world frame).
    cameras: V cameras (batch shape [V]) of the captures.
    images_vhw3: the captures, uint8 or float in [0, 1], composited on the settings'
      background colour.
    num_steps: optimisation steps (each renders `batch_size` views).
    batch_size: views per step.
    capacity_factor: buffer slots per starting Gaussian (densification room).
    settings: the recipe; defaults to 3DGS's with densification scaled to `num_steps`.
    seed: view order and the step's randomness.
  """
  images_vhw3 = np.asarray(images_vhw3)
  if images_vhw3.dtype == np.uint8:
    images_vhw3 = images_vhw3.astype(np.float32) / 255.0
  num_views = images_vhw3.shape[0]
  if cameras.batch_shape != (num_views,):
    raise ValueError(f"{num_views} images but cameras of batch shape {cameras.batch_shape}")
  if num_steps < 1 or batch_size < 1 or batch_size > num_views:
    raise ValueError(f"need num_steps >= 1 and 1 <= batch_size <= {num_views}; got {num_steps}, {batch_size}")
  if settings is None:
    # The start is already a surface (depth back-projection, mesh samples): the 3DGS opacity
    # reset, made for a random start and tens of thousands of steps, would only erase it in
    # a short fit, so it caps opacity at the start's own level instead of near zero.
    settings = FitSettings(
        background=(1.0, 1.0, 1.0), densify_from=max(num_steps // 10, 1), densify_until=max(num_steps * 3 // 4, 2),
        densify_every=max(num_steps // 20, 1), opacity_reset_every=10 * num_steps, opacity_reset_value=0.9,
        position_lr_max_steps=num_steps, max_sh_degree=0)
  gaussians = _padded(initial, int(initial.num * capacity_factor))
  extent = scene_extent_from_cameras(cameras)
  capacity = int(estimate_capacity_for(gaussians, cameras) * capacity_factor)
  width, height = cameras.width, cameras.height
  step = make_fit_step(settings, width=width, height=height, capacity=capacity, scene_extent=extent)
  evaluate_views = lambda g: evaluate(g, cameras, images_vhw3, background=np.asarray(settings.background, np.float32),
                                      capacity=capacity)
  initial_psnr = float(evaluate_views(gaussians)["psnr"])
  state = init_fit_state(jax.tree.map(jax.numpy.asarray, gaussians), settings)
  rng = jax.random.key(seed)
  order = np.random.default_rng(seed)
  for _ in range(num_steps):
    views = order.choice(num_views, batch_size, replace=False)
    batch = {"camera": cameras[views], "image": images_vhw3[views]}
    state, metrics = step(state, batch, rng)
  train_psnr = float(evaluate_views(state.params)["psnr"])
  log.info("background fit: %d steps, PSNR %.2f -> %.2f dB over %d views, %d Gaussians", num_steps, initial_psnr,
           train_psnr, num_views, int(np.sum(np.asarray(state.params.active))))
  return BackgroundFit(active_only(jax.device_get(state.params)), train_psnr, initial_psnr, num_steps)
