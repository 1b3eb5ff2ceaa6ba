"""Time of one scene-fitting step, and why its views are rendered one at a time.

  JAX_PLATFORMS=cpu python benchmarks/splat_fit_step.py [--views 1 2] [--out results.json]

The scene is the object-dataset case of docs/PERFORMANCE.md: a ray-cast mesh (`mesh:knot`
by default, `jaxlab.testing.mesh_views`) seen by 64x64 views, seeded with 20,000 points from
the masks' visual hull. For each batch size B it times, after compilation:

- `fit step`: `jaxlab.splat.fit.make_fit_step` on one device (render, loss, Adam,
  densification statistics), B views per step;
- `render grad, lax.map`: the gradient of an L1 loss over B views rendered one after
  another, as the fit step renders them;
- `render grad, vmap`: the same gradient with the B views rendered as one vmapped batch.

On XLA:CPU the vmapped gradient of a single view is several times slower than the
unbatched one; the fit step renders each device's views one at a time for that reason.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

if __package__ in (None, ""):
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab.splat import estimate_capacity_for, from_point_cloud, render
from jaxlab.splat.datasets import load_dataset
from jaxlab.splat.fit import FitSettings, init_fit_state, make_fit_step, scene_extent_from_cameras
from jaxlab.splat.initial_points import initial_points
from jaxlab.testing import mesh_views

TRAINABLE = ("means", "log_scales", "quats", "opacity_logits", "sh")


def _scene(object_name: str, width: int, num_points: int, folder: pathlib.Path):
  data = mesh_views.write_dataset(folder / object_name, object_name=object_name, width=width, num_train=8, num_test=1)
  train = load_dataset(data, format="blender", split="train", background=(0.0, 0.0, 0.0))
  points, colors, _ = initial_points(train, num_points, 0)
  gaussians = from_point_cloud(points, colors, sh_degree=3, capacity=int(1.5 * num_points), initial_opacity=0.1)
  return train, gaussians


def _render_grads(gaussians, cameras_b, images_bhw3, capacity: int):
  """(lax.map, vmap) jitted gradients of the mean L1 over the views, w.r.t. the trainable fields."""
  background = jnp.zeros((3,), jnp.float32)

  def one_view(fields, camera):
    return render(gaussians.replace(**fields), camera, capacity=capacity, background=background, on_overflow="ignore").rgb

  def mapped(fields):
    return jnp.mean(jnp.abs(jax.lax.map(lambda camera: one_view(fields, camera), cameras_b) - images_bhw3))

  def vmapped(fields):
    return jnp.mean(jnp.abs(jax.vmap(lambda camera: one_view(fields, camera))(cameras_b) - images_bhw3))

  return jax.jit(jax.grad(mapped)), jax.jit(jax.grad(vmapped))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--object", default="knot", choices=sorted(mesh_views.OBJECTS))
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--points", type=int, default=20_000)
  parser.add_argument("--views", type=int, nargs="+", default=[1, 2])
  parser.add_argument("--iters", type=int, default=5)
  parser.add_argument("--out", help="write results as JSON here")
  args = parser.parse_args(argv)

  with tempfile.TemporaryDirectory() as folder:
    train, gaussians = _scene(args.object, args.width, args.points, pathlib.Path(folder))
  capacity = int(1.5 * estimate_capacity_for(gaussians, train.cameras))
  print(f"backend={jax.default_backend()} object={args.object} {args.width}x{args.width} gaussians={args.points}"
        f" capacity={capacity}", flush=True)
  settings = FitSettings(background=(0.0, 0.0, 0.0))
  extent = scene_extent_from_cameras(train.cameras)
  fields = {name: getattr(gaussians, name) for name in TRAINABLE}
  rows = []
  for num_views in args.views:
    views = np.arange(num_views) % len(train.names)
    cameras, images = train.cameras[views], jnp.asarray(train.images[views], jnp.float32)
    step = make_fit_step(settings, width=args.width, height=args.width, capacity=capacity, scene_extent=extent, donate=False)
    state = init_fit_state(gaussians, settings)
    batch = {"camera": cameras, "image": images}
    mapped, vmapped = _render_grads(gaussians, cameras, images, capacity)
    for name, fn, fn_args in (("fit step", step, (state, batch, jax.random.key(0))),
                              ("render grad, lax.map", mapped, (fields,)), ("render grad, vmap", vmapped, (fields,))):
      timing = common.time_call(fn, *fn_args, warmup=1, iters=args.iters)
      rows.append({"what": name, "views": num_views, **timing})
      print(f"{name} x{num_views}: {timing['median_ms']:.0f} ms", flush=True)
  print(common.format_table(rows, [("what", "what"), ("views", "views"), ("median_ms", "median (ms)"),
                                   ("min_ms", "min (ms)"), ("first_call_ms", "first call (ms)")]))
  if args.out:
    common.write_json(args.out, {"rows": rows, **common.environment()})
  return 0


if __name__ == "__main__":
  sys.exit(main())
