"""Synthetic DataDoP-style shots: a composed camera move around a Gaussian scene, captions, first frame.

`make_shot(seed)` returns a `datadop.Shot`: 120 camera-to-world poses (OpenCV axes, world z up, the
world of `jaxlab.splat.synthetic`), pinhole intrinsics, a motion caption, a directorial caption
(detailed and concise), and the first frame's RGB and depth rendered with `jaxlab.splat.render`.
`plan_shot(seed)` does everything but the rendering (pure NumPy, fast) and also returns the
`ShotMeta` (segments, scene, template ids); `make_shots(n, seed, split=...)` makes many.

Motion. A shot has 1-3 segments over the 119 steps between its 120 frames (each at least 30 steps).
Each segment is a move from `KINDS`: a translation class and a rotation class of `motion_classes`
(dolly, truck, pedestal, pan, tilt, rare roll, orbits = truck + opposite pan, cranes = pedestal +
opposite tilt, diagonals, push-ins while panning, a static hold), drawn with weights that favour
common moves; neighbouring segments differ and at least one moves. Poses are integrated from
camera-frame velocities: step k is c2w[k+1] = c2w[k] @ [Exp(w_k) | v_k], so the camera-frame step
inv(c2w[k]) @ c2w[k+1] has translation exactly v_k and rotation vector exactly w_k, and the tags of
`motion_tags.segment` follow the named classes by construction. Speeds sit well above the tagging
thresholds (0.02 units/s translation at 30 fps, 0.005 rad/frame rotation): a translation segment
covers 0.6-1.6 world units (0.1-2 units/s, at least 5x the threshold), pans turn 0.013-0.022
rad/frame and tilts/rolls 0.011-0.016 rad/frame at peak; a speed change (`SPEED_CHANGES`: steady,
accelerate, decelerate, ease in-out) scales the speed between 0.6x and 1x of the peak. Orbits turn
at w and move at w * d, d the depth of the framed object, so they circle it. Neighbouring segments
cross-fade their velocities over `BLEND_STEPS` (10) steps with a smoothstep, so the path is smooth.
The first pose looks at a scene object from 3.2-5 units away at 10-35 degrees elevation; a plan
whose path dips below the ground, enters an object, looks nearly straight up or down, or rolls past
about 50 degrees is redrawn (attempt seeds [seed, attempt]).

Captions come from templates. The motion caption names the segments in order with one of several
plain phrasings per class ("dollies in", "pushes in", "moves forward", ...; `TRANSLATION_PHRASES`,
`ROTATION_PHRASES`, `STATIC_PHRASES`) and sometimes the speed change; the directorial captions name
the scene's objects (by texture and colour: "the red brick block") and the framing intent of each
move (approaches, reveals, circles around ...), with the object framed at each segment's start and
end computed from the path.

Splits (`split_of`). A shot is identified by its synthetic scene id (`jaxlab.splat.synthetic.
build_scene(scene_id)`, ids 0..NUM_SCENES-1) or PLY scene, its motion-caption template id and its
directorial-caption template id. Held out for "test": scene ids with id % 5 == 4 (a PLY scene when
crc32 of its key % 5 == 4), motion templates `TEST_MOTION_TEMPLATES` and directorial templates
`TEST_DIRECTORIAL_TEMPLATES`. A "test" shot uses only held-out scenes and templates, a "train" shot
none of them, so no test scene or template is ever seen in training; the generator never mixes
them (`split_of` raises on a mixed shot). Phrasings of single moves are shared by both splits (a
template is a sentence frame, not a vocabulary). The synthetic scenes share one layout (three
spheres, two boxes, a floating cube on a gravel disc) with seeded jitter of positions and angles,
so a held-out scene is a new arrangement of known objects.

Rendering. Each scene becomes `NUM_GAUSSIANS` isotropic Gaussians (points sampled by area on the
surfaces seen by the dataset's orbit cameras, shaded colours, `from_point_cloud` scales halved so
edges stay sharp at 64 px; cached per scene), or a 3DGS PLY via `jaxlab.splat.load_ply`. One frame
per shot is rendered over a pale sky background. Depth is the renderer's expected camera-space z
(sum of w_i z_i / alpha, a weighted mean, so partly covered pixels are not pulled toward 0), set
to 0 where alpha < `DEPTH_MIN_ALPHA` (0.1: sky, faint Gaussian tails), so depth > 0 exactly where
something visible is rendered; float32, same size as the image.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import re
import zlib
from typing import Any

import numpy as np

from jaxlab.camera import motion_classes as mc
from jaxlab.camera.datadop import Shot

NUM_FRAMES = 120
NUM_STEPS = NUM_FRAMES - 1
NUM_SCENES = 20
MIN_SEGMENT_STEPS = 30
BLEND_STEPS = 10
NUM_GAUSSIANS = 8_000
GAUSSIAN_SCALE = 0.5  # `from_point_cloud` neighbour scales times this: sharper edges at 64 px
BACKGROUND_RGB = (0.62, 0.71, 0.84)  # pale sky behind the scene
DEPTH_MIN_ALPHA = 0.1  # depth is kept where at least this much of the pixel is covered
MAX_ATTEMPTS = 40
SPLITS = ("train", "test")
NUM_MOTION_TEMPLATES = 6
NUM_DIRECTORIAL_TEMPLATES = 8
TEST_MOTION_TEMPLATES = frozenset({4, 5})
TEST_DIRECTORIAL_TEMPLATES = frozenset({6, 7})
_TEST_SCENE_MODULUS = 5  # scene ids (and PLY keys' crc32) equal to 4 modulo this are held out

SPEED_CHANGES = ("steady", "accelerate", "decelerate", "ease")
_TILE = 16  # the renderer's tile edge (pixels)
_MIN_SPEED = 0.6  # slowest point of a speed profile, as a fraction of the peak


@dataclasses.dataclass(frozen=True)
class Kind:
  """A move: camera-frame translation signs (x right, y down, z forward), a rotation, a weight."""
  signs: tuple[int, int, int]
  rotation: str
  weight: float
  intent: str  # key of the directorial phrasing


KINDS: dict[str, Kind] = {
    "dolly_in": Kind((0, 0, 1), "static", 10, "approach"),
    "dolly_out": Kind((0, 0, -1), "static", 8, "withdraw"),
    "truck_left": Kind((-1, 0, 0), "static", 5, "slide"),
    "truck_right": Kind((1, 0, 0), "static", 5, "slide"),
    "pedestal_up": Kind((0, -1, 0), "static", 3, "rise"),
    "pedestal_down": Kind((0, 1, 0), "static", 3, "sink"),
    "pan_left": Kind((0, 0, 0), "pan_left", 6, "sweep"),
    "pan_right": Kind((0, 0, 0), "pan_right", 6, "sweep"),
    "tilt_up": Kind((0, 0, 0), "tilt_up", 3, "look_up"),
    "tilt_down": Kind((0, 0, 0), "tilt_down", 3, "look_down"),
    "roll_cw": Kind((0, 0, 0), "roll_cw", 0.5, "roll"),
    "roll_ccw": Kind((0, 0, 0), "roll_ccw", 0.5, "roll"),
    # Moving right while turning left keeps a point ahead framed: an arc around it.
    "orbit_right": Kind((1, 0, 0), "pan_left", 5, "orbit"),
    "orbit_left": Kind((-1, 0, 0), "pan_right", 5, "orbit"),
    "push_pan_left": Kind((0, 0, 1), "pan_left", 2, "push_turn"),
    "push_pan_right": Kind((0, 0, 1), "pan_right", 2, "push_turn"),
    "pull_tilt_up": Kind((0, 0, -1), "tilt_up", 1, "pull_up"),
    "crane_up": Kind((0, -1, 0), "tilt_down", 2, "crane_up"),
    "crane_down": Kind((0, 1, 0), "tilt_up", 2, "crane_down"),
    "diagonal_in_left": Kind((-1, 0, 1), "static", 1.5, "diagonal_in"),
    "diagonal_in_right": Kind((1, 0, 1), "static", 1.5, "diagonal_in"),
    "diagonal_out_left": Kind((-1, 0, -1), "static", 1, "diagonal_out"),
    "diagonal_out_right": Kind((1, 0, -1), "static", 1, "diagonal_out"),
    "rise_left": Kind((-1, -1, 0), "static", 0.7, "diagonal_rise"),
    "rise_right": Kind((1, -1, 0), "static", 0.7, "diagonal_rise"),
    "static": Kind((0, 0, 0), "static", 4, "hold"),
}
_ROTATION_AXIS = {"pan_left": (1, -1), "pan_right": (1, 1), "tilt_up": (0, 1), "tilt_down": (0, -1),
                  "roll_cw": (2, 1), "roll_ccw": (2, -1)}  # (camera axis, sign), as motion_tags reads them

# ----------------------------------------------------------------------------- phrasing

# Per single-axis translation: (verb, direction) pairs; the gerund comes from _GERUNDS.
TRANSLATION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "dolly_in": (("dollies", "in"), ("pushes", "in"), ("moves", "forward"), ("tracks", "forward"),
                 ("pushes", "forward")),
    "dolly_out": (("dollies", "out"), ("pulls", "back"), ("moves", "backward"), ("tracks", "backward"),
                  ("draws", "back")),
    "truck_left": (("trucks", "left"), ("moves", "left"), ("slides", "left"), ("tracks", "left"),
                   ("glides", "left")),
    "truck_right": (("trucks", "right"), ("moves", "right"), ("slides", "right"), ("tracks", "right"),
                    ("glides", "right")),
    "pedestal_up": (("pedestals", "up"), ("moves", "up"), ("cranes", "up"), ("booms", "up"), ("rises", "up")),
    "pedestal_down": (("pedestals", "down"), ("moves", "down"), ("cranes", "down"), ("booms", "down"),
                      ("sinks", "down")),
}
ROTATION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "pan_left": (("pans", "left"), ("yaws", "left"), ("turns", "left"), ("swivels", "left"), ("swings", "left")),
    "pan_right": (("pans", "right"), ("yaws", "right"), ("turns", "right"), ("swivels", "right"),
                  ("swings", "right")),
    "tilt_up": (("tilts", "up"), ("pitches", "up"), ("tilts", "upward"), ("angles", "upward"), ("looks", "up")),
    "tilt_down": (("tilts", "down"), ("pitches", "down"), ("tilts", "downward"), ("angles", "downward"),
                  ("looks", "down")),
    "roll_cw": (("rolls", "clockwise"), ("rolls", "right"), ("banks", "right"), ("cants", "clockwise")),
    "roll_ccw": (("rolls", "counter-clockwise"), ("rolls", "left"), ("banks", "left"),
                 ("cants", "counter-clockwise")),
}
STATIC_PHRASES = ("remains static", "holds still", "stays in place", "holds its position", "stays fixed")
_GERUNDS = {
    "dollies": "dollying", "pushes": "pushing", "moves": "moving", "tracks": "tracking", "pulls": "pulling",
    "draws": "drawing", "trucks": "trucking", "slides": "sliding", "glides": "gliding",
    "pedestals": "pedestaling", "cranes": "craning", "booms": "booming", "rises": "rising", "sinks": "sinking",
    "pans": "panning", "yaws": "yawing", "turns": "turning", "swivels": "swiveling", "swings": "swinging",
    "tilts": "tilting", "pitches": "pitching", "angles": "angling", "looks": "looking", "rolls": "rolling",
    "banks": "banking", "cants": "canting",
}
SPEED_WORDS = {
    "steady": ("steadily", "at an even pace"),
    "accelerate": ("with increasing speed", "faster and faster"),
    "decelerate": ("with decreasing speed", "more and more slowly"),
    "ease": ("smoothly", "gently"),
}

# Motion templates: an opening and the chain for 1, 2 and 3 segment phrases a, b, c.
_MOTION_TEMPLATES = (
    ("The camera {a}.", "The camera {a}, then {b}.", "The camera {a}, then {b}, and finally {c}."),
    ("The camera {a}.", "The camera {a} before it {b}.", "The camera {a}, {b}, and at last {c}."),
    ("Here the camera {a}.", "First, the camera {a}; after that it {b}.",
     "First, the camera {a}; after that it {b}; finally it {c}."),
    ("Throughout the shot the camera {a}.", "The camera {a} and then {b}.",
     "The camera {a}, then {b}, and ends as it {c}."),
    ("In a single take, the camera {a}.", "In a single take, the camera {a}, after which it {b}.",
     "In a single take, the camera {a}, after which it {b}, and it closes as it {c}."),
    ("Opening the shot, the camera {a}.", "Opening the shot, the camera {a}; it then {b}.",
     "Opening the shot, the camera {a}; it then {b}; to end, it {c}."),
)
# Directorial templates: (detailed frame, concise frame, chain for 1/2/3 intents).
_CHAINS = (
    ("{a}", "{a}, then {b}", "{a}, then {b}, and finally {c}"),
    ("{a}", "{a} before it {b}", "{a}, {b}, and at last {c}"),
    ("{a}", "{a}; next it {b}", "{a}; next it {b}; finally it {c}"),
    ("{a}", "{a} and then {b}", "{a}, then {b}, and ends as it {c}"),
)
_DIRECTORIAL_TEMPLATES = (
    ("The shot opens on the {subject_long} {setting}. The camera {chain}.",
     "The camera {chain}, framing the {subject}.", 0),
    ("Centred on the {subject_long}, the camera {chain}, keeping the {ground} in view.",
     "Centred on the {subject}, the camera {chain}.", 1),
    ("With the {subject_long} in frame and the {other_long} nearby, the camera {chain}.",
     "With the {subject} in frame, the camera {chain}.", 2),
    ("The camera begins on the {subject_long} {setting} and {chain}.",
     "The camera begins on the {subject} and {chain}.", 0),
    ("Against the {ground}, the camera frames the {subject_long}; it {chain}.",
     "The camera frames the {subject}; it {chain}.", 0),
    ("A calm view of the {subject_long} {setting}: the camera {chain}.",
     "A calm view of the {subject}: the camera {chain}.", 3),
    ("Starting from the {subject_long}, the camera {chain}, ending on the {final}.",
     "Starting from the {subject}, the camera {chain}.", 1),
    ("The camera introduces the {subject_long} beside the {other_long}, then {chain}.",
     "The camera introduces the {subject}, then {chain}.", 3),
)
# Intent phrasings: "same" when one object stays framed ({a}), "change" when the framed object
# changes from {a} to {b}; {dir} is the travel or turn direction, {ground} the floor.
_INTENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "approach": {"same": ("approaches the {a}", "pushes in toward the {a}, letting it fill the frame",
                          "closes in on the {a}"),
                 "change": ("approaches the {b}", "pushes in toward the {b}")},
    "withdraw": {"same": ("pulls away from the {a} to reveal the wider scene", "draws back from the {a}",
                          "backs away from the {a}, opening up the {ground}"),
                 "change": ("pulls away from the {a} to reveal the {b}", "draws back to reveal the {b}")},
    "slide": {"same": ("slides {dir} past the {a}", "glides {dir} alongside the {a}"),
              "change": ("slides {dir} from the {a} toward the {b}", "glides {dir} to bring the {b} into view")},
    "rise": {"same": ("rises above the {a} for a higher view", "lifts up over the {a}"),
             "change": ("rises from the {a} to show the {b}",)},
    "sink": {"same": ("sinks toward the {ground}, framing the {a} from lower down", "lowers beside the {a}"),
             "change": ("lowers from the {a} toward the {b}",)},
    "sweep": {"same": ("sweeps {dir} across the {a}", "turns {dir}, keeping the {a} at the edge of the frame"),
              "change": ("sweeps {dir} from the {a} to reveal the {b}", "turns {dir} toward the {b}")},
    "look_up": {"same": ("tilts up over the {a}", "looks up along the {a}"),
                "change": ("tilts up from the {a} to the {b}", "looks up to reveal the {b}")},
    "look_down": {"same": ("tilts down onto the {a}", "looks down at the {a}"),
                  "change": ("tilts down from the {a} to the {b}", "looks down toward the {b}")},
    "roll": {"same": ("rolls into a canted, uneasy angle on the {a}", "tips the horizon around the {a}"),
             "change": ("rolls into a canted angle, drifting from the {a} to the {b}",)},
    "orbit": {"same": ("circles around the {a}", "arcs {dir} around the {a}, showing its other side"),
              "change": ("circles {dir} around the {a} until the {b} comes into view",)},
    "push_turn": {"same": ("pushes forward while turning {dir} past the {a}",),
                  "change": ("pushes forward while turning {dir} toward the {b}",)},
    "pull_up": {"same": ("pulls back and looks up over the {a}",),
                "change": ("pulls back and looks up from the {a} to the {b}",)},
    "crane_up": {"same": ("cranes up and looks down over the {a}", "rises while angling down onto the {a}"),
                 "change": ("cranes up from the {a} to look down on the {b}",)},
    "crane_down": {"same": ("cranes down while looking up at the {a}",),
                   "change": ("cranes down from the {a}, looking up toward the {b}",)},
    "diagonal_in": {"same": ("moves diagonally {dir} toward the {a}",),
                    "change": ("moves diagonally {dir} from the {a} toward the {b}",)},
    "diagonal_out": {"same": ("drifts back and {dir}, away from the {a}",),
                     "change": ("drifts back and {dir}, revealing the {b}",)},
    "diagonal_rise": {"same": ("rises {dir} beside the {a}",),
                      "change": ("rises {dir} from the {a} toward the {b}",)},
    "hold": {"same": ("holds on the {a}", "lingers on the {a}"),
             "change": ("holds on the {a}",)},
}
_CONCISE_INTENTS = {
    "approach": "pushes in", "withdraw": "pulls back", "slide": "slides {dir}", "rise": "rises",
    "sink": "lowers", "sweep": "turns {dir}", "look_up": "tilts up", "look_down": "tilts down", "roll": "rolls",
    "orbit": "circles {dir}", "push_turn": "pushes in turning {dir}", "pull_up": "pulls back looking up",
    "crane_up": "cranes up", "crane_down": "cranes down", "diagonal_in": "moves in diagonally",
    "diagonal_out": "moves out diagonally", "diagonal_rise": "rises diagonally", "hold": "holds",
}

# Names of the synthetic scene's objects by texture: (short name, long description).
_OBJECT_NAMES = {
    "astronaut": ("astronaut sphere", "large sphere painted with an astronaut"),
    "coffee": ("coffee sphere", "brown sphere wrapped in a coffee-cup photo"),
    "chelsea": ("cat sphere", "orange sphere printed with a tabby cat"),
    "rocket": ("rocket crate", "blue crate printed with a rocket launch"),
    "brick": ("brick block", "red brick block"),
    "grass": ("floating cube", "green cube floating in mid-air"),
}


# ----------------------------------------------------------------------------- scenes


@dataclasses.dataclass(frozen=True)
class SceneObject:
  name: str  # short, e.g. "brick block"
  description: str  # long, e.g. "red brick block"
  center: tuple[float, float, float]
  radius: float  # bounding sphere


@dataclasses.dataclass(frozen=True)
class SceneContent:
  """What captions and camera placement need to know about a scene."""
  key: str  # "s004" (synthetic scene 4) or "ply-<stem>"
  objects: tuple[SceneObject, ...]
  ground: str
  setting: str
  open_view: str  # what is framed when no object is: "empty stretch of ground"
  floor_height: float | None  # cameras stay above it; None = unknown (PLY)


def _scene_key(scene: int | str | os.PathLike) -> str:
  if isinstance(scene, (int, np.integer)) and not isinstance(scene, bool):
    if not 0 <= int(scene) < 10**6:
      raise ValueError(f"synthetic scene id must be in [0, 1e6), got {scene}")
    return f"s{int(scene):03d}"
  if isinstance(scene, (str, os.PathLike)):
    stem = re.sub(r"[^A-Za-z0-9-]", "-", pathlib.Path(scene).stem) or "scene"
    return f"ply-{stem}"
  raise ValueError(f"scene must be a synthetic scene id (int) or a PLY path, got {scene!r}")


def scene_is_held_out(key: str) -> bool:
  """Whether the scene with this key belongs to the test split (see the module docstring)."""
  match = re.fullmatch(r"s(\d+)", key)
  value = int(match.group(1)) if match else zlib.crc32(key.encode())
  return value % _TEST_SCENE_MODULUS == _TEST_SCENE_MODULUS - 1


def _scene_pool(split: str) -> list[int]:
  return [s for s in range(NUM_SCENES) if scene_is_held_out(f"s{s:03d}") == (split == "test")]


@functools.lru_cache(maxsize=64)
def _synthetic_content(scene_id: int) -> SceneContent:
  # jaxlab.splat imports jax: deferred until a scene is first needed.
  from jaxlab.splat import synthetic

  scene = synthetic.build_scene(scene_id)
  objects = [SceneObject(*_OBJECT_NAMES[s.texture], tuple(s.center), float(s.radius)) for s in scene.spheres]
  objects += [SceneObject(*_OBJECT_NAMES[b.texture], tuple(b.center), float(np.linalg.norm(b.half_size)))
              for b in scene.boxes]
  return SceneContent(key=f"s{scene_id:03d}", objects=tuple(objects), ground="sandy gravel ground",
                      setting="on a sandy gravel ground", open_view="empty stretch of ground",
                      floor_height=synthetic.GROUND_HEIGHT)


@functools.lru_cache(maxsize=8)
def _ply_gaussians(path: str):
  from jaxlab.splat import load_ply

  return load_ply(path)


def _ply_content(path: str) -> SceneContent:
  gaussians = _ply_gaussians(path)
  means = np.asarray(gaussians.means)[np.asarray(gaussians.active)]
  center = np.median(means, axis=0)
  radius = float(np.percentile(np.linalg.norm(means - center, axis=1), 50))
  return SceneContent(key=_scene_key(path), objects=(SceneObject("scene", "captured scene", tuple(center), radius),),
                      ground="surroundings", setting="in its surroundings", open_view="edge of the scene",
                      floor_height=None)


def scene_content(scene: int | str | os.PathLike) -> SceneContent:
  """Objects and wording of a synthetic scene id or a 3DGS PLY file."""
  key = _scene_key(scene)
  return _synthetic_content(int(scene)) if key.startswith("s") else _ply_content(os.fspath(scene))


@functools.lru_cache(maxsize=NUM_SCENES + 4)
def scene_gaussians(scene: int | str):
  """The Gaussians of a scene (cached): synthetic scene `scene` sampled as described above, or a PLY."""
  if _scene_key(scene).startswith("ply-"):
    return _ply_gaussians(os.fspath(scene))
  from jaxlab.splat import from_point_cloud, synthetic

  poses, _ = synthetic.camera_poses(32, 1)
  points, colors = synthetic.sample_visible_points(
      synthetic.build_scene(int(scene)), _textures(), poses, NUM_GAUSSIANS,
      np.random.default_rng([int(scene), 7]), width=128, height=128)
  gaussians = from_point_cloud(points, colors, sh_degree=0, initial_opacity=0.95)
  return gaussians.replace(log_scales=gaussians.log_scales + math.log(GAUSSIAN_SCALE))


@functools.lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
  from jaxlab.splat import synthetic

  return synthetic.load_textures()


# ----------------------------------------------------------------------------- plans


@dataclasses.dataclass(frozen=True)
class Segment:
  """One move over steps [start, stop) (step k goes from frame k to frame k + 1)."""
  kind: str
  translation: int  # motion_classes translation class
  rotation: int  # index into motion_classes.ROTATIONS
  start: int
  stop: int
  speed_change: str
  subject_start: str | None  # object framed at the segment's first frame (None: no object in view)
  subject_end: str | None


@dataclasses.dataclass(frozen=True)
class ShotMeta:
  seed: int
  scene: str  # scene key, "s004" or "ply-<stem>"
  motion_template: int
  directorial_template: int
  segments: tuple[Segment, ...]

  @property
  def name(self) -> str:
    return f"syn_{self.scene}_m{self.motion_template}_d{self.directorial_template}_{self.seed}"


@dataclasses.dataclass(frozen=True, eq=False)
class ShotPlan:
  """Everything of a shot except the rendered frame."""
  meta: ShotMeta
  c2w_n44: np.ndarray  # [120, 4, 4] float64, OpenCV axes
  fov_x: float  # radians
  motion_caption: str
  directorial_caption: str
  concise_caption: str


_NAME = re.compile(r"syn_(?P<scene>s\d+|ply-[A-Za-z0-9-]+)_m(?P<m>\d+)_d(?P<d>\d+)_(?P<seed>\d+)")


def parse_name(name: str) -> tuple[str, int, int, int]:
  """(scene key, motion template, directorial template, seed) of a synthetic shot name."""
  match = _NAME.fullmatch(name)
  if match is None:
    raise ValueError(f"{name!r} is not a synthetic shot name (syn_<scene>_m<id>_d<id>_<seed>)")
  return match["scene"], int(match["m"]), int(match["d"]), int(match["seed"])


def split_of(shot: ShotMeta | Shot | str) -> str:
  """"train" or "test" for a shot, its meta or its name (rule in the module docstring).

  Raises:
    ValueError: a shot that mixes held-out and training scene/templates, or a foreign name.
  """
  if isinstance(shot, ShotMeta):
    scene, motion, directorial = shot.scene, shot.motion_template, shot.directorial_template
  else:
    scene, motion, directorial, _ = parse_name(shot if isinstance(shot, str) else shot.name)
  held_out = {"scene": scene_is_held_out(scene), "motion template": motion in TEST_MOTION_TEMPLATES,
              "directorial template": directorial in TEST_DIRECTORIAL_TEMPLATES}
  if all(held_out.values()):
    return "test"
  if not any(held_out.values()):
    return "train"
  parts = ", ".join(f"{k} {'held out' if v else 'training'}" for k, v in held_out.items())
  raise ValueError(f"shot mixes held-out and training parts ({parts}); it belongs to no split")


def _look_at(eye_3: np.ndarray, target_3: np.ndarray) -> np.ndarray:
  """OpenCV c2w [4, 4] at eye looking at target, image up toward world +z."""
  forward = target_3 - eye_3
  forward = forward / np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right = right / np.linalg.norm(right)
  c2w = np.eye(4)
  c2w[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
  c2w[:3, 3] = eye_3
  return c2w


def _exp_so3(w_3: np.ndarray) -> np.ndarray:
  angle = float(np.linalg.norm(w_3))
  if angle < 1e-12:
    return np.eye(3)
  k = np.array([[0, -w_3[2], w_3[1]], [w_3[2], 0, -w_3[0]], [-w_3[1], w_3[0], 0]]) / angle
  return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _integrate(c2w0_44: np.ndarray, lin_k3: np.ndarray, ang_k3: np.ndarray) -> np.ndarray:
  """Poses [K+1, 4, 4] with inv(c2w[k]) @ c2w[k+1] = [Exp(ang_k) | lin_k]."""
  c2w = np.empty((len(lin_k3) + 1, 4, 4))
  c2w[0] = c2w0_44
  step = np.eye(4)
  for k, (v, w) in enumerate(zip(lin_k3, ang_k3)):
    step[:3, :3], step[:3, 3] = _exp_so3(w), v
    c2w[k + 1] = c2w[k] @ step
  return c2w


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


def _profile(change: str, u_k: np.ndarray) -> np.ndarray:
  """Speed factor in [_MIN_SPEED, 1] at segment fraction u (clipped to [0, 1])."""
  u_k = np.clip(u_k, 0.0, 1.0)
  low = _MIN_SPEED
  if change == "steady":
    return np.ones_like(u_k)
  if change == "accelerate":
    return low + (1 - low) * _smoothstep(u_k)
  if change == "decelerate":
    return 1 - (1 - low) * _smoothstep(u_k)
  return low + (1 - low) * np.sin(np.pi * u_k)  # ease in and out


def _blend_weights(bounds: list[int]) -> np.ndarray:
  """[S, NUM_STEPS] partition of unity: segment s's weight, cross-faded over BLEND_STEPS at each boundary."""
  k = np.arange(NUM_STEPS) + 0.5
  ramps = [np.ones(NUM_STEPS)] + [_smoothstep((k - b) / BLEND_STEPS + 0.5) for b in bounds[1:-1]]
  ramps.append(np.zeros(NUM_STEPS))
  return np.stack([ramps[s] - ramps[s + 1] for s in range(len(bounds) - 1)])


def _framed_object(c2w_44: np.ndarray, content: SceneContent, fov_x: float) -> SceneObject | None:
  """The object whose centre is nearest the optical axis, if inside the (slightly widened) view."""
  best, best_angle = None, math.inf
  limit = math.tan(0.55 * fov_x)
  for obj in content.objects:
    p = c2w_44[:3, :3].T @ (np.asarray(obj.center) - c2w_44[:3, 3])
    if p[2] <= 0.1 or max(abs(p[0]), abs(p[1])) > limit * p[2]:
      continue
    angle = math.atan2(math.hypot(p[0], p[1]), p[2])
    if angle < best_angle:
      best, best_angle = obj, angle
  return best


def _segment_lengths(rng: np.random.Generator, count: int) -> list[int]:
  spare = NUM_STEPS - count * MIN_SEGMENT_STEPS
  shares = np.floor(rng.dirichlet(np.full(count, 2.0)) * spare).astype(int)
  shares[-1] += spare - shares.sum()
  return [MIN_SEGMENT_STEPS + int(s) for s in shares]


def _draw_kinds(rng: np.random.Generator, count: int) -> list[str]:
  names = list(KINDS)
  kinds: list[str] = []
  for _ in range(count):
    weights = np.array([KINDS[n].weight for n in names])
    for i, n in enumerate(names):
      if kinds and n == kinds[-1]:
        weights[i] = 0.0  # neighbours differ (also no static after static)
      if n == "static" and count == 1:
        weights[i] = 0.0  # a shot moves
    kinds.append(names[rng.choice(len(names), p=weights / weights.sum())])
  return kinds


def _valid(c2w_n44: np.ndarray, content: SceneContent) -> bool:
  eye_n3 = c2w_n44[:, :3, 3]
  if content.floor_height is not None and np.min(eye_n3[:, 2]) < content.floor_height + 0.25:
    return False
  for obj in content.objects:
    if np.min(np.linalg.norm(eye_n3 - np.asarray(obj.center), axis=1)) < obj.radius + 0.35:
      return False
  forward_z, right_z = c2w_n44[:, 2, 2], c2w_n44[:, 2, 0]
  return bool(np.all(forward_z > -0.95) and np.all(forward_z < 0.8) and np.all(np.abs(right_z) < 0.75))


def _try_plan(rng: np.random.Generator, content: SceneContent):
  """One random plan: (c2w [120,4,4], fov_x, kinds, bounds, speed changes) or None if invalid."""
  fov_x = float(rng.uniform(0.7, 1.1))
  count = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
  lengths = _segment_lengths(rng, count)
  bounds = [0, *np.cumsum(lengths).tolist()]
  kinds = _draw_kinds(rng, count)
  changes = [SPEED_CHANGES[int(rng.integers(len(SPEED_CHANGES)))] for _ in range(count)]

  focus = content.objects[int(rng.integers(len(content.objects)))]
  azimuth, elevation = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(10, 35))
  distance = rng.uniform(3.2, 5.0) + focus.radius
  target = np.asarray(focus.center) + rng.uniform(-0.1, 0.1, 3)
  eye = target + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                      math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
  c2w0 = _look_at(eye, target)

  # Peak velocities per segment; an orbit needs the depth of what it circles, taken from the
  # unblended path up to its start (the cross-fade barely moves it).
  k = np.arange(NUM_STEPS) + 0.5
  lin_s3, ang_s3, profiles = [], [], []
  pose = c2w0
  for s, name in enumerate(kinds):
    kind = KINDS[name]
    start, stop = bounds[s], bounds[s + 1]
    profile_k = _profile(changes[s], (k - start) / (stop - start))
    profiles.append(profile_k)
    profile_sum = float(profile_k[start:stop].sum())  # distance per unit peak speed
    ang = np.zeros(3)
    if kind.rotation != "static":
      axis, sign = _ROTATION_AXIS[kind.rotation]
      ang[axis] = sign * (rng.uniform(0.013, 0.022) if axis == 1 else rng.uniform(0.011, 0.016))
    signs = np.asarray(kind.signs, np.float64)
    if kind.intent == "orbit":
      framed = _framed_object(pose, content, fov_x)
      depth = 4.0 if framed is None else float(pose[:3, :3].T[2] @ (np.asarray(framed.center) - pose[:3, 3]))
      lin = signs * abs(ang[1]) * float(np.clip(depth, 1.5, 6.0))
    elif signs.any():
      lin = signs / np.linalg.norm(signs) * rng.uniform(0.6, 1.6) / profile_sum
    else:
      lin = np.zeros(3)
    lin_s3.append(lin)
    ang_s3.append(ang)
    pose = _integrate(pose, profile_k[start:stop, None] * lin, profile_k[start:stop, None] * ang)[-1]

  weights_sk = _blend_weights(bounds) * np.stack(profiles)
  c2w = _integrate(c2w0, weights_sk.T @ np.stack(lin_s3), weights_sk.T @ np.stack(ang_s3))
  if not _valid(c2w, content):
    return None
  return c2w, fov_x, kinds, bounds, changes


def _segment_phrase(rng: np.random.Generator, segment: Segment) -> str:
  kind = KINDS[segment.kind]
  if segment.kind == "static":
    return STATIC_PHRASES[int(rng.integers(len(STATIC_PHRASES)))]
  parts = []
  for axis, sign in enumerate(kind.signs):
    if sign:
      name = f"{mc.AXIS_VERBS[axis]}_{mc.AXIS_WORDS[axis][(sign + 1) // 2]}"
      options = TRANSLATION_PHRASES[name]
      parts.append(options[int(rng.integers(len(options)))])
  translation = None
  if parts:
    if len(parts) == 2 and parts[0][0] == parts[1][0]:  # same verb: "moves left and forward"
      translation = (parts[0][0], f"{parts[0][1]} and {parts[1][1]}")
    else:
      translation = (parts[0][0], " and ".join([parts[0][1]] + [f"{v} {d}" for v, d in parts[1:]]))
  rotation = None
  if kind.rotation != "static":
    options = ROTATION_PHRASES[kind.rotation]
    rotation = options[int(rng.integers(len(options)))]
  speed = SPEED_WORDS[segment.speed_change][int(rng.integers(2))] if rng.uniform() < 0.5 else None
  first, second = (translation, rotation) if translation else (rotation, None)
  if second and rng.uniform() < 0.3:  # sometimes lead with the turn: "pans left while dollying in"
    first, second = second, first
  text = f"{first[0]} {first[1]}"
  if speed:
    text += f" {speed}"
  if second:
    text += f" while {_GERUNDS[second[0]]} {second[1]}"
  return text


def _direction(kind: Kind) -> str:
  x = kind.signs[0] if kind.signs[0] else (1 if kind.rotation == "pan_right" else -1)
  return "right" if x > 0 else "left"


def _intent(rng: np.random.Generator, segment: Segment, content: SceneContent, fallback: str) -> tuple[str, str]:
  kind = KINDS[segment.kind]
  a = segment.subject_start or segment.subject_end or fallback
  b = segment.subject_end or fallback
  options = _INTENTS[kind.intent]["change" if b != a else "same"]
  fields = {"a": a, "b": b, "dir": _direction(kind), "ground": content.ground}
  detailed = options[int(rng.integers(len(options)))].format(**fields)
  return detailed, _CONCISE_INTENTS[kind.intent].format(**fields)


def _captions(rng: np.random.Generator, meta: ShotMeta, content: SceneContent) -> tuple[str, str, str]:
  segments = meta.segments
  letters = "abc"[:len(segments)]
  phrases = {c: _segment_phrase(rng, s) for c, s in zip(letters, segments)}
  motion = _MOTION_TEMPLATES[meta.motion_template][len(segments) - 1].format(**phrases)

  by_name = {o.name: o for o in content.objects}
  subject = segments[0].subject_start or content.objects[0].name
  others = [o for o in content.objects if o.name != subject] or list(content.objects)
  other = others[int(rng.integers(len(others)))]
  intents = [_intent(rng, s, content, fallback=content.open_view) for s in segments]
  detailed_frame, concise_frame, chain_id = _DIRECTORIAL_TEMPLATES[meta.directorial_template]
  chain = _CHAINS[chain_id][len(segments) - 1]
  fields = {"subject": subject, "subject_long": by_name[subject].description if subject in by_name else subject,
            "other_long": other.description, "ground": content.ground, "setting": content.setting,
            "final": segments[-1].subject_end or content.open_view}
  detailed = detailed_frame.format(chain=chain.format(**dict(zip(letters, (d for d, _ in intents)))), **fields)
  concise = concise_frame.format(chain=chain.format(**dict(zip(letters, (c for _, c in intents)))), **fields)
  return motion, detailed, concise


def _resolve(scene, split: str | None) -> tuple[Any, str]:
  if split is not None and split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
  if scene is None:
    return None, split or "train"
  scene_split = "test" if scene_is_held_out(_scene_key(scene)) else "train"
  if split is not None and split != scene_split:
    raise ValueError(f"scene {_scene_key(scene)} belongs to the {scene_split} split, not {split!r}")
  return scene, scene_split


def plan_shot(seed: int, *, scene: int | str | os.PathLike | None = None, split: str | None = None) -> ShotPlan:
  """The trajectory, captions and meta of shot `seed` (deterministic), without rendering.

  Args:
    seed: a non-negative int.
    scene: a synthetic scene id, a 3DGS PLY path, or None to draw one from the split's scenes.
    split: "train", "test" or None (the scene's split if `scene` is given, else "train"). The scene
      and both caption templates are drawn from this split.

  Raises:
    ValueError: a bad seed, split or scene, or a scene of the other split.
  """
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  seed = int(seed)
  scene, split = _resolve(scene, split)
  rng = np.random.default_rng([seed, 0])
  if scene is None:
    pool = _scene_pool(split)
    scene = pool[int(rng.integers(len(pool)))]
  held_out = split == "test"
  motion_pool = [t for t in range(NUM_MOTION_TEMPLATES) if (t in TEST_MOTION_TEMPLATES) == held_out]
  directorial_pool = [t for t in range(NUM_DIRECTORIAL_TEMPLATES) if (t in TEST_DIRECTORIAL_TEMPLATES) == held_out]
  motion_template = motion_pool[int(rng.integers(len(motion_pool)))]
  directorial_template = directorial_pool[int(rng.integers(len(directorial_pool)))]
  content = scene_content(scene)

  for attempt in range(MAX_ATTEMPTS):
    planned = _try_plan(np.random.default_rng([seed, 1, attempt]), content)
    if planned is not None:
      break
  else:
    raise RuntimeError(f"no valid camera path for seed {seed} in scene {content.key} after {MAX_ATTEMPTS} tries")
  c2w, fov_x, kinds, bounds, changes = planned

  segments = []
  for s, name in enumerate(kinds):
    kind = KINDS[name]
    start_obj = _framed_object(c2w[bounds[s]], content, fov_x)
    end_obj = _framed_object(c2w[bounds[s + 1]], content, fov_x)
    segments.append(Segment(
        kind=name, translation=mc.translation_index(kind.signs), rotation=mc.ROTATIONS.index(kind.rotation),
        start=bounds[s], stop=bounds[s + 1], speed_change=changes[s],
        subject_start=start_obj.name if start_obj else None, subject_end=end_obj.name if end_obj else None))
  meta = ShotMeta(seed=seed, scene=content.key, motion_template=motion_template,
                  directorial_template=directorial_template, segments=tuple(segments))
  motion, detailed, concise = _captions(np.random.default_rng([seed, 2]), meta, content)
  return ShotPlan(meta=meta, c2w_n44=c2w, fov_x=fov_x, motion_caption=motion, directorial_caption=detailed,
                  concise_caption=concise)


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8)
def _renderer(capacity: int):
  import jax
  import jax.numpy as jnp

  from jaxlab.splat import render

  background = jnp.asarray(BACKGROUND_RGB, jnp.float32)
  return jax.jit(lambda gaussians, camera: render(gaussians, camera, background=background, capacity=capacity,
                                                  on_overflow="ignore"))


def _capacity_guess(gaussians, c2w_44: np.ndarray, *, focal: float, width: int, height: int) -> int:
  """Gaussian-tile intersections to reserve: a host-side count from 3-sigma squares of the largest
  scale (a slight over-estimate), rounded up to a power of two so few sizes get compiled. An
  under-estimate is caught by the renderer's overflow flag and doubled."""
  means = np.asarray(gaussians.means, np.float64)[np.asarray(gaussians.active)]
  sigma = np.exp(np.asarray(gaussians.log_scales, np.float64)[np.asarray(gaussians.active)].max(axis=1))
  p = (means - c2w_44[:3, 3]) @ c2w_44[:3, :3]
  front = p[:, 2] > 0.05
  p, z, sigma = p[front], p[front, 2], sigma[front]
  radius = np.ceil(3 * np.sqrt((sigma * focal / z) ** 2 + 0.3))
  spans = []
  for coord, size in ((focal * p[:, 0] / z + 0.5 * width, width), (focal * p[:, 1] / z + 0.5 * height, height)):
    low = np.clip(np.floor((coord - radius) / _TILE), 0, None)
    high = np.clip(np.floor((coord + radius) / _TILE), None, math.ceil(size / _TILE) - 1)
    spans.append(np.clip(high - low + 1, 0, None))
  count = float(np.sum(spans[0] * spans[1])) * 1.1
  return max(1024, 1 << max(0, math.ceil(count) - 1).bit_length())


def render_frame(gaussians, c2w_44: np.ndarray, *, focal: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
  """(rgb uint8 [H, W, 3], depth float32 [H, W]) of one OpenCV c2w pose; depth 0 where alpha < DEPTH_MIN_ALPHA."""
  from jaxlab.splat import Camera

  camera = Camera.from_opencv(np.asarray(c2w_44, np.float32), fx=focal, fy=focal, cx=0.5 * width, cy=0.5 * height,
                              width=width, height=height, near=0.05)
  capacity = _capacity_guess(gaussians, c2w_44, focal=focal, width=width, height=height)
  while True:
    out = _renderer(capacity)(gaussians, camera)
    if not bool(out.overflow):
      break
    capacity *= 2
  alpha = np.asarray(out.alpha)
  rgb = np.clip(np.round(np.asarray(out.rgb) * 255.0), 0, 255).astype(np.uint8)
  depth = np.where(alpha >= DEPTH_MIN_ALPHA, np.asarray(out.depth), 0.0).astype(np.float32)
  return rgb, depth


# ----------------------------------------------------------------------------- shots


def shot_from_plan(plan: ShotPlan, *, scene: int | str | os.PathLike | None = None, image_size: int = 64,
                   render: bool = True) -> Shot:
  """The `Shot` of a plan; `scene` (needed only for a PLY scene) defaults to the plan's synthetic scene."""
  if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
    raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
  focal = 0.5 * image_size / math.tan(0.5 * plan.fov_x)
  rgb = depth = None
  if render:
    if scene is None:
      if not plan.meta.scene.startswith("s"):
        raise ValueError(f"plan of PLY scene {plan.meta.scene}: pass scene=<the PLY path> to render it")
      scene = int(plan.meta.scene[1:])
    if _scene_key(scene) != plan.meta.scene:
      raise ValueError(f"scene {_scene_key(scene)} is not the plan's scene {plan.meta.scene}")
    key = int(scene) if isinstance(scene, (int, np.integer)) else os.fspath(scene)
    rgb, depth = render_frame(scene_gaussians(key),
                              plan.c2w_n44[0], focal=focal, width=image_size, height=image_size)
  return Shot(name=plan.meta.name, c2w_n44=plan.c2w_n44, fl_x=focal, fl_y=focal, cx=0.5 * image_size,
              cy=0.5 * image_size, width=image_size, height=image_size, motion_caption=plan.motion_caption,
              directorial_caption=plan.directorial_caption, concise_caption=plan.concise_caption,
              rgb_hw3=rgb, depth_hw=depth)


def make_shot(seed: int, *, scene: int | str | os.PathLike | None = None, split: str | None = None,
              image_size: int = 64, render: bool = True) -> Shot:
  """Shot `seed` (deterministic): see `plan_shot` for the arguments; `render=False` leaves rgb/depth None."""
  return shot_from_plan(plan_shot(seed, scene=scene, split=split), scene=scene, image_size=image_size,
                        render=render)


def make_shots(n: int, seed: int, *, split: str = "train", image_size: int = 64, render: bool = True) -> list[Shot]:
  """`n` shots of `split` with shot seeds seed * 1_000_000 + i (i < n <= 1_000_000)."""
  if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 1_000_000:
    raise ValueError(f"n must be an int in [0, 1e6], got {n!r}")
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return [make_shot(seed * 1_000_000 + i, split=split, image_size=image_size, render=render) for i in range(n)]
