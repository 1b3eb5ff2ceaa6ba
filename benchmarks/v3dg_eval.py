"""V3DG evaluation: a DonutSea-like scene rendered along a near-to-far path, per tolerance tau.

  python benchmarks/v3dg_eval.py --out docs/measurements/v3dg_eval_cpu.json      # CPU: 320x180
  python benchmarks/v3dg_eval.py --device-check --out $OUT/v3dg.json             # GPU: 1920x1080

The scene: a layout file (`--layout`, assets placed on the z = 0 plane with z up), or by
default `--instances` copies (default 1,024) of the embedded donut (16,384 Gaussians at LOD0,
so 16.8 M at full detail) placed by `donut_sea_instances` and written as `<stem>_layout.json`
beside the output, then read back. The donut bundle is read from `--bundle`, else built with
V3DG's recipe (640 local-splatting iterations) and cached.
For every camera of the path and for the full-detail scene and each tau in `--taus`:
Gaussians selected and drawn (radius > 0), selection time (select + gather + instance
transform), render time, and FLIP (flip-evaluator, LDR) and PSNR against a 2x supersampled
full-detail reference (rendered at twice the size, 2x2 box-filtered), as V3DG's protocol
(its reference is 4K downsampled to 1080p). Times are medians of `--repeats` calls after one
warm-up call. The selection buffer of each (camera, tau) is sized to its selection rounded
up (to a power of two below 2^20 Gaussians, to a multiple of 2^20 above), as an application
would keep a few buffer sizes; intersection buffers likewise.

Writes the JSON, and next to it `<stem>_time.png`, `<stem>_flip.png` (against tau) and
`<stem>_strip.png` (reference, full detail and each tau, one row per camera).
`--device-check` first checks, on the GPU, that tau = 0 draws the same image as the
full-detail scene and that the cut is exact on a small scene, then times at 1920x1080.
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import math
import os
import pathlib
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxlab.splat import Camera, look_at, render
from jaxlab.splat.binning import count_intersections
from jaxlab.splat.exports import to_uint8
from jaxlab.splat.lod import (
    BuildSettings, Layout, LocalSplatSettings, build_bundle, compose_scene, donut_sea_instances, gather_selected, load_bundle,
    read_layout, save_bundle, select, write_layout)
from jaxlab.splat.lod.assets import donut_gaussians
from jaxlab.splat.project import project

log = logging.getLogger("v3dg_eval")
# tau = 0 is LOD0 everywhere with clusters out of view skipped: full detail plus culling alone.
DEFAULT_TAUS = (0, 512, 1024, 2048, 4096, 8192)


def _bucket(n: int) -> int:
  """A buffer size for n items: the next power of two up to 2^20, then the next multiple of 2^20."""
  if n <= 1 << 20:
    return 1 << max(10, math.ceil(math.log2(max(n, 1))))
  return -(-n // (1 << 20)) * (1 << 20)


def camera_path(num: int, width: int, height: int, extent: float) -> list[Camera]:
  """`num` cameras from a low view among the donuts to a high one over the whole sea (horizontal FoV 60 deg)."""
  focal = 0.5 * width / math.tan(math.radians(30))
  cameras = []
  for t in np.linspace(0.0, 1.0, num):
    eye = np.array([0.0, -extent * (0.55 + 1.6 * t), 2.0 + extent * 1.3 * t**1.2])
    target = np.array([0.0, -extent * 0.35 * (1 - t), 0.0])
    pose = look_at(eye, target, up_3=np.array([0.0, 0.0, 1.0]))
    cameras.append(Camera.from_opencv(pose, fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height,
                                      near=0.05))
  return cameras


def scaled(camera: Camera, factor: int) -> Camera:
  return Camera.from_world_to_camera(camera.world_to_camera, fx=camera.fx * factor, fy=camera.fy * factor,
                                     cx=camera.cx * factor, cy=camera.cy * factor, width=camera.width * factor,
                                     height=camera.height * factor, near=camera.near, far=camera.far)


@functools.partial(jax.jit, static_argnames=("capacity", "cull"))
def select_and_gather(scene, camera, tau, *, capacity, cull=True):
  selection = select(scene, camera, tau, cull=cull)
  gathered, overflow = gather_selected(scene, selection, capacity)
  return gathered, selection.num_gaussians, overflow


@functools.partial(jax.jit, static_argnames=("capacity",))
def draw(gaussians, camera, *, capacity):
  out = render(gaussians, camera, capacity=capacity, on_overflow="ignore")
  return out.rgb, jnp.sum(out.radii > 0), out.overflow


@jax.jit
def _intersections(gaussians, camera):
  p = project(gaussians, camera)
  return p.radii, p.means2d


def intersection_capacity(gaussians, camera) -> int:
  radii, means2d = _intersections(gaussians, camera)
  return _bucket(int(count_intersections(radii, means2d, width=camera.width, height=camera.height)))


def timed(fn, repeats: int):
  """(last result, median seconds) of `repeats` calls after one warm-up call (which compiles)."""
  result = jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return result, float(np.median(times))


def flip_and_psnr(image_hw3: np.ndarray, reference_hw3: np.ndarray) -> tuple[float, float]:
  import flip_evaluator  # noqa: PLC0415 - an optional benchmark dependency (pip install flip-evaluator)
  a = np.clip(np.asarray(image_hw3, np.float32), 0, 1)
  b = np.clip(np.asarray(reference_hw3, np.float32), 0, 1)
  _, mean_flip, _ = flip_evaluator.evaluate(b, a, "LDR", applyMagma=False)
  mse = float(np.mean((a - b) ** 2))
  return float(mean_flip), (float("inf") if mse == 0 else -10.0 * math.log10(mse))


def donut_bundle(path: str | None, iterations: int):
  if path and os.path.isfile(path):
    return load_bundle(path), path
  cache = pathlib.Path(path) if path else (pathlib.Path(os.environ.get("JAXLAB_CACHE", pathlib.Path.home() / ".cache" / "jaxlab"))
                                           / "v3dg" / f"donut16384_it{iterations}.npz")
  if cache.is_file():
    return load_bundle(cache), str(cache)
  log.info("building the donut bundle (%d local-splatting iterations) into %s", iterations, cache)
  bundle, report = build_bundle(donut_gaussians(16_384), BuildSettings(local_splat=LocalSplatSettings(iterations=iterations)))
  log.info("built in %.1f s", report.seconds)
  cache.parent.mkdir(parents=True, exist_ok=True)
  save_bundle(cache, bundle)
  return bundle, str(cache)


def scene_layout(args) -> Layout:
  """The user's layout (`--layout`), else the DonutSea-like one, written next to `--out` and read back."""
  if args.layout:
    return read_layout(args.layout)
  _, bundle_path = donut_bundle(args.bundle, args.build_iterations)
  path = pathlib.Path(args.out).with_name(pathlib.Path(args.out).stem + "_layout.json")
  path.parent.mkdir(parents=True, exist_ok=True)
  write_layout(path, ["donut"], [bundle_path], donut_sea_instances(args.instances, seed=0))
  return read_layout(path)


def evaluate(args) -> dict:
  layout = scene_layout(args)
  bundles = layout.load_bundles()
  instances = layout.instances
  bundle_path = ", ".join(layout.bundle_paths)
  scene = jax.device_put(compose_scene(bundles, instances, names=layout.names))
  args.instances = instances.num
  full_size = scene.full_detail_size()
  extent = float(np.abs(np.asarray(instances.translation)[:, :2]).max())
  log.info("scene: %d instances, %d Gaussians at full detail, %d (instance, cluster) rows", args.instances, full_size,
           scene.num_rows)
  # Every instance's LOD0, placed: the full-detail scene as plain 3DGS renders it (nothing culled).
  full, _, _ = select_and_gather(scene, camera_path(1, 8, 8, extent)[0], 0.0, capacity=full_size, cull=False)
  rows, strips = [], []
  for f, camera in enumerate(camera_path(args.frames, args.width, args.height, extent)):
    big = scaled(camera, 2)
    ref_rgb, _, ref_overflow = draw(full, big, capacity=intersection_capacity(full, big))
    h, w = args.height, args.width
    reference = np.asarray(ref_rgb).reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    strip = [reference]
    capacity = intersection_capacity(full, camera)
    (rgb, drawn, overflow), render_s = timed(lambda: draw(full, camera, capacity=capacity), args.repeats)
    flip, psnr = flip_and_psnr(rgb, reference)
    rows.append(dict(frame=f, tau="full", selected=full_size, drawn=int(drawn), select_ms=0.0, render_ms=render_s * 1e3,
                     frame_ms=render_s * 1e3, flip=flip, psnr=psnr, overflow=bool(overflow or ref_overflow)))
    strip.append(np.asarray(rgb))
    full_drawn = int(drawn)
    log.info("frame %d full detail: %d drawn, render %.1f ms, FLIP %.4f", f, int(drawn), render_s * 1e3, flip)
    for tau in args.taus:
      count = int(select(scene, camera, jnp.float32(tau)).num_gaussians)
      buffer = _bucket(count)
      (gathered, selected, sel_overflow), select_s = timed(
          lambda: select_and_gather(scene, camera, jnp.float32(tau), capacity=buffer), args.repeats)
      capacity = intersection_capacity(gathered, camera)
      (rgb, drawn, overflow), render_s = timed(lambda: draw(gathered, camera, capacity=capacity), args.repeats)
      flip, psnr = flip_and_psnr(rgb, reference)
      if tau == 0 and int(drawn) != full_drawn:  # culling must only skip what the rasterizer culls
        raise RuntimeError(f"camera {f}: tau=0 drew {int(drawn)} Gaussians, full detail {full_drawn}")
      rows.append(dict(frame=f, tau=tau, selected=int(selected), drawn=int(drawn), select_ms=select_s * 1e3,
                       render_ms=render_s * 1e3, frame_ms=(select_s + render_s) * 1e3, flip=flip, psnr=psnr,
                       overflow=bool(overflow or sel_overflow)))
      strip.append(np.asarray(rgb))
      log.info("frame %d tau %g: %d selected, %d drawn, select %.1f ms, render %.1f ms, FLIP %.4f", f, tau, int(selected),
               int(drawn), select_s * 1e3, render_s * 1e3, flip)
    strips.append(np.concatenate([to_uint8(s) for s in strip], axis=1))
  return dict(bundle=bundle_path, bundle_levels=[b.gaussians_per_level() for b in bundles], instances=args.instances,
              full_detail_gaussians=full_size, width=args.width, height=args.height, taus=list(args.taus), rows=rows), strips


def plot(stem: pathlib.Path, result: dict, strips) -> None:
  import imageio.v3 as iio  # noqa: PLC0415
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  from jaxlab.files import write_bytes  # noqa: PLC0415
  rows = result["rows"]
  frames = sorted({r["frame"] for r in rows})
  for key, label, name in (("frame_ms", "select + render (ms)", "time"), ("flip", "FLIP vs 2x SSAA full detail", "flip")):
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for f in frames:
      cut = [r for r in rows if r["frame"] == f and r["tau"] != "full" and r["tau"] > 0]
      full = next(r for r in rows if r["frame"] == f and r["tau"] == "full")
      line, = ax.plot([r["tau"] for r in cut], [r[key] for r in cut], marker="o", label=f"camera {f}")
      ax.axhline(full[key], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tau (pixels²); dotted: full detail")
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes(f"{stem}_{name}.png", buffer.getvalue())
  write_bytes(f"{stem}_strip.png", iio.imwrite("<bytes>", np.concatenate(strips, axis=0), extension=".png"))


def device_check() -> bool:
  """On the accelerator: tau = 0 draws what the full-detail scene draws, on a small scene."""
  bundle, _ = build_bundle(donut_gaussians(3000), BuildSettings(max_cluster_size=256, local_splat=LocalSplatSettings(iterations=4)))
  scene = compose_scene([bundle], donut_sea_instances(16, seed=1))
  camera = camera_path(1, 320, 180, 8.0)[0]
  full, _, _ = select_and_gather(scene, camera, 0.0, capacity=scene.full_detail_size(), cull=False)
  a, _, _ = draw(full, camera, capacity=1 << 18)
  gathered, _, _ = select_and_gather(scene, camera, 0.0, capacity=scene.full_detail_size())
  b, _, _ = draw(gathered, camera, capacity=1 << 18)
  error = common.max_relative_error(b, a)
  print(f"device check: tau=0 vs full detail max relative error {error:.2e}")
  return error < 1e-5


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--bundle", default=None, help="donut bundle .npz (read if present, else built and written there)")
  parser.add_argument("--build-iterations", type=int, default=640)
  parser.add_argument("--layout", default=None, help="a layout file (jaxlab.splat.lod.read_layout); default: DonutSea-like")
  parser.add_argument("--instances", type=int, default=1024, help="donuts of the default layout")
  parser.add_argument("--frames", type=int, default=3)
  parser.add_argument("--width", type=int, default=None)
  parser.add_argument("--height", type=int, default=None)
  parser.add_argument("--taus", type=float, nargs="+", default=DEFAULT_TAUS)
  parser.add_argument("--repeats", type=int, default=None)
  parser.add_argument("--device-check", action="store_true")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  on_cpu = jax.default_backend() == "cpu"
  args.width = args.width or (320 if on_cpu else 1920)
  args.height = args.height or (180 if on_cpu else 1080)
  args.repeats = args.repeats or (1 if on_cpu else 5)
  if args.device_check and not device_check():
    print("device check FAILED")
    return 1
  result, strips = evaluate(args)
  result["environment"] = common.environment()
  common.write_json(args.out, result)
  plot(pathlib.Path(args.out).with_suffix(""), result, strips)
  print(common.format_table(result["rows"], [("frame", "camera"), ("tau", "tau"), ("selected", "selected"),
                                             ("drawn", "drawn"), ("select_ms", "select ms"), ("render_ms", "render ms"),
                                             ("flip", "FLIP"), ("psnr", "PSNR")]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
