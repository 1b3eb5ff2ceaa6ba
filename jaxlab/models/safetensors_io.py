"""Reading and writing safetensors checkpoints with numpy: one file or a sharded index, any float dtype.

`safetensors.safe_open` validates each file's header (offsets, sizes); the data is then
memory-mapped from the header's offsets, so tensors are read lazily and bfloat16 / float8 come
back as `ml_dtypes` arrays: the `safetensors` numpy backend refuses to return bfloat16, the dtype
of nearly every hub MoE checkpoint. Reading a floating tensor refuses NaN and infinity, naming the
tensor and its file. Writing goes through `safetensors.serialize_file`, which takes any dtype by name.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping

import ml_dtypes
import numpy as np
import safetensors

from jaxlab.files import NonFiniteError, read_json_object, require_finite  # noqa: F401 - NonFiniteError re-exported

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
# Header lengths past this are a corrupt file, not a checkpoint (the format caps headers at 100 MB).
_MAX_HEADER_BYTES = 100 * 2**20
# Elements per step of the finiteness check: bounds its temporary mask at 16 MiB per tensor.


class SafetensorsFile:
  """One .safetensors file: tensor names, shapes and dtypes from its header; data memory-mapped on demand."""

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    with open(self.path, "rb") as f:
      prefix = f.read(8)
      if len(prefix) != 8:
        raise ValueError(f"{self.path} is not a safetensors file (shorter than its 8-byte header length)")
      (header_len,) = struct.unpack("<Q", prefix)
      if header_len > _MAX_HEADER_BYTES:
        raise ValueError(f"{self.path} is not a safetensors file (header length {header_len})")
      try:
        header = json.loads(f.read(header_len))
      except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{self.path} is not a safetensors file (bad header: {e})") from None
    try:  # The reference parser checks what this one does not (overlapping or missing data ranges).
      with safetensors.safe_open(self.path, framework="numpy") as checked:
        checked_names = set(checked.keys())
    except safetensors.SafetensorError as e:
      raise ValueError(f"{self.path} is not a valid safetensors file: {e}") from None
    self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
    if checked_names != set(header):
      raise ValueError(f"{self.path}: header parse disagrees with safetensors on the tensor names")
    self._data_start = 8 + header_len
    self._entries = header
    self._mmap = None

  @property
  def names(self) -> list[str]:
    return list(self._entries)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._entries[name]["shape"])

  def dtype_name(self, name: str) -> str:
    """The safetensors dtype string ("BF16", "F32", ...)."""
    return self._entries[name]["dtype"]

  def read(self, name: str, *, check_finite: bool = True) -> np.ndarray:
    """The tensor as a read-only numpy array backed by the file (no copy).

    Raises NonFiniteError (a ValueError) naming the tensor and file when a floating tensor holds NaN
    or infinity, unless `check_finite` is False.
    """
    entry = self._entries[name]
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
      raise ValueError(f"{self.path}: tensor {name!r} has unsupported dtype {entry['dtype']}")
    begin, end = entry["data_offsets"]
    if self._mmap is None:
      self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r")
    raw = self._mmap[self._data_start + begin:self._data_start + end]
    shape = self.shape(name)
    if raw.size != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
      raise ValueError(f"{self.path}: tensor {name!r} has {raw.size} bytes, not shape {shape} of {entry['dtype']}")
    array = raw.view(dtype).reshape(shape)
    if check_finite:
      require_finite(array, f"tensor {name!r} in {self.path}")
    return array


class Checkpoint:
  """The tensors of a checkpoint directory: `model.safetensors`, or the shards its index names."""

  def __init__(self, directory: str | os.PathLike):
    directory = os.fspath(directory)
    index_path = os.path.join(directory, INDEX_NAME)
    self.files: dict[str, SafetensorsFile] = {}
    self._file_of: dict[str, str] = {}
    if os.path.exists(index_path):
      index = read_json_object(index_path)
      weight_map = index.get("weight_map")
      if not isinstance(weight_map, dict):
        raise ValueError(f"{index_path} has no 'weight_map'")
      self.metadata = index.get("metadata") or {}
      for shard in sorted(set(weight_map.values())):
        self.files[shard] = SafetensorsFile(os.path.join(directory, shard))
      for name, shard in weight_map.items():
        if name not in self.files[shard].names:
          raise ValueError(f"{index_path} maps {name!r} to {shard}, which does not hold it")
        self._file_of[name] = shard
    elif os.path.exists(os.path.join(directory, SINGLE_NAME)):
      single = SafetensorsFile(os.path.join(directory, SINGLE_NAME))
      self.files[SINGLE_NAME] = single
      self.metadata = single.metadata
      self._file_of = {name: SINGLE_NAME for name in single.names}
    else:
      present = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
      raise FileNotFoundError(
          f"{directory} holds neither {SINGLE_NAME} nor {INDEX_NAME} (it holds {present})"
      )

  @property
  def names(self) -> list[str]:
    return list(self._file_of)

  def shape(self, name: str) -> tuple[int, ...]:
    return self.files[self._file_of[name]].shape(name)

  def dtype_name(self, name: str) -> str:
    return self.files[self._file_of[name]].dtype_name(name)

  def read(self, name: str, *, check_finite: bool = True) -> np.ndarray:
    """The tensor, memory-mapped; NaN or infinity in a floating tensor raise NonFiniteError (see
    `SafetensorsFile.read`)."""
    return self.files[self._file_of[name]].read(name, check_finite=check_finite)


def write_file(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
  """Writes `tensors` (contiguous numpy arrays of any dtype, ml_dtypes included) to one .safetensors file."""
  arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
  specs = {
      name: safetensors.TensorSpec(dtype=a.dtype.name, shape=a.shape, data_ptr=a.ctypes.data, data_len=a.nbytes)
      for name, a in arrays.items()
  }
  safetensors.serialize_file(specs, os.fspath(path), metadata=dict(metadata))


def shard_names(sizes: Iterable[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
  """Groups tensor names, in order, into shards of at most `max_shard_bytes` (a larger tensor gets its own)."""
  shards: list[list[str]] = [[]]
  used = 0
  for name, size in sizes:
    if shards[-1] and used + size > max_shard_bytes:
      shards.append([])
      used = 0
    shards[-1].append(name)
    used += size
  return shards
