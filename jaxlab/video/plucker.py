"""Plücker ray maps: the per-pixel camera encoding of CameraCtrl.

For each pixel centre (+0.5) of each frame: the unit world direction d of the ray through it and its
moment o x d (o the camera centre), stacked as the 6 channels (o x d, d). The moment fixes the line
(not just its direction), so the map encodes where the camera is as well as where it looks.

With `relative=True` (the default, as CameraCtrl) the cameras are first expressed in frame 0's camera
frame, c2w_0^-1 c2w_f: frame 0 then has d = its camera-space ray directions and a zero moment, and
the map does not change when the whole trajectory is moved by a rigid transform of the world.

Works on numpy arrays (computed in float64, returned as float32 numpy) and on jax arrays or tracers
(computed with jax.numpy in the inputs' float dtype, returned as a float32 jax array).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import _compat


def plucker_rays(intrinsics_f33, cam_to_world_f44, height: int, width: int, *, relative: bool = True):
  """float32 [F, H, W, 6] (o x d, d) per pixel (module docstring).

  intrinsics_f33: [F, 3, 3] pinhole intrinsics in pixels, or one [3, 3] for every frame.
  cam_to_world_f44: [F, 4, 4] camera-to-world with OpenCV camera axes (rotation part a rotation).
  """
  use_jax = any(isinstance(x, (jax.Array, _compat.Tracer)) for x in (intrinsics_f33, cam_to_world_f44))
  xp = jnp if use_jax else np
  if use_jax:
    k, c2w = jnp.asarray(intrinsics_f33), jnp.asarray(cam_to_world_f44)
    dtype = jnp.promote_types(jnp.promote_types(k.dtype, c2w.dtype), jnp.float32)
    k, c2w = k.astype(dtype), c2w.astype(dtype)
  else:
    k, c2w = np.asarray(intrinsics_f33, np.float64), np.asarray(cam_to_world_f44, np.float64)
  if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or c2w.shape[0] < 1:
    raise ValueError(f"cam_to_world must be [F, 4, 4] with F >= 1, got shape {tuple(c2w.shape)}")
  num_frames = c2w.shape[0]
  if k.shape == (3, 3):
    k = xp.broadcast_to(k, (num_frames, 3, 3))
  if k.shape != (num_frames, 3, 3):
    raise ValueError(f"intrinsics must be [3, 3] or [F, 3, 3] = {(num_frames, 3, 3)}, got shape {tuple(k.shape)}")
  if int(height) < 1 or int(width) < 1:
    raise ValueError(f"height and width must be >= 1, got {height}x{width}")
  rot_f33, origin_f3 = c2w[:, :3, :3], c2w[:, :3, 3]
  if relative:  # c2w_0^-1 c2w_f for a rigid c2w_0: rotation R0^T R_f, centre R0^T (t_f - t_0)
    rot0_t = xp.swapaxes(rot_f33[0], 0, 1)
    rot_f33 = xp.einsum("ij,fjk->fik", rot0_t, rot_f33)
    origin_f3 = (origin_f3 - origin_f3[0]) @ rot0_t.T
  v, u = np.mgrid[0:int(height), 0:int(width)].astype(np.float64) + 0.5
  pix_hw3 = xp.asarray(np.stack([u, v, np.ones_like(u)], axis=-1), dtype=k.dtype)
  cam_fhw3 = xp.einsum("fij,hwj->fhwi", xp.linalg.inv(k), pix_hw3)
  dir_fhw3 = xp.einsum("fij,fhwj->fhwi", rot_f33, cam_fhw3)
  dir_fhw3 = dir_fhw3 / xp.linalg.norm(dir_fhw3, axis=-1, keepdims=True)
  moment_fhw3 = xp.cross(xp.broadcast_to(origin_f3[:, None, None, :], dir_fhw3.shape), dir_fhw3)
  return xp.concatenate([moment_fhw3, dir_fhw3], axis=-1).astype(xp.float32)
