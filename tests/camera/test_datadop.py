"""Tests for `jaxlab.camera.datadop`: the per-shot layout, OpenGL -> OpenCV axes, errors naming files."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from jaxlab import files
from jaxlab.camera import datadop, motion_classes
from jaxlab.camera.trajectory import TrajectoryError


def _axis_angle(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _shot(name, seed, n=120):
  rng = np.random.default_rng(seed)
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, :3] = np.stack([_axis_angle([0.1, 1, 0.3], 0.01 * i + seed) for i in range(n)])
  c2w[:, :3, 3] = np.cumsum(0.05 * rng.normal(size=(n, 3)), axis=0)
  return datadop.Shot(
      name=name, c2w_n44=c2w, fl_x=400.5, fl_y=401.0, cx=256.0, cy=144.0, width=512, height=288,
      motion_caption=f"The camera trucks left ({name}).", directorial_caption="Detailed text.",
      concise_caption="Concise text.", rgb_hw3=rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
      depth_hw=rng.uniform(0.5, 4, (6, 8)).astype(np.float32))


def _write_two(root):
  a, b = _shot("0_abc_00001", 1), _shot("shot_7", 2)
  datadop.write_shot(os.path.join(root, "0_abc", "scene"), a)
  datadop.write_shot(os.path.join(root, "1_xyz"), b)
  return a, b


def test_write_find_read_round_trip(tmp_path):
  a, b = _write_two(str(tmp_path))
  found = datadop.find_shots(tmp_path)
  assert found == sorted([(os.path.join(str(tmp_path), "0_abc", "scene"), "0_abc_00001"),
                          (os.path.join(str(tmp_path), "1_xyz"), "shot_7")])
  assert sorted(os.listdir(found[0][0])) == sorted(
      f"0_abc_00001{s}" for s in ("_transforms_cleaning.json", "_caption.json", "_rgb.png", "_depth.npy"))
  for (folder, name), want in zip(found, (a, b)):
    got = datadop.read_shot(folder, name)
    assert got.name == want.name
    np.testing.assert_allclose(got.c2w_n44, want.c2w_n44, atol=1e-12)
    for field in ("fl_x", "fl_y", "cx", "cy", "width", "height", "motion_caption", "directorial_caption",
                  "concise_caption"):
      assert getattr(got, field) == getattr(want, field), field
    np.testing.assert_array_equal(got.rgb_hw3, want.rgb_hw3)
    assert got.rgb_hw3.dtype == np.uint8 and got.depth_hw.dtype == np.float32
    np.testing.assert_array_equal(got.depth_hw, want.depth_hw)
  # The caption file uses DataDoP's keys.
  caption = files.read_json_object(os.path.join(found[0][0], "0_abc_00001_caption.json"))
  assert caption == {"Movement": a.motion_caption, "Detailed Interaction": a.directorial_caption,
                     "Concise Interaction": a.concise_caption}
  shots = datadop.read_datadop(tmp_path, clean_to=60)
  assert [s.name for s in shots] == ["0_abc_00001", "shot_7"]
  assert all(s.c2w_n44.shape == (60, 4, 4) for s in shots)
  np.testing.assert_allclose(shots[0].c2w_n44[0, :3, :3], a.c2w_n44[0, :3, :3], atol=1e-12)


def test_shots_without_images(tmp_path):
  shot = dataclasses.replace(_shot("s", 3), rgb_hw3=None, depth_hw=None)
  datadop.write_shot(tmp_path, shot)
  got = datadop.read_shot(tmp_path, "s")
  assert got.rgb_hw3 is None and got.depth_hw is None
  with pytest.raises(FileNotFoundError, match="s_rgb.png"):
    datadop.read_shot(tmp_path, "s", require_rgbd=True)


def test_file_axes_are_opengl_and_a_forward_move_is_a_dolly_in(tmp_path):
  # In the file (OpenGL camera axes) the camera looks along -z of its frame; move it that way.
  r_gl = _axis_angle([0.4, 1.0, -0.3], 1.1)
  forward_world = -r_gl[:, 2]
  frames = []
  for i in range(120):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r_gl, [1.0, 2.0, 3.0] + 0.1 * i * forward_world
    frames.append({"transform_matrix": m.tolist(), "monst3r_im_id": i + 1})
  transforms = {"w": 512, "h": 208, "fl_x": 642.3, "fl_y": 642.3, "cx": 256.0, "cy": 104.0, "frames": frames}
  files.write_json(tmp_path / "d_transforms_cleaning.json", transforms)
  files.write_json(tmp_path / "d_caption.json", {"Movement": "The camera dollies in.",
                                                 "Detailed Interaction": "x", "Concise Interaction": "y"})
  shot = datadop.read_shot(tmp_path, "d")
  c2w = shot.c2w_n44
  np.testing.assert_allclose(c2w[:, :3, :3], np.broadcast_to(r_gl @ np.diag([1.0, -1, -1]), (120, 3, 3)), atol=1e-12)
  step_cam = c2w[0, :3, :3].T @ (c2w[1, :3, 3] - c2w[0, :3, 3])  # displacement in OpenCV camera axes
  np.testing.assert_allclose(step_cam, [0, 0, 0.1], atol=1e-12)  # +z: forward
  signs = tuple(int(s) for s in np.sign(np.round(step_cam, 9)))
  assert motion_classes.translation_name(motion_classes.translation_index(signs)) == "dolly_in"
  # Writing converts back: the file's matrices come out as they went in.
  datadop.write_shot(tmp_path / "out", shot)
  written = files.read_json_object(tmp_path / "out" / "d_transforms_cleaning.json")
  np.testing.assert_allclose([f["transform_matrix"] for f in written["frames"]],
                             [f["transform_matrix"] for f in frames], atol=1e-12)
  assert {k: written[k] for k in ("w", "h", "fl_x", "fl_y", "cx", "cy")} == \
      {k: transforms[k] for k in ("w", "h", "fl_x", "fl_y", "cx", "cy")}


def test_missing_files_are_named(tmp_path):
  datadop.write_shot(tmp_path, _shot("m", 4))
  os.remove(tmp_path / "m_caption.json")
  with pytest.raises(FileNotFoundError, match=r"m_caption\.json"):
    datadop.read_shot(tmp_path, "m")
  with pytest.raises(FileNotFoundError, match=r"nope_transforms_cleaning\.json"):
    datadop.read_shot(tmp_path, "nope")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no .*_transforms_cleaning.json"):
    datadop.read_datadop(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="not a directory"):
    datadop.find_shots(tmp_path / "absent")


def test_malformed_files_are_named(tmp_path):
  datadop.write_shot(tmp_path, _shot("c", 5))
  caption_path = str(tmp_path / "c_caption.json")
  files.write_text(caption_path, '{"Movement": "The camera pans", "Detailed Interaction": }')
  with pytest.raises(files.JSONFileError, match=r"c_caption\.json is not valid JSON.*line 1"):
    datadop.read_shot(tmp_path, "c")
  files.write_json(caption_path, {"Movement": "m", "Concise Interaction": "c"})
  with pytest.raises(ValueError, match=r"c_caption\.json: missing caption key 'Detailed Interaction'"):
    datadop.read_shot(tmp_path, "c")
  files.write_json(caption_path, {"Movement": "m", "Detailed Interaction": "d", "Concise Interaction": "c"})

  transforms_path = tmp_path / "c_transforms_cleaning.json"
  good = json.loads(transforms_path.read_text())
  nan = json.loads(transforms_path.read_text())
  nan["frames"][5]["transform_matrix"][0][3] = "NaN"  # not a number at all
  files.write_text(transforms_path, json.dumps(nan))
  with pytest.raises(TrajectoryError, match=r"c_transforms_cleaning\.json: frame 5: 'transform_matrix' must be"):
    datadop.read_shot(tmp_path, "c")
  files.write_text(transforms_path, json.dumps(dict(good, fl_y=float("nan"))))  # json writes and reads NaN
  with pytest.raises(TrajectoryError, match=r"c_transforms_cleaning\.json: 'fl_y' must be a positive"):
    datadop.read_shot(tmp_path, "c")
  mirrored = json.loads(json.dumps(good))
  for row in mirrored["frames"][9]["transform_matrix"][:3]:
    row[0] = -row[0]
  files.write_text(transforms_path, json.dumps(mirrored))
  with pytest.raises(TrajectoryError, match=r"c_transforms_cleaning\.json: frame 9: rotation has determinant"):
    datadop.read_shot(tmp_path, "c")
  nan_pos = json.loads(json.dumps(good))
  nan_pos["frames"][3]["transform_matrix"][1][3] = float("nan")
  files.write_text(transforms_path, json.dumps(nan_pos))  # json.dumps writes NaN
  with pytest.raises(TrajectoryError, match=r"c_transforms_cleaning\.json: frame 3 holds NaN"):
    datadop.read_shot(tmp_path, "c")
  del good["frames"][2]["transform_matrix"]
  files.write_text(transforms_path, json.dumps(good))
  with pytest.raises(TrajectoryError, match="frame 2 has no 'transform_matrix'"):
    datadop.read_shot(tmp_path, "c")
