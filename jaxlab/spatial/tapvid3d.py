"""Reads one TAPVid-3D clip (an .npz file) into a `TrackScene`, its tracks moved to the world frame.

Keys of a released clip:

  images_jpeg_bytes  [T]        JPEG-encoded RGB frames (an object array of bytes, or fixed-width bytes)
  tracks_XYZ         [T, N, 3]  track points in each frame's camera coordinates (OpenCV axes), metres
  visibility         [T, N]     whether each point is visible in each frame
  fx_fy_cx_cy        [4]        pinhole intrinsics of the frames
  queries_xyt        [N, 3]     the query of each track (checked for shape, not used)
  extrinsics_w2c     [T, 4, 4]  world-to-camera per frame (ADT, PStudio); absent: a static camera

Points go to the world through inv(w2c); without extrinsics the camera is the world, so the world
frame is then the camera's (y down), not z up. Object-movement questions express displacements in a
camera's frame, which makes them independent of that choice. `source` defaults to the folder the
file lies in (the release's layout is `<root>/adt/<clip>.npz`, `<root>/pstudio/<clip>.npz`).

The released files store the JPEG bytes as an object array, which numpy loads only with pickling
allowed; the reader allows it for that one key and only when the plain load refuses.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
from PIL import Image

from jaxlab.spatial.scene import SceneError, TrackScene

REQUIRED_KEYS = ("images_jpeg_bytes", "tracks_XYZ", "visibility", "fx_fy_cx_cy", "queries_xyt")


def read_tapvid3d_npz(path: str | os.PathLike, *, source: str | None = None,
                      max_frames: int | None = None) -> TrackScene:
  """The TAPVid-3D clip at `path` as a `TrackScene` (module docstring for the keys and the frames).

  Args:
    path: the clip's .npz file.
    source: the dataset it comes from; None: the name of the file's folder.
    max_frames: keep only the first `max_frames` frames.

  Raises:
    FileNotFoundError: no such file.
    SceneError: a key is missing, shapes disagree, a frame does not decode, a visible point is NaN,
      or no point is visible at all (the file and the problem named).
  """
  if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
    raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"TAPVid-3D file {path} does not exist")
  if source is None:
    source = os.path.basename(os.path.dirname(os.path.abspath(path)))
  arrays = _load_arrays(path)

  tracks_tn3 = np.asarray(arrays["tracks_XYZ"], np.float64)
  if tracks_tn3.ndim != 3 or tracks_tn3.shape[2] != 3:
    raise SceneError(f"{path}: tracks_XYZ must be [T, N, 3], got shape {tracks_tn3.shape}")
  t, n = tracks_tn3.shape[:2]
  visible_tn = np.asarray(arrays["visibility"])
  if visible_tn.shape != (t, n):
    raise SceneError(f"{path}: visibility must be [T, N] = [{t}, {n}] like tracks_XYZ, got {visible_tn.shape}")
  if visible_tn.dtype != bool and not np.all((visible_tn == 0) | (visible_tn == 1)):
    raise SceneError(f"{path}: visibility must be boolean (or 0/1)")
  visible_tn = visible_tn.astype(bool)
  intrinsics_4 = np.asarray(arrays["fx_fy_cx_cy"], np.float64)
  if intrinsics_4.shape != (4,) or not np.all(np.isfinite(intrinsics_4)) or np.any(intrinsics_4[:2] <= 0):
    raise SceneError(f"{path}: fx_fy_cx_cy must be 4 finite numbers with positive focal lengths, got "
                     f"{intrinsics_4.ravel()[:8]}")
  queries = np.asarray(arrays["queries_xyt"])
  if queries.shape != (n, 3):
    raise SceneError(f"{path}: queries_xyt must be [N, 3] = [{n}, 3], got {queries.shape}")
  jpegs = arrays["images_jpeg_bytes"]
  if jpegs.ndim != 1 or jpegs.shape[0] != t:
    raise SceneError(f"{path}: images_jpeg_bytes must hold one image per frame ({t}), got shape {jpegs.shape}")
  if "extrinsics_w2c" in arrays:
    world_to_cam_t44 = np.asarray(arrays["extrinsics_w2c"], np.float64)
    if world_to_cam_t44.shape != (t, 4, 4):
      raise SceneError(f"{path}: extrinsics_w2c must be [T, 4, 4] = [{t}, 4, 4], got {world_to_cam_t44.shape}")
  else:
    world_to_cam_t44 = np.broadcast_to(np.eye(4), (t, 4, 4))

  keep = t if max_frames is None else min(t, int(max_frames))
  tracks_tn3, visible_tn = tracks_tn3[:keep], visible_tn[:keep]
  world_to_cam_t44 = world_to_cam_t44[:keep]
  if not visible_tn.any():
    within = f" in its first {keep} frames" if keep < t else ""
    raise SceneError(f"{path}: every track point is invisible in every frame{within}: nothing to track")
  bad_tn = visible_tn & ~np.all(np.isfinite(tracks_tn3), axis=2)
  if bad_tn.any():
    frame, point = (int(i) for i in np.argwhere(bad_tn)[0])
    raise SceneError(f"{path}: {int(bad_tn.sum())} visible track point(s) are NaN or inf in tracks_XYZ, the first "
                     f"point {point} in frame {frame}")
  cam_to_world_t44 = _invert_rigid(world_to_cam_t44, path)
  rgb_thw3 = _decode_frames(jpegs[:keep], path)
  height, width = rgb_thw3.shape[1:3]
  fx, fy, cx, cy = intrinsics_4
  if not (0 < cx < width and 0 < cy < height):
    raise SceneError(f"{path}: principal point ({cx:.1f}, {cy:.1f}) lies outside the {width}x{height} frames: "
                     "the intrinsics do not belong to these images")
  # Camera point p_c at frame t goes to the world as R_t p_c + o_t (R_t, o_t of cam_to_world).
  points_world_tn3 = (np.einsum("tij,tnj->tni", cam_to_world_t44[:, :3, :3], tracks_tn3)
                      + cam_to_world_t44[:, None, :3, 3])
  intrinsics_33 = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
  name = os.path.splitext(os.path.basename(path))[0]
  return TrackScene(name=name, source=source, rgb_thw3=rgb_thw3, intrinsics_33=intrinsics_33,
                    cam_to_world_t44=cam_to_world_t44, points_world_tn3=points_world_tn3, visible_tn=visible_tn)


def _load_arrays(path: str) -> dict[str, np.ndarray]:
  """The clip's arrays by key; the JPEG object array is unpickled only when the plain load refuses it."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      missing = [k for k in REQUIRED_KEYS if k not in npz.files]
      if missing:
        raise SceneError(f"{path}: missing key(s) {', '.join(missing)} (a TAPVid-3D clip has "
                         f"{', '.join(REQUIRED_KEYS)} and, for a moving camera, extrinsics_w2c)")
      arrays = {k: npz[k] for k in npz.files if k != "images_jpeg_bytes"}
      try:
        arrays["images_jpeg_bytes"] = npz["images_jpeg_bytes"]
      except ValueError:  # an object array of bytes, as released
        with np.load(path, allow_pickle=True) as pickled:
          arrays["images_jpeg_bytes"] = np.asarray(pickled["images_jpeg_bytes"])
  except (zipfile.BadZipFile, EOFError, OSError) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise SceneError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
  except ValueError as e:
    if isinstance(e, SceneError):
      raise
    raise SceneError(f"{path}: not a readable TAPVid-3D .npz ({e})") from None
  return arrays


def _invert_rigid(world_to_cam_t44: np.ndarray, path: str) -> np.ndarray:
  for i, matrix in enumerate(world_to_cam_t44):
    rotation = matrix[:3, :3]
    if (not np.all(np.isfinite(matrix)) or not np.allclose(matrix[3], [0, 0, 0, 1])
        or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3)):
      raise SceneError(f"{path}: extrinsics_w2c of frame {i} is not a finite rigid transform")
  rotation_t33 = world_to_cam_t44[:, :3, :3]
  inverse_t44 = np.zeros_like(world_to_cam_t44)
  inverse_t44[:, :3, :3] = np.transpose(rotation_t33, (0, 2, 1))
  inverse_t44[:, :3, 3] = -np.einsum("tji,tj->ti", rotation_t33, world_to_cam_t44[:, :3, 3])
  inverse_t44[:, 3, 3] = 1.0
  return inverse_t44


def _decode_frames(jpegs: np.ndarray, path: str) -> np.ndarray:
  frames = []
  for i, data in enumerate(jpegs):
    try:
      raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
      with Image.open(io.BytesIO(raw)) as image:
        frames.append(np.asarray(image.convert("RGB"), np.uint8))
    except (OSError, TypeError, ValueError) as e:
      raise SceneError(f"{path}: frame {i} of images_jpeg_bytes does not decode as an image ({e})") from None
    if frames[-1].shape != frames[0].shape:
      raise SceneError(f"{path}: frame {i} is {frames[-1].shape[1]}x{frames[-1].shape[0]}, frame 0 is "
                       f"{frames[0].shape[1]}x{frames[0].shape[0]}")
  return np.stack(frames)
