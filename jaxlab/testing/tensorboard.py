"""Reads TensorBoard event files back (scalars and images), without TensorFlow.

Event files are TFRecords: per record a uint64 length, a uint32 masked CRC of it, the
payload (an `Event` protobuf) and a uint32 masked CRC of the payload. The CRCs are skipped.
"""

import io
import os
import pathlib
import struct

import numpy as np
from PIL import Image
from tensorboardX.proto import event_pb2


def read_records(path: str | os.PathLike) -> list[bytes]:
  """Payloads of one TFRecord file, in order."""
  data = pathlib.Path(path).read_bytes()
  payloads, offset = [], 0
  while offset < len(data):
    (length,) = struct.unpack_from("<Q", data, offset)
    offset += 8 + 4
    if offset + length + 4 > len(data):
      raise ValueError(f"{path}: truncated record at byte {offset - 12}")
    payloads.append(data[offset:offset + length])
    offset += length + 4
  return payloads


def read_events(logdir: str | os.PathLike) -> list[event_pb2.Event]:
  """Every event of every `events.out.tfevents.*` file in `logdir` (files in name order)."""
  files = sorted(pathlib.Path(logdir).glob("events.out.tfevents.*"))
  if not files:
    raise FileNotFoundError(f"no TensorBoard event file in {logdir}")
  return [event_pb2.Event.FromString(p) for f in files for p in read_records(f)]


def read_scalars(logdir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value), ...] in written order."""
  scalars: dict[str, list[tuple[int, float]]] = {}
  for event in read_events(logdir):
    for value in event.summary.value:
      if value.HasField("simple_value"):
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def read_images(logdir: str | os.PathLike) -> dict[str, list[tuple[int, np.ndarray]]]:
  """tag -> [(step, decoded image uint8 [H, W, C]), ...] in written order."""
  images: dict[str, list[tuple[int, np.ndarray]]] = {}
  for event in read_events(logdir):
    for value in event.summary.value:
      if value.HasField("image"):
        pixels = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)))
        images.setdefault(value.tag, []).append((event.step, pixels))
  return images
