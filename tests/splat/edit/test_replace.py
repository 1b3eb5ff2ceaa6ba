"""Object replacement: the asset rests on the support plane under the old grasp point."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import random_gaussians
from jaxlab.splat.edit import lowest_point_z, replace_object


@pytest.fixture(scope="module")
def parts():
  scene = random_gaussians(jax.random.key(0), 40, sh_degree=1, mean_center=(0.0, 0.0, 0.0), mean_std=0.3)
  asset = random_gaussians(jax.random.key(1), 12, sh_degree=3, mean_center=(5.0, 5.0, 2.0), mean_std=0.05,
                           log_scale_mean=-4.0)
  return scene, asset


def test_asset_rests_on_the_support_under_the_grasp(parts):
  scene, asset = parts
  mask = jnp.arange(40) < 15
  grasp, new_grasp = jnp.array([0.2, -0.1, 0.08]), jnp.array([5.0, 5.1, 2.3])
  out, pose = replace_object(scene, mask, asset, support_z=0.01, grasp_point_3=grasp, new_grasp_point_3=new_grasp)
  assert out.num == 52 and out.sh.shape == (52, 16, 3)
  np.testing.assert_array_equal(out.active[:40], scene.active & ~mask)
  assert bool(out.active[40:].all())
  placed = out.replace(means=out.means[40:], log_scales=out.log_scales[40:], quats=out.quats[40:],
                       opacity_logits=out.opacity_logits[40:], sh=out.sh[40:], active=out.active[40:])
  np.testing.assert_allclose(lowest_point_z(placed), 0.01, atol=1e-5)
  moved_grasp = new_grasp + pose[:3, 3]
  np.testing.assert_allclose(moved_grasp[:2], grasp[:2], atol=1e-6)
  np.testing.assert_allclose(pose[:3, :3], np.eye(3))
  np.testing.assert_allclose(placed.means, asset.means + pose[:3, 3], atol=1e-6)
  np.testing.assert_array_equal(placed.sh, asset.sh)
  # The bottom is below every mean by about 2 sigma.
  assert float(placed.means[:, 2].min()) > 0.01
  sigma_z = np.sqrt(np.asarray(placed.covariances())[:, 2, 2])
  np.testing.assert_allclose(np.min(np.asarray(placed.means[:, 2]) - 2 * sigma_z), 0.01, atol=1e-5)


def test_given_bottom_and_inactive_asset_slots(parts):
  scene, asset = parts
  far_below = asset.replace(means=asset.means.at[0, 2].set(-100.0), active=asset.active.at[0].set(False))
  _, pose = replace_object(scene, jnp.arange(40) < 3, far_below, support_z=0.0, grasp_point_3=jnp.zeros(3),
                           new_grasp_point_3=jnp.zeros(3))
  assert float(pose[2, 3]) == pytest.approx(-float(lowest_point_z(far_below)), abs=1e-6)
  assert float(pose[2, 3]) < 0  # the inactive slot at z = -100 was ignored
  _, pose = replace_object(scene, jnp.arange(40) < 3, asset, support_z=0.5, grasp_point_3=jnp.zeros(3),
                           new_grasp_point_3=jnp.zeros(3), bottom_z=1.75)
  assert float(pose[2, 3]) == pytest.approx(0.5 - 1.75)


def test_errors_name_the_problem(parts):
  scene, asset = parts
  kw = dict(support_z=0.0, grasp_point_3=jnp.zeros(3), new_grasp_point_3=jnp.zeros(3))
  with pytest.raises(ValueError, match="object_mask_n is empty"):
    replace_object(scene, jnp.zeros(40, bool), asset, **kw)
  with pytest.raises(ValueError, match="object_mask_n is empty"):
    replace_object(scene.replace(active=jnp.zeros(40, bool)), jnp.ones(40, bool), asset, **kw)
  with pytest.raises(ValueError, match="object_mask_n must have shape"):
    replace_object(scene, jnp.ones(4, bool), asset, **kw)
  with pytest.raises(ValueError, match="no active Gaussian"):
    replace_object(scene, jnp.ones(40, bool), asset.replace(active=jnp.zeros(12, bool)), **kw)
  with pytest.raises(ValueError, match="grasp_point_3"):
    replace_object(scene, jnp.ones(40, bool), asset, support_z=0.0, grasp_point_3=jnp.zeros(2),
                   new_grasp_point_3=jnp.zeros(3))
