"""Blender-layout object datasets rendered by pybullet's own renderer (TinyRenderer).

An outside renderer for checking scene fitting on data jaxlab did not make: pybullet_data's
textured duck, a Franka Panda arm and a table (meshes with their own materials and
textures), scaled to about 3 units across, seen from the same camera sphere as
`jaxlab.testing.mesh_views` (5.5 units). Alpha comes from pybullet's segmentation mask,
rendered at 4x and box-averaged so silhouettes are soft like a path tracer's. Needs
`pip install pybullet` (not a jaxlab dependency); of jaxlab it loads only the NumPy-only
`mesh_views` module, by path, so any interpreter with pybullet, NumPy and imageio runs it.

  python benchmarks/object_views_pybullet.py OUT --scene duck --width 64 --num-train 48
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np


def _mesh_views():
  path = pathlib.Path(__file__).resolve().parents[1] / "jaxlab" / "testing" / "mesh_views.py"
  spec = importlib.util.spec_from_file_location("mesh_views", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # its dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


mesh_views = _mesh_views()
CAMERA_ANGLE_X = mesh_views.CAMERA_ANGLE_X
SCENES = ("duck", "panda", "table_duck")


def _load_scene(p, data: pathlib.Path, name: str) -> None:
  """Loads the named objects into pybullet, centred near the origin, about 3 units across."""
  upright = p.getQuaternionFromEuler([math.pi / 2, 0, 0])
  if name == "duck":  # the mesh spans about 1.7 x 1.2 x 1.5 at scale 1
    visual = p.createVisualShape(p.GEOM_MESH, fileName=str(data / "duck.obj"), meshScale=[1.8] * 3)
    p.createMultiBody(baseVisualShapeIndex=visual, basePosition=[0.24, 0.07, -1.57], baseOrientation=upright)
  elif name == "panda":  # 1.1 tall at scale 1; bent so that it is not a thin column
    robot = p.loadURDF(str(data / "franka_panda" / "panda.urdf"), basePosition=[0.3, 0, -1.2], globalScaling=2.4,
                       useFixedBase=True)
    for joint, angle in enumerate((0.4, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8)):
      p.resetJointState(robot, joint, angle)
  elif name == "table_duck":  # the table top is 1.5 x 1.0 at height 0.63 at scale 1
    p.loadURDF(str(data / "table" / "table.urdf"), basePosition=[0, 0, -1.2], globalScaling=1.9)
    visual = p.createVisualShape(p.GEOM_MESH, fileName=str(data / "duck.obj"), meshScale=[0.8] * 3)
    p.createMultiBody(baseVisualShapeIndex=visual, basePosition=[0.1, -0.1, -0.08],
                      baseOrientation=p.getQuaternionFromEuler([math.pi / 2, 0, 0.7]))
  else:
    raise ValueError(f"unknown scene {name!r}; choose one of {SCENES}")


def render(p, pose_44: np.ndarray, width: int, oversample: int = 4) -> np.ndarray:
  """[H, W, 4] uint8 RGBA (straight alpha) from pybullet's TinyRenderer."""
  size = width * oversample
  eye = pose_44[:3, 3]
  view = p.computeViewMatrix(eye.tolist(), (eye - pose_44[:3, 2]).tolist(), pose_44[:3, 1].tolist())
  projection = p.computeProjectionMatrixFOV(math.degrees(CAMERA_ANGLE_X), 1.0, 0.1, 50.0)
  _, _, rgba, _, segmentation = p.getCameraImage(size, size, view, projection, renderer=p.ER_TINY_RENDERER,
                                                 lightDirection=[0.4, -0.5, 0.75], shadow=0)
  rgb = np.asarray(rgba, np.float64).reshape(size, size, 4)[..., :3] / 255.0
  hit = (np.asarray(segmentation).reshape(size, size) >= 0).astype(np.float64)
  blocks = lambda a: a.reshape(width, oversample, width, oversample, *a.shape[2:]).sum(axis=(1, 3))
  hits = blocks(hit)
  color = blocks(rgb * hit[..., None]) / np.maximum(hits, 1)[..., None]
  alpha = hits / oversample**2
  return np.round(np.concatenate([color, alpha[..., None]], axis=-1) * 255).astype(np.uint8)


def write_dataset(out: pathlib.Path, scene: str, *, width: int = 64, num_train: int = 48, num_test: int = 8,
                  radius: float = 5.5, seed: int = 0) -> pathlib.Path:
  import imageio.v3 as iio  # noqa: PLC0415
  import pybullet as p  # noqa: PLC0415
  import pybullet_data  # noqa: PLC0415

  if out.exists():
    raise FileExistsError(f"{out} exists; write_dataset makes a new folder")
  out.parent.mkdir(parents=True, exist_ok=True)
  final, out = out, pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
  client = p.connect(p.DIRECT)
  try:
    _load_scene(p, pathlib.Path(pybullet_data.getDataPath()), scene)
    splits = (("train", mesh_views.sphere_poses(num_train, radius, seed)),
              ("test", mesh_views.sphere_poses(num_test, radius, seed + 1000)))
    for split, poses in splits:
      (out / split).mkdir()
      frames = []
      for i, pose in enumerate(poses):
        iio.imwrite(out / split / f"r_{i}.png", render(p, pose, width))
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": pose.tolist()})
      (out / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}))
    os.rename(out, final)  # renamed when complete: a crash leaves no half dataset under the target name
  finally:
    p.disconnect(client)
    shutil.rmtree(out, ignore_errors=True)
  return final


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out", type=pathlib.Path)
  parser.add_argument("--scene", default="duck", choices=SCENES)
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--num-train", type=int, default=48)
  parser.add_argument("--num-test", type=int, default=8)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  write_dataset(args.out, args.scene, width=args.width, num_train=args.num_train, num_test=args.num_test, seed=args.seed)
  print(args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
