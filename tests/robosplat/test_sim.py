"""The pybullet tabletop: determinism, camera conventions, captures, the source demo, closed-loop runs."""

import dataclasses
import math

import numpy as np
import pytest

pybullet = pytest.importorskip("pybullet")

from jaxlab.robosplat.sim import capture, closed_loop  # noqa: E402
from jaxlab.robosplat.sim.cameras import FRONT, SIDE, CameraSpec, default_cameras, orbit_cameras, render  # noqa: E402
from jaxlab.robosplat.keyframes import find_keyframes  # noqa: E402
from jaxlab.robosplat.sim.source_demo import record_source_demo, replay_actions  # noqa: E402
from jaxlab.robosplat.sim.world import INIT_QPOS, OBJECTS, TabletopSpec, World  # noqa: E402
from jaxlab.splat.edit import SphericalJitter  # noqa: E402


@pytest.fixture(scope="module")
def world():
  with World() as w:
    yield w


@pytest.fixture(scope="module")
def demo():
  return record_source_demo()


def _snapshot(w: World):
  return np.concatenate([w.qpos(), w.object_pose().ravel(), *[p.ravel() for p in w.link_states().values()]])


def test_reset_is_deterministic_and_rebuilds_the_scene():
  with World() as a, World() as b:
    for w in (a, b):
      w.reset("lego", (0.5, -0.1, 0.4), INIT_QPOS)
      for _ in range(3):
        w.step(np.concatenate([INIT_QPOS[:7] + 0.05, [0.0]]))
    np.testing.assert_array_equal(_snapshot(a), _snapshot(b))
    np.testing.assert_array_equal(render(a, FRONT).rgb_hw3, render(b, FRONT).rgb_hw3)
    # A second reset of the same world returns to exactly the first state.
    a.reset("lego", (0.5, -0.1, 0.4), INIT_QPOS)
    first = _snapshot(a)
    a.step(np.concatenate([INIT_QPOS[:7] - 0.1, [1.0]]))
    a.reset("lego", (0.5, -0.1, 0.4), INIT_QPOS)
    np.testing.assert_array_equal(first, _snapshot(a))
  assert a.object_name == "lego"


def test_reset_places_the_object_centre_and_rejects_bad_input(world):
  for name in OBJECTS:
    world.reset(name, (0.5, 0.02, 0.7))
    center = world.object_center()
    np.testing.assert_allclose(center[:2], [0.5, 0.02], atol=0.005, err_msg=name)
    assert abs(center[2] - world.object_half_extents[2]) < 0.006, name  # resting on the table (z = 0)
    assert 0.015 < world.object_half_extents[:2].max() < 0.035, name  # graspable: 3-7 cm across
  with pytest.raises(ValueError, match="teapot"):
    world.reset("teapot")
  with pytest.raises(ValueError, match="action_8"):
    world.step(np.zeros(7))
  with pytest.raises(ValueError, match="qpos"):
    world.reset("cube", None, np.zeros(8))


def test_state_action_and_kinematic_gripper(world):
  world.reset("cube")
  np.testing.assert_allclose(world.qpos(), INIT_QPOS)
  target = INIT_QPOS[:7] + np.linspace(-0.1, 0.1, 7)
  state = world.step(np.concatenate([target, [0.0]]))
  np.testing.assert_allclose(state[:7], target, atol=1e-5)
  widths = [state[7]] + [world.step(np.concatenate([target, [0.0]]))[7] for _ in range(3)]
  # Nothing between the fingers: they close fully, over three steps.
  assert widths[0] < 0.08 and widths[2] == pytest.approx(0.0, abs=1e-6) and widths[1] > 0
  assert not world.attached
  state = world.step(np.concatenate([target, [1.0]]))
  assert state[7] > widths[-1]


def test_render_projection_matches_opencv_pinhole(world):
  """A small sphere's pixel centroid lands where the OpenCV pinhole puts its centre."""
  world.reset("cube")
  camera = CameraSpec.looking_at("probe", (1.0, -0.6, 0.5), (0.4, 0.0, 0.05), fov_x=math.radians(50), width=96,
                                 height=72, roll=0.2)
  p, client = world.pybullet, world.client
  visual = p.createVisualShape(p.GEOM_SPHERE, radius=0.012, rgbaColor=[0, 1, 0, 1], physicsClientId=client)
  points = [(0.3, 0.1, 0.15), (0.55, -0.2, 0.05), (0.6, 0.3, 0.25), (0.2, -0.1, 0.3)]
  errors = []
  with world.hidden([world.robot, world.object, world.tray]):
    for point in points:
      sphere = p.createMultiBody(0, -1, visual, basePosition=point, physicsClientId=client)
      big = camera.resized(4 * camera.width, 4 * camera.height)  # a sphere many pixels wide: a precise centroid
      result = render(world, big)
      rows, cols = np.nonzero(result.body_hw == sphere)
      p.removeBody(sphere, physicsClientId=client)
      assert len(rows) > 20, point
      uv, depth = big.project(np.array([point]))
      errors.append(np.abs(np.array([cols.mean() + 0.5, rows.mean() + 0.5]) - uv[0]))  # in the render's pixels
      # Depth is camera-space z: the sphere's front is one radius nearer than its centre.
      assert result.depth_hw[rows, cols].min() == pytest.approx(depth[0] - 0.012, abs=0.004)
  errors = np.array(errors)
  assert errors.max() < 0.3, errors  # well inside 1 px; a half-pixel convention slip fails
  assert errors.mean() < 0.15, errors


def test_default_cameras_see_the_workspace(world):
  world.reset("cube", (0.36, -0.30, 0.0))  # the grid's nearest-left corner
  for camera in default_cameras(64):
    result = render(world, camera)
    assert result.rgb_hw3.shape == (64, 64, 3) and result.rgb_hw3.dtype == np.uint8
    seen = set(np.unique(result.body_hw).tolist())
    assert {world.robot, world.object, world.tray, world.table} <= seen, camera.name
  world.reset("cube", (0.66, 0.10, 0.0))  # the far-right corner
  assert all((render(world, c).body_hw == world.object).any() for c in default_cameras(64))
  assert [c.name for c in default_cameras()] == ["front", "side"]


def test_masks_per_body_and_link(world):
  world.reset("cube")
  captures = capture.capture_views(world, [FRONT, SIDE], oversample=2)
  assert captures[0]["rgb"].shape == (64, 64, 3) and captures[0]["body_full"].shape == (128, 128)
  object_mask = capture.masks_for(captures, world.object)
  assert object_mask.shape == (2, 64, 64) and object_mask.dtype == bool and object_mask.all(axis=(1, 2)).sum() == 0
  assert object_mask.any(axis=(1, 2)).all()
  robot_mask = capture.masks_for(captures, world.robot)
  link_masks = {name: capture.masks_for(captures, world.robot, index) for name, index in world.link_index.items()}
  visible = [name for name, m in link_masks.items() if m.any()]
  assert {"panda_hand", "panda_leftfinger", "panda_link0"} <= set(visible), visible
  assert len(visible) >= 8
  np.testing.assert_array_equal(np.any(list(link_masks.values()), axis=0), robot_mask)  # links tile the robot
  soft = capture.masks_for(captures, world.object, soft=True)
  assert soft.dtype == np.float32 and 0 <= soft.min() and soft.max() <= 1
  assert set(np.unique(soft).tolist()) - {0.0, 1.0}  # partial coverage at the edges
  # Hiding: a background capture holds only the kept bodies, and the scene comes back.
  before = _snapshot(world)
  background = capture.capture_views(world, [FRONT], keep={world.table, world.floor, world.tray})
  assert set(np.unique(background[0]["body"]).tolist()) <= {world.table, world.floor, world.tray, -1}
  np.testing.assert_allclose(before, _snapshot(world), atol=1e-12)


def test_table_texture_and_light_change_the_image(world):
  world.reset("cube")
  plain = render(world, FRONT).rgb_hw3
  world.set_table_texture(closed_loop.table_texture_image("coffee", 64))
  textured = render(world, FRONT).rgb_hw3
  world.reset("cube")  # the texture survives resets
  np.testing.assert_array_equal(render(world, FRONT).rgb_hw3, textured)
  world.set_table_texture(None)
  np.testing.assert_array_equal(render(world, FRONT).rgb_hw3, plain)
  table = render(world, FRONT).body_hw == world.table
  assert np.abs(textured.astype(int) - plain)[table].mean() > 20
  world.set_light((0.0, 0.5, 0.5), (1.0, 0.3, 0.3), 0.3, 0.6)
  tinted = render(world, FRONT).rgb_hw3.astype(int)
  world.set_light()
  assert (tinted[..., 0] - tinted[..., 2]).mean() > (plain[..., 0].astype(int) - plain[..., 2]).mean() + 5


def test_source_demo_succeeds_and_replays(demo):
  t = demo.num_steps
  assert demo.success and 60 <= t <= 100
  assert demo.qpos_t9.shape == (t, 9) and demo.state_t8.shape == (t, 8) and demo.action_t8.shape == (t, 8)
  assert demo.ee_pose_t44.shape == (t, 4, 4) and demo.object_pose_t44.shape == (t, 4, 4)
  np.testing.assert_allclose(demo.qpos_t9[0], INIT_QPOS)
  # Kinematic control: each next state's joints are the previous action's targets.
  np.testing.assert_allclose(demo.state_t8[1:, :7], demo.action_t8[:-1, :7], atol=1e-5)
  close, release, last = demo.keyframes
  assert last == t - 1 and np.all(demo.action_t8[close:release, 7] == 0) and demo.action_t8[release, 7] == 1
  np.testing.assert_array_equal(find_keyframes(demo.action_t8[:, 7]), demo.keyframes)
  # At the grasp the end effector is at the cube's centre; the fingers stop at its 5 cm width.
  start = demo.object_pose_t44[0, :3, 3]
  np.testing.assert_allclose(demo.ee_pose_t44[close, :3, 3], start, atol=0.005)
  np.testing.assert_allclose(demo.ee_pose_t44[close, :3, :3] @ [0, 0, 1], [0, 0, -1], atol=0.01)  # top-down
  assert demo.state_t8[close + 3, 7] == pytest.approx(0.05, abs=1e-3)
  # Carried: the object rises with the hand between the keyframes, then ends in the tray.
  assert demo.object_pose_t44[release - 1, 2, 3] > 0.05
  np.testing.assert_allclose(demo.object_pose_t44[:close + 1, :3, 3], np.broadcast_to(start, (close + 1, 3)), atol=1e-3)
  assert replay_actions(demo.action_t8)
  np.testing.assert_allclose(demo.object_xy_yaw, TabletopSpec().object_xy_yaw)


def test_sampled_variations_respect_their_ranges():
  spec = TabletopSpec()
  poses = closed_loop.sample_variations("object_pose", 40, seed=3)
  xy = np.array([v.object_xy_yaw[:2] for v in poses])
  yaw = np.array([v.object_xy_yaw[2] for v in poses])
  source = np.array(spec.object_xy_yaw[:2])
  assert np.all(xy >= source + [-0.06, -0.22] - 1e-9) and np.all(xy <= source + [0.24, 0.18] + 1e-9)
  assert np.abs(yaw).max() <= math.pi and yaw.std() > 1.0
  nearest = np.abs(closed_loop.grid_xy(spec)[None] - xy[:, None]).max(axis=-1).min(axis=1)
  assert nearest.min() > 0.008  # off the 10x10 generation grid (a quarter spacing)
  assert [v.object_xy_yaw for v in poses] == [v.object_xy_yaw for v in closed_loop.sample_variations(
      "object_pose", 40, seed=3)]

  types = closed_loop.sample_variations("object_type", 5, seed=0)
  assert [v.object_name for v in types[:3]] == [n for n in OBJECTS if n != "cube"] and types[0].object_xy_yaw is None
  assert all(v.object_name != "cube" for v in types)

  for v in closed_loop.sample_variations("camera", 20, seed=1):
    assert [c.name for c in v.cameras] == ["front", "side"] and all(c.eye[2] > 0.05 for c in v.cameras)
  shifts = [[np.linalg.norm(v.cameras[k].eye - base.eye) for k, base in enumerate((FRONT, SIDE))]
            for v in closed_loop.sample_variations("camera", 20, 1)]
  front_shift, side_shift = np.mean(shifts, axis=0)
  assert 0.02 < side_shift < front_shift  # the side camera's ranges are narrower


def test_camera_jitter_moves_one_spherical_coordinate_at_a_time():
  rng = np.random.default_rng(0)
  zero = SphericalJitter()
  target = closed_loop.camera_look_at(FRONT)
  np.testing.assert_allclose(closed_loop.jitter_camera(FRONT, rng, zero).c2w_44, FRONT.c2w_44, atol=1e-5)
  for _ in range(10):
    moved = closed_loop.jitter_camera(FRONT, rng, dataclasses.replace(zero, radius=0.2))
    np.testing.assert_allclose(moved.c2w_44[:3, :3], FRONT.c2w_44[:3, :3], atol=1e-5)  # slid along the view ray
    assert abs(np.linalg.norm(moved.eye - target) - np.linalg.norm(FRONT.eye - target)) <= 0.2
    rolled = closed_loop.jitter_camera(FRONT, rng, dataclasses.replace(zero, roll=math.pi / 6))
    np.testing.assert_allclose(rolled.eye, FRONT.eye, atol=1e-5)
    np.testing.assert_allclose(rolled.c2w_44[:3, 2], FRONT.c2w_44[:3, 2], atol=1e-5)
    assert math.acos(np.clip(rolled.c2w_44[:3, 0] @ FRONT.c2w_44[:3, 0], -1, 1)) <= math.pi / 6 + 1e-5
    swung = closed_loop.jitter_camera(FRONT, rng, dataclasses.replace(zero, phi=math.pi / 6))
    np.testing.assert_allclose(closed_loop.camera_look_at(swung), target, atol=1e-5)
    assert swung.eye[2] == pytest.approx(FRONT.eye[2])
    a0 = math.atan2(*(FRONT.eye - target)[1::-1])
    a1 = math.atan2(*(swung.eye - target)[1::-1])
    assert 0 < abs(a1 - a0) <= math.pi / 6 + 1e-5
    shifted = closed_loop.jitter_camera(FRONT, rng, dataclasses.replace(zero, look_at=0.1))
    assert np.abs(shifted.eye - FRONT.eye).max() <= 0.1 + 1e-5  # eye and target move together


def test_lighting_and_texture_variations():
  for v in closed_loop.sample_variations("lighting", 20, seed=2):
    assert 0.3 <= v.light.ambient <= 0.8 and 0.2 <= v.light.diffuse <= 0.7 and v.light.direction_3[2] > 0
    assert all(0.6 <= c <= 1.0 for c in v.light.color_3)
  names = {v.table_texture for v in closed_loop.sample_variations("table_texture", 10, seed=0)}
  assert names == set(closed_loop.TEXTURE_NAMES)
  assert closed_loop.table_texture_image("brick", 32).shape == (32, 32, 3)
  with pytest.raises(ValueError, match="wobble"):
    closed_loop.sample_variations("wobble", 1)


class _ReplayPolicy:
  """The oracle: the source demo's actions open-loop, whatever the cameras show."""

  def __init__(self, action_t8):
    self.actions, self.t, self.seen = action_t8, 0, set()

  def reset(self):
    self.t = 0

  def __call__(self, images, state):
    assert state.shape == (8,)
    self.seen |= {(name, image.shape, image.dtype.str) for name, image in images.items()}
    action = self.actions[min(self.t, len(self.actions) - 1)]
    self.t += 1
    return action


def test_oracle_policy_succeeds_nominally_and_fails_far_away(demo):
  policy = _ReplayPolicy(demo.action_t8)
  nominal = closed_loop.run_episode(policy, closed_loop.Variation(), max_steps=demo.num_steps + 4, width=32)
  assert nominal.success and nominal.steps < demo.num_steps + 4  # stopped once the cube was in the tray
  assert policy.seen == {("front", (32, 32, 3), "|u1"), ("side", (32, 32, 3), "|u1")}
  assert abs(nominal.final_object_center[1] - TabletopSpec().tray_xy[1]) < 0.1
  # Success is not a given: the same actions miss a cube placed elsewhere (no cameras: blind
  # replay needs no images, and renders dominate the run time).
  far = [closed_loop.Variation("object_pose", object_xy_yaw=xy_yaw)
         for xy_yaw in ((0.62, -0.25, 0.3), (0.40, 0.10, 1.0), (0.64, 0.05, -0.5))]
  report = closed_loop.evaluate(policy, [closed_loop.Variation(), *far], max_steps=demo.num_steps + 4, cameras=())
  assert report["successes"] == [True, False, False, False], report
  assert report["num_episodes"] == 4 and report["success_rate"] == 0.25
  assert report["by_axis"] == {"nominal": 1.0, "object_pose": 0.0}


def test_capture_dataset_loads_with_jaxlab(tmp_path, world):
  from jaxlab.splat.datasets import load_dataset

  world.reset("cube")
  cameras = orbit_cameras(6, 1.0, heights=(0.5, 0.9), width=40, height=30)
  assert len({tuple(np.round(c.eye, 6)) for c in cameras}) == 6
  captures = capture.capture_views(world, cameras, keep={world.table, world.floor, world.tray})
  table = capture.masks_for(captures, world.table)
  out = capture.write_capture_dataset(tmp_path / "bg", captures, mask=table, test_every=3)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
  scene = load_dataset(out, background=(0.0, 0.0, 0.0))
  assert scene.images.shape == (6, 30, 40, 3)
  np.testing.assert_allclose(np.asarray(scene.cameras.world_to_camera),
                             np.stack([c.world_to_camera() for c in cameras]), atol=1e-5)
  np.testing.assert_allclose(np.asarray(scene.cameras.fx), cameras[0].focal, rtol=1e-6)
  np.testing.assert_array_equal(scene.masks, table.astype(np.float32))
  expected = np.stack([c["rgb"] for c in captures]) / 255.0 * table[..., None]
  np.testing.assert_allclose(scene.images, expected, atol=1.5 / 255)
  np.testing.assert_allclose(scene.depths, np.where(table, np.stack([c["depth"] for c in captures]), 0), rtol=1e-6)
  assert load_dataset(out, split="test").images.shape[0] == 2
  with pytest.raises(FileExistsError):
    capture.write_capture_dataset(out, captures)
  capture.write_capture_dataset(out, captures[:2], overwrite=True)
  assert load_dataset(out).images.shape[0] == 2
  with pytest.raises(ValueError, match="capture 1"):
    capture.write_capture_dataset(tmp_path / "mixed", [captures[0], {**captures[1], "camera": cameras[1].resized(20)}])
