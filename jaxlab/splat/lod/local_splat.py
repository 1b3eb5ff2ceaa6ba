"""Local splatting: fine-tune each group's halved Gaussians to look like the originals.

For every iteration, each group draws one pseudo-camera on the sphere of radius
r = distance_factor * max ||p - c|| around its centre c (z uniform in [-r, r], azimuth
uniform), looking at c; the original and the simplified Gaussians are both rendered at
64x64 with focal 88.9 px and no 2D dilation (eps2d = 0), over black, and the simplified
ones take one Adam step (eps 1e-15, per-parameter rates) on

  0.8 * L1(rgb) + 0.2 * (1 - SSIM(rgb)) + 0.1 * mean |alpha - alpha_original|.

The count never changes (no densify or prune). Groups are batched with `jax.vmap` over
padded buffers (`active` marks the real slots); the iterations run in one `lax.scan`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from jaxlab.splat.camera import Camera
from jaxlab.splat.fit.losses import l1, ssim
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.render import render

TRAINABLE = ("means", "log_scales", "quats", "opacity_logits", "sh")


@dataclasses.dataclass(frozen=True)
class LocalSplatSettings:
  """V3DG's local-splatting defaults (`libraries/cliconfigs.py`)."""

  iterations: int = 640
  image_size: int = 64
  focal: float = 1111.11 * 64 / 800  # 88.9 px: Blender-synthetic's focal scaled to 64 px
  distance_factor: float = 4.0
  lambda_dssim: float = 0.2
  lambda_alpha: float = 0.1
  lr_means: float = 1.6e-5
  lr_log_scales: float = 5e-3
  lr_quats: float = 1e-3
  lr_opacity_logits: float = 5e-2
  lr_sh: float = 2.5e-3
  adam_eps: float = 1e-15
  # Gaussian-tile pairs reserved per Gaussian slot (16 tiles at 64x64; most Gaussians touch 1-4).
  intersections_per_gaussian: int = 4

  def __post_init__(self):
    for name in ("iterations", "image_size", "intersections_per_gaussian"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "iterations" else 1):
        raise ValueError(f"LocalSplatSettings.{name} must be an int >= {0 if name == 'iterations' else 1}; got {value!r}")
    for name in ("focal", "distance_factor", "adam_eps"):
      if not getattr(self, name) > 0:
        raise ValueError(f"LocalSplatSettings.{name} must be > 0; got {getattr(self, name)!r}")

  def learning_rates(self) -> dict[str, float]:
    return {"means": self.lr_means, "log_scales": self.lr_log_scales, "quats": self.lr_quats,
            "opacity_logits": self.lr_opacity_logits, "sh": self.lr_sh}


def orbit_camera(center_3: jax.Array, radius: jax.Array, rng: jax.Array, settings: LocalSplatSettings) -> Camera:
  """A camera on the sphere (center, radius), uniform by area, looking at the centre (traceable)."""
  z_rng, azimuth_rng = jax.random.split(rng)
  z = jax.random.uniform(z_rng, (), minval=-1.0, maxval=1.0) * radius
  azimuth = jax.random.uniform(azimuth_rng, (), maxval=2 * jnp.pi)
  ring = jnp.sqrt(jnp.maximum(radius * radius - z * z, 0.0))
  eye_3 = center_3 + jnp.stack([ring * jnp.cos(azimuth), ring * jnp.sin(azimuth), z])
  forward = (center_3 - eye_3) / radius
  # World z is "up" unless the camera sits at a pole, where x takes over.
  up = jnp.where(jnp.abs(forward[2]) > 0.99, jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0]))
  right = jnp.cross(forward, up)
  right = right / jnp.linalg.norm(right)
  down = jnp.cross(forward, right)
  world_to_camera_rot_33 = jnp.stack([right, down, forward])  # rows: camera axes in world coordinates
  world_to_camera_44 = jnp.eye(4).at[:3, :3].set(world_to_camera_rot_33).at[:3, 3].set(-world_to_camera_rot_33 @ eye_3)
  half = settings.image_size / 2
  as_scalar = lambda v: jnp.asarray(v, jnp.float32)
  return Camera(fx=as_scalar(settings.focal), fy=as_scalar(settings.focal), cx=as_scalar(half), cy=as_scalar(half),
                world_to_camera=world_to_camera_44, near=as_scalar(1e-3 * radius), far=as_scalar(1e10),
                width=settings.image_size, height=settings.image_size)


def _view_loss(params, simplified: Gaussians, target_rgb, target_alpha, camera, settings, capacity):
  out = render(simplified.replace(**params), camera, capacity=capacity, eps2d=0.0, on_overflow="ignore")
  loss = ((1 - settings.lambda_dssim) * l1(out.rgb, target_rgb)
          + settings.lambda_dssim * (1 - ssim(out.rgb, target_rgb))
          + settings.lambda_alpha * jnp.mean(jnp.abs(out.alpha - target_alpha)))
  return loss, out.overflow


def _fit_one_group(originals: Gaussians, simplified: Gaussians, center_3, camera_radius, rng, settings: LocalSplatSettings):
  """Returns (fitted Gaussians, [iterations] losses, [iterations] overflow flags) for one group."""
  capacity_original = settings.intersections_per_gaussian * originals.num
  capacity_simplified = settings.intersections_per_gaussian * simplified.num
  rates = settings.learning_rates()
  adam = optax.scale_by_adam(eps=settings.adam_eps)
  params = {k: getattr(simplified, k) for k in TRAINABLE}
  grad_fn = jax.value_and_grad(_view_loss, has_aux=True)

  def step(carry, step_rng):
    params, adam_state = carry
    camera = orbit_camera(center_3, camera_radius, step_rng, settings)
    target = render(originals, camera, capacity=capacity_original, eps2d=0.0, on_overflow="ignore")
    (loss, overflow), grads = grad_fn(params, simplified, jax.lax.stop_gradient(target.rgb),
                                      jax.lax.stop_gradient(target.alpha), camera, settings, capacity_simplified)
    updates, adam_state = adam.update(grads, adam_state)
    params = {k: params[k] - rates[k] * updates[k] for k in TRAINABLE}
    return (params, adam_state), (loss, overflow | target.overflow)

  rngs = jax.random.split(rng, settings.iterations)
  (params, _), (losses, overflows) = jax.lax.scan(step, (params, adam.init(params)), rngs)
  return simplified.replace(**params), losses, overflows


@functools.partial(jax.jit, static_argnames=("settings",))
def local_splat(originals: Gaussians, simplified: Gaussians, centers_b3: jax.Array, camera_radii_b: jax.Array,
                rng: jax.Array, settings: LocalSplatSettings) -> tuple[Gaussians, jax.Array, jax.Array]:
  """Fine-tunes B groups at once.

  Args:
    originals: [B, P_o] padded Gaussians of each group before halving (the target).
    simplified: [B, P_s] padded halved Gaussians, SH degree 0.
    centers_b3: [B, 3] group centres c.
    camera_radii_b: [B] pseudo-camera distances (distance_factor * max ||p - c||).
    rng: one key; group b uses fold_in(rng, b).
    settings: the recipe (static).

  Returns:
    (fitted [B, P_s] Gaussians, losses [B, iterations], overflow [B, iterations] bool: a
    render that ran out of intersection capacity, which the caller must report).
  """
  rngs = jax.vmap(lambda b: jax.random.fold_in(rng, b))(jnp.arange(centers_b3.shape[0]))
  fit = functools.partial(_fit_one_group, settings=settings)
  if centers_b3.shape[0] == 1:
    # One group: run it unbatched. XLA:CPU runs the batched rasterizer gradient ~4x slower
    # (docs/PERFORMANCE.md, fit step), and a batch of one gains nothing from vmap.
    squeeze = lambda x: x[0]
    out = fit(*jax.tree.map(squeeze, (originals, simplified, centers_b3, camera_radii_b, rngs)))
    return jax.tree.map(lambda x: x[None], out)
  return jax.vmap(fit)(originals, simplified, centers_b3, camera_radii_b, rngs)


@functools.partial(jax.jit, static_argnames=("settings", "num_views"))
def view_loss(originals: Gaussians, simplified: Gaussians, center_3: jax.Array, camera_radius: jax.Array, rng: jax.Array,
              settings: LocalSplatSettings, num_views: int = 8) -> jax.Array:
  """Mean local-splatting loss of one group over `num_views` pseudo-cameras drawn from `rng`.

  With a fixed `rng` this scores a group before and after `local_splat` on the same views.
  """
  capacity_original = settings.intersections_per_gaussian * originals.num
  capacity_simplified = settings.intersections_per_gaussian * simplified.num
  params = {k: getattr(simplified, k) for k in TRAINABLE}

  def one_view(view_rng):
    camera = orbit_camera(center_3, camera_radius, view_rng, settings)
    target = render(originals, camera, capacity=capacity_original, eps2d=0.0, on_overflow="ignore")
    loss, _ = _view_loss(params, simplified, target.rgb, target.alpha, camera, settings, capacity_simplified)
    return loss

  return jnp.mean(jax.lax.map(one_view, jax.random.split(rng, num_views)))
