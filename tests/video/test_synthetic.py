"""Tests for the synthetic clip generator (`jaxlab.video.synthetic`), its figures and its ray caster.

The checks recompute what the generator promises from its outputs: world points come from each
pixel's depth with the clip's intrinsics and camera (helpers below), body surfaces from the figures'
capsule descriptions, occlusion from rendering each figure alone.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from jaxlab.video import figures as figs
from jaxlab.video import raycast, synthetic
from jaxlab.video.clip import KEYPOINT_NAMES

SEEDS = tuple(range(10))
UP_3 = np.array([0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def plans():
  return {seed: synthetic.plan_clip(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def clips(plans):
  return {seed: synthetic.render_plan(plan) for seed, plan in plans.items()}


def _unproject(clip, f):
  """World points [H, W, 3] of every pixel centre at its depth."""
  k, pose = clip.intrinsics_f33[f].astype(np.float64), clip.cam_to_world_f44[f].astype(np.float64)
  v, u = np.mgrid[0:clip.height, 0:clip.width] + 0.5
  rays_hw3 = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(k).T  # camera z = 1
  cam_hw3 = rays_hw3 * clip.depth_fhw[f, ..., None]
  return cam_hw3 @ pose[:3, :3].T + pose[:3, 3]


def _world_normals(clip, f):
  return clip.normal_fhwc[f].astype(np.float64) @ clip.cam_to_world_f44[f, :3, :3].astype(np.float64).T


def _signed_distance(points_n3, parts):
  """Signed distance [N] of points to the union of capsules (negative inside)."""
  best = np.full(len(points_n3), np.inf)
  for part in parts:
    ab = part.b_3 - part.a_3
    s = np.clip((points_n3 - part.a_3) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(points_n3 - part.a_3 - s[:, None] * ab, axis=1) - part.radius
    best = np.minimum(best, dist)
  return best


def _alone_renders(plan, f):
  """Depth and ids [P, H, W] of each figure rendered alone in front of the backdrop."""
  out = [raycast.render_frame(raycast.scene_at([fig], plan.times_f[f], plan.backdrop), plan.intrinsics_f33[f],
                              plan.cam_to_world_f44[f], plan.height, plan.width) for fig in plan.figures]
  return np.stack([o["depth_hw"] for o in out]), np.stack([o["ids_hw"] for o in out])


def test_same_seed_same_clip_other_seed_other_clip():
  a, b, c = synthetic.generate_clip(7), synthetic.generate_clip(7), synthetic.generate_clip(8)
  for field in ("rgb_fhwc", "depth_fhw", "normal_fhwc", "masks_fhw", "poses_fpk3", "cam_to_world_f44",
                "intrinsics_f33", "reference_hwc"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
  assert not np.array_equal(a.rgb_fhwc, c.rgb_fhwc)


def test_shapes_counts_and_reference(clips):
  for clip in clips.values():
    assert clip.rgb_fhwc.shape == (8, 32, 32, 3) and clip.num_identities == 5
    assert 2 <= clip.num_persons <= 5
    assert set(np.unique(clip.masks_fhw)) <= set(range(clip.num_persons + 1))
    np.testing.assert_array_equal(clip.reference_hwc, clip.rgb_fhwc[0])
  assert len({clip.num_persons for clip in clips.values()}) >= 3  # the count is drawn per seed
  small = synthetic.generate_clip(0, num_frames=4, height=16, width=24, num_people=3, num_identities=4)
  assert small.rgb_fhwc.shape == (4, 16, 24, 3) and small.num_persons == 3 and small.num_identities == 4
  with pytest.raises(ValueError, match="num_people"):
    synthetic.generate_clip(0, num_people=(2, 6), num_identities=5)


def test_depth_lands_on_the_geometry(plans, clips):
  for seed in SEEDS[:4]:
    plan, clip = plans[seed], clips[seed]
    for f in (0, 7):
      points, normals, ids = _unproject(clip, f), _world_normals(clip, f), clip.masks_fhw[f]
      ground = (ids == 0) & (normals @ UP_3 > 0.999)
      wall = (ids == 0) & (normals[..., 2] < -0.999)
      assert ground.any() and wall.any()
      np.testing.assert_array_equal(ground | wall, ids == 0)  # the backdrop is the ground and the wall only
      np.testing.assert_allclose(points[ground][:, 1], 0.0, atol=2e-3)
      np.testing.assert_allclose(points[wall][:, 2], plan.backdrop.wall_z, atol=2e-3)
      for fig in plan.figures:
        on_fig = ids == fig.identity
        if on_fig.any():
          sdf = _signed_distance(points[on_fig], figs.figure_capsules(fig, plan.times_f[f]))
          np.testing.assert_allclose(sdf, 0.0, atol=2e-3)


def test_normals_agree_with_the_depth(clips):
  for seed in SEEDS[:4]:
    clip = clips[seed]
    for f in (0, 5):
      points, normals, ids = _unproject(clip, f), _world_normals(clip, f), clip.masks_fhw[f]
      cam_centre = clip.cam_to_world_f44[f, :3, 3]
      ground = (ids == 0) & (normals @ UP_3 > 0.99)
      # Finite-difference normals of the unprojected points where a pixel and its right and lower
      # neighbours are all ground.
      block = ground[:-1, :-1] & ground[1:, :-1] & ground[:-1, 1:]
      dx = points[:-1, 1:] - points[:-1, :-1]
      dy = points[1:, :-1] - points[:-1, :-1]
      fd = np.cross(dx, dy)[block]
      fd /= np.linalg.norm(fd, axis=1, keepdims=True)
      fd *= -np.sign(((points[:-1, :-1][block] - cam_centre) * fd).sum(axis=1, keepdims=True))
      assert block.sum() > 50
      np.testing.assert_allclose(fd, normals[:-1, :-1][block], atol=2e-3)
      # The rendered ground normal is world up seen from the camera, and every normal faces the camera.
      up_cam = clip.cam_to_world_f44[f, :3, :3].T @ UP_3
      np.testing.assert_allclose(clip.normal_fhwc[f][ground], np.broadcast_to(up_cam, (ground.sum(), 3)), atol=1e-5)
      view = points - cam_centre
      assert ((normals * view).sum(axis=-1) < 1e-6).all()


def test_masks_and_depth_are_the_nearest_figure(plans, clips):
  """Compositing: each pixel shows the figure nearest along its ray, and the full depth is the
  minimum of the per-figure depths."""
  occluded_seeds = 0
  for seed in SEEDS:
    plan, clip = plans[seed], clips[seed]
    occluded = False
    for f in (0, 3, 6):
      depth_phw, ids_phw = _alone_renders(plan, f)
      np.testing.assert_allclose(clip.depth_fhw[f], depth_phw.min(axis=0), rtol=1e-6)
      covered = ids_phw > 0
      expected = np.where(covered.any(axis=0), ids_phw.max(axis=0), 0)  # alone renders show one identity each
      nearest = np.argmin(np.where(covered, depth_phw, np.inf), axis=0)
      expected = np.where(covered.any(axis=0), np.take_along_axis(ids_phw, nearest[None], 0)[0], expected)
      np.testing.assert_array_equal(clip.masks_fhw[f], expected)
      occluded |= (covered.sum(axis=0) > 1).sum() >= 3
    occluded_seeds += occluded
  assert occluded_seeds >= 5, f"people overlap (one hides another) in only {occluded_seeds} of {len(SEEDS)} clips"


def _project(points_n3, k, pose):
  cam = (points_n3 - pose[:3, 3]) @ pose[:3, :3]
  return cam[:, :2] / cam[:, 2:] * np.diag(k)[:2] + k[:2, 2], cam[:, 2]


def test_poses_project_the_joints_onto_their_masks(plans, clips):
  on_mask = total = 0
  for seed in SEEDS[:5]:
    plan, clip = plans[seed], clips[seed]
    for f in range(clip.num_frames):
      k, pose = clip.intrinsics_f33[f].astype(np.float64), clip.cam_to_world_f44[f].astype(np.float64)
      for p, fig in enumerate(plan.figures):
        xy, z = _project(figs.figure_joints(fig, plan.times_f[f]).astype(np.float64), k, pose)
        inside = (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < clip.width) & (xy[:, 1] >= 0) & (xy[:, 1] < clip.height)
        np.testing.assert_array_equal(clip.poses_fpk3[f, p, :, 2], inside.astype(np.float32))
        np.testing.assert_allclose(clip.poses_fpk3[f, p, inside, :2], xy[inside], atol=1e-3)
        assert (clip.poses_fpk3[f, p, ~inside] == 0).all()
        for j in np.flatnonzero(inside):
          col, row = int(xy[j, 0]), int(xy[j, 1])
          if z[j] > clip.depth_fhw[f, row, col] + 0.2:  # hidden behind something: no promise
            continue
          total += 1
          window = clip.masks_fhw[f, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
          on_mask += bool((window == fig.identity).any())
  assert total > 200 and on_mask / total > 0.97, (on_mask, total)


def _crossed(masks_fhw, min_pixels=3):
  """Whether the left-right order of two identities' mask centroids flips during the clip."""
  cols = np.arange(masks_fhw.shape[2]) + 0.5
  ids = [n for n in np.unique(masks_fhw) if n > 0]
  centroid = {}
  for n in ids:
    area = (masks_fhw == n).sum(axis=(1, 2))
    cx = ((masks_fhw == n) * cols).sum(axis=(1, 2)) / np.maximum(area, 1)
    centroid[n] = np.where(area >= min_pixels, cx, np.nan)
  for i, a in enumerate(ids):
    for b in ids[i + 1:]:
      diff = centroid[a] - centroid[b]
      diff = diff[np.isfinite(diff) & (np.abs(diff) > 0.5)]
      if (diff > 0).any() and (diff < 0).any():
        return True
  return False


def test_crossings_are_common(clips):
  crossed = sum(_crossed(clip.masks_fhw) for clip in clips.values())
  assert crossed >= 7, f"only {crossed} of {len(clips)} clips have two people swap sides"
  static = np.repeat(clips[0].masks_fhw[:1], 8, axis=0)
  assert not _crossed(static)  # the measure itself can say no


def test_camera_moves_smoothly_and_visibly(clips):
  for clip in clips.values():
    centres_f3 = clip.cam_to_world_f44[:, :3, 3].astype(np.float64)
    axes_f3 = clip.cam_to_world_f44[:, :3, 2].astype(np.float64)
    step_f = np.linalg.norm(np.diff(centres_f3, axis=0), axis=1) + np.linalg.norm(np.diff(axes_f3, axis=0), axis=1)
    assert step_f.min() > 0.01  # every frame moves
    jerk = np.linalg.norm(np.diff(centres_f3, 2, axis=0), axis=1) + np.linalg.norm(np.diff(axes_f3, 2, axis=0), axis=1)
    assert jerk.max() < 0.25 * step_f.max()  # no jumps: steps change slowly
    background = (clip.masks_fhw[0] == 0) & (clip.masks_fhw[-1] == 0)
    change = np.abs(clip.rgb_fhwc[-1] - clip.rgb_fhwc[0])[background].mean()
    assert change > 0.02, "the textured backdrop should change as the camera moves"


def test_identities_look_different(plans, clips):
  for plan in plans.values():
    hues = [colorsys.rgb_to_hsv(*fig.shirt_rgb)[0] for fig in plan.figures]
    for i, a in enumerate(hues):
      for b in hues[i + 1:]:
        assert min(abs(a - b), 1 - abs(a - b)) > 0.15
    assert len({fig.trousers_rgb for fig in plan.figures}) == len(plan.figures)
    assert len({fig.pattern for fig in plan.figures}) == min(len(plan.figures), len(figs.PATTERNS))
  # Rendered mean colours of different identities' regions differ clearly.
  clip = clips[0]
  means = [clip.rgb_fhwc[clip.masks_fhw == n].mean(axis=0) for n in range(1, clip.num_persons + 1)
           if (clip.masks_fhw == n).sum() > 20]
  assert len(means) >= 2
  assert min(np.abs(a - b).max() for i, a in enumerate(means) for b in means[i + 1:]) > 0.05


def _walker(waypoints, **kwargs):
  defaults = {"identity": 1, "shirt_rgb": (0.8, 0.1, 0.1), "trousers_rgb": (0.1, 0.1, 0.4),
              "skin_rgb": (0.9, 0.7, 0.6), "hair_rgb": (0.1, 0.1, 0.1), "pattern": "plain", "height": 1.7,
              "waypoints_k2": waypoints, "speed": 1.0}
  return figs.Figure(**{**defaults, **kwargs})


def test_figure_gait_swings_legs_and_arms_against_each_other():
  fig = _walker([[0.0, 0.0], [20.0, 0.0]])
  cycle = figs.STRIDE_PER_HEIGHT * fig.height  # metres per gait cycle; speed 1 m/s
  j = KEYPOINT_NAMES.index
  quarter = figs.figure_joints(fig, cycle / 4)
  three_quarters = figs.figure_joints(fig, 3 * cycle / 4)
  # Walking along +x: the right ankle leads at one point of the cycle and trails half a cycle later.
  assert quarter[j("right_ankle"), 0] - quarter[j("left_ankle"), 0] > 0.2
  assert three_quarters[j("right_ankle"), 0] - three_quarters[j("left_ankle"), 0] < -0.2
  # Arms swing against the legs.
  assert quarter[j("right_wrist"), 0] < quarter[j("left_wrist"), 0]
  assert three_quarters[j("right_wrist"), 0] > three_quarters[j("left_wrist"), 0]
  for joints in (quarter, three_quarters):
    assert joints[:, 1].min() >= 0.0 and joints[:, 1].max() < fig.height
    assert joints[j("nose"), 1] > joints[j("neck"), 1] > joints[j("right_hip"), 1] > joints[j("right_knee"), 1]


def test_figure_follows_its_path_and_turns():
  fig = _walker([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0]])
  j = KEYPOINT_NAMES.index
  headings = []
  for t in (1.0, 2.0, 3.5):
    joints = figs.figure_joints(fig, t)
    forward = joints[j("nose")] - joints[j("neck")]
    forward[1] = 0.0
    headings.append(forward / np.linalg.norm(forward))
    shoulders = joints[j("right_shoulder")] - joints[j("left_shoulder")]
    assert shoulders @ np.cross(headings[-1], UP_3) > 0.1  # the right shoulder is on the figure's right
  np.testing.assert_allclose(headings[0], [1.0, 0.0, 0.0], atol=0.05)
  np.testing.assert_allclose(headings[2], [0.0, 0.0, 1.0], atol=0.05)
  assert 0.3 < headings[1] @ headings[0] < 0.95  # half-way round the corner
  pelvis = figs.figure_joints(fig, 3.5)[[j("right_hip"), j("left_hip")]].mean(axis=0)
  np.testing.assert_allclose(pelvis[[0, 2]], [2.0, 1.5], atol=0.05)
  # Past the end of the path the figure stands at its last waypoint.
  pelvis = figs.figure_joints(fig, 100.0)[[j("right_hip"), j("left_hip")]].mean(axis=0)
  np.testing.assert_allclose(pelvis[[0, 2]], [2.0, 3.0], atol=0.05)
  with pytest.raises(ValueError, match="pattern"):
    _walker([[0.0, 0.0], [1.0, 0.0]], pattern="tartan")
  with pytest.raises(ValueError, match="waypoints"):
    _walker([[0.0, 0.0], [0.0, 0.0]])


def test_render_frame_refuses_a_camera_behind_the_wall(plans):
  plan = plans[0]
  scene = raycast.scene_at(plan.figures, 0.0, plan.backdrop)
  pose = plan.cam_to_world_f44[0].copy()
  pose[2, 3] = plan.backdrop.wall_z + 1.0
  with pytest.raises(ValueError, match="wall"):
    raycast.render_frame(scene, plan.intrinsics_f33[0], pose, 8, 8)
