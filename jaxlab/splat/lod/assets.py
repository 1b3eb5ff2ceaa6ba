"""Embedded assets for LOD builds and composed scenes: no download, any size.

`donut_gaussians`: a glazed donut (the asset V3DG's DonutSea scene repeats), as flat
Gaussians (surfels) on a torus: dough underneath, glaze on top with a wavy edge, and
sprinkles. `scene_gaussians`: the procedural scene `configs/splat_fit.py` fits
(`jaxlab.splat.synthetic`), as isotropic Gaussians on its visible surfaces.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jaxlab.splat import synthetic
from jaxlab.splat.gaussians import Gaussians, from_point_cloud
from jaxlab.splat.sh import rgb_to_sh_dc

DOUGH_RGB = (0.78, 0.55, 0.30)
GLAZE_RGB = (0.93, 0.45, 0.62)
SPRINKLE_RGBS = ((0.95, 0.95, 0.90), (0.25, 0.55, 0.95), (0.98, 0.85, 0.20), (0.35, 0.80, 0.40))


def _rotation_to_normal(normals_n3: np.ndarray) -> np.ndarray:
  """[N, 4] (w, x, y, z) quaternions turning +z onto each unit normal."""
  nx, ny, nz = normals_n3.T
  quats = np.stack([1.0 + nz, -ny, nx, np.zeros_like(nz)], axis=-1)
  flipped = nz < -1 + 1e-9  # +z onto -z: any half turn about a horizontal axis
  quats[flipped] = (0.0, 1.0, 0.0, 0.0)
  return quats / np.linalg.norm(quats, axis=-1, keepdims=True)


def donut_gaussians(num: int = 16_384, *, seed: int = 0, major_radius: float = 1.0, minor_radius: float = 0.42,
                    opacity: float = 0.95) -> Gaussians:
  """`num` surfels on a glazed torus around the z axis, radius ~1.4, SH degree 0.

  Points are uniform by area (rejection on the torus area element); each Gaussian lies in
  the tangent plane with in-plane size ~ the mean point spacing and a thin normal axis.
  """
  if isinstance(num, bool) or not isinstance(num, int) or num < 1:
    raise ValueError(f"num must be an int >= 1; got {num!r}")
  rng = np.random.default_rng(seed)
  u_list, v_list = [], []
  while sum(len(u) for u in u_list) < num:
    u = rng.uniform(0, 2 * math.pi, 2 * num)
    v = rng.uniform(0, 2 * math.pi, 2 * num)
    keep = rng.uniform(0, 1, 2 * num) < (major_radius + minor_radius * np.cos(v)) / (major_radius + minor_radius)
    u_list.append(u[keep])
    v_list.append(v[keep])
  u = np.concatenate(u_list)[:num]
  v = np.concatenate(v_list)[:num]
  normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=-1)
  ring = major_radius + minor_radius * np.cos(v)
  means = np.stack([ring * np.cos(u), ring * np.sin(u), minor_radius * np.sin(v)], axis=-1)
  # Glaze: the top side, down to a wavy edge a little below the outer and inner equators.
  edge = -0.05 + 0.12 * np.sin(7 * u) + 0.05 * np.sin(17 * u + 1.0)
  glazed = np.sin(v) > edge
  colors = np.where(glazed[:, None], GLAZE_RGB, DOUGH_RGB) * rng.uniform(0.9, 1.05, (num, 1))
  sprinkle = glazed & (rng.uniform(0, 1, num) < 0.06)
  colors[sprinkle] = np.asarray(SPRINKLE_RGBS)[rng.integers(0, len(SPRINKLE_RGBS), int(sprinkle.sum()))]
  area = 4 * math.pi**2 * major_radius * minor_radius
  spacing = math.sqrt(area / num)
  log_scales = np.log(np.stack([np.full(num, spacing * 0.8), np.full(num, spacing * 0.8), np.full(num, spacing * 0.1)], -1))
  logit = math.log(opacity / (1 - opacity))
  return Gaussians(
      means=jnp.asarray(means, jnp.float32), log_scales=jnp.asarray(log_scales, jnp.float32),
      quats=jnp.asarray(_rotation_to_normal(normals), jnp.float32), opacity_logits=jnp.full((num,), logit, jnp.float32),
      sh=jnp.asarray(rgb_to_sh_dc(np.clip(colors, 0, 1)), jnp.float32)[:, None, :], active=jnp.ones((num,), bool))


def scene_gaussians(num: int = 16_384, *, seed: int = 0, opacity: float = 0.9) -> Gaussians:
  """The procedural scene of `jaxlab.splat.synthetic` as `num` isotropic Gaussians (SH degree 0).

  Points are drawn uniformly by area on the surfaces its default cameras see, coloured as
  those cameras see them; scales come from the 3 nearest neighbours (`from_point_cloud`).
  """
  scene = synthetic.build_scene(seed)
  poses, _ = synthetic.camera_poses(synthetic.DEFAULT_SETTINGS["num_train"], 1)
  points, colors = synthetic.sample_visible_points(
      scene, synthetic.load_textures(), poses, num, np.random.default_rng([seed, 1]),
      width=synthetic.DEFAULT_SETTINGS["width"], height=synthetic.DEFAULT_SETTINGS["height"])
  return from_point_cloud(points, colors, sh_degree=0, initial_opacity=opacity)
