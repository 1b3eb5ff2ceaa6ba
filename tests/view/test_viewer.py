"""The viewer server without a browser: ports, a run folder that has no checkpoint yet, the
LOD tolerance, demonstration frames and the command line."""

import socket
import time

import jax
import numpy as np
import pytest

from jaxlab.checkpoint import Checkpointer
from jaxlab.splat.fit import FitSettings, init_fit_state
from jaxlab.view import __main__ as cli
from jaxlab.view.detect import open_source
from jaxlab.view.ports import first_free_port
from jaxlab.view.render_view import ViewRequest, view_size
from jaxlab.view.session import Resolution, letterbox
from tests.view.conftest import make_gaussians, write_demos

pytest.importorskip("viser", reason="needs viser: pip install viser")
from jaxlab.view.app import Viewer  # noqa: E402


def _request(source, size=(32, 24), **settings) -> ViewRequest:
  preset = source.presets[0]
  return ViewRequest(preset.camera_to_world_44, preset.fov_y, *size, **settings)


def _wait_for(condition, timeout=60.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if condition():
      return True
    time.sleep(0.1)
  return False


def test_a_taken_port_moves_the_viewer_to_the_next_free_one(tmp_path, capsys):
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    assert first_free_port("127.0.0.1", port) > port
    viewer = Viewer(open_source(tmp_path), port=port, poll_seconds=0.2)
    try:
      assert viewer.port > port
      assert viewer.url.endswith(f":{viewer.port}")
    finally:
      viewer.close()
  out = capsys.readouterr().out
  assert f"Port {port} is in use; serving on port {viewer.port} instead." in out
  assert f"at http://localhost:{viewer.port}" in out


def test_a_run_folder_without_a_checkpoint_waits_then_shows_the_first_one(tmp_path, capsys):
  viewer = Viewer(open_source(tmp_path), port=8650, poll_seconds=0.1)
  try:
    assert _wait_for(lambda: "waiting for the first checkpoint" in viewer._status.content)
    assert viewer.draw(ViewRequest(np.eye(4), 1.0, 16, 16)) is None  # nothing to draw yet
    state = init_fit_state(make_gaussians(30, seed=5, sh_degree=1, capacity=32), FitSettings())
    checkpointer = Checkpointer(tmp_path / "checkpoints", save_every=1, keep=2, async_save=False)
    checkpointer.save(7, state, {})
    checkpointer.close()
    assert _wait_for(lambda: viewer._frames is not None and "checkpoint step 7" in viewer._status.content)
    assert viewer.source.presets  # framed around the first checkpoint's Gaussians
    frame = viewer.draw(_request(viewer.source, mode="Alpha"))
    assert frame.image_hw3.shape == (24, 32, 3) and frame.image_hw3.max() > 0
    assert frame.num_gaussians == 30
  finally:
    viewer.close()
  out = capsys.readouterr().out
  assert "waiting for the first checkpoint" in out and "checkpoint step 7" in out


def test_the_tau_slider_changes_how_many_gaussians_the_cut_draws(bundle_path):
  viewer = Viewer(open_source(bundle_path), port=8660)
  try:
    request = _request(viewer.source, size=(32, 32))
    viewer._log_tau.value = viewer._log_tau.min  # the finest level everywhere
    fine = viewer.draw(request)
    viewer._log_tau.value = viewer._log_tau.max  # the coarsest
    coarse = viewer.draw(request)
    assert fine.num_gaussians > coarse.num_gaussians > 0
    assert viewer._drawn.value == f"{coarse.num_gaussians:,} of {viewer.source.full_detail_size:,}"
    assert fine.image_hw3.shape == (32, 32, 3)
  finally:
    viewer.close()


def test_demonstrations_show_the_recorded_frame_of_the_timeline(tmp_path):
  images = write_demos(tmp_path / "demos", lengths=(4, 3))
  viewer = Viewer(open_source(tmp_path / "demos"), port=8670)
  try:
    request = ViewRequest(np.eye(4), 1.0, 16, 12)
    viewer._episode.value = 1
    viewer._camera.value = "wrist"
    viewer._timeline.value = 2
    frame = viewer.draw(request)
    np.testing.assert_array_equal(frame.image_hw3, letterbox(images[1]["wrist"][2], 16, 12))
    assert viewer._timeline.max == 2 and "stack the mug" in viewer._task.content
  finally:
    viewer.close()


def test_letterbox_keeps_the_aspect_and_centres():
  image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
  out = letterbox(image, 8, 8)
  assert out.shape == (8, 8, 3)
  np.testing.assert_array_equal(out[2:6], np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
  assert (out[:2] == 0).all() and (out[6:] == 0).all()


def test_the_command_line_refuses_a_missing_path_before_serving(tmp_path, capsys):
  missing = tmp_path / "nothing.ply"
  assert cli.main([str(missing)]) == 2
  err = capsys.readouterr().err
  assert str(missing) in err and "does not exist" in err


def test_resolution_defaults_follow_the_backend():
  assert cli.default_resolution() == (320 if jax.default_backend() == "cpu" else 1024)
  assert Resolution().max_side == 320 and view_size(4 / 3, Resolution().max_side) == (320, 240)
