"""What HiFlow buys: direct high-resolution sampling vs upsampling the base image vs HiFlow, from the same seeds.

  python benchmarks/hiflow_eval.py --model runs/flow_train/model --out-dir runs/hiflow_eval

For each seed the base resolution (the model's training size) is sampled once; at 2x and 4x
it compares
  direct     sampling from noise at the high resolution over the whole schedule;
  upsample   the base sample, bicubically upsampled;
  hiflow     the HiFlow cascade (`jaxlab.flow.hiflow`, defaults N = [16, 10], alpha = [1, 0.25],
             beta = [0.5, 0.5], Butterworth low-pass);
  init_only  the same cascade with alpha = beta = 0: initialization alignment alone, which
             separates what the direction and acceleration terms add.
Above the training resolution every sampler calls the DiT with NTK-scaled RoPE and the
proportional attention scale (`--ntk-factor`, `--no-proportional-attention`).

Metrics per method and resolution (means over seeds; `jaxlab.flow.image_stats`):
  lowfreq_err   Butterworth low-pass distance to the upsampled base (0 = same layout);
  hf_energy     mean squared high-pass: detail above the low-pass cutoff;
  repetition    highest off-centre autocorrelation peak (duplicated structure);
  neighbor_corr, spectrum_slope: structure (photographs: about 0.9 and -2; noise: 0 and 0).
Image grids (PNG): one per resolution, a row per seed, columns upsample | direct | hiflow | init_only.
`results.json` holds every number, the settings and the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses
import pathlib

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab import files
from jaxlab.flow import image_stats, resample
from jaxlab.flow.dit_io import load_dit
from jaxlab.flow.hiflow import HiFlowSettings, hiflow_sample
from jaxlab.flow.samplers import classifier_free_guidance, euler_sample

METHODS = ("upsample", "direct", "hiflow", "init_only")
METRICS = ("lowfreq_err", "hf_energy", "repetition", "neighbor_corr", "spectrum_slope")


def velocity_fns(model, params, config, labels, *, num_stages, guidance_scale, ntk_factor, proportional):
  """One velocity function per stage: the base one plain, higher ones with the high-resolution toolkit."""
  fns = []
  for stage in range(num_stages):
    high = stage > 0

    def fn(x, sigma, cond, high=high):
      return model.apply({"params": params}, x, sigma, cond, ntk_factor=ntk_factor if high else 1.0,
                         proportional_attention=proportional and high)

    if labels is not None and guidance_scale != 1.0:
      fn = classifier_free_guidance(fn, guidance_scale, jnp.full(labels.shape, config.num_classes, jnp.int32))
    fns.append(fn)
  return fns


def metrics_of(images, upsampled_base) -> dict:
  return {
      "lowfreq_err": float(np.mean(image_stats.lowfreq_error(images, upsampled_base))),
      "hf_energy": float(np.mean(image_stats.highfreq_energy(images))),
      "repetition": float(np.mean(image_stats.repetition_score(images))),
      "neighbor_corr": float(np.mean(image_stats.neighbor_correlation(images))),
      "spectrum_slope": float(np.mean(image_stats.spectrum_slope(images))),
  }


def grid_png(columns_by_method: list[np.ndarray]) -> np.ndarray:
  """uint8 grid: a row per seed, a column per method, images in [-1, 1]."""
  b, h, w, c = columns_by_method[0].shape
  cols = len(columns_by_method)
  grid = np.full((b * (h + 2) - 2, cols * (w + 2) - 2, c), 255, np.uint8)
  for j, images in enumerate(columns_by_method):
    pixels = np.clip((np.asarray(images) + 1) * 127.5, 0, 255).round().astype(np.uint8)
    for i in range(b):
      grid[i * (h + 2): i * (h + 2) + h, j * (w + 2): j * (w + 2) + w] = pixels[i]
  return grid


def _write_png(path: pathlib.Path, image: np.ndarray) -> None:
  """Encodes first, then replaces `path` in one rename: an earlier grid survives a failure."""
  files.write_bytes(path, iio.imwrite("<bytes>", image, extension=".png"))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", required=True, help="a DiT directory written by configs/flow_train.py (W/model)")
  parser.add_argument("--out-dir", required=True)
  parser.add_argument("--num-seeds", type=int, default=8)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--num-steps", type=int, default=30)
  parser.add_argument("--stage-steps", default="16,10")
  parser.add_argument("--alpha", default="1.0,0.25")
  parser.add_argument("--beta", default="0.5,0.5")
  parser.add_argument("--lowpass", choices=("fft", "dwt"), default="fft")
  parser.add_argument("--guidance-scale", type=float, default=2.0)
  parser.add_argument("--ntk-factor", type=float, default=10.0)
  parser.add_argument("--no-proportional-attention", action="store_true")
  parser.add_argument("--sharpen-sigma", type=float, default=1.0,
                      help="unsharp-mask blur sigma (fixed here, so runs compare; HiFlow's code draws U(0.1, 2))")
  args = parser.parse_args(argv)
  floats = lambda text: tuple(float(v) for v in text.split(","))
  if args.num_seeds < 1:
    parser.error(f"--num-seeds must be >= 1, got {args.num_seeds}")
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()

  model, config, params = load_dit(args.model)
  settings = HiFlowSettings(num_steps=args.num_steps, stage_steps=tuple(int(v) for v in args.stage_steps.split(",")),
                            alpha=floats(args.alpha), beta=floats(args.beta), lowpass=args.lowpass,
                            sharpen_sigma=args.sharpen_sigma)
  no_guidance = dataclasses.replace(settings, alpha=(0.0,) * len(settings.alpha), beta=(0.0,) * len(settings.beta))
  b, size = args.num_seeds, config.image_size
  labels = jnp.arange(b, dtype=jnp.int32) % config.num_classes if config.num_classes else None
  fns = velocity_fns(model, params, config, labels, num_stages=settings.num_stages,
                     guidance_scale=args.guidance_scale, ntk_factor=args.ntk_factor,
                     proportional=not args.no_proportional_attention)
  key = jax.random.key(args.seed)
  base_shape = (b, size, size, config.in_channels)

  cascade = jax.jit(lambda k: hiflow_sample(fns, k, base_shape, labels, settings).samples)
  cascade_plain = jax.jit(lambda k: hiflow_sample(fns, k, base_shape, labels, no_guidance).samples)
  hiflow_samples = [np.asarray(x) for x in cascade(key)]
  init_only_samples = [np.asarray(x) for x in cascade_plain(key)]
  base = np.clip(hiflow_samples[0], -1, 1)
  sigmas = jnp.asarray(settings.sigmas())

  rows, results = [], {"base": metrics_of(base, base)}
  rows.append({"resolution": f"1x ({size} px)", "method": "base", **results["base"]})
  for stage in range(1, settings.num_stages):
    factor = settings.scale_factor**stage
    high = size * factor
    # Bicubic overshoots: clip like every other image, so the upsample row compares with itself exactly.
    upsampled = np.clip(np.asarray(resample.upsample_bicubic(jnp.asarray(base), factor)), -1, 1)
    # Direct sampling from the same seed's noise at the high resolution.
    noise = jax.random.normal(jax.random.fold_in(key, 100 + stage), (b, high, high, config.in_channels))
    direct = np.asarray(jax.jit(lambda n, fn=fns[stage]: euler_sample(fn, n, sigmas, labels))(noise))
    by_method = {"upsample": upsampled, "direct": direct, "hiflow": hiflow_samples[stage],
                 "init_only": init_only_samples[stage]}
    for method in METHODS:
      m = metrics_of(np.clip(by_method[method], -1, 1), upsampled)
      results[f"{factor}x/{method}"] = m
      rows.append({"resolution": f"{factor}x ({high} px)", "method": method, **m})
    _write_png(out_dir / f"grid_{factor}x.png", grid_png([by_method[m] for m in METHODS]))
  _write_png(out_dir / "grid_1x.png", grid_png([base]))

  print(common.format_table(rows, [("resolution", "resolution"), ("method", "method")] +
                            [(m, m) for m in METRICS]))
  payload = {"benchmark": "hiflow_eval", "environment": common.environment(), "model": str(args.model),
             "settings": dataclasses.asdict(settings), "num_seeds": b, "guidance_scale": args.guidance_scale,
             "ntk_factor": args.ntk_factor, "proportional_attention": not args.no_proportional_attention,
             "results": results, "rows": rows, "elapsed_s": time.perf_counter() - start}
  common.write_json(str(out_dir / "results.json"), payload)
  print(f"wrote {out_dir}/results.json and grid_*.png ({payload['elapsed_s']:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
