"""Clips as fixed-shape training records (a grain random-access source: `len` + `__getitem__`).

Record i:

  video      float32 [F, H, W, C]  the clip in the channel layout of `modalities` (`encode_modalities`)
  reference  float32 [H, W, 3]     the reference image in [-1, 1]
  pose_maps  float32 [F, H, W, 3]  OpenPose-style skeletons of all persons in [0, 1] (`draw_pose_maps`)
  plucker    float32 [F, H, W, 6]  Plücker rays relative to frame 0 (`plucker_rays`)
  identity   int32 [F, H, W]       the identity masks (0 background, 1..N)
  seed       int32                 the generator seed of the clip (-1 for given clips)
  index      int32                 i

`VideoClipSource.generated(num_clips, seed=...)` renders element i on access from the clip seed
derived from (seed, i) (`clip_seed`), so an element is a pure function of (seed, i) and the source
pickles as a handful of numbers (grain workers rebuild nothing). `VideoClipSource.from_clips(clips)`
serves given clips (all of one frame count and size), checked up front: a modality that a clip lacks
raises ClipError at construction, not in a worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxlab.video.clip import ClipError, VideoClip
from jaxlab.video.modalities import check_modalities, encode_modalities
from jaxlab.video.plucker import plucker_rays
from jaxlab.video.pose_maps import draw_pose_maps
from jaxlab.video.synthetic import generate_clip


def clip_seed(seed: int, index: int) -> int:
  """The generator seed of element `index` of a generated source: a hash of (seed, index) in [0, 2^31)."""
  return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0] >> 1)


def clip_record(clip: VideoClip, modalities: Sequence[str], *, seed: int = -1, index: int = 0) -> dict[str, np.ndarray]:
  """One training record of `clip` (module docstring)."""
  return {
      "video": encode_modalities(clip, modalities),
      "reference": (2.0 * clip.reference_hwc - 1.0).astype(np.float32),
      "pose_maps": draw_pose_maps(clip.poses_fpk3, clip.height, clip.width),
      "plucker": np.asarray(plucker_rays(clip.intrinsics_f33, clip.cam_to_world_f44, clip.height, clip.width)),
      "identity": clip.masks_fhw.astype(np.int32),
      "seed": np.int32(seed),
      "index": np.int32(index),
  }


class VideoClipSource:
  """Training records of generated or given clips (module docstring); build with `generated` or `from_clips`."""

  def __init__(self, *, modalities: Sequence[str], clips: Sequence[VideoClip] | None = None,
               num_clips: int | None = None, seed: int = 0, generator_kwargs: dict | None = None):
    self.modalities = check_modalities(modalities)
    if (clips is None) == (num_clips is None):
      raise ValueError("VideoClipSource needs either clips or num_clips (use .generated or .from_clips)")
    self.clips = None if clips is None else tuple(clips)
    self.num_clips = len(self.clips) if clips is not None else int(num_clips)
    if self.num_clips < 1:
      raise ValueError(f"VideoClipSource needs at least one clip, got {self.num_clips}")
    self.seed = int(seed)
    self.generator_kwargs = dict(generator_kwargs or {})

  @classmethod
  def generated(cls, num_clips: int, *, seed: int, modalities: Sequence[str] = ("rgb",), num_frames: int = 8,
                height: int = 32, width: int = 32, num_people: int | tuple[int, int] = (2, 5),
                num_identities: int = 5, fps: float = 8) -> VideoClipSource:
    """`num_clips` synthetic clips (`synthetic.generate_clip`), element i rendered from `clip_seed(seed, i)`."""
    kwargs = {"num_frames": int(num_frames), "height": int(height), "width": int(width), "fps": fps,
              "num_identities": int(num_identities),
              "num_people": num_people if isinstance(num_people, (int, np.integer)) else tuple(num_people)}
    return cls(modalities=modalities, num_clips=num_clips, seed=seed, generator_kwargs=kwargs)

  @classmethod
  def from_clips(cls, clips: Sequence[VideoClip], modalities: Sequence[str] = ("rgb",)) -> VideoClipSource:
    """The given clips, which must share frame count and size; ClipError when one lacks a modality."""
    clips = tuple(clips)
    if not clips:
      raise ValueError("from_clips needs at least one clip")
    shapes = {c.rgb_fhwc.shape[:3] for c in clips}
    if len(shapes) != 1:
      raise ValueError(f"records need one shape: the clips have (frames, height, width) {sorted(shapes)}; "
                       "crop or resample them to one")
    names = check_modalities(modalities)
    for clip in clips:
      if "depth" in names and clip.depth_fhw is None:
        raise ClipError(f"{clip.name}: modality 'depth' is asked for but the clip has no depth")
      if "normal" in names and clip.normal_fhwc is None:
        raise ClipError(f"{clip.name}: modality 'normal' is asked for but the clip has no normals")
    return cls(modalities=names, clips=clips)

  def __len__(self) -> int:
    return self.num_clips

  def clip(self, index: int) -> VideoClip:
    """The clip behind element `index`."""
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f"index {index} outside [0, {len(self)})")
    if self.clips is not None:
      return self.clips[index]
    return generate_clip(clip_seed(self.seed, index), **self.generator_kwargs)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    seed = -1 if self.clips is not None else clip_seed(self.seed, index)
    return clip_record(self.clip(index), self.modalities, seed=seed, index=index)
