"""Multi-view captures of the simulated scene: images, depth, per-body and per-link segmentation.

These are the "photographs" of the real scene: the Gaussian background is fitted to them
(written in the Blender / NeRF layout that `jaxlab.splat.datasets.load_dataset` reads) and
the robot links and the object take their colours from them through the segmentation masks.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from jaxlab.robosplat.sim.cameras import CameraSpec, render
from jaxlab.robosplat.sim.world import Light, World

# OpenCV camera axes -> OpenGL (Blender) camera axes: flip y and z.
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def capture_views(world: World, cameras: Sequence[CameraSpec], *, oversample: int = 1,
                  keep: Collection[int] | None = None, light: Light | None = None) -> list[dict[str, Any]]:
  """Renders every camera; one dict per view.

  Args:
    world: the scene as it stands.
    cameras: the views.
    oversample: render at this many times the resolution per axis and box-average the
      colours (soft silhouettes); depth and segmentation take the sample nearest each
      pixel centre, and the full-resolution segmentation is kept for soft masks.
    keep: body ids left in view; every other body of the world is hidden for the capture
      (None: all visible). E.g. `{world.table, world.floor, world.tray}` for the background.
    light: overrides the world's light.

  Returns:
    dicts with "rgb" uint8 [H, W, 3], "depth" float32 [H, W] (camera z in m, 0 = nothing),
    "body" / "link" int32 [H, W] (pybullet body id, -1 = nothing; link index, -1 = base),
    "body_full" / "link_full" (the same at the rendered resolution), "oversample", "camera".
  """
  oversample = int(oversample)
  if oversample < 1:
    raise ValueError(f"oversample must be >= 1; got {oversample}")
  hide = [] if keep is None else [body for body in world.body_ids.values() if body >= 0 and body not in set(keep)]
  captures = []
  with world.hidden(hide):
    for camera in cameras:
      big = camera.resized(camera.width * oversample, camera.height * oversample)
      result = render(world, big, light=light)
      h, w, o = camera.height, camera.width, oversample
      rgb = result.rgb_hw3.astype(np.float64).reshape(h, o, w, o, 3).mean(axis=(1, 3))
      centre = o // 2
      captures.append({
          "rgb": np.round(rgb).astype(np.uint8),
          "depth": result.depth_hw[centre::o, centre::o].copy(),
          "body": result.body_hw[centre::o, centre::o].copy(),
          "link": result.link_hw[centre::o, centre::o].copy(),
          "body_full": result.body_hw,
          "link_full": result.link_hw,
          "oversample": o,
          "camera": camera,
      })
  return captures


def masks_for(captures: Sequence[dict[str, Any]], body_id: int, link_index: int | None = None, *,
              soft: bool = False) -> np.ndarray:
  """[V, H, W] masks of one body (or one link of it: -1 is the base link) in each capture.

  Bool masks by default (the pixel-centre sample); `soft=True` gives float32 coverage in
  [0, 1] from the oversampled segmentation.
  """
  if not captures:
    raise ValueError("masks_for got no captures")
  masks = []
  for capture in captures:
    suffix = "_full" if soft else ""
    hit = capture["body" + suffix] == body_id
    if link_index is not None:
      hit &= capture["link" + suffix] == link_index
    if soft:
      o = capture["oversample"]
      h, w = hit.shape[0] // o, hit.shape[1] // o
      masks.append(hit.reshape(h, o, w, o).mean(axis=(1, 3)).astype(np.float32))
    else:
      masks.append(hit)
  return np.stack(masks)


def opengl_c2w(camera: CameraSpec) -> np.ndarray:
  """The camera's pose with OpenGL / Blender axes (x right, y up, z backward)."""
  return camera.c2w_44 @ _CV_TO_GL


def write_capture_dataset(out_dir: str | pathlib.Path, captures: Sequence[dict[str, Any]], *,
                          mask: np.ndarray | None = None, depth: bool = True, test_every: int = 0,
                          overwrite: bool = False) -> pathlib.Path:
  """Writes captures as a Blender / NeRF dataset (`transforms_train.json`, RGBA PNGs).

  Args:
    out_dir: the dataset folder; written to a temporary sibling and renamed when complete.
    captures: from `capture_views`; all must share fov_x and image size (one
      `camera_angle_x` per split file).
    mask: [V, H, W] alpha (bool or float in [0, 1]); None: opaque images.
    depth: also write `r_<i>_depth.npy` (camera z, 0 where nothing or masked out).
    test_every: > 0 also writes every n-th view to `transforms_test.json` (they stay in train).
    overwrite: replace an existing `out_dir` (else FileExistsError).

  Returns:
    the dataset folder.
  """
  import imageio.v3 as iio  # noqa: PLC0415

  out = pathlib.Path(out_dir)
  if not captures:
    raise ValueError("write_capture_dataset got no captures")
  if out.exists() and not overwrite:
    raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
  first = captures[0]["camera"]
  for i, capture in enumerate(captures):
    camera = capture["camera"]
    if (camera.width, camera.height) != (first.width, first.height) or not math.isclose(camera.fov_x, first.fov_x):
      raise ValueError(f"capture {i} ({camera.name!r}): {camera.width}x{camera.height}, fov_x {camera.fov_x} differs "
                       f"from capture 0's {first.width}x{first.height}, fov_x {first.fov_x}")
  alpha = None
  if mask is not None:
    alpha = np.asarray(mask, np.float64)
    expected = (len(captures), first.height, first.width)
    if alpha.shape != expected:
      raise ValueError(f"mask must have shape {expected}; got {alpha.shape}")
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
  try:
    (staging / "train").mkdir()
    frames = []
    for i, capture in enumerate(captures):
      a = np.ones((first.height, first.width)) if alpha is None else alpha[i]
      rgba = np.concatenate([capture["rgb"], np.round(255 * np.clip(a, 0, 1))[..., None].astype(np.uint8)], axis=-1)
      iio.imwrite(staging / "train" / f"r_{i}.png", rgba)
      if depth:
        np.save(staging / "train" / f"r_{i}_depth.npy", np.where(a >= 0.5, capture["depth"], 0.0).astype(np.float32))
      frames.append({"file_path": f"./train/r_{i}", "transform_matrix": opengl_c2w(capture["camera"]).tolist(),
                     "camera_name": capture["camera"].name})
    splits = {"train": frames}
    if test_every > 0:
      splits["test"] = frames[::test_every]
    for split, split_frames in splits.items():
      (staging / f"transforms_{split}.json").write_text(
          json.dumps({"camera_angle_x": float(first.fov_x), "frames": split_frames}, indent=1))
    if out.exists():  # overwrite: swap the old folder out only once the new one is complete
      old = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
      os.rename(out, old / "data")
      os.rename(staging, out)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return out
