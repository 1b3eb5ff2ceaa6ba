"""Scene fitting on object datasets without a point cloud, made by renderers other than jaxlab's.

Writes NeRF-synthetic-style datasets (48 train and 8 test views of 64x64 on a 5.5-unit camera
sphere, RGBA, no points) and runs the default `configs/splat_fit.py` on each, one
`launch.run` process at a time, then prints test PSNR, SSIM, Gaussians and wall time:

- `mesh:<object>`: textured triangle meshes ray-cast in NumPy (`jaxlab.testing.mesh_views`);
- `pybullet:<scene>`: pybullet's TinyRenderer on its bundled meshes
  (`benchmarks/object_views_pybullet.py`), run by `--pybullet-python` (an interpreter with
  `pybullet` installed; it is not a jaxlab dependency).

  python benchmarks/splat_fit_objects.py --out-dir runs/objects --out runs/objects.json \
      --datasets mesh:toy mesh:knot pybullet:duck pybullet:table_duck --pybullet-python /opt/pb/bin/python
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

if __package__ in (None, ""):
  # Run as a script from a checkout: make `jaxlab` and `benchmarks` importable.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import common
from jaxlab.testing import mesh_views

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_dataset(spec: str, root: pathlib.Path, pybullet_python: str | None, *, width: int, num_train: int,
                 num_test: int) -> pathlib.Path:
  kind, _, name = spec.partition(":")
  path = root / "data" / f"{kind}_{name}"
  if path.exists():
    return path
  if kind == "mesh":
    return mesh_views.write_dataset(path, object_name=name, width=width, num_train=num_train, num_test=num_test)
  if kind == "pybullet":
    if not pybullet_python:
      raise SystemExit(f"{spec} needs --pybullet-python (an interpreter with pybullet installed)")
    subprocess.run([pybullet_python, str(REPO / "benchmarks" / "object_views_pybullet.py"), str(path), "--scene", name,
                    "--width", str(width), "--num-train", str(num_train), "--num-test", str(num_test)], check=True)
    return path
  raise SystemExit(f"unknown dataset kind in {spec!r}: use mesh:<object> or pybullet:<scene>")


def fit(data: pathlib.Path, workdir: pathlib.Path, overrides: list[str]) -> dict:
  if workdir.exists():  # a run there would resume, not fit from the start
    raise SystemExit(f"{workdir} exists: move it away or choose another --out-dir")
  command = [sys.executable, "-m", "launch.run", "--config=configs/splat_fit.py", f"--workdir={workdir}",
             f"--config.data.path={data}", "--config.data.format=blender", *overrides]
  started = time.monotonic()
  subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  result = json.loads((workdir / "result.json").read_text())
  return {"eval_psnr": result["eval/psnr"], "eval_ssim": result["eval/ssim"], "train_psnr": result["train/psnr"],
          "gaussians": int(result["train/num_active"]), "wall_s": time.monotonic() - started,
          "command": " ".join(command[1:])}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", nargs="+", default=["mesh:toy", "mesh:knot"])
  parser.add_argument("--out-dir", type=pathlib.Path, required=True, help="datasets and run folders go here")
  parser.add_argument("--out", type=pathlib.Path, help="JSON results")
  parser.add_argument("--pybullet-python", help="a Python interpreter with pybullet installed")
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--num-train", type=int, default=48)
  parser.add_argument("--num-test", type=int, default=8)
  parser.add_argument("--override", action="append", default=[], help="extra --config.KEY=VALUE for every run")
  args = parser.parse_args()

  rows = []
  for spec in args.datasets:
    data = make_dataset(spec, args.out_dir, args.pybullet_python, width=args.width, num_train=args.num_train,
                        num_test=args.num_test)
    row = {"dataset": spec, **fit(data, args.out_dir / "runs" / spec.replace(":", "_"), args.override)}
    rows.append(row)
    print(f"{spec}: test PSNR {row['eval_psnr']:.2f} dB, SSIM {row['eval_ssim']:.3f}, {row['gaussians']} Gaussians,"
          f" {row['wall_s'] / 60:.1f} min", flush=True)
    if args.out:
      common.write_json(args.out, {"rows": rows, **common.environment()})
  columns = [("dataset", "dataset"), ("eval_psnr", "test PSNR (dB)"), ("eval_ssim", "test SSIM"),
             ("train_psnr", "train PSNR (dB)"), ("gaussians", "Gaussians"), ("wall_s", "wall (s)")]
  print(common.format_table(rows, columns))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
