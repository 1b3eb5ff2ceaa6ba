"""The 3DGS fit step: render a batch of views, Adam, densification statistics and control.

    state = init_fit_state(from_point_cloud(points, colors, capacity=200_000), settings)
    step = make_fit_step(settings, width=W, height=H, capacity=intersections, scene_extent=extent)
    state, metrics = step(state, {"camera": cameras_b, "image": images_bhw3}, rng)

One step, for the 3DGS iteration i = state.step + 1:
  1. renders the B views one after another (`lax.map`; see `_render_views`) with the SH
     bands of the degree in use (min(max degree, i // sh_increase_every); higher bands
     multiplied by 0);
  2. loss = mean over views of (1 - l) L1 + l (1 - SSIM);
  3. Adam with per-parameter rates (`optim`); updates only reach active slots and SH bands
     in use. A non-finite loss or gradient skips the update (params and optimizer state
     untouched, `nonfinite_steps` / `nonfinite_streak` counted as in `jaxlab.train.step`;
     the schedules below still run on such a step);
  4. while i < densify_until: adds the views' 2D-mean gradient norms, view counts and radii
     to the densification statistics (finite steps only);
  5. under `lax.cond`: densify and prune (from < i < until, i % every == 0), then opacity
     reset (i % reset_every == 0 while i < until, and i == densify_from on a white
     background), as `densify` describes. The INRIA code densifies before its optimizer
     step and drops that step's update; here the update is applied first, then densification.

Everything has static shapes (the Gaussian buffer's N, B views of W x H, the intersection
capacity), so the jitted step compiles once and never again, densification included.

Multi-device: `make_fit_step(..., mesh=mesh)` shards the batch's views over the mesh axis
`camera_axis` and replicates the state. Each device renders its own views from the whole
scene (a `shard_map` over that axis), and the compiler all-reduces the gradients. The
Gaussians are replicated, not sharded: every view needs every Gaussian (projection, depth
sort and binning run over the whole buffer), so a sharded scene would be all-gathered on
each step anyway, while a replicated scene of a few million Gaussians (59 floats each plus
Adam moments) fits one device. Densification then runs identically on every device (same
inputs, same key).
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jaxlab import _compat
from jaxlab.splat.fit import densify, losses
from jaxlab.splat.fit.optim import make_optimizer, trainable_params, with_trainable
from jaxlab.splat.fit.state import FitSettings, FitState
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.render import render
from jaxlab.splat.validate import check_gaussians

FitStep = Callable[[FitState, dict[str, Any], jax.Array], tuple[FitState, dict[str, jax.Array]]]


def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _max_sh_degree(gaussians: Gaussians, settings: FitSettings) -> int:
  data_degree = gaussians.sh_degree
  if settings.max_sh_degree is None:
    return data_degree
  if settings.max_sh_degree > data_degree:
    raise ValueError(
        f"FitSettings.max_sh_degree={settings.max_sh_degree} exceeds the Gaussians' SH degree {data_degree}"
        f" ({gaussians.sh.shape[1]} coefficients); use at most {data_degree} or None")
  return settings.max_sh_degree


def init_fit_state(gaussians: Gaussians, settings: FitSettings) -> FitState:
  """A fresh fit state for `gaussians` (its N slots are the buffer's fixed capacity).

  Pad the scene with `Gaussians.pad_to` (or `from_point_cloud(..., capacity=)`) first:
  densification can only fill slots that already exist.
  """
  check_gaussians(gaussians)
  _max_sh_degree(gaussians, settings)
  return _init_fit_state(gaussians, settings)


@functools.partial(jax.jit, static_argnames=("settings",))
def _init_fit_state(gaussians: Gaussians, settings: FitSettings) -> FitState:
  """`init_fit_state` as one program (eagerly, each zeros_like would compile on its own).

  Every counter is its own zeros: a donated state must not hold one buffer twice.
  """
  # The optimizer's state does not depend on the scene extent (only its updates do).
  opt_state = make_optimizer(settings, 1.0).init(trainable_params(gaussians))
  stats = densify.DensifyStats.zeros(gaussians.num)
  zero = lambda: jnp.zeros((), jnp.int32)
  return FitState(
      step=zero(), params=gaussians, opt_state=opt_state, nonfinite_steps=zero(), nonfinite_streak=zero(),
      grad_accum=stats.grad_accum, grad_count=stats.grad_count, max_radii=stats.max_radii,
      capacity_exhausted=zero())


def _check_static(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f"make_fit_step needs {name} as a positive int; got {value!r}")
  return value


def _check_batch(batch: dict[str, Any], width: int, height: int) -> None:
  for key in ("camera", "image"):
    if key not in batch:
      raise ValueError(f"the fit step's batch needs the key {key!r}; got keys {sorted(batch)}")
  camera, image = batch["camera"], batch["image"]
  if (camera.width, camera.height) != (width, height):
    raise ValueError(f"batch cameras are {camera.width}x{camera.height} but the step was built for {width}x{height}")
  if len(camera.batch_shape) != 1:
    raise ValueError(f"batch['camera'] must be a batch of cameras with shape [B]; got batch shape {camera.batch_shape}")
  num_views = camera.batch_shape[0]
  if tuple(image.shape) != (num_views, height, width, 3):
    raise ValueError(f"batch['image'] must have shape [B, H, W, 3] = {(num_views, height, width, 3)}; got {tuple(image.shape)}")
  if "mask" in batch and tuple(batch["mask"].shape) != (num_views, height, width):
    raise ValueError(f"batch['mask'] must have shape [B, H, W] = {(num_views, height, width)}; got {tuple(batch['mask'].shape)}")


def _mask_updates(updates: dict[str, jax.Array], active_n: jax.Array, band_mask_k: jax.Array) -> dict[str, jax.Array]:
  """Zero updates outside active slots and SH bands in use (Adam moments could move them)."""
  band_mask_k = band_mask_k.astype(bool)
  masked = {}
  for name, u in updates.items():
    keep = active_n.reshape(-1, *([1] * (u.ndim - 1)))
    if name == "sh_dc":
      keep = keep & band_mask_k[:1, None]
    elif name == "sh_rest":
      keep = keep & band_mask_k[1:, None]
    masked[name] = jnp.where(keep, u, jnp.zeros_like(u))
  return masked


def _render_views(render_one: Callable, scene: Gaussians, views: tuple, *, mesh: jax.sharding.Mesh | None, camera_axis: str):
  """`render_one(scene, *view)` for each of the B views in `views` (pytrees with leading axis B).

  Each device renders its share of the views one at a time (`lax.map`), not as a vmapped
  batch. On XLA:CPU the gradient of a vmapped render of one view ran 4x slower than the
  unbatched one (20,000 Gaussians at 64x64: 4.4 s against 1.1 s; its trace shows the
  transposed gathers running as loops over indices), and with two views it was still 10%
  slower (benchmarks/splat_fit_step.py). One view at a time also bounds memory to one
  render. With a mesh, a `shard_map` gives each device its own views, so the map never runs
  over a sharded axis.
  """
  one_by_one = lambda scene, views: jax.lax.map(lambda view: render_one(scene, *view), views)
  if mesh is None:
    return one_by_one(scene, views)
  replicated, by_view = PartitionSpec(), PartitionSpec(camera_axis)
  # check_vma=False: a Pallas rasterizer's outputs carry no varying-axis types. The scene is
  # the only replicated input; its cotangents are summed over the views' devices either way,
  # which the data-parallel test checks against one device.
  per_device = _compat.shard_map(
      one_by_one, mesh=mesh, in_specs=(replicated, by_view), out_specs=by_view, check_vma=False)
  return per_device(scene, views)


def fit_step_fn(
    settings: FitSettings,
    *,
    width: int,
    height: int,
    capacity: int,
    scene_extent: float,
    mesh: jax.sharding.Mesh | None = None,
    camera_axis: str = "data",
) -> FitStep:
  """The un-jitted fit step `(state, batch, rng) -> (state, metrics)` (see the module docstring).

  Args:
    settings: the recipe.
    width, height: image size of every view.
    capacity: static Gaussian-tile intersection capacity of one view's render (see
      `jaxlab.splat.estimate_capacity_for`; leave room for densification to grow).
    scene_extent: world scale (`scene_extent_from_cameras`): position lr and densify thresholds.
    mesh, camera_axis: as `make_fit_step` (None: one device renders every view).

  The batch is {"camera": Camera with batch shape [B], "image": [B, H, W, 3] in [0, 1]} and
  optionally "mask": [B, H, W] alpha (used with `random_background`). The step's
  randomness is `fold_in(rng, state.step)`, so a resumed run draws what an uninterrupted
  one would.

  Metrics (scalars): loss, l1, ssim, psnr (means over the views, rendered with the
  parameters before the update; psnr/ssim on the image clipped to [0, 1]), num_active,
  nonfinite, nonfinite_streak, sh_degree, densified (1 on densification steps),
  num_cloned, num_split, num_pruned, capacity_exhausted (this step's requests dropped for
  lack of free slots), capacity_exhausted_total, num_intersections (largest over views),
  overflow (1 if any view exceeded `capacity`).
  """
  width = _check_static("width", width)
  height = _check_static("height", height)
  capacity = _check_static("capacity", capacity)
  optimizer = make_optimizer(settings, scene_extent)
  render_view = functools.partial(
      render, capacity=capacity, tile_size=settings.tile_size, eps2d=settings.eps2d, antialiased=settings.antialiased,
      on_overflow=settings.on_overflow, implementation=settings.implementation)
  lam = settings.lambda_dssim

  def step(state: FitState, batch: dict[str, Any], rng: jax.Array) -> tuple[FitState, dict[str, jax.Array]]:
    _check_batch(batch, width, height)
    gaussians = state.params
    check_gaussians(gaussians)
    max_degree = _max_sh_degree(gaussians, settings)
    cameras = batch["camera"]
    images_bhw3 = jnp.asarray(batch["image"], jnp.float32)
    num_views = images_bhw3.shape[0]
    iteration = state.step + 1
    background_rng, split_rng = jax.random.split(jax.random.fold_in(rng, state.step))

    background_3 = jnp.asarray(settings.background, jnp.float32)
    if settings.random_background:
      backgrounds_b3 = jax.random.uniform(background_rng, (num_views, 3), jnp.float32)
      if "mask" in batch:
        uncovered_bhw1 = 1.0 - jnp.asarray(batch["mask"], jnp.float32)[..., None]
        images_bhw3 = images_bhw3 + (backgrounds_b3 - background_3)[:, None, None, :] * uncovered_bhw1
    else:
      backgrounds_b3 = jnp.broadcast_to(background_3, (num_views, 3))

    sh_degree = densify.sh_degree_for_iteration(iteration, every=settings.sh_increase_every, max_degree=max_degree)
    band_mask_k = densify.sh_band_mask(sh_degree, gaussians.sh.shape[1])
    params = trainable_params(gaussians)

    def loss_fn(params, means2d_offsets_bn2):
      scene = with_trainable(gaussians, params)
      scene = scene.replace(sh=scene.sh * band_mask_k[None, :, None])
      one_view = lambda scene, camera, offset, background: render_view(scene, camera, background=background, means2d_offset=offset)
      out = _render_views(one_view, scene, (cameras, means2d_offsets_bn2, backgrounds_b3), mesh=mesh, camera_axis=camera_axis)
      l1_b = jax.vmap(losses.l1)(out.rgb, images_bhw3)
      ssim_b = jax.vmap(losses.ssim)(out.rgb, images_bhw3)
      loss = jnp.mean((1.0 - lam) * l1_b + lam * (1.0 - ssim_b))
      clipped = jnp.clip(out.rgb, 0.0, 1.0)
      aux = {
          "l1": jnp.mean(l1_b),
          "ssim": jnp.mean(jax.vmap(losses.ssim)(clipped, images_bhw3)),
          "psnr": jnp.mean(jax.vmap(losses.psnr)(clipped, images_bhw3)),
          "radii": out.radii,
          "num_intersections": jnp.max(out.num_intersections),
          "overflow": jnp.any(out.overflow).astype(jnp.int32),
      }
      return loss, aux

    offsets_bn2 = jnp.zeros((num_views, gaussians.num, 2), jnp.float32)
    (loss, aux), (grads, means2d_grads_bn2) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(params, offsets_bn2)
    finite = jnp.isfinite(loss) & _all_finite(grads) & _all_finite(means2d_grads_bn2)

    updates, stepped_opt_state = optimizer.update(grads, state.opt_state, params)
    stepped_params = optax.apply_updates(params, _mask_updates(updates, gaussians.active, band_mask_k))
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    gaussians = with_trainable(gaussians, keep(stepped_params, params))
    opt_state = keep(stepped_opt_state, state.opt_state)

    stats = densify.DensifyStats(grad_accum=state.grad_accum, grad_count=state.grad_count, max_radii=state.max_radii)
    gathered = densify.accumulate_stats(stats, means2d_grads_bn2, aux["radii"], width=width, height=height)
    gather_now = finite & (iteration < settings.densify_until)
    stats = jax.tree.map(lambda n, o: jnp.where(gather_now, n, o), gathered, stats)

    do_densify = (
        (iteration > settings.densify_from) & (iteration % settings.densify_every == 0)
        & (iteration < settings.densify_until))
    prune_oversized = iteration > settings.opacity_reset_every

    def run_densify(operands):
      return densify.densify_and_prune(
          *operands, split_rng, settings=settings, scene_extent=scene_extent, prune_oversized=prune_oversized)

    def skip_densify(operands):
      return (*operands, densify.DensifyReport.zeros())

    gaussians, opt_state, stats, report = jax.lax.cond(do_densify, run_densify, skip_densify, (gaussians, opt_state, stats))

    reset_now = iteration % settings.opacity_reset_every == 0
    if settings.white_background:
      reset_now = reset_now | (iteration == settings.densify_from)
    reset_now = reset_now & (iteration < settings.densify_until)
    gaussians, opt_state = jax.lax.cond(
        reset_now,
        lambda operands: densify.reset_opacity(*operands, value=settings.opacity_reset_value),
        lambda operands: operands,
        (gaussians, opt_state))

    bad = jnp.logical_not(finite).astype(jnp.int32)
    streak = (state.nonfinite_streak + 1) * bad
    exhausted_total = state.capacity_exhausted + report.capacity_exhausted
    new_state = FitState(
        step=state.step + 1,
        params=gaussians,
        opt_state=opt_state,
        nonfinite_steps=state.nonfinite_steps + bad,
        nonfinite_streak=streak,
        grad_accum=stats.grad_accum,
        grad_count=stats.grad_count,
        max_radii=stats.max_radii,
        capacity_exhausted=exhausted_total,
    )
    metrics = {
        "loss": loss,
        "l1": aux["l1"],
        "ssim": aux["ssim"],
        "psnr": aux["psnr"],
        "num_active": gaussians.num_active(),
        "nonfinite": bad,
        "nonfinite_streak": streak,
        "sh_degree": sh_degree,
        "densified": do_densify.astype(jnp.int32),
        "num_cloned": report.num_cloned,
        "num_split": report.num_split,
        "num_pruned": report.num_pruned,
        "capacity_exhausted": report.capacity_exhausted,
        "capacity_exhausted_total": exhausted_total,
        "num_intersections": aux["num_intersections"],
        "overflow": aux["overflow"],
    }
    return new_state, metrics

  return step


def make_fit_step(
    settings: FitSettings,
    *,
    width: int,
    height: int,
    capacity: int,
    scene_extent: float,
    mesh: jax.sharding.Mesh | None = None,
    camera_axis: str = "data",
    donate: bool = True,
) -> FitStep:
  """`fit_step_fn` jitted: one compiled program for every step, densification included.

  Args:
    settings, width, height, capacity, scene_extent: as `fit_step_fn`.
    mesh: optional device mesh; the batch's views are sharded over `camera_axis` (B must
      be a multiple of its size) and the state is replicated (see the module docstring).
    camera_axis: mesh axis the views are split over.
    donate: donate the incoming state's buffers to the new state (do not reuse the state
      passed in afterwards).
  """
  if mesh is not None and camera_axis not in mesh.axis_names:
    raise ValueError(f"camera_axis={camera_axis!r} is not an axis of the mesh; its axes are {mesh.axis_names}")
  step = fit_step_fn(
      settings, width=width, height=height, capacity=capacity, scene_extent=scene_extent, mesh=mesh, camera_axis=camera_axis)
  donate_argnums = (0,) if donate else ()
  if mesh is None:
    return jax.jit(step, donate_argnums=donate_argnums)
  replicated = NamedSharding(mesh, PartitionSpec())
  by_view = NamedSharding(mesh, PartitionSpec(camera_axis))
  return jax.jit(
      step, in_shardings=(replicated, by_view, replicated), out_shardings=(replicated, replicated),
      donate_argnums=donate_argnums)
