"""Judge backends for `jaxlab.mmif.judges`: any `(prompt, image path or None) -> reply` callable.

  OpenAIChatJudge  an OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, ...), over
                   the standard library's HTTP client, with retries on transient failures
  VlmJudge         a jaxlab `InternVLModel` decoding greedily on this host

Both answer at temperature 0 and keep counts of what they did, for the run's report.
"""

from __future__ import annotations

import base64
import http.client
import json
import mimetypes
import os
import pathlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxlab.mmif.judges import JudgeUnavailable
from jaxlab.vlm.chat_template import IM_END, IM_START, render_chat
from jaxlab.vlm.image_tokens import IMG_CONTEXT, IMG_END, IMG_START, VIDEO_PLACEHOLDER, expand_image_tokens

# HTTP statuses worth another try: rate limiting and server-side errors.
_RETRY_STATUSES = frozenset({408, 429})
_ERROR_BODY_CHARS = 300


def image_data_url(path: str | os.PathLike) -> str:
  """`data:<mime>;base64,...` of the image file at `path`, the mime type from its suffix.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: a suffix that names no image type.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"judge image not found: {path}")
  mime, _ = mimetypes.guess_type(path.name)
  if mime is None or not mime.startswith("image/"):
    raise ValueError(f"cannot tell the image type of {path} from its suffix {path.suffix!r}")
  return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


class OpenAIChatJudge:
  """A judge behind an OpenAI-compatible `/chat/completions` endpoint.

  Each call POSTs one user message whose content is a text part and, when an image path is given, an
  `image_url` part holding the image as a data URL; the reply is `choices[0].message.content`.
  Timeouts, connection errors, HTTP 408, 429 and 5xx are retried with exponential backoff
  (retry_backoff_s, then twice that, ...); other HTTP errors and a reply that is not the expected JSON
  are not, as asking again would get the same answer.

  Args:
    base_url: the API root, e.g. "http://127.0.0.1:8000/v1".
    model: the served model's name.
    api_key: sent as a bearer token; None: $OPENAI_API_KEY when set, else no Authorization header.
    timeout_s: socket timeout of each attempt (connect, and each wait for data).
    max_retries: the most attempts one call makes (1: never retry).
    retry_backoff_s: the wait before the first retry.
    temperature, max_tokens: sent with every request.
    sleep: how to wait between attempts (tests pass a no-op).

  Attributes:
    calls: calls made; retries: attempts beyond each call's first; failures: calls that raised
      JudgeUnavailable.
  """

  def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0,
               max_retries: int = 3, retry_backoff_s: float = 1.0, temperature: float = 0.0, max_tokens: int = 2048,
               sleep: Callable[[float], Any] = time.sleep):
    if not base_url or not isinstance(base_url, str):
      raise ValueError(f"base_url must be a non-empty URL, got {base_url!r}")
    if not isinstance(max_retries, int) or max_retries < 1:
      raise ValueError(f"max_retries (attempts per call) must be an int >= 1, got {max_retries!r}")
    if not timeout_s > 0 or retry_backoff_s < 0:
      raise ValueError(f"timeout_s must be > 0 and retry_backoff_s >= 0, got {timeout_s!r}, {retry_backoff_s!r}")
    self.url = base_url.rstrip("/") + "/chat/completions"
    self.model = model
    self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    self.timeout_s, self.max_retries, self.retry_backoff_s = float(timeout_s), max_retries, float(retry_backoff_s)
    self.temperature, self.max_tokens = float(temperature), int(max_tokens)
    self.sleep = sleep
    self.calls = self.retries = self.failures = 0
    self._lock = threading.Lock()  # The scorer may call one backend from several threads.

  def request_body(self, prompt: str, image: str | None) -> dict[str, Any]:
    """The JSON body of one call (reads and encodes the image)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    if image is not None:
      content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
    return {"model": self.model, "messages": [{"role": "user", "content": content}],
            "temperature": self.temperature, "max_tokens": self.max_tokens}

  def __call__(self, prompt: str, image: str | None = None) -> str:
    """The judge's reply to `prompt` (with the image at path `image`).

    Raises:
      FileNotFoundError: `image` names no file (a caller error, raised before any request).
      JudgeUnavailable: no usable reply after the allowed attempts (the URL, attempts and last error named).
    """
    data = json.dumps(self.request_body(prompt, image)).encode("utf-8")
    self._count("calls")
    last_error = ""
    for attempt in range(1, self.max_retries + 1):
      if attempt > 1:
        self._count("retries")
        self.sleep(self.retry_backoff_s * 2 ** (attempt - 2))
      try:
        return _reply_content(self._post(data))
      except _Transient as e:
        last_error = str(e)
      except _Permanent as e:
        last_error = str(e)
        break
    self._count("failures")
    raise JudgeUnavailable(f"judge at {self.url} did not answer after {attempt} attempt(s): {last_error}")

  def _post(self, data: bytes) -> bytes:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if self.api_key:
      headers["Authorization"] = f"Bearer {self.api_key}"
    request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
        return response.read()
    except urllib.error.HTTPError as e:
      message = f"HTTP {e.code} {e.reason}: {_error_body(e)}"
      if e.code in _RETRY_STATUSES or e.code >= 500:
        raise _Transient(message) from e
      raise _Permanent(message) from e
    except (OSError, http.client.HTTPException) as e:  # Timeouts, refused or reset connections, cut replies.
      raise _Transient(f"{type(e).__name__}: {e}") from e

  def _count(self, name: str) -> None:
    with self._lock:
      setattr(self, name, getattr(self, name) + 1)


class _Transient(Exception):
  """An attempt that failed in a way another attempt may not."""


class _Permanent(Exception):
  """An attempt whose failure another attempt would repeat."""


def _error_body(error: urllib.error.HTTPError) -> str:
  try:
    return error.read(_ERROR_BODY_CHARS).decode("utf-8", errors="replace").strip()
  except (OSError, http.client.HTTPException):
    return ""


def _reply_content(body: bytes) -> str:
  """choices[0].message.content of a chat-completions reply; _Permanent when it is not one."""
  try:
    content = json.loads(body)["choices"][0]["message"]["content"]
  except (ValueError, KeyError, IndexError, TypeError) as e:
    raise _Permanent(f"not a chat-completions reply ({type(e).__name__}: {e}): "
                     f"{body[:_ERROR_BODY_CHARS].decode('utf-8', errors='replace')!r}") from e
  if isinstance(content, list):  # Some servers answer in content parts.
    texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    content = "".join(t for t in texts if isinstance(t, str)) if texts else None
  if not isinstance(content, str):
    raise _Permanent(f"the reply's message has no text content: {body[:_ERROR_BODY_CHARS]!r}")
  return content


# ---------------------------------------------------------------- jaxlab model


_WIDTH_STEP = 64  # Prompts are padded to multiples of this: few compiled shapes.
_SENTINEL = "\x00"
# Markers the chat template or image layout give a meaning; in judged text they are only text.
_MARKERS = (IMG_CONTEXT, IMG_START, IMG_END, VIDEO_PLACEHOLDER, IM_START, IM_END)


class VlmJudge:
  """A jaxlab `InternVLModel` as a judge: one ChatML user turn (image first, then the prompt), decoded
  greedily (temperature 0) up to `max_new_tokens` or `eos_id`.

  The image is read from its file and tiled as InternVL does (`jaxlab.vlm.tiling.dynamic_preprocess`,
  at most `max_tiles` tiles plus a thumbnail when there are several). A text-only call renders no image
  part and passes no pixels: the model checks that image tokens match the tiles, so a blank tile
  without image tokens is refused, and the text-only path of the model is what a text judge needs.
  A prompt longer than `max_prompt_length` tokens keeps the turn's opening (and image) and the end of
  the prompt text, where the judge prompts state the reply format; the cut is counted in `prompts_cut`.
  Chat and image markers inside the prompt text are removed first (a judged answer may contain them).

  Args:
    model, params: the `InternVLModel` and its params.
    encode, decode: text -> token ids and ids -> text of the model's tokenizer.
    eos_id: the end-of-turn id(s) (`<|im_end|>`); pad_id: the padding id.
    tile_size: the vision tower's tile side; tokens_per_tile: image tokens one tile becomes.
    max_new_tokens: the longest reply; max_prompt_length: the longest prompt, in tokens.
    max_tiles: tiles per image (1: the whole image resized to one tile).
    system: an optional system turn.

  Attributes:
    calls, prompts_cut: calls made, and prompts cut to max_prompt_length.
  """

  def __init__(self, model, params, *, encode: Callable[[str], Sequence[int]], decode: Callable[[Sequence[int]], str],
               eos_id: int | Sequence[int], pad_id: int, tile_size: int, tokens_per_tile: int, max_new_tokens: int,
               max_prompt_length: int, max_tiles: int = 1, system: str | None = None):
    limit = model.config.text.max_position_embeddings
    if max_prompt_length < 1 or max_new_tokens < 1 or max_prompt_length + max_new_tokens > limit:
      raise ValueError(f"max_prompt_length ({max_prompt_length}) + max_new_tokens ({max_new_tokens}) must be "
                       f"positive and fit the model's {limit} positions")
    self.model, self.params = model, params
    self.encode, self.decode = encode, decode
    self.eos_ids = (eos_id,) if isinstance(eos_id, (int, np.integer)) else tuple(eos_id)
    self.pad_id = int(pad_id)
    self.tile_size, self.tokens_per_tile, self.max_tiles = int(tile_size), int(tokens_per_tile), int(max_tiles)
    self.max_new_tokens, self.max_prompt_length = int(max_new_tokens), int(max_prompt_length)
    self.system = system
    self.calls = self.prompts_cut = 0

  def __call__(self, prompt: str, image: str | None = None) -> str:
    """The judge's reply (up to its first eos) to `prompt`, with the image at path `image` (None: text only).

    Raises:
      FileNotFoundError: `image` names no file.
      ValueError: max_prompt_length leaves no room for the prompt text after the turn's opening.
    """
    import jax.numpy as jnp  # Text-only users of this module need no accelerator stack.

    from jaxlab.vlm import generate as vlm_generate

    pixels_nhwc = None if image is None else self.image_tiles(image)
    ids = self.prompt_ids(prompt, 0 if pixels_nhwc is None else pixels_nhwc.shape[0])
    self.calls += 1
    width = min(-(-len(ids) // _WIDTH_STEP) * _WIDTH_STEP, self.max_prompt_length)
    ids_bt = np.full((1, width), self.pad_id, np.int32)
    ids_bt[0, width - len(ids):] = ids
    mask_bt = np.zeros((1, width), bool)
    mask_bt[0, width - len(ids):] = True
    out = vlm_generate(self.model, self.params, jnp.asarray(ids_bt),
                       None if pixels_nhwc is None else jnp.asarray(pixels_nhwc), jnp.asarray(mask_bt),
                       max_new_tokens=self.max_new_tokens, method="greedy", eos_id=self.eos_ids, pad_id=self.pad_id)
    return self.decode(self._until_eos(np.asarray(out)[0]))

  def image_tiles(self, image: str | os.PathLike) -> np.ndarray:
    """[N, tile, tile, 3] normalized tiles of the image file at `image`."""
    from PIL import Image

    from jaxlab.vlm.tiling import dynamic_preprocess

    path = pathlib.Path(image)
    if not path.is_file():
      raise FileNotFoundError(f"judge image not found: {path}")
    with Image.open(path) as opened:
      rgb = opened.convert("RGB")
    return dynamic_preprocess(rgb, tile_size=self.tile_size, max_num=self.max_tiles)

  def prompt_ids(self, prompt: str, num_tiles: int) -> list[int]:
    """The token ids of the judge turn for `prompt` with an image of `num_tiles` tiles (0: none), fit
    to max_prompt_length (counting a cut in `prompts_cut`)."""
    head, tail = self._chat_frame(num_tiles)
    head_ids, tail_ids = list(self.encode(head)), list(self.encode(tail))
    text_ids = list(self.encode(_without_markers(prompt)))
    room = self.max_prompt_length - len(head_ids) - len(tail_ids)
    if room < 1:
      raise ValueError(f"max_prompt_length={self.max_prompt_length} leaves no room for the prompt text after "
                       f"the turn's {len(head_ids) + len(tail_ids)} fixed tokens")
    if len(text_ids) > room:
      self.prompts_cut += 1
      text_ids = text_ids[len(text_ids) - room:]
    return head_ids + text_ids + tail_ids

  def _chat_frame(self, num_tiles: int) -> tuple[str, str]:
    """The rendered turn before and after the prompt text, image tokens expanded."""
    content = ([{"type": "image"}] if num_tiles else []) + [{"type": "text", "text": _SENTINEL}]
    rendered = render_chat([{"role": "user", "content": content}], system=self.system)
    if num_tiles:
      rendered = expand_image_tokens(rendered, [num_tiles], tokens_per_tile=self.tokens_per_tile)
    head, tail = rendered.split(_SENTINEL)
    return head, tail

  def _until_eos(self, tokens: np.ndarray) -> list[int]:
    tokens = [int(t) for t in tokens]
    ends = [i for i, t in enumerate(tokens) if t in self.eos_ids]
    return tokens[:ends[0]] if ends else tokens


def _without_markers(text: str) -> str:
  previous = None
  while previous != text:  # Until stable: removing one marker may join the pieces of another.
    previous = text
    for marker in _MARKERS:
      text = text.replace(marker, "")
  return text
