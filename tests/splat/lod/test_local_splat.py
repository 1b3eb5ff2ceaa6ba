"""Local splatting lowers the group's loss on views it never trained on, batched or not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat.lod import LocalSplatSettings, local_splat
from jaxlab.splat.lod.assets import donut_gaussians
from jaxlab.splat.lod.build import _padded_gaussians, asset_fields
from jaxlab.splat.lod.halve import LOG_SCALE_GROWTH, halve_indices
from jaxlab.splat.lod.local_splat import orbit_camera, view_loss

SETTINGS = LocalSplatSettings(iterations=60, image_size=32, focal=44.4, lr_means=1e-3)


def _group(seed):
  fields = asset_fields(donut_gaussians(400, seed=seed))
  kept = {k: v[halve_indices(fields["means"], fields["log_scales"], fields["opacity_logits"])] for k, v in fields.items()}
  kept["log_scales"] = kept["log_scales"] + np.float32(LOG_SCALE_GROWTH)
  return fields, kept


def test_fine_tuning_lowers_the_loss_on_held_out_views():
  groups = [_group(0), _group(1)]
  originals = _padded_gaussians([g[0] for g in groups], 416)
  simplified = _padded_gaussians([g[1] for g in groups], 216)
  centers = jnp.zeros((2, 3))
  radii = jnp.full((2,), 4.0 * 1.42)
  fitted, losses, overflow = local_splat(originals, simplified, centers, radii, jax.random.key(0), settings=SETTINGS)
  assert losses.shape == (2, SETTINGS.iterations) and not bool(overflow.any())
  held_out = jax.random.key(123)
  for b in range(2):
    take = lambda g: jax.tree.map(lambda x: x[b], g)
    before = float(view_loss(take(originals), take(simplified), centers[b], radii[b], held_out, SETTINGS, num_views=6))
    after = float(view_loss(take(originals), take(fitted), centers[b], radii[b], held_out, SETTINGS, num_views=6))
    assert after < 0.9 * before, (b, before, after)
  # Padding slots stay where they were: they have no gradient.
  np.testing.assert_array_equal(np.asarray(fitted.means[:, 210:]), np.asarray(simplified.means[:, 210:]))


def test_pseudo_cameras_sit_on_the_sphere_looking_at_the_centre():
  center = jnp.array([1.0, -2.0, 0.5])
  for seed in range(5):
    camera = orbit_camera(center, jnp.asarray(3.0), jax.random.key(seed), SETTINGS)
    w2c = np.asarray(camera.world_to_camera, np.float64)
    eye = -w2c[:3, :3].T @ w2c[:3, 3]
    assert abs(np.linalg.norm(eye - np.asarray(center)) - 3.0) < 1e-4
    in_camera = w2c[:3, :3] @ np.asarray(center) + w2c[:3, 3]
    np.testing.assert_allclose(in_camera, [0.0, 0.0, 3.0], atol=1e-4)


def test_settings_refuse_bad_values():
  with pytest.raises(ValueError, match="iterations"):
    LocalSplatSettings(iterations=-1)
  with pytest.raises(ValueError, match="focal"):
    LocalSplatSettings(focal=0.0)
