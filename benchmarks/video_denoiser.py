"""Speed of the Structural Video Diffusion denoiser: one training step (structural flow loss and gradient) and
one sampling step (a velocity evaluation), by modality set and identity embeddings, and the frames split over
a "context" mesh axis (temporal attention by ring attention) against one device; plus the generator's clips/s.

  python benchmarks/video_denoiser.py --out /tmp/video_denoiser.json
  python benchmarks/video_denoiser.py --size large --context 1 2 4 --device-check   # on a GPU host

Sizes: "small" is configs/video_train.py's default model (32 x 32 px, 8 frames, width 64, depth 4, patch 4);
"large" is 64 x 64 px, 16 frames, width 256, depth 8, patch 4. Each context size first checks the sharded
velocities and gradients against the single-device ones (max relative error); `--device-check` exits 1 on
a failed check before any timing. Off a GPU, context sizes above 1 use fake CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, set here before jax starts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ensure_devices(argv) -> None:
  """Ask for enough fake CPU devices for the largest context size (before jax is imported)."""
  wanted = 1
  if "--context" in argv:
    i = argv.index("--context") + 1
    while i < len(argv) and argv[i].isdigit():
      wanted = max(wanted, int(argv[i]))
      i += 1
  flag = "--xla_force_host_platform_device_count"
  if wanted > 1 and flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}={wanted}".strip()


_ensure_devices(sys.argv)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import environment, format_table, max_relative_error, time_call, write_json  # noqa: E402
from jaxlab.sharding import axis_rules, logical_rules, make_mesh  # noqa: E402
from jaxlab.video.model import VideoDenoiser, VideoDenoiserConfig, example_inputs  # noqa: E402
from jaxlab.video.objective import structural_flow_loss  # noqa: E402
from jaxlab.video.synthetic import generate_clip  # noqa: E402

SIZES = {
    "small": dict(image_size=32, num_frames=8, patch_size=4, width=64, depth=4, num_heads=4),
    "large": dict(image_size=64, num_frames=16, patch_size=4, width=256, depth=8, num_heads=8),
}
VARIANTS = {
    "baseline": dict(modalities=("rgb",), num_identities=0),
    "identity": dict(modalities=("rgb",), num_identities=5),
    "structure": dict(modalities=("rgb", "depth", "normal"), num_identities=0),
    "both": dict(modalities=("rgb", "depth", "normal"), num_identities=5),
}
_TOLERANCE = 1e-3


def random_inputs(config: VideoDenoiserConfig, batch: int, key: jax.Array):
  """Noisy video, sigmas and conditions of the right shapes with random values (identity labels in range)."""
  x, sigma, cond = example_inputs(config, batch_size=batch)
  keys = iter(jax.random.split(key, 8))
  fill = lambda a: None if a is None else jax.random.normal(next(keys), a.shape, a.dtype)
  identity = None
  if cond.identity_bfhw is not None:
    identity = jax.random.randint(next(keys), cond.identity_bfhw.shape, 0, config.num_identities + 1)
  cond = cond._replace(reference_bhwc=fill(cond.reference_bhwc), pose_bfhwc=fill(cond.pose_bfhwc),
                       plucker_bfhw6=fill(cond.plucker_bfhw6), identity_bfhw=identity)
  return fill(x), jax.random.uniform(next(keys), sigma.shape), cond


def steps_for(model: VideoDenoiser):
  def velocity(params, x, sigma, cond):
    return model.apply({"params": params}, x, sigma, cond)

  def loss(params, x, cond, key):
    fn = lambda xx, s, c: model.apply({"params": params}, xx, s, c)
    return structural_flow_loss(fn, x, cond, key, modalities=model.config.modalities)[0]

  return jax.jit(velocity), jax.jit(jax.value_and_grad(loss))


def perturbed(params, key):
  """Params with the zero-initialized layers moved off zero, so outputs and gradients are not trivially 0."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [p + 0.02 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])


def bench_one(size: str, variant: str, batch: int, contexts: list[int], iters: int) -> tuple[list[dict], list[str]]:
  config = VideoDenoiserConfig(**SIZES[size], **VARIANTS[variant])
  model = VideoDenoiser(config)
  x, sigma, cond = random_inputs(config, batch, jax.random.key(0))
  params = perturbed(jax.jit(model.init)(jax.random.key(1), x, sigma, cond)["params"], jax.random.key(2))
  velocity, grad = steps_for(model)
  rows, failures, reference = [], [], None
  for context in contexts:
    if jax.device_count() % context or config.num_frames % context:
      failures.append(f"{size}/{variant}: context {context} needs a device count and {config.num_frames} frames "
                      "divisible by it")
      continue
    mesh = make_mesh(dict(data=-1, fsdp=1, context=context, tensor=1, expert=1))
    rules = logical_rules(("data", "context"))
    with jax.set_mesh(mesh), axis_rules(rules):
      v = np.asarray(velocity(params, x, sigma, cond))
      loss, g = grad(params, x, cond, jax.random.key(3))
      g = np.concatenate([np.ravel(a) for a in jax.tree.leaves(jax.device_get(g))])
      if reference is None:
        reference = (v, g)
      error = max(max_relative_error(v, reference[0]), max_relative_error(g, reference[1]))
      if not (np.isfinite(v).all() and np.isfinite(g).all()) or error > _TOLERANCE:
        failures.append(f"{size}/{variant}: context {context} differs from context {contexts[0]} "
                        f"(max relative error {error:.2e})")
      t_fwd = time_call(velocity, params, x, sigma, cond, warmup=1, iters=iters)
      t_train = time_call(grad, params, x, cond, jax.random.key(3), warmup=1, iters=iters)
    rows.append({"size": size, "variant": variant, "batch": batch, "context": context,
                 "check_error": error, "forward_ms": t_fwd["median_ms"], "train_step_ms": t_train["median_ms"],
                 "train_videos_per_s": batch / (t_train["median_ms"] / 1e3)})
  return rows, failures


def generator_rate(clips: int, size: int, frames: int) -> dict:
  start = time.perf_counter()
  for seed in range(clips):
    generate_clip(seed, num_frames=frames, height=size, width=size)
  seconds = time.perf_counter() - start
  return {"clips": clips, "image_size": size, "num_frames": frames, "clips_per_s": clips / seconds}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", choices=sorted(SIZES), default="small")
  parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=sorted(VARIANTS))
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--context", type=int, nargs="+", default=[1])
  parser.add_argument("--iters", type=int, default=5)
  parser.add_argument("--generator-clips", type=int, default=20)
  parser.add_argument("--device-check", action="store_true", help="exit 1 on a failed check, before timing more")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  rows, failures = [], []
  for variant in args.variants:
    got, failed = bench_one(args.size, variant, args.batch, args.context, args.iters)
    rows += got
    failures += failed
    if failed and args.device_check:
      break
  for failure in failures:
    print("CHECK FAILED:", failure)
  print(format_table(rows, [("size", "size"), ("variant", "variant"), ("batch", "batch"), ("context", "context"),
                            ("check_error", "max rel. error"), ("forward_ms", "velocity ms"),
                            ("train_step_ms", "train step ms"), ("train_videos_per_s", "videos/s")]))
  image = SIZES[args.size]["image_size"]
  generator = generator_rate(args.generator_clips, image, SIZES[args.size]["num_frames"]) if args.generator_clips else {}
  if generator:
    print(f"generator: {generator['clips_per_s']:.1f} clips/s ({image} x {image}, {generator['num_frames']} frames)")
  if args.out:
    write_json(args.out, {"environment": environment(), "rows": rows, "generator": generator, "failures": failures})
  return 1 if failures and args.device_check else 0


if __name__ == "__main__":
  sys.exit(main())
