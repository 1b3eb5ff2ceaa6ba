"""Tests for the Plücker ray maps (`jaxlab.video.plucker`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.video.plucker import plucker_rays

H, W = 7, 9  # odd: pixel (3, 4) has its centre exactly at the principal point


def _rotation(rng):
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  return q * np.sign(np.linalg.det(q))


def _cameras(rng, num_frames=3):
  c2w = np.tile(np.eye(4), (num_frames, 1, 1))
  for f in range(num_frames):
    c2w[f, :3, :3] = _rotation(rng)
    c2w[f, :3, 3] = rng.normal(size=3) * 2
  k = np.array([[8.0, 0.0, W / 2], [0.0, 7.0, H / 2], [0.0, 0.0, 1.0]])
  return np.repeat(k[None], num_frames, axis=0), c2w


def test_directions_are_unit_and_the_centre_ray_is_the_optical_axis():
  k, c2w = _cameras(np.random.default_rng(0))
  rays = plucker_rays(k, c2w, H, W, relative=False)
  assert rays.shape == (3, H, W, 6) and rays.dtype == np.float32
  moment, d = rays[..., :3], rays[..., 3:]
  np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-6)
  np.testing.assert_allclose(d[:, H // 2, W // 2], c2w[:, :3, 2], atol=1e-6)
  np.testing.assert_allclose((moment * d).sum(axis=-1), 0.0, atol=1e-5)
  # The moment is o x d for the camera centre o: every point o + s d of the ray has the same moment.
  np.testing.assert_allclose(moment, np.cross((c2w[:, :3, 3] + 2.5 * d.transpose(1, 2, 0, 3)).transpose(2, 0, 1, 3), d),
                             atol=1e-5)
  # A pixel right of the centre looks along the camera's +x as well.
  assert (np.einsum("fc,fc->f", d[:, H // 2, W - 1], c2w[:, :3, 0]) > 0.3).all()


def test_relative_map_ignores_a_rigid_motion_of_the_world():
  rng = np.random.default_rng(1)
  k, c2w = _cameras(rng)
  rays = plucker_rays(k, c2w, H, W)
  # Frame 0 is the reference: its moment is zero and its directions are camera-space directions.
  np.testing.assert_allclose(rays[0, ..., :3], 0.0, atol=1e-6)
  np.testing.assert_allclose(rays[0, H // 2, W // 2, 3:], [0.0, 0.0, 1.0], atol=1e-6)
  world = np.eye(4)
  world[:3, :3], world[:3, 3] = _rotation(rng), rng.normal(size=3) * 5
  np.testing.assert_allclose(plucker_rays(k, world @ c2w, H, W), rays, atol=1e-5)
  assert not np.allclose(plucker_rays(k, world @ c2w, H, W, relative=False),
                         plucker_rays(k, c2w, H, W, relative=False), atol=1e-2)


def test_a_translated_camera_changes_only_the_moment():
  k, c2w = _cameras(np.random.default_rng(2))
  moved = c2w.copy()
  moved[:, :3, 3] += [0.5, -1.0, 2.0]
  a, b = plucker_rays(k, c2w, H, W, relative=False), plucker_rays(k, moved, H, W, relative=False)
  np.testing.assert_allclose(a[..., 3:], b[..., 3:], atol=1e-6)
  assert np.abs(a[..., :3] - b[..., :3]).min(axis=-1).max() > 0.1


def test_jax_arrays_give_the_numpy_result_under_jit():
  k, c2w = _cameras(np.random.default_rng(3))
  expected = plucker_rays(k, c2w, H, W)
  got = jax.jit(lambda k, c: plucker_rays(k, c, H, W))(jnp.asarray(k, jnp.float32), jnp.asarray(c2w, jnp.float32))
  assert isinstance(got, jax.Array) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)
  np.testing.assert_allclose(plucker_rays(k[0], c2w, H, W), expected)  # one [3, 3] for all frames


def test_bad_shapes_raise():
  k, c2w = _cameras(np.random.default_rng(4))
  with pytest.raises(ValueError, match="cam_to_world"):
    plucker_rays(k, c2w[:, :3], H, W)
  with pytest.raises(ValueError, match="intrinsics"):
    plucker_rays(k[:2], c2w, H, W)
