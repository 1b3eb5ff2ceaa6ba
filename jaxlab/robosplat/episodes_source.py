"""A grain random-access source of frames with action chunks, over an EpisodeDataset.

Picklable for grain worker processes: the dataset travels without its cache and each
worker reopens parquet files lazily, caching a few recent episodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jaxlab.robosplat.episodes_read import EpisodeDataset


class ChunkedFrameSource:
  """Random-access source (grain's RandomAccessDataSource protocol) over every frame.

  Item i (global frame i, frame f of an episode of length T) is
    {"images": uint8 [num_cameras, H, W, 3], "state": float32 [8],
     "actions": float32 [chunk_size, 8]: the actions of frames f .. f+chunk_size-1, the last
       one repeated past the episode's end,
     "action_mask": bool [chunk_size]: False past the episode's end}.

  With `object_positions=True` every item also has "object_xy": float32 [2], the object's
  table position from the episode metadata ("object_xy_yaw"), and "object_mask": bool, True
  while the object still lies there (up to the first step the gripper closes) and the
  metadata has it. A policy's auxiliary localization loss reads them.
  """

  def __init__(self, dataset: EpisodeDataset | str | os.PathLike, *, chunk_size: int,
               cameras: Sequence[str] | None = None, object_positions: bool = False):
    """Args:
      dataset: an EpisodeDataset, or the folder to open as one.
      chunk_size: actions per item, >= 1.
      cameras: which cameras to stack, in order (default: all, in feature order); they must
        share one image size.
      object_positions: add "object_xy" and "object_mask" to every item (see the class doc).
    """
    self._dataset = dataset if isinstance(dataset, EpisodeDataset) else EpisodeDataset(dataset)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
      raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    available = self._dataset.cameras
    cameras = list(available) if cameras is None else list(cameras)
    if not cameras:
      raise ValueError("cameras must name at least one camera")
    for camera in cameras:
      if camera not in available:
        raise ValueError(f"camera {camera!r} is not in the dataset; it has {list(available)}")
    sizes = {available[camera] for camera in cameras}
    if len(sizes) > 1:
      raise ValueError(f"cameras {cameras} have different image sizes {sorted(sizes)}; they cannot be stacked")
    self._chunk_size = chunk_size
    self._cameras = tuple(cameras)
    self._object_positions = bool(object_positions)

  @property
  def dataset(self) -> EpisodeDataset:
    return self._dataset

  @property
  def cameras(self) -> tuple[str, ...]:
    return self._cameras

  @property
  def chunk_size(self) -> int:
    return self._chunk_size

  def __len__(self) -> int:
    return self._dataset.num_frames

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    episode_index, frame_index = self._dataset.locate(index)
    state_t8, action_t8 = self._dataset.state_action(episode_index)
    steps = frame_index + np.arange(self._chunk_size)
    item = {
        "images": self._dataset.frame_images(episode_index, frame_index, self._cameras),
        "state": state_t8[frame_index].copy(),
        "actions": action_t8[np.minimum(steps, len(action_t8) - 1)],  # fancy indexing copies
        "action_mask": steps < len(action_t8),
    }
    if self._object_positions:
      item["object_xy"], item["object_mask"] = self._object_target(episode_index, frame_index, action_t8)
    return item

  def _object_target(self, episode_index: int, frame_index: int, action_t8: np.ndarray) -> tuple[np.ndarray, np.bool_]:
    xy_yaw = self._dataset.metadata(episode_index).get("object_xy_yaw")
    if xy_yaw is None or len(xy_yaw) < 2:
      return np.zeros(2, np.float32), np.bool_(False)
    closed = np.flatnonzero(action_t8[:, -1] < 0.5)  # gripper command 0 = closed
    first_close = int(closed[0]) if closed.size else len(action_t8)
    return np.asarray(xy_yaw[:2], np.float32), np.bool_(frame_index <= first_close)

  def __repr__(self) -> str:
    return (f"ChunkedFrameSource({self._dataset!r}, chunk_size={self._chunk_size}, "
            f"cameras={list(self._cameras)}, object_positions={self._object_positions})")


class ConcatSource:
  """Random-access concatenation of frame sources (e.g. generated demonstrations from several
  runs): item i is item i - offset_k of the k-th source it falls in. Picklable when the
  sources are. Every source must give items of the same structure and shapes."""

  def __init__(self, sources: Sequence[ChunkedFrameSource]):
    self._sources = tuple(sources)
    if not self._sources:
      raise ValueError("ConcatSource needs at least one source")
    self._offsets = np.cumsum([0] + [len(s) for s in self._sources])

  @property
  def sources(self) -> tuple[ChunkedFrameSource, ...]:
    return self._sources

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self):
      raise IndexError(f"frame {index} is out of range for {len(self)} frames")
    k = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return self._sources[k][int(index - self._offsets[k])]

  def __repr__(self) -> str:
    return f"ConcatSource({list(self._sources)!r})"
