"""URDF robot descriptions parsed into frozen dataclasses (links, joints, visuals).

Only what kinematics and rendering need is kept: the joint tree (origins, axes, limits) and
each link's visual geometry (meshes with their scale and origin, boxes, cylinders, spheres,
and an RGBA colour). Inertia, collision shapes and controller tags are ignored.

Mesh file names are resolved to absolute paths: relative names against the URDF's folder,
`file://` names as paths, and `package://pkg/rest` best-effort by looking for `pkg/rest` and
`rest` next to the URDF and in the folders above it (there is no ROS package index here).
"""

import dataclasses
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np

JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")
GEOMETRY_KINDS = ("mesh", "box", "cylinder", "sphere")


class UrdfError(ValueError):
  """A URDF that cannot be used: not a URDF, a broken tree, a missing mesh, bad numbers."""


def rpy_matrix(rpy_3: Sequence[float]) -> np.ndarray:
  """URDF roll-pitch-yaw (fixed axes x, then y, then z) as a float64 rotation: Rz·Ry·Rx."""
  roll, pitch, yaw = (float(a) for a in rpy_3)
  cr, sr = np.cos(roll), np.sin(roll)
  cp, sp = np.cos(pitch), np.sin(pitch)
  cy, sy = np.cos(yaw), np.sin(yaw)
  return np.array([
      [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
      [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
      [-sp, cp * sr, cp * cr],
  ])


def origin_matrix(xyz_3: Sequence[float], rpy_3: Sequence[float]) -> np.ndarray:
  """The float64 4x4 transform of a URDF `<origin xyz=... rpy=...>`."""
  pose_44 = np.eye(4)
  pose_44[:3, :3] = rpy_matrix(rpy_3)
  pose_44[:3, 3] = np.asarray(xyz_3, np.float64)
  return pose_44


# eq=False: the pose is a numpy array, so visuals compare and hash by identity; that keeps
# RobotModel hashable (it is a static argument of jitted kinematics).
@dataclasses.dataclass(frozen=True, eq=False)
class Visual:
  """One `<visual>` of a link.

  Attributes:
    geometry: "mesh", "box", "cylinder" or "sphere".
    size: box (x, y, z) full extents; cylinder (radius, length) along z; sphere (radius,);
      () for a mesh.
    mesh_path: absolute mesh file path for a mesh, else None.
    scale_3: per-axis mesh scale ((1, 1, 1) for primitives).
    origin_44: read-only float64 4x4 pose of the geometry in the link frame.
    rgba: material colour (r, g, b, a) in [0, 1], or None when the URDF gives none.
  """

  geometry: str
  size: tuple[float, ...]
  mesh_path: str | None
  scale_3: tuple[float, float, float]
  origin_44: np.ndarray
  rgba: tuple[float, float, float, float] | None


@dataclasses.dataclass(frozen=True)
class Link:
  """A URDF `<link>`: its name and visuals (possibly none)."""

  name: str
  visuals: tuple[Visual, ...]


@dataclasses.dataclass(frozen=True)
class Joint:
  """A URDF `<joint>`; the child link frame equals the joint frame.

  Attributes:
    name: joint name.
    type: "revolute", "continuous", "prismatic" or "fixed".
    parent, child: link names.
    origin_xyz, origin_rpy: pose of the joint frame in the parent link frame at q = 0.
    axis: unit axis in the joint frame (URDF default (1, 0, 0); (0, 0, 0) stays for fixed).
    lower, upper: position limits (radians or metres); ±inf for continuous joints, joints
      without a `<limit>`, and 0 for fixed joints.
  """

  name: str
  type: str
  parent: str
  child: str
  origin_xyz: tuple[float, float, float]
  origin_rpy: tuple[float, float, float]
  axis: tuple[float, float, float]
  lower: float
  upper: float

  @property
  def origin_44(self) -> np.ndarray:
    """Float64 4x4 pose of the joint frame in the parent frame at q = 0."""
    return origin_matrix(self.origin_xyz, self.origin_rpy)


@dataclasses.dataclass(frozen=True)
class RobotModel:
  """A parsed URDF: links and joints in file order and the root link's name."""

  name: str
  links: tuple[Link, ...]
  joints: tuple[Joint, ...]
  root: str

  @property
  def link_names(self) -> tuple[str, ...]:
    return tuple(link.name for link in self.links)

  def link(self, name: str) -> Link:
    """The link called `name`; a UrdfError names it when the robot has none."""
    for link in self.links:
      if link.name == name:
        return link
    raise UrdfError(f"robot {self.name!r} has no link {name!r}; links: {list(self.link_names)}")

  def link_index(self, name: str) -> int:
    """Position of link `name` in `links` (the order of forward-kinematics outputs)."""
    return self.link_names.index(self.link(name).name)

  def parent_joint(self, link_name: str) -> Joint | None:
    """The joint whose child is `link_name`; None for the root."""
    for joint in self.joints:
      if joint.child == link_name:
        return joint
    return None


def movable_joints(model: RobotModel) -> tuple[Joint, ...]:
  """Non-fixed joints in URDF order: the order of qpos entries."""
  return tuple(j for j in model.joints if j.type != "fixed")


def chain(model: RobotModel, tip_link: str) -> tuple[Joint, ...]:
  """Joints (fixed ones included) from the root down to `tip_link`, root side first."""
  model.link(tip_link)  # Raises for an unknown link.
  joints = []
  name = tip_link
  while name != model.root:
    joint = model.parent_joint(name)
    if joint is None:  # Unreachable for a validated model.
      raise UrdfError(f"link {name!r} is not connected to the root {model.root!r}")
    joints.append(joint)
    name = joint.parent
  return tuple(reversed(joints))


def _floats(text: str | None, count: int, default: Sequence[float], what: str) -> tuple:
  if text is None:
    return tuple(float(v) for v in default)
  try:
    values = tuple(float(v) for v in text.split())
  except ValueError:
    raise UrdfError(f"{what}: expected {count} numbers, got {text!r}") from None
  if len(values) != count or not all(np.isfinite(values)):
    raise UrdfError(f"{what}: expected {count} finite numbers, got {text!r}")
  return values


def _origin(element: ET.Element, what: str) -> tuple[tuple, tuple]:
  origin = element.find("origin")
  if origin is None:
    return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
  xyz = _floats(origin.get("xyz"), 3, (0, 0, 0), f"{what} origin xyz")
  rpy = _floats(origin.get("rpy"), 3, (0, 0, 0), f"{what} origin rpy")
  return xyz, rpy


def _mesh_candidates(filename: str, urdf_dir: str) -> list[str]:
  """Absolute paths where a URDF mesh name may live, most likely first."""
  if filename.startswith("file://"):
    return [os.path.abspath(filename[len("file://"):])]
  if filename.startswith("package://"):
    rest = filename[len("package://"):].lstrip("/")
    parts = rest.split("/", 1)
    inside = parts[1] if len(parts) == 2 else rest  # Path without the package name.
    candidates = [os.path.join(urdf_dir, rest), os.path.join(urdf_dir, inside)]
    folder = urdf_dir
    while True:  # Folders above the URDF: the package may be a sibling or an ancestor.
      up = os.path.dirname(folder)
      if up == folder:
        break
      folder = up
      candidates += [os.path.join(folder, rest), os.path.join(folder, inside)]
    return [os.path.abspath(c) for c in candidates]
  return [os.path.abspath(os.path.join(urdf_dir, filename))]


def _resolve_mesh(filename: str, urdf_dir: str) -> str:
  candidates = _mesh_candidates(filename, urdf_dir)
  for path in candidates:
    if os.path.isfile(path):
      return path
  return candidates[0]


def _named_colors(root: ET.Element) -> dict[str, tuple]:
  """rgba of every named material defined anywhere (top level or inline); first one wins."""
  colors = {}
  for material in root.iter("material"):
    name, color = material.get("name"), material.find("color")
    if name and color is not None and name not in colors:
      colors[name] = _floats(color.get("rgba"), 4, (1, 1, 1, 1), f"material {name!r} rgba")
  return colors


def _visual(element: ET.Element, link: str, urdf_dir: str, colors: dict, check_meshes: bool):
  what = f"link {link!r} visual"
  xyz, rpy = _origin(element, what)
  origin_44 = origin_matrix(xyz, rpy)
  origin_44.flags.writeable = False
  geometry = element.find("geometry")
  shapes = [] if geometry is None else [g for g in geometry if g.tag in GEOMETRY_KINDS]
  if not shapes:
    raise UrdfError(f"{what} has no mesh, box, cylinder or sphere geometry")
  shape = shapes[0]
  mesh_path, scale, size = None, (1.0, 1.0, 1.0), ()
  if shape.tag == "mesh":
    filename = shape.get("filename")
    if not filename:
      raise UrdfError(f"{what} has a mesh without a filename")
    mesh_path = _resolve_mesh(filename, urdf_dir)
    if check_meshes and not os.path.isfile(mesh_path):
      raise UrdfError(f"{what}: mesh file {filename!r} not found (looked for {mesh_path})")
    scale_text = shape.get("scale")
    if scale_text is not None and len(scale_text.split()) == 1:
      scale_text = " ".join([scale_text] * 3)  # A single number scales all axes.
    scale = _floats(scale_text, 3, (1, 1, 1), f"{what} mesh scale")
  elif shape.tag == "box":
    size = _floats(shape.get("size"), 3, (), f"{what} box size")
  elif shape.tag == "cylinder":
    size = (_floats(shape.get("radius"), 1, (), f"{what} cylinder radius")[0],
            _floats(shape.get("length"), 1, (), f"{what} cylinder length")[0])
  else:
    size = _floats(shape.get("radius"), 1, (), f"{what} sphere radius")
  if any(s < 0 for s in size):
    raise UrdfError(f"{what}: {shape.tag} size must be non-negative, got {size}")
  rgba = None
  material = element.find("material")
  if material is not None:
    color = material.find("color")
    if color is not None:
      rgba = _floats(color.get("rgba"), 4, (1, 1, 1, 1), f"{what} material rgba")
    else:
      rgba = colors.get(material.get("name"))
  return Visual(geometry=shape.tag, size=size, mesh_path=mesh_path, scale_3=scale,
                origin_44=origin_44, rgba=rgba)


def _joint(element: ET.Element, link_names: set[str]) -> Joint:
  name = element.get("name")
  if not name:
    raise UrdfError("a <joint> has no name")
  jtype = element.get("type")
  if jtype in ("floating", "planar"):
    raise UrdfError(f"joint {name!r}: type {jtype!r} is not supported (use {JOINT_TYPES})")
  if jtype not in JOINT_TYPES:
    raise UrdfError(f"joint {name!r}: unknown joint type {jtype!r}; expected one of {JOINT_TYPES}")
  ends = {}
  for end in ("parent", "child"):
    tag = element.find(end)
    link = None if tag is None else tag.get("link")
    if not link:
      raise UrdfError(f"joint {name!r} has no {end} link")
    if link not in link_names:
      raise UrdfError(f"joint {name!r}: {end} link {link!r} is not defined")
    ends[end] = link
  xyz, rpy = _origin(element, f"joint {name!r}")
  axis_tag = element.find("axis")
  axis = _floats(None if axis_tag is None else axis_tag.get("xyz"), 3, (1, 0, 0),
                 f"joint {name!r} axis")
  lower, upper = -np.inf, np.inf
  if jtype == "fixed":
    lower = upper = 0.0
  else:
    norm = float(np.linalg.norm(axis))
    if norm < 1e-9:
      raise UrdfError(f"joint {name!r}: axis must be non-zero for a {jtype} joint")
    axis = tuple(float(a) / norm for a in axis)
    limit = element.find("limit")
    if jtype != "continuous" and limit is not None:
      lower = _floats(limit.get("lower"), 1, (-np.inf,), f"joint {name!r} lower limit")[0]
      upper = _floats(limit.get("upper"), 1, (np.inf,), f"joint {name!r} upper limit")[0]
      if lower > upper:
        raise UrdfError(f"joint {name!r}: lower limit {lower} > upper limit {upper}")
  return Joint(name=name, type=jtype, parent=ends["parent"], child=ends["child"],
               origin_xyz=xyz, origin_rpy=rpy, axis=axis, lower=float(lower),
               upper=float(upper))


def parse_urdf(text: str | bytes, urdf_dir: str, *, check_meshes: bool = True,
               source: str = "<string>") -> RobotModel:
  """Parses URDF text; mesh names resolve against `urdf_dir`. See `load_urdf`."""
  try:
    root = ET.fromstring(text)
  except ET.ParseError as e:
    raise UrdfError(f"{source} is not valid XML: {e}") from None
  if root.tag != "robot":
    raise UrdfError(f"{source} is not a URDF: the root element is <{root.tag}>, not <robot>")
  robot_name = root.get("name", "")
  colors = _named_colors(root)
  link_elements = root.findall("link")
  if not link_elements:
    raise UrdfError(f"{source}: robot {robot_name!r} has no links")
  links, seen = [], set()
  for element in link_elements:
    name = element.get("name")
    if not name:
      raise UrdfError(f"{source}: a <link> has no name")
    if name in seen:
      raise UrdfError(f"{source}: link {name!r} is defined twice")
    seen.add(name)
    visuals = tuple(_visual(v, name, urdf_dir, colors, check_meshes)
                    for v in element.findall("visual"))
    links.append(Link(name=name, visuals=visuals))
  joints, joint_names, parent_of = [], set(), {}
  for element in root.findall("joint"):
    joint = _joint(element, seen)
    if joint.name in joint_names:
      raise UrdfError(f"{source}: joint {joint.name!r} is defined twice")
    joint_names.add(joint.name)
    if joint.child in parent_of:
      raise UrdfError(f"{source}: link {joint.child!r} is the child of two joints "
                      f"({parent_of[joint.child]!r} and {joint.name!r})")
    parent_of[joint.child] = joint.name
    joints.append(joint)
  roots = [link.name for link in links if link.name not in parent_of]
  if len(roots) != 1:
    raise UrdfError(f"{source}: the links must form one tree with one root; roots: {roots} "
                    "(none means a cycle)")
  # Every link must hang from the root (a cycle elsewhere would leave links unreached).
  children: dict[str, list[str]] = {}
  for joint in joints:
    children.setdefault(joint.parent, []).append(joint.child)
  reached, stack = set(), [roots[0]]
  while stack:
    name = stack.pop()
    reached.add(name)
    stack += [c for c in children.get(name, []) if c not in reached]
  if reached != seen:
    raise UrdfError(f"{source}: links not connected to root {roots[0]!r}: "
                    f"{sorted(seen - reached)}")
  return RobotModel(name=robot_name, links=tuple(links), joints=tuple(joints), root=roots[0])


def load_urdf(path: str | os.PathLike, *, check_meshes: bool = True) -> RobotModel:
  """Reads a URDF file.

  Args:
    path: the .urdf file.
    check_meshes: raise when a visual's mesh file does not exist (the error names the link
      and the file); with False the unresolved path is kept.

  Returns:
    The RobotModel, links and joints in file order.

  Raises:
    UrdfError: unreadable or non-URDF file, unknown joint type, a joint naming a missing
      link, a broken tree, bad numbers, or (with check_meshes) a missing mesh.
  """
  path = os.path.abspath(os.fspath(path))
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UrdfError(f"cannot read URDF {path}: {e}") from None
  return parse_urdf(data, os.path.dirname(path), check_meshes=check_meshes, source=path)
