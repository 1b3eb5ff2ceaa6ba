r"""Opens a scene, a training run, an LOD bundle or demonstrations in the browser.

  python -m jaxlab.view runs/splat                                   # a splat_fit run, live
  python -m jaxlab.view output/garden/point_cloud/iteration_30000/point_cloud.ply
  python -m jaxlab.view runs/v3dg_asset/bundle.npz                   # tau slider
  python -m jaxlab.view runs/robosplat                               # generated demonstrations

Then open the printed address (forward the port when the viewer runs on a remote machine:
`ssh -L 8080:localhost:8080 host`). Frames are drawn by jaxlab on this machine's devices.
"""

from __future__ import annotations

import argparse
import logging
import sys

from jaxlab.view.errors import SourceError
from jaxlab.view.session import Resolution


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m jaxlab.view", description=__doc__.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("path", help="an INRIA PLY, a configs/splat_fit.py run folder, an LOD bundle (.npz), "
                      "a layout (.json) or a demonstrations folder")
  parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines (default: this one only)")
  parser.add_argument("--port", type=int, default=8080, help="first port to try; the next free one is used if taken")
  parser.add_argument("--resolution", type=int, default=None,
                      help="longer image side of a still frame (default: 320 on CPU, 1024 on an accelerator)")
  parser.add_argument("--moving-scale", type=float, default=0.25, help="resolution factor while the camera moves")
  parser.add_argument("--screenshots", default="screenshots", help="folder the screenshot button writes to")
  parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often a run folder is checked for checkpoints")
  return parser.parse_args(argv)


def default_resolution() -> int:
  import jax  # after argument parsing, so --help is instant
  return 320 if jax.default_backend() == "cpu" else 1024


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if not 0 < args.moving_scale <= 1:
    print(f"error: --moving-scale must be in (0, 1], got {args.moving_scale}", file=sys.stderr)
    return 2
  try:
    from jaxlab.view.app import Viewer
  except ModuleNotFoundError as e:
    if e.name != "viser":
      raise
    print("error: the viewer needs viser: pip install -e '.[view]' (or pip install viser)", file=sys.stderr)
    return 2
  from jaxlab.view.detect import open_source
  try:
    source = open_source(args.path)
  except SourceError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  resolution = Resolution(max_side=args.resolution or default_resolution(), moving_scale=args.moving_scale)
  viewer = Viewer(source, host=args.host, port=args.port, resolution=resolution, screenshots=args.screenshots,
                  poll_seconds=args.poll_seconds)
  viewer.serve_forever()
  return 0


if __name__ == "__main__":
  sys.exit(main())
