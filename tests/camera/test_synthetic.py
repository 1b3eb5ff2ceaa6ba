"""Tests for `jaxlab.camera.synthetic`: determinism, motion classes of the generated paths, captions,
rendered first frame (RGB and depth), splits."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxlab.camera import datadop, motion_tags
from jaxlab.camera import motion_classes as mc
from jaxlab.camera import synthetic as syn

SEEDS = range(40)
FPS = 30.0
# Camera-frame rotation axis and sign of each rotation class (OpenCV: x right, y down, z forward).
ROTATION_AXIS_SIGN = {"pan_left": (1, -1), "pan_right": (1, 1), "tilt_up": (0, 1), "tilt_down": (0, -1),
                      "roll_cw": (2, 1), "roll_ccw": (2, -1)}


@pytest.fixture(scope="module")
def plans():
  return [syn.plan_shot(seed) for seed in SEEDS]


def _steps(c2w_n44):
  """Camera-frame translation velocity (units/s) and rotation vector (rad/frame) of each step."""
  rel = np.linalg.inv(c2w_n44[:-1]) @ c2w_n44[1:]
  return FPS * rel[:, :3, 3], Rotation.from_matrix(rel[:, :3, :3]).as_rotvec()


def _translation_signs(vel_3):
  """Sign per axis, an axis counting when above 0.02 units/s and within 60% of the fastest."""
  speed = np.abs(vel_3)
  moving = (speed > 0.02) & (speed >= 0.6 * speed.max())
  return tuple(int(s) for s in np.sign(vel_3) * moving)


def _rotation_name(rotvec_3):
  if np.abs(rotvec_3).max() <= 0.005:
    return "static"
  axis = int(np.argmax(np.abs(rotvec_3)))
  return {v: k for k, v in ROTATION_AXIS_SIGN.items()}[(axis, int(np.sign(rotvec_3[axis])))]


def test_plan_and_shot_are_deterministic_and_seeds_differ():
  a, b, c = syn.plan_shot(11), syn.plan_shot(11), syn.plan_shot(12)
  np.testing.assert_array_equal(a.c2w_n44, b.c2w_n44)
  assert (a.meta, a.motion_caption, a.directorial_caption, a.concise_caption) == \
         (b.meta, b.motion_caption, b.directorial_caption, b.concise_caption)
  assert not np.allclose(a.c2w_n44, c.c2w_n44) and a.meta != c.meta
  shot = syn.make_shot(11, render=False)
  assert shot.name == a.meta.name and shot.rgb_hw3 is None and shot.depth_hw is None
  np.testing.assert_array_equal(shot.c2w_n44, a.c2w_n44)
  assert shot.fl_x == shot.fl_y > 0 and shot.cx == shot.cy == 32.0 and shot.width == shot.height == 64


def test_segments_cover_the_shot_and_poses_are_rigid(plans):
  counts = set()
  for plan in plans:
    c2w = plan.c2w_n44
    assert c2w.shape == (syn.NUM_FRAMES, 4, 4) and c2w.dtype == np.float64
    rot = c2w[:, :3, :3]
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    np.testing.assert_allclose(c2w[:, 3], np.broadcast_to([0, 0, 0, 1], (syn.NUM_FRAMES, 4)))
    segments = plan.meta.segments
    counts.add(len(segments))
    assert segments[0].start == 0 and segments[-1].stop == syn.NUM_STEPS
    assert all(s.stop - s.start >= syn.MIN_SEGMENT_STEPS for s in segments)
    assert all(x.stop == y.start and x.kind != y.kind for x, y in itertools.pairwise(segments))
    assert any(s.kind != "static" for s in segments)
  assert counts == {1, 2, 3}


def test_camera_frame_velocity_has_the_named_classes(plans):
  """Own check: in most steps of each segment, the camera-frame velocity has the sign pattern of
  the segment's translation class and the dominant rotation is its rotation class."""
  kinds_seen = set()
  for plan in plans:
    vel, rotvec = _steps(plan.c2w_n44)
    for seg in plan.meta.segments:
      kinds_seen.add(seg.kind)
      want_t = mc.TRANSLATION_SIGNS[seg.translation]
      want_r = mc.ROTATIONS[seg.rotation]
      steps = range(seg.start, seg.stop)
      t_ok = np.mean([_translation_signs(vel[k]) == want_t for k in steps])
      r_ok = np.mean([_rotation_name(rotvec[k]) == want_r for k in steps])
      assert t_ok >= 0.8 and r_ok >= 0.8, (plan.meta.name, seg, t_ok, r_ok)
  assert {"dolly_in", "dolly_out", "pan_left", "pan_right"} <= kinds_seen
  assert any(k.startswith("orbit") for k in kinds_seen)


def test_moves_go_the_named_way_in_the_world(plans):
  """Axis conventions checked in world terms, independent of the class tables (world z is up)."""
  checked = 0
  for plan in plans:
    c2w = plan.c2w_n44
    for seg in plan.meta.segments:
      a, b = c2w[seg.start + 5], c2w[seg.stop - 5]  # away from the cross-fades
      if abs(a[2, 0]) > 0.2:  # rolled camera: "up" and "right" stop being world-aligned
        continue
      move = b[:3, 3] - a[:3, 3]
      signs = mc.TRANSLATION_SIGNS[seg.translation]
      rotation = mc.ROTATIONS[seg.rotation]
      if rotation == "static":
        for axis, sign in enumerate(signs):
          if sign:  # x right, y down, z forward of the (unrotated) camera
            assert sign * move @ a[:3, axis] > 0.2 * np.linalg.norm(move), (plan.meta.name, seg)
      elif rotation in ("pan_left", "pan_right"):
        turn = np.cross(a[:3, 2], b[:3, 2])[2]  # > 0: the view turned counter-clockwise seen from above
        assert (turn > 0) == (rotation == "pan_left"), (plan.meta.name, seg)
      elif rotation in ("tilt_up", "tilt_down") and not any(signs):
        assert (b[2, 2] > a[2, 2]) == (rotation == "tilt_up"), (plan.meta.name, seg)  # forward's world z
      checked += 1
  assert checked > 40


@pytest.mark.parametrize("normalized", [False, True])
def test_motion_tags_agree_with_segments(plans, normalized):
  """The metric's segmentation (with its smoothing) labels most steps with the planned classes,
  also at the tokenizer's normalized scale (relative to frame 0, max translation 1)."""
  agree = total = 0
  for plan in plans:
    c2w = plan.c2w_n44
    if normalized:
      c2w = np.linalg.inv(c2w[0]) @ c2w
      c2w[:, :3, 3] /= np.linalg.norm(c2w[:, :3, 3], axis=1).max() + 1e-5
    labels = motion_tags.segment(c2w)
    want = np.concatenate([np.full(s.stop - s.start, mc.class_index(s.translation, s.rotation))
                           for s in plan.meta.segments])
    assert np.mean(labels == want) >= 0.7, (plan.meta.name, [mc.class_name(x) for x in np.unique(labels)])
    agree += int(np.sum(labels == want))
    total += len(want)
  assert agree / total >= 0.9


def _forms(verb, direction):
  return [f"{verb} {direction}", f"{syn._GERUNDS[verb]} {direction}"]


def _translation_forms(signs):
  """Every phrasing of a translation class (one or two axes) the caption may use."""
  parts = [syn.TRANSLATION_PHRASES[f"{mc.AXIS_VERBS[a]}_{mc.AXIS_WORDS[a][(s + 1) // 2]}"]
           for a, s in enumerate(signs) if s]
  if len(parts) == 1:
    return [f for v, d in parts[0] for f in _forms(v, d)]
  forms = []
  for v1, d1 in parts[0]:
    for v2, d2 in parts[1]:
      second = d2 if v1 == v2 else f"{v2} {d2}"
      forms += _forms(v1, f"{d1} and {second}")
  return forms


def _find_after(text, forms, start):
  hits = [m.start() for f in forms for m in re.finditer(r"\b" + re.escape(f) + r"\b", text) if m.start() >= start]
  return min(hits) if hits else None


def test_motion_caption_names_the_segments_in_order(plans):
  for plan in plans:
    text = plan.motion_caption
    position = 0
    present = set()
    for seg in plan.meta.segments:
      signs = mc.TRANSLATION_SIGNS[seg.translation]
      rotation = mc.ROTATIONS[seg.rotation]
      present.add(rotation)
      present.update(f"{mc.AXIS_VERBS[a]}_{mc.AXIS_WORDS[a][(s + 1) // 2]}" for a, s in enumerate(signs) if s)
      found = []
      if any(signs):
        found.append(_find_after(text, _translation_forms(signs), position))
      if rotation != "static":
        found.append(_find_after(text, [f for v, d in syn.ROTATION_PHRASES[rotation] for f in _forms(v, d)], position))
      if not any(signs) and rotation == "static":
        found.append(_find_after(text, list(syn.STATIC_PHRASES), position))
      assert None not in found, (text, seg)
      position = min(found)
    # No phrase of a class the shot does not have.
    for name, options in {**syn.TRANSLATION_PHRASES, **syn.ROTATION_PHRASES}.items():
      if name not in present:
        assert _find_after(text, [f for v, d in options for f in _forms(v, d)], 0) is None, (text, name)
    for caption in (plan.motion_caption, plan.directorial_caption, plan.concise_caption):
      assert len(caption.split()) < 77, caption


def test_directorial_captions_describe_the_scene_and_intent(plans):
  intent_words = {"approach": ("approaches", "pushes in", "closes in"), "orbit": ("circles", "arcs"),
                  "withdraw": ("pulls away", "draws back", "backs away"), "sweep": ("sweeps", "turns")}
  for plan in plans:
    content = syn.scene_content(int(plan.meta.scene[1:]))
    names = {o.name: o.description for o in content.objects}
    first = plan.meta.segments[0].subject_start
    assert first in names  # the shot opens on an object
    assert names[first] in plan.directorial_caption and first in plan.concise_caption
    for seg in plan.meta.segments:
      if seg.subject_end is not None:
        assert seg.subject_end in plan.directorial_caption or names[seg.subject_end] in plan.directorial_caption
      words = intent_words.get(syn.KINDS[seg.kind].intent)
      if words:
        assert any(w in plan.directorial_caption for w in words), (plan.directorial_caption, seg.kind)


def test_splits_hold_out_scenes_and_templates():
  train = [syn.plan_shot(s, split="train").meta for s in range(60)]
  test = [syn.plan_shot(s, split="test").meta for s in range(30)]
  for field in ("scene", "motion_template", "directorial_template"):
    train_values, test_values = {getattr(m, field) for m in train}, {getattr(m, field) for m in test}
    assert train_values and test_values and not train_values & test_values, field
  assert len({m.scene for m in train}) >= 8 and len({m.scene for m in test}) >= 3
  assert all(syn.split_of(m) == "train" and syn.split_of(m.name) == "train" for m in train)
  assert all(syn.split_of(m) == "test" for m in test)
  mixed = train[0].name.replace(f"_m{train[0].motion_template}_", f"_m{min(syn.TEST_MOTION_TEMPLATES)}_")
  with pytest.raises(ValueError, match="mixes held-out and training"):
    syn.split_of(mixed)
  shots = syn.make_shots(3, 5, split="test", render=False)
  assert len({s.name for s in shots}) == 3 and all(syn.split_of(s) == "test" for s in shots)
  assert syn.plan_shot(0, scene=4).meta.scene == "s004" and syn.split_of(syn.plan_shot(0, scene=4).meta) == "test"


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="seed"):
    syn.plan_shot(-1)
  with pytest.raises(ValueError, match="split"):
    syn.plan_shot(0, split="val")
  with pytest.raises(ValueError, match="belongs to the test split"):
    syn.plan_shot(0, scene=4, split="train")
  with pytest.raises(ValueError, match="image_size"):
    syn.make_shot(0, image_size=8)
  with pytest.raises(ValueError, match="not a synthetic shot name"):
    syn.split_of("0_abc_00001")


def test_rendered_first_frame_rgb_and_depth(tmp_path):
  from jaxlab.splat import synthetic as scene_lib

  shot = syn.make_shot(3)
  again = syn.make_shot(3)
  np.testing.assert_array_equal(shot.rgb_hw3, again.rgb_hw3)
  np.testing.assert_array_equal(shot.depth_hw, again.depth_hw)
  assert shot.rgb_hw3.shape == (64, 64, 3) and shot.rgb_hw3.dtype == np.uint8
  assert shot.depth_hw.shape == (64, 64) and shot.depth_hw.dtype == np.float32
  hit = shot.depth_hw > 0
  assert 0.3 < hit.mean() < 1.0  # the camera looks at the scene, with some sky
  # Depth is positive wherever something (not the sky colour) is rendered.
  sky = np.round(np.asarray(syn.BACKGROUND_RGB) * 255)
  drawn = np.abs(shot.rgb_hw3.astype(float) - sky).max(axis=-1) > 40
  assert np.all(hit[drawn])
  # Against the exact ray-cast depth of the same view (OpenGL pose for the scene's renderer).
  scene_id = int(syn.plan_shot(3).meta.scene[1:])
  _, exact = scene_lib.render_view(scene_lib.build_scene(scene_id), syn._textures(),
                                   shot.c2w_n44[0] @ np.diag([1.0, -1.0, -1.0, 1.0]), width=64, height=64,
                                   camera_angle_x=2 * np.arctan(32.0 / shot.fl_x))
  both = hit & (exact > 0)
  assert both.mean() > 0.25
  assert np.median(np.abs(shot.depth_hw[both] - exact[both])) < 0.15
  # The shot writes and reads back in the DataDoP layout.
  datadop.write_shot(tmp_path, shot)
  back = datadop.read_shot(tmp_path, shot.name)
  np.testing.assert_allclose(back.c2w_n44, shot.c2w_n44, atol=1e-9)
  np.testing.assert_array_equal(back.rgb_hw3, shot.rgb_hw3)
  assert back.motion_caption == shot.motion_caption and back.directorial_caption == shot.directorial_caption
