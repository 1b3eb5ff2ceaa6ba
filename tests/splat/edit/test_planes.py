"""Textured planes: grid geometry, colours from the image, tilt, photos, plane replacement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import random_gaussians, rotation_matrices, sh_dc_to_rgb
from jaxlab.splat.edit import PHOTO_TEXTURE_NAMES, photo_textures, replace_planes, textured_plane


def _red_blue(height=16, width=32) -> np.ndarray:
  image = np.zeros((height, width, 3), np.uint8)
  image[:, : width // 2, 0] = 255
  image[:, width // 2:, 2] = 255
  return image


def _plane(image, **kw):
  args = dict(origin_3=(0.1, -0.2, 0.0), u_axis_3=(1.0, 0.0, 0.0), v_axis_3=(0.0, 2.0, 0.0), size_uv=(0.8, 0.4),
              points_uv=(8, 4))
  return textured_plane(image, **{**args, **kw})


def test_grid_geometry_and_flat_gaussians():
  g = _plane(_red_blue(), opacity=0.9)
  assert g.num == 32 and bool(g.active.all()) and g.sh.shape == (32, 1, 3)
  means = np.asarray(g.means).reshape(4, 8, 3)  # row j (along v), column i (along u)
  np.testing.assert_allclose(means[0, 0], [0.15, -0.15, 0.0], atol=1e-6)  # cell centre
  np.testing.assert_allclose(means[3, 7], [0.85, 0.15, 0.0], atol=1e-6)
  np.testing.assert_allclose(means[..., 2], 0.0, atol=1e-7)
  sigmas = np.exp(np.asarray(g.log_scales))
  np.testing.assert_allclose(sigmas[:, :2], np.broadcast_to([0.05, 0.05], (32, 2)), rtol=1e-5)  # half the spacing
  assert np.all(sigmas[:, 2] < 0.01)  # thin along the normal
  # Local axes: x -> u, y -> v, z -> normal (+z here).
  np.testing.assert_allclose(rotation_matrices(g.quats), np.broadcast_to(np.eye(3), (32, 3, 3)), atol=1e-6)
  np.testing.assert_allclose(jax.nn.sigmoid(g.opacity_logits), 0.9, atol=1e-6)
  assert _plane(_red_blue(), sh_degree=3).sh.shape == (32, 16, 3)


def test_colours_follow_the_image():
  g = _plane(_red_blue())
  rgb = np.asarray(sh_dc_to_rgb(g.sh[:, 0])).reshape(4, 8, 3)
  assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
  left, right = rgb[:, :4], rgb[:, 4:]
  assert np.all(left[..., 0] > 0.8) and np.all(left[..., 2] < 0.2)
  assert np.all(right[..., 2] > 0.8) and np.all(right[..., 0] < 0.2)
  # Float images in [0, 1] give the same colours as uint8 ones.
  np.testing.assert_allclose(_plane(_red_blue().astype(np.float32) / 255).sh, g.sh, atol=1e-5)
  # Rows follow v: a top-red, bottom-blue image gives red Gaussians at small v.
  rows = sh_dc_to_rgb(_plane(np.transpose(_red_blue(32, 32), (1, 0, 2))).sh[:, 0]).reshape(4, 8, 3)
  assert bool(jnp.all(rows[:2, :, 0] > 0.8)) and bool(jnp.all(rows[2:, :, 2] > 0.8))


def test_tilt_and_a_vertical_wall():
  g = _plane(_red_blue(), tilt=(0.02, 0.0, -0.01))
  u = np.asarray(g.means)[:, 0] - 0.1
  np.testing.assert_allclose(np.asarray(g.means)[:, 2], 0.02 * u - 0.01, atol=1e-6)
  normals = np.asarray(rotation_matrices(g.quats))[:, :, 2]
  np.testing.assert_allclose(normals, np.broadcast_to(np.array([-0.02, 0.0, 1.0]) / np.hypot(0.02, 1.0), (32, 3)),
                             atol=1e-6)
  wall = textured_plane(_red_blue(), origin_3=(0.0, 0.0, 1.0), u_axis_3=(0.0, 1.0, 0.0), v_axis_3=(0.0, 0.0, -1.0),
                        size_uv=(1.0, 1.0), points_uv=(5, 5))
  np.testing.assert_allclose(np.asarray(wall.means)[:, 0], 0.0, atol=1e-7)
  assert float(wall.means[:, 2].max()) < 1.0 and float(wall.means[:, 2].min()) > 0.0  # hangs down from z = 1


def test_bad_plane_arguments():
  with pytest.raises(ValueError, match="parallel"):
    _plane(_red_blue(), v_axis_3=(2.0, 0.0, 0.0))
  with pytest.raises(ValueError, match="points_uv"):
    _plane(_red_blue(), points_uv=(0, 3))
  with pytest.raises(ValueError, match="image_hw3"):
    _plane(np.zeros((4, 4)))
  with pytest.raises(ValueError, match="opacity"):
    _plane(_red_blue(), opacity=1.0)


def test_photo_textures_are_real_rgb_photos():
  pytest.importorskip("skimage")
  photos = photo_textures(["coffee", "camera"])
  assert list(photos) == ["coffee", "camera"]
  for image in photos.values():
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 256
    assert image.std() > 20  # not flat
  assert np.array_equal(photos["camera"][..., 0], photos["camera"][..., 2])  # greyscale repeated
  assert len(PHOTO_TEXTURE_NAMES) >= 10 and len(set(PHOTO_TEXTURE_NAMES)) == len(PHOTO_TEXTURE_NAMES)
  with pytest.raises(ValueError, match="unknown"):
    photo_textures(["no_such_photo"])


def test_replace_planes():
  scene = random_gaussians(jax.random.key(0), 10, sh_degree=1)
  remove = jnp.arange(10) >= 6
  out = replace_planes(scene, remove, [_plane(_red_blue()), _plane(_red_blue(), points_uv=(2, 2))])
  assert out.num == 10 + 32 + 4 and out.sh.shape[1] == 4
  np.testing.assert_array_equal(out.active[:10], ~remove)
  assert bool(out.active[10:].all())
  np.testing.assert_array_equal(out.means[:10], scene.means)
