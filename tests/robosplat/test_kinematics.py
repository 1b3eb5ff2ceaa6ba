"""Forward kinematics against pybullet's own link frames, batching and the Panda constants."""

import os

import jax
import numpy as np
import pytest

from jaxlab.robosplat import kinematics, urdf

pybullet = pytest.importorskip("pybullet")

_TOL = 1e-5

# Oblique axes, non-zero rpy origins and all movable joint types exercise the conventions.
_TOY = """<robot name="toy">
  <link name="base"/><link name="a"/><link name="b"/><link name="c"/><link name="d"/>
  <joint name="ja" type="revolute">
    <parent link="base"/><child link="a"/>
    <origin xyz="0.1 -0.2 0.3" rpy="0.4 -0.5 0.6"/><axis xyz="0.6 0 0.8"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/>
  </joint>
  <joint name="jb" type="prismatic">
    <parent link="a"/><child link="b"/>
    <origin xyz="0 0.25 0" rpy="-1.2 0.3 2.0"/><axis xyz="0 0.6 -0.8"/>
    <limit lower="-0.5" upper="0.5" effort="1" velocity="1"/>
  </joint>
  <joint name="jc" type="fixed">
    <parent link="b"/><child link="c"/><origin xyz="0.05 0 0.1" rpy="0.7 0 -0.9"/>
  </joint>
  <joint name="jd" type="continuous">
    <parent link="c"/><child link="d"/>
    <origin xyz="0 0 0.2" rpy="0 1.1 0"/><axis xyz="0 1 0"/>
  </joint>
</robot>
"""


@pytest.fixture(name="client")
def _client():
  client = pybullet.connect(pybullet.DIRECT)
  yield client
  pybullet.disconnect(client)


def _pybullet_poses(client, path, qpos_j, base_position=(0, 0, 0), base_quat_xyzw=(0, 0, 0, 1)):
  """World poses of every child link (link name -> 4x4) after setting the joint positions."""
  body = pybullet.loadURDF(path, base_position, base_quat_xyzw, useFixedBase=True,
                           physicsClientId=client)
  movable = 0
  poses = {}
  infos = [pybullet.getJointInfo(body, i, physicsClientId=client)
           for i in range(pybullet.getNumJoints(body, physicsClientId=client))]
  for info in infos:
    if info[2] != pybullet.JOINT_FIXED:
      pybullet.resetJointState(body, info[0], float(qpos_j[movable]), physicsClientId=client)
      movable += 1
  assert movable == len(qpos_j)
  for info in infos:
    state = pybullet.getLinkState(body, info[0], computeForwardKinematics=True,
                                  physicsClientId=client)
    pose = np.eye(4)
    # worldLinkFramePosition/Orientation: the URDF link (= joint) frame, not the inertial one.
    pose[:3, :3] = np.reshape(pybullet.getMatrixFromQuaternion(state[5]), (3, 3))
    pose[:3, 3] = state[4]
    poses[info[12].decode()] = pose
  pybullet.removeBody(body, physicsClientId=client)
  return poses


def _random_qpos(model, rng, count):
  movable = urdf.movable_joints(model)
  lower = np.array([max(j.lower, -np.pi) for j in movable])
  upper = np.array([min(j.upper, np.pi) for j in movable])
  return rng.uniform(lower, upper, size=(count, len(movable)))


def _compare(model, fk_l44, expected):
  assert len(expected) == len(model.links) - 1  # Every link but the root.
  for name, pose in expected.items():
    ours = np.asarray(fk_l44[model.link_index(name)], np.float64)
    np.testing.assert_allclose(ours[:3, 3], pose[:3, 3], atol=_TOL, err_msg=name)
    np.testing.assert_allclose(ours[:3, :3], pose[:3, :3], atol=_TOL, err_msg=name)
    np.testing.assert_array_equal(ours[3], [0, 0, 0, 1])


def test_panda_matches_pybullet(client):
  model = kinematics.panda_model()
  qpos = _random_qpos(model, np.random.default_rng(0), 6)
  fk = jax.jit(jax.vmap(lambda q: kinematics.forward_kinematics(model, q)))(qpos)
  assert fk.shape == (6, 13, 4, 4) and fk.dtype == np.float32
  for q, fk_l44 in zip(qpos, fk):
    _compare(model, fk_l44, _pybullet_poses(client, kinematics.panda_urdf_path(), q))


def test_toy_robot_matches_pybullet(client, tmp_path):
  path = tmp_path / "toy.urdf"
  path.write_text(_TOY)
  model = urdf.load_urdf(path)
  base_position, base_quat_xyzw = (0.3, -0.1, 0.2), (0.1, 0.2, 0.3, 0.927362)
  base = np.eye(4)
  base[:3, :3] = np.reshape(pybullet.getMatrixFromQuaternion(
      np.array(base_quat_xyzw) / np.linalg.norm(base_quat_xyzw)), (3, 3))
  base[:3, 3] = base_position
  for q in _random_qpos(model, np.random.default_rng(1), 4):
    expected = _pybullet_poses(client, str(path), q, base_position, base_quat_xyzw)
    _compare(model, kinematics.forward_kinematics(model, q, base_pose_44=base), expected)


def test_batch_dims_and_base_pose():
  model = kinematics.panda_model()
  qpos = _random_qpos(model, np.random.default_rng(2), 6).reshape(2, 3, 9)
  fk = np.asarray(kinematics.forward_kinematics(model, qpos))
  assert fk.shape == (2, 3, 13, 4, 4)
  single = np.asarray(kinematics.forward_kinematics(model, qpos[1, 2]))
  np.testing.assert_allclose(fk[1, 2], single, atol=1e-6)
  np.testing.assert_allclose(fk[:, :, 0], np.broadcast_to(np.eye(4), (2, 3, 4, 4)))
  base = np.eye(4)
  base[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
  base[:3, 3] = [0.5, 0.2, -0.1]
  moved = np.asarray(kinematics.forward_kinematics(model, qpos[1, 2], base_pose_44=base))
  np.testing.assert_allclose(moved, base @ single, atol=1e-6)


def test_bad_qpos_shape():
  with pytest.raises(ValueError, match=r"\[\.\.\., 9\].*panda_joint1"):
    kinematics.forward_kinematics(kinematics.panda_model(), np.zeros(7))


def test_panda_constants():
  assert os.path.isfile(kinematics.panda_urdf_path())
  assert kinematics.panda_urdf_path().endswith(kinematics.PANDA_URDF)
  np.testing.assert_allclose(kinematics.INIT_QPOS, [0, 0.1, 0, -2.15, 0, 2.25, 0.78, 0.04, 0.04])
  model = kinematics.panda_model()
  assert kinematics.EE_LINK == "panda_grasptarget" and kinematics.EE_LINK in model.link_names
  fk = np.asarray(kinematics.forward_kinematics(model, kinematics.INIT_QPOS))
  ee = np.asarray(kinematics.end_effector_pose(model, kinematics.INIT_QPOS))
  np.testing.assert_array_equal(ee, fk[model.link_index("panda_grasptarget")])
  hand = fk[model.link_index("panda_hand")]
  # 0.105 m along the hand's approach axis, between the fingertips, same orientation.
  np.testing.assert_allclose(ee[:3, 3], hand[:3, 3] + 0.105 * hand[:3, 2], atol=1e-6)
  np.testing.assert_allclose(ee[:3, :3], hand[:3, :3], atol=1e-6)
  # At INIT_QPOS the gripper points straight down above the table in front of the base.
  np.testing.assert_allclose(ee[:3, 2], [0, 0, -1], atol=1e-2)
  assert 0.3 < ee[0, 3] < 0.7 and abs(ee[1, 3]) < 0.05 and 0.1 < ee[2, 3] < 0.5
  assert float(kinematics.gripper_width(kinematics.INIT_QPOS)) == pytest.approx(0.08)
