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
  """

  def __init__(self, dataset: EpisodeDataset | str | os.PathLike, *, chunk_size: int,
               cameras: Sequence[str] | None = None):
    """Args:
      dataset: an EpisodeDataset, or the folder to open as one.
      chunk_size: actions per item, >= 1.
      cameras: which cameras to stack, in order (default: all, in feature order); they must
        share one image size.
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
    return {
        "images": self._dataset.frame_images(episode_index, frame_index, self._cameras),
        "state": state_t8[frame_index].copy(),
        "actions": action_t8[np.minimum(steps, len(action_t8) - 1)],  # fancy indexing copies
        "action_mask": steps < len(action_t8),
    }

  def __repr__(self) -> str:
    return (f"ChunkedFrameSource({self._dataset!r}, chunk_size={self._chunk_size}, "
            f"cameras={list(self._cameras)})")
