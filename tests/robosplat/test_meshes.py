"""Mesh reading (.obj with materials, binary and ASCII .stl), surface sampling, link points."""

import struct

import numpy as np
import pytest

from jaxlab.robosplat import meshes, urdf

# A unit square (one quad, split in two) in red and a triangle in green, with a negative index.
_OBJ = """# test mesh
mtllib test.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vn 0 0 1
usemtl red
f 1/1/1 2/1/1 3/1/1 4/1/1
v 0 0 1
usemtl green
f 1//1 2//1 -1//1
"""
_MTL = """newmtl red
Kd 1.0 0.0 0.0
newmtl green
Ka 0 0 0
Kd 0.0 1.0 0.0
"""
# A tetrahedron: corners at the origin and on the three unit axes.
_TETRA = np.array([[[0, 0, 0], [0, 1, 0], [1, 0, 0]], [[0, 0, 0], [1, 0, 0], [0, 0, 1]],
                   [[0, 0, 0], [0, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]],
                  np.float32)


def _write_obj(tmp_path, with_mtl=True):
  (tmp_path / "test.obj").write_text(_OBJ)
  if with_mtl:
    (tmp_path / "test.mtl").write_text(_MTL)
  return tmp_path / "test.obj"


def test_obj_faces_and_colors(tmp_path):
  mesh = meshes.load_mesh(_write_obj(tmp_path), (2.0, 1.0, 3.0))
  np.testing.assert_allclose(mesh.vertices_v3[[1, 4]], [[2, 0, 0], [0, 0, 3]])
  np.testing.assert_array_equal(mesh.faces_f3, [[0, 1, 2], [0, 2, 3], [0, 1, 4]])
  assert mesh.faces_f3.dtype == np.int32 and mesh.vertices_v3.dtype == np.float32
  np.testing.assert_allclose(mesh.face_colors_f3, [[1, 0, 0], [1, 0, 0], [0, 1, 0]])
  np.testing.assert_allclose(meshes.face_areas(mesh.vertices_v3, mesh.faces_f3), [1, 1, 3])


def test_obj_without_material_library(tmp_path):
  mesh = meshes.load_mesh(_write_obj(tmp_path, with_mtl=False))
  assert mesh.face_colors_f3 is None and len(mesh.faces_f3) == 3


def test_binary_and_ascii_stl(tmp_path):
  binary = tmp_path / "tetra.stl"
  records = b"".join(struct.pack("<12fH", *([0.0] * 3), *t.ravel(), 0) for t in _TETRA)
  binary.write_bytes(b"solid looks like ascii but is binary".ljust(80, b" ")
                     + struct.pack("<I", 4) + records)
  ascii_stl = tmp_path / "tetra_ascii.stl"
  ascii_stl.write_text("solid t\n" + "".join(
      "facet normal 0 0 0\n outer loop\n" + "".join(f"  vertex {x} {y} {z}\n" for x, y, z in t)
      + " endloop\nendfacet\n" for t in _TETRA) + "endsolid t\n")
  for path in (binary, ascii_stl):
    mesh = meshes.load_mesh(path, (2.0, 2.0, 2.0))
    assert mesh.vertices_v3.shape == (4, 3) and mesh.faces_f3.shape == (4, 3)  # Corners merged.
    assert mesh.face_colors_f3 is None
    np.testing.assert_allclose(mesh.vertices_v3[mesh.faces_f3], 2.0 * _TETRA)
    area = meshes.face_areas(mesh.vertices_v3, mesh.faces_f3).sum()
    assert area == pytest.approx(4.0 * (1.5 + np.sqrt(3) / 2), rel=1e-6)


def test_damaged_files_are_named(tmp_path):
  bad_index = tmp_path / "bad_index.obj"
  bad_index.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
  with pytest.raises(meshes.MeshError, match=r"bad_index\.obj.*out of range"):
    meshes.load_mesh(bad_index)
  bad_number = tmp_path / "bad_number.obj"
  bad_number.write_text("v 0 0 zero\nf 1 1 1\n")
  with pytest.raises(meshes.MeshError, match=r"bad_number\.obj:1: bad vertex"):
    meshes.load_mesh(bad_number)
  empty = tmp_path / "empty.obj"
  empty.write_text("# nothing\n")
  with pytest.raises(meshes.MeshError, match=r"empty\.obj: no vertices"):
    meshes.load_mesh(empty)
  truncated = tmp_path / "truncated.stl"
  truncated.write_bytes(b"\0" * 80 + struct.pack("<I", 10) + b"\0" * 100)
  with pytest.raises(meshes.MeshError, match=r"truncated\.stl"):
    meshes.load_mesh(truncated)
  other = tmp_path / "mesh.dae"
  other.write_text("<COLLADA/>")
  with pytest.raises(meshes.MeshError, match=r"mesh\.dae: unsupported"):
    meshes.load_mesh(other)
  with pytest.raises(FileNotFoundError, match="gone.obj"):
    meshes.load_mesh(tmp_path / "gone.obj")


def test_sample_surface_is_area_weighted():
  vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 3, 1], [0, 0, 3]], float)
  faces = np.array([[0, 1, 2], [3, 4, 5]])  # Areas 0.5 (z = 0) and 3 (x = 0).
  points, normals, face_ids = meshes.sample_surface(vertices, faces, 20000, 0)
  assert points.shape == normals.shape == (20000, 3) and face_ids.shape == (20000,)
  assert np.mean(face_ids == 0) == pytest.approx(0.5 / 3.5, abs=0.01)
  first, second = points[face_ids == 0], points[face_ids == 1]
  assert np.allclose(first[:, 2], 0) and np.all(first[:, :2] >= 0)
  assert np.all(first[:, 0] + first[:, 1] <= 1 + 1e-6)  # Inside the triangle.
  assert np.allclose(second[:, 0], 0)
  np.testing.assert_allclose(normals[face_ids == 0], np.broadcast_to([0, 0, 1], first.shape))
  np.testing.assert_allclose(np.abs(normals[face_ids == 1]),
                             np.broadcast_to([1, 0, 0], second.shape), atol=1e-6)
  # Uniform inside the triangle: the mean is its centroid.
  np.testing.assert_allclose(first.mean(0), [1 / 3, 1 / 3, 0], atol=0.02)


def test_primitive_visuals(tmp_path):
  text = """<robot name="r"><link name="a">
    <visual><origin xyz="1 0 0"/><geometry><box size="0.2 0.4 0.6"/></geometry>
      <material name="m"><color rgba="0.5 0.5 0.5 1"/></material></visual>
    <visual><origin xyz="0 1 0" rpy="1.5707963267948966 0 0"/>
      <geometry><cylinder radius="0.1" length="0.5"/></geometry></visual>
    <visual><origin xyz="0 0 1"/><geometry><sphere radius="0.3"/></geometry></visual>
  </link><link name="b"/><joint name="j" type="fixed"><parent link="a"/><child link="b"/>
  </joint></robot>"""
  model = urdf.parse_urdf(text, str(tmp_path))
  samples = meshes.visual_samples(model, "a", 3000, np.random.default_rng(0))
  points = samples.points_p3
  box = np.abs(points[:, 0] - 1) < 0.11 + 1e-6
  sphere = np.abs(np.linalg.norm(points - [0, 0, 1], axis=-1) - 0.3) < 1e-5
  cylinder = ~box & ~sphere
  assert box.sum() > 0 and sphere.sum() > 0 and cylinder.sum() > 0
  local = (points[box] - [1, 0, 0]) / [0.1, 0.2, 0.3]
  np.testing.assert_allclose(np.abs(local).max(axis=1), 1.0, atol=1e-5)  # On a face.
  np.testing.assert_allclose(samples.colors_p3[box], 0.5)
  np.testing.assert_allclose(samples.colors_p3[~box], 1.0)
  # The cylinder's axis is the link's y after the visual's roll of 90 degrees.
  c = points[cylinder] - [0, 1, 0]
  radial = np.hypot(c[:, 0], c[:, 2])
  on_side = np.abs(radial - 0.1) < 1e-5
  on_cap = np.abs(np.abs(c[:, 1]) - 0.25) < 1e-5
  assert np.all(on_side | on_cap) and np.all(radial <= 0.1 + 1e-5)
  # Area weighting: box 0.88, cylinder 0.1π, sphere 0.36π.
  areas = np.array([0.88, 0.12 * np.pi, 0.36 * np.pi])
  counts = np.array([box.sum(), cylinder.sum(), sphere.sum()])
  np.testing.assert_allclose(counts / 3000, areas / areas.sum(), atol=0.03)
  np.testing.assert_allclose(np.linalg.norm(samples.normals_p3, axis=-1), 1.0, atol=1e-5)
  with pytest.raises(ValueError, match="link 'b' has no visuals"):
    meshes.visual_points(model, "b", 10, 0)


def test_panda_links_sample():
  pytest.importorskip("pybullet")
  from jaxlab.robosplat import kinematics  # pylint: disable=import-outside-toplevel
  model = kinematics.panda_model()
  with_visuals = [link.name for link in model.links if link.visuals]
  assert len(with_visuals) == 11  # link0..link7, hand, two fingers.
  for name in with_visuals:
    samples = meshes.visual_samples(model, name, 500, 0)
    assert samples.points_p3.shape == (500, 3)
    assert np.all(np.isfinite(samples.points_p3))
    assert np.abs(samples.points_p3).max() < 0.3  # Link-frame sizes of a Panda.
    assert np.all((samples.colors_p3 >= 0) & (samples.colors_p3 <= 1))
  # The right finger's visual is the left one turned about z by π.
  left = meshes.visual_points(model, "panda_leftfinger", 500, 1)
  right = meshes.visual_points(model, "panda_rightfinger", 500, 1)
  assert np.mean(left[:, 1] >= -1e-3) > 0.95 and np.mean(right[:, 1] <= 1e-3) > 0.95
  hand = meshes.visual_samples(model, "panda_hand", 2000, 0)
  assert len(np.unique(hand.colors_p3.round(3), axis=0)) > 1  # Kd from the .mtl file.
