"""Tests for the on-disk clip layout (`jaxlab.video.disk`)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from jaxlab.video.clip import NUM_KEYPOINTS, ClipError
from jaxlab.video.disk import list_clips, read_clip, write_clip
from jaxlab.video.synthetic import generate_clip


@pytest.fixture(scope="module")
def clip():
  return generate_clip(2, num_frames=4, height=16, width=16, num_people=3)


def test_write_then_read_gives_the_clip_back(clip, tmp_path):
  folder = write_clip(clip, tmp_path / "clip_a")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_a"]  # no temporary folder left behind
  back = read_clip(folder)
  assert back.num_identities == clip.num_identities and back.name == str(folder)
  np.testing.assert_allclose(back.rgb_fhwc, clip.rgb_fhwc, atol=0.5 / 255 + 1e-6)
  np.testing.assert_allclose(back.reference_hwc, clip.reference_hwc, atol=0.5 / 255 + 1e-6)
  np.testing.assert_allclose(back.depth_fhw, clip.depth_fhw, atol=1e-3)
  np.testing.assert_allclose(back.normal_fhwc, clip.normal_fhwc, atol=1 / 127)
  np.testing.assert_allclose(np.linalg.norm(back.normal_fhwc, axis=-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(back.masks_fhw, clip.masks_fhw)
  np.testing.assert_array_equal(back.poses_fpk3, clip.poses_fpk3)
  np.testing.assert_array_equal(back.intrinsics_f33, clip.intrinsics_f33)
  np.testing.assert_array_equal(back.cam_to_world_f44, clip.cam_to_world_f44)
  assert json.loads((folder / "meta.json").read_text()) == {"num_identities": 5, "fps": 8.0,
                                                            "keypoint_layout": "openpose18",
                                                            "written_by": "jaxlab.video.disk.write_clip"}
  assert iio.imread(folder / "depth" / "00000.png").dtype == np.uint16


def test_far_depth_is_stored_as_float_metres(clip, tmp_path):
  far = dataclasses.replace(clip, depth_fhw=clip.depth_fhw * 100.0)  # beyond 65.535 m
  back = read_clip(write_clip(far, tmp_path / "far"))
  assert (tmp_path / "far" / "depth" / "00000.npy").exists()
  np.testing.assert_array_equal(back.depth_fhw, far.depth_fhw)


def test_overwrite_only_when_asked_and_only_own_files(clip, tmp_path):
  folder = write_clip(clip, tmp_path / "c")
  with pytest.raises(FileExistsError, match="overwrite"):
    write_clip(clip, folder)
  other = generate_clip(3, num_frames=4, height=16, width=16)
  write_clip(other, folder, overwrite=True)
  np.testing.assert_array_equal(read_clip(folder).masks_fhw, other.masks_fhw)
  (folder / "notes.txt").write_text("mine")
  with pytest.raises(FileExistsError, match="notes.txt"):
    write_clip(clip, folder, overwrite=True)
  assert (folder / "notes.txt").read_text() == "mine"
  (folder / "notes.txt").unlink()
  (folder / "rgb" / "thumb.jpg").write_bytes(b"x")
  with pytest.raises(FileExistsError, match="thumb.jpg"):
    write_clip(clip, folder, overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_overwrite_refuses_a_clip_folder_it_did_not_write(clip, tmp_path):
  folder = write_clip(clip, tmp_path / "c")
  meta = json.loads((folder / "meta.json").read_text())
  del meta["written_by"]  # As a user's own annotated clip in this layout would be.
  (folder / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(FileExistsError, match="not written by write_clip"):
    write_clip(clip, folder, overwrite=True)
  assert (folder / "rgb" / "00000.png").exists() and read_clip(folder).num_frames == clip.num_frames


def _write_json(path, value):
  path.write_text(json.dumps(value))


def _hand_written(folder, *, num_frames=2, height=4, width=5, convention="opengl"):
  """A small clip in the layout, written without write_clip: 2 persons, N = 3, OpenGL cameras."""
  rng = np.random.default_rng(0)
  for kind in ("rgb", "mask", "depth", "normal"):
    (folder / kind).mkdir(parents=True)
  rgb = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
  masks = rng.integers(0, 4, (num_frames, height, width), dtype=np.uint8)
  depth_mm = rng.integers(500, 9000, (num_frames, height, width), dtype=np.uint16)
  normal_v = np.zeros((num_frames, height, width, 3), np.uint8)
  normal_v[..., 2] = 0  # n = (0, 0, -1) up to 8-bit rounding: facing the camera
  normal_v[..., :2] = 128
  for f in range(num_frames):
    iio.imwrite(folder / "rgb" / f"{f:05d}.png", rgb[f])
    iio.imwrite(folder / "mask" / f"{f:05d}.png", masks[f])
    iio.imwrite(folder / "depth" / f"{f:05d}.png", depth_mm[f])
    iio.imwrite(folder / "normal" / f"{f:05d}.png", normal_v[f])
  _write_json(folder / "meta.json", {"num_identities": 3, "fps": 8, "keypoint_layout": "openpose18"})
  poses = rng.uniform(0, 4, (num_frames, 2, NUM_KEYPOINTS, 3)).round(3)
  poses[..., 2] = 1.0
  _write_json(folder / "poses.json", {"frames": poses.tolist()})
  c2w = np.tile(np.eye(4), (num_frames, 1, 1))
  c2w[:, :3, 3] = [[0.0, 1.0, 2.0], [0.5, 1.0, 2.0]][:num_frames]
  _write_json(folder / "cameras.json", {"intrinsics": [[4.0, 0, 2.5], [0, 4.0, 2.0], [0, 0, 1]],
                                        "cam_to_world": c2w.tolist(), "convention": convention})
  return rgb, masks, depth_mm, poses, c2w


def test_hand_written_layout_reads_with_opengl_cameras_converted(tmp_path):
  rgb, masks, depth_mm, poses, c2w_gl = _hand_written(tmp_path / "hand")
  clip = read_clip(tmp_path / "hand")
  np.testing.assert_allclose(clip.rgb_fhwc, rgb / 255.0, atol=1e-6)
  np.testing.assert_array_equal(clip.reference_hwc, clip.rgb_fhwc[0])  # no reference.png: frame 0
  np.testing.assert_array_equal(clip.masks_fhw, masks)
  np.testing.assert_allclose(clip.depth_fhw, depth_mm / 1000.0, rtol=1e-6)
  np.testing.assert_allclose(clip.normal_fhwc, np.broadcast_to([0.0, 0.0, -1.0], clip.normal_fhwc.shape), atol=1e-2)
  np.testing.assert_allclose(np.linalg.norm(clip.normal_fhwc, axis=-1), 1.0, atol=1e-6)  # renormalized
  np.testing.assert_allclose(clip.poses_fpk3, poses, atol=1e-6)
  assert clip.intrinsics_f33.shape == (2, 3, 3)
  # An OpenGL camera looks along its -z: a point there is in front of the converted OpenCV camera
  # (camera z > 0) and a point along its +y is up in the image (camera y < 0).
  ahead, above = c2w_gl[0] @ [0.0, 0.0, -3.0, 1.0], c2w_gl[0] @ [0.0, 1.0, -3.0, 1.0]
  w2c = np.linalg.inv(clip.cam_to_world_f44[0])
  assert (w2c @ ahead)[2] == pytest.approx(3.0) and (w2c @ above)[1] == pytest.approx(-1.0)
  np.testing.assert_array_equal(clip.cam_to_world_f44[:, :3, 3], c2w_gl[:, :3, 3])


def test_list_clips_finds_clip_folders_only(clip, tmp_path):
  write_clip(clip, tmp_path / "b")
  write_clip(clip, tmp_path / "nested" / "a")
  (tmp_path / "empty").mkdir()
  shutil.copytree(tmp_path / "b", tmp_path / ".b.123.tmp")
  assert list_clips(tmp_path) == [tmp_path / "b", tmp_path / "nested" / "a"]


def _replace_json(path, key, value):
  data = json.loads(path.read_text())
  data[key] = value
  path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, message", [
    (lambda d: _replace_json(d / "poses.json", "frames", json.loads((d / "poses.json").read_text())["frames"][:1]),
     "poses.json holds 1 frames but rgb/ holds 2"),
    (lambda d: iio.imwrite(d / "mask" / "00001.png", np.full((4, 5), 7, np.uint8)), r"00001.png holds label 7"),
    (lambda d: iio.imwrite(d / "reference.png", np.zeros((6, 5, 3), np.uint8)), r"reference.png is 5x6"),
    (lambda d: (d / "rgb" / "00000.png").unlink(), r"rgb/00000.png is missing"),
    (lambda d: (d / "mask" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage"), r"mask/00001.png is unreadable"),
    (lambda d: iio.imwrite(d / "rgb" / "00001.png", np.zeros((4, 6, 3), np.uint8)), r"rgb/00001.png is 6x4"),
    (lambda d: (d / "meta.json").unlink(), r"meta.json is missing"),
    (lambda d: _replace_json(d / "cameras.json", "cam_to_world", [np.eye(4).tolist()]),
     "cam_to_world holds 1 frames but rgb/ holds 2"),
    (lambda d: _replace_json(d / "cameras.json", "convention", "blender"), "convention"),
    (lambda d: iio.imwrite(d / "depth" / "00000.png", np.zeros((4, 5), np.uint16)), r"depth/00000.png: depth must be"),
    (lambda d: iio.imwrite(d / "normal" / "00000.png", np.full((4, 5, 3), 128, np.uint8)), r"normal/00000.png"),
])
def test_damaged_layouts_raise_naming_the_file(tmp_path, damage, message):
  _hand_written(tmp_path / "clip")
  damage(tmp_path / "clip")
  with pytest.raises(ClipError, match=message):
    read_clip(tmp_path / "clip")
