"""Tests for `jaxlab.splat.project` against an independent NumPy EWA projection.

The reference builds rotations with quaternion algebra, covariances and the Jacobian as
explicit matrices and the tangent-plane clamp as 1.3 * tan(half field of view): none of it
shares code with the implementation. Scenes have a fixed size (padded with inactive slots)
so that one compiled projection serves most tests.
"""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import pytest

from tests.splat.test_gaussians import _hamilton
from jaxlab.splat import Camera, Gaussians, check_gaussians, look_at, project, stack_cameras

NUM = 10
WIDTH, HEIGHT = 64, 48
# Principal point at the centre: gsplat's clamp limits are then exactly 1.3 * tan(half fov).
INTRINSICS = dict(fx=100.0, fy=120.0, cx=32.0, cy=24.0, width=WIDTH, height=HEIGHT)
C0, C1 = 0.28209479177387814, 0.4886025119029199
# One compiled projection per (shape, antialiased) for the whole module; value checks are
# skipped under jit, so the bad-input tests call `project` itself.
_jitted_project = jax.jit(lambda g, camera, eps2d, antialiased: project(g, camera, eps2d=eps2d, antialiased=antialiased),
                          static_argnums=3)


def _project(g: Gaussians, camera: Camera, *, eps2d: float = 0.3, antialiased: bool = False):
  """The projection as NumPy arrays (slicing device arrays eagerly would compile each slice)."""
  return jax.device_get(_jitted_project(g, camera, eps2d, antialiased))  # eps2d traced: one compile


def _rotation(q_4: np.ndarray) -> np.ndarray:
  """Rotation matrix whose columns are q e_i q^* for a unit q."""
  q = q_4 / np.linalg.norm(q_4) if np.any(q_4) else np.array([1.0, 0, 0, 0])
  conj = q * [1, -1, -1, -1]
  return np.stack([_hamilton(_hamilton(q, np.r_[0.0, e]), conj)[1:] for e in np.eye(3)], axis=-1)


def _scene(means, *, log_scales=-1.0, quats=None, logits=0.5, sh=None, active=None, sh_degree=1, seed=0) -> Gaussians:
  """A scene of NUM slots: the given rows, then inactive padding."""
  rng = np.random.default_rng(seed)
  means = np.asarray(means, np.float64)
  n = len(means)
  num_coeffs = (sh_degree + 1) ** 2
  fill = lambda value, shape: np.broadcast_to(np.asarray(value, np.float64), shape)
  quats = rng.standard_normal((n, 4)) if quats is None else quats
  sh = rng.normal(0.0, 0.2, (n, num_coeffs, 3)) + np.eye(num_coeffs)[0][:, None] if sh is None else sh
  active = np.ones(n, bool) if active is None else active
  # Padding in NumPy: float32 on the host, so building a scene compiles nothing.
  pad = lambda x, value=0.0: np.concatenate([x, np.full((NUM - n, *x.shape[1:]), value, x.dtype)]).astype(x.dtype)
  f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
  return Gaussians(
      means=f32(pad(means)),
      log_scales=f32(pad(fill(log_scales, (n, 3)))),
      quats=f32(pad(np.asarray(quats, np.float64))),
      opacity_logits=f32(pad(fill(logits, (n,)))),
      sh=f32(pad(np.asarray(sh, np.float64))),
      active=jnp.asarray(pad(np.asarray(active, bool), False)),
  )


def _posed_camera(**changes) -> tuple[Camera, np.ndarray]:
  pose = np.asarray(look_at([1.0, -0.5, -4.0], [0.0, 0.0, 1.0], up_3=[0.0, -1.0, 0.0]), np.float64)
  return Camera.from_opencv(pose, **dict(INTRINSICS, **changes)), pose


def _reference(g: Gaussians, camera_to_world: np.ndarray, eps2d: float) -> dict:
  """Per-row NumPy EWA projection (float64) of the active rows."""
  world_to_camera = np.linalg.inv(camera_to_world)
  w = world_to_camera[:3, :3]
  fx, fy, cx, cy = (INTRINSICS[k] for k in ("fx", "fy", "cx", "cy"))
  lim_x, lim_y = 1.3 * 0.5 * WIDTH / fx, 1.3 * 0.5 * HEIGHT / fy
  out = {"means2d": [], "depths": [], "cov2d": [], "cov2d_undilated": []}
  means, quats, log_scales = (np.asarray(x, np.float64) for x in (g.means, g.quats, g.log_scales))
  for i in np.flatnonzero(np.asarray(g.active)):
    x, y, z = w @ means[i] + world_to_camera[:3, 3]
    r = _rotation(quats[i])
    sigma = r @ np.diag(np.exp(2.0 * log_scales[i])) @ r.T
    tx, ty = z * np.clip(x / z, -lim_x, lim_x), z * np.clip(y / z, -lim_y, lim_y)
    jac = np.array([[fx / z, 0.0, -fx * tx / z**2], [0.0, fy / z, -fy * ty / z**2]])
    cov2d = jac @ w @ sigma @ w.T @ jac.T
    out["means2d"].append([fx * x / z + cx, fy * y / z + cy])
    out["depths"].append(z)
    out["cov2d_undilated"].append(cov2d)
    out["cov2d"].append(cov2d + eps2d * np.eye(2))
  return {k: np.asarray(v) for k, v in out.items()}


def _conic_matrices(conics_n3) -> np.ndarray:
  a, b, c = np.asarray(conics_n3, np.float64).T
  return np.stack([np.stack([a, b], -1), np.stack([b, c], -1)], -2)


_VISIBLE_MEANS = [
    [0.0, 0.0, 1.0], [0.4, -0.3, 2.0], [-0.6, 0.5, 0.0], [0.2, 0.2, 3.0], [-0.3, -0.4, 1.5],
    [3.0, 0.2, 1.0],  # far right of the view: the Jacobian's clamp is active, the footprint still reaches in
]


def test_projection_matches_reference():
  g = _scene(_VISIBLE_MEANS, log_scales=np.vstack([np.full((5, 3), -1.5), np.zeros((1, 3))]))
  camera, pose = _posed_camera()
  out = _project(g, camera)
  ref = _reference(g, pose, 0.3)
  n = len(_VISIBLE_MEANS)
  assert np.all(np.asarray(out.radii[:n]) > 0) and np.all(np.asarray(out.radii[n:]) == 0)
  np.testing.assert_allclose(np.asarray(out.means2d[:n]), ref["means2d"], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(np.asarray(out.depths[:n]), ref["depths"], rtol=1e-5)
  conic = _conic_matrices(out.conics[:n])
  np.testing.assert_allclose(np.linalg.inv(conic), ref["cov2d"], rtol=2e-4, atol=1e-4)
  np.testing.assert_allclose(conic @ ref["cov2d"], np.broadcast_to(np.eye(2), (n, 2, 2)), atol=1e-4)
  # The clamped row differs from an unclamped Jacobian, so the clamp was exercised.
  assert abs(ref["means2d"][5, 0] - 32.0) / 100.0 > 1.3 * 0.32
  largest = np.linalg.eigvalsh(ref["cov2d"])[:, -1]
  radii = np.asarray(out.radii[:n])
  assert np.all(radii >= np.ceil(3 * np.sqrt(largest))) and np.all(radii <= np.ceil(3 * np.sqrt(largest + 0.1)))
  # Degree-1 colour for the direction from the camera centre: C0 k0 - C1 y k1 + C1 z k2 - C1 x k3 + 0.5.
  dirs = np.asarray(g.means, np.float64)[:n] - pose[:3, 3]
  x, y, z = (dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)).T[:, :, None]
  k = np.asarray(g.sh, np.float64)[:n]
  colors = np.maximum(C0 * k[:, 0] - C1 * y * k[:, 1] + C1 * z * k[:, 2] - C1 * x * k[:, 3] + 0.5, 0)
  np.testing.assert_allclose(np.asarray(out.colors[:n]), colors, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(out.opacities[:n]), 1 / (1 + np.exp(-0.5)), rtol=1e-6)


def test_analytic_pixel_of_a_point_on_a_known_camera():
  # Camera at (0.1, 0.2, -1), axis aligned: the point (0.5, -0.25, 4) is at (0.4, -0.45, 5).
  pose = np.eye(4)
  pose[:3, 3] = [0.1, 0.2, -1.0]
  camera = Camera.from_opencv(pose, **INTRINSICS)
  out = _project(_scene([[0.5, -0.25, 4.0]], log_scales=-2.0), camera)
  np.testing.assert_allclose(np.asarray(out.means2d[0]), [100 * 0.4 / 5 + 32, 120 * -0.45 / 5 + 24], rtol=1e-6)
  assert float(out.depths[0]) == pytest.approx(5.0, rel=1e-6)


def test_eps2d_adds_to_the_covariance_diagonal():
  g = _scene(_VISIBLE_MEANS[:5], log_scales=-1.5)
  camera, _ = _posed_camera()
  cov = {eps: np.linalg.inv(_conic_matrices(_project(g, camera, eps2d=eps).conics[:5])) for eps in (0.0, 0.7)}
  np.testing.assert_allclose(cov[0.7] - cov[0.0], np.broadcast_to(0.7 * np.eye(2), (5, 2, 2)), atol=2e-3)
  with pytest.raises(ValueError, match="eps2d"):
    project(g, camera, eps2d=-0.1)


def test_antialiased_compensation():
  # Rows: large, medium and sub-pixel Gaussians.
  g = _scene(_VISIBLE_MEANS[:3], log_scales=np.array([[0.0] * 3, [-2.0] * 3, [-6.0] * 3]))
  camera, pose = _posed_camera()
  plain = np.asarray(_project(g, camera).opacities[:3])
  aliased = np.asarray(_project(g, camera, antialiased=True).opacities[:3])
  ref = _reference(g, pose, 0.3)
  compensation = np.sqrt(np.linalg.det(ref["cov2d_undilated"]) / np.linalg.det(ref["cov2d"]))
  np.testing.assert_allclose(aliased, plain * compensation, rtol=1e-4, atol=1e-7)
  assert np.all(aliased <= plain) and compensation[0] > 0.99 and compensation[2] < 0.05


def _culling_scene() -> Gaussians:
  means = np.array([
      [0.0, 0.0, 5.0],  # 0 visible
      [0.0, 0.0, 0.005],  # 1 in front of the camera but nearer than `near`
      [0.0, 0.0, -3.0],  # 2 behind the camera
      [0.0, 0.0, 60.0],  # 3 beyond `far`
      [5.0, 0.0, 5.0],  # 4 small and far right of the image
      [2.5, 0.0, 5.0],  # 5 mean right of the image (clamped in J), footprint overlapping it
      [np.nan, 0.0, 5.0],  # 6 inactive (and non-finite: ignored)
      [0.1, 0.1, 4.0],  # 7 vanishing scale: still drawn, as the eps2d dilation
      [-0.5, 0.3, 6.0],  # 8 zero quaternion: read as the identity
      [0.0, 0.1, 5.0],  # 9 scale whose covariance overflows (float32 and float64): culled
  ])
  log_scales = np.full((10, 3), -3.0)
  log_scales[5] = -1.0
  log_scales[7] = -30.0
  log_scales[9] = 400.0
  quats = np.random.default_rng(3).standard_normal((10, 4))
  quats[8] = 0.0
  active = np.ones(10, bool)
  active[6] = False
  return _scene(means, log_scales=log_scales, quats=quats, active=active)


_CULLED = [1, 2, 3, 4, 6, 9]
_DRAWN = [0, 5, 7, 8]


def _identity_camera(**changes) -> Camera:
  return Camera.from_opencv(np.eye(4), **dict(INTRINSICS, far=50.0, **changes))


def test_culling():
  out = _project(_culling_scene(), _identity_camera())
  radii = np.asarray(out.radii)
  assert np.all(radii[_CULLED] == 0) and np.all(radii[_DRAWN] > 0)
  assert float(out.means2d[5, 0]) > WIDTH  # drawn although its mean is outside
  for field in ("means2d", "conics", "colors", "opacities", "depths"):
    values = np.asarray(getattr(out, field))
    assert np.all(np.isfinite(values)), field
    assert not np.any(values[_CULLED]), field
  np.testing.assert_allclose(np.asarray(out.conics[7]), [1 / 0.3, 0.0, 1 / 0.3], rtol=1e-4, atol=1e-6)
  assert 1 <= int(radii[7]) <= 3


def test_gradients_match_finite_differences_and_vanish_on_culled_rows():
  # float64, so that central differences are accurate to ~1e-9; the culling scene, so that
  # culled rows (NaN, behind the camera, overflowing scale...) are differentiated too.
  rng = np.random.default_rng(7)
  scene = _culling_scene()
  names = ("means", "log_scales", "quats", "opacity_logits", "sh")
  with jax.enable_x64(True):
    camera = jax.tree.map(lambda x: jnp.asarray(np.asarray(x, np.float64)), _identity_camera())
    params = {name: jnp.asarray(np.asarray(getattr(scene, name), np.float64)) for name in names}
    weights = {f: jnp.asarray(rng.standard_normal(s)) for f, s in
               (("means2d", (NUM, 2)), ("conics", (NUM, 3)), ("colors", (NUM, 3)), ("opacities", (NUM,)), ("depths", (NUM,)))}

    def loss(p):
      out = project(Gaussians(active=scene.active, **p), camera, antialiased=True)
      return sum(jnp.sum(w * getattr(out, f)) for f, w in weights.items())

    flat, unravel = ravel_pytree(params)
    step = 1e-6
    # Row 0 is the unperturbed point (its gradient is the analytic one); one compile for all.
    offsets = step * np.concatenate([np.zeros((1, flat.size)), np.eye(flat.size), -np.eye(flat.size)])
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(lambda d: loss(unravel(flat + d)))))(jnp.asarray(offsets))
    values, analytic = np.asarray(values), np.asarray(grads[0])
    numeric = (values[1 : flat.size + 1] - values[flat.size + 1 :]) / (2 * step)
    per_field = {name: np.asarray(g) for name, g in unravel(jnp.asarray(analytic)).items()}
    # A zero quaternion has no derivative (q and a tiny q' can be far-apart rotations): skip it.
    skip = ravel_pytree({name: jnp.zeros_like(x).at[8].set(1.0 if name == "quats" else 0.0) for name, x in params.items()})[0]
  for name, grad in per_field.items():
    assert np.all(np.isfinite(grad)), name
    assert not np.any(grad[_CULLED]), name
    assert np.any(grad[_DRAWN]), name
  compared = np.asarray(skip) == 0
  np.testing.assert_allclose(analytic[compared], numeric[compared], rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_opencv_and_opengl_cameras_project_identically():
  camera, pose = _posed_camera()
  gl_camera = Camera.from_opengl(pose * np.array([1.0, -1.0, -1.0, 1.0]), **INTRINSICS)
  g = _scene(_VISIBLE_MEANS, log_scales=-1.5)
  a, b = _project(g, camera), _project(g, gl_camera)
  for field in ("means2d", "conics", "colors", "opacities", "depths", "radii"):
    np.testing.assert_allclose(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)), rtol=1e-4, atol=1e-4)


def test_vmap_over_cameras_matches_one_by_one():
  g = _scene(_VISIBLE_MEANS, log_scales=-1.5)
  cameras = [_posed_camera()[0], _identity_camera(), Camera.from_opencv(np.eye(4), **dict(INTRINSICS, fx=80.0))]
  batched = jax.device_get(jax.vmap(project, in_axes=(None, 0))(g, stack_cameras(cameras)))
  for i, camera in enumerate(cameras):
    single = _project(g, camera)
    for field in ("means2d", "conics", "colors", "radii"):
      np.testing.assert_allclose(np.asarray(getattr(batched, field)[i]), np.asarray(getattr(single, field)), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="vmap"):
    project(g, stack_cameras(cameras))


def test_non_finite_parameters():
  g = _scene(_VISIBLE_MEANS[:3], log_scales=-1.5)
  bad = g.replace(log_scales=g.log_scales.at[1, 2].set(jnp.inf).at[2, 0].set(jnp.nan))
  camera = _identity_camera()
  with pytest.raises(ValueError, match=r"log_scales has non-finite values in 2 active row\(s\) \(first: row 1\)"):
    project(bad, camera)
  # Under jit the values are unknown while checking: those rows are culled instead.
  out = _project(bad, camera)
  np.testing.assert_array_equal(np.asarray(out.radii[:3]) > 0, [True, False, False])
  assert np.all(np.isfinite(np.asarray(out.conics)))
  # Non-finite values in inactive rows are allowed.
  check_gaussians(bad.replace(active=bad.active.at[1:3].set(False)))


@pytest.mark.parametrize("change, message", [
    (lambda g: g.replace(means=g.means[:, :2]), r"Gaussians.means must have shape \[N, 3\]"),
    (lambda g: g.replace(quats=g.quats[:5]), "disagree on N"),
    (lambda g: g.replace(opacity_logits=g.opacity_logits.astype(jnp.int32)), "opacity_logits must be a floating dtype"),
    (lambda g: g.replace(active=g.active.astype(jnp.float32)), "active must be bool"),
    (lambda g: g.replace(sh=jnp.zeros((NUM, 5, 3))), r"\(1, 4, 9, 16\)"),
])
def test_bad_gaussians(change, message):
  with pytest.raises(ValueError, match=message):
    project(change(_scene(_VISIBLE_MEANS[:2])), _identity_camera())


def test_empty_scene():
  empty = Gaussians(
      means=jnp.zeros((0, 3)), log_scales=jnp.zeros((0, 3)), quats=jnp.zeros((0, 4)),
      opacity_logits=jnp.zeros((0,)), sh=jnp.zeros((0, 4, 3)), active=jnp.zeros((0,), jnp.bool_))
  out = project(empty, _identity_camera())
  assert out.means2d.shape == (0, 2) and out.conics.shape == (0, 3) and out.radii.shape == (0,)
