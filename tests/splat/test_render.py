"""`render` end to end: implementations agree, gradients reach every parameter, camera
batches (vmap, and sharded over devices), and overflow is never silent."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlab.sharding import make_mesh
from jaxlab.splat import Camera, IntersectionOverflowError, estimate_capacity_for, look_at, random_gaussians, render, stack_cameras
from jaxlab.testing import assert_close

WIDTH, HEIGHT = 40, 28  # not multiples of 16: partial edge tiles
FLOAT_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")


def _camera(eye=(0.0, 0.0, 0.0)) -> Camera:
  c2w = look_at(jnp.asarray(eye, jnp.float32), jnp.array([0.0, 0.0, 6.0]), up_3=jnp.array([0.0, -1.0, 0.0]))
  focal = 0.5 * WIDTH / math.tan(math.radians(30.0))
  return Camera.from_opencv(c2w, fx=focal, fy=focal, cx=WIDTH / 2, cy=HEIGHT / 2, width=WIDTH, height=HEIGHT)


@pytest.fixture(scope="module")
def scene():
  g = random_gaussians(jax.random.key(0), 120, sh_degree=1, log_scale_mean=-2.0)
  return g.replace(active=g.active.at[-10:].set(False))


def _loss(fields, g, camera, capacity, **kw):
  out = render(g.replace(**fields), camera, capacity=capacity, **kw)
  return jnp.sum(out.rgb * jnp.linspace(0.5, 1.5, 3)) + jnp.sum(out.depth) * 0.01 + jnp.sum(out.alpha)


def test_pallas_matches_xla_images_and_gradients(scene):
  camera = _camera()
  capacity = estimate_capacity_for(scene, camera)
  fields = {f: getattr(scene, f) for f in FLOAT_FIELDS}
  want = render(scene, camera, capacity=capacity, implementation="xla")
  got = render(scene, camera, capacity=capacity, implementation="pallas_triton", interpret=True)
  for name in ("rgb", "alpha", "depth"):
    assert_close(getattr(got, name), getattr(want, name), jnp.float32, name)
  assert float(want.alpha.max()) > 0.5  # the scene is really visible
  grad = lambda impl, **kw: jax.grad(_loss)(fields, scene, camera, capacity, implementation=impl, **kw)
  g_xla, g_pallas = grad("xla"), grad("pallas_triton", interpret=True)
  for f in FLOAT_FIELDS:
    assert_close(g_pallas[f], g_xla[f], jnp.float32, f"d{f}", atol_scale=10.0)


def test_gradients_reach_every_parameter_and_skip_inactive(scene):
  camera = _camera()
  capacity = estimate_capacity_for(scene, camera)
  fields = {f: getattr(scene, f) for f in FLOAT_FIELDS}
  grads = jax.jit(jax.grad(_loss), static_argnums=(3,))(fields, scene, camera, capacity)
  for f in FLOAT_FIELDS:
    g = np.asarray(grads[f])
    assert np.all(np.isfinite(g)), f
    assert np.any(g[:-10] != 0), f"no gradient reaches {f}"
    np.testing.assert_array_equal(g[-10:], 0.0)  # inactive slots


def test_vmap_over_cameras_matches_one_by_one_and_shards_over_devices(scene):
  cameras = stack_cameras([_camera((x, 0.2 * x, 0.0)) for x in np.linspace(-0.6, 0.6, 8)])
  capacity = estimate_capacity_for(scene, cameras)
  batched = jax.jit(jax.vmap(lambda c: render(scene, c, capacity=capacity).rgb))
  images = batched(cameras)
  for i in (0, 5):
    np.testing.assert_allclose(images[i], render(scene, cameras[i], capacity=capacity).rgb, rtol=1e-5, atol=1e-6)
  assert not np.allclose(images[0], images[7])

  # Data parallel over cameras: each device renders its own views from a replicated scene.
  mesh = make_mesh({"data": 8})
  sharded_cameras = jax.device_put(cameras, NamedSharding(mesh, P("data")))
  sharded_images = batched(sharded_cameras)
  assert sharded_images.sharding.spec == P("data")
  np.testing.assert_allclose(sharded_images, images, rtol=1e-5, atol=1e-6)


def test_overflow_is_an_error_a_warning_or_a_flag(scene):
  camera = _camera()
  with pytest.raises(IntersectionOverflowError, match="capacity=8"):
    render(scene, camera, capacity=8)
  with pytest.warns(RuntimeWarning, match="overflow"):
    render(scene, camera, capacity=8, on_overflow="warn")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    out = render(scene, camera, capacity=8, on_overflow="ignore")
  assert bool(out.overflow) and int(out.num_intersections) > 8
  assert not bool(render(scene, camera, capacity=estimate_capacity_for(scene, camera)).overflow)
  with pytest.raises(ValueError, match="on_overflow"):
    render(scene, camera, capacity=8, on_overflow="truncate")


def test_capacity_is_estimated_eagerly_and_required_under_jit(scene):
  camera = _camera()
  eager = render(scene, camera)
  assert not bool(eager.overflow)
  with pytest.raises(ValueError, match="static `capacity=`"):
    jax.jit(lambda g: render(g, camera).rgb)(scene)


def test_bad_input_fails_before_rendering(scene):
  camera = _camera()
  with pytest.raises(ValueError, match="batch"):
    render(scene, stack_cameras([camera, camera]), capacity=1024)
  bad = scene.replace(means=scene.means.at[3, 0].set(jnp.nan))
  with pytest.raises(ValueError, match="means"):
    render(bad, camera, capacity=1024)
