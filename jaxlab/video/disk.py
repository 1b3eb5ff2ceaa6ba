"""The on-disk layout of a clip (real videos with their annotations, or generated ones), read and written.

    clip_dir/
      meta.json        {"num_identities": N, "fps": 8, "keypoint_layout": "openpose18",
                       "written_by": "jaxlab.video.disk.write_clip"}  (written_by: only write_clip sets it)
      reference.png    RGB uint8 (optional: frame 0 when missing)
      rgb/00000.png ...               RGB uint8, one per frame (also read: gray, RGBA without its alpha, uint16)
      mask/00000.png ...              uint8 or uint16 identity labels, 0 = background, at most N
      depth/00000.png ... (optional)  uint16 millimetres, > 0  (or depth/00000.npy float32 metres)
      normal/00000.png ... (optional) uint8 RGB, n = 2 * v / 255 - 1 (camera space, OpenCV axes)
      poses.json       {"frames": [ [ [[x, y, c] x 18] per person ] per frame ]}  (pixels, centres at
                       +0.5; the same number of persons in every frame, person p = identity p + 1)
      cameras.json     {"intrinsics": one 3x3 or a per-frame list, "cam_to_world": per-frame 4x4 list,
                        "convention": "opencv" or "opengl"}

Frames are numbered from 00000 without gaps; every per-frame source (rgb, mask, depth, normal, poses,
cameras) must hold the same number of frames. An "opengl" camera (x right, y up, z backward) is
turned into OpenCV axes by flipping its y and z axes (c2w @ diag(1, -1, -1, 1)).

Normals are stored with 8 bits per component, so a decoded vector is only nearly unit: every decoded
normal is renormalized to length 1. A decoded vector shorter than `MIN_NORMAL_LENGTH` has no
direction (e.g. (128, 128, 128), or a black background) and is an error.

`read_clip` raises `ClipError` naming the file (and so the frame) that is missing or damaged;
`write_clip` writes the whole folder into a hidden temporary sibling and renames it into place, so a
failed write leaves nothing half-written, and it never deletes a file it did not write.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from jaxlab.files import JSONFileError, read_json_object, write_json
from jaxlab.video.clip import NUM_KEYPOINTS, ClipError, VideoClip

META, REFERENCE, POSES, CAMERAS = "meta.json", "reference.png", "poses.json", "cameras.json"
FRAME_DIRS = ("rgb", "mask", "depth", "normal")
KEYPOINT_LAYOUT = "openpose18"
CONVENTIONS = ("opencv", "opengl")
MIN_NORMAL_LENGTH = 0.5
# meta.json of folders that `write_clip` wrote carries this; only such folders may be overwritten.
WRITER = "jaxlab.video.disk.write_clip"
_FRAME_NAME = re.compile(r"^(\d{5})\.(png|npy)$")
_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_MAX_DEPTH_MM = 65535


def _frame_name(index: int, suffix: str = "png") -> str:
  return f"{index:05d}.{suffix}"


# ------------------------------------------------------------------------------------------------- writing


def _write_layout(clip: VideoClip, folder: Path, fps: float) -> None:
  write_json(folder / META, {"num_identities": clip.num_identities, "fps": fps, "keypoint_layout": KEYPOINT_LAYOUT,
                             "written_by": WRITER})
  to_uint8 = lambda x: np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
  iio.imwrite(folder / REFERENCE, to_uint8(clip.reference_hwc))
  mask_dtype = np.uint8 if clip.num_identities <= 255 else np.uint16
  frames = {"rgb": [to_uint8(x) for x in clip.rgb_fhwc], "mask": [m.astype(mask_dtype) for m in clip.masks_fhw]}
  if clip.depth_fhw is not None:
    depth_mm = np.round(clip.depth_fhw.astype(np.float64) * 1000.0)
    if depth_mm.min() >= 1 and depth_mm.max() <= _MAX_DEPTH_MM:
      frames["depth"] = [d.astype(np.uint16) for d in depth_mm]
    else:  # beyond what uint16 millimetres hold: float32 metres
      frames["depth"] = list(clip.depth_fhw)
  if clip.normal_fhwc is not None:
    frames["normal"] = [to_uint8((n + 1.0) / 2.0) for n in clip.normal_fhwc]
  for kind, images in frames.items():
    (folder / kind).mkdir()
    for index, image in enumerate(images):
      if image.dtype == np.float32:
        np.save(folder / kind / _frame_name(index, "npy"), image)
      else:
        iio.imwrite(folder / kind / _frame_name(index), image)
  write_json(folder / POSES, {"frames": clip.poses_fpk3.tolist()}, indent=None)
  write_json(folder / CAMERAS, {"intrinsics": clip.intrinsics_f33.tolist(),
                                "cam_to_world": clip.cam_to_world_f44.tolist(), "convention": "opencv"}, indent=None)


def _check_replaceable(clip_dir: Path) -> None:
  """Raises FileExistsError unless the folder holds only what `write_clip` writes."""
  if not clip_dir.is_dir():
    raise FileExistsError(f"{clip_dir} exists and is not a directory; not replacing it")
  try:
    writer = read_json_object(clip_dir / META).get("written_by")
  except (OSError, JSONFileError):
    writer = None
  if writer != WRITER:
    raise FileExistsError(f"{clip_dir} was not written by write_clip (its meta.json does not say so); "
                          "not replacing it")
  for entry in clip_dir.iterdir():
    ours = entry.name in (META, REFERENCE, POSES, CAMERAS) and entry.is_file()
    if entry.name in FRAME_DIRS and entry.is_dir():
      foreign = [p for p in entry.iterdir() if not (_FRAME_NAME.match(p.name) and p.is_file())]
      if foreign:
        raise FileExistsError(f"{foreign[0]} was not written by write_clip; not deleting it (move it away first)")
      ours = True
    if not ours:
      raise FileExistsError(f"{entry} was not written by write_clip; not deleting it (move it away first)")


def write_clip(clip: VideoClip, clip_dir: str | os.PathLike, *, overwrite: bool = False, fps: float = 8.0) -> Path:
  """Writes `clip` in the layout of the module docstring to `clip_dir`; returns its path.

  The folder is written as a hidden sibling `.<name>.<random>.tmp` and renamed into place at the end.
  `overwrite=True` replaces an existing clip folder, but only one that `write_clip` wrote (its meta.json
  says so) and that holds nothing but this layout's files (anything else raises FileExistsError before
  any work), so a user's own annotated clip is never deleted. `fps` goes to meta.json.

  Raises:
    FileExistsError: clip_dir exists and overwrite is False, or it holds files of its own.
  """
  clip_dir = Path(clip_dir)
  if not fps > 0:
    raise ValueError(f"fps must be > 0, got {fps}")
  exists = clip_dir.exists() or clip_dir.is_symlink()
  if exists and not overwrite:
    raise FileExistsError(f"{clip_dir} already exists; pass overwrite=True to replace it")
  if exists:
    _check_replaceable(clip_dir)
  clip_dir.parent.mkdir(parents=True, exist_ok=True)
  token = secrets.token_hex(6)
  tmp = clip_dir.parent / f".{clip_dir.name}.{token}.tmp"
  tmp.mkdir()
  try:
    _write_layout(clip, tmp, float(fps))
    if exists:
      old = clip_dir.parent / f".{clip_dir.name}.{token}.old"
      os.rename(clip_dir, old)
      try:
        os.rename(tmp, clip_dir)
      except BaseException:
        os.rename(old, clip_dir)
        raise
      shutil.rmtree(old)
    else:
      os.rename(tmp, clip_dir)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp)
  return clip_dir


# ------------------------------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
  if not path.is_file():
    raise ClipError(f"{path} is missing")
  try:
    return read_json_object(path)
  except JSONFileError as e:
    raise ClipError(str(e)) from None


def _read_image(path: Path) -> np.ndarray:
  try:
    if path.suffix == ".npy":
      return np.load(path, allow_pickle=False)
    return iio.imread(path)
  except (OSError, ValueError, SyntaxError, RuntimeError, EOFError) as e:  # what PIL and numpy raise on damaged files
    raise ClipError(f"{path} is unreadable or damaged: {e}") from None


def _frame_paths(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
  """The frame files 00000.* ... of `folder`, one per index, numbered without gaps."""
  by_index: dict[int, Path] = {}
  for path in folder.iterdir():
    if path.name.startswith(".") or path.suffix not in suffixes:
      continue
    match = _FRAME_NAME.match(path.name)
    if not match:
      raise ClipError(f"{path}: frame files must be named 00000{path.suffix}, 00001{path.suffix}, ...")
    index = int(match.group(1))
    if index in by_index:
      raise ClipError(f"{folder} holds frame {index} twice: {by_index[index].name} and {path.name}")
    by_index[index] = path
  if not by_index:
    raise ClipError(f"{folder} holds no frames")
  count = max(by_index) + 1
  for index in range(count):
    if index not in by_index:
      raise ClipError(f"{folder / _frame_name(index)} is missing ({folder.name}/ holds frames up to "
                      f"{_frame_name(count - 1)})")
  return [by_index[i] for i in range(count)]


def _check_count(what: str, count: int, num_frames: int) -> None:
  if count != num_frames:
    raise ClipError(f"{what} holds {count} frames but rgb/ holds {num_frames}")


def _check_size(path: Path, image: np.ndarray, size: tuple[int, int]) -> None:
  if image.shape[:2] != size:
    raise ClipError(f"{path} is {image.shape[1]}x{image.shape[0]} (width x height) but the video is "
                    f"{size[1]}x{size[0]}")


def _as_rgb(path: Path, image: np.ndarray) -> np.ndarray:
  """Float RGB in [0, 1] of an 8- or 16-bit gray, RGB or RGBA image."""
  if image.dtype not in (np.uint8, np.uint16):
    raise ClipError(f"{path} must be an 8- or 16-bit image, got dtype {image.dtype}")
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4):
    raise ClipError(f"{path} must be an RGB image, got shape {image.shape}")
  return image[..., :3].astype(np.float32) / np.float32(np.iinfo(image.dtype).max)


def _read_rgb(folder: Path) -> np.ndarray:
  if not folder.is_dir():
    raise ClipError(f"{folder} is missing")
  paths = _frame_paths(folder, (".png",))
  frames = []
  for path in paths:
    frame = _as_rgb(path, _read_image(path))
    if frames:
      _check_size(path, frame, frames[0].shape[:2])
    frames.append(frame)
  return np.stack(frames)


def _read_masks(folder: Path, num_frames: int, size: tuple[int, int], num_identities: int) -> np.ndarray:
  if not folder.is_dir():
    raise ClipError(f"{folder} is missing")
  paths = _frame_paths(folder, (".png",))
  _check_count(f"{folder.name}/", len(paths), num_frames)
  masks = []
  for path in paths:
    mask = _read_image(path)
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
      raise ClipError(f"{path} must be a single-channel 8- or 16-bit label image, got shape {mask.shape} "
                      f"and dtype {mask.dtype}")
    _check_size(path, mask, size)
    if mask.max() > num_identities:
      raise ClipError(f"{path} holds label {int(mask.max())} but meta.json has num_identities = {num_identities}")
    masks.append(mask.astype(np.int32))
  return np.stack(masks)


def _read_depth(folder: Path, num_frames: int, size: tuple[int, int]) -> np.ndarray | None:
  if not folder.is_dir():
    return None
  paths = _frame_paths(folder, (".png", ".npy"))
  _check_count(f"{folder.name}/", len(paths), num_frames)
  frames = []
  for path in paths:
    image = _read_image(path)
    if path.suffix == ".npy":
      if image.ndim != 2 or not np.issubdtype(image.dtype, np.floating):
        raise ClipError(f"{path} must hold a float [H, W] array of metres, got shape {image.shape} and dtype "
                        f"{image.dtype}")
      depth = image.astype(np.float32)
    else:
      if image.ndim != 2 or image.dtype != np.uint16:
        raise ClipError(f"{path} must be a single-channel uint16 PNG of millimetres, got shape {image.shape} and "
                        f"dtype {image.dtype}")
      depth = image.astype(np.float32) / 1000.0
    _check_size(path, depth, size)
    if not (np.isfinite(depth) & (depth > 0)).all():
      raise ClipError(f"{path}: depth must be finite and > 0 everywhere ({int((~(depth > 0)).sum())} pixels are not)")
    frames.append(depth)
  return np.stack(frames)


def _read_normals(folder: Path, num_frames: int, size: tuple[int, int]) -> np.ndarray | None:
  if not folder.is_dir():
    return None
  paths = _frame_paths(folder, (".png",))
  _check_count(f"{folder.name}/", len(paths), num_frames)
  frames = []
  for path in paths:
    image = _read_image(path)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
      raise ClipError(f"{path} must be an 8-bit RGB PNG, got shape {image.shape} and dtype {image.dtype}")
    _check_size(path, image, size)
    normal = 2.0 * image.astype(np.float32) / 255.0 - 1.0
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    if (length < MIN_NORMAL_LENGTH).any():
      raise ClipError(f"{path}: {int((length < MIN_NORMAL_LENGTH).sum())} pixels decode to normals shorter than "
                      f"{MIN_NORMAL_LENGTH} (no direction)")
    frames.append(normal / length)
  return np.stack(frames)


def _read_poses(path: Path, num_frames: int) -> np.ndarray:
  frames = _read_json(path).get("frames")
  if not isinstance(frames, list):
    raise ClipError(f"{path} must hold {{\"frames\": [...]}} with one list of persons per frame")
  _check_count(path.name, len(frames), num_frames)
  persons = {len(f) if isinstance(f, list) else -1 for f in frames}
  if len(persons) != 1 or -1 in persons:
    raise ClipError(f"{path}: every frame must list the same number of persons, got counts {sorted(persons)}")
  num_persons = persons.pop()
  if num_persons == 0:
    return np.zeros((num_frames, 0, NUM_KEYPOINTS, 3), np.float32)
  try:
    poses = np.asarray(frames, np.float32)
  except (ValueError, TypeError):
    poses = None  # ragged or not numbers
  if poses is None or poses.shape != (num_frames, num_persons, NUM_KEYPOINTS, 3):
    raise ClipError(f"{path}: each person of each frame must be {NUM_KEYPOINTS} [x, y, confidence] triples")
  return poses


def _read_cameras(path: Path, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
  cameras = _read_json(path)
  convention = cameras.get("convention")
  if convention not in CONVENTIONS:
    raise ClipError(f"{path}: \"convention\" must be one of {CONVENTIONS}, got {convention!r}")
  try:
    intrinsics = np.asarray(cameras.get("intrinsics"), np.float64)
    c2w = np.asarray(cameras.get("cam_to_world"), np.float64)
  except (ValueError, TypeError):
    raise ClipError(f"{path}: \"intrinsics\" and \"cam_to_world\" must be numeric nested lists") from None
  if intrinsics.shape == (3, 3):
    intrinsics = np.repeat(intrinsics[None], num_frames, axis=0)
  if intrinsics.ndim != 3 or intrinsics.shape[1:] != (3, 3):
    raise ClipError(f"{path}: \"intrinsics\" must be one 3x3 matrix or one per frame, got shape {intrinsics.shape}")
  if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
    raise ClipError(f"{path}: \"cam_to_world\" must be one 4x4 matrix per frame, got shape {c2w.shape}")
  _check_count(f"{path.name} intrinsics", len(intrinsics), num_frames)
  _check_count(f"{path.name} cam_to_world", len(c2w), num_frames)
  if convention == "opengl":
    c2w = c2w @ _OPENGL_TO_OPENCV
  return intrinsics, c2w


def read_clip(clip_dir: str | os.PathLike) -> VideoClip:
  """The clip stored at `clip_dir` (module docstring).

  Raises:
    ClipError: naming the missing, damaged or inconsistent file (and so the frame).
  """
  folder = Path(clip_dir)
  if not folder.is_dir():
    raise ClipError(f"{folder} is not a clip folder (no such directory)")
  meta = _read_json(folder / META)
  num_identities = meta.get("num_identities")
  if isinstance(num_identities, bool) or not isinstance(num_identities, int) or num_identities < 1:
    raise ClipError(f"{folder / META}: \"num_identities\" must be an int >= 1, got {num_identities!r}")
  layout = meta.get("keypoint_layout", KEYPOINT_LAYOUT)
  if layout != KEYPOINT_LAYOUT:
    raise ClipError(f"{folder / META}: keypoint_layout {layout!r} is not supported; poses must be {KEYPOINT_LAYOUT}")
  rgb = _read_rgb(folder / "rgb")
  num_frames, size = rgb.shape[0], rgb.shape[1:3]
  masks = _read_masks(folder / "mask", num_frames, size, num_identities)
  depth = _read_depth(folder / "depth", num_frames, size)
  normal = _read_normals(folder / "normal", num_frames, size)
  poses = _read_poses(folder / POSES, num_frames)
  intrinsics, c2w = _read_cameras(folder / CAMERAS, num_frames)
  reference = rgb[0]
  if (folder / REFERENCE).exists():
    reference = _as_rgb(folder / REFERENCE, _read_image(folder / REFERENCE))
    _check_size(folder / REFERENCE, reference, size)
  return VideoClip(rgb_fhwc=rgb, masks_fhw=masks, poses_fpk3=poses, intrinsics_f33=intrinsics, cam_to_world_f44=c2w,
                   reference_hwc=reference, num_identities=num_identities, depth_fhw=depth, normal_fhwc=normal,
                   name=str(folder))


def list_clips(root: str | os.PathLike) -> list[Path]:
  """Sorted clip folders (those holding meta.json) under `root`, itself included; hidden folders (such as
  write_clip's temporary ones) are skipped."""
  root = Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"{root} is not a directory")
  found = []
  for meta in root.rglob(META):
    relative = meta.parent.relative_to(root)
    if meta.is_file() and not any(part.startswith(".") for part in relative.parts):
      found.append(meta.parent)
  return sorted(found)
