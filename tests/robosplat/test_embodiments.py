"""Embodiment replacement: the iiwa with the Panda hand, its URDF, FK, home pose, simulation and retargeting."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("pybullet")

from jaxlab.robosplat import kinematics, urdf  # noqa: E402
from jaxlab.robosplat.demo_plan import SourceTrajectory, plan_demo  # noqa: E402
from jaxlab.robosplat.embodiments import EE_LINK, EMBODIMENTS, get_embodiment, iiwa_panda_hand_urdf  # noqa: E402
from jaxlab.robosplat.sim.closed_loop import run_episode, sample_variations  # noqa: E402
from jaxlab.robosplat.sim.source_demo import record_source_demo, replay_actions  # noqa: E402
from jaxlab.robosplat.sim.world import World  # noqa: E402


@pytest.fixture(scope="module")
def source():
  return SourceTrajectory.from_demo(record_source_demo())


def test_every_embodiment_has_seven_arm_joints_the_panda_hand_and_the_same_home_grasp_pose():
  panda = get_embodiment("panda")
  home = np.asarray(kinematics.end_effector_pose(panda.model(), jnp.asarray(panda.init_qpos_9, jnp.float32)))
  for name, robot in EMBODIMENTS.items():
    model = robot.model()
    movable = [j.name for j in urdf.movable_joints(model)]
    assert movable == [*robot.arm_joints, *robot.finger_joints], name
    assert {"panda_hand", "panda_leftfinger", "panda_rightfinger", EE_LINK} <= set(model.link_names), name
    ee = np.asarray(kinematics.end_effector_pose(model, jnp.asarray(robot.init_qpos_9, jnp.float32)))
    np.testing.assert_allclose(ee, home, atol=1e-3, err_msg=name)


def test_iiwa_forward_kinematics_matches_pybullet():
  robot = get_embodiment("iiwa")
  rng = np.random.default_rng(0)
  with World(embodiment="iiwa") as world:
    for _ in range(3):
      qpos = np.concatenate([robot.init_qpos_9[:7] + rng.normal(0, 0.3, 7), rng.uniform(0, 0.04, 2)])
      world.set_arm(qpos)
      fk = np.asarray(kinematics.forward_kinematics(robot.model(), jnp.asarray(qpos, jnp.float32)))
      for name, pose in world.link_states().items():
        np.testing.assert_allclose(fk[robot.model().link_index(name)], pose, atol=1e-5, err_msg=name)


def test_the_composed_urdf_is_written_once_under_a_content_name(tmp_path):
  first = iiwa_panda_hand_urdf(tmp_path)
  assert os.path.basename(first).startswith("iiwa_panda_hand_") and first.endswith(".urdf")
  stamp = os.stat(first).st_mtime_ns
  assert iiwa_panda_hand_urdf(tmp_path) == first and os.stat(first).st_mtime_ns == stamp
  assert sorted(os.listdir(tmp_path)) == [os.path.basename(first)]  # no temporary left behind
  text = open(first).read()
  assert 'name="iiwa_hand_mount"' in text and "package://" not in text


def test_world_switches_robots_on_reset_and_an_unknown_one_is_named():
  with World() as world:
    assert "panda_link7" in world.link_index
    world.reset(embodiment="iiwa")
    assert "lbr_iiwa_link_7" in world.link_index and "panda_link7" not in world.link_index
    np.testing.assert_allclose(world.state()[:7], get_embodiment("iiwa").init_qpos_9[:7], atol=1e-9)
    with pytest.raises(ValueError, match="unknown embodiment 'ur5'"):
      world.reset(embodiment="ur5")


def test_a_demonstration_retargeted_to_the_iiwa_reaches_the_tray(source):
  robot = get_embodiment("iiwa")
  xy_yaw = (0.58, 0.02, 1.1)
  with World(embodiment="iiwa") as world:
    world.reset("cube", xy_yaw)
    start = world.object_pose()
  plan = plan_demo(source, robot.model(), xy_yaw, object_start_pose_44=start, init_qpos_9=robot.init_qpos_9)
  assert plan.ok, plan.reason
  np.testing.assert_allclose(plan.state_t8[0, :7], robot.init_qpos_9[:7], atol=1e-6)
  assert replay_actions(plan.action_t8, object_xy_yaw=xy_yaw, embodiment="iiwa")
  # The Panda's joint targets mean nothing to the iiwa: the same actions miss.
  panda_plan = plan_demo(source, kinematics.panda_model(), xy_yaw, object_start_pose_44=start)
  assert not replay_actions(panda_plan.action_t8, object_xy_yaw=xy_yaw, embodiment="iiwa")


def test_the_embodiment_axis_runs_episodes_on_the_other_robot(source):
  variations = sample_variations("embodiment", 4, seed=0)
  assert [v.embodiment for v in variations] == ["iiwa"] * 4
  assert variations[0].object_xy_yaw is None and variations[3].object_xy_yaw is not None
  robot = get_embodiment("iiwa")
  with World() as world:
    world.reset(embodiment="iiwa")
    plan = plan_demo(source, robot.model(), source.object_xy_yaw, object_start_pose_44=world.object_pose(),
                     init_qpos_9=robot.init_qpos_9)
    actions = iter(plan.action_t8)
    result = run_episode(lambda images, state: next(actions), variations[0], world=world,
                         max_steps=len(plan.action_t8), width=8)
    assert world.embodiment.name == "iiwa"
  assert result.success
