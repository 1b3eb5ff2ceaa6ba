"""Small bundles shared by the LOD tests: built once per session, without local splatting
(its own test fine-tunes), from two differently made assets."""

import jax
import pytest

from jaxlab.splat import random_gaussians
from jaxlab.splat.lod import BuildSettings, LocalSplatSettings, build_bundle
from jaxlab.splat.lod.assets import donut_gaussians

NO_SPLAT = LocalSplatSettings(iterations=0)


@pytest.fixture(scope="session")
def blob_bundle():
  """600 random Gaussians in a blob, clusters of <= 32: five levels."""
  g = random_gaussians(jax.random.key(3), 600, sh_degree=1, mean_center=(0.0, 0.0, 0.0), mean_std=1.0, log_scale_mean=-3.0)
  bundle, report = build_bundle(g, BuildSettings(max_cluster_size=32, local_splat=NO_SPLAT))
  return bundle, report


@pytest.fixture(scope="session")
def donut_bundle():
  """A 1,500-surfel donut, clusters of <= 64."""
  bundle, report = build_bundle(donut_gaussians(1500, seed=1), BuildSettings(max_cluster_size=64, local_splat=NO_SPLAT))
  return bundle, report
