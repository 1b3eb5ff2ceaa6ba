"""InternVL image-token layout: expand image/video placeholders in a prompt, locate visual tokens in ids.

Each image of n tiles becomes `<img>` + `<IMG_CONTEXT>` * (tokens_per_tile * n) + `</img>`;
tokens_per_tile is 256 for InternVL3 (a 448 tile gives 32 x 32 patches, 16 x 16 after pixel shuffle).
A video of F frames becomes F lines joined by "\\n", line f (1-based) being
`Frame{f}: <img>` + `<IMG_CONTEXT>` * tokens_per_tile + `</img>` (one tile per frame).

Placeholders follow transformers' `InternVLProcessor`: the prompt holds one `<IMG_CONTEXT>` per
image (what its chat template writes for an image part) and one `<video>` per video, and images
are not numbered. Prompts written for the original InternVL code use `<image>` (and number
images themselves, e.g. "Image-1: <image>"); pass `image_placeholder="<image>"` for those.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence

import numpy as np

IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = IMG_CONTEXT
VIDEO_PLACEHOLDER = "<video>"
TOKENS_PER_TILE = 256


def _check_counts(name: str, counts: Sequence[int]) -> list[int]:
  if isinstance(counts, (str, bytes)) or not isinstance(counts, (Sequence, np.ndarray)):
    raise TypeError(f"{name} must be a sequence of ints, got {type(counts).__name__}")
  checked = []
  for count in counts:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
      raise ValueError(f"{name} must hold positive ints, got {list(counts)!r}")
    checked.append(int(count))
  return checked


def _check_tokens_per_tile(tokens_per_tile: int) -> int:
  if isinstance(tokens_per_tile, bool) or not isinstance(tokens_per_tile, numbers.Integral) or tokens_per_tile < 1:
    raise ValueError(f"tokens_per_tile must be a positive int, got {tokens_per_tile!r}")
  return int(tokens_per_tile)


def image_token_block(num_tiles: int, *, tokens_per_tile: int = TOKENS_PER_TILE) -> str:
  """`<img>` + `<IMG_CONTEXT>` * (tokens_per_tile * num_tiles) + `</img>`."""
  (num_tiles,) = _check_counts("num_tiles", [num_tiles])
  tokens_per_tile = _check_tokens_per_tile(tokens_per_tile)
  return IMG_START + IMG_CONTEXT * (tokens_per_tile * num_tiles) + IMG_END


def video_token_block(num_frames: int, *, tokens_per_tile: int = TOKENS_PER_TILE) -> str:
  """"Frame1: <img>...</img>" through "Frame{num_frames}: ...", joined by newlines; one tile per frame."""
  (num_frames,) = _check_counts("num_frames", [num_frames])
  block = image_token_block(1, tokens_per_tile=tokens_per_tile)
  return "\n".join(f"Frame{f + 1}: {block}" for f in range(num_frames))


def expand_image_tokens(
    prompt: str,
    num_tiles_per_image: Sequence[int],
    *,
    tokens_per_tile: int = TOKENS_PER_TILE,
    num_frames_per_video: Sequence[int] = (),
    image_placeholder: str = IMAGE_PLACEHOLDER,
    video_placeholder: str = VIDEO_PLACEHOLDER,
) -> str:
  """Replace the i-th image placeholder by image i's token block and the v-th video placeholder by video v's.

  Args:
    prompt: text with one image_placeholder per image and one video_placeholder per video.
    num_tiles_per_image: tiles of each image, thumbnail included, in prompt order.
    tokens_per_tile: `<IMG_CONTEXT>` tokens per tile.
    num_frames_per_video: frames of each video, in prompt order.
    image_placeholder, video_placeholder: the strings that mark where images / videos go.

  Raises:
    ValueError: placeholder and image (or video) counts differ; bad counts or placeholders.
  """
  if not isinstance(prompt, str):
    raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
  tiles = _check_counts("num_tiles_per_image", num_tiles_per_image)
  frames = _check_counts("num_frames_per_video", num_frames_per_video)
  tokens_per_tile = _check_tokens_per_tile(tokens_per_tile)
  for name, value in (("image_placeholder", image_placeholder), ("video_placeholder", video_placeholder)):
    if not isinstance(value, str) or not value:
      raise ValueError(f"{name} must be a non-empty str, got {value!r}")
  if image_placeholder == video_placeholder:
    raise ValueError(f"image_placeholder and video_placeholder must differ, both are {image_placeholder!r}")

  pattern = re.compile(f"(?P<image>{re.escape(image_placeholder)})|(?P<video>{re.escape(video_placeholder)})")
  kinds = [match.lastgroup for match in pattern.finditer(prompt)]
  num_image_slots, num_video_slots = kinds.count("image"), kinds.count("video")
  if num_image_slots != len(tiles):
    hint = ""
    if image_placeholder != "<image>" and "<image>" in prompt:
      hint = " (the prompt holds '<image>': pass image_placeholder='<image>' for original-InternVL prompts)"
    raise ValueError(
        f"prompt holds {num_image_slots} {image_placeholder!r} placeholders but {len(tiles)} images were given{hint}"
    )
  if num_video_slots != len(frames):
    raise ValueError(
        f"prompt holds {num_video_slots} {video_placeholder!r} placeholders but {len(frames)} videos were given"
    )

  next_index = {"image": 0, "video": 0}

  def replace(match: re.Match) -> str:
    kind = match.lastgroup
    index = next_index[kind]
    next_index[kind] += 1
    if kind == "image":
      return image_token_block(tiles[index], tokens_per_tile=tokens_per_tile)
    return video_token_block(frames[index], tokens_per_tile=tokens_per_tile)

  return pattern.sub(replace, prompt)


def visual_token_layout(token_ids: np.ndarray, context_token_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Which tokens are visual, and which image each belongs to.

  A maximal run of consecutive `context_token_id` tokens is one image (images are always wrapped
  in `<img>`/`</img>`, and each video frame is its own image). Images are numbered 0, 1, ... in
  order along the last axis, separately for each row.

  Args:
    token_ids: [T] or [B, T] integer token ids.
    context_token_id: id of `<IMG_CONTEXT>`.

  Returns:
    (is_visual [T] or [B, T] bool, image_index [T] or [B, T] int32: -1 on text tokens).
  """
  ids = np.asarray(token_ids)
  if ids.ndim not in (1, 2):
    raise ValueError(f"token_ids must be [T] or [B, T], got shape {ids.shape}")
  if ids.size and not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
  if isinstance(context_token_id, bool) or not isinstance(context_token_id, numbers.Integral):
    raise TypeError(f"context_token_id must be an int, got {context_token_id!r}")
  ids_bt = ids.reshape(-1, ids.shape[-1]) if ids.ndim == 2 else ids[None]
  is_visual_bt = ids_bt == context_token_id
  previous_bt = np.concatenate([np.zeros_like(is_visual_bt[:, :1]), is_visual_bt[:, :-1]], axis=1)
  run_starts_bt = is_visual_bt & ~previous_bt
  image_index_bt = np.where(is_visual_bt, np.cumsum(run_starts_bt, axis=1) - 1, -1).astype(np.int32)
  return is_visual_bt.reshape(ids.shape), image_index_bt.reshape(ids.shape)
