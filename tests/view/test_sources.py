"""PlySource, LodSource and DemoSource: what they load, what they draw, and SourceError naming the path
for every missing or damaged input."""

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from jaxlab.splat import Camera, save_ply
from jaxlab.splat.lod import donut_sea_instances, load_bundle, write_layout
from jaxlab.view.errors import SourceError
from jaxlab.view.lod_source import LodSource
from jaxlab.view.ply_source import PlySource
from tests.view.conftest import DEMO_CAMERAS, DEMO_FPS, make_gaussians, write_demos

ORBIT = ["front", "right", "back", "left", "top"]


def _cameras_json(path, names):
  entries = [{"id": i, "img_name": name, "width": 64, "height": 48, "position": [0.0, -3.0 - i, 0.5],
              "rotation": [[1, 0, 0], [0, 0, -1], [0, 1, 0]], "fx": 50.0, "fy": 40.0} for i, name in enumerate(names)]
  path.write_text(json.dumps(entries))


# ----------------------------------------------------------------------------- ply


def test_ply_source_loads_every_sh_degree_and_the_model_cameras(tmp_path):
  model = tmp_path / "model"
  ply = model / "point_cloud" / "iteration_7000" / "point_cloud.ply"
  ply.parent.mkdir(parents=True)
  gaussians = make_gaussians(30, seed=2, sh_degree=3, center=(5.0, 0.0, 0.0))
  save_ply(ply, gaussians)
  _cameras_json(model / "cameras.json", ["IMG_1", "IMG_2"])
  source = PlySource(ply)
  assert source.kind == "ply" and source.gaussians.sh_degree == 3
  for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
    assert_array_equal(np.asarray(getattr(source.gaussians, name)), np.asarray(getattr(gaussians, name)))
  assert [p.name for p in source.presets] == ["IMG_1", "IMG_2"]
  assert_allclose(source.presets[1].camera_to_world_44[:3, 3], [0.0, -4.0, 0.5])
  assert source.presets[0].fov_y == pytest.approx(2 * math.atan(48 / 80))
  assert "30 Gaussians, SH degree 3" in source.status() and "2 cameras" in source.status()


@pytest.mark.parametrize("cameras_json", [None, "[]", "{oops"])
def test_ply_source_without_usable_cameras_orbits_the_gaussians(tmp_path, cameras_json):
  ply = tmp_path / "scene.ply"
  save_ply(ply, make_gaussians(50, seed=3, sh_degree=0, center=(5.0, 0.0, 0.0)))
  if cameras_json is not None:
    (tmp_path / "cameras.json").write_text(cameras_json)
  source = PlySource(ply)
  assert [p.name for p in source.presets] == ORBIT
  top = source.presets[-1].camera_to_world_44
  assert np.linalg.norm(top[:3, 3] - [5.0, 0.0, 0.0]) < 4.0  # around the Gaussians, not the origin
  if cameras_json == "{oops":
    assert "cameras.json unreadable" in source.status()


def test_bad_ply_is_a_source_error_naming_the_file(tmp_path):
  with pytest.raises(SourceError, match="does not exist") as info:
    PlySource(tmp_path / "missing.ply")
  assert str(tmp_path / "missing.ply") in str(info.value)
  ply = tmp_path / "cut.ply"
  save_ply(ply, make_gaussians(10, sh_degree=1))
  ply.write_bytes(ply.read_bytes()[:-37])  # truncated mid-row
  with pytest.raises(SourceError, match="truncated") as info:
    PlySource(ply)
  assert str(ply) in str(info.value)
  text = tmp_path / "notes.ply"
  text.write_text("hello\n")
  with pytest.raises(SourceError, match="not a readable PLY") as info:
    PlySource(text)
  assert str(text) in str(info.value)


# ----------------------------------------------------------------------------- lod


def _camera(preset, width=32, height=24):
  focal = 0.5 * height / math.tan(0.5 * preset.fov_y)
  return Camera.from_opencv(preset.camera_to_world_44, fx=focal, fy=focal, cx=width / 2, cy=height / 2,
                            width=width, height=height)


def test_lod_source_draws_fewer_gaussians_at_larger_tau(bundle_path):
  source = LodSource(bundle_path)
  bundle = load_bundle(bundle_path)
  per_level = bundle.gaussians_per_level()
  assert source.full_detail_size == per_level[0] == 200
  assert [p.name for p in source.presets] == ORBIT
  assert source.tau_range[0] < source.default_tau == 2048.0 < source.tau_range[1]
  camera = _camera(source.presets[0])
  image, fine = source.render(camera, 1e-3, (0.0, 0.0, 0.0))
  assert fine == per_level[0]  # tau near 0: full detail, all of it in view
  assert image.rgb.shape == (24, 32, 3) and float(np.max(image.alpha)) > 0.5 and not bool(image.overflow)
  _, coarse = source.render(camera, 1e6, (0.0, 0.0, 0.0))
  assert coarse == per_level[-1] < fine  # one footprint below tau everywhere: the top level
  on_white, _ = source.render(camera, 1e-3, (1.0, 1.0, 1.0))
  assert float(np.min(on_white.rgb)) > float(np.min(image.rgb))  # the background is passed through
  assert "200 Gaussians at full detail" in source.status() and "tau 0.001 px²: 200 drawn" in source.status()


def test_lod_source_grows_the_intersection_capacity(bundle_path):
  source = LodSource(bundle_path)
  camera = _camera(source.presets[0])
  source._capacity[(32, 24)] = 16  # far too small: the first frame overflows
  image, _ = source.render(camera, 1e-3)
  capacity = source._capacity[(32, 24)]
  assert not bool(image.overflow) and capacity >= int(image.num_intersections) > 16
  assert capacity & (capacity - 1) == 0  # a power of two


def test_lod_layout_and_folders(tmp_path, bundle_path):
  layout = tmp_path / "scene" / "layout.json"
  layout.parent.mkdir()
  write_layout(layout, ["donut"], [str(bundle_path)], donut_sea_instances(3, spacing=4.0))
  from_layout = LodSource(layout)
  assert from_layout.full_detail_size == 3 * 200 and from_layout.scene.instances.num == 3
  assert LodSource(layout.parent).scene_file == layout  # a folder holding layout.json
  run = tmp_path / "v3dg_run"
  run.mkdir()
  (run / "bundle.npz").write_bytes(bundle_path.read_bytes())
  assert LodSource(run).full_detail_size == 200  # a configs/v3dg_build.py workdir


def test_bad_lod_inputs_are_source_errors_naming_the_file(tmp_path, bundle_path):
  cut = tmp_path / "cut.npz"
  cut.write_bytes(bundle_path.read_bytes()[:500])
  not_json = tmp_path / "layout.json"
  not_json.write_text("{assets: oops")
  no_bundle = tmp_path / "lost.json"
  no_bundle.write_text(json.dumps({"assets": [{"name": "a", "bundle": "gone.npz", "instances": [{}]}]}))
  empty = tmp_path / "empty"
  empty.mkdir()
  cases = [(tmp_path / "missing.npz", "does not exist"), (cut, "not a readable bundle"), (not_json, "not valid UTF-8 JSON"),
           (no_bundle, "gone.npz does not exist"), (empty, "neither layout.json nor bundle.npz")]
  for path, pattern in cases:
    with pytest.raises(SourceError, match=pattern) as info:
      LodSource(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- demos


def test_demo_source_reads_the_frames_written(tmp_path):
  pytest.importorskip("pyarrow")
  from jaxlab.view.demo_source import DemoSource  # pylint: disable=g-import-not-at-top

  written = write_demos(tmp_path / "ds", lengths=(4, 3))
  source = DemoSource(tmp_path / "ds")
  assert source.kind == "demos" and source.presets == [] and list(source.datasets) == ["ds"]
  assert source.num_episodes("ds") == 2 and source.cameras("ds") == list(DEMO_CAMERAS)
  assert [source.episode_length("ds", e) for e in range(2)] == [4, 3] and source.fps("ds") == DEMO_FPS
  assert [source.task("ds", e) for e in range(2)] == ["pick the cube", "stack the mug"]
  for episode, images in enumerate(written):
    for camera, frames in images.items():
      for t, frame in enumerate(frames):
        got = source.frame("ds", episode, camera, t)
        assert got.dtype == np.uint8 and got.shape == (6, 8, 3)
        assert_array_equal(got, frame)
  assert source.frame("ds", 1, "wrist", 2) is source.frame("ds", 1, "wrist", 2)  # cached


def test_demo_source_offers_generated_then_source(tmp_path):
  pytest.importorskip("pyarrow")
  from jaxlab.view.demo_source import DemoSource  # pylint: disable=g-import-not-at-top

  write_demos(tmp_path / "source", lengths=(2,), seed=1)
  generated = write_demos(tmp_path / "generated", lengths=(3, 2, 2), seed=2)
  source = DemoSource(tmp_path)
  assert list(source.datasets) == ["generated", "source"]
  assert source.num_episodes("generated") == 3 and source.num_episodes("source") == 1
  assert_array_equal(source.frame("generated", 2, "front", 1), generated[2]["front"][1])
  assert "generated: 3 episode(s)" in source.status()


def test_bad_demos_are_source_errors_naming_the_path(tmp_path):
  pytest.importorskip("pyarrow")
  from jaxlab.view.demo_source import DemoSource  # pylint: disable=g-import-not-at-top

  with pytest.raises(SourceError, match="does not exist"):
    DemoSource(tmp_path / "nowhere")
  write_demos(tmp_path / "ds", lengths=(2, 2))
  (tmp_path / "ds" / "data" / "chunk-000" / "episode_000001.parquet").unlink()
  with pytest.raises(SourceError, match="episode 1") as info:  # EpisodeFormatError, wrapped
    DemoSource(tmp_path / "ds")
  assert str(tmp_path / "ds") in str(info.value)
  (tmp_path / "plain").mkdir()
  with pytest.raises(SourceError, match="no episode dataset"):
    DemoSource(tmp_path / "plain")
