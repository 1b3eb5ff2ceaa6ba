"""The viewer in a real browser: Chromium, headless, driven by playwright.

What the page shows must be what jaxlab renders for the camera the browser reports, and
dragging the camera must change the picture. The pictures are compared on the lower left of
the window, which the control panel (right) and viser's notices (top left) leave uncovered.
"""

import io
import os
import shutil
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxlab.splat import Camera, random_gaussians, render, save_ply

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
pytest.importorskip("viser", reason="needs viser: pip install viser")

from jaxlab.view.app import Viewer  # noqa: E402  (after the skips: viser is optional)
from jaxlab.view.detect import open_source  # noqa: E402
from jaxlab.view.session import Resolution  # noqa: E402

CHROMIUM = os.environ.get("JAXLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found: install Debian's (apt-get install chromium) or set JAXLAB_CHROMIUM to a Chromium binary")

WINDOW_W, WINDOW_H = 640, 480
STILL_SIDE = 320  # half the window: one frame pixel covers 2x2 screen pixels
# WebGL without a GPU: SwiftShader through ANGLE.
BROWSER_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _compared(image_hw3: np.ndarray) -> np.ndarray:
  """The lower left, clear of the panel and notices, as floats in [0, 1]."""
  h, w = image_hw3.shape[:2]
  return image_hw3[int(0.3 * h):, : int(0.45 * w)].astype(np.float32) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  return float(-10 * np.log10(np.mean((a - b) ** 2) + 1e-12))


def _screen_at_frame_size(page) -> np.ndarray:
  """A screenshot box-averaged 2x2 down to the frame's size."""
  shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), np.float32)
  h, w = shot.shape[0] // 2, shot.shape[1] // 2
  return (shot[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def _server_render(gaussians, camera_to_world_44, fov_y, width, height) -> np.ndarray:
  """jaxlab's render of a camera given as the browser gives it, written out here on purpose
  (not through the viewer's own conversion)."""
  focal = 0.5 * height / np.tan(0.5 * fov_y)
  camera = Camera.from_world_to_camera(np.linalg.inv(camera_to_world_44).astype(np.float32), fx=focal, fy=focal,
                                       cx=width / 2, cy=height / 2, width=width, height=height)
  rgb = render(gaussians, camera, background=np.zeros(3, np.float32), on_overflow="error").rgb
  return (np.clip(np.asarray(rgb), 0, 1) * 255 + 0.5).astype(np.uint8)


def _wait_for(condition, what: str, timeout: float = 120.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(0.1)
  raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _sharp_frame(viewer, after: int = 0):
  """The newest full-resolution frame of the only tab, once its number passes `after`."""
  def ready():
    sessions = viewer.sessions()
    if len(sessions) != 1:
      return None
    session = sessions[0]
    shown = session.shown
    return (session, shown) if shown is not None and shown.full_resolution and session.frames_sent > after else None
  return _wait_for(ready, "a full-resolution frame in the browser")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
  """A cloud of large, bright, view-dependent Gaussians around the origin, as an INRIA PLY."""
  gaussians = random_gaussians(jax.random.key(3), 600, sh_degree=1, mean_center=(0.0, 0.0, 0.0), mean_std=0.6,
                               log_scale_mean=-2.3, log_scale_std=0.3, sh_std=0.8)
  path = tmp_path_factory.mktemp("scene") / "point_cloud.ply"
  save_ply(path, gaussians)
  return path


@pytest.fixture(scope="module")
def browser_page(scene, tmp_path_factory):
  source = open_source(scene)
  viewer = Viewer(source, port=8610, resolution=Resolution(max_side=STILL_SIDE, moving_scale=0.25, still_seconds=0.3),
                  screenshots=tmp_path_factory.mktemp("shots"), screenshot_side=WINDOW_W)
  with playwright_api.sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    page = browser.new_page(viewport={"width": WINDOW_W, "height": WINDOW_H})
    page.goto(viewer.url)
    try:
      yield viewer, source, page
    finally:
      browser.close()
      viewer.close()


def test_the_browser_shows_what_jaxlab_renders_for_its_camera(browser_page):
  viewer, source, page = browser_page
  session, shown = _sharp_frame(viewer)
  time.sleep(1.0)  # the browser decodes and draws the PNG after it arrives
  session, shown = _sharp_frame(viewer)
  request = shown.request
  preset = source.presets[0]
  # The browser starts at the first preset and reports that camera back.
  np.testing.assert_allclose(request.camera_to_world_44, preset.camera_to_world_44, atol=2e-3)
  assert request.fov_y == pytest.approx(preset.fov_y, abs=1e-3)
  assert (request.width, request.height) == (WINDOW_W // 2, WINDOW_H // 2)

  screen = _compared(_screen_at_frame_size(page))
  expected = _compared(_server_render(source.gaussians, request.camera_to_world_44, request.fov_y, request.width, request.height))
  assert expected.std() > 0.05, "the compared region must show part of the scene"
  assert _psnr(screen, expected) > 30.0
  # A render of another camera is far from what is on screen: the comparison can tell.
  other = source.presets[1]
  wrong = _compared(_server_render(source.gaussians, other.camera_to_world_44, request.fov_y, request.width, request.height))
  assert _psnr(screen, wrong) < _psnr(screen, expected) - 10.0


def test_dragging_the_camera_changes_the_picture(browser_page):
  viewer, source, page = browser_page
  session, before = _sharp_frame(viewer)
  screen_before = _compared(_screen_at_frame_size(page))
  sent = session.frames_sent
  page.mouse.move(200, 300)
  page.mouse.down()
  for step in range(1, 11):
    page.mouse.move(200 + 12 * step, 300 + 2 * step)
    time.sleep(0.05)
  page.mouse.up()
  session, after = _sharp_frame(viewer, after=sent + 1)
  time.sleep(1.0)
  session, after = _sharp_frame(viewer)
  # While the camera moved, frames went out at a quarter of the still size.
  during = list(session.sizes_sent)[sent:]
  assert (STILL_SIDE // 4, 64, False) in during and during[-1] == (STILL_SIDE, 240, True)
  assert not np.allclose(after.request.camera_to_world_44, before.request.camera_to_world_44, atol=1e-3)
  screen_after = _compared(_screen_at_frame_size(page))
  assert np.mean(np.abs(screen_after - screen_before)) > 0.02
  expected = _compared(_server_render(source.gaussians, after.request.camera_to_world_44, after.request.fov_y,
                                      after.request.width, after.request.height))
  assert _psnr(screen_after, expected) > 30.0


def test_the_screenshot_button_saves_and_downloads_the_view(browser_page):
  viewer, source, page = browser_page
  session, shown = _sharp_frame(viewer)
  with page.expect_download(timeout=120_000) as download:
    page.get_by_role("button", name="Screenshot").click()
  saved = sorted(viewer.screenshots.glob("*.png"))
  assert len(saved) == 1 and download.value.suggested_filename == saved[0].name
  with open(download.value.path(), "rb") as downloaded:
    assert downloaded.read() == saved[0].read_bytes()
  image = np.asarray(Image.open(saved[0]).convert("RGB"))
  assert image.shape == (WINDOW_H, WINDOW_W, 3)
  request = session.shown.request
  expected = _server_render(source.gaussians, request.camera_to_world_44, request.fov_y, WINDOW_W, WINDOW_H)
  assert _psnr(_compared(image), _compared(expected)) > 40.0
  # Another click writes another file (a numbered name, even within the same second); the first is kept.
  first = saved[0].read_bytes()
  with page.expect_download(timeout=120_000):
    page.get_by_role("button", name="Screenshot").click()
  again = sorted(viewer.screenshots.glob("*.png"))
  assert len(again) == 2 and again[0].read_bytes() == first
