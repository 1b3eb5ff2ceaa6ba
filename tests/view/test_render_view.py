"""Browser camera -> jaxlab camera -> frame: the conversions and the capacity growth."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxlab.splat import look_at, render
from jaxlab.splat.project import project
from jaxlab.view import render_view
from jaxlab.view.capacity import grown_capacity
from jaxlab.view.render_view import GaussianFrames, ViewRequest, camera_for, camera_to_world, depth_to_rgb, to_display, view_size
from tests.view.conftest import make_gaussians


def test_camera_to_world_matches_scipy_for_random_quaternions():
  rng = np.random.default_rng(0)
  for _ in range(5):
    wxyz = rng.standard_normal(4)
    position = rng.standard_normal(3)
    c2w = camera_to_world(wxyz, position)
    xyzw = np.roll(wxyz / np.linalg.norm(wxyz), -1)
    np.testing.assert_allclose(c2w[:3, :3], Rotation.from_quat(xyzw).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 3], position)
    np.testing.assert_array_equal(c2w[3], [0, 0, 0, 1])


@pytest.mark.parametrize("aspect, side, want", [(4 / 3, 320, (320, 240)), (0.5, 200, (96, 200)), (16 / 9, 100, (96, 56)),
                                                (1.0, 8, (8, 8)), (100.0, 64, (64, 8))])
def test_view_size_keeps_the_aspect_in_multiples_of_eight(aspect, side, want):
  assert view_size(aspect, side) == want


@pytest.mark.parametrize("aspect, side", [(0.0, 64), (math.inf, 64), (1.0, 4)])
def test_view_size_refuses_bad_values(aspect, side):
  with pytest.raises(ValueError):
    view_size(aspect, side)


def test_camera_for_puts_the_look_at_point_at_the_image_centre_with_the_asked_fov():
  c2w = np.asarray(look_at(np.array([1.0, -3.0, 2.0]), np.array([0.2, 0.1, 0.3]), up_3=np.array([0.0, 0.0, 1.0])), np.float64)
  request = ViewRequest(c2w, fov_y=math.radians(60), width=96, height=64)
  camera = camera_for(request)
  # A point ahead of the camera projects onto the centre; one at the top edge of the fov onto row 0.
  ahead = c2w[:3, 3] + 2.0 * c2w[:3, 2]
  top = c2w[:3, 3] + 2.0 * (c2w[:3, 2] - math.tan(math.radians(30)) * c2w[:3, 1])
  points = jnp.asarray(np.stack([ahead, top]), jnp.float32)
  gaussians = make_gaussians(2, sh_degree=0).replace(means=points)
  means2d = np.asarray(project(gaussians, camera).means2d)
  np.testing.assert_allclose(means2d[0], [48.0, 32.0], atol=1e-3)
  np.testing.assert_allclose(means2d[1], [48.0, 0.0], atol=1e-3)


def test_render_modes():
  rgb = np.full((2, 3, 3), 0.5, np.float32)
  alpha = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.5]], np.float32)
  depth = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], np.float32)
  assert (to_display(rgb, alpha, depth, "RGB") == 128).all()
  np.testing.assert_array_equal(to_display(rgb, alpha, depth, "Alpha")[..., 0], (alpha * 255 + 0.5).astype(np.uint8))
  colours = depth_to_rgb(depth, alpha)
  assert (colours[0, 0] == 0).all()  # nothing hit
  assert colours[0, 1, 2] > colours[0, 1, 0] and colours[1, 2, 0] > colours[1, 2, 2]  # near blue, far red
  with pytest.raises(ValueError, match="render mode 'Normals'"):
    to_display(rgb, alpha, depth, "Normals")


def test_frames_match_render_and_sh_degree_zeroes_the_higher_bands():
  gaussians = make_gaussians(40, seed=2, sh_degree=2)
  c2w = np.asarray(look_at(np.array([0.0, -3.0, 0.5]), np.zeros(3), up_3=np.array([0.0, 0.0, 1.0])), np.float64)
  request = ViewRequest(c2w, fov_y=0.9, width=32, height=24)
  frames = GaussianFrames(gaussians)
  want = render(gaussians, camera_for(request), background=jnp.zeros(3)).rgb
  first = frames.draw(request)
  np.testing.assert_array_equal(first.image_hw3, to_display(np.asarray(want), None, None, "RGB"))
  assert first.compiled and not frames.draw(request).compiled
  dc_only = gaussians.replace(sh=gaussians.sh.at[:, 1:].set(0.0))
  want_dc = render(dc_only, camera_for(request), background=jnp.zeros(3)).rgb
  got_dc = frames.draw(ViewRequest(c2w, fov_y=0.9, width=32, height=24, sh_degree=0)).image_hw3
  np.testing.assert_array_equal(got_dc, to_display(np.asarray(want_dc), None, None, "RGB"))
  assert not np.array_equal(got_dc, frames.draw(request).image_hw3)


def test_an_overflowing_view_raises_the_capacity_and_draws_everything(caplog):
  gaussians = make_gaussians(60, seed=4, sh_degree=0)
  c2w = np.asarray(look_at(np.array([0.0, -2.5, 0.0]), np.zeros(3), up_3=np.array([0.0, 0.0, 1.0])), np.float64)
  request = ViewRequest(c2w, fov_y=1.0, width=48, height=48)
  frames = GaussianFrames(gaussians)
  frames._capacity = 8  # far too small for this view
  with caplog.at_level("INFO", logger=render_view.__name__):
    frame = frames.draw(request)
  assert frame.num_intersections > 8
  assert frames._capacity == grown_capacity(8, frame.num_intersections) >= frame.num_intersections
  assert "intersection capacity raised" in caplog.text
  want = render(gaussians, camera_for(request), background=jnp.zeros(3)).rgb
  np.testing.assert_array_equal(frame.image_hw3, to_display(np.asarray(want), None, None, "RGB"))
  assert frames.implementation() in ("xla", "pallas_triton")

