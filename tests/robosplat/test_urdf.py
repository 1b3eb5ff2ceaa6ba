"""URDF parsing: the Panda from pybullet_data, primitives, mesh paths and bad files."""

import os

import numpy as np
import pytest

from jaxlab.robosplat import urdf

_ROBOT = """<?xml version="1.0"?>
<robot name="toy">
  <material name="blue"><color rgba="0 0 1 1"/></material>
  <link name="base">
    <visual>
      <origin xyz="0 0 0.1" rpy="0 0 1.5707963267948966"/>
      <geometry><box size="0.2 0.4 0.6"/></geometry>
      <material name="blue"/>
    </visual>
  </link>
  <link name="arm">
    <visual><geometry><cylinder radius="0.05" length="0.3"/></geometry></visual>
    <visual>
      <geometry><mesh filename="{mesh}" scale="2"/></geometry>
      <material name="red"><color rgba="1 0 0 0.5"/></material>
    </visual>
  </link>
  <link name="tip"><visual><geometry><sphere radius="0.02"/></geometry></visual></link>
  <link name="slider"/>
  <joint name="j1" type="{jtype}">
    <parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.5" rpy="0.1 0.2 0.3"/>
    <axis xyz="0 0 2"/>
    <limit lower="-1" upper="1"/>
  </joint>
  <joint name="j2" type="fixed">
    <parent link="{parent}"/><child link="tip"/>
    <origin xyz="0.3 0 0"/>
  </joint>
  <joint name="j3" type="prismatic">
    <parent link="arm"/><child link="slider"/>
    <limit lower="0" upper="0.1"/>
  </joint>
</robot>
"""

_TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def _write(tmp_path, mesh="parts/tri.obj", jtype="continuous", parent="arm", make_mesh=True):
  if make_mesh:
    (tmp_path / "parts").mkdir(exist_ok=True)
    (tmp_path / "parts" / "tri.obj").write_text(_TRIANGLE_OBJ)
  path = tmp_path / "toy.urdf"
  path.write_text(_ROBOT.format(mesh=mesh, jtype=jtype, parent=parent))
  return path


def test_toy_robot_fields(tmp_path):
  model = urdf.load_urdf(_write(tmp_path))
  assert model.name == "toy" and model.root == "base"
  assert model.link_names == ("base", "arm", "tip", "slider")
  assert [j.name for j in urdf.movable_joints(model)] == ["j1", "j3"]
  j1, _, j3 = model.joints
  assert j1.type == "continuous" and (j1.lower, j1.upper) == (-np.inf, np.inf)  # No limits.
  assert j1.axis == (0.0, 0.0, 1.0)  # Normalized.
  assert j3.axis == (1.0, 0.0, 0.0) and (j3.lower, j3.upper) == (0.0, 0.1)  # URDF default axis.
  np.testing.assert_allclose(j1.origin_44[:3, 3], [0, 0, 0.5])

  box = model.link("base").visuals[0]
  assert box.geometry == "box" and box.size == (0.2, 0.4, 0.6) and box.mesh_path is None
  assert box.rgba == (0, 0, 1, 1)  # From the top-level named material.
  np.testing.assert_allclose(box.origin_44[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
  np.testing.assert_allclose(box.origin_44[:3, 3], [0, 0, 0.1])
  assert not box.origin_44.flags.writeable

  cylinder, mesh = model.link("arm").visuals
  assert cylinder.geometry == "cylinder" and cylinder.size == (0.05, 0.3)
  assert cylinder.rgba is None
  assert mesh.geometry == "mesh" and mesh.scale_3 == (2.0, 2.0, 2.0)
  assert mesh.mesh_path == str(tmp_path / "parts" / "tri.obj")
  assert mesh.rgba == (1, 0, 0, 0.5)
  assert model.link("tip").visuals[0].size == (0.02,)
  assert model.link("slider").visuals == ()


def test_chain_and_hashable(tmp_path):
  model = urdf.load_urdf(_write(tmp_path))
  assert [j.name for j in urdf.chain(model, "tip")] == ["j1", "j2"]
  assert urdf.chain(model, "base") == ()
  hash(model)  # A static jit argument must hash.
  with pytest.raises(urdf.UrdfError, match="no link 'nope'"):
    urdf.chain(model, "nope")


def test_rpy_is_fixed_axis_xyz():
  roll, pitch, yaw = 0.3, -0.7, 1.1
  def rx(a):
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
  def ry(a):
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  def rz(a):
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
  np.testing.assert_allclose(urdf.rpy_matrix((roll, pitch, yaw)),
                             rz(yaw) @ ry(pitch) @ rx(roll), atol=1e-12)


def test_missing_mesh_names_link_and_file(tmp_path):
  path = _write(tmp_path, mesh="parts/gone.obj")
  with pytest.raises(urdf.UrdfError, match=r"link 'arm'.*gone\.obj"):
    urdf.load_urdf(path)
  model = urdf.load_urdf(path, check_meshes=False)
  assert model.link("arm").visuals[1].mesh_path.endswith(os.path.join("parts", "gone.obj"))


def test_package_uri_resolves_next_to_urdf(tmp_path):
  model = urdf.load_urdf(_write(tmp_path, mesh="package://toy_pkg/parts/tri.obj"))
  assert model.link("arm").visuals[1].mesh_path == str(tmp_path / "parts" / "tri.obj")


def test_unknown_joint_type(tmp_path):
  with pytest.raises(urdf.UrdfError, match="joint 'j1'.*unknown joint type 'hinge'"):
    urdf.load_urdf(_write(tmp_path, jtype="hinge"))
  with pytest.raises(urdf.UrdfError, match="joint 'j1'.*'floating' is not supported"):
    urdf.load_urdf(_write(tmp_path, jtype="floating"))


def test_missing_parent_link(tmp_path):
  with pytest.raises(urdf.UrdfError, match="joint 'j2': parent link 'ghost' is not defined"):
    urdf.load_urdf(_write(tmp_path, parent="ghost"))


def test_broken_tree(tmp_path):
  text = """<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
    <joint name="j" type="fixed"><parent link="a"/><child link="b"/></joint></robot>"""
  with pytest.raises(urdf.UrdfError, match="one root"):
    urdf.parse_urdf(text, str(tmp_path))
  text = """<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
    <joint name="j" type="fixed"><parent link="a"/><child link="c"/></joint>
    <joint name="k" type="fixed"><parent link="b"/><child link="c"/></joint></robot>"""
  with pytest.raises(urdf.UrdfError, match="'c' is the child of two joints"):
    urdf.parse_urdf(text, str(tmp_path))


def test_not_a_urdf(tmp_path):
  sdf = tmp_path / "world.sdf"
  sdf.write_text("<sdf version='1.6'><world name='w'/></sdf>")
  with pytest.raises(urdf.UrdfError, match=r"world\.sdf is not a URDF.*<sdf>"):
    urdf.load_urdf(sdf)
  junk = tmp_path / "junk.urdf"
  junk.write_bytes(b"\x00\x01 not xml")
  with pytest.raises(urdf.UrdfError, match=r"junk\.urdf is not valid XML"):
    urdf.load_urdf(junk)
  with pytest.raises(urdf.UrdfError, match="cannot read URDF"):
    urdf.load_urdf(tmp_path / "absent.urdf")


def test_bad_numbers(tmp_path):
  text = """<robot name="r"><link name="a"><visual><geometry><box size="1 2"/></geometry>
    </visual></link></robot>"""
  with pytest.raises(urdf.UrdfError, match="link 'a' visual box size"):
    urdf.parse_urdf(text, str(tmp_path))


def test_panda_from_pybullet_data():
  pybullet_data = pytest.importorskip("pybullet_data")
  model = urdf.load_urdf(os.path.join(pybullet_data.getDataPath(), "franka_panda/panda.urdf"))
  assert model.root == "panda_link0" and len(model.links) == 13 and len(model.joints) == 12
  movable = urdf.movable_joints(model)
  assert [j.name for j in movable] == [f"panda_joint{i}" for i in range(1, 8)] + [
      "panda_finger_joint1", "panda_finger_joint2"]
  assert [j.type for j in movable] == ["revolute"] * 7 + ["prismatic"] * 2
  assert (movable[3].lower, movable[3].upper) == (-3.1416, 0.0)
  assert (movable[8].lower, movable[8].upper, movable[8].axis) == (0.0, 0.04, (0.0, -1.0, 0.0))
  tip_chain = [j.name for j in urdf.chain(model, "panda_grasptarget")]
  assert tip_chain[:7] == [f"panda_joint{i}" for i in range(1, 8)]
  assert tip_chain[7:] == ["panda_joint8", "panda_hand_joint", "panda_grasptarget_hand"]
  # package://meshes/... resolves inside franka_panda/, and every mesh exists.
  for link in model.links:
    for visual in link.visuals:
      assert os.path.isabs(visual.mesh_path) and os.path.isfile(visual.mesh_path)
  # "panda_white" is defined inline in link0's visual and referenced by name later.
  assert model.link("panda_link1").visuals[0].rgba == (1.0, 1.0, 1.0, 1.0)
  right = model.link("panda_rightfinger").visuals[0].origin_44
  np.testing.assert_allclose(right[:3, :3], np.diag([-1.0, -1.0, 1.0]), atol=1e-9)
