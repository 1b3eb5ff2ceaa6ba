"""Rigid-part Gaussians coloured from masked views; the background fit; composing a frame."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.robosplat.assets import color_from_views, sample_spacing, surface_gaussians
from jaxlab.robosplat.background import fit_background
from jaxlab.robosplat.scene import TabletopAssets, compose_frame, num_gaussians, stack_links
from jaxlab.splat import Camera, look_at, render, sh_dc_to_rgb, stack_cameras


def _camera(eye, size=16):
  pose = look_at(jnp.asarray(eye, jnp.float32), jnp.zeros(3), up_3=jnp.asarray([0.0, 0.0, 1.0]))
  return Camera.from_fov(pose, fov_x_radians=0.8, width=size, height=size)


def test_colour_comes_from_the_views_that_see_the_point_through_the_mask():
  cameras = stack_cameras([_camera([2.0, 0.1, 0.5]), _camera([-2.0, 0.1, 0.5])])
  points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
  rgb = np.stack([np.full((16, 16, 3), 200, np.uint8), np.full((16, 16, 3), 100, np.uint8)])
  depth = np.stack([np.full((16, 16), np.linalg.norm([2.0, 0.1, 0.5])), np.full((16, 16), 9.0)])
  mask = np.ones((2, 16, 16), bool)
  colored = color_from_views(points, cameras, rgb, depth, mask, fallback_rgb_p3=np.full((3, 3), 0.25))
  # View 0 sees the origin (depth agrees); view 1's depth says something is in front: occluded.
  np.testing.assert_allclose(colored.colors_p3[0], 200 / 255, atol=1e-6)
  assert colored.views_seen_p.tolist()[:2] == [1, 1]
  # A point outside both views keeps the fallback and counts as unseen.
  assert colored.views_seen_p[2] == 0 and np.allclose(colored.colors_p3[2], 0.25)
  outside = mask.copy()
  outside[0] = False
  masked = color_from_views(points, cameras, rgb, depth, outside, fallback_rgb_p3=np.full((3, 3), 0.25))
  assert masked.views_seen_p[0] == 0  # outside the part's mask in the only view that sees it
  with pytest.raises(ValueError, match="mask is empty"):
    color_from_views(points, cameras, rgb, depth, np.zeros_like(mask))


def test_surface_discs_lie_flat_on_the_surface():
  rng = np.random.default_rng(0)
  points = np.concatenate([rng.uniform(-1, 1, (50, 2)), np.zeros((50, 1))], 1)
  normals = np.tile([0.0, 0.0, 1.0], (50, 1))
  g = surface_gaussians(points, normals, np.full((50, 3), 0.3), spacing=sample_spacing(4.0, 50))
  scales = np.exp(np.asarray(g.log_scales))
  assert np.all(scales[:, 2] < scales[:, 0])  # thin along the normal (local z)
  np.testing.assert_allclose(np.asarray(sh_dc_to_rgb(g.sh[:, 0])), 0.3, atol=1e-5)
  with pytest.raises(ValueError, match="no points"):
    surface_gaussians(points[:0], normals[:0], points[:0], spacing=0.1)


def test_background_fit_improves_on_its_start():
  rng = np.random.default_rng(1)
  points = np.concatenate([rng.uniform(-1, 1, (300, 2)), np.zeros((300, 1))], 1)
  truth = surface_gaussians(points, np.tile([0, 0, 1.0], (300, 1)),
                            np.where(points[:, :1] > 0, [0.9, 0.2, 0.1], [0.1, 0.3, 0.8]), spacing=0.12)
  cameras = stack_cameras([_camera([2.5 * np.cos(a), 2.5 * np.sin(a), 1.5], 24) for a in np.linspace(0, 6, 6)])
  white = jnp.ones(3)
  images = np.stack([np.asarray(render(truth, cameras[i], background=white).rgb) for i in range(6)])
  start = truth.replace(sh=truth.sh - 0.3)  # right geometry, colours too dark
  fit = fit_background(start, cameras, images, num_steps=60, batch_size=3)
  assert fit.train_psnr > fit.initial_psnr + 1, (fit.initial_psnr, fit.train_psnr)


def test_compose_frame_moves_each_link_by_its_pose():
  one = surface_gaussians(np.zeros((1, 3)), np.array([[0, 0, 1.0]]), np.ones((1, 3)), spacing=0.1)
  two = surface_gaussians(np.zeros((2, 3)), np.tile([0, 0, 1.0], (2, 1)), np.ones((2, 3)), spacing=0.1)
  links = stack_links([one, two])
  assert links.means.shape == (2, 2, 3) and not bool(links.active[0, 1])  # padding is inactive
  poses = jnp.tile(jnp.eye(4), (3, 1, 1)).at[:, :3, 3].set(jnp.arange(9.0).reshape(3, 3))
  assets = TabletopAssets(background=one, links_lm=links, link_ids=jnp.asarray([2, 0]), table_top=jnp.ones(1, bool),
                          object=one)
  frame = compose_frame(assets, poses, jnp.eye(4).at[:3, 3].set(jnp.asarray([0.0, 0.0, 5.0])))
  assert frame.num == num_gaussians(assets) == 1 + 4 + 1
  np.testing.assert_allclose(np.asarray(frame.means[1]), [6, 7, 8])  # link row 0 is FK link 2
  np.testing.assert_allclose(np.asarray(frame.means[3]), [0, 1, 2])
  np.testing.assert_allclose(np.asarray(frame.means[-1]), [0, 0, 5])
  jax.jit(compose_frame)(assets, poses, jnp.eye(4))  # jittable
