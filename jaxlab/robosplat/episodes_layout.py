"""The LeRobot v2.1 on-disk layout of a robot episode dataset, shared by the writer and the reader.

  root/meta/info.json             codebase_version, totals, fps, feature schema
  root/meta/episodes.jsonl        one line per episode: episode_index, tasks, length, robosplat {...}
  root/meta/tasks.jsonl           one line per task: task_index, task
  root/meta/episodes_stats.jsonl  one line per episode: per-feature min/max/mean/std/count
  root/data/chunk-XXX/episode_XXXXXX.parquet   one row per frame

`meta/info.json` is the commit record: the writer rewrites it last, after an episode's
parquet file and the other meta files are in place. Lines of the jsonl files past its
`total_episodes` belong to an episode whose write did not finish; readers ignore them.

pyarrow is an optional dependency (the `robot` extra): it is imported inside functions.
"""

from __future__ import annotations

import glob
import io
import json
import os
import warnings
from typing import Any

import numpy as np

from jaxlab import files

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
STATE_DIM = 8
ACTION_DIM = 8
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes.jsonl"
TASKS_PATH = "meta/tasks.jsonl"
STATS_PATH = "meta/episodes_stats.jsonl"
EXTRA_KEY = "robosplat"  # jaxlab's own per-episode fields in episodes.jsonl
# Scalar per-frame columns: name -> dtype.
SCALAR_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                   "index": "int64", "task_index": "int64"}


class EpisodeFormatError(ValueError):
  """A dataset folder that does not follow the layout; the message names the file or episode."""


def image_key(camera: str) -> str:
  return IMAGE_PREFIX + camera


def data_path(info: dict[str, Any], episode_index: int) -> str:
  """The parquet path of an episode relative to the dataset root."""
  chunk = episode_index // int(info.get("chunks_size", CHUNKS_SIZE))
  return str(info.get("data_path", DATA_PATH)).format(episode_chunk=chunk, episode_index=episode_index)


def make_features(cameras: dict[str, tuple[int, int]], state_names: list[str],
                  action_names: list[str]) -> dict[str, Any]:
  """The `features` entry of info.json."""
  features: dict[str, Any] = {}
  for camera, (height, width) in cameras.items():
    features[image_key(camera)] = {"dtype": "image", "shape": [int(height), int(width), 3],
                                   "names": ["height", "width", "channel"]}
  features[STATE_KEY] = {"dtype": "float32", "shape": [STATE_DIM], "names": list(state_names)}
  features[ACTION_KEY] = {"dtype": "float32", "shape": [ACTION_DIM], "names": list(action_names)}
  for name, dtype in SCALAR_FEATURES.items():
    features[name] = {"dtype": dtype, "shape": [1], "names": None}
  return features


def make_info(*, robot_type: str, fps: float, features: dict[str, Any], num_episodes: int,
              num_frames: int, num_tasks: int) -> dict[str, Any]:
  return {
      "codebase_version": CODEBASE_VERSION,
      "robot_type": robot_type,
      "total_episodes": num_episodes,
      "total_frames": num_frames,
      "total_tasks": num_tasks,
      "total_videos": 0,
      "total_chunks": -(-num_episodes // CHUNKS_SIZE),
      "chunks_size": CHUNKS_SIZE,
      "fps": fps,
      "splits": {"train": f"0:{num_episodes}"},
      "data_path": DATA_PATH,
      "video_path": None,
      "features": features,
  }


def camera_shapes(features: dict[str, Any]) -> dict[str, tuple[int, int]]:
  """{camera: (H, W)} of the image features, in schema order."""
  return {key[len(IMAGE_PREFIX):]: (int(spec["shape"][0]), int(spec["shape"][1]))
          for key, spec in features.items() if key.startswith(IMAGE_PREFIX)}


def arrow_schema(features: dict[str, Any]):
  """The parquet schema, with the Hugging Face `datasets` feature types in its metadata.

  `datasets` (which LeRobot reads parquet through) takes the column types from the
  b"huggingface" metadata key: without it an image struct would load as a plain dict.
  """
  import pyarrow as pa  # pylint: disable=g-import-not-at-top

  fields, hf_features = [], {}
  for key, spec in features.items():
    if spec["dtype"] == "image":
      fields.append(pa.field(key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
      hf_features[key] = {"_type": "Image"}
    elif key in (STATE_KEY, ACTION_KEY):
      width = int(spec["shape"][0])
      fields.append(pa.field(key, pa.list_(pa.float32(), width)))
      hf_features[key] = {"feature": {"dtype": "float32", "_type": "Value"}, "length": width,
                          "_type": "Sequence"}
    else:
      fields.append(pa.field(key, pa.float32() if spec["dtype"] == "float32" else pa.int64()))
      hf_features[key] = {"dtype": spec["dtype"], "_type": "Value"}
  metadata = {b"huggingface": json.dumps({"info": {"features": hf_features}}).encode()}
  return pa.schema(fields, metadata=metadata)


def encode_png(image_hw3: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buffer = io.BytesIO()
  Image.fromarray(image_hw3).save(buffer, format="PNG")
  return buffer.getvalue()


def decode_png(data: bytes, what: str) -> np.ndarray:
  """uint8 [H, W, 3] RGB of an encoded image; undecodable bytes are an EpisodeFormatError naming `what`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(data)) as image:
      return np.asarray(image.convert("RGB"))
  except Exception as e:  # pylint: disable=broad-except  # PIL raises many kinds
    raise EpisodeFormatError(f"{what}: image bytes do not decode ({e})") from None


def read_jsonl(root: str, relpath: str) -> list[dict[str, Any]]:
  """The JSON objects of a jsonl meta file, one per non-blank line."""
  path = os.path.join(root, relpath)
  if not os.path.isfile(path):
    raise EpisodeFormatError(f"{root}: missing {relpath}")
  try:
    return files.read_jsonl_objects(path)
  except files.JSONFileError as e:
    raise EpisodeFormatError(str(e)) from None


def write_jsonl(root: str, relpath: str, lines: list[str]) -> None:
  """Replaces a jsonl meta file atomically; `lines` are already-serialised JSON objects."""
  files.write_text(os.path.join(root, relpath), "".join(line + "\n" for line in lines))


def to_json_line(record: dict[str, Any]) -> str:
  return json.dumps(record, allow_nan=False)


def read_info(root: str) -> dict[str, Any]:
  """meta/info.json, checked for the version and the keys this layout needs."""
  path = os.path.join(root, INFO_PATH)
  if not os.path.isfile(path):
    raise EpisodeFormatError(f"{root}: missing {INFO_PATH}; not a LeRobot dataset folder")
  try:
    info = files.read_json_object(path)
  except files.JSONFileError as e:
    raise EpisodeFormatError(str(e)) from None
  version = info.get("codebase_version")
  if version != CODEBASE_VERSION:
    raise EpisodeFormatError(f"{path}: unsupported codebase_version {version!r}; only {CODEBASE_VERSION!r} is read")
  for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
    if key not in info:
      raise EpisodeFormatError(f"{path}: missing key {key!r}")
  features = info["features"]
  if not isinstance(features, dict):
    raise EpisodeFormatError(f"{path}: 'features' must be an object")
  for key, dtype in [(STATE_KEY, "float32"), (ACTION_KEY, "float32"), *SCALAR_FEATURES.items()]:
    if key not in features:
      raise EpisodeFormatError(f"{path}: features lacks {key!r}")
    if features[key].get("dtype") != dtype:
      raise EpisodeFormatError(f"{path}: feature {key!r} has dtype {features[key].get('dtype')!r}, expected {dtype!r}")
  for key, width in ((STATE_KEY, STATE_DIM), (ACTION_KEY, ACTION_DIM)):
    if list(features[key].get("shape", [])) != [width]:
      raise EpisodeFormatError(f"{path}: feature {key!r} has shape {features[key].get('shape')}, expected [{width}]")
  for key, spec in features.items():
    if spec.get("dtype") == "video":
      raise EpisodeFormatError(f"{path}: feature {key!r} is stored as video; only image features are read")
    if key.startswith(IMAGE_PREFIX):
      shape = list(spec.get("shape", []))
      if spec.get("dtype") != "image" or len(shape) != 3 or shape[2] != 3:
        raise EpisodeFormatError(f"{path}: image feature {key!r} must have dtype 'image' and shape [H, W, 3], "
                                 f"got {spec.get('dtype')!r} {shape}")
  return info


def committed(root: str, relpath: str, records: list[dict[str, Any]], count: int,
              key: str = "episode_index") -> list[dict[str, Any]]:
  """The first `count` records, checked to be numbered 0..count-1 by `key`; a longer file is an
  interrupted write (warned about and cut), a shorter one is an EpisodeFormatError."""
  if len(records) < count:
    raise EpisodeFormatError(f"{root}: {relpath} has {len(records)} entries but {INFO_PATH} records {count}")
  if len(records) > count:
    warnings.warn(f"{os.path.join(root, relpath)}: ignoring {len(records) - count} entries past the "
                  f"{count} recorded in {INFO_PATH} (an interrupted write)", stacklevel=3)
  for i, record in enumerate(records[:count]):
    if record.get(key) != i:
      raise EpisodeFormatError(f"{root}: {relpath} entry {i} has {key} {record.get(key)!r}, expected {i}")
  return records[:count]


def warn_leftovers(root: str, listed_paths: set[str]) -> None:
  """Warns about (and so ignores) temporary files of an interrupted write and unlisted episode files."""
  leftovers = sorted(glob.glob(os.path.join(root, "meta", ".*.tmp"))
                     + glob.glob(os.path.join(root, "data", "**", ".*.tmp"), recursive=True))
  if leftovers:
    warnings.warn(f"{root}: ignoring {len(leftovers)} temporary file(s) of an interrupted write: "
                  + ", ".join(os.path.relpath(p, root) for p in leftovers[:5]), stacklevel=3)
  parquets = glob.glob(os.path.join(root, "data", "**", "*.parquet"), recursive=True)
  unlisted = sorted(p for p in (os.path.relpath(p, root) for p in parquets) if p not in listed_paths)
  if unlisted:
    warnings.warn(f"{root}: ignoring {len(unlisted)} episode file(s) not listed in {EPISODES_PATH} "
                  "(an interrupted write): " + ", ".join(unlisted[:5]), stacklevel=3)


def jsonable(value: Any, where: str) -> Any:
  """`value` as plain JSON data (numpy arrays and scalars become lists and numbers); anything else
  is a TypeError naming its place `where`."""
  if isinstance(value, dict):
    out = {}
    for key, item in value.items():
      if not isinstance(key, str):
        raise TypeError(f"{where} has a non-string key {key!r}; JSON object keys must be strings")
      out[key] = jsonable(item, f"{where}[{key!r}]")
    return out
  if isinstance(value, (list, tuple)):
    return [jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
  if isinstance(value, np.ndarray):
    return jsonable(value.tolist(), where)
  if isinstance(value, np.generic):
    value = value.item()
  if value is None or isinstance(value, (bool, int, str)):
    return value
  if isinstance(value, float):
    if not np.isfinite(value):
      raise ValueError(f"{where} is {value}; JSON has no NaN or infinity")
    return value
  raise TypeError(f"{where} has type {type(value).__name__}, which is not JSON data")


def read_meta_records(root: str, info: dict[str, Any]):
  """(episodes, tasks, stats) committed by info.json: the episode and stats records numbered
  0..N-1 and the task texts by task_index; checks each episode's length and task."""
  num_episodes = int(info["total_episodes"])
  episodes = committed(root, EPISODES_PATH, read_jsonl(root, EPISODES_PATH), num_episodes)
  stats = committed(root, STATS_PATH, read_jsonl(root, STATS_PATH), num_episodes)
  task_records = read_jsonl(root, TASKS_PATH)
  tasks = [record.get("task") for record in
           committed(root, TASKS_PATH, task_records, int(info.get("total_tasks", len(task_records))), "task_index")]
  for task_index, task in enumerate(tasks):
    if not isinstance(task, str):
      raise EpisodeFormatError(f"{root}: {TASKS_PATH} task {task_index} has no text")
  for record in episodes:
    where = f"{root}: {EPISODES_PATH} episode {record['episode_index']}"
    length = record.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
      raise EpisodeFormatError(f"{where} has length {length!r}; expected an int >= 1")
    episode_tasks = record.get("tasks")
    if not isinstance(episode_tasks, list) or not episode_tasks:
      raise EpisodeFormatError(f"{where} has no 'tasks' list")
    for task in episode_tasks:
      if task not in tasks:
        raise EpisodeFormatError(f"{where} names task {task!r}, which is not in {TASKS_PATH}")
    if not isinstance(record.get(EXTRA_KEY, {}), dict):
      raise EpisodeFormatError(f"{where}: {EXTRA_KEY!r} must be an object")
  return episodes, tasks, stats
