"""Robot demonstrations (LeRobot v2.1 episode folders) as a viewer source: frames, not a 3D scene."""

from __future__ import annotations

import pathlib
import threading

import numpy as np

from jaxlab.robosplat.episodes import EpisodeDataset, EpisodeFormatError
from jaxlab.view.errors import SourceError, naming
from jaxlab.view.presets import CameraPreset

INFO_FILE = pathlib.Path("meta") / "info.json"
# The folders of a configs/robosplat_generate.py workdir, in the order they are offered.
GENERATE_FOLDERS = ("generated", "source")


def dataset_folders(path: pathlib.Path) -> dict[str, pathlib.Path]:
  """{name: folder} of the episode datasets at `path`: itself, or a generate workdir's generated/ and source/."""
  if (path / INFO_FILE).is_file():
    return {path.name or str(path): path}
  return {name: path / name for name in GENERATE_FOLDERS if (path / name / INFO_FILE).is_file()}


def _open(folder: pathlib.Path) -> EpisodeDataset:
  try:
    return EpisodeDataset(folder)
  except (EpisodeFormatError, OSError, ValueError) as e:
    raise naming(folder, e) from None


class DemoSource:
  """Episode datasets by name (`datasets`, "generated" first); frames are uint8 [H, W, 3]."""

  kind = "demos"

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    if not self.path.is_dir():
      raise SourceError(f"{self.path} does not exist" if not self.path.exists() else f"{self.path} is not a folder")
    folders = dataset_folders(self.path)
    if not folders:
      raise SourceError(f"{self.path} holds no episode dataset: looked for {INFO_FILE} there and in "
                        f"{' and '.join(f'{name}/' for name in GENERATE_FOLDERS)}")
    self.datasets: dict[str, EpisodeDataset] = {name: _open(folder) for name, folder in folders.items()}
    self.presets: list[CameraPreset] = []
    self.background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Decoded frames of the episode last looked at: scrubbing back and forth decodes each frame once.
    self._episode_key: tuple[str, int] | None = None
    self._frames: dict[tuple[str, int], np.ndarray] = {}
    self._tasks: dict[tuple[str, int], str] = {}
    self._lock = threading.Lock()

  def _dataset(self, dataset: str) -> EpisodeDataset:
    if dataset not in self.datasets:
      raise KeyError(f"no dataset {dataset!r} in {self.path}; there are {list(self.datasets)}")
    return self.datasets[dataset]

  def num_episodes(self, dataset: str) -> int:
    return len(self._dataset(dataset))

  def cameras(self, dataset: str) -> list[str]:
    return list(self._dataset(dataset).cameras)

  def episode_length(self, dataset: str, episode: int) -> int:
    return int(self._dataset(dataset).episode_length(episode))

  def fps(self, dataset: str) -> float:
    return float(self._dataset(dataset).fps)

  def task(self, dataset: str, episode: int) -> str:
    """The episode's task text (from its first frame)."""
    key = (dataset, int(episode))
    if key not in self._tasks:
      ds = self._dataset(dataset)
      first = sum(ds.episode_length(e) for e in range(int(episode)))  # global index of its frame 0
      try:
        self._tasks[key] = str(ds.frame(first)["task"]) if ds.episode_length(episode) else ""
      except EpisodeFormatError as e:
        raise naming(ds.root, e) from None
    return self._tasks[key]

  def frame(self, dataset: str, episode: int, camera: str, t: int) -> np.ndarray:
    """uint8 [H, W, 3]: camera `camera` at frame `t` of the episode (its file is read once, then cached)."""
    ds = self._dataset(dataset)
    if camera not in ds.cameras:
      raise KeyError(f"no camera {camera!r} in {ds.root}; there are {list(ds.cameras)}")
    with self._lock:
      if self._episode_key != (dataset, int(episode)):
        self._episode_key, self._frames = (dataset, int(episode)), {}
      image = self._frames.get((camera, int(t)))
      if image is None:
        try:
          image = ds.frame_images(int(episode), int(t), [camera])[0]
        except EpisodeFormatError as e:  # a file damaged after the dataset was opened
          raise naming(ds.root, e) from None
        image.flags.writeable = False  # shared with later callers through the cache
        self._frames[(camera, int(t))] = image
    return image

  def status(self) -> str:
    return "; ".join(f"{name}: {len(ds):,} episode(s), {ds.num_frames:,} frames, cameras {', '.join(ds.cameras)}"
                     for name, ds in self.datasets.items())
