"""One browser tab: follows its camera and sends it frames, coarse while it moves, sharp once still.

Camera messages arrive many times a second while the user drags. Each wakes the tab's
render thread, which draws at `moving_scale` of the full resolution while the last message
is younger than `still_seconds`, and once at full resolution when the camera has stopped.
Control changes (render mode, SH degree, a new checkpoint) ask for one full-resolution frame.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from jaxlab.view.render_view import Frame, ViewRequest, camera_to_world, view_size

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shown:
  """The last frame a tab received: what was asked, what was drawn, and whether it was the
  full-resolution one."""

  request: ViewRequest
  frame: Frame
  full_resolution: bool
  sent_at: float


@dataclasses.dataclass(frozen=True)
class Resolution:
  """`max_side` of a still frame; a moving camera gets `moving_scale` of it."""

  max_side: int = 320
  moving_scale: float = 0.25
  still_seconds: float = 0.25


class Session:
  """The render loop of one connected client.

  Args:
    client: the viser ClientHandle.
    draw: ViewRequest -> Frame, or None when there is nothing to show yet.
    settings: () -> dict of ViewRequest fields set by the controls (mode, sh_degree, background).
    on_frame: called after each frame is sent (the viewer shows the frame time).
    resolution: image sizes while moving and still.
  """

  def __init__(self, client, *, draw: Callable[[ViewRequest], Frame | None], settings: Callable[[], dict],
               on_frame: Callable[["Session", Shown], None], resolution: Resolution):
    self.client = client
    self._draw = draw
    self._settings = settings
    self._on_frame = on_frame
    self.resolution = resolution
    self._wake = threading.Event()
    self._stop = threading.Event()
    self._dirty = True
    self._last_motion = 0.0
    self._sharp = False
    self.shown: Shown | None = None
    self.frames_sent = 0
    self.sizes_sent: collections.deque[tuple[int, int, bool]] = collections.deque(maxlen=256)  # (w, h, full resolution)
    client.camera.on_update(lambda _camera: self.camera_moved())
    self._thread = threading.Thread(target=self._loop, name=f"jaxlab-view-client-{client.client_id}", daemon=True)
    self._thread.start()

  def camera_moved(self) -> None:
    self._last_motion = time.monotonic()
    self._dirty = True
    self._wake.set()

  def refresh(self) -> None:
    """Redraws at full resolution (a control changed or the scene was replaced)."""
    self._dirty = True
    self._sharp = False
    self._wake.set()

  def close(self) -> None:
    """Stops the render thread and waits for a frame in progress (none is left drawing)."""
    self._stop.set()
    self._wake.set()
    if threading.current_thread() is not self._thread:
      self._thread.join(timeout=60.0)

  def request(self, max_side: int | None = None) -> ViewRequest | None:
    """The client's current view at `max_side` (default: the still resolution); None before
    the browser has reported its camera."""
    camera = self.client.camera
    try:
      wxyz, position, fov, aspect = camera.wxyz, camera.position, camera.fov, camera.aspect
    except AssertionError:  # viser asserts until the first camera message has arrived
      return None
    width, height = view_size(aspect, max_side or self.resolution.max_side)
    return ViewRequest(camera_to_world_44=camera_to_world(wxyz, position), fov_y=float(fov), width=width,
                       height=height, **self._settings())

  def _loop(self) -> None:
    while not self._stop.is_set():
      self._wake.wait(timeout=self.resolution.still_seconds / 2)
      self._wake.clear()
      moving = time.monotonic() - self._last_motion < self.resolution.still_seconds
      if not (self._dirty or (not moving and not self._sharp)):
        continue
      self._dirty = False
      try:
        self._draw_once(moving)
      except Exception:  # a failed frame is logged; the tab keeps its last picture
        log.exception("Drawing a frame for client %s failed.", self.client.client_id)

  def _draw_once(self, moving: bool) -> None:
    side = max(16, int(self.resolution.max_side * self.resolution.moving_scale)) if moving else None
    request = self.request(side)
    if request is None:
      self._dirty = True
      return
    frame = self._draw(request)
    if frame is None:
      return
    self.client.scene.set_background_image(frame.image_hw3, format="jpeg" if moving else "png", jpeg_quality=85)
    self._sharp = not moving
    self.frames_sent += 1
    self.sizes_sent.append((request.width, request.height, not moving))
    self.shown = Shown(request=request, frame=frame, full_resolution=not moving, sent_at=time.time())
    self._on_frame(self, self.shown)


def letterbox(image_hw3: np.ndarray, width: int, height: int, fill: int = 0) -> np.ndarray:
  """`image_hw3` scaled (nearest pixel) to fit `width` x `height`, centred on `fill`."""
  h, w = image_hw3.shape[:2]
  scale = min(width / w, height / h)
  new_w, new_h = max(1, int(w * scale)), max(1, int(h * scale))
  rows = np.minimum((np.arange(new_h) / scale).astype(int), h - 1)
  cols = np.minimum((np.arange(new_w) / scale).astype(int), w - 1)
  out = np.full((height, width, 3), fill, np.uint8)
  top, left = (height - new_h) // 2, (width - new_w) // 2
  out[top:top + new_h, left:left + new_w] = image_hw3[rows][:, cols]
  return out
