"""Writing robot episodes as a LeRobot v2.1 dataset (see episodes_layout for the files).

Every file goes to a hidden temporary name and is renamed into place. After each episode
the writer renames, in order: the episode's parquet file, meta/episodes_stats.jsonl,
meta/tasks.jsonl, meta/episodes.jsonl and, last, meta/info.json, the commit record. A crash
at any point leaves the episodes committed before it readable; the unfinished episode's
files are ignored by readers and replaced when the dataset is resumed.

One writer per folder at a time.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxlab import files
from jaxlab.robosplat import episodes_layout as layout
from jaxlab.robosplat.episodes_read import EpisodeDataset

_CAMERA_NAME = re.compile(r"[A-Za-z0-9_-]+")


class EpisodeWriter:
  """Appends episodes to a dataset folder; use as a context manager or call `close()`.

  Example:
    with EpisodeWriter(root, fps=22, robot_type="panda", cameras={"front": (64, 64)},
                       state_names=STATE_NAMES, action_names=ACTION_NAMES) as writer:
      writer.add_episode({"front": images_thw3}, state_t8, action_t8, task="pick", metadata={...})
  """

  def __init__(self, root: str | os.PathLike, *, fps: float, robot_type: str,
               cameras: Mapping[str, tuple[int, int]], state_names: Sequence[str],
               action_names: Sequence[str], resume: bool = False):
    """Args:
      root: the dataset folder. Created if missing; an empty folder is fine.
      fps: frames per second (timestamps are frame_index / fps).
      robot_type: free text stored in info.json (e.g. "panda").
      cameras: {name: (H, W)} of the image streams, in feature order.
      state_names: the 8 names of observation.state's entries.
      action_names: the 8 names of action's entries.
      resume: append to an existing dataset of the same layout (fps, robot type, cameras and
        names must match). Without it a non-empty folder is refused.

    Raises:
      FileExistsError: `root` is not empty and is either not a dataset or resume is False.
      EpisodeFormatError: resume into a dataset that fails validation.
      ValueError: bad arguments, or a resumed dataset with another layout (the field named).
    """
    self._root = os.fspath(root)
    self._features = layout.make_features(_check_cameras(cameras),
                                          _check_names(state_names, "state_names", layout.STATE_DIM),
                                          _check_names(action_names, "action_names", layout.ACTION_DIM))
    if not isinstance(fps, numbers.Real) or isinstance(fps, bool) or not fps > 0:
      raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not isinstance(robot_type, str) or not robot_type:
      raise ValueError(f"robot_type must be a non-empty string, got {robot_type!r}")
    self._fps = int(fps) if isinstance(fps, numbers.Integral) else float(fps)  # plain JSON numbers
    self._robot_type = robot_type
    self._cameras = dict(layout.camera_shapes(self._features))
    self._closed = False
    self._episode_lines: list[str] = []
    self._stats_lines: list[str] = []
    self._tasks: list[str] = []
    self._num_frames = 0

    entries = os.listdir(self._root) if os.path.isdir(self._root) else []
    if not entries:
      os.makedirs(os.path.join(self._root, "meta"), exist_ok=True)
      self._write_meta()  # an empty but valid dataset from the start
      return
    if not os.path.isfile(os.path.join(self._root, layout.INFO_PATH)):
      raise FileExistsError(f"{self._root} is not empty and holds no {layout.INFO_PATH}: refusing to write "
                            "episodes into a folder that is not a dataset")
    if not resume:
      raise FileExistsError(f"{self._root} already holds a dataset; pass resume=True to append to it")
    self._resume()

  def _resume(self) -> None:
    dataset = EpisodeDataset(self._root)  # validates every committed episode
    info = dataset.info
    for key, ours in (("fps", self._fps), ("robot_type", self._robot_type), ("features", self._features)):
      if info.get(key) != ours:
        raise ValueError(f"cannot resume {self._root}: its {layout.INFO_PATH} {key} is {info.get(key)!r}, "
                         f"this writer's is {ours!r}")
    episodes, self._tasks, stats = layout.read_meta_records(self._root, info)
    self._episode_lines = [layout.to_json_line(record) for record in episodes]
    self._stats_lines = [layout.to_json_line(record) for record in stats]
    self._num_frames = dataset.num_frames

  @property
  def root(self) -> str:
    return self._root

  @property
  def num_episodes(self) -> int:
    return len(self._episode_lines)

  @property
  def num_frames(self) -> int:
    return self._num_frames

  def add_episode(self, images: Mapping[str, np.ndarray], state_t8: np.ndarray, action_t8: np.ndarray,
                  task: str, metadata: Mapping[str, Any] | None = None) -> int:
    """Writes one episode and commits it; returns its episode_index.

    Args:
      images: {camera: uint8 [T, H, W, 3]} for exactly the writer's cameras.
      state_t8: [T, 8] proprioception (finite; stored as float32).
      action_t8: [T, 8] actions (finite; stored as float32).
      task: the language instruction.
      metadata: free-form JSON data (numpy arrays allowed) stored under "robosplat" in
        meta/episodes.jsonl: object name and pose, camera, lighting, texture, source ...
    """
    if self._closed:
      raise RuntimeError(f"EpisodeWriter({self._root}) is closed")
    images, state_t8, action_t8 = self._check_episode(images, state_t8, action_t8)
    if not isinstance(task, str) or not task:
      raise ValueError(f"task must be a non-empty string, got {task!r}")
    extra = layout.jsonable(dict(metadata or {}), "metadata")
    num_frames = state_t8.shape[0]
    episode_index = self.num_episodes
    tasks = self._tasks + ([task] if task not in self._tasks else [])
    columns = self._columns(images, state_t8, action_t8, episode_index, tasks.index(task))
    self._write_parquet(episode_index, columns)

    record = {"episode_index": episode_index, "tasks": [task], "length": num_frames, layout.EXTRA_KEY: extra}
    stats = {"episode_index": episode_index, "stats": _episode_stats(images, columns)}
    # Commit order: stats, tasks, episodes, then info.json (the record readers trust).
    stats_lines = self._stats_lines + [layout.to_json_line(stats)]
    episode_lines = self._episode_lines + [layout.to_json_line(record)]
    layout.write_jsonl(self._root, layout.STATS_PATH, stats_lines)
    layout.write_jsonl(self._root, layout.TASKS_PATH, _task_lines(tasks))
    layout.write_jsonl(self._root, layout.EPISODES_PATH, episode_lines)
    self._write_info(len(episode_lines), self._num_frames + num_frames, len(tasks))
    self._stats_lines, self._episode_lines, self._tasks = stats_lines, episode_lines, tasks
    self._num_frames += num_frames
    return episode_index

  def close(self) -> None:
    """Rewrites the meta files from this writer's committed state; later add_episode calls fail."""
    if not self._closed:
      self._write_meta()
      self._closed = True

  def __enter__(self) -> "EpisodeWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def __repr__(self) -> str:
    return f"EpisodeWriter({self._root!r}, episodes={self.num_episodes}, frames={self._num_frames})"

  def _check_episode(self, images, state_t8, action_t8):
    if not isinstance(images, Mapping):
      raise TypeError(f"images must be a dict {{camera: [T, H, W, 3] uint8}}, got {type(images).__name__}")
    for camera in images:
      if camera not in self._cameras:
        raise ValueError(f"images has camera {camera!r}, not one of this dataset's {sorted(self._cameras)}")
    state_t8 = _check_matrix(state_t8, "state_t8", layout.STATE_DIM)
    action_t8 = _check_matrix(action_t8, "action_t8", layout.ACTION_DIM)
    num_frames = state_t8.shape[0]
    if action_t8.shape[0] != num_frames:
      raise ValueError(f"action_t8 has {action_t8.shape[0]} frames but state_t8 has {num_frames}")
    checked = {}
    for camera, (height, width) in self._cameras.items():
      if camera not in images:
        raise ValueError(f"images lacks camera {camera!r}")
      array = np.asarray(images[camera])
      if array.dtype != np.uint8 or array.shape != (num_frames, height, width, 3):
        raise ValueError(f"images[{camera!r}] must be uint8 [{num_frames}, {height}, {width}, 3] (T from state_t8),"
                         f" got {array.dtype} {list(array.shape)}")
      checked[camera] = array
    return checked, state_t8, action_t8

  def _columns(self, images, state_t8, action_t8, episode_index, task_index) -> dict[str, Any]:
    num_frames = state_t8.shape[0]
    frame_index = np.arange(num_frames, dtype=np.int64)
    columns: dict[str, Any] = {
        layout.image_key(camera): [{"bytes": layout.encode_png(image), "path": None} for image in images_thw3]
        for camera, images_thw3 in images.items()}
    columns[layout.STATE_KEY] = state_t8
    columns[layout.ACTION_KEY] = action_t8
    columns["timestamp"] = (frame_index / self._fps).astype(np.float32)
    columns["frame_index"] = frame_index
    columns["episode_index"] = np.full(num_frames, episode_index, np.int64)
    columns["index"] = self._num_frames + frame_index
    columns["task_index"] = np.full(num_frames, task_index, np.int64)
    return columns

  def _write_parquet(self, episode_index: int, columns: dict[str, Any]) -> None:
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

    schema = layout.arrow_schema(self._features)
    arrays = []
    for field in schema:
      values = columns[field.name]
      if isinstance(values, np.ndarray) and values.ndim == 2:
        arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1]))
      else:
        arrays.append(pa.array(values, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    path = os.path.join(self._root, layout.data_path({}, episode_index))
    if os.path.exists(path):
      # Only an episode whose commit did not finish can sit at the next episode's path.
      warnings.warn(f"replacing {path}, left by an interrupted write (not listed in {layout.EPISODES_PATH})",
                    stacklevel=3)
    with files.atomic_open(path, "wb", make_parents=True) as stream:
      pq.write_table(table, stream)

  def _info(self, num_episodes: int, num_frames: int, num_tasks: int) -> dict[str, Any]:
    return layout.make_info(robot_type=self._robot_type, fps=self._fps, features=self._features,
                            num_episodes=num_episodes, num_frames=num_frames, num_tasks=num_tasks)

  def _write_info(self, num_episodes: int, num_frames: int, num_tasks: int) -> None:
    files.write_json(os.path.join(self._root, layout.INFO_PATH), self._info(num_episodes, num_frames, num_tasks),
                     indent=4, sort_keys=False)

  def _write_meta(self) -> None:
    layout.write_jsonl(self._root, layout.STATS_PATH, self._stats_lines)
    layout.write_jsonl(self._root, layout.TASKS_PATH, _task_lines(self._tasks))
    layout.write_jsonl(self._root, layout.EPISODES_PATH, self._episode_lines)
    self._write_info(self.num_episodes, self._num_frames, len(self._tasks))


def _task_lines(tasks: list[str]) -> list[str]:
  return [layout.to_json_line({"task_index": i, "task": task}) for i, task in enumerate(tasks)]


def _episode_stats(images: dict[str, np.ndarray], columns: dict[str, Any]) -> dict[str, Any]:
  """LeRobot's per-episode stats: numeric features reduced over frames (scalars keep a [1] dim);
  images per channel, scaled to [0, 1], shaped [3, 1, 1]; count is the number of frames used."""
  stats = {}
  for camera, images_thw3 in images.items():
    pixels_n3 = images_thw3.reshape(-1, 3)
    per_channel = {
        "min": pixels_n3.min(axis=0) / 255.0, "max": pixels_n3.max(axis=0) / 255.0,
        "mean": pixels_n3.mean(axis=0, dtype=np.float64) / 255.0,
        "std": pixels_n3.std(axis=0, dtype=np.float64) / 255.0}
    stats[layout.image_key(camera)] = {key: value.reshape(3, 1, 1).tolist() for key, value in per_channel.items()}
    stats[layout.image_key(camera)]["count"] = [len(images_thw3)]
  for key, values in columns.items():
    if key.startswith(layout.IMAGE_PREFIX):
      continue
    values_tc = values.reshape(len(values), -1)  # scalars become [T, 1], as LeRobot keeps their dim
    stats[key] = {"min": values_tc.min(axis=0).tolist(), "max": values_tc.max(axis=0).tolist(),
                  "mean": values_tc.mean(axis=0, dtype=np.float64).tolist(),
                  "std": values_tc.std(axis=0, dtype=np.float64).tolist(), "count": [len(values)]}
  return stats


def _check_cameras(cameras) -> dict[str, tuple[int, int]]:
  if not isinstance(cameras, Mapping) or not cameras:
    raise ValueError(f"cameras must be a non-empty dict {{name: (H, W)}}, got {cameras!r}")
  checked = {}
  for name, shape in cameras.items():
    if not isinstance(name, str) or not _CAMERA_NAME.fullmatch(name):
      raise ValueError(f"camera name {name!r} must be a non-empty string of letters, digits, '_' or '-'")
    shape = tuple(shape) if isinstance(shape, Sequence) else ()
    if len(shape) != 2 or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
                                  for n in shape):
      raise ValueError(f"cameras[{name!r}] must be (H, W) with positive ints, got {cameras[name]!r}")
    checked[name] = (int(shape[0]), int(shape[1]))
  return checked


def _check_names(names, what: str, width: int) -> list[str]:
  listed = list(names) if isinstance(names, Sequence) and not isinstance(names, str) else None
  if listed is None or len(listed) != width or not all(isinstance(n, str) and n for n in listed):
    raise ValueError(f"{what} must be {width} non-empty strings, got {names!r}")
  return listed


def _check_matrix(values, what: str, width: int) -> np.ndarray:
  array = np.asarray(values)
  if array.dtype.kind not in "fiu" or array.ndim != 2 or array.shape[1] != width or array.shape[0] < 1:
    raise ValueError(f"{what} must be a real [T, {width}] array with T >= 1, got {array.dtype} {list(array.shape)}")
  files.require_finite(array, what)
  return array.astype(np.float32)
