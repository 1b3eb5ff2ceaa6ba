"""Peak host memory of the XLA reference rasterizer: 100k Gaussians at 256×256 on CPU.

  JAX_PLATFORMS=cpu python benchmarks/splat_reference_memory.py

The target: nothing of size H×W×N, so the reference renders this scene within a few GB.
Reports the process's peak resident set size (ru_maxrss) before rendering, after the
forward, and after forward + backward, with the intersection count.
"""

import os
import resource
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp

from benchmarks.splat_render import anchor_camera, anchor_scene
from jaxlab.splat import estimate_capacity_for, render


def _peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
  num, width, height = 100_000, 256, 256
  scene, camera = anchor_scene(num), anchor_camera(width, height)
  capacity = estimate_capacity_for(scene, camera)
  print(f"backend={jax.default_backend()} gaussians={num} image={width}x{height} capacity={capacity}")
  print(f"peak RSS before rendering: {_peak_mib():.0f} MiB")
  forward = jax.jit(lambda g: render(g, camera, capacity=capacity, implementation="xla").rgb)
  jax.block_until_ready(forward(scene))
  count = int(render(scene, camera, capacity=capacity, implementation="xla").num_intersections)
  print(f"intersections: {count}; peak RSS after forward: {_peak_mib():.0f} MiB")
  fields = {f: getattr(scene, f) for f in ("means", "log_scales", "quats", "opacity_logits", "sh")}
  grad = jax.jit(jax.grad(lambda f: jnp.sum(render(scene.replace(**f), camera, capacity=capacity, implementation="xla").rgb)))
  jax.block_until_ready(grad(fields))
  print(f"peak RSS after forward + backward: {_peak_mib():.0f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
