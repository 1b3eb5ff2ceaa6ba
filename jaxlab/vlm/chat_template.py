"""Render chat messages into the prompt string of transformers-format InternVL3 checkpoints (ChatML).

Layout, per message: `<|im_start|>{role}\\n{content}<|im_end|>\\n`; with add_generation_prompt the
prompt ends in `<|im_start|>assistant\\n`. Content is a string, or a list of parts rendered in
order: {"type": "text", "text": s} -> s, {"type": "image"} -> `<IMG_CONTEXT>\\n`,
{"type": "video"} -> `<video>\\n`. This is the chat template the InternVL processors in
transformers ship; like it, no system turn is added unless one is asked for. The system prompt
the original InternVL3 code uses by default is `INTERNVL_SYSTEM_MESSAGE`; pass it as `system`
to reproduce that setting.

The image/video markers are the placeholders `expand_image_tokens` expands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxlab.vlm.image_tokens import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ROLES = ("system", "user", "assistant")
INTERNVL_SYSTEM_MESSAGE = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)


def _render_content(content: Any, where: str) -> str:
  if isinstance(content, str):
    return content
  if not isinstance(content, Sequence):
    raise TypeError(f"{where} content must be a str or a list of parts, got {type(content).__name__}")
  pieces = []
  for k, part in enumerate(content):
    if not isinstance(part, Mapping) or "type" not in part:
      raise ValueError(f"{where} content part {k} must be a dict with a 'type' key, got {part!r}")
    kind = part["type"]
    if kind == "text":
      if not isinstance(part.get("text"), str):
        raise ValueError(f"{where} content part {k} is a text part without a str 'text', got {part!r}")
      pieces.append(part["text"])
    elif kind == "image":
      pieces.append(IMAGE_PLACEHOLDER + "\n")
    elif kind == "video":
      pieces.append(VIDEO_PLACEHOLDER + "\n")
    else:
      raise ValueError(f"{where} content part {k} has unknown type {kind!r}; expected 'text', 'image' or 'video'")
  return "".join(pieces)


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    system: str | None = None,
) -> str:
  """The ChatML prompt for `messages` (dicts with "role" and "content").

  Args:
    messages: conversation turns; role is "system", "user" or "assistant"; content is a str or a
      list of {"type": "text", "text": ...} / {"type": "image"} / {"type": "video"} parts
      (extra keys such as "url" are ignored).
    add_generation_prompt: end with the opening of an assistant turn.
    system: if given, a system turn with this text goes first; the messages must then not start
      with a system turn of their own.

  Raises:
    ValueError: unknown role or part type, a system turn twice, or no messages and no system.
  """
  if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
    raise TypeError(f"messages must be a list of message dicts, got {type(messages).__name__}")
  if system is not None and not isinstance(system, str):
    raise TypeError(f"system must be a str or None, got {type(system).__name__}")
  for k, message in enumerate(messages):
    if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
      raise ValueError(f"message {k} must be a dict with 'role' and 'content', got {message!r}")
    if message["role"] not in ROLES:
      raise ValueError(f"message {k} has role {message['role']!r}; expected one of {ROLES}")
  if system is not None and messages and messages[0]["role"] == "system":
    raise ValueError("system was given but the first message is already a system turn")
  if system is None and not messages:
    raise ValueError("messages is empty and no system text was given")
  rendered = [] if system is None else [f"{IM_START}system\n{system}{IM_END}\n"]
  for k, message in enumerate(messages):
    content = _render_content(message["content"], f"message {k} ({message['role']})")
    rendered.append(f"{IM_START}{message['role']}\n{content}{IM_END}\n")
  if add_generation_prompt:
    rendered.append(f"{IM_START}assistant\n")
  return "".join(rendered)
