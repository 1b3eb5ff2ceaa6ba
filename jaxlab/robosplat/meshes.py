"""Triangle meshes of robot and object visuals (.obj, .stl) and surface point sampling.

Only the parts of the formats that pybullet_data's Panda, table, tray and small objects use:
OBJ vertex positions and polygon faces (fan-triangulated; texture coordinates and normals are
ignored) with the diffuse colour `Kd` of each face's material from the `mtllib` file, and
binary or ASCII STL triangles (shared corners merged). Surface samples are area-weighted, so
link point clouds have a uniform density, e.g. to seed per-link Gaussians.
"""

import functools
import os
from typing import Any, NamedTuple

import numpy as np

from jaxlab.robosplat import urdf

_DEFAULT_KD = (1.0, 1.0, 1.0)  # Faces without a material (or with an unknown one) are white.


class MeshError(ValueError):
  """A mesh file that cannot be read: unsupported, damaged or empty."""


class Mesh(NamedTuple):
  """A triangle mesh.

  Attributes:
    vertices_v3: [V, 3] float32 positions (already scaled).
    faces_f3: [F, 3] int32 vertex indices, counter-clockwise seen from outside.
    face_colors_f3: [F, 3] float32 diffuse colours (OBJ `Kd` from the .mtl), or None when the
      file names no material library that could be read.
  """

  vertices_v3: np.ndarray
  faces_f3: np.ndarray
  face_colors_f3: np.ndarray | None


class SurfaceSamples(NamedTuple):
  """Points on a surface with their unit normals and colours (rows match)."""

  points_p3: np.ndarray
  normals_p3: np.ndarray
  colors_p3: np.ndarray


def _read_mtl(path: str) -> dict[str, tuple[float, float, float]]:
  """Material name -> Kd of an .mtl file (materials without Kd are left out)."""
  colors, name = {}, None
  with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
      parts = line.split()
      if not parts:
        continue
      if parts[0] == "newmtl":
        name = " ".join(parts[1:])
      elif parts[0] == "Kd" and name is not None:
        try:
          colors[name] = tuple(float(v) for v in parts[1:4])
        except ValueError:
          raise MeshError(f"{path}: bad Kd line {line.strip()!r}") from None
  return colors


def _read_obj(path: str) -> Mesh:
  vertices, faces, face_materials = [], [], []
  material_files, material = [], None
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, 1):
      if line.startswith("v "):
        parts = line.split()
        try:
          vertices.append((float(parts[1]), float(parts[2]), float(parts[3])))
        except (ValueError, IndexError):
          raise MeshError(f"{path}:{number}: bad vertex line {line.strip()!r}") from None
      elif line.startswith("f "):
        try:
          corners = [int(c.split("/")[0]) for c in line.split()[1:]]
        except ValueError:
          raise MeshError(f"{path}:{number}: bad face line {line.strip()!r}") from None
        if len(corners) < 3:
          raise MeshError(f"{path}:{number}: a face needs at least 3 vertices")
        # OBJ indices are 1-based; negative ones count back from the latest vertex.
        corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
        for k in range(1, len(corners) - 1):  # Fan triangulation of convex polygons.
          faces.append((corners[0], corners[k], corners[k + 1]))
          face_materials.append(material)
      elif line.startswith("usemtl"):
        material = line[len("usemtl"):].strip()
      elif line.startswith("mtllib"):
        material_files.append(line[len("mtllib"):].strip())
  if not vertices or not faces:
    raise MeshError(f"{path}: no {'vertices' if not vertices else 'faces'} (damaged or empty)")
  vertices_v3 = np.asarray(vertices, np.float32)
  faces_f3 = np.asarray(faces, np.int64)
  if faces_f3.min() < 0 or faces_f3.max() >= len(vertices_v3):
    raise MeshError(f"{path}: face index out of range (the file has {len(vertices_v3)} "
                    "vertices; damaged or truncated)")
  colors = None
  library: dict[str, tuple] = {}
  found = False
  for name in material_files:
    mtl_path = os.path.join(os.path.dirname(path), name)
    if os.path.isfile(mtl_path):
      library.update(_read_mtl(mtl_path))
      found = True
  if found:
    lookup = {m: library.get(m, _DEFAULT_KD) for m in set(face_materials)}
    colors = np.asarray([lookup[m] for m in face_materials], np.float32)
  return Mesh(vertices_v3, faces_f3.astype(np.int32), colors)


def _read_stl(path: str) -> Mesh:
  with open(path, "rb") as f:
    data = f.read()
  triangles = None
  if len(data) >= 84:
    count = int(np.frombuffer(data, np.uint32, 1, 80)[0])
    if len(data) == 84 + 50 * count:  # Binary: the size matches the triangle count exactly.
      record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
      triangles = np.frombuffer(data, record, count, 84)["corners"].astype(np.float32)
  if triangles is None:
    text = data.decode("ascii", errors="replace")
    if not text.lstrip().startswith("solid"):
      raise MeshError(f"{path}: neither a binary STL (size does not match its triangle count) "
                      "nor an ASCII one (damaged or truncated)")
    corners = []
    for number, line in enumerate(text.splitlines(), 1):
      parts = line.split()
      if parts and parts[0] == "vertex":
        try:
          corners.append(tuple(float(v) for v in parts[1:4]))
        except ValueError:
          raise MeshError(f"{path}:{number}: bad vertex line {line.strip()!r}") from None
    if len(corners) % 3:
      raise MeshError(f"{path}: {len(corners)} vertices is not a whole number of triangles")
    triangles = np.asarray(corners, np.float32).reshape(-1, 3, 3)
  if len(triangles) == 0:
    raise MeshError(f"{path}: no triangles (damaged or empty)")
  vertices_v3, inverse = np.unique(triangles.reshape(-1, 3), axis=0, return_inverse=True)
  return Mesh(vertices_v3.astype(np.float32), inverse.reshape(-1, 3).astype(np.int32), None)


@functools.lru_cache(maxsize=64)
def _read(path: str, mtime: float) -> Mesh:
  del mtime  # Part of the cache key only: an edited file is read again.
  extension = os.path.splitext(path)[1].lower()
  if extension == ".obj":
    mesh = _read_obj(path)
  elif extension == ".stl":
    mesh = _read_stl(path)
  else:
    raise MeshError(f"{path}: unsupported mesh format {extension!r} (expected .obj or .stl)")
  if not np.all(np.isfinite(mesh.vertices_v3)):
    raise MeshError(f"{path}: non-finite vertex coordinates (damaged)")
  for array in mesh:
    if array is not None:
      array.flags.writeable = False  # Cached: shared between callers.
  return mesh


def load_mesh(path: str | os.PathLike, scale_3: Any = (1.0, 1.0, 1.0)) -> Mesh:
  """Reads an .obj or .stl file.

  Args:
    path: the mesh file.
    scale_3: per-axis scale (a URDF mesh `scale`) applied to the vertices.

  Returns:
    Mesh(vertices_v3, faces_f3, face_colors_f3).

  Raises:
    FileNotFoundError: no such file.
    MeshError: unsupported format, or a damaged, truncated or empty file (named).
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"mesh file not found: {path}")
  mesh = _read(path, os.path.getmtime(path))
  scale = np.broadcast_to(np.asarray(scale_3, np.float32), (3,))
  return Mesh(mesh.vertices_v3 * scale, mesh.faces_f3.copy(),
              None if mesh.face_colors_f3 is None else mesh.face_colors_f3.copy())


def _rng(rng: Any) -> np.random.Generator:
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def face_areas(vertices_v3: np.ndarray, faces_f3: np.ndarray) -> np.ndarray:
  """[F] triangle areas."""
  v = np.asarray(vertices_v3, np.float64)[np.asarray(faces_f3)]
  return 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=-1)


def sample_surface(vertices_v3: Any, faces_f3: Any, count: int,
                   rng: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Uniform (area-weighted) points on a triangle mesh.

  Args:
    vertices_v3: [V, 3] positions.
    faces_f3: [F, 3] vertex indices.
    count: number of points.
    rng: numpy Generator or seed.

  Returns:
    (points [count, 3], unit face normals [count, 3], face indices [count]), float32/int64.
  """
  vertices = np.asarray(vertices_v3, np.float64)
  faces = np.asarray(faces_f3, np.int64)
  if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
    raise ValueError(f"faces_f3 must be a non-empty [F, 3] array; got {faces.shape}")
  areas = face_areas(vertices, faces)
  total = areas.sum()
  if not total > 0:
    raise ValueError("the mesh has zero surface area; nothing to sample")
  rng = _rng(rng)
  face_ids = rng.choice(len(faces), size=count, p=areas / total)
  corners = vertices[faces[face_ids]]
  # Uniform barycentric coordinates: reflect (u, v) from the far half of the unit square.
  u, v = rng.random(count), rng.random(count)
  outside = u + v > 1.0
  u, v = np.where(outside, 1.0 - u, u), np.where(outside, 1.0 - v, v)
  points = (corners[:, 0] + u[:, None] * (corners[:, 1] - corners[:, 0])
            + v[:, None] * (corners[:, 2] - corners[:, 0]))
  normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  return points.astype(np.float32), normals.astype(np.float32), face_ids.astype(np.int64)


def _primitive_area(visual: urdf.Visual) -> float:
  if visual.geometry == "box":
    x, y, z = visual.size
    return 2.0 * (x * y + y * z + z * x)
  if visual.geometry == "cylinder":
    radius, length = visual.size
    return 2.0 * np.pi * radius * (radius + length)
  return 4.0 * np.pi * visual.size[0] ** 2  # sphere


def _sample_primitive(visual: urdf.Visual, count: int, rng: np.random.Generator):
  """(points, normals) on a box, cylinder (axis z, centred) or sphere in its own frame."""
  if visual.geometry == "sphere":
    normals = rng.normal(size=(count, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return normals * visual.size[0], normals
  if visual.geometry == "box":
    half = 0.5 * np.asarray(visual.size)
    x, y, z = visual.size
    side_areas = np.array([y * z, x * z, x * y])  # Faces normal to x, y, z (two of each).
    axis = rng.choice(3, size=count, p=side_areas / side_areas.sum())
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    points = (rng.random((count, 3)) * 2.0 - 1.0) * half
    points[np.arange(count), axis] = sign * half[axis]
    normals = np.zeros((count, 3))
    normals[np.arange(count), axis] = sign
    return points, normals
  radius, length = visual.size
  on_side = rng.random(count) < length / (length + radius)  # Side 2πrl vs caps 2πr².
  angle = rng.random(count) * 2.0 * np.pi
  r = np.where(on_side, radius, radius * np.sqrt(rng.random(count)))
  cap_sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
  z = np.where(on_side, (rng.random(count) - 0.5) * length, cap_sign * 0.5 * length)
  points = np.stack([r * np.cos(angle), r * np.sin(angle), z], axis=-1)
  normals = np.where(on_side[:, None],
                     np.stack([np.cos(angle), np.sin(angle), np.zeros(count)], axis=-1),
                     np.stack([np.zeros(count), np.zeros(count), cap_sign], axis=-1))
  return points, normals


def visual_samples(model: urdf.RobotModel, link_name: str, count: int,
                   rng: Any) -> SurfaceSamples:
  """Area-weighted surface samples of all visuals of a link, in the link frame.

  Each visual gets a share of `count` proportional to its (scaled) area. Colours are the
  mesh face's `Kd` times the URDF material rgb (each defaults to white).

  Raises:
    UrdfError: unknown link.
    ValueError: the link has no visuals.
    MeshError: a damaged mesh file (named).
  """
  link = model.link(link_name)
  if not link.visuals:
    raise ValueError(f"link {link_name!r} has no visuals to sample")
  rng = _rng(rng)
  meshes, areas = [], []
  for visual in link.visuals:
    if visual.geometry == "mesh":
      mesh = load_mesh(visual.mesh_path, visual.scale_3)
      meshes.append(mesh)
      areas.append(face_areas(mesh.vertices_v3, mesh.faces_f3).sum())
    else:
      meshes.append(None)
      areas.append(_primitive_area(visual))
  areas = np.asarray(areas, np.float64)
  if not areas.sum() > 0:
    raise ValueError(f"link {link_name!r}: its visuals have zero surface area")
  counts = rng.multinomial(count, areas / areas.sum())
  points, normals, colors = [], [], []
  for visual, mesh, n in zip(link.visuals, meshes, counts):
    if n == 0:
      continue
    rgb = np.ones(3) if visual.rgba is None else np.asarray(visual.rgba[:3])
    if mesh is None:
      p, nrm = _sample_primitive(visual, int(n), rng)
      c = np.broadcast_to(rgb, (int(n), 3))
    else:
      p, nrm, face_ids = sample_surface(mesh.vertices_v3, mesh.faces_f3, int(n), rng)
      kd = (np.ones((int(n), 3)) if mesh.face_colors_f3 is None
            else mesh.face_colors_f3[face_ids])
      c = kd * rgb
    rotation, translation = visual.origin_44[:3, :3], visual.origin_44[:3, 3]
    points.append(p @ rotation.T + translation)
    normals.append(nrm @ rotation.T)  # Scale is already in the mesh, so its normals.
    colors.append(c)
  return SurfaceSamples(np.concatenate(points).astype(np.float32),
                        np.concatenate(normals).astype(np.float32),
                        np.clip(np.concatenate(colors), 0.0, 1.0).astype(np.float32))


def visual_points(model: urdf.RobotModel, link_name: str, count: int, rng: Any) -> np.ndarray:
  """[count, 3] area-weighted surface points of a link's visuals, in the link frame."""
  return visual_samples(model, link_name, count, rng).points_p3

