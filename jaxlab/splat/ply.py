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
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import plyfile

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


def _rest_names(num_rest: int) -> tuple[str, ...]:
  return tuple(f"f_rest_{i}" for i in range(num_rest))


def property_names(sh_degree: int) -> tuple[str, ...]:
  """The vertex property names, in file order, for SH degree `sh_degree` (0..3)."""
  if sh_degree not in range(4):
    raise ValueError(f"sh_degree must be one of 0, 1, 2, 3; got {sh_degree!r}")
  num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
  return (_MEANS_NAMES + _NORMAL_NAMES + _DC_NAMES + _rest_names(num_rest)
          + (_OPACITY_NAME,) + _SCALE_NAMES + _ROT_NAMES)


# ----------------------------------------------------------------------------- save


def _host_float32(name: str, value: jax.Array, shape: tuple[int, ...]) -> np.ndarray:
  array = np.asarray(jax.device_get(value))
  if array.shape != shape:
    raise ValueError(f"Gaussians.{name} must have shape {shape}; got {array.shape}")
  if not jnp.issubdtype(array.dtype, jnp.floating):
    raise ValueError(f"Gaussians.{name} must be a floating dtype; got {array.dtype}")
  return array.astype(np.float32, copy=False)


def _columns_from_gaussians(gaussians: Gaussians, only_active: bool) -> dict[str, np.ndarray]:
  """Host float32 columns keyed by property name, in file order."""
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

  keep_n = active_n if only_active else np.ones((num,), np.bool_)
  count = int(keep_n.sum())
  rest_n3r = np.transpose(sh_nk3[keep_n, 1:, :], (0, 2, 1))  # channel-major
  blocks = (
      (_MEANS_NAMES, means_n3[keep_n]),
      (_NORMAL_NAMES, np.zeros((count, 3), np.float32)),
      (_DC_NAMES, sh_nk3[keep_n, 0, :]),
      (_rest_names(3 * (num_coeffs - 1)), rest_n3r.reshape(count, 3 * (num_coeffs - 1))),
      ((_OPACITY_NAME,), logits_n[keep_n, None]),
      (_SCALE_NAMES, log_scales_n3[keep_n]),
      (_ROT_NAMES, quats_n4[keep_n]),
  )
  columns = {}
  for names, block in blocks:
    for i, name in enumerate(names):
      columns[name] = block[:, i]
  return columns


def _raise_if_not_finite(columns: dict[str, np.ndarray], what: str) -> None:
  bad = {name: int(np.count_nonzero(~np.isfinite(col))) for name, col in columns.items()}
  bad = {name: n for name, n in bad.items() if n}
  if bad:
    listing = ", ".join(f"{name} ({n})" for name, n in bad.items())
    raise ValueError(f"{what} holds non-finite values (NaN or inf) in: {listing}")


def _create_temp_file(directory: str, basename: str) -> tuple[int, str]:
  """Opens a fresh hidden file next to the destination; the umask sets its mode."""
  flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
  for _ in range(16):
    tmp_path = os.path.join(directory, f".{basename}.{secrets.token_hex(6)}.tmp")
    try:
      return os.open(tmp_path, flags, 0o666), tmp_path
    except FileExistsError:
      continue
  raise FileExistsError(f"could not create a temporary file in {directory}")


def _publish(tmp_path: str, path: str, overwrite: bool) -> None:
  """Moves the finished temp file to `path` in one step."""
  if overwrite:
    os.replace(tmp_path, path)
    return
  # A hard link fails if `path` exists, so no-clobber holds even against a racing writer.
  try:
    os.link(tmp_path, path)
  except FileExistsError:
    raise FileExistsError(
        f"{path} already exists; pass overwrite=True to replace it") from None
  except OSError:
    # Filesystems without hard links: check, then rename.
    if os.path.exists(path):
      raise FileExistsError(
          f"{path} already exists; pass overwrite=True to replace it") from None
    os.replace(tmp_path, path)
    return
  os.unlink(tmp_path)


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

  The file is written to a temporary file in the same directory and moved into place,
  so a crash never leaves a half-written file at `path`.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False.
    ValueError: wrong shapes or dtypes, or non-finite values among the rows written.
  """
  path = os.fspath(path)
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
  columns = _columns_from_gaussians(gaussians, only_active)
  _raise_if_not_finite(columns, "Gaussians to save")

  count = next(iter(columns.values())).shape[0]
  vertex_n = np.empty((count,), dtype=[(name, "<f4") for name in columns])
  for name, col in columns.items():
    vertex_n[name] = col
  ply = plyfile.PlyData(
      [plyfile.PlyElement.describe(vertex_n, _ELEMENT_NAME)], text=False, byte_order="<")

  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"directory {directory} does not exist; cannot write {path}")
  fd, tmp_path = _create_temp_file(directory, os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as stream:
      ply.write(stream)
      stream.flush()
      os.fsync(stream.fileno())
    if overwrite and os.path.isfile(path):
      shutil.copymode(path, tmp_path)  # a replaced file keeps its permissions
    _publish(tmp_path, path, overwrite)
  finally:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)


# ----------------------------------------------------------------------------- load


def _vertex_element(ply: plyfile.PlyData, path: str) -> plyfile.PlyElement:
  element_names = [element.name for element in ply.elements]
  if _ELEMENT_NAME not in element_names:
    raise ValueError(
        f"{path} has no '{_ELEMENT_NAME}' element (3DGS PLY stores Gaussians as "
        f"vertices); elements found: {element_names}")
  others = [name for name in element_names if name != _ELEMENT_NAME]
  if others:
    warnings.warn(f"{path}: ignoring PLY elements other than 'vertex': {others}",
                  stacklevel=3)
  return ply[_ELEMENT_NAME]


def _check_properties(vertex: plyfile.PlyElement, path: str) -> tuple[list[str], int]:
  """Validates the property names; returns the f_rest names by suffix and the SH degree."""
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
                if isinstance(prop, plyfile.PlyListProperty)
                and (prop.name in _REQUIRED_NAMES or prop.name in rest_found)]
  if list_props:
    raise ValueError(f"{path}: properties must be scalars, not lists: {list_props}")

  known = set(_REQUIRED_NAMES) | set(_NORMAL_NAMES) | set(rest_found)
  extra = [name for name in names if name not in known]
  if extra:
    warnings.warn(f"{path}: ignoring extra vertex properties: {extra}", stacklevel=3)
  # The checks above leave exactly f_rest_0..num_rest-1, whatever their order in the file.
  return list(_rest_names(num_rest)), sh_degree


def load_ply(path: str | os.PathLike, *, capacity: int | None = None) -> Gaussians:
  """Reads an INRIA 3DGS PLY (binary or ASCII) into `Gaussians`.

  Properties are found by name, so their order in the file does not matter; the SH
  degree is inferred from the number of `f_rest_*` properties (0, 9, 24, 45 -> 0..3).
  Normals and properties outside the layout are ignored (the latter with a warning).
  Properties of another numeric type than float32 are converted to float32.

  Args:
    path: the PLY file.
    capacity: size of the returned buffer. None gives exactly the file's Gaussians;
      a larger value appends inactive slots.

  Returns:
    Gaussians with N = capacity (or the vertex count) slots; the file's Gaussians are
    the first ones and are active.

  Raises:
    ValueError: not a PLY, no `vertex` element, missing properties (all are named), an
      `f_rest` count that matches no SH degree, non-finite values, or a capacity below
      the vertex count.
  """
  path = os.fspath(path)
  try:
    ply = plyfile.PlyData.read(path, mmap=False)
  except plyfile.PlyParseError as error:
    raise ValueError(f"{path} is not a readable PLY file: {error}") from error
  vertex = _vertex_element(ply, path)
  rest_names, sh_degree = _check_properties(vertex, path)
  num = vertex.count

  if capacity is None:
    capacity = num
  if not isinstance(capacity, (int, np.integer)) or isinstance(capacity, bool):
    raise ValueError(f"capacity must be an int or None; got {capacity!r}")
  if capacity < num:
    raise ValueError(
        f"capacity={capacity} is smaller than the {num} Gaussians in {path}; "
        f"pass capacity >= {num} or None")

  used = list(_REQUIRED_NAMES) + rest_names
  columns = {name: np.asarray(vertex[name], dtype=np.float32) for name in used}
  _raise_if_not_finite(columns, str(path))

  def stack(names: Sequence[str]) -> np.ndarray:
    """[num, len(names)] with the named columns in order (degree 0 has no f_rest)."""
    if not names:
      return np.zeros((num, 0), np.float32)
    return np.stack([columns[name] for name in names], axis=-1)

  num_coeffs = (sh_degree + 1) ** 2
  dc_n13 = stack(_DC_NAMES)[:, None, :]
  rest_nk3 = np.transpose(stack(rest_names).reshape(num, 3, num_coeffs - 1), (0, 2, 1))
  gaussians = Gaussians(
      means=jnp.asarray(stack(_MEANS_NAMES)),
      log_scales=jnp.asarray(stack(_SCALE_NAMES)),
      quats=jnp.asarray(stack(_ROT_NAMES)),
      opacity_logits=jnp.asarray(columns[_OPACITY_NAME]),
      sh=jnp.asarray(np.concatenate([dc_n13, rest_nk3], axis=1)),
      active=jnp.ones((num,), jnp.bool_),
  )
  return gaussians if capacity == num else gaussians.pad_to(int(capacity))
