"""The ScanNet and TAPVid-3D readers on tiny files written in the real layouts.

The ScanNet scene is a floor, a back wall and a box, in an axis-aligned world that the files store
un-aligned (the scan frame); depth is ray cast from that geometry, so what the reader returns can be
checked against the geometry the files were made from.
"""

from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from jaxlab import files
from jaxlab.spatial.scannet import read_scannet_scene
from jaxlab.spatial.scene import SceneError
from jaxlab.spatial.tapvid3d import read_tapvid3d_npz

SCENE = "scene0042_00"
COLOR_HW = (48, 64)
DEPTH_HW = (24, 32)
K_COLOR = np.array([[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]])
K_DEPTH = np.diag([0.5, 0.5, 1.0]) @ K_COLOR  # the depth camera: the colour camera at half the size
BOX_LOW, BOX_HIGH = np.array([1.2, 1.2, 0.0]), np.array([1.8, 1.6, 0.5])
FLOOR_SIZE, WALL_Y, WALL_TOP = 3.0, 3.0, 1.5
# aligned = ALIGN @ scan: a turn about z and a shift, so scan and aligned coordinates clearly differ.
ALIGN = np.eye(4)
ALIGN[:3, :3] = Rotation.from_euler("z", 30, degrees=True).as_matrix()
ALIGN[:3, 3] = [-1.0, 2.0, 0.1]
# frame index -> (eye, target) in the aligned world; None: a frame whose pose ScanNet lost (-inf).
CAMERAS = {0: ((1.5, -0.5, 1.3), (1.5, 1.4, 0.3)), 5: ((0.4, 0.0, 1.2), (1.5, 1.4, 0.25)), 10: None,
           15: ((2.6, 0.2, 1.4), (1.5, 1.5, 0.2))}
BOX_ID, FLOOR_ID = 1, 2  # objectId + 1


def _look_at(eye, target) -> np.ndarray:
  eye, target = np.asarray(eye, float), np.asarray(target, float)
  forward = (target - eye) / np.linalg.norm(target - eye)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  pose = np.eye(4)
  pose[:3, :3] = np.stack([right, down, forward], axis=1)
  pose[:3, 3] = eye
  return pose


def _grid(*axes):
  return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


def _mesh():
  """Aligned vertices [N, 3], their segment ids, and the object id each should get."""
  floor = _grid(np.linspace(0, FLOOR_SIZE, 31), np.linspace(0, FLOOR_SIZE, 31))
  floor = np.column_stack([floor, np.zeros(len(floor))])
  wall = _grid(np.linspace(0, FLOOR_SIZE, 13), np.linspace(0, WALL_TOP, 7))
  wall = np.column_stack([wall[:, 0], np.full(len(wall), WALL_Y), wall[:, 1]])
  xs, ys, zs = np.linspace(1.2, 1.8, 7), np.linspace(1.2, 1.6, 5), np.linspace(0.0, 0.5, 6)
  top = np.column_stack([_grid(xs, ys), np.full(35, 0.5)])
  sides = [np.column_stack([np.full(30, x), _grid(ys, zs)]) for x in (1.2, 1.8)]
  sides += [np.column_stack([_grid(xs, zs)[:, 0], np.full(42, y), _grid(xs, zs)[:, 1]]) for y in (1.2, 1.6)]
  sides = np.concatenate(sides)
  vertices = np.concatenate([floor, wall, top, sides])
  segments = np.concatenate([np.full(len(floor), 10), np.full(len(wall), 30), np.full(len(top), 20),
                             np.full(len(sides), 21)])
  ids = np.concatenate([np.full(len(floor), FLOOR_ID), np.zeros(len(wall)), np.full(len(top) + len(sides), BOX_ID)])
  return vertices, segments, ids.astype(int)


def _render(k_33, pose_44, height, width):
  """Camera z (metres, 0 = nothing) and the id hit (-1 none, 0 wall, 1 box, 2 floor) per pixel."""
  rows, cols = np.mgrid[:height, :width]
  rays = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols, float)], -1).reshape(-1, 3) @ np.linalg.inv(k_33).T
  dirs, eye = rays @ pose_44[:3, :3].T, pose_44[:3, 3]  # camera z of a ray point = its t (ray z is 1)
  best, ids = np.full(len(dirs), np.inf), np.full(len(dirs), -1)
  with np.errstate(divide="ignore", invalid="ignore"):
    t_floor = -eye[2] / dirs[:, 2]
    p = eye + t_floor[:, None] * dirs
    hit = (t_floor > 0) & (p[:, 0] >= 0) & (p[:, 0] <= FLOOR_SIZE) & (p[:, 1] >= 0) & (p[:, 1] <= FLOOR_SIZE)
    t_wall = (WALL_Y - eye[1]) / dirs[:, 1]
    q = eye + t_wall[:, None] * dirs
    hit_wall = (t_wall > 0) & (q[:, 0] >= 0) & (q[:, 0] <= FLOOR_SIZE) & (q[:, 2] >= 0) & (q[:, 2] <= WALL_TOP)
    t1, t2 = (BOX_LOW - eye) / dirs, (BOX_HIGH - eye) / dirs
    t_in, t_out = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
    hit_box = (t_in <= t_out) & (t_in > 0)
  for mask, t, object_id in ((hit, t_floor, FLOOR_ID), (hit_wall, t_wall, 0), (hit_box, t_in, BOX_ID)):
    closer = mask & (t < best)
    best[closer], ids[closer] = t[closer], object_id
  depth = np.where(np.isfinite(best), best, 0.0)
  return depth.reshape(height, width), ids.reshape(height, width)


def _write_matrix(path, matrix):
  files.write_text(path, "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in matrix))


def make_scannet_scene(root, *, declared_depth_hw=DEPTH_HW, depth_transform=None):
  """Writes the tiny scan under root/SCENE; returns its folder. `depth_transform(mm) -> image` alters depth."""
  scene_dir = os.path.join(root, SCENE)
  for sub in ("color", "depth", "pose", "intrinsic"):
    os.makedirs(os.path.join(scene_dir, sub))
  vertices, segments, _ = _mesh()
  scan_vertices = vertices @ np.linalg.inv(ALIGN)[:3, :3].T + np.linalg.inv(ALIGN)[:3, 3]
  vertex = np.empty(len(vertices), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                    ("blue", "u1"), ("alpha", "u1")])
  for i, axis in enumerate("xyz"):
    vertex[axis] = scan_vertices[:, i]
  vertex["red"], vertex["green"], vertex["blue"], vertex["alpha"] = 120, 110, 100, 255
  face = np.empty(2, [("vertex_indices", "i4", (3,))])
  face["vertex_indices"] = [[0, 1, 31], [1, 32, 31]]
  PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")]).write(
    os.path.join(scene_dir, f"{SCENE}_vh_clean_2.ply"))
  files.write_text(os.path.join(scene_dir, f"{SCENE}_vh_clean_2.0.010000.segs.json"), json.dumps(
    {"params": {"kThresh": "0.0001", "segMinVerts": "20"}, "sceneId": SCENE, "segIndices": segments.tolist()}))
  files.write_text(os.path.join(scene_dir, f"{SCENE}.aggregation.json"), json.dumps(
    {"sceneId": f"scannet.{SCENE}", "appId": "Aggregator.v2", "segGroups": [
      {"id": 0, "objectId": 0, "segments": [20, 21], "label": "box"},
      {"id": 1, "objectId": 1, "segments": [10], "label": "floor"}],
     "segmentsFile": f"scannet.{SCENE}_vh_clean_2.0.010000.segs.json"}))
  files.write_text(os.path.join(scene_dir, f"{SCENE}.txt"),
                   f"axisAlignment = {' '.join(f'{v:f}' for v in ALIGN.ravel())}\n"
                   f"colorHeight = {COLOR_HW[0]}\ncolorWidth = {COLOR_HW[1]}\n"
                   f"depthHeight = {declared_depth_hw[0]}\ndepthWidth = {declared_depth_hw[1]}\n"
                   "numColorFrames = 20\nsceneType = Office\n")
  k_depth_declared = np.diag([declared_depth_hw[1] / DEPTH_HW[1], declared_depth_hw[0] / DEPTH_HW[0], 1]) @ K_DEPTH
  for name, k in (("intrinsic_color.txt", K_COLOR), ("intrinsic_depth.txt", k_depth_declared)):
    k44 = np.eye(4)
    k44[:3, :3] = k
    _write_matrix(os.path.join(scene_dir, "intrinsic", name), k44)
  for index, camera in CAMERAS.items():
    pose = np.full((4, 4), -np.inf) if camera is None else _look_at(*camera)
    scan_pose = pose if camera is None else np.linalg.inv(ALIGN) @ pose  # the files hold un-aligned poses
    _write_matrix(os.path.join(scene_dir, "pose", f"{index}.txt"), scan_pose)
    render_pose = _look_at(*CAMERAS[0]) if camera is None else pose
    depth_m, _ = _render(K_DEPTH, render_pose, *DEPTH_HW)
    depth_mm = np.round(depth_m * 1000).astype(np.uint16)
    image = Image.fromarray(depth_mm) if depth_transform is None else depth_transform(depth_mm)
    # A float image cannot be a PNG: such depth arrives as a TIFF under the .png name.
    image.save(os.path.join(scene_dir, "depth", f"{index}.png"), format="TIFF" if image.mode == "F" else "PNG")
    _, ids = _render(K_COLOR, render_pose, *COLOR_HW)
    rgb = np.stack([40 + 60 * (ids + 1), 200 - 30 * ids, np.full(ids.shape, 90 + index)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(scene_dir, "color", f"{index}.jpg"), quality=95)
  return scene_dir


def _depth_png(scene_dir, index):
  return np.asarray(Image.open(os.path.join(scene_dir, "depth", f"{index}.png"))).astype(np.float64)


@pytest.fixture(scope="module")
def scannet_dir(tmp_path_factory):
  return make_scannet_scene(tmp_path_factory.mktemp("scannet"))


@pytest.fixture(scope="module")
def scannet_scene(scannet_dir):
  return read_scannet_scene(scannet_dir)


def test_scannet_frames_poses_and_depth(scannet_dir, scannet_scene):
  scene = scannet_scene
  assert scene.name == SCENE
  assert [f.name for f in scene.frames] == ["0", "5", "15"]
  for frame in scene.frames:
    assert frame.rgb_hw3.shape == (*COLOR_HW, 3)
    np.testing.assert_allclose(frame.intrinsics_33, K_COLOR)
    np.testing.assert_allclose(frame.cam_to_world_44, _look_at(*CAMERAS[int(frame.name)]), atol=1e-5)
    # Depth is twice as coarse as colour with the same field of view: each depth pixel covers 2x2.
    expected = np.repeat(np.repeat(_depth_png(scannet_dir, frame.name), 2, 0), 2, 1) / 1000.0
    np.testing.assert_allclose(frame.depth_hw, expected, rtol=1e-6)
  assert scene.frames[0].depth_hw.max() > 1.0  # metres, not millimetres


def test_scannet_alignment_is_applied_to_vertices_and_poses_alike(scannet_scene):
  scene = scannet_scene
  vertices, _, _ = _mesh()
  np.testing.assert_allclose(scene.points_world_n3, vertices, atol=1e-5)
  top_centre = np.flatnonzero(np.all(np.abs(vertices - [1.5, 1.4, 0.5]) < 1e-9, axis=1))[0]
  for frame in scene.frames:
    # The box's top centre, taken from the scene's own points and pose, lands where the true camera sees it
    # and at the depth the depth image measured there.
    world_to_cam = np.linalg.inv(frame.cam_to_world_44)
    p = world_to_cam[:3, :3] @ scene.points_world_n3[top_centre] + world_to_cam[:3, 3]
    uv = (frame.intrinsics_33 @ p)[:2] / p[2]
    true_cam = np.linalg.inv(_look_at(*CAMERAS[int(frame.name)]))
    q = true_cam[:3, :3] @ vertices[top_centre] + true_cam[:3, 3]
    np.testing.assert_allclose(uv, (K_COLOR @ q)[:2] / q[2], atol=1e-3)
    col, row = int(uv[0]), int(uv[1])
    assert 0 <= col < COLOR_HW[1] and 0 <= row < COLOR_HW[0]
    assert abs(frame.depth_hw[row, col] - p[2]) < 0.1  # depth pixels are 2x2 colour pixels: ~8 cm wide here
    assert frame.instances_hw[row, col] == BOX_ID


def test_scannet_objects_from_the_aggregation(scannet_scene):
  scene = scannet_scene
  _, _, ids = _mesh()
  np.testing.assert_array_equal(scene.point_object_ids_n, ids)
  assert {o.id: o.label for o in scene.objects} == {BOX_ID: "box", FLOOR_ID: "floor"}
  box = scene.object_by_id(BOX_ID)
  np.testing.assert_allclose(box.center_3, (BOX_LOW + BOX_HIGH) / 2, atol=1e-5)
  np.testing.assert_allclose(box.extent_3, BOX_HIGH - BOX_LOW, atol=1e-5)
  assert box.height == pytest.approx(0.5, abs=1e-5) and box.length == pytest.approx(0.6, abs=1e-5)
  floor = scene.object_by_id(FLOOR_ID)
  np.testing.assert_allclose(floor.extent_3[:2], [FLOOR_SIZE, FLOOR_SIZE], atol=1e-5)
  assert 0 < floor.extent_3[2] <= 1.001e-3  # flat: the minimum thickness


def test_scannet_instance_masks_follow_the_geometry(scannet_scene):
  for frame in scannet_scene.frames:
    _, ids = _render(K_COLOR, _look_at(*CAMERAS[int(frame.name)]), *COLOR_HW)
    for object_id in (BOX_ID, FLOOR_ID, 0):
      seen = ids == object_id
      assert seen.sum() > 20
      assert np.mean(frame.instances_hw[seen] == object_id) > 0.85, (frame.name, object_id)


def test_scannet_skips_and_counts_invalid_poses(scannet_dir, caplog):
  with caplog.at_level(logging.WARNING, logger="jaxlab.spatial.scannet"):
    scene = read_scannet_scene(scannet_dir, frame_step=2)
  assert [f.name for f in scene.frames] == ["0"]  # of 0 and 10; 10's pose is -inf
  assert any("1 frame" in r.getMessage() and "10" in r.getMessage() for r in caplog.records)
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="jaxlab.spatial.scannet"):
    scene = read_scannet_scene(scannet_dir, max_frames=2)
  assert [f.name for f in scene.frames] == ["0", "5"]
  assert not caplog.records  # frame 10 was never reached


def test_scannet_resizes_and_rescales_intrinsics(scannet_dir, scannet_scene, tmp_path):
  scene = read_scannet_scene(scannet_dir, image_size=DEPTH_HW)
  for frame in scene.frames:
    assert frame.rgb_hw3.shape == (*DEPTH_HW, 3)
    np.testing.assert_allclose(frame.intrinsics_33, K_DEPTH)
    np.testing.assert_allclose(frame.depth_hw, _depth_png(scannet_dir, frame.name) / 1000.0, rtol=1e-6)
  # Depth files smaller than the size their intrinsics were written for are scaled, not misread.
  other = read_scannet_scene(make_scannet_scene(tmp_path, declared_depth_hw=COLOR_HW))
  for a, b in zip(other.frames, scannet_scene.frames):
    np.testing.assert_array_equal(a.depth_hw, b.depth_hw)


@pytest.mark.parametrize("transform, message", [
  (lambda mm: Image.fromarray((mm // 1000).astype(np.uint16)), "metres"),
  (lambda mm: Image.fromarray(mm.astype(np.float32) / 1000), "floating-point"),
  (lambda mm: Image.fromarray((mm // 20).astype(np.uint8)), "16-bit"),
])
def test_scannet_rejects_depth_in_the_wrong_unit(tmp_path, transform, message):
  scene_dir = make_scannet_scene(tmp_path, depth_transform=transform)
  with pytest.raises(SceneError, match=message):
    read_scannet_scene(scene_dir)


def test_scannet_missing_files_are_named(tmp_path):
  scene_dir = make_scannet_scene(tmp_path)
  os.remove(os.path.join(scene_dir, "pose", "5.txt"))
  with pytest.raises(FileNotFoundError, match=r"pose.5\.txt"):
    read_scannet_scene(scene_dir)
  os.remove(os.path.join(scene_dir, f"{SCENE}.aggregation.json"))
  with pytest.raises(FileNotFoundError, match="aggregation.json"):
    read_scannet_scene(scene_dir)
  for name in os.listdir(os.path.join(scene_dir, "depth")):
    os.remove(os.path.join(scene_dir, "depth", name))
  os.rmdir(os.path.join(scene_dir, "depth"))
  with pytest.raises(FileNotFoundError, match="depth"):
    read_scannet_scene(scene_dir)


def test_scannet_without_any_valid_pose(tmp_path):
  scene_dir = make_scannet_scene(tmp_path)
  for index in CAMERAS:
    _write_matrix(os.path.join(scene_dir, "pose", f"{index}.txt"), np.full((4, 4), -np.inf))
  with pytest.raises(SceneError, match="no frame with a valid pose"):
    read_scannet_scene(scene_dir)


# TAPVid-3D

T, N, H, W = 4, 12, 24, 32
FX_FY_CX_CY = np.array([30.0, 31.0, 16.0, 12.0])


def _frames():
  rows, cols = np.mgrid[:H, :W]
  return np.stack([np.stack([rows * 8, cols * 6, np.full((H, W), 60 * t)], -1) for t in range(T)]).astype(np.uint8)


def _jpeg(rgb) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def make_clip(path, *, extrinsics=True, drop=(), object_bytes=True, **override):
  rng = np.random.default_rng(3)
  tracks = np.column_stack([rng.uniform(-1, 1, (T * N, 2)), rng.uniform(1, 3, T * N)]).reshape(T, N, 3)
  visible = rng.random((T, N)) < 0.7
  w2c = np.tile(np.eye(4), (T, 1, 1))
  w2c[:, :3, :3] = Rotation.random(T, random_state=4).as_matrix()
  w2c[:, :3, 3] = rng.normal(size=(T, 3))
  jpegs = [_jpeg(f) for f in _frames()]
  arrays = {"images_jpeg_bytes": np.array(jpegs, dtype=object) if object_bytes else np.array(jpegs),
            "tracks_XYZ": tracks.astype(np.float32), "visibility": visible, "fx_fy_cx_cy": FX_FY_CX_CY,
            "queries_xyt": np.column_stack([rng.uniform(0, W, N), rng.uniform(0, H, N), np.zeros(N)])}
  if extrinsics:
    arrays["extrinsics_w2c"] = w2c
  arrays.update(override)
  for key in drop:
    del arrays[key]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, **arrays)
  return arrays


def test_tapvid3d_tracks_go_to_the_world(tmp_path):
  path = tmp_path / "adt" / "Apartment_seq1.npz"
  arrays = make_clip(path)
  scene = read_tapvid3d_npz(path)
  assert (scene.name, scene.source, scene.num_frames) == ("Apartment_seq1", "adt", T)
  c2w = np.linalg.inv(arrays["extrinsics_w2c"])
  cam = arrays["tracks_XYZ"].astype(np.float64)
  world = np.einsum("tij,tnj->tni", c2w, np.concatenate([cam, np.ones((T, N, 1))], -1))[..., :3]
  np.testing.assert_allclose(scene.points_world_tn3, world, atol=1e-9)
  np.testing.assert_allclose(scene.cam_to_world_t44, c2w, atol=1e-12)
  np.testing.assert_array_equal(scene.visible_tn, arrays["visibility"])
  np.testing.assert_allclose(scene.intrinsics_33, [[30, 0, 16], [0, 31, 12], [0, 0, 1]])
  assert np.abs(scene.rgb_thw3.astype(int) - _frames()).mean() < 4  # decoded JPEGs
  assert read_tapvid3d_npz(path, max_frames=2).num_frames == 2


def test_tapvid3d_static_camera_and_plain_bytes(tmp_path):
  path = tmp_path / "clips" / "p.npz"
  arrays = make_clip(path, extrinsics=False, object_bytes=False)
  scene = read_tapvid3d_npz(path, source="pstudio")
  assert scene.source == "pstudio"
  np.testing.assert_allclose(scene.cam_to_world_t44, np.tile(np.eye(4), (T, 1, 1)))
  np.testing.assert_allclose(scene.points_world_tn3, arrays["tracks_XYZ"], atol=1e-6)


@pytest.mark.parametrize("key", ["tracks_XYZ", "visibility", "fx_fy_cx_cy", "images_jpeg_bytes"])
def test_tapvid3d_missing_key_is_named(tmp_path, key):
  path = tmp_path / "adt" / "c.npz"
  make_clip(path, drop=(key,))
  with pytest.raises(SceneError, match=f"c.npz.*{key}"):
    read_tapvid3d_npz(path)


def test_tapvid3d_bad_content(tmp_path):
  path = tmp_path / "adt" / "c.npz"
  make_clip(path, visibility=np.zeros((T, N), bool))
  with pytest.raises(SceneError, match="invisible"):
    read_tapvid3d_npz(path)
  make_clip(path, visibility=np.ones((T, N + 1), bool))
  with pytest.raises(SceneError, match="visibility"):
    read_tapvid3d_npz(path)
  tracks = make_clip(path)["tracks_XYZ"].copy()
  visible = make_clip(path)["visibility"]
  t, n = np.argwhere(visible)[0]
  tracks[t, n] = np.nan
  make_clip(path, tracks_XYZ=tracks)
  with pytest.raises(SceneError, match="NaN"):
    read_tapvid3d_npz(path)
  t, n = np.argwhere(~visible)[0]
  hidden_nan = make_clip(path)["tracks_XYZ"].copy()
  hidden_nan[t, n] = np.nan
  make_clip(path, tracks_XYZ=hidden_nan)
  assert read_tapvid3d_npz(path).num_frames == T  # NaN where the point is not visible is allowed
  jpegs = [_jpeg(f) for f in _frames()]
  jpegs[2] = b"not a jpeg"
  make_clip(path, images_jpeg_bytes=np.array(jpegs, dtype=object))
  with pytest.raises(SceneError, match="frame 2"):
    read_tapvid3d_npz(path)
