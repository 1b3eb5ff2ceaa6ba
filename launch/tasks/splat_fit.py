"""Fits a Gaussian scene to posed images (configs/splat_fit.py) and writes what users look at.

Outputs in the workdir, besides checkpoints and metrics: `renders/step_<N>/<view>.png`
(render | ground truth, held-out views), `turntable_step_<N>.gif`, and the scene as
`point_cloud/iteration_<N>/point_cloud.ply` (the 3DGS output layout that viewers open).
At every evaluation TensorBoard (`tb/`) also gets the image `eval/views`: render | ground
truth of the first `outputs.num_tb_views` held-out views, one row per view.

Placement: the Gaussians and optimizer state are replicated on every device and the
camera batch is sharded over the mesh's `data` axis. Each device renders its own views and
XLA all-reduces the gradients. Replication is the right default here: every view needs
every Gaussian that projects into it, a scene of a few million Gaussians (~60 floats each)
fits one device, and densification rewrites the buffer globally every few hundred steps.
"""

import logging
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from ml_collections import ConfigDict

from jaxlab.data import build_batches, make_global_batch
from jaxlab.metrics import image_grid
from jaxlab.sharding import make_mesh
from jaxlab.splat import estimate_capacity_for, from_point_cloud, render, save_ply
from jaxlab.splat.datasets import SceneData, load_dataset
from jaxlab.splat.exports import orbit_cameras, save_animation, save_side_by_side
from jaxlab.splat.fit import FitSettings, evaluate, init_fit_state, make_fit_step
from jaxlab.splat.initial_points import initial_points
from jaxlab.splat.synthetic import ensure_default_scene
from jaxlab.train import LoopResult
from launch.tasks.common import run_train_loop
from launch.validate import require_divisible

log = logging.getLogger(__name__)


def _dataset_path(d: ConfigDict) -> tuple[pathlib.Path, str]:
  if d.path:
    return pathlib.Path(d.path).expanduser(), d.format
  path = ensure_default_scene(width=d.synthetic_width, height=d.synthetic_height, num_train=d.synthetic_num_train, num_test=d.synthetic_num_test, num_points=d.synthetic_num_points)
  return path, "blender"


def _scene_extent(cameras) -> float:
  """1.1 x the largest camera distance from the cameras' mean centre (the 3DGS rule)."""
  centers = np.asarray(cameras.camera_center())
  return float(1.1 * np.max(np.linalg.norm(centers - centers.mean(axis=0), axis=1)))


def _initial_gaussians(train: SceneData, m: ConfigDict, seed: int):
  points, colors, rule = initial_points(train, m.init_num_points, seed)
  if rule != "point_cloud":
    log.info("No point cloud in the dataset: %d initial points by the %r rule (jaxlab.splat.initial_points).", len(points), rule)
  if len(points) > m.capacity:
    raise ValueError(f"model.capacity={m.capacity} is smaller than the initial point cloud ({len(points)} points); raise it")
  return from_point_cloud(points, colors, sh_degree=m.sh_degree, capacity=m.capacity, initial_opacity=m.init_opacity)


def check_config(config: ConfigDict, mesh_sizes: dict[str, int]) -> None:
  """Views per step must divide over the mesh's data axis (0: views_per_device per data shard)."""
  views = config.data.views_per_step
  if views:
    require_divisible("data.views_per_step", views, mesh_sizes["data"], f"devices of the mesh's data axis (mesh {mesh_sizes});"
                      " 0 gives data.views_per_device per device")


def views_per_step(config: ConfigDict, mesh) -> int:
  return config.data.views_per_step or config.data.views_per_device * mesh.shape["data"]


def _fit_settings(c: ConfigDict, background) -> FitSettings:
  return FitSettings(**dict(c.fit), background=tuple(background))


def run(config: ConfigDict, workdir: pathlib.Path, *, stop_requested: Callable[[], bool] = lambda: False) -> LoopResult:
  d = config.data
  path, data_format = _dataset_path(d)
  load = lambda split: load_dataset(path, format=data_format, split=split, downscale=d.downscale, background=tuple(d.background), test_every=d.test_every)
  train, test = load("train"), load("test")
  width, height = train.cameras.width, train.cameras.height
  log.info("Dataset %s (%s): %d train and %d test views of %dx%d.", path, data_format, len(train.names), len(test.names), width, height)

  extent = _scene_extent(train.cameras)
  gaussians = _initial_gaussians(train, config.model, config.seed)
  capacity = int(config.model.intersection_margin * estimate_capacity_for(gaussians, train.cameras))
  settings = _fit_settings(config, d.background)
  log.info("Scene extent %.3f; %d initial Gaussians in %d slots; %d intersection slots.", extent, int(gaussians.active.sum()), gaussians.num, capacity)

  mesh = make_mesh(dict(config.mesh))
  replicated = NamedSharding(mesh, P())
  views = NamedSharding(mesh, P("data"))
  state = jax.device_put(init_fit_state(gaussians, settings), replicated)
  train_step = make_fit_step(settings, width=width, height=height, capacity=capacity, scene_extent=extent, mesh=mesh)

  train_images = np.asarray(train.images, np.float32)
  source = [{"view": np.int32(i)} for i in range(len(train.names))]
  num_views = views_per_step(config, mesh)
  log.info("%d views per step, %d per device of the mesh's data axis.", num_views, num_views // mesh.shape["data"])
  batches = build_batches(source, global_batch_size=num_views, seed=config.seed)

  def to_device(batch):
    index = batch["view"]
    host = {"camera": jax.tree.map(lambda x: np.asarray(x)[index], train.cameras), "image": train_images[index]}
    return make_global_batch(host, views)

  test_cameras = test.cameras
  test_images = jnp.asarray(test.images, jnp.float32)
  background = jnp.asarray(d.background, jnp.float32)

  def evaluate_params(gaussians):
    return evaluate(gaussians, test_cameras, test_images, capacity=capacity, background=background)

  # One compiled render serves every view: the test cameras share one size, and so do the orbit's.
  draw = jax.jit(lambda g, camera: render(g, camera, capacity=capacity, background=background, on_overflow="warn").rgb)
  num_tb_views = min(config.outputs.num_tb_views, len(test.names))
  views_image = lambda gaussians: {"views": views_beside_truth(draw, gaussians, test, num_tb_views)}

  with jax.set_mesh(mesh):
    result = run_train_loop(
        state, config, workdir, train_step=train_step, batches=batches, to_device=to_device,
        rng=jax.random.key(config.seed), evaluate=evaluate_params, images=views_image if num_tb_views else None,
        stop_requested=stop_requested,
    )
    if jax.process_index() == 0:  # under the mesh still, so `draw` is not compiled again
      _write_outputs(workdir, result, test, draw, config.outputs)
  return result


def views_beside_truth(draw: Callable, gaussians, test: SceneData, count: int) -> np.ndarray:
  """render | ground truth of the first `count` test views, one row each.

  Args:
    draw: `(gaussians, camera) -> [H, W, 3]` render in [0, 1].
    gaussians: the scene.
    test: held-out views (cameras of one size, images [V, H, W, 3] in [0, 1]).
    count: views shown, at most len(test.names).

  Returns:
    float32 [count * (H + 2) - 2, 2 * W + 2, 3] in [0, 1], white gaps.
  """
  tiles = []
  for i in range(count):
    tiles += [np.asarray(draw(gaussians, test.cameras[i]), np.float32), np.asarray(test.images[i], np.float32)]
  return image_grid(np.stack(tiles), columns=2)


def _write_outputs(workdir: pathlib.Path, result: LoopResult, test: SceneData, draw: Callable, o: ConfigDict) -> None:
  """Test renders beside ground truth, a turntable GIF and the PLY, once per final step."""
  gaussians = result.state.params
  tag = f"step_{result.final_step}"
  for i in range(min(o.num_test_renders, len(test.names))):
    name = pathlib.Path(test.names[i]).stem
    save_side_by_side(workdir / "renders" / tag / f"{name}.png", draw(gaussians, test.cameras[i]), test.images[i])
  centers = np.asarray(test.cameras.camera_center())
  up = -np.asarray(test.cameras.world_to_camera)[:, 1, :3].mean(axis=0)  # mean camera "up" (OpenCV y is down)
  target = np.asarray(gaussians.means)[np.asarray(gaussians.active)].mean(axis=0)
  radius = float(np.median(np.linalg.norm(centers - target, axis=1)))
  orbit = orbit_cameras(test.cameras[0], center_3=target, radius=radius * 0.9, height=radius * 0.35, num_frames=o.turntable_frames, up_3=up)
  frames = [draw(gaussians, orbit[i]) for i in range(o.turntable_frames)]
  save_animation(workdir / f"turntable_{tag}.gif", frames, fps=o.turntable_fps)
  ply_path = workdir / "point_cloud" / f"iteration_{result.final_step}" / "point_cloud.ply"
  if not ply_path.exists():  # a rerun of a finished run keeps the file it wrote
    ply_path.parent.mkdir(parents=True, exist_ok=True)
    save_ply(ply_path, jax.device_get(gaussians))
  log.info("Wrote renders, turntable and %s.", ply_path)
