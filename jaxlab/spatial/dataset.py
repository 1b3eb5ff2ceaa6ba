"""Writing engine output to disk: PNGs and the MultiSPA jsonl, elements drawn in parallel by grain workers.

  stats = write_dataset(source, "out/train", "train", num_workers=2)

writes `out/train/images/<id>_<k>.png` (staged, then renamed into place) and `out/train/train.jsonl`
(atomically), and returns the
counts per subtask, the skip reasons and the QA pairs per second. Workers draw questions and encode
PNGs; the main process only writes bytes. Element order (and so the file) does not depend on the
number of workers.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pathlib
import shutil
import tempfile
import time

import grain
from PIL import Image

from jaxlab.spatial.qa import SpatialQA, write_items


@dataclasses.dataclass
class DatasetStats:
  items: int
  per_subtask: dict[str, int]
  unfilled: dict[str, int]       # Elements whose every attempt was skipped, per subtask.
  skip_reasons: dict[str, int]   # Every skipped attempt's reason (retries included).
  seconds: float

  @property
  def qa_per_second(self) -> float:
    return self.items / self.seconds if self.seconds > 0 else float("nan")


def _png(image) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def encode_element(element: dict) -> dict:
  """The element with its sample's images as PNG bytes (runs in the workers)."""
  sample = element["sample"]
  out = {"subtask": element["subtask"], "skips": element["skips"], "qa": None, "pngs": ()}
  if sample is not None:
    out["qa"] = sample.qa
    out["pngs"] = tuple(_png(image) for image in sample.images)
  return out


def _use_default_absl_flags() -> None:
  """grain's worker processes read absl flags; outside an absl app nothing parsed them, so take the defaults."""
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class SceneChunks:
  """Random access over scenes: element k is the encoded elements of scene k (all its items, in order).

  Workers take whole scenes, so each scene is built and planned by one process only.
  """

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source.scenes)

  def __getitem__(self, scene_index: int) -> list[dict]:
    per = self.source.items_per_scene
    return [encode_element(self.source[i]) for i in range(int(scene_index) * per, (int(scene_index) + 1) * per)]


def iterate_encoded(source, *, num_workers: int = 0):
  """Encoded elements of a `MultiSpaSource`, in index order, drawn by `num_workers` processes."""
  dataset = grain.MapDataset.source(SceneChunks(source))
  # One reader thread per process: threads reading elements of one scene at once would each plan it.
  dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
  if num_workers > 0:
    _use_default_absl_flags()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  for chunk in dataset:
    yield from chunk


def write_dataset(source, out_dir: str | pathlib.Path, name: str, *, num_workers: int = 0) -> DatasetStats:
  """Writes `out_dir/images/` and `out_dir/<name>.jsonl` (module docstring).

  The PNGs go to a fresh staging folder that is renamed to `images/` once all are written (one rename
  instead of an fsync per image); an existing `images/` is never written into.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  final = out_dir / "images"
  if final.exists():
    raise FileExistsError(f"{final} already exists; write the dataset to another folder or move it away")
  staging = pathlib.Path(tempfile.mkdtemp(prefix=".images-partial-", dir=out_dir))
  items: list[SpatialQA] = []
  unfilled, reasons = collections.Counter(), collections.Counter()
  start = time.perf_counter()
  try:
    for element in iterate_encoded(source, num_workers=num_workers):
      reasons.update(element["skips"])
      qa = element["qa"]
      if qa is None:
        unfilled[element["subtask"]] += 1
        continue
      for image_name, png in zip(qa.images, element["pngs"]):
        (staging / image_name).write_bytes(png)
      items.append(dataclasses.replace(qa, images=tuple(f"images/{n}" for n in qa.images)))
    os.rename(staging, final)
  finally:
    if staging.exists():
      shutil.rmtree(staging)  # Only the staging folder this call made.
  seconds = time.perf_counter() - start
  write_items(out_dir / f"{name}.jsonl", items)
  per_subtask = collections.Counter(i.subtask for i in items)
  return DatasetStats(len(items), dict(sorted(per_subtask.items())), dict(sorted(unfilled.items())),
                      dict(reasons.most_common()), seconds)
