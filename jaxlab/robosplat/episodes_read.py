"""Reading a LeRobot v2.1 episode dataset (see episodes_layout).

`EpisodeDataset` checks the whole layout when opened (meta files, and each episode file's
footer and index columns), so a broken dataset fails at once with the file named rather
than mid-training. Episode data is read lazily, and the raw columns (PNG bytes, state,
action) of a few recent episodes are cached; images are decoded per frame on demand.

The dataset pickles without its cache (for grain worker processes) and reopen files lazily.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxlab.robosplat import episodes_layout as layout
from jaxlab.robosplat.episodes_layout import EpisodeFormatError


class _RawEpisode(NamedTuple):
  path: str
  images: dict[str, list[bytes]]  # camera -> PNG bytes per frame
  state_t8: np.ndarray  # read-only float32 [T, 8]
  action_t8: np.ndarray  # read-only float32 [T, 8]
  timestamp_t: np.ndarray
  task_index_t: np.ndarray


class EpisodeDataset:
  """A validated dataset folder: `len(ds)` episodes, `ds.num_frames` frames.

  Raises (on open) EpisodeFormatError naming the file or episode for: a missing meta file,
  an unsupported codebase_version, an episode listed in meta/episodes.jsonl whose parquet file
  is missing, unreadable or truncated, has a missing feature column, a row count other than
  its listed length, frame_index other than 0..T-1, or state/action of the wrong width.
  Temporary files and unlisted episode files of an interrupted write are warned about and ignored.
  """

  def __init__(self, root: str | os.PathLike, *, cache_episodes: int = 8):
    self._root = os.fspath(root)
    if not os.path.isdir(self._root):
      raise EpisodeFormatError(f"{self._root}: no such dataset folder")
    if not isinstance(cache_episodes, int) or cache_episodes < 1:
      raise ValueError(f"cache_episodes must be an int >= 1, got {cache_episodes!r}")
    self._cache_episodes = cache_episodes
    self._info = layout.read_info(self._root)
    self._episodes, self._tasks, _ = layout.read_meta_records(self._root, self._info)
    self._cameras = layout.camera_shapes(self._info["features"])
    lengths = [record["length"] for record in self._episodes]
    self._offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    if int(self._info["total_frames"]) != self.num_frames:
      raise EpisodeFormatError(f"{self._root}: {layout.INFO_PATH} total_frames is {self._info['total_frames']} but "
                               f"the episodes in {layout.EPISODES_PATH} hold {self.num_frames} frames")
    for episode_index in range(len(self)):
      self._check_file(episode_index)
    layout.warn_leftovers(self._root, {self._relpath(i) for i in range(len(self))})
    self._init_cache()

  def _init_cache(self) -> None:
    self._cache: collections.OrderedDict[int, _RawEpisode] = collections.OrderedDict()
    self._lock = threading.Lock()

  def __getstate__(self) -> dict[str, Any]:
    state = dict(self.__dict__)
    del state["_cache"], state["_lock"]
    return state

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._init_cache()

  # --- metadata -----------------------------------------------------------------------------

  @property
  def root(self) -> str:
    return self._root

  @property
  def info(self) -> dict[str, Any]:
    """A copy of meta/info.json."""
    return {**self._info, "features": {k: dict(v) for k, v in self._info["features"].items()}}

  @property
  def fps(self) -> float:
    return self._info["fps"]

  @property
  def cameras(self) -> dict[str, tuple[int, int]]:
    """{camera: (H, W)} in feature order."""
    return dict(self._cameras)

  @property
  def state_names(self) -> list:
    return list(self._info["features"][layout.STATE_KEY].get("names") or [])

  @property
  def action_names(self) -> list:
    return list(self._info["features"][layout.ACTION_KEY].get("names") or [])

  @property
  def tasks(self) -> list[str]:
    """Task texts by task_index."""
    return list(self._tasks)

  @property
  def num_frames(self) -> int:
    return int(self._offsets[-1])

  def __len__(self) -> int:
    return len(self._episodes)

  def episode_length(self, episode_index: int) -> int:
    return self._episodes[self._check_episode_index(episode_index)]["length"]

  def metadata(self, episode_index: int) -> dict[str, Any]:
    """The episode's free-form "robosplat" metadata from meta/episodes.jsonl."""
    return dict(self._episodes[self._check_episode_index(episode_index)].get(layout.EXTRA_KEY, {}))

  def locate(self, global_index: int) -> tuple[int, int]:
    """(episode_index, frame_index) of a global frame index in [0, num_frames)."""
    if not isinstance(global_index, (int, np.integer)) or isinstance(global_index, bool):
      raise TypeError(f"frame index must be an int, got {global_index!r}")
    if not 0 <= global_index < self.num_frames:
      raise IndexError(f"frame index {global_index} out of range [0, {self.num_frames})")
    episode_index = int(np.searchsorted(self._offsets, global_index, side="right")) - 1
    return episode_index, int(global_index - self._offsets[episode_index])

  # --- data -----------------------------------------------------------------------------------

  def episode(self, episode_index: int) -> dict[str, Any]:
    """One whole episode: {"images": {camera: uint8 [T, H, W, 3]}, "state": float32 [T, 8],
    "action": float32 [T, 8], "timestamp": float32 [T], "frame_index", "index", "task_index":
    int64 [T], "episode_index": int, "task": str, "metadata": dict}."""
    raw = self._raw(self._check_episode_index(episode_index))
    length = len(raw.state_t8)
    start = int(self._offsets[episode_index])
    return {
        "images": {camera: np.stack([self._decode(raw, camera, t) for t in range(length)]) for camera in self._cameras},
        "state": raw.state_t8.copy(), "action": raw.action_t8.copy(), "timestamp": raw.timestamp_t.copy(),
        "frame_index": np.arange(length, dtype=np.int64), "index": np.arange(start, start + length, dtype=np.int64),
        "task_index": raw.task_index_t.copy(), "episode_index": episode_index,
        "task": self._tasks[int(raw.task_index_t[0])], "metadata": self.metadata(episode_index)}

  def frame(self, global_index: int) -> dict[str, Any]:
    """One frame by global index: {"images": {camera: uint8 [H, W, 3]}, "state": float32 [8],
    "action": float32 [8], "timestamp", "episode_index", "frame_index", "index", "task"}."""
    episode_index, frame_index = self.locate(global_index)
    raw = self._raw(episode_index)
    return {"images": {camera: self._decode(raw, camera, frame_index) for camera in self._cameras},
            "state": raw.state_t8[frame_index].copy(), "action": raw.action_t8[frame_index].copy(),
            "timestamp": float(raw.timestamp_t[frame_index]), "episode_index": episode_index,
            "frame_index": frame_index, "index": int(global_index), "task": self._tasks[int(raw.task_index_t[frame_index])]}

  def frame_images(self, episode_index: int, frame_index: int, cameras: Sequence[str]) -> np.ndarray:
    """uint8 [len(cameras), H, W, 3]: one frame of each named camera (same sizes), decoded."""
    raw = self._raw(self._check_episode_index(episode_index))
    return np.stack([self._decode(raw, camera, frame_index) for camera in cameras])

  def state_action(self, episode_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(state_t8, action_t8) of an episode: read-only float32 arrays shared with the cache."""
    raw = self._raw(self._check_episode_index(episode_index))
    return raw.state_t8, raw.action_t8

  def __repr__(self) -> str:
    return f"EpisodeDataset({self._root!r}, episodes={len(self)}, frames={self.num_frames})"

  # --- internals ------------------------------------------------------------------------------

  def _check_episode_index(self, episode_index: int) -> int:
    if not isinstance(episode_index, (int, np.integer)) or not 0 <= episode_index < len(self):
      raise IndexError(f"episode index {episode_index!r} out of range [0, {len(self)})")
    return int(episode_index)

  def _relpath(self, episode_index: int) -> str:
    return os.path.normpath(layout.data_path(self._info, episode_index))

  def _open(self, episode_index: int, columns: list[str] | None):
    """The episode's parquet file read as a table (only `columns` if given)."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

    path = os.path.join(self._root, self._relpath(episode_index))
    if not os.path.isfile(path):
      raise EpisodeFormatError(f"{self._root}: episode {episode_index} is listed in {layout.EPISODES_PATH} but "
                               f"its data file {self._relpath(episode_index)} is missing")
    try:
      parquet = pq.ParquetFile(path)
      names = parquet.schema_arrow.names
      for key in self._info["features"]:
        if key not in names:
          raise EpisodeFormatError(f"{path}: episode {episode_index} lacks the feature column {key!r}")
      return path, parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as e:
      raise EpisodeFormatError(f"{path}: episode {episode_index}'s parquet file is unreadable, likely partial or "
                               f"truncated ({type(e).__name__}: {e})") from None

  def _check_file(self, episode_index: int) -> None:
    path, table = self._open(episode_index, ["frame_index", "episode_index", "index", layout.STATE_KEY,
                                             layout.ACTION_KEY])
    length = self._episodes[episode_index]["length"]
    if table.num_rows != length:
      raise EpisodeFormatError(f"{path}: episode {episode_index} has {table.num_rows} rows but "
                               f"{layout.EPISODES_PATH} lists length {length}")
    start = int(self._offsets[episode_index])
    expected = {"frame_index": np.arange(length), "episode_index": np.full(length, episode_index),
                "index": np.arange(start, start + length)}
    for key, values in expected.items():
      column = table.column(key)
      if column.null_count or not np.array_equal(column.to_numpy(), values):
        raise EpisodeFormatError(f"{path}: episode {episode_index}'s {key} column is not "
                                 f"{values[0]}..{values[-1]} in order")
    for key in (layout.STATE_KEY, layout.ACTION_KEY):
      _width_of(table.column(key), path, key)

  def _raw(self, episode_index: int) -> _RawEpisode:
    with self._lock:
      raw = self._cache.get(episode_index)
      if raw is not None:
        self._cache.move_to_end(episode_index)
        return raw
    raw = self._load(episode_index)  # outside the lock: parallel readers load different episodes
    with self._lock:
      self._cache[episode_index] = raw
      while len(self._cache) > self._cache_episodes:
        self._cache.popitem(last=False)
    return raw

  def _load(self, episode_index: int) -> _RawEpisode:
    path, table = self._open(episode_index, None)
    if table.num_rows != self._episodes[episode_index]["length"]:
      raise EpisodeFormatError(f"{path}: episode {episode_index} changed on disk since the dataset was opened")
    images = {}
    for camera in self._cameras:
      key = layout.image_key(camera)
      column = table.column(key).combine_chunks()
      if not _is_struct(column.type) or column.type.get_field_index("bytes") < 0:
        raise EpisodeFormatError(f"{path}: column {key!r} has type {column.type}, not an image struct with 'bytes'")
      frames = column.flatten()[column.type.get_field_index("bytes")].to_pylist()
      missing = [t for t, data in enumerate(frames) if data is None]
      if missing:
        raise EpisodeFormatError(f"{path}: column {key!r} frame {missing[0]} has no embedded image bytes")
      images[camera] = frames
    vectors = [_matrix(table.column(key), path, key) for key in (layout.STATE_KEY, layout.ACTION_KEY)]
    scalars = [_read_only(table.column(key).to_numpy()) for key in ("timestamp", "task_index")]
    for task_index in np.unique(scalars[1]):
      if not 0 <= task_index < len(self._tasks):
        raise EpisodeFormatError(f"{path}: task_index {task_index} is not in {layout.TASKS_PATH}")
    return _RawEpisode(path, images, *vectors, *scalars)

  def _decode(self, raw: _RawEpisode, camera: str, frame_index: int) -> np.ndarray:
    image = layout.decode_png(raw.images[camera][frame_index], f"{raw.path} camera {camera!r} frame {frame_index}")
    height, width = self._cameras[camera]
    if image.shape != (height, width, 3):
      raise EpisodeFormatError(f"{raw.path}: camera {camera!r} frame {frame_index} is {list(image.shape)}, "
                               f"but {layout.INFO_PATH} says [{height}, {width}, 3]")
    return image


def _is_struct(kind) -> bool:
  import pyarrow as pa  # pylint: disable=g-import-not-at-top

  return pa.types.is_struct(kind)


def _width_of(column, path: str, key: str) -> int:
  """The common length of a list column's rows, checked to be the feature's width."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.compute as pc  # pylint: disable=g-import-not-at-top

  width = layout.STATE_DIM if key == layout.STATE_KEY else layout.ACTION_DIM
  kind = column.type
  if pa.types.is_fixed_size_list(kind):
    found = {kind.list_size}
  elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
    found = set(pc.unique(pc.list_value_length(column)).to_pylist())
  else:
    raise EpisodeFormatError(f"{path}: column {key!r} has type {kind}, expected a list of {width} float32")
  if column.null_count or found - {width}:
    raise EpisodeFormatError(f"{path}: column {key!r} rows have width {sorted(found - {width}) or 'null'}, "
                             f"expected {width}")
  return width


def _matrix(column, path: str, key: str) -> np.ndarray:
  """A list column as read-only float32 [T, width]."""
  width = _width_of(column, path, key)
  values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
  return _read_only(np.asarray(values, np.float32).reshape(-1, width))


def _read_only(array: np.ndarray) -> np.ndarray:
  array = np.array(array)  # own the memory, then freeze: cached arrays are shared with callers
  array.flags.writeable = False
  return array
