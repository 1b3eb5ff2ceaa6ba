"""The viewer: a viser server whose pictures are drawn by jaxlab on this machine.

Every connected tab gets its own render thread (`session.Session`); the controls in the
side panel are shared by all tabs. What is drawn depends on the source (`detect.open_source`):

  ply, run  Gaussians through `jaxlab.splat.render`; a run folder is polled for newer
            checkpoints and the scene is swapped in place as training goes on.
  lod       a V3DG composed scene through `jaxlab.splat.lod.render_cut` at the tolerance
            tau of a slider; the panel shows how many Gaussians the cut draws.
  demos     recorded camera streams of LeRobot-layout episodes, with a timeline.

viser is imported here and nowhere else in jaxlab, so the library does not need it.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import pathlib
import threading
import time

import numpy as np
import viser
from PIL import Image

from jaxlab import files
from jaxlab.view.ports import first_free_port
from jaxlab.view.presets import CameraPreset
from jaxlab.view.render_view import RENDER_MODES, Frame, GaussianFrames, ViewRequest, camera_for, to_display
from jaxlab.view.session import Resolution, Session, Shown, letterbox

log = logging.getLogger(__name__)


def encode_png(image_hw3: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image_hw3).save(buffer, format="PNG")
  return buffer.getvalue()


def _rgb255(rgb) -> tuple[int, int, int]:
  return tuple(int(round(255 * float(c))) for c in rgb)


class Viewer:
  """Serves `source` on `host:port` (the next free port if that one is taken).

  Args:
    source: from `jaxlab.view.detect.open_source`.
    host, port: where to listen; `self.port` is the port actually used.
    resolution: the still and moving image sizes.
    screenshots: folder the screenshot button writes PNGs to (created on first use).
    screenshot_side: longer side of a screenshot in pixels (a slider changes it).
    poll_seconds: how often a run folder is checked for a newer checkpoint.
  """

  def __init__(self, source, *, host: str = "127.0.0.1", port: int = 8080, resolution: Resolution = Resolution(),
               screenshots: str | pathlib.Path = "screenshots", screenshot_side: int = 1920, poll_seconds: float = 1.0):
    self.source = source
    self.resolution = resolution
    self.screenshots = pathlib.Path(screenshots)
    self.screenshot_side = screenshot_side
    self.poll_seconds = poll_seconds
    self.port = first_free_port(host, port)
    if self.port != port:
      print(f"Port {port} is in use; serving on port {self.port} instead.", flush=True)
    self.host = host
    self._sessions: dict[int, Session] = {}
    self._sessions_lock = threading.Lock()
    self._stop = threading.Event()
    self._frames: GaussianFrames | None = None
    self._threads: list[threading.Thread] = []
    self.server = viser.ViserServer(host=host, port=self.port, verbose=False)
    self.server.gui.configure_theme(control_layout="floating", show_logo=False, show_share_button=False)
    self._build_controls()
    self.server.on_client_connect(self._connect)
    self.server.on_client_disconnect(self._disconnect)
    print(f"jaxlab viewer: {source.kind} {source.path} at {self.url}", flush=True)

  @property
  def url(self) -> str:
    shown_host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::") else self.host
    return f"http://{shown_host}:{self.port}"

  # ---- controls -------------------------------------------------------------------------

  def _build_controls(self) -> None:
    gui = self.server.gui
    kind = self.source.kind
    self._status = gui.add_markdown(self._status_text())
    self._frame_time = gui.add_text("Frame time", initial_value="-", disabled=True)
    if kind in ("ply", "run", "lod"):
      self._mode = gui.add_dropdown("Render mode", RENDER_MODES, initial_value="RGB")
      self._mode.on_update(lambda _: self.refresh_all())
      self._background = gui.add_rgb("Background", initial_value=_rgb255(self.source.background))
      self._background.on_update(lambda _: self.refresh_all())
    self._sh_degree = None
    if kind == "ply":
      self._set_gaussians(self.source.gaussians)
    if kind == "run":
      self._sh_degree = gui.add_slider("SH degree", min=0, max=3, step=1, initial_value=3)
      self._sh_degree.on_update(lambda _: self.refresh_all())
      self._start(self._follow_run, "jaxlab-view-follow-run")
    if kind == "lod":
      self._build_lod_controls()
    if kind == "demos":
      self._build_demo_controls()
    self._preset = None
    self._sync_preset_control()
    gui.add_slider("Resolution", min=64, max=2048, step=32, initial_value=self.resolution.max_side).on_update(
        lambda event: self._set_max_side(int(event.target.value)))
    self._screenshot_side = gui.add_slider("Screenshot size", min=64, max=4096, step=32, initial_value=self.screenshot_side)
    gui.add_button("Screenshot").on_click(lambda event: self.screenshot(event.client))

  def _sync_preset_control(self) -> None:
    """The camera dropdown, once the source has presets, kept in step with them (a run folder
    gets its dataset's cameras when its config appears, or an orbit from its first checkpoint)."""
    if not self.source.presets:
      return
    names = [p.name for p in self.source.presets]
    if self._preset is not None:
      if tuple(self._preset.options) != tuple(names):
        self._preset.options = names
      return
    self._preset = self.server.gui.add_dropdown("Camera", names, initial_value=names[0])
    self._preset.on_update(lambda event: self.apply_preset(event.client, self._preset_named(self._preset.value)))
    for session in self.sessions():  # tabs that connected before there was anything to frame
      self.apply_preset(session.client, self.source.presets[0])

  def _set_gaussians(self, gaussians) -> None:
    if self._frames is None:
      self._frames = GaussianFrames(gaussians)
      if self._sh_degree is None and gaussians.sh_degree > 0:
        self._sh_degree = self.server.gui.add_slider("SH degree", min=0, max=gaussians.sh_degree, step=1,
                                                     initial_value=gaussians.sh_degree)
        self._sh_degree.on_update(lambda _: self.refresh_all())
    else:
      self._frames.set_gaussians(gaussians)
    self.refresh_all()

  def _build_lod_controls(self) -> None:
    gui = self.server.gui
    lo, hi = self.source.tau_range
    self._log_tau = gui.add_slider("log10 tau (px²)", min=math.log10(lo), max=math.log10(hi), step=0.05,
                                   initial_value=math.log10(self.source.default_tau))
    self._log_tau.on_update(lambda _: self.refresh_all())
    self._drawn = gui.add_text("Gaussians drawn", initial_value="-", disabled=True)

  def _build_demo_controls(self) -> None:
    gui = self.server.gui
    source = self.source
    names = list(source.datasets)
    self._dataset = gui.add_dropdown("Dataset", names, initial_value=names[0])
    self._episode = gui.add_slider("Episode", min=0, max=max(1, source.num_episodes(names[0]) - 1), step=1, initial_value=0)
    cameras = source.cameras(names[0])
    self._camera = gui.add_dropdown("Camera stream", cameras, initial_value=cameras[0])
    self._timeline = gui.add_slider("Frame", min=0, max=max(1, source.episode_length(names[0], 0) - 1), step=1, initial_value=0)
    self._playing = gui.add_checkbox("Play", initial_value=False)
    self._task = gui.add_markdown("")
    self._dataset.on_update(lambda _: self._demo_changed(reset_episode=True))
    self._episode.on_update(lambda _: self._demo_changed(reset_episode=False))
    self._camera.on_update(lambda _: self.refresh_all())
    self._timeline.on_update(lambda _: self.refresh_all())
    self._demo_changed(reset_episode=False)
    self._start(self._play, "jaxlab-view-play")

  def _demo_changed(self, *, reset_episode: bool) -> None:
    source, dataset = self.source, self._dataset.value
    if reset_episode:
      self._episode.max = max(1, source.num_episodes(dataset) - 1)
      self._episode.value = 0
      cameras = source.cameras(dataset)
      self._camera.options = cameras
      if self._camera.value not in cameras:
        self._camera.value = cameras[0]
    episode = min(int(self._episode.value), source.num_episodes(dataset) - 1)
    self._timeline.max = max(1, source.episode_length(dataset, episode) - 1)
    self._timeline.value = 0
    self._task.content = f"**Task:** {source.task(dataset, episode)}"
    self.refresh_all()

  def _preset_named(self, name: str) -> CameraPreset:
    return next(p for p in self.source.presets if p.name == name)

  def _set_max_side(self, max_side: int) -> None:
    for session in self.sessions():
      session.resolution = Resolution(max_side, session.resolution.moving_scale, session.resolution.still_seconds)
    self.resolution = Resolution(max_side, self.resolution.moving_scale, self.resolution.still_seconds)
    self.refresh_all()

  def _status_text(self) -> str:
    return f"**{self.source.kind}** `{self.source.path}`  \n{self.source.status()}"

  # ---- what the controls ask for ----------------------------------------------------------

  def settings(self) -> dict:
    """The ViewRequest fields the controls set."""
    if self.source.kind == "demos":
      return {}
    settings = {"mode": self._mode.value, "background": tuple(c / 255 for c in self._background.value)}
    if self._sh_degree is not None:
      settings["sh_degree"] = int(self._sh_degree.value)
    return settings

  def draw(self, request: ViewRequest) -> Frame | None:
    """The frame for `request`: what the source shows with the current controls."""
    kind = self.source.kind
    if kind in ("ply", "run"):
      return None if self._frames is None else self._frames.draw(request)
    if kind == "lod":
      return self._draw_lod(request)
    return self._draw_demo(request)

  def _draw_lod(self, request: ViewRequest) -> Frame:
    start = time.perf_counter()
    image, num_gaussians = self.source.render(camera_for(request), 10.0 ** float(self._log_tau.value), request.background)
    rgb, alpha, depth = (np.asarray(x) for x in (image.rgb, image.alpha, image.depth))
    seconds = time.perf_counter() - start
    self._drawn.value = f"{num_gaussians:,} of {self.source.full_detail_size:,}"
    return Frame(to_display(rgb, alpha, depth, request.mode), seconds, int(image.num_intersections), num_gaussians)

  def _draw_demo(self, request: ViewRequest) -> Frame:
    start = time.perf_counter()
    dataset, episode = self._dataset.value, int(self._episode.value)
    image = self.source.frame(dataset, episode, self._camera.value, int(self._timeline.value))
    return Frame(letterbox(image, request.width, request.height), time.perf_counter() - start, 0, 0)

  # ---- clients ----------------------------------------------------------------------------

  def _connect(self, client) -> None:
    session = Session(client, draw=self.draw, settings=self.settings, on_frame=self._shown, resolution=self.resolution)
    with self._sessions_lock:
      self._sessions[client.client_id] = session
    if self.source.presets:
      self.apply_preset(client, self.source.presets[0])

  def _disconnect(self, client) -> None:
    with self._sessions_lock:
      session = self._sessions.pop(client.client_id, None)
    if session is not None:
      session.close()

  def sessions(self) -> list[Session]:
    with self._sessions_lock:
      return list(self._sessions.values())

  def refresh_all(self) -> None:
    for session in self.sessions():
      session.refresh()

  def _shown(self, session: Session, shown: Shown) -> None:
    request = shown.request
    note = " (compiling)" if shown.frame.compiled else ""
    self._frame_time.value = f"{1000 * shown.frame.seconds:.1f} ms at {request.width}×{request.height}{note}"

  def apply_preset(self, client, preset: CameraPreset) -> None:
    """Moves `client`'s camera to `preset` (orbiting then pivots about a point ahead of it)."""
    c2w = np.asarray(preset.camera_to_world_44, np.float64)
    position, forward, up = c2w[:3, 3], c2w[:3, 2], -c2w[:3, 1]
    with client.atomic():
      client.camera.fov = float(preset.fov_y)
      client.camera.position = position
      client.camera.look_at = position + forward * self._pivot_distance(position, forward)
      client.camera.up_direction = up

  def _pivot_distance(self, position: np.ndarray, forward: np.ndarray) -> float:
    # Presets surround what they show (dataset cameras, orbits), so their mean position
    # stands in for the scene centre.
    centre = np.mean([p.camera_to_world_44[:3, 3] for p in self.source.presets], axis=0)
    distance = float(np.dot(centre - position, forward))
    return distance if distance > 1e-2 else 1.0

  def screenshot(self, client) -> pathlib.Path | None:
    """Draws `client`'s view with its window's aspect, the longer side the "Screenshot size"
    control, writes it to the screenshots folder (a new file, never replacing one) and hands
    it to the browser as a download."""
    session = self._sessions.get(client.client_id)
    if session is None:
      return None
    request = session.request(int(self._screenshot_side.value))
    frame = self.draw(request) if request is not None else None
    if frame is None:
      client.add_notification("Nothing to capture yet", self.source.status(), auto_close_seconds=5.0)
      return None
    data = encode_png(frame.image_hw3)
    stem = f"{self.source.kind}_{time.strftime('%Y%m%d-%H%M%S')}"
    for number in itertools.count():  # two clicks in one second get two files
      path = self.screenshots / f"{stem}_{number:03d}.png"
      try:
        files.write_bytes(path, data, overwrite=False, make_parents=True)
        break
      except FileExistsError:
        continue
    client.send_file_download(path.name, data, save_immediately=True)
    log.info("Screenshot %s (%d×%d).", path, request.width, request.height)
    return path

  # ---- background threads -----------------------------------------------------------------

  def _start(self, target, name: str) -> None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    self._threads.append(thread)

  def _follow_run(self) -> None:
    last_status = None
    while not self._stop.is_set():
      try:
        snapshot = self.source.poll()
      except Exception:  # a source that breaks must not take the server down
        log.exception("Reading %s failed; trying again.", self.source.path)
        snapshot = None
      self._sync_preset_control()
      if snapshot is not None:
        self._set_gaussians(snapshot.gaussians)
      status = self.source.status()
      if status != last_status:
        print(f"jaxlab viewer: {status}", flush=True)
        self._status.content = self._status_text()
        last_status = status
      self._stop.wait(self.poll_seconds)

  def _play(self) -> None:
    while not self._stop.is_set():
      fps = self.source.fps(self._dataset.value)
      if self._playing.value:
        last = int(self._timeline.max)
        self._timeline.value = 0 if int(self._timeline.value) >= last else int(self._timeline.value) + 1
      self._stop.wait(1.0 / max(fps, 1.0))

  def close(self) -> None:
    """Stops the server after every render and polling thread has finished its current step."""
    self._stop.set()
    for session in self.sessions():
      session.close()
    for thread in self._threads:
      thread.join(timeout=60.0)
    self.server.stop()

  def serve_forever(self) -> None:
    try:
      while True:
        time.sleep(3600)
    except KeyboardInterrupt:
      pass
    finally:
      self.close()
