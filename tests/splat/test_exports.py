"""Exports: orbit cameras look at the centre; PNG and GIF files hold what was drawn."""

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.splat import Camera
from jaxlab.splat.exports import orbit_cameras, save_animation, save_side_by_side, side_by_side, to_uint8


def _template():
  return Camera(
      fx=jnp.float32(50.0), fy=jnp.float32(50.0), cx=jnp.float32(16.0), cy=jnp.float32(12.0),
      world_to_camera=jnp.eye(4), near=jnp.float32(0.01), far=jnp.float32(100.0), width=32, height=24,
  )


def test_orbit_cameras_circle_the_centre_and_look_at_it():
  center = np.array([1.0, 2.0, 0.5])
  cams = orbit_cameras(_template(), center_3=center, radius=4.0, height=1.0, num_frames=6, up_3=(0.0, 0.0, 1.0))
  assert cams.batch_shape == (6,) and cams.width == 32
  eyes = np.asarray(cams.camera_center())
  np.testing.assert_allclose(eyes[:, 2], center[2] + 1.0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(eyes[:, :2] - center[:2], axis=1), 4.0, atol=1e-4)
  # The centre projects to the principal point, and world up is image up (negative y).
  w2c = np.asarray(cams.world_to_camera)
  center_cam = np.einsum("vij,j->vi", w2c[:, :3, :3], center) + w2c[:, :3, 3]
  np.testing.assert_allclose(center_cam[:, :2], 0.0, atol=1e-4)
  assert np.all(center_cam[:, 2] > 0)
  above = np.einsum("vij,j->vi", w2c[:, :3, :3], center + [0, 0, 1]) + w2c[:, :3, 3]
  assert np.all(above[:, 1] < 0)
  with pytest.raises(ValueError, match="one template"):
    orbit_cameras(cams, center_3=center, radius=1.0, height=0.0, num_frames=2)


def test_side_by_side_png_and_gif_round_trip(tmp_path):
  render = np.linspace(0, 1, 4 * 5 * 3).reshape(4, 5, 3)
  target = 1.0 - render
  png = save_side_by_side(tmp_path / "a" / "view.png", render, target)
  image = iio.imread(png)
  assert image.shape == (4, 10, 3)
  np.testing.assert_array_equal(image[:, :5], to_uint8(render))
  np.testing.assert_array_equal(image[:, 5:], to_uint8(target))
  np.testing.assert_array_equal(image, side_by_side(render, target))
  gif = save_animation(tmp_path / "turn.gif", [render, target, render], fps=10)
  frames = iio.imread(gif, index=None)
  assert frames.shape[0] == 3 and frames.shape[1:3] == (4, 5)


def _fail_after_writing_half(target, image, **kwargs):
  """An encoder that writes part of a file to a real destination, then fails (a full disk)."""
  if not (isinstance(target, str) and target.startswith("<")):
    with open(target, "wb") as stream:
      stream.write(b"\x89PNG half")
  raise OSError("disk full")


@pytest.mark.parametrize("name, save", [
    ("out.png", lambda path, frame: save_side_by_side(path, frame, frame)),
    ("out.gif", lambda path, frame: save_animation(path, [frame, frame])),
])
def test_a_failed_image_write_leaves_the_previous_file(tmp_path, monkeypatch, name, save):
  frame = np.full((4, 5, 3), 0.25)
  path = tmp_path / name
  save(path, frame)
  previous = path.read_bytes()
  monkeypatch.setattr(iio, "imwrite", _fail_after_writing_half)
  with pytest.raises(OSError, match="disk full"):
    save(path, 1.0 - frame)
  assert path.read_bytes() == previous
  assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_the_format_does_not_depend_on_the_file_name(tmp_path):
  frame = np.full((4, 5, 3), 0.5)
  png = save_side_by_side(tmp_path / "view.image", frame, frame)
  gif = save_animation(tmp_path / "turn.anim", [frame, 1.0 - frame])
  assert png.read_bytes().startswith(b"\x89PNG")
  assert gif.read_bytes().startswith(b"GIF8")
