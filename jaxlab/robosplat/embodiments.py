"""The robots a demonstration can be simulated and rendered with (embodiment replacement).

Every embodiment has 7 arm joints and the Panda's two-finger hand, with the hand's links
and the grasp frame keeping their Panda names (`panda_hand`, `panda_leftfinger`,
`panda_rightfinger`, `panda_grasptarget`). So a joint vector is always 7 arm joints and 2
finger joints, a state is 7 joints and the gripper width, an action is 7 joint targets and
the gripper command, and the grasp frame is found by the same name on every robot: a
demonstration is retargeted to another robot by inverse kinematics of its end-effector
keyframes alone.

  panda: pybullet_data's Franka Emika Panda.
  iiwa:  a KUKA LBR iiwa 7 arm (pybullet_data's `kuka_iiwa/model.urdf`) with the Panda hand
         mounted on its flange, a URDF written here from the two (`iiwa_panda_hand_urdf`).

Nothing here imports pybullet at module import; the URDF paths need the `robot` extra.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

from jaxlab import files
from jaxlab.robosplat import urdf

HAND_LINKS = ("panda_hand", "panda_leftfinger", "panda_rightfinger", "panda_grasptarget")
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
EE_LINK = "panda_grasptarget"
HAND_LINK = "panda_hand"
# The Panda hand on the iiwa flange: the flange face of link 7, turned half a turn so that
# the home grasp pose has the last joint near zero, the middle of its ±175° range (the yaw
# edit then turns it either way).
IIWA_FLANGE_XYZ = (0.0, 0.0, 0.045)
IIWA_FLANGE_RPY = (0.0, 0.0, 3.14159265359)


def _pybullet_data() -> pathlib.Path:
  try:
    import pybullet_data  # noqa: PLC0415
  except ImportError as e:
    raise ImportError("robot URDFs come with pybullet: pip install 'jaxlab[robot]'") from e
  return pathlib.Path(pybullet_data.getDataPath())


@dataclasses.dataclass(frozen=True)
class Embodiment:
  """One robot.

  Attributes:
    name: registry key.
    arm_joints: the 7 arm joint names, base to flange.
    base_link: the URDF root link (fixed at the world origin).
    init_qpos: [9] home joint positions (7 arm + 2 fingers); the grasp frame starts at the
      same pose on every embodiment (the Panda's home), so demonstrations start alike.
    robot_type: the LeRobot `robot_type` of its episodes.
  """

  name: str
  arm_joints: tuple[str, ...]
  base_link: str
  init_qpos: tuple[float, ...]
  robot_type: str

  def __post_init__(self):
    if len(self.arm_joints) != 7 or len(self.init_qpos) != 9:
      raise ValueError(f"embodiment {self.name!r} needs 7 arm joints and 9 home joint values")

  @property
  def finger_joints(self) -> tuple[str, str]:
    return FINGER_JOINTS

  @property
  def init_qpos_9(self) -> np.ndarray:
    return np.asarray(self.init_qpos, np.float64)

  def urdf_path(self) -> str:
    """Absolute path of the robot's URDF (written on first use for composed robots)."""
    if self.name == "panda":
      return str(_pybullet_data() / "franka_panda" / "panda.urdf")
    if self.name == "iiwa":
      return iiwa_panda_hand_urdf()
    raise ValueError(f"no URDF for embodiment {self.name!r}")

  def model(self) -> urdf.RobotModel:
    """The parsed URDF (cached per embodiment: one object, so jitted functions compile once)."""
    return _model(self.name)


EMBODIMENTS: dict[str, Embodiment] = {
    "panda": Embodiment(
        name="panda", arm_joints=tuple(f"panda_joint{i}" for i in range(1, 8)), base_link="panda_link0",
        init_qpos=(0.0, 0.1, 0.0, -2.15, 0.0, 2.25, 0.78, 0.04, 0.04), robot_type="franka_panda"),
    # Home: the Panda's home grasp pose by inverse kinematics with joints 1, 3 and 5 at zero
    # (the arm in one vertical plane); a test checks the two grasp frames agree.
    "iiwa": Embodiment(
        name="iiwa", arm_joints=tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8)), base_link="lbr_iiwa_link_0",
        init_qpos=(0.0, 0.5701, 0.0, -1.6207, 0.0, 0.9508, -0.0054, 0.04, 0.04), robot_type="kuka_iiwa_panda_hand"),
}


def get_embodiment(name: str) -> Embodiment:
  if name not in EMBODIMENTS:
    raise ValueError(f"unknown embodiment {name!r}; choose one of {sorted(EMBODIMENTS)}")
  return EMBODIMENTS[name]


@functools.lru_cache(maxsize=None)
def _model(name: str) -> urdf.RobotModel:
  return urdf.load_urdf(get_embodiment(name).urdf_path())


# ----------------------------------------------------------------------------- the iiwa + Panda hand URDF


def _absolute_meshes(element: ET.Element, urdf_dir: pathlib.Path) -> None:
  for mesh in element.iter("mesh"):
    filename = mesh.get("filename", "")
    if filename.startswith("package://"):  # panda.urdf's meshes live beside it
      filename = filename[len("package://"):]
    if not os.path.isabs(filename):
      mesh.set("filename", str((urdf_dir / filename).resolve()))


def iiwa_panda_hand_xml(data_dir: pathlib.Path | None = None) -> str:
  """The URDF text of the iiwa arm with the Panda hand on its flange (absolute mesh paths)."""
  data_dir = data_dir or _pybullet_data()
  iiwa_path, panda_path = data_dir / "kuka_iiwa" / "model.urdf", data_dir / "franka_panda" / "panda.urdf"
  iiwa, panda = ET.parse(iiwa_path).getroot(), ET.parse(panda_path).getroot()
  _absolute_meshes(iiwa, iiwa_path.parent)
  _absolute_meshes(panda, panda_path.parent)
  robot = ET.Element("robot", name="iiwa_panda_hand")
  for element in iiwa:
    if element.tag in ("material", "link", "joint"):
      robot.append(element)
  for element in panda:
    if element.tag == "material" or (element.tag == "link" and element.get("name") in HAND_LINKS):
      robot.append(element)
  mount = ET.SubElement(robot, "joint", name="iiwa_hand_mount", type="fixed")
  ET.SubElement(mount, "parent", link="lbr_iiwa_link_7")
  ET.SubElement(mount, "child", link=HAND_LINK)
  ET.SubElement(mount, "origin", xyz=" ".join(map(str, IIWA_FLANGE_XYZ)), rpy=" ".join(map(str, IIWA_FLANGE_RPY)))
  for element in panda:
    if element.tag == "joint" and element.find("parent").get("link") == HAND_LINK:
      robot.append(element)  # the finger joints and the grasp frame
  return ET.tostring(robot, encoding="unicode")


def iiwa_panda_hand_urdf(directory: str | os.PathLike | None = None) -> str:
  """Writes the composed URDF (once; atomically) and returns its path.

  The file name carries a hash of its text, so a changed pybullet_data writes a new file and
  an existing one is never overwritten with different content.
  """
  text = iiwa_panda_hand_xml()
  digest = hashlib.sha256(text.encode()).hexdigest()[:12]
  directory = pathlib.Path(directory) if directory else pathlib.Path(tempfile.gettempdir()) / "jaxlab_robots"
  path = directory / f"iiwa_panda_hand_{digest}.urdf"
  if not path.is_file():
    directory.mkdir(parents=True, exist_ok=True)
    files.write_text(path, text)
  return str(path)
