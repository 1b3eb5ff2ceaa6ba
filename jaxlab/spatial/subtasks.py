"""The MultiSPA subtasks: their names, families and answer kinds.

26 subtasks: depth (4), visual correspondence (2), camera movement (9), object size (3), and object
movement (4 per track source; the paper's two sources, ADT and Panoptic Studio, make 8). The embedded
generator has two track sources of its own (`room_objects`, `room_figures`), so it makes 26 too.
"""

from __future__ import annotations

DEPTH = ("depth_value_dot", "depth_value_coord", "depth_compare_dot", "depth_compare_coord")
CORRESPONDENCE = ("correspondence_mcq", "correspondence_coord")
CAMERA = ("camera_left_right", "camera_up_down", "camera_forward_backward", "camera_yaw_direction",
          "camera_pitch_direction", "camera_yaw_degrees", "camera_pitch_degrees", "camera_distance",
          "camera_vector")
OBJECT_SIZE = ("object_size_height", "object_size_width", "object_size_length")
OBJECT_MOVEMENT_KINDS = ("distance_dot", "distance_coord", "vector_dot", "vector_coord")

ANSWER_KIND = {
    "depth_value_dot": "scalar", "depth_value_coord": "scalar",
    "depth_compare_dot": "label", "depth_compare_coord": "coord",
    "correspondence_mcq": "label", "correspondence_coord": "coord",
    "camera_left_right": "label", "camera_up_down": "label", "camera_forward_backward": "label",
    "camera_yaw_direction": "label", "camera_pitch_direction": "label",
    "camera_yaw_degrees": "scalar", "camera_pitch_degrees": "scalar",
    "camera_distance": "scalar", "camera_vector": "vector",
    "object_size_height": "scalar", "object_size_width": "scalar", "object_size_length": "scalar",
}

# The choices of each label subtask (for chance and majority baselines).
LABEL_CHOICES = {
    "depth_compare_dot": ("A", "B"),
    "correspondence_mcq": ("A", "B", "C", "D"),
    "camera_left_right": ("left", "right"),
    "camera_up_down": ("up", "down"),
    "camera_forward_backward": ("forward", "backward"),
    "camera_yaw_direction": ("left", "right"),
    "camera_pitch_direction": ("up", "down"),
}

STATIC_SUBTASKS = DEPTH + CORRESPONDENCE + CAMERA + OBJECT_SIZE


def object_movement_subtask(source: str, kind: str) -> str:
  """e.g. ("adt", "vector_dot") -> "object_movement_adt_vector_dot"."""
  if kind not in OBJECT_MOVEMENT_KINDS:
    raise ValueError(f"object-movement kind must be one of {OBJECT_MOVEMENT_KINDS}, got {kind!r}")
  if not source or not source.replace("_", "").isalnum():
    raise ValueError(f"a track source name is letters, digits and underscores, got {source!r}")
  return f"object_movement_{source}_{kind}"


def answer_kind(subtask: str) -> str:
  """The scorer's comparison for a subtask name ("label", "scalar", "vector" or "coord")."""
  if subtask in ANSWER_KIND:
    return ANSWER_KIND[subtask]
  if subtask.startswith("object_movement_"):
    return "scalar" if "_distance_" in subtask else "vector"
  raise ValueError(f"unknown MultiSPA subtask {subtask!r}")


def family(subtask: str) -> str:
  for name, group in (("depth", DEPTH), ("correspondence", CORRESPONDENCE), ("camera", CAMERA),
                      ("object_size", OBJECT_SIZE)):
    if subtask in group:
      return name
  if subtask.startswith("object_movement_"):
    return "object_movement"
  raise ValueError(f"unknown MultiSPA subtask {subtask!r}")
