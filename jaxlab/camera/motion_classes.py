"""Camera-motion classes: 27 translation classes (each camera axis static, positive or negative) and 7
rotation classes; a frame's class is `translation * 7 + rotation` (189 in all).

Axes are the camera's own (OpenCV: x right, y down, z forward), so "truck right" is +x, "pedestal
down" is +y, "dolly in" is +z. Rotations about the camera's own axes, signs of the rotation vector
of one step (`inv(P_k) P_k+1`): +x is tilt up, +y is pan right, +z is roll clockwise (the camera's x
axis turning toward its y axis); the negative signs are tilt down, pan left and roll counter-clockwise.
"""

from __future__ import annotations

import itertools

AXIS_WORDS = (("left", "right"), ("up", "down"), ("out", "in"))  # (negative, positive) per camera axis
AXIS_VERBS = ("truck", "pedestal", "dolly")

# Each translation class: a sign per axis, -1, 0 or +1 (x, y, z). Class 0 is static.
TRANSLATION_SIGNS: tuple[tuple[int, int, int], ...] = tuple(
    sorted(itertools.product((-1, 0, 1), repeat=3), key=lambda s: (sum(map(abs, s)), s)))
ROTATIONS = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "roll_cw", "roll_ccw")
NUM_TRANSLATION, NUM_ROTATION = len(TRANSLATION_SIGNS), len(ROTATIONS)
NUM_CLASSES = NUM_TRANSLATION * NUM_ROTATION


def translation_name(index: int) -> str:
  """e.g. "static", "dolly_in", "truck_left+pedestal_up"."""
  signs = TRANSLATION_SIGNS[index]
  parts = [f"{verb}_{words[(s + 1) // 2]}" for verb, words, s in zip(AXIS_VERBS, AXIS_WORDS, signs) if s]
  return "+".join(parts) if parts else "static"


def translation_index(signs: tuple[int, int, int]) -> int:
  return TRANSLATION_SIGNS.index(tuple(int(s) for s in signs))


def class_index(translation: int, rotation: int) -> int:
  if not (0 <= translation < NUM_TRANSLATION and 0 <= rotation < NUM_ROTATION):
    raise ValueError(f"translation must be in [0, {NUM_TRANSLATION}) and rotation in [0, {NUM_ROTATION}), "
                     f"got {translation}, {rotation}")
  return translation * NUM_ROTATION + rotation


def class_name(index: int) -> str:
  translation, rotation = divmod(int(index), NUM_ROTATION)
  return f"{translation_name(translation)}/{ROTATIONS[rotation]}"
