"""The procedural scene: Blender-format files, camera poses, depth and points against the geometry.

Geometry checks recompute ray-plane and ray-sphere hits here, from `scene.json` and the
Blender conventions only (camera_angle_x, OpenGL camera-to-world), so a mistake in the
ray caster, in the pose convention or in the depth definition cannot hide behind itself.
"""

import json
import pathlib

import imageio.v3 as iio
import numpy as np
import plyfile
import pytest

from jaxlab.splat import Camera, synthetic

_TINY = {"num_train": 3, "num_test": 2, "width": 40, "height": 30, "seed": 0, "num_points": 400, "supersample": 1}


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> pathlib.Path:
  return synthetic.generate(tmp_path_factory.mktemp("synthetic") / "scene", **_TINY)


def _load(root: pathlib.Path, split: str) -> dict:
  with open(root / f"transforms_{split}.json") as f:
    return json.load(f)


def _geometry(root: pathlib.Path) -> dict:
  with open(root / "scene.json") as f:
    return json.load(f)["scene"]


def _views(root: pathlib.Path):
  """(pose [4, 4], depth [H, W], rgba [H, W, 4], focal) for every frame of both splits."""
  for split in ("train", "test"):
    meta = _load(root, split)
    for frame in meta["frames"]:
      rgba = iio.imread(root / f"{frame['file_path']}.png")
      depth = np.load(root / f"{frame['file_path']}_depth.npy")
      focal = 0.5 * rgba.shape[1] / np.tan(0.5 * meta["camera_angle_x"])
      yield np.asarray(frame["transform_matrix"]), depth, rgba, focal


def _pixel_rays(pose, width, height, focal):
  """World directions [H, W, 3] scaled so that t along them is the camera-space depth."""
  cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
  # OpenGL camera: x right, y up, looking down -z.
  cam = np.stack([(cols - 0.5 * width) / focal, -(rows - 0.5 * height) / focal, -np.ones_like(cols)], -1)
  return cam @ pose[:3, :3].T


def _backproject(pose, depth, focal):
  height, width = depth.shape
  return pose[:3, 3] + depth[..., None] * _pixel_rays(pose, width, height, focal)


def _sphere_t(center, radius, eye, dirs):
  """Nearest positive t of the ray eye + t * dirs on a sphere; inf where it misses."""
  oc = eye - np.asarray(center)
  a = np.sum(dirs**2, -1)
  b = np.sum(dirs * oc, -1)
  c = oc @ oc - radius**2
  disc = b**2 - a * c
  t = (-b - np.sqrt(np.maximum(disc, 0))) / a
  return np.where((disc >= 0) & (t > 0), t, np.inf)


def _on_surface_distance(points, geometry):
  """Distance-like residual [N] of each point to the nearest surface of the scene."""
  ground = geometry["ground"]
  residuals = [np.where(np.hypot(points[:, 0], points[:, 1]) <= ground["radius"] + 1e-4,
                        np.abs(points[:, 2] - ground["height"]), np.inf)]
  for sphere in geometry["spheres"]:
    residuals.append(np.abs(np.linalg.norm(points - sphere["center"], axis=1) - sphere["radius"]))
  for box in geometry["boxes"]:
    local = (points - box["center"]) @ np.asarray(box["rotation"])
    excess = np.abs(local) - np.asarray(box["half_size"])
    # On the surface: inside every slab, and on the boundary of at least one.
    residuals.append(np.maximum(np.max(excess, axis=1), 0) + np.abs(np.max(excess, axis=1)))
  return np.min(residuals, axis=0)


def test_files_follow_the_blender_layout(scene_dir):
  for split, count in (("train", _TINY["num_train"]), ("test", _TINY["num_test"])):
    meta = _load(scene_dir, split)
    assert isinstance(meta["camera_angle_x"], float) and 0 < meta["camera_angle_x"] < np.pi
    assert [f["file_path"] for f in meta["frames"]] == [f"./{split}/r_{i}" for i in range(count)]
    for frame in meta["frames"]:
      rgba = iio.imread(scene_dir / f"{frame['file_path']}.png")
      assert rgba.dtype == np.uint8 and rgba.shape == (_TINY["height"], _TINY["width"], 4)
      depth = np.load(scene_dir / f"{frame['file_path']}_depth.npy")
      assert depth.dtype == np.float32 and depth.shape == rgba.shape[:2]
      # One ray per pixel: covered pixels have depth, empty ones have neither.
      np.testing.assert_array_equal(rgba[..., 3] == 255, depth > 0)
      np.testing.assert_array_equal(rgba[..., 3] == 0, depth == 0)
      assert 0 < np.mean(depth > 0) < 1  # the scene and empty space are both in view
  ply = plyfile.PlyData.read(str(scene_dir / "points3d.ply"))
  vertex = ply["vertex"]
  assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue"]
  assert [vertex.data.dtype[n].kind for n in ("x", "red")] == ["f", "u"]
  assert vertex.data.dtype["red"].itemsize == 1


def test_poses_are_rigid_and_look_at_the_centre(scene_dir):
  record = _geometry(scene_dir)
  target = np.asarray(record["look_at"])
  eyes = {}
  for split in ("train", "test"):
    eyes[split] = []
    for frame in _load(scene_dir, split)["frames"]:
      pose = np.asarray(frame["transform_matrix"])
      rotation, eye = pose[:3, :3], pose[:3, 3]
      np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
      np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
      assert np.linalg.det(rotation) == pytest.approx(1.0)
      to_target = (target - eye) / np.linalg.norm(target - eye)
      np.testing.assert_allclose(-rotation[:, 2], to_target, atol=1e-12)
      assert rotation[2, 1] > 0  # camera up (+y) leans towards world up: images are upright
      assert eye[2] > target[2]  # above the ground, looking down
      np.testing.assert_allclose(np.linalg.norm(eye - target), record["camera_distance"])
      eyes[split].append(eye)
  train, test = np.asarray(eyes["train"]), np.asarray(eyes["test"])
  assert np.min(np.linalg.norm(test[:, None] - train[None], axis=-1)) > 1e-3  # held-out positions


def test_test_cameras_sit_between_training_cameras():
  train, test = synthetic.camera_poses(64, 8)
  train_eyes, test_eyes = train[:, :3, 3], test[:, :3, 3]
  gaps = np.linalg.norm(train_eyes[:, None] - train_eyes[None], axis=-1)
  np.fill_diagonal(gaps, np.inf)
  spacing = np.median(gaps.min(axis=1))
  to_train = np.linalg.norm(test_eyes[:, None] - train_eyes[None], axis=-1).min(axis=1)
  # Never on a training camera, never outside the covered band.
  assert np.all(to_train > 0.25 * spacing) and np.all(to_train < spacing)
  assert train_eyes[:, 2].min() < test_eyes[:, 2].min() and test_eyes[:, 2].max() < train_eyes[:, 2].max()


def test_depth_matches_ground_and_sphere_geometry(scene_dir):
  geometry = _geometry(scene_dir)
  ground = geometry["ground"]
  counts = {"ground": 0, "sphere": 0}
  for pose, depth, _, focal in _views(scene_dir):
    height, width = depth.shape
    eye = pose[:3, 3]
    dirs = _pixel_rays(pose, width, height, focal)
    t_ground = (ground["height"] - eye[2]) / dirs[..., 2]
    hit_xy = eye[:2] + t_ground[..., None] * dirs[..., :2]
    t_ground = np.where((t_ground > 0) & (np.hypot(*np.moveaxis(hit_xy, -1, 0)) <= ground["radius"]),
                        t_ground, np.inf)
    t_spheres = np.stack([_sphere_t(s["center"], s["radius"], eye, dirs) for s in geometry["spheres"]])
    # Boxes are stood in for by their bounding spheres: pixels near a box are not judged.
    t_boxes = np.stack([_sphere_t(b["center"], np.linalg.norm(b["half_size"]), eye, dirs)
                        for b in geometry["boxes"]])
    no_box = np.all(np.isinf(t_boxes), axis=0)
    no_sphere = np.all(np.isinf(t_spheres), axis=0)
    ground_only = np.isfinite(t_ground) & no_sphere & no_box
    np.testing.assert_allclose(depth[ground_only], t_ground[ground_only], rtol=1e-5)
    points = _backproject(pose, depth, focal)
    np.testing.assert_allclose(points[ground_only][:, 2], ground["height"], atol=1e-4)
    counts["ground"] += int(ground_only.sum())
    for k, sphere in enumerate(geometry["spheres"]):
      others = np.delete(t_spheres, k, axis=0)
      alone = (np.isfinite(t_spheres[k]) & (t_spheres[k] < t_ground) & np.all(np.isinf(others), axis=0)
               & no_box)
      np.testing.assert_allclose(depth[alone], t_spheres[k][alone], rtol=1e-5)
      radii = np.linalg.norm(points[alone] - sphere["center"], axis=-1)
      np.testing.assert_allclose(radii, sphere["radius"], atol=1e-4)
      counts["sphere"] += int(alone.sum())
    # Wherever anything was hit, the back-projected point is on some surface (boxes included).
    hit = depth > 0
    assert np.max(_on_surface_distance(points[hit], geometry)) < 1e-4
    # A ray that meets the ground or a sphere hits something; one that meets nothing, nothing.
    assert np.all(hit[np.isfinite(t_ground) | ~no_sphere])
    assert not np.any(hit & np.isinf(t_ground) & no_sphere & no_box)
  assert counts["ground"] > 20 and counts["sphere"] > 5


def test_colours_stay_inside_a_fittable_range(scene_dir):
  for _, depth, rgba, _ in _views(scene_dir):
    covered = rgba[..., 3] > 0
    rgb = rgba[..., :3][covered].astype(int)
    assert rgb.min() >= 5 and rgb.max() <= 250  # neither black nor saturated
    assert rgb.std() > 5  # textured, not flat
    np.testing.assert_array_equal(rgba[..., :3][~covered], 0)


def test_supersampling_gives_partial_coverage_at_silhouettes(tmp_path):
  root = synthetic.generate(tmp_path / "ss", **{**_TINY, "num_train": 1, "num_test": 1, "supersample": 3})
  rgba = iio.imread(root / "train/r_0.png")
  depth = np.load(root / "train/r_0_depth.npy")
  alpha = rgba[..., 3]
  partial = (alpha > 0) & (alpha < 255)
  assert partial.any()
  assert np.all(depth[alpha == 0] == 0) and np.all(depth[alpha == 255] > 0)


def test_points_lie_on_visible_surfaces_with_their_colours(scene_dir):
  geometry = _geometry(scene_dir)
  vertex = plyfile.PlyData.read(str(scene_dir / "points3d.ply"))["vertex"]
  points = np.stack([vertex[n] for n in "xyz"], axis=1).astype(np.float64)
  colors = np.stack([vertex[n] for n in ("red", "green", "blue")], axis=1).astype(int)
  assert len(points) == _TINY["num_points"]
  assert np.max(_on_surface_distance(points, geometry)) < 1e-4
  # Never on a hidden surface: the bottom face of a box standing on the ground, or the ground under it.
  standing = [b for b in geometry["boxes"]
              if abs(b["center"][2] - b["half_size"][2] - geometry["ground"]["height"]) < 1e-9]
  assert len(standing) >= 2
  for box in standing:
    local = (points - box["center"]) @ np.asarray(box["rotation"])
    under = np.all(np.abs(local[:, :2]) < np.asarray(box["half_size"][:2]) - 1e-3, axis=1)
    assert not np.any(under & (points[:, 2] < box["center"][2] - box["half_size"][2] + 1e-3))
  # Every surface kind is sampled.
  assert np.sum(np.abs(points[:, 2] - geometry["ground"]["height"]) < 1e-4) > 0.1 * len(points)
  for sphere in geometry["spheres"]:
    assert np.any(np.abs(np.linalg.norm(points - sphere["center"], axis=1) - sphere["radius"]) < 1e-4)
  # A point seen in a view (its depth matches the depth map) has that pixel's colour.
  differences = []
  for pose, depth, rgba, focal in _views(scene_dir):
    height, width = depth.shape
    cam = (points - pose[:3, 3]) @ pose[:3, :3]  # OpenGL camera coordinates
    z = -cam[:, 2]
    col = np.floor(cam[:, 0] / z * focal + 0.5 * width).astype(int)
    row = np.floor(-cam[:, 1] / z * focal + 0.5 * height).astype(int)
    inside = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col, row = col[inside], row[inside]
    seen = np.abs(depth[row, col] - z[inside]) < 0.01
    differences.append(np.abs(rgba[row[seen], col[seen], :3].astype(int) - colors[inside][seen]).mean(axis=1))
  differences = np.concatenate(differences)
  assert len(differences) > 50 and np.median(differences) < 12


def test_ray_box_hits_match_the_rotated_box():
  quarter_turn = ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
  box = synthetic.Box(center=(0.0, 0.0, 5.0), half_size=(0.5, 0.2, 0.3), rotation=quarter_turn, texture="rocket")
  scene = synthetic.Scene(spheres=(), boxes=(box,))
  textures = synthetic.load_textures()
  origins = np.array([[4.0, 0.0, 5.0], [0.0, 4.0, 5.0], [4.0, 0.0, 5.25], [4.0, 0.0, 5.35], [0.0, 0.0, 9.0]])
  dirs = np.array([[-2.0, 0.0, 0.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
  t, ids, colors = synthetic.cast_rays(scene, textures, origins, dirs)
  # After the quarter turn the box spans 0.2 along world x and 0.5 along world y.
  np.testing.assert_allclose(t[:3], [(4.0 - 0.2) / 2.0, 4.0 - 0.5, 4.0 - 0.2])
  assert ids[3] == -1 and np.isinf(t[3]) and np.all(colors[3] == 0)  # passes above the top face
  np.testing.assert_allclose(t[4], 9.0 - 5.3)  # down onto the top face
  assert np.all(ids[[0, 1, 2, 4]] == 1)  # surface 0 is the ground, 1 the box
  assert np.all(colors[[0, 1, 2, 4]] > 0)


def test_same_seed_same_bytes_other_seed_other_scene(tmp_path, scene_dir):
  again = synthetic.generate(tmp_path / "again", **_TINY)
  files = sorted(p.relative_to(scene_dir) for p in scene_dir.rglob("*") if p.is_file())
  assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
  for name in files:
    assert (scene_dir / name).read_bytes() == (again / name).read_bytes(), name
  other = synthetic.generate(tmp_path / "other", **{**_TINY, "seed": 1})
  assert _geometry(other)["spheres"] != _geometry(scene_dir)["spheres"]
  assert (other / "points3d.ply").read_bytes() != (scene_dir / "points3d.ply").read_bytes()


def test_refuses_a_non_empty_directory_unless_overwrite(tmp_path, capsys):
  out = tmp_path / "busy"
  out.mkdir()
  (out / "notes.txt").write_text("keep me")
  small = ["--width", "8", "--height", "6", "--num_train", "1", "--num_test", "1", "--num_points", "10"]
  assert synthetic.main(["--out", str(out), *small]) == 2
  assert "not empty" in capsys.readouterr().err
  with pytest.raises(FileExistsError, match="overwrite"):
    synthetic.generate(out, width=8, height=6, num_train=1, num_test=1, num_points=10)
  assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
  (out / "train").mkdir()
  (out / "train" / "r_7.png").write_bytes(b"stale")
  assert synthetic.main(["--out", str(out), *small, "--overwrite"]) == 0
  assert (out / "notes.txt").read_text() == "keep me"  # only the scene's own files are replaced
  assert sorted(p.name for p in (out / "train").iterdir()) == ["r_0.png", "r_0_depth.npy"]
  assert len(_load(out, "train")["frames"]) == 1
  assert not list(tmp_path.glob(".busy.partial-*"))


def test_a_failed_generation_leaves_nothing(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise RuntimeError("disk full")

  monkeypatch.setattr(synthetic, "write_points_ply", fail)
  with pytest.raises(RuntimeError, match="disk full"):
    synthetic.generate(tmp_path / "scene", width=8, height=6, num_train=1, num_test=1, num_points=10)
  assert list(tmp_path.iterdir()) == []


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match="width must be an integer >= 1; got 0"):
    synthetic.generate("/nonexistent/never", width=0)
  with pytest.raises(ValueError, match="num_test"):
    synthetic.default_scene_dir(num_test=-1)


def test_ensure_default_scene_generates_once_and_reuses(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXLAB_CACHE", str(tmp_path / "cache"))
  assert synthetic.default_scene_dir() == tmp_path / "cache" / "synthetic_v1"
  small = {"width": 8, "height": 6, "num_train": 2, "num_test": 1, "num_points": 20, "supersample": 1}
  path = synthetic.ensure_default_scene(**small)
  assert path == synthetic.default_scene_dir(**small) and path.parent == tmp_path / "cache"
  assert path.name != "synthetic_v1"
  assert len(_load(path, "train")["frames"]) == 2
  stamp = (path / "points3d.ply").stat().st_mtime_ns

  def must_not_run(*args, **kwargs):
    raise AssertionError("the cached scene was generated again")

  monkeypatch.setattr(synthetic, "generate", must_not_run)
  assert synthetic.ensure_default_scene(**small) == path
  assert (path / "points3d.ply").stat().st_mtime_ns == stamp
  # Another size is another folder, generated beside the first.
  monkeypatch.undo()
  monkeypatch.setenv("JAXLAB_CACHE", str(tmp_path / "cache"))
  bigger = synthetic.ensure_default_scene(**{**small, "width": 10})
  assert bigger != path and iio.imread(bigger / "train/r_0.png").shape[1] == 10
  assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([path.name, bigger.name])
  # A folder that holds something else is reported, never deleted.
  (bigger / "scene.json").write_text("{}")
  with pytest.raises(FileExistsError, match="delete it to regenerate"):
    synthetic.ensure_default_scene(**{**small, "width": 10})
  assert (bigger / "train").is_dir()


def test_depth_and_poses_agree_with_jaxlab_cameras(scene_dir):
  """The files read through `Camera.from_fov(..., convention="opengl")` put each hit at its pixel."""
  pose, depth, _, focal = next(_views(scene_dir))
  height, width = depth.shape
  camera = Camera.from_fov(pose, fov_x_radians=_load(scene_dir, "train")["camera_angle_x"], width=width,
                           height=height, convention="opengl")
  rows, cols = np.nonzero(depth > 0)
  points = _backproject(pose, depth, focal)[rows, cols]
  w2c = np.asarray(camera.world_to_camera, np.float64)
  cam = points @ w2c[:3, :3].T + w2c[:3, 3]
  np.testing.assert_allclose(cam[:, 2], depth[rows, cols], rtol=1e-5)
  pixel_x = float(camera.fx) * cam[:, 0] / cam[:, 2] + float(camera.cx)
  pixel_y = float(camera.fy) * cam[:, 1] / cam[:, 2] + float(camera.cy)
  np.testing.assert_allclose(pixel_x, cols + 0.5, atol=1e-3)
  np.testing.assert_allclose(pixel_y, rows + 0.5, atol=1e-3)


_SMALL = {"width": 8, "height": 6, "num_train": 1, "num_test": 1, "num_points": 10, "supersample": 1}


def _snapshot(root: pathlib.Path) -> dict:
  return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_overwrite_refuses_to_delete_files_the_scene_did_not_write(tmp_path):
  out = synthetic.generate(tmp_path / "scene", **_SMALL)
  (out / "train" / "my_notes.txt").write_text("keep me")
  before = _snapshot(out)
  with pytest.raises(FileExistsError, match=r"train.*my_notes\.txt.*not a file the scene writes"):
    synthetic.generate(out, **{**_SMALL, "seed": 1}, overwrite=True)
  assert _snapshot(out) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_a_failure_while_publishing_leaves_the_previous_scene(tmp_path, monkeypatch):
  out = synthetic.generate(tmp_path / "scene", **_SMALL)
  before = _snapshot(out)
  real_rename, calls = synthetic.os.rename, []

  def rename_then_fail(source, target):
    calls.append(target)
    if len(calls) == 4:
      raise OSError("disk full")
    real_rename(source, target)

  monkeypatch.setattr(synthetic.os, "rename", rename_then_fail)
  with pytest.raises(OSError, match="disk full"):
    synthetic.generate(out, **{**_SMALL, "seed": 1}, overwrite=True)
  assert len(calls) >= 4
  assert _snapshot(out) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no staging or backup folder left


def test_write_points_ply_failing_midway_keeps_the_previous_file(tmp_path, monkeypatch):
  path = tmp_path / "points.ply"
  synthetic.write_points_ply(path, np.zeros((3, 3)), np.full((3, 3), 0.5))
  previous = path.read_bytes()

  def write_half_then_fail(self, stream):
    with open(stream, "wb") if isinstance(stream, str) else open(stream.fileno(), "wb", closefd=False) as f:
      f.write(b"ply\nformat binary_little_endian 1.0\n")
    raise OSError("disk full")

  monkeypatch.setattr(plyfile.PlyData, "write", write_half_then_fail)
  with pytest.raises(OSError, match="disk full"):
    synthetic.write_points_ply(path, np.ones((5, 3)), np.full((5, 3), 0.1))
  assert path.read_bytes() == previous
  assert sorted(p.name for p in tmp_path.iterdir()) == ["points.ply"]
