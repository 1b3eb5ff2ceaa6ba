"""Demonstration generation: plans that replay in the simulator, skipped unreachable plans, episodes, edits."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("pybullet")

from jaxlab.robosplat import kinematics  # noqa: E402
from jaxlab.robosplat.assets import surface_gaussians  # noqa: E402
from jaxlab.robosplat.demo_plan import SourceTrajectory, plan_demo  # noqa: E402
from jaxlab.robosplat.demo_render import EditSettings  # noqa: E402
from jaxlab.robosplat.embodiments import get_embodiment  # noqa: E402
from jaxlab.robosplat.episodes import EpisodeDataset  # noqa: E402
from jaxlab.robosplat.generate import GenerateSettings, generate_demos, make_renderer, open_writer  # noqa: E402
from jaxlab.robosplat.scene import stack_links  # noqa: E402
from jaxlab.robosplat.sim.cameras import default_cameras  # noqa: E402
from jaxlab.robosplat.sim.source_demo import record_source_demo, replay_actions  # noqa: E402
from jaxlab.robosplat.sim.world import World  # noqa: E402
from jaxlab.robosplat.sim_assets import ObjectPart, SceneParts, _part_gaussians, backprojected_gaussians  # noqa: E402


@pytest.fixture(scope="module")
def demo():
  return record_source_demo()


def _box_points(rng, center, half, count):
  """Points and outward normals on an axis-aligned box surface."""
  axis = rng.integers(0, 3, count)
  sign = rng.choice([-1.0, 1.0], count)
  points = rng.uniform(-1, 1, (count, 3)) * half
  points[np.arange(count), axis] = sign * half[axis]
  normals = np.zeros((count, 3))
  normals[np.arange(count), axis] = sign
  return points + center, normals


@pytest.fixture(scope="module")
def parts(demo):
  """Small stand-in parts (a grey table slab, box links, a red cube): fast to render."""
  rng = np.random.default_rng(0)
  model = kinematics.panda_model()
  table_xy = np.array(demo.spec.table_xy)
  p, n = _box_points(rng, np.array([*table_xy, -0.02]), np.array([0.75, 0.5, 0.02]), 400)
  background = surface_gaussians(p, n, np.full((400, 3), 0.6), spacing=0.05)
  def box_links(model, grey):
    rows, ids = [], []
    for index, link in enumerate(model.links):
      if link.visuals:
        p, n = _box_points(rng, np.zeros(3), np.full(3, 0.04), 20)
        rows.append(surface_gaussians(p, n, np.full((20, 3), grey), spacing=0.02))
        ids.append(index)
    return stack_links(rows), np.asarray(ids)

  links, link_ids = box_links(model, 0.9)
  iiwa = box_links(get_embodiment("iiwa").model(), 0.3)
  p, n = _box_points(rng, np.zeros(3), np.full(3, 0.025), 60)
  cube = surface_gaussians(p, n, np.tile([0.9, 0.1, 0.1], (60, 1)), spacing=0.01)
  rest = np.eye(4)
  rest[2, 3] = 0.025
  obj = ObjectPart(cube, rest, np.zeros(3), 0.025)
  top = np.asarray(background.means)[:, 2] > -0.001
  return SceneParts(background, top, links, link_ids, {"cube": obj}, {}, {"iiwa": iiwa})


def test_generated_demonstration_replays_open_loop_in_the_simulator(demo):
  source = SourceTrajectory.from_demo(demo)
  model = kinematics.panda_model()
  with World(demo.spec) as world:
    for xy_yaw in [(0.60, 0.05, 2.5), (0.38, -0.27, -1.2)]:
      world.reset("cube", xy_yaw)
      plan = plan_demo(source, model, xy_yaw, object_start_pose_44=world.object_pose())
      assert plan.ok, plan.reason
      assert plan.action_t8.shape == demo.action_t8.shape
      # Observation t+1's joints are action t's targets; the gripper closes at the grasp keyframe.
      np.testing.assert_allclose(plan.state_t8[1:, :7], plan.action_t8[:-1, :7], atol=1e-6)
      grasp, release, _ = source.keyframes
      assert plan.action_t8[grasp, 7] == 0 and plan.action_t8[grasp - 1, 7] == 1 and plan.action_t8[release, 7] == 1
      # The end effector at the grasp keyframe sits on the moved object's grasp point.
      ee = np.asarray(kinematics.end_effector_pose(model, plan.qpos_t9[grasp]))
      np.testing.assert_allclose(ee[:2, 3], xy_yaw[:2], atol=5e-3)
      assert replay_actions(plan.action_t8, spec=demo.spec, object_xy_yaw=xy_yaw)


def test_the_source_actions_do_not_reach_a_moved_object(demo):
  # The control for the test above: without the keyframe transform the pick misses.
  assert not replay_actions(demo.action_t8, spec=demo.spec, object_xy_yaw=(0.60, 0.05, 2.5))


def test_unreachable_target_fails_the_plan_with_a_reason(demo):
  plan = plan_demo(SourceTrajectory.from_demo(demo), kinematics.panda_model(), (1.9, 0.0, 0.0),
                   object_start_pose_44=np.eye(4))
  assert not plan.ok and "unreachable" in plan.reason and "approach" in plan.reason


def test_generation_skips_and_counts_unreachable_and_writes_readable_episodes(demo, parts, tmp_path):
  cameras = default_cameras(16)
  # Grid offsets x in {0, 1.5} m: the first column is reachable, the second is not.
  settings = GenerateSettings(num_demos=2, grid=(2, 1), grid_x=(0.0, 1.5), grid_y=(0.0, 0.0),
                              edits=EditSettings.none(), seed=3)
  with open_writer(tmp_path / "gen", cameras, fps=22) as writer:
    report = generate_demos(writer, demo, parts, cameras, settings)
  assert (report.written, report.skipped_unreachable) == (1, 1)
  assert "demo 1" in report.skipped_reasons[0] and "unreachable" in report.skipped_reasons[0]
  assert report.frames_rendered == 2 * len(demo.action_t8) and report.frames_per_second > 0
  dataset = EpisodeDataset(tmp_path / "gen")
  assert len(dataset) == 1 and dataset.episode_length(0) == len(demo.action_t8)
  meta = dataset.metadata(0)
  assert meta["object_name"] == "cube" and meta["attempt"] == 0
  state, action = dataset.state_action(0)
  assert replay_actions(action, spec=demo.spec, object_xy_yaw=meta["object_xy_yaw"])
  images = dataset.frame_images(0, 0, ["front", "side"])
  assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
  assert images.std() > 5  # a rendered scene, not a blank frame


def test_embodiment_replacement_writes_each_robot_s_own_replayable_demonstration(demo, parts, tmp_path):
  cameras = default_cameras(16)
  settings = GenerateSettings(num_demos=2, grid=(1, 1), grid_x=(0.1, 0.1), grid_y=(0.05, 0.05),
                              embodiments=("panda", "iiwa"), edits=EditSettings.none(), seed=1)
  with open_writer(tmp_path / "gen", cameras, fps=22, embodiments=settings.embodiments) as writer:
    report = generate_demos(writer, demo, parts, cameras, settings)
  assert report.written == 2
  dataset = EpisodeDataset(tmp_path / "gen")
  assert dataset.info["robot_type"] == "franka_panda+kuka_iiwa_panda_hand"
  robots = [dataset.metadata(e)["embodiment"] for e in range(2)]
  assert robots == ["panda", "iiwa"]
  actions = [dataset.state_action(e)[1] for e in range(2)]
  for robot, action in zip(robots, actions):
    xy_yaw = dataset.metadata(robots.index(robot))["object_xy_yaw"]
    assert replay_actions(action, spec=demo.spec, object_xy_yaw=xy_yaw, embodiment=robot), robot
    np.testing.assert_allclose(dataset.state_action(robots.index(robot))[0][0, :7],
                               get_embodiment(robot).init_qpos_9[:7], atol=1e-6)
  # Different robots, different joints and different pictures of the arm.
  assert np.abs(actions[0][:, :7] - actions[1][:, :7]).max() > 0.3
  assert np.abs(dataset.frame_images(0, 0, ["front"]).astype(int) - dataset.frame_images(1, 0, ["front"])).max() > 30


def test_a_robot_without_gaussians_is_refused_before_anything_is_written(demo, parts, tmp_path):
  no_iiwa = dataclasses.replace(parts, other_robots={})
  settings = GenerateSettings(num_demos=1, embodiments=("iiwa",), edits=EditSettings.none())
  with open_writer(tmp_path / "gen", default_cameras(16), fps=22) as writer:
    with pytest.raises(ValueError, match="embodiment 'iiwa' has no Gaussians"):
      generate_demos(writer, demo, no_iiwa, default_cameras(16), settings)
    assert writer.num_episodes == 0


def test_per_episode_edits_are_shared_by_all_frames_and_per_frame_ones_are_not(demo, parts):
  cameras = default_cameras(16)
  qpos = np.repeat(demo.qpos_t9[:1], 4, 0)
  pose = np.repeat(parts.objects["cube"].pose_at(0.42, -0.08, 0.0)[None], 4, 0)
  obj = parts.objects["cube"].gaussians
  edits = EditSettings(lighting_prob=1.0, texture_prob=1.0, camera_prob=1.0, textures=("brick", "grass"),
                       table_grid=(12, 8))
  per_frame = make_renderer(parts, cameras, edits, demo.spec.table_xy)(qpos, pose, obj, jax.random.key(0))
  per_episode = make_renderer(parts, cameras, dataclasses.replace(edits, per_episode=True),
                              demo.spec.table_xy)(qpos, pose, obj, jax.random.key(0))
  plain = make_renderer(parts, cameras, EditSettings.none(), demo.spec.table_xy)(qpos, pose, obj, jax.random.key(0))
  for name in ("front", "side"):
    assert np.all(per_episode[name] == per_episode[name][:1])
    assert np.all(plain[name] == plain[name][:1])
    assert not np.all(per_frame[name] == per_frame[name][:1])
    assert np.abs(per_episode[name][0].astype(int) - plain[name][0]).mean() > 2


def test_backprojected_table_lies_on_the_table_top(demo):
  from jaxlab.robosplat.sim.capture import capture_views  # noqa: PLC0415

  with World(demo.spec) as world:
    captures = capture_views(world, default_cameras(32), keep={world.table})
  table_pixels = sum(int(((c["body"] == world.table) & (c["depth"] > 0)).sum()) for c in captures)
  g = backprojected_gaussians(captures, 10_000, np.random.default_rng(0))
  assert g.num == table_pixels
  z = np.asarray(g.means)[:, 2]
  assert np.mean(np.abs(z) < 0.005) > 0.8  # the views see mostly the top (z = 0)
  normals_up = np.abs(np.asarray(jax.vmap(lambda q: _rotate_z(q))(g.quats))[:, 2])
  assert np.mean(normals_up[np.abs(z) < 0.005] > 0.9) > 0.9


def _rotate_z(quat_wxyz):
  w, x, y, z = quat_wxyz / jnp.linalg.norm(quat_wxyz)
  return jnp.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])


def test_a_part_never_seen_is_an_error_naming_it(demo):
  from jaxlab.robosplat.meshes import SurfaceSamples  # noqa: PLC0415

  samples = SurfaceSamples(np.zeros((4, 3), np.float32), np.tile([0, 0, 1.0], (4, 1)).astype(np.float32),
                           np.ones((4, 3), np.float32))
  camera = default_cameras(8)[0]
  capture = {"rgb": np.zeros((8, 8, 3), np.uint8), "depth": np.ones((8, 8), np.float32)}
  with pytest.raises(ValueError, match="object 'duck'.*mask is empty"):
    _part_gaussians(samples, np.eye(4), [capture], _stack(camera),
                    np.zeros((1, 8, 8), bool), 0.01, "object 'duck'")


def _stack(camera):
  from jaxlab.splat import stack_cameras  # noqa: PLC0415

  return stack_cameras([camera.to_jaxlab()])


def test_scene_parts_round_trip_and_a_foreign_file_is_named(parts, tmp_path):
  from jaxlab.robosplat.sim_assets import load_scene_parts, save_scene_parts  # noqa: PLC0415

  save_scene_parts(tmp_path / "parts.npz", parts)
  back = load_scene_parts(tmp_path / "parts.npz")
  for a, b in ((parts.background, back.background), (parts.links_lm, back.links_lm),
               (parts.objects["cube"].gaussians, back.objects["cube"].gaussians)):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  np.testing.assert_array_equal(back.link_ids, parts.link_ids)
  assert back.embodiments == ("panda", "iiwa")
  jax.tree.map(np.testing.assert_array_equal, back.robot_links("iiwa")[0], parts.robot_links("iiwa")[0])
  np.testing.assert_array_equal(back.robot_links("iiwa")[1], parts.robot_links("iiwa")[1])
  np.testing.assert_array_equal(back.objects["cube"].rest_pose_44, parts.objects["cube"].rest_pose_44)
  np.savez(tmp_path / "other.npz", x=np.zeros(3))
  with pytest.raises(ValueError, match="other.npz is not a scene-parts file"):
    load_scene_parts(tmp_path / "other.npz")
