"""A tiny fitting problem for the fit tests: a random "ground-truth" Gaussian scene rendered
from 4 cameras at 32x32, and an unrelated initial scene in a larger buffer."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat import Camera, Gaussians, look_at, render, stack_cameras

WIDTH = HEIGHT = 32
NUM_VIEWS = 4
# Intersection capacity of one view: the fitted scene stays well below it (checked by the
# `overflow` metric in the fit test).
CAPACITY = 1024
# Black: on white, 3DGS also resets opacity at densify_from, which 100 steps cannot undo.
BACKGROUND = (0.0, 0.0, 0.0)


def ring_cameras(num: int, *, radius: float = 4.0, phase: float = 0.0):
  """Cameras on a ring around the origin, looking at it, slightly from above."""
  cameras = []
  for i in range(num):
    angle = 2.0 * math.pi * i / num + phase
    eye = jnp.asarray([radius * math.cos(angle), 0.8, radius * math.sin(angle)])
    c2w = look_at(eye, jnp.zeros(3), up_3=jnp.asarray([0.0, 1.0, 0.0]))
    cameras.append(Camera.from_fov(c2w, fov_x_radians=math.radians(50.0), width=WIDTH, height=HEIGHT))
  return stack_cameras(cameras)


def random_scene(num: int, *, seed: int, log_scale: float, opacity_logit: float, sh_std: float, capacity: int | None = None) -> Gaussians:
  """Gaussians around the origin with SH degree 1, drawn in NumPy (no compilation)."""
  rng = np.random.default_rng(seed)
  quats = rng.standard_normal((num, 4))
  gaussians = Gaussians(
      means=jnp.asarray(0.6 * rng.standard_normal((num, 3)), jnp.float32),
      log_scales=jnp.asarray(log_scale + 0.3 * rng.standard_normal((num, 3)), jnp.float32),
      quats=jnp.asarray(quats / np.linalg.norm(quats, axis=1, keepdims=True), jnp.float32),
      opacity_logits=jnp.asarray(opacity_logit + 0.5 * rng.standard_normal(num), jnp.float32),
      sh=jnp.asarray(sh_std * rng.standard_normal((num, 4, 3)), jnp.float32),
      active=jnp.ones((num,), bool),
  )
  return gaussians if capacity is None else gaussians.pad_to(capacity)


def make_tiny_scene():
  cameras = ring_cameras(NUM_VIEWS)
  truth = random_scene(150, seed=0, log_scale=-2.3, opacity_logit=1.0, sh_std=0.4)
  background = jnp.asarray(BACKGROUND, jnp.float32)
  images = jax.jit(jax.vmap(lambda c: render(truth, c, background=background, capacity=CAPACITY).rgb))(cameras)
  images = jnp.clip(images, 0.0, 1.0)
  init = random_scene(100, seed=1, log_scale=-2.0, opacity_logit=0.0, sh_std=0.1, capacity=320)
  return {"cameras": cameras, "images": images, "truth": truth, "init": init}
