"""What a fitting run shows a person: side-by-side PNGs, turntable animations, orbit cameras.

Images are encoded in memory in the named format (whatever the file name's suffix) and
then written with `jaxlab.files.write_bytes`, so a failure never leaves a half-written
file in place of an earlier one.
"""

import os
import pathlib

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np

from jaxlab.files import write_bytes
from jaxlab.splat.camera import Camera, look_at


def to_uint8(image_hw3) -> np.ndarray:
  """[H, W, 3] float image in [0, 1] -> uint8 (clipped)."""
  return (np.clip(np.asarray(image_hw3, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def side_by_side(render_hw3, target_hw3) -> np.ndarray:
  """`render | target`: uint8 [H, W_render + W_target, 3] from two float images in [0, 1] (clipped)."""
  return np.concatenate([to_uint8(render_hw3), to_uint8(target_hw3)], axis=1)


def save_png(path: str | os.PathLike, image_hw3: np.ndarray) -> pathlib.Path:
  """Writes a uint8 [H, W, 3] image as PNG (creating parent folders); replaces `path` atomically."""
  path = pathlib.Path(path)
  write_bytes(path, iio.imwrite("<bytes>", image_hw3, extension=".png"), make_parents=True)
  return path


def save_side_by_side(path: str | os.PathLike, render_hw3, target_hw3) -> pathlib.Path:
  """Writes `render | target` as one PNG (creating parent folders); replaces `path` atomically."""
  return save_png(path, side_by_side(render_hw3, target_hw3))


def save_animation(path: str | os.PathLike, frames_thw3, *, fps: int = 12) -> pathlib.Path:
  """Writes frames [T, H, W, 3] in [0, 1] as a looping GIF (creating parent folders); replaces `path` atomically."""
  path = pathlib.Path(path)
  frames_thw3 = np.stack([to_uint8(f) for f in frames_thw3])
  data = iio.imwrite("<bytes>", frames_thw3, extension=".gif", duration=1000.0 / fps, loop=0)
  write_bytes(path, data, make_parents=True)
  return path


def orbit_cameras(template: Camera, *, center_3, radius: float, height: float, num_frames: int, up_3=(0.0, 0.0, 1.0)) -> Camera:
  """`num_frames` cameras on a horizontal circle around `center_3`, looking at it.

  Intrinsics and image size come from `template` (a single camera). `up_3` is the world's
  up direction; the circle lies in the plane orthogonal to it, `height` above the centre.
  """
  if template.batch_shape:
    raise ValueError(f"orbit_cameras needs one template camera; got a batch of shape {template.batch_shape}")
  up = np.asarray(up_3, np.float64)
  up = up / np.linalg.norm(up)
  first = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
  first /= np.linalg.norm(first)
  second = np.cross(up, first)
  angles = np.linspace(0.0, 2.0 * np.pi, num_frames, endpoint=False)
  center = np.asarray(center_3, np.float64)
  eyes = center + radius * (np.cos(angles)[:, None] * first + np.sin(angles)[:, None] * second) + height * up
  c2w = look_at(jnp.asarray(eyes, jnp.float32), jnp.asarray(np.broadcast_to(center, eyes.shape), jnp.float32), up_3=jnp.asarray(np.broadcast_to(up, eyes.shape), jnp.float32))
  w2c = jnp.linalg.inv(c2w)
  batch = lambda x: jnp.broadcast_to(x, (num_frames,))
  return Camera(
      fx=batch(template.fx), fy=batch(template.fy), cx=batch(template.cx), cy=batch(template.cy),
      world_to_camera=w2c, near=batch(template.near), far=batch(template.far),
      width=template.width, height=template.height,
  )
