"""3DGS scenes as the standard INRIA PLY file that viewers and gsplat read.

Layout (graphdeco-inria/gaussian-splatting `scene/gaussian_model.py`): one `vertex`
element, every property float32, binary little endian, in the order

  x y z  nx ny nz  f_dc_0..2  f_rest_0..(3*(K-1)-1)  opacity  scale_0..2  rot_0..3

with K = (d+1)**2 SH coefficients per channel. Values are stored before activation:
opacity as a logit, scales as logs, rot as the (w, x, y, z) quaternion exactly as held
(not renormalised). Normals are written as zeros and ignored on load.

`f_rest` is channel-major: the (N, K-1, 3) coefficients are transposed to (N, 3, K-1)
and flattened, so all red coefficients come first, then green, then blue. Getting this
wrong swaps colours silently, which is why the loader finds every property by name.

The loader parses the header itself and checks the vertex count against the file size
before reading anything, then reads binary vertex rows as one memory-mapped structured
array (any property order and numeric types), so millions of Gaussians load in seconds.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import plyfile

from jaxlab.files import atomic_open
from jaxlab.splat.gaussians import Gaussians

# f_rest count per channel-triple -> SH degree: 3 * ((d+1)**2 - 1).
_DEGREE_BY_REST_COUNT = {3 * ((d + 1) ** 2 - 1): d for d in range(4)}
_MEANS_NAMES = ("x", "y", "z")
_NORMAL_NAMES = ("nx", "ny", "nz")
_DC_NAMES = ("f_dc_0", "f_dc_1", "f_dc_2")
_OPACITY_NAME = "opacity"
_SCALE_NAMES = ("scale_0", "scale_1", "scale_2")
_ROT_NAMES = ("rot_0", "rot_1", "rot_2", "rot_3")
_REQUIRED_NAMES = (
    _MEANS_NAMES + _DC_NAMES + (_OPACITY_NAME,) + _SCALE_NAMES + _ROT_NAMES)
_F_REST_PATTERN = re.compile(r"^f_rest_(\d+)$")
_ELEMENT_NAME = "vertex"

# PLY type names (both spellings) -> NumPy type codes.
_TYPE_CODES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
# Format name -> NumPy byte order; None is ASCII.
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
# A 3DGS header is about 2 KB; anything past this without `end_header` is not a header.
_MAX_HEADER_BYTES = 1 << 20
# Rows converted at a time: a block of rows stays in cache while its columns are copied out.
_CHUNK_ROWS = 1 << 15


def _rest_names(num_rest: int) -> tuple[str, ...]:
  return tuple(f"f_rest_{i}" for i in range(num_rest))


def property_names(sh_degree: int) -> tuple[str, ...]:
  """The vertex property names, in file order, for SH degree `sh_degree` (0..3)."""
  if sh_degree not in range(4):
    raise ValueError(f"sh_degree must be one of 0, 1, 2, 3; got {sh_degree!r}")
  num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
  return (_MEANS_NAMES + _NORMAL_NAMES + _DC_NAMES + _rest_names(num_rest)
          + (_OPACITY_NAME,) + _SCALE_NAMES + _ROT_NAMES)


def _non_finite_counts(names: tuple[str, ...], table_np: np.ndarray) -> dict[str, int]:
  """name -> number of NaN / inf entries in its column of `table_np`, for columns that have any."""
  counts = np.count_nonzero(~np.isfinite(table_np), axis=0)
  return {name: int(n) for name, n in zip(names, counts) if n}


def _raise_if_not_finite(bad: dict[str, int], what: str) -> None:
  if bad:
    listing = ", ".join(f"{name} ({n})" for name, n in bad.items())
    raise ValueError(f"{what} holds non-finite values (NaN or inf) in: {listing}")


# ----------------------------------------------------------------------------- save


def _host_float32(name: str, value: jax.Array, shape: tuple[int, ...]) -> np.ndarray:
  array = np.asarray(jax.device_get(value))
  if array.shape != shape:
    raise ValueError(f"Gaussians.{name} must have shape {shape}; got {array.shape}")
  if not jnp.issubdtype(array.dtype, jnp.floating):
    raise ValueError(f"Gaussians.{name} must be a floating dtype; got {array.dtype}")
  return array.astype(np.float32, copy=False)


def _table_from_gaussians(gaussians: Gaussians, only_active: bool) -> tuple[tuple[str, ...], np.ndarray]:
  """(property names in file order, little-endian float32 [count, len(names)] rows to write)."""
  means_n3 = np.asarray(jax.device_get(gaussians.means))
  if means_n3.ndim != 2 or means_n3.shape[1] != 3:
    raise ValueError(f"Gaussians.means must have shape (N, 3); got {means_n3.shape}")
  num = means_n3.shape[0]
  sh = np.asarray(jax.device_get(gaussians.sh))
  valid_k = tuple((d + 1) ** 2 for d in range(4))
  if sh.ndim != 3 or sh.shape[0] != num or sh.shape[2] != 3 or sh.shape[1] not in valid_k:
    raise ValueError(
        f"Gaussians.sh must have shape (N={num}, K, 3) with K in {valid_k} "
        f"(SH degree 0..3); got {sh.shape}")
  num_coeffs = sh.shape[1]
  sh_nk3 = _host_float32("sh", sh, (num, num_coeffs, 3))
  means_n3 = _host_float32("means", means_n3, (num, 3))
  log_scales_n3 = _host_float32("log_scales", gaussians.log_scales, (num, 3))
  quats_n4 = _host_float32("quats", gaussians.quats, (num, 4))
  logits_n = _host_float32("opacity_logits", gaussians.opacity_logits, (num,))
  active_n = np.asarray(jax.device_get(gaussians.active))
  if active_n.shape != (num,) or active_n.dtype != np.bool_:
    raise ValueError(
        f"Gaussians.active must be a bool array of shape ({num},); "
        f"got {active_n.dtype} {active_n.shape}")

  keep_all = not only_active or bool(active_n.all())
  keep = (lambda a: a) if keep_all else (lambda a: a[active_n])  # skips a copy when all are kept
  count = num if keep_all else int(active_n.sum())
  num_rest = 3 * (num_coeffs - 1)
  rest_nr = np.transpose(keep(sh_nk3)[:, 1:, :], (0, 2, 1)).reshape(count, num_rest)  # channel-major
  blocks = (
      (_MEANS_NAMES, keep(means_n3)),
      (_NORMAL_NAMES, 0.0),
      (_DC_NAMES, keep(sh_nk3[:, 0, :])),
      (_rest_names(num_rest), rest_nr),
      ((_OPACITY_NAME,), keep(logits_n)[:, None]),
      (_SCALE_NAMES, keep(log_scales_n3)),
      (_ROT_NAMES, keep(quats_n4)),
  )
  names = tuple(name for block_names, _ in blocks for name in block_names)
  table_np = np.empty((count, len(names)), "<f4")
  start = 0
  for block_names, values in blocks:
    table_np[:, start:start + len(block_names)] = values
    start += len(block_names)
  return names, table_np


def save_ply(
    path: str | os.PathLike,
    gaussians: Gaussians,
    *,
    only_active: bool = True,
    overwrite: bool = False,
) -> None:
  """Writes `gaussians` to `path` as an INRIA 3DGS PLY (binary little endian, float32).

  Args:
    path: destination file. Its directory must exist.
    gaussians: the scene; means [N,3], log_scales [N,3], quats [N,4], opacity_logits [N],
      sh [N,(d+1)**2,3] with d in 0..3, active [N] bool.
    only_active: write only the slots where `active` is True (default); False writes
      every slot of the buffer.
    overwrite: replace an existing file. Without it an existing file is never touched.

  The file is written to a temporary file in the same directory and moved into place
  (`jaxlab.files.atomic_open`), so a crash never leaves a half-written file at `path`.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False.
    ValueError: wrong shapes or dtypes, or non-finite values among the rows written.
  """
  path = os.fspath(path)
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
  names, table_np = _table_from_gaussians(gaussians, only_active)
  _raise_if_not_finite(_non_finite_counts(names, table_np), "Gaussians to save")
  # All-float32 rows without padding: the table's memory is the structured vertex array.
  vertex_n = table_np.view(np.dtype([(name, "<f4") for name in names])).reshape(len(table_np))
  ply = plyfile.PlyData(
      [plyfile.PlyElement.describe(vertex_n, _ELEMENT_NAME)], text=False, byte_order="<")
  with atomic_open(path, "wb", overwrite=overwrite) as stream:
    ply.write(stream)


# ----------------------------------------------------------------------------- header


@dataclasses.dataclass(frozen=True)
class _Property:
  """One property: NumPy type code of its value(s); lists also have their length's type."""

  name: str
  code: str
  length_code: str | None = None


@dataclasses.dataclass(frozen=True)
class _Element:
  name: str
  count: int
  properties: tuple[_Property, ...]

  @property
  def has_lists(self) -> bool:
    return any(prop.length_code is not None for prop in self.properties)

  def row_dtype(self, byte_order: str) -> np.dtype:
    """The packed structured dtype of one row (elements without list properties)."""
    return np.dtype([(prop.name, byte_order + prop.code) for prop in self.properties])

  def min_row_bytes(self) -> int:
    """Bytes of one binary row, counting each list as empty (exact without lists)."""
    return sum(np.dtype(prop.length_code or prop.code).itemsize for prop in self.properties)


@dataclasses.dataclass(frozen=True)
class _Header:
  byte_order: str | None  # "<" or ">" for binary bodies, None for ASCII
  elements: tuple[_Element, ...]
  num_bytes: int  # through the newline after `end_header`
  num_lines: int


def _not_ply(path: str, reason: str) -> ValueError:
  return ValueError(f"{path} is not a readable PLY file: {reason}")


def _parse_count(word: str, path: str, number: int) -> int:
  if not word.isdigit():
    raise _not_ply(path, f"header line {number}: element count must be a non-negative integer; got {word!r}")
  return int(word)


def _parse_property(words: list[str], path: str, number: int) -> _Property:
  """A `property TYPE NAME` or `property list COUNT_TYPE ITEM_TYPE NAME` line."""
  if len(words) == 5 and words[1] == "list":
    length_code, code = _TYPE_CODES.get(words[2]), _TYPE_CODES.get(words[3])
    if length_code is None or code is None or length_code[0] == "f":
      raise _not_ply(path, f"header line {number}: bad list property types {words[2]!r} {words[3]!r}")
    return _Property(words[4], code, length_code)
  if len(words) != 3 or words[1] not in _TYPE_CODES:
    raise _not_ply(path, f"header line {number}: expected 'property TYPE NAME' with TYPE one of"
                         f" {', '.join(_TYPE_CODES)}; got {' '.join(words)!r}")
  return _Property(words[2], _TYPE_CODES[words[1]])


def _header_lines(path: str) -> tuple[list[tuple[int, str]], int]:
  """([(line number, text)] through `end_header`, header size in bytes)."""
  with open(path, "rb") as stream:
    head = stream.read(_MAX_HEADER_BYTES)
  if not head.startswith(b"ply"):
    raise _not_ply(path, "it does not start with 'ply'")
  lines, start = [], 0
  while True:
    end = head.find(b"\n", start)
    if end < 0:
      raise _not_ply(path, "no 'end_header' line" + (" in its first MiB" if len(head) == _MAX_HEADER_BYTES else ""))
    raw, start = head[start:end].rstrip(b"\r"), end + 1
    try:
      text = raw.decode("ascii")
    except UnicodeDecodeError:
      raise _not_ply(path, f"header line {len(lines) + 1} is not ASCII text") from None
    lines.append((len(lines) + 1, text))
    if len(lines) == 1 and text.strip() != "ply":
      raise _not_ply(path, f"its first line is {text!r}, not 'ply'")
    if text.split()[:1] == ["end_header"]:
      return lines, start


def _read_header(path: str) -> _Header:
  """Parses the header (and nothing more) of the PLY file at `path`."""
  lines, num_bytes = _header_lines(path)
  byte_order, fmt_seen, elements = None, False, []
  for number, text in lines[1:-1]:
    words = text.split()
    if not words or words[0] in ("comment", "obj_info"):
      continue
    keyword = words[0]
    if keyword == "format":
      if fmt_seen or elements or len(words) != 3 or words[1] not in _FORMATS or words[2] != "1.0":
        raise _not_ply(path, f"header line {number}: expected one 'format {{{'|'.join(_FORMATS)}}} 1.0' line"
                             f" before the elements; got {text!r}")
      byte_order, fmt_seen = _FORMATS[words[1]], True
    elif keyword == "element" and len(words) == 3:
      elements.append(_Element(words[1], _parse_count(words[2], path, number), ()))
    elif keyword == "property" and elements:
      prop = _parse_property(words, path, number)
      last = elements[-1]
      if any(p.name == prop.name for p in last.properties):
        raise _not_ply(path, f"header line {number}: element {last.name!r} has property {prop.name!r} twice")
      elements[-1] = dataclasses.replace(last, properties=(*last.properties, prop))
    else:
      raise _not_ply(path, f"header line {number}: unexpected {text!r}")
  if not fmt_seen:
    raise _not_ply(path, "the header has no 'format' line")
  return _Header(byte_order, tuple(elements), num_bytes, len(lines))


# ----------------------------------------------------------------------------- load


def _vertex_index(header: _Header, path: str) -> int:
  """Index of the `vertex` element; warns about the other elements, which are skipped."""
  element_names = [element.name for element in header.elements]
  if element_names.count(_ELEMENT_NAME) != 1:
    if _ELEMENT_NAME not in element_names:
      raise ValueError(
          f"{path} has no '{_ELEMENT_NAME}' element (3DGS PLY stores Gaussians as "
          f"vertices); elements found: {element_names}")
    raise ValueError(f"{path} has {element_names.count(_ELEMENT_NAME)} '{_ELEMENT_NAME}' elements; expected one")
  others = [name for name in element_names if name != _ELEMENT_NAME]
  if others:
    warnings.warn(f"{path}: ignoring PLY elements other than 'vertex': {others}", stacklevel=3)
  return element_names.index(_ELEMENT_NAME)


def _check_properties(vertex: _Element, path: str) -> int:
  """Validates the property names; returns the SH degree their f_rest count implies."""
  names = [prop.name for prop in vertex.properties]
  present = set(names)
  rest_found = [name for name in names if _F_REST_PATTERN.match(name)]
  num_rest = len(rest_found)
  sh_degree = _DEGREE_BY_REST_COUNT.get(num_rest)

  missing = [name for name in _REQUIRED_NAMES if name not in present]
  if sh_degree is not None:
    # With a valid count, the names must be exactly f_rest_0..count-1.
    missing += [name for name in _rest_names(num_rest) if name not in present]
  if missing:
    raise ValueError(
        f"{path} is missing required vertex properties: {', '.join(missing)}")
  if sh_degree is None:
    valid = ", ".join(f"{count} (degree {d})" for count, d in _DEGREE_BY_REST_COUNT.items())
    raise ValueError(
        f"{path} has {num_rest} f_rest_* properties, which matches no SH degree; "
        f"valid counts are {valid}")

  list_props = [prop.name for prop in vertex.properties
                if prop.length_code is not None
                and (prop.name in _REQUIRED_NAMES or prop.name in rest_found)]
  if list_props:
    raise ValueError(f"{path}: properties must be scalars, not lists: {list_props}")

  known = set(_REQUIRED_NAMES) | set(_NORMAL_NAMES) | set(rest_found)
  extra = [name for name in names if name not in known]
  if extra:
    warnings.warn(f"{path}: ignoring extra vertex properties: {extra}", stacklevel=3)
  # The checks above leave exactly f_rest_0..num_rest-1, whatever their order in the file.
  return sh_degree


def _format_rows(num_bytes: int, row_bytes: int) -> str:
  """How many rows `num_bytes` holds: a whole number, or with two decimals."""
  if num_bytes <= 0:
    return "0"
  whole, rest = divmod(num_bytes, row_bytes)
  return str(whole) if rest == 0 else f"{num_bytes / row_bytes:.2f}"


def _check_binary_size(header: _Header, index: int, file_size: int, path: str) -> None:
  """The vertex count against the file size, before anything is allocated or read.

  Without list properties every row has a fixed size, so the header's counts give the
  file size exactly; a list element allows more bytes, so only truncation is detectable.
  """
  vertex = header.elements[index]
  row_bytes = vertex.min_row_bytes()
  other_bytes = sum(e.count * e.min_row_bytes() for i, e in enumerate(header.elements) if i != index)
  needed = header.num_bytes + other_bytes + vertex.count * row_bytes
  room = _format_rows(file_size - header.num_bytes - other_bytes, row_bytes)
  others = f" plus {other_bytes} bytes of other elements" if other_bytes else ""
  claim = (f"its header claims {vertex.count} vertices of {row_bytes} bytes, {needed} bytes with the"
           f" {header.num_bytes}-byte header{others}")
  if file_size < needed:
    raise ValueError(
        f"{path} is truncated: {claim}, but the file is {file_size} bytes, room for {room} vertices")
  if file_size > needed and not any(e.has_lists for e in header.elements):
    raise ValueError(
        f"{path}: the body holds more rows than the header's {vertex.count} vertices: {claim}, but the file"
        f" is {file_size} bytes ({file_size - needed} more), room for {room} vertices")


def _read_with_plyfile(path: str) -> np.ndarray:
  """The vertex rows through plyfile, for layouts the direct readers skip (list properties)."""
  try:
    return plyfile.PlyData.read(path, mmap=False)[_ELEMENT_NAME].data
  except plyfile.PlyParseError as error:
    raise _not_ply(path, str(error)) from error


def _read_binary_rows(header: _Header, index: int, path: str) -> np.ndarray:
  """The vertex rows of a binary file as a structured array, memory-mapped where possible."""
  _check_binary_size(header, index, os.path.getsize(path), path)
  vertex = header.elements[index]
  before = header.elements[:index]
  if vertex.has_lists or any(e.has_lists for e in before):
    return _read_with_plyfile(path)  # variable row sizes: no fixed offset to map
  dtype = vertex.row_dtype(header.byte_order)
  if vertex.count == 0:
    return np.zeros((0,), dtype)
  offset = header.num_bytes + sum(e.count * e.row_dtype(header.byte_order).itemsize for e in before)
  return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(vertex.count,))


def _ascii_rows(header: _Header, index: int, path: str) -> list[tuple[int, str]]:
  """(line number, text) of every non-blank body line, checked against the header's counts."""
  with open(path, "rb") as stream:
    stream.seek(header.num_bytes)
    body = stream.read()
  try:
    text = body.decode("ascii")
  except UnicodeDecodeError as error:
    raise _not_ply(path, f"the ASCII body holds a non-ASCII byte at offset {header.num_bytes + error.start}") from None
  rows = [(number, line) for number, line in enumerate(text.splitlines(), start=header.num_lines + 1)
          if line.strip()]
  claimed = sum(element.count for element in header.elements)
  vertex_count = header.elements[index].count
  claim = f"its header claims {vertex_count} vertices" + (
      f" and {claimed - vertex_count} other rows" if claimed != vertex_count else "")
  if len(rows) < claimed:
    raise ValueError(f"{path} is truncated: {claim}, but its body has {len(rows)} rows (one per line)")
  if len(rows) > claimed:
    raise ValueError(
        f"{path}: the body holds more rows than the header's {vertex_count} vertices: {claim} ({claimed} lines),"
        f" but its body has {len(rows)} rows (one per line)")
  return rows


def _parse_ascii_vertices(rows: list[tuple[int, str]], vertex: _Element, path: str) -> np.ndarray:
  """Structured array of the vertex rows (one value per property, no lists)."""
  width = len(vertex.properties)
  fields = [line.split() for _, line in rows]
  for (number, _), values in zip(rows, fields):
    if len(values) != width:
      raise _not_ply(path, f"line {number}: a vertex row has {width} values; got {len(values)}")
  try:
    table = np.array(fields, np.float64).reshape(len(rows), width)
  except ValueError:
    for (number, line), values in zip(rows, fields):
      try:
        np.array(values, np.float64)
      except ValueError:
        raise _not_ply(path, f"line {number}: a vertex row holds a non-number: {line.strip()!r}") from None
    raise
  out = np.empty((len(rows),), vertex.row_dtype("="))
  for j, prop in enumerate(vertex.properties):
    out[prop.name] = table[:, j]
  return out


def _read_ascii_rows(header: _Header, index: int, path: str) -> np.ndarray:
  rows = _ascii_rows(header, index, path)
  vertex = header.elements[index]
  if vertex.has_lists:
    return _read_with_plyfile(path)
  start = sum(element.count for element in header.elements[:index])
  return _parse_ascii_vertices(rows[start:start + vertex.count], vertex, path)


def _as_matrix(rows: np.ndarray) -> np.ndarray | None:
  """[N, P] view of structured `rows` whose P fields share one dtype and are packed; else None."""
  fields = [rows.dtype.fields[name] for name in rows.dtype.names]
  base = fields[0][0]
  packed = all(dtype == base and offset == j * base.itemsize for j, (dtype, offset, *_) in enumerate(fields))
  if not packed or base.hasobject or rows.dtype.itemsize != len(fields) * base.itemsize:
    return None
  return rows.view(base).reshape(rows.shape[0], len(fields))


def _gather_columns(rows: np.ndarray, names: list[str], path: str) -> np.ndarray:
  """float32 [N, len(names)] of the named fields of structured `rows`; refuses NaN and inf."""
  table_np = np.empty((rows.shape[0], len(names)), np.float32)
  matrix = _as_matrix(rows) if rows.shape[0] else None
  columns = np.asarray([rows.dtype.names.index(name) for name in names])
  bad = np.zeros((len(names),), np.int64)
  for start in range(0, rows.shape[0], _CHUNK_ROWS):
    block = table_np[start:start + _CHUNK_ROWS]
    if matrix is not None:  # one gather per block (the usual all-float32 file)
      block[...] = matrix[start:start + _CHUNK_ROWS][:, columns]
    else:
      chunk = rows[start:start + _CHUNK_ROWS]
      for j, name in enumerate(names):
        block[:, j] = chunk[name]  # converts byte order and numeric type to float32
    bad += np.count_nonzero(~np.isfinite(block), axis=0)
  _raise_if_not_finite({name: int(n) for name, n in zip(names, bad) if n}, path)
  return table_np


def _sh_names(sh_degree: int) -> list[str]:
  """The SH property names in (coefficient, channel) order, so the columns reshape to [N, K, 3]."""
  num_rest = (sh_degree + 1) ** 2 - 1
  names = list(_DC_NAMES)
  for k in range(num_rest):
    names += [f"f_rest_{channel * num_rest + k}" for channel in range(3)]  # channel-major in the file
  return names


def load_ply(path: str | os.PathLike, *, capacity: int | None = None) -> Gaussians:
  """Reads an INRIA 3DGS PLY (binary or ASCII) into `Gaussians`.

  Properties are found by name, so their order in the file does not matter; the SH
  degree is inferred from the number of `f_rest_*` properties (0, 9, 24, 45 -> 0..3).
  Normals and properties outside the layout are ignored (the latter with a warning).
  Properties of another numeric type than float32 are converted to float32.

  The header's vertex count is checked against the file before anything is read: a
  binary body must be exactly as long as the header's counts say, an ASCII body must have
  one line per row.

  Args:
    path: the PLY file.
    capacity: size of the returned buffer. None gives exactly the file's Gaussians;
      a larger value appends inactive slots.

  Returns:
    Gaussians with N = capacity (or the vertex count) slots; the file's Gaussians are
    the first ones and are active.

  Raises:
    ValueError: not a PLY, no `vertex` element, missing properties (all are named), an
      `f_rest` count that matches no SH degree, a vertex count the file size disagrees
      with (truncated, or more rows than claimed), non-finite values, or a capacity below
      the vertex count.
  """
  path = os.fspath(path)
  header = _read_header(path)
  index = _vertex_index(header, path)
  vertex = header.elements[index]
  sh_degree = _check_properties(vertex, path)
  num = vertex.count

  if capacity is None:
    capacity = num
  if not isinstance(capacity, (int, np.integer)) or isinstance(capacity, bool):
    raise ValueError(f"capacity must be an int or None; got {capacity!r}")
  if capacity < num:
    raise ValueError(
        f"capacity={capacity} is smaller than the {num} Gaussians in {path}; "
        f"pass capacity >= {num} or None")

  read_rows = _read_ascii_rows if header.byte_order is None else _read_binary_rows
  rows = read_rows(header, index, path)
  names = [*_MEANS_NAMES, *_SCALE_NAMES, *_ROT_NAMES, _OPACITY_NAME, *_sh_names(sh_degree)]
  table_np = _gather_columns(rows, names, path)
  del rows  # closes the memory map

  num_coeffs = (sh_degree + 1) ** 2
  gaussians = Gaussians(
      means=jnp.asarray(table_np[:, 0:3]),
      log_scales=jnp.asarray(table_np[:, 3:6]),
      quats=jnp.asarray(table_np[:, 6:10]),
      opacity_logits=jnp.asarray(table_np[:, 10]),
      sh=jnp.asarray(table_np[:, 11:].reshape(num, num_coeffs, 3)),
      active=jnp.ones((num,), jnp.bool_),
  )
  return gaussians if capacity == num else gaussians.pad_to(int(capacity))
