"""Small inputs shared by the viewer-source tests: Gaussians drawn in NumPy, one tiny LOD bundle,
and tiny LeRobot episode datasets."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Gaussians, random_gaussians
from jaxlab.splat.lod import BuildSettings, LocalSplatSettings, build_bundle, save_bundle

DEMO_CAMERAS = {"front": (6, 8), "wrist": (6, 8)}
DEMO_FPS = 15
STATE_NAMES = [f"joint{i}" for i in range(7)] + ["gripper_width"]
ACTION_NAMES = [f"joint{i}_target" for i in range(7)] + ["gripper_command"]


def make_gaussians(num: int, *, seed: int = 0, sh_degree: int = 1, capacity: int | None = None,
                   center=(0.0, 0.0, 0.0)) -> Gaussians:
  """`num` active Gaussians around `center` (drawn in NumPy: nothing to compile), padded to `capacity`."""
  rng = np.random.default_rng(seed)
  quats = rng.standard_normal((num, 4))
  gaussians = Gaussians(
      means=jnp.asarray(np.asarray(center) + 0.5 * rng.standard_normal((num, 3)), jnp.float32),
      log_scales=jnp.asarray(-2.5 + 0.2 * rng.standard_normal((num, 3)), jnp.float32),
      quats=jnp.asarray(quats / np.linalg.norm(quats, axis=1, keepdims=True), jnp.float32),
      opacity_logits=jnp.asarray(rng.standard_normal(num), jnp.float32),
      sh=jnp.asarray(0.3 * rng.standard_normal((num, (sh_degree + 1) ** 2, 3)), jnp.float32),
      active=jnp.ones((num,), bool),
  )
  return gaussians if capacity is None else gaussians.pad_to(capacity)


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory):
  """A 200-Gaussian bundle (clusters of <= 32, four levels) built without local splatting."""
  import jax  # pylint: disable=g-import-not-at-top

  gaussians = random_gaussians(jax.random.key(3), 200, sh_degree=0, mean_center=(0.0, 0.0, 0.0), mean_std=1.0,
                               log_scale_mean=-2.5)
  bundle, _ = build_bundle(gaussians, BuildSettings(max_cluster_size=32, local_splat=LocalSplatSettings(iterations=0)))
  path = tmp_path_factory.mktemp("bundle") / "asset.npz"
  save_bundle(path, bundle)
  return path


def write_demos(root, lengths=(4, 3), *, seed=0, tasks=("pick the cube", "stack the mug")):
  """A LeRobot dataset at `root` with one episode per length; returns the images written, [episode][camera] -> uint8 [T, H, W, 3]."""
  from jaxlab.robosplat.episodes import EpisodeWriter  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  written = []
  with EpisodeWriter(root, fps=DEMO_FPS, robot_type="panda", cameras=DEMO_CAMERAS, state_names=STATE_NAMES,
                     action_names=ACTION_NAMES) as writer:
    for e, length in enumerate(lengths):
      images = {camera: rng.integers(0, 256, (length, h, w, 3), dtype=np.uint8) for camera, (h, w) in DEMO_CAMERAS.items()}
      state = rng.normal(size=(length, 8)).astype(np.float32)
      writer.add_episode(images, state, state, task=tasks[e % len(tasks)])
      written.append(images)
  return written
