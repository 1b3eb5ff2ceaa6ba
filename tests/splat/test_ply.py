"""INRIA 3DGS PLY I/O: exact round trips, channel-major f_rest, and every bad-file error.

Files for the reader are written here directly with `plyfile`, independently of
`save_ply`, and the writer's files are read back with plain `plyfile`, so a mistake
shared by the writer and the reader (e.g. RGB-interleaved f_rest) cannot hide.
"""

import os
import warnings

import jax.numpy as jnp
import numpy as np
import plyfile
import pytest

from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.ply import load_ply, property_names, save_ply

_REST_COUNT = {0: 0, 1: 9, 2: 24, 3: 45}


def _random_gaussians(seed: int, num: int, sh_degree: int, active_n=None) -> Gaussians:
  rng = np.random.default_rng(seed)
  f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  if active_n is None:
    active_n = np.ones((num,), np.bool_)
  return Gaussians(
      means=jnp.asarray(f32(num, 3) * 10),
      log_scales=jnp.asarray(f32(num, 3) - 3),
      quats=jnp.asarray(f32(num, 4) * 2),  # deliberately not unit length
      opacity_logits=jnp.asarray(f32(num)),
      sh=jnp.asarray(f32(num, (sh_degree + 1) ** 2, 3)),
      active=jnp.asarray(active_n),
  )


def _assert_bitwise_equal(actual, expected, name):
  actual = np.asarray(actual)
  expected = np.asarray(expected)
  assert actual.dtype == expected.dtype, name
  assert actual.shape == expected.shape, name
  assert np.array_equal(actual.view(np.uint8), expected.view(np.uint8)), name


_FLOAT_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")


def _hand_written_ply(path, columns: dict, *, text=False, extra_elements=()):
  """Writes `columns` (name -> 1-D array) as a vertex element with plain plyfile."""
  count = len(next(iter(columns.values())))
  vertex = np.empty((count,), dtype=[(name, "<f4") for name in columns])
  for name, values in columns.items():
    vertex[name] = values
  elements = [plyfile.PlyElement.describe(vertex, "vertex"), *extra_elements]
  plyfile.PlyData(elements, text=text, byte_order="<").write(str(path))


def _valid_columns(num: int, sh_degree: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  return {name: rng.standard_normal(num).astype(np.float32)
          for name in property_names(sh_degree)}


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact_for_every_sh_degree(tmp_path, sh_degree):
  gaussians = _random_gaussians(sh_degree, 37, sh_degree)
  path = tmp_path / "scene.ply"
  save_ply(path, gaussians)
  loaded = load_ply(path)
  assert loaded.sh.shape == (37, (sh_degree + 1) ** 2, 3)
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(loaded, name), getattr(gaussians, name), name)
  assert np.asarray(loaded.active).all()


def test_round_trip_keeps_special_float_values_exactly(tmp_path):
  gaussians = _random_gaussians(1, 4, 1)
  tricky_n = np.array([-0.0, 1e-45, np.finfo(np.float32).max, -np.finfo(np.float32).tiny],
                      np.float32)  # signed zero, subnormal, extremes
  gaussians = gaussians.replace(opacity_logits=jnp.asarray(tricky_n))
  save_ply(tmp_path / "s.ply", gaussians)
  _assert_bitwise_equal(load_ply(tmp_path / "s.ply").opacity_logits, tricky_n, "opacity")


def test_only_active_gaussians_are_written_by_default(tmp_path):
  active_n = np.array([True, False, True, True, False, False, True])
  gaussians = _random_gaussians(2, 7, 2, active_n)
  save_ply(tmp_path / "active.ply", gaussians)
  save_ply(tmp_path / "all.ply", gaussians, only_active=False)
  active = load_ply(tmp_path / "active.ply")
  every = load_ply(tmp_path / "all.ply")
  assert active.means.shape[0] == 4 and every.means.shape[0] == 7
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(active, name), np.asarray(getattr(gaussians, name))[active_n],
                          name)
    _assert_bitwise_equal(getattr(every, name), getattr(gaussians, name), name)


def test_hand_written_file_loads_channel_major_f_rest(tmp_path):
  num = 3
  columns = _valid_columns(num, 3)
  row_offset_n = np.arange(num, dtype=np.float32) * 1000
  for i in range(45):
    columns[f"f_rest_{i}"] = i + row_offset_n
  for c in range(3):
    columns[f"f_dc_{c}"] = -1.0 - c + row_offset_n
  _hand_written_ply(tmp_path / "known.ply", columns)

  sh = np.asarray(load_ply(tmp_path / "known.ply").sh)
  assert sh.shape == (num, 16, 3)
  for c in range(3):
    np.testing.assert_array_equal(sh[:, 0, c], -1.0 - c + row_offset_n)
    # Channel c's coefficients 1..15 are f_rest_{15c}..f_rest_{15c+14}.
    expected_n15 = np.arange(15 * c, 15 * c + 15, dtype=np.float32)[None, :] + row_offset_n[:, None]
    np.testing.assert_array_equal(sh[:, 1:, c], expected_n15)


def test_hand_written_file_loads_every_field_from_its_named_column(tmp_path):
  columns = _valid_columns(5, 1, seed=3)
  _hand_written_ply(tmp_path / "f.ply", columns)
  loaded = load_ply(tmp_path / "f.ply")
  col = lambda *names: np.stack([columns[n] for n in names], axis=-1)
  np.testing.assert_array_equal(loaded.means, col("x", "y", "z"))
  np.testing.assert_array_equal(loaded.log_scales, col("scale_0", "scale_1", "scale_2"))
  np.testing.assert_array_equal(loaded.quats, col("rot_0", "rot_1", "rot_2", "rot_3"))
  np.testing.assert_array_equal(loaded.opacity_logits, columns["opacity"])


def test_property_order_in_the_file_does_not_matter(tmp_path):
  columns = _valid_columns(6, 2, seed=4)
  _hand_written_ply(tmp_path / "canonical.ply", columns)
  shuffled = dict(reversed(list(columns.items())))  # f_rest_23 first, x last
  _hand_written_ply(tmp_path / "shuffled.ply", shuffled)
  canonical = load_ply(tmp_path / "canonical.ply")
  reordered = load_ply(tmp_path / "shuffled.ply")
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(reordered, name), getattr(canonical, name), name)


def test_writer_output_read_with_plain_plyfile_has_the_standard_layout(tmp_path):
  gaussians = _random_gaussians(5, 11, 3)
  save_ply(tmp_path / "w.ply", gaussians)
  ply = plyfile.PlyData.read(str(tmp_path / "w.ply"))
  assert not ply.text and ply.byte_order == "<"
  assert [element.name for element in ply.elements] == ["vertex"]
  vertex = ply["vertex"]

  expected_names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                    + [f"f_rest_{i}" for i in range(45)]
                    + ["opacity", "scale_0", "scale_1", "scale_2",
                       "rot_0", "rot_1", "rot_2", "rot_3"])
  assert [prop.name for prop in vertex.properties] == expected_names
  assert all(prop.val_dtype in ("f4", "<f4", "float32") for prop in vertex.properties)
  assert all(np.dtype(vertex.data.dtype[name]) == np.dtype("<f4") for name in expected_names)

  sh = np.asarray(gaussians.sh)
  for k in range(1, 16):
    for c in range(3):
      np.testing.assert_array_equal(vertex[f"f_rest_{15 * c + k - 1}"], sh[:, k, c])
  for c in range(3):
    np.testing.assert_array_equal(vertex[f"f_dc_{c}"], sh[:, 0, c])
  for name in ("nx", "ny", "nz"):
    np.testing.assert_array_equal(vertex[name], np.zeros(11, np.float32))
  for i in range(4):  # stored as given: w first, not renormalised
    np.testing.assert_array_equal(vertex[f"rot_{i}"], np.asarray(gaussians.quats)[:, i])
  for i in range(3):
    np.testing.assert_array_equal(vertex[f"scale_{i}"], np.asarray(gaussians.log_scales)[:, i])
    np.testing.assert_array_equal(vertex["xyz"[i]], np.asarray(gaussians.means)[:, i])
  np.testing.assert_array_equal(vertex["opacity"], np.asarray(gaussians.opacity_logits))


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_sh_degree_is_inferred_from_the_f_rest_count(tmp_path, sh_degree):
  columns = _valid_columns(2, sh_degree)
  assert sum(name.startswith("f_rest_") for name in columns) == _REST_COUNT[sh_degree]
  _hand_written_ply(tmp_path / "d.ply", columns)
  assert load_ply(tmp_path / "d.ply").sh.shape == (2, (sh_degree + 1) ** 2, 3)


def test_missing_properties_are_all_named(tmp_path):
  columns = _valid_columns(3, 1)
  for name in ("opacity", "scale_1", "rot_3", "y"):
    del columns[name]
  _hand_written_ply(tmp_path / "m.ply", columns)
  with pytest.raises(ValueError, match="missing") as info:
    load_ply(tmp_path / "m.ply")
  for name in ("opacity", "scale_1", "rot_3", "y"):
    assert name in str(info.value)
  assert "scale_0" not in str(info.value)


def test_gap_in_f_rest_numbering_names_the_missing_one(tmp_path):
  columns = _valid_columns(3, 1)
  columns["f_rest_9"] = columns.pop("f_rest_4")  # still 9 of them, but f_rest_4 is absent
  _hand_written_ply(tmp_path / "g.ply", columns)
  with pytest.raises(ValueError, match=r"missing.*f_rest_4"):
    load_ply(tmp_path / "g.ply")


@pytest.mark.parametrize("num_rest", [1, 10, 15, 44])
def test_inconsistent_f_rest_count_is_rejected_with_the_valid_counts(tmp_path, num_rest):
  columns = _valid_columns(2, 0)
  for i in range(num_rest):
    columns[f"f_rest_{i}"] = np.zeros(2, np.float32)
  _hand_written_ply(tmp_path / "c.ply", columns)
  with pytest.raises(ValueError, match=rf"\b{num_rest} f_rest") as info:
    load_ply(tmp_path / "c.ply")
  for valid in ("0", "9", "24", "45"):
    assert valid in str(info.value)


def test_extra_properties_are_ignored_with_a_warning_naming_them(tmp_path):
  columns = _valid_columns(4, 1, seed=7)
  reference_path = tmp_path / "plain.ply"
  _hand_written_ply(reference_path, columns)
  columns["red"] = np.ones(4, np.float32)
  columns["semantic_id"] = np.full(4, 7, np.float32)
  _hand_written_ply(tmp_path / "extra.ply", columns)
  with pytest.warns(UserWarning, match="extra") as record:
    loaded = load_ply(tmp_path / "extra.ply")
  message = " ".join(str(w.message) for w in record)
  assert "red" in message and "semantic_id" in message
  reference = load_ply(reference_path)
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(loaded, name), getattr(reference, name), name)


def test_standard_file_loads_without_warnings(tmp_path):
  save_ply(tmp_path / "s.ply", _random_gaussians(8, 3, 2))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    load_ply(tmp_path / "s.ply")


def test_ascii_file_loads_the_same_values(tmp_path):
  columns = _valid_columns(5, 2, seed=9)
  _hand_written_ply(tmp_path / "binary.ply", columns)
  _hand_written_ply(tmp_path / "ascii.ply", columns, text=True)
  with open(tmp_path / "ascii.ply", "rb") as stream:
    assert b"format ascii" in stream.read(200)
  binary = load_ply(tmp_path / "binary.ply")
  ascii_ = load_ply(tmp_path / "ascii.ply")
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(ascii_, name), getattr(binary, name), name)


def test_missing_vertex_element_is_a_clear_error(tmp_path):
  points = np.zeros((2,), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
  plyfile.PlyData([plyfile.PlyElement.describe(points, "point")]).write(str(tmp_path / "p.ply"))
  with pytest.raises(ValueError, match=r"no 'vertex' element.*point"):
    load_ply(tmp_path / "p.ply")


def test_not_a_ply_file_is_a_clear_error(tmp_path):
  (tmp_path / "junk.ply").write_bytes(b"this is not a ply file\n")
  with pytest.raises(ValueError, match="not a readable PLY"):
    load_ply(tmp_path / "junk.ply")


def test_non_finite_values_in_the_file_name_the_property_and_count(tmp_path):
  columns = _valid_columns(6, 1)
  columns["opacity"][[0, 3]] = np.nan
  columns["f_rest_5"][2] = np.inf
  _hand_written_ply(tmp_path / "nan.ply", columns)
  with pytest.raises(ValueError, match="non-finite") as info:
    load_ply(tmp_path / "nan.ply")
  assert "opacity (2)" in str(info.value) and "f_rest_5 (1)" in str(info.value)
  assert "scale_0" not in str(info.value)


def test_non_finite_gaussians_are_not_saved(tmp_path):
  gaussians = _random_gaussians(10, 4, 0)
  means = np.asarray(gaussians.means).copy()
  means[1, 2] = np.nan
  with pytest.raises(ValueError, match=r"z \(1\)"):
    save_ply(tmp_path / "bad.ply", gaussians.replace(means=jnp.asarray(means)))
  assert os.listdir(tmp_path) == []


def test_non_finite_values_in_inactive_slots_do_not_block_saving(tmp_path):
  gaussians = _random_gaussians(11, 3, 0, np.array([True, False, True]))
  means = np.asarray(gaussians.means).copy()
  means[1] = np.nan
  save_ply(tmp_path / "ok.ply", gaussians.replace(means=jnp.asarray(means)))
  assert load_ply(tmp_path / "ok.ply").means.shape == (2, 3)


def test_existing_file_is_not_overwritten_without_overwrite(tmp_path):
  path = tmp_path / "scene.ply"
  first = _random_gaussians(12, 5, 1)
  second = _random_gaussians(13, 8, 2)
  save_ply(path, first)
  original_bytes = path.read_bytes()
  with pytest.raises(FileExistsError, match="overwrite=True"):
    save_ply(path, second)
  assert path.read_bytes() == original_bytes
  save_ply(path, second, overwrite=True)
  _assert_bitwise_equal(load_ply(path).sh, second.sh, "sh")
  assert sorted(os.listdir(tmp_path)) == ["scene.ply"]  # no temp files left behind


def test_wrong_shapes_are_rejected_before_writing(tmp_path):
  gaussians = _random_gaussians(14, 4, 1)
  with pytest.raises(ValueError, match=r"sh must have shape .*K in"):
    save_ply(tmp_path / "x.ply", gaussians.replace(sh=jnp.zeros((4, 5, 3))))
  with pytest.raises(ValueError, match=r"quats must have shape \(4, 4\)"):
    save_ply(tmp_path / "x.ply", gaussians.replace(quats=jnp.zeros((4, 3))))
  assert os.listdir(tmp_path) == []


def test_capacity_pads_with_inactive_slots(tmp_path):
  gaussians = _random_gaussians(15, 6, 2)
  save_ply(tmp_path / "s.ply", gaussians)
  padded = load_ply(tmp_path / "s.ply", capacity=10)
  np.testing.assert_array_equal(padded.active, [True] * 6 + [False] * 4)
  for name in _FLOAT_FIELDS:
    field = np.asarray(getattr(padded, name))
    assert field.shape[0] == 10 and np.isfinite(field).all(), name
    _assert_bitwise_equal(field[:6], getattr(gaussians, name), name)
  # Padding must survive activations without NaN (a zero quaternion would not).
  assert np.isfinite(np.asarray(padded.rotations())).all()
  assert load_ply(tmp_path / "s.ply", capacity=6).means.shape == (6, 3)


def test_capacity_below_the_vertex_count_is_rejected(tmp_path):
  save_ply(tmp_path / "s.ply", _random_gaussians(16, 6, 0))
  with pytest.raises(ValueError, match=r"capacity=5 .* 6 Gaussians"):
    load_ply(tmp_path / "s.ply", capacity=5)


def test_failed_write_leaves_the_existing_file_and_no_temp_file(tmp_path, monkeypatch):
  path = tmp_path / "scene.ply"
  save_ply(path, _random_gaussians(17, 5, 1))
  original_bytes = path.read_bytes()

  def write_half_then_fail(self, stream):
    stream.write(b"ply\nformat binary_little_endian 1.0\n")
    raise OSError("disk full")

  monkeypatch.setattr(plyfile.PlyData, "write", write_half_then_fail)
  with pytest.raises(OSError, match="disk full"):
    save_ply(path, _random_gaussians(18, 9, 3), overwrite=True)
  assert path.read_bytes() == original_bytes
  assert sorted(os.listdir(tmp_path)) == ["scene.ply"]


def test_scene_with_no_active_gaussians_round_trips_to_an_empty_buffer(tmp_path):
  save_ply(tmp_path / "empty.ply", _random_gaussians(19, 3, 2, np.zeros(3, np.bool_)))
  loaded = load_ply(tmp_path / "empty.ply", capacity=4)
  assert loaded.sh.shape == (4, 9, 3)
  assert not np.asarray(loaded.active).any()


# ----------------------------------------------------------------------------- header vs. body


def _with_vertex_count(path, count: int) -> None:
  """Rewrites the header's vertex count in place of the true one, keeping the body."""
  data = path.read_bytes()
  head, body = data.split(b"end_header\n", 1)
  lines = [f"element vertex {count}".encode() if line.startswith(b"element vertex ") else line
           for line in head.split(b"\n")]
  path.write_bytes(b"\n".join(lines) + b"end_header\n" + body)


def test_binary_body_with_more_rows_than_the_header_claims_is_refused(tmp_path):
  path = tmp_path / "more.ply"
  save_ply(path, _random_gaussians(20, 5, 1))
  _with_vertex_count(path, 3)
  with pytest.raises(ValueError, match=r"more rows than the header's 3 vertices") as info:
    load_ply(path)
  assert str(path) in str(info.value) and "room for 5 vertices" in str(info.value)


def test_huge_vertex_claim_in_a_small_file_is_a_clear_error_not_a_memory_error(tmp_path):
  path = tmp_path / "huge.ply"
  save_ply(path, _random_gaussians(21, 200, 3))  # about 50 KB
  _with_vertex_count(path, 2_000_000_000)
  with pytest.raises(ValueError, match=r"truncated: its header claims 2000000000 vertices of 248 bytes") as info:
    load_ply(path)
  assert str(path) in str(info.value) and "room for 200 vertices" in str(info.value)


def test_truncated_binary_body_is_refused_with_the_room_left(tmp_path):
  path = tmp_path / "cut.ply"
  save_ply(path, _random_gaussians(22, 4, 0))  # 17 floats = 68 bytes per vertex
  path.write_bytes(path.read_bytes()[:-34])
  with pytest.raises(ValueError, match=r"cut\.ply is truncated: .*4 vertices of 68 bytes.* room for 3\.50 vertices"):
    load_ply(path)


@pytest.mark.parametrize("claimed, message", [
    (2, r"more rows than the header's 2 vertices.* body has 4 rows"),
    (6, r"truncated: its header claims 6 vertices, but its body has 4 rows"),
])
def test_ascii_body_line_count_must_match_the_header(tmp_path, claimed, message):
  path = tmp_path / "a.ply"
  _hand_written_ply(path, _valid_columns(4, 0), text=True)
  _with_vertex_count(path, claimed)
  with pytest.raises(ValueError, match=message):
    load_ply(path)


def test_big_endian_file_loads_the_same_values(tmp_path):
  columns = _valid_columns(7, 2, seed=23)
  _hand_written_ply(tmp_path / "little.ply", columns)
  vertex = np.empty((7,), dtype=[(name, ">f4") for name in columns])
  for name, values in columns.items():
    vertex[name] = values
  plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], byte_order=">").write(
      str(tmp_path / "big.ply"))
  big, little = load_ply(tmp_path / "big.ply"), load_ply(tmp_path / "little.ply")
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(big, name), getattr(little, name), name)


def test_plyfile_written_scene_in_another_order_with_extra_and_mixed_properties_round_trips(tmp_path):
  gaussians = _random_gaussians(24, 9, 3)
  names = property_names(3)
  table = dict(zip(names, _columns_of(gaussians)))
  rng = np.random.default_rng(0)
  order = list(rng.permutation(names))  # every property somewhere else
  fields = []
  for name in order:
    fields.append((name, "<f8" if name == "opacity" else "<f4"))  # a double among floats
    if name == "x":
      fields.append(("semantic_id", "u1"))  # custom properties between the standard ones
      fields.append(("confidence", "<f8"))
  vertex = np.empty((9,), dtype=fields)
  for name in order:
    vertex[name] = table[name]
  vertex["semantic_id"] = np.arange(9)
  vertex["confidence"] = 0.5
  path = tmp_path / "plyfile.ply"
  plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))
  with pytest.warns(UserWarning, match=r"extra vertex properties: \['semantic_id', 'confidence'\]"):
    loaded = load_ply(path)
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(loaded, name), getattr(gaussians, name), name)
  save_ply(tmp_path / "again.ply", loaded)  # and back to the standard layout
  _assert_bitwise_equal(load_ply(tmp_path / "again.ply").sh, gaussians.sh, "sh")


def _columns_of(gaussians: Gaussians) -> list[np.ndarray]:
  """The columns of `property_names(d)`, built here from the layout's definition."""
  sh = np.asarray(gaussians.sh)
  rest = [sh[:, 1 + k, c] for c in range(3) for k in range(sh.shape[1] - 1)]  # channel-major
  return ([*np.asarray(gaussians.means).T, *np.zeros((3, sh.shape[0]), np.float32), *sh[:, 0, :].T, *rest,
           np.asarray(gaussians.opacity_logits), *np.asarray(gaussians.log_scales).T,
           *np.asarray(gaussians.quats).T])


def test_other_elements_before_and_after_the_vertices_are_skipped(tmp_path):
  columns = _valid_columns(5, 1, seed=25)
  _hand_written_ply(tmp_path / "plain.ply", columns)
  count = len(next(iter(columns.values())))
  vertex = np.empty((count,), dtype=[(name, "<f4") for name in columns])
  for name, values in columns.items():
    vertex[name] = values
  camera = np.array([(1.5, 2, 7)], dtype=[("focal", "<f8"), ("width", "<u2"), ("id", "u1")])
  faces = np.empty((2,), dtype=[("vertex_indices", "O")])
  faces["vertex_indices"] = [np.array([0, 1, 2], np.int32), np.array([2, 3, 4, 0], np.int32)]
  reference = load_ply(tmp_path / "plain.ply")
  for elements in ((camera, vertex, faces), (faces, vertex, camera)):
    for text in (False, True):
      path = tmp_path / "mixed.ply"
      described = [plyfile.PlyElement.describe(array, name) for array, name in zip(
          elements, ["camera" if e is camera else "face" if e is faces else "vertex" for e in elements])]
      plyfile.PlyData(described, text=text).write(str(path))
      with pytest.warns(UserWarning, match="other than 'vertex'"):
        loaded = load_ply(path)
      for name in _FLOAT_FIELDS:
        _assert_bitwise_equal(getattr(loaded, name), getattr(reference, name), name)


@pytest.mark.parametrize("header_line, message", [
    ("element vertex -3", "element count must be a non-negative integer"),
    ("property float128 x", "TYPE one of"),
    ("format binary_middle_endian 1.0", "format"),
])
def test_malformed_header_lines_are_named(tmp_path, header_line, message):
  path = tmp_path / "h.ply"
  save_ply(path, _random_gaussians(26, 2, 0))
  data = path.read_bytes()
  head, body = data.split(b"end_header\n", 1)
  keyword = header_line.split()[0].encode()
  lines = head.split(b"\n")
  first = next(i for i, line in enumerate(lines) if line.startswith(keyword + b" "))
  lines[first] = header_line.encode()
  path.write_bytes(b"\n".join(lines) + b"end_header\n" + body)
  with pytest.raises(ValueError, match=rf"not a readable PLY file: header line {first + 1}: .*{message}"):
    load_ply(path)


@pytest.mark.parametrize("text", [False, True])
def test_vertices_with_an_extra_list_property_load_the_same_values(tmp_path, text):
  columns = _valid_columns(4, 1, seed=28)
  _hand_written_ply(tmp_path / "plain.ply", columns)
  fields = [(name, "<f4") for name in columns] + [("neighbours", "O")]
  vertex = np.empty((4,), dtype=fields)
  for name, values in columns.items():
    vertex[name] = values
  vertex["neighbours"] = [np.arange(i + 1, dtype=np.int32) for i in range(4)]  # variable length rows
  plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], text=text).write(str(tmp_path / "list.ply"))
  with pytest.warns(UserWarning, match=r"extra vertex properties: \['neighbours'\]"):
    loaded = load_ply(tmp_path / "list.ply")
  reference = load_ply(tmp_path / "plain.ply")
  for name in _FLOAT_FIELDS:
    _assert_bitwise_equal(getattr(loaded, name), getattr(reference, name), name)
