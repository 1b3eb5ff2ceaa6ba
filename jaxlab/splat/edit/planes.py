"""Appearance edit: textured planes of flat Gaussians that replace a scene's table and walls.

A plane is a dense nu x nv grid of Gaussians, thin along the normal and about half the grid
spacing wide in the plane, whose DC colours are an image resized bicubically to the grid.
`photo_textures` gives real photographs (those shipped inside scikit-image) to paint them with.
"""

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.splat.edit.transform import concat_gaussians, matrix_to_quaternion, select_gaussians
from jaxlab.splat.gaussians import Gaussians
from jaxlab.splat.sh import num_sh_coeffs, rgb_to_sh_dc

# Photographs that ship inside the scikit-image wheel (no download), in a fixed order.
PHOTO_TEXTURE_NAMES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket",
)
# Normal-axis standard deviation as a fraction of the smaller in-plane one (default thickness).
_THICKNESS_FRACTION = 0.05


def _unit(name: str, v: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(v)
  if not np.isfinite(norm) or norm == 0:
    raise ValueError(f"textured_plane: {name} must be a finite non-zero vector; got {v}")
  return v / norm


def _vector3(name: str, value) -> np.ndarray:
  v = np.asarray(value, np.float64)
  if v.shape != (3,):
    raise ValueError(f"textured_plane: {name} must have shape [3]; got {v.shape}")
  return v


def _image_as_float(image_hw3) -> jax.Array:
  """[H, W, 3] in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
  if np.ndim(image_hw3) != 3 or np.shape(image_hw3)[-1] != 3:
    raise ValueError(f"textured_plane: image_hw3 must have shape [H, W, 3]; got {np.shape(image_hw3)}")
  dtype = image_hw3.dtype if hasattr(image_hw3, "dtype") else np.asarray(image_hw3).dtype
  image = jnp.asarray(image_hw3, jnp.float32)
  return image / 255.0 if dtype == np.uint8 else image


def textured_plane(
    image_hw3,
    *,
    origin_3,
    u_axis_3,
    v_axis_3,
    size_uv: tuple[float, float],
    points_uv: tuple[int, int],
    tilt: tuple[float, float, float] | None = None,
    opacity: float = 0.99,
    sh_degree: int = 0,
    thickness: float | None = None,
) -> Gaussians:
  """A rectangle of flat Gaussians painted with an image.

  The plane spans origin + u * u_hat + v * v_hat for u in [0, su], v in [0, sv]; image
  column ~ u and image row ~ v, so the image's top-left corner sits at the origin. Grid
  point (i, j) (i along u, j along v) is Gaussian j * nu + i, at the centre of its cell.

  Args:
    image_hw3: [H, W, 3] uint8 (0..255) or float (0..1) image.
    origin_3: [3] world position of the plane corner (u, v) = (0, 0).
    u_axis_3, v_axis_3: [3] in-plane directions (normalised here; v is made orthogonal to u).
      The normal is u_hat x v_hat.
    size_uv: (su, sv) plane extent in metres.
    points_uv: (nu, nv) grid size, e.g. (725, 600) for a table.
    tilt: optional (a, b, c): points are displaced along the normal by a * u + b * v + c
      (u, v in metres from the origin), and the Gaussians turn to follow the slope. The
      spec's table z = 0.02 (x - 0.5) - 0.02 is tilt (0.02, 0, 0.02 * (x0 - 0.5) - 0.02)
      with u along +x from x = x0 and the normal +z.
    opacity: in (0, 1), the same for every Gaussian.
    sh_degree: 0..3; higher coefficients are zero.
    thickness: normal-axis standard deviation in metres; None = 5% of the smaller in-plane one.

  Returns:
    nu * nv active float32 Gaussians.
  """
  origin = _vector3("origin_3", origin_3)
  u_axis, v_axis = _vector3("u_axis_3", u_axis_3), _vector3("v_axis_3", v_axis_3)
  u_hat = _unit("u_axis_3", u_axis)
  v_ortho = v_axis - np.dot(v_axis, u_hat) * u_hat
  if not np.linalg.norm(v_ortho) > 1e-6 * np.linalg.norm(v_axis):
    raise ValueError(f"textured_plane: v_axis_3 must be non-zero and not parallel to u_axis_3; got {v_axis}")
  v_hat = v_ortho / np.linalg.norm(v_ortho)
  normal = np.cross(u_hat, v_hat)
  if len(size_uv) != 2 or not all(np.isfinite(s) and s > 0 for s in size_uv):
    raise ValueError(f"textured_plane: size_uv must be two positive sizes (metres); got {size_uv!r}")
  if len(points_uv) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                                    for n in points_uv):
    raise ValueError(f"textured_plane: points_uv must be two positive ints; got {points_uv!r}")
  if not 0.0 < opacity < 1.0:
    raise ValueError(f"textured_plane: opacity must be in (0, 1); got {opacity!r}")
  if tilt is not None and len(tilt) != 3:
    raise ValueError(f"textured_plane: tilt must be (a, b, c) or None; got {tilt!r}")
  num_coeffs = num_sh_coeffs(sh_degree)
  image = _image_as_float(image_hw3)
  (su, sv), (nu, nv) = (float(s) for s in size_uv), (int(n) for n in points_uv)
  a, b, c = (0.0, 0.0, 0.0) if tilt is None else (float(t) for t in tilt)

  u_i = (np.arange(nu) + 0.5) * (su / nu)
  v_j = (np.arange(nv) + 0.5) * (sv / nv)
  u_ji, v_ji = np.meshgrid(u_i, v_j)  # [nv, nu]: row j, column i
  height_ji = a * u_ji + b * v_ji + c
  means = origin + u_ji[..., None] * u_hat + v_ji[..., None] * v_hat + height_ji[..., None] * normal

  # Tangents of the (tilted) surface give the Gaussians' frame and in-plane stretch.
  tangent_u, tangent_v = u_hat + a * normal, v_hat + b * normal
  e1 = tangent_u / np.linalg.norm(tangent_u)
  e2 = tangent_v - np.dot(tangent_v, e1) * e1
  e2 /= np.linalg.norm(e2)
  frame_33 = np.stack([e1, e2, np.cross(e1, e2)], axis=-1)
  sigma_u = 0.5 * (su / nu) * np.linalg.norm(tangent_u)
  sigma_v = 0.5 * (sv / nv) * np.linalg.norm(tangent_v)
  sigma_n = _THICKNESS_FRACTION * min(sigma_u, sigma_v) if thickness is None else float(thickness)
  if not sigma_n > 0:
    raise ValueError(f"textured_plane: thickness must be > 0; got {thickness!r}")

  num = nu * nv
  colors_n3 = jnp.clip(jax.image.resize(image, (nv, nu, 3), method="bicubic"), 0.0, 1.0).reshape(num, 3)
  quat_4 = matrix_to_quaternion(jnp.asarray(frame_33, jnp.float32))
  sh = jnp.zeros((num, num_coeffs, 3), jnp.float32).at[:, 0].set(rgb_to_sh_dc(colors_n3))
  return Gaussians(
      means=jnp.asarray(means.reshape(num, 3), jnp.float32),
      log_scales=jnp.broadcast_to(jnp.log(jnp.asarray([sigma_u, sigma_v, sigma_n], jnp.float32)), (num, 3)),
      quats=jnp.broadcast_to(quat_4, (num, 4)),
      opacity_logits=jnp.full((num,), math.log(opacity / (1.0 - opacity)), jnp.float32),
      sh=sh,
      active=jnp.ones((num,), jnp.bool_),
  )


def _as_rgb_uint8(name: str, image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype == np.bool_:
    image = image.astype(np.uint8) * 255
  if image.dtype != np.uint8:
    raise ValueError(f"photo texture {name!r} has dtype {image.dtype}, expected uint8")
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4):
    raise ValueError(f"photo texture {name!r} has shape {image.shape}, expected [H, W] or [H, W, 3|4]")
  return np.ascontiguousarray(image[..., :3])


def photo_textures(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
  """Real photographs from `skimage.data` as uint8 [H, W, 3] RGB (greyscale is repeated).

  Args:
    names: which ones, from `PHOTO_TEXTURE_NAMES`; None = all of them, in that order.

  Raises:
    ImportError: scikit-image is not installed.
    ValueError: a name that is not in `PHOTO_TEXTURE_NAMES`.
  """
  names = PHOTO_TEXTURE_NAMES if names is None else tuple(names)
  unknown = [n for n in names if n not in PHOTO_TEXTURE_NAMES]
  if unknown:
    raise ValueError(f"photo_textures: unknown name(s) {unknown}; choose from {PHOTO_TEXTURE_NAMES}")
  try:
    import skimage.data  # noqa: PLC0415 (an optional dependency, needed only here)
  except ImportError as e:
    raise ImportError("photo_textures needs scikit-image (pip install scikit-image)") from e
  return {name: _as_rgb_uint8(name, getattr(skimage.data, name)()) for name in names}


def replace_planes(scene: Gaussians, remove_mask_n: jax.Array, planes: Gaussians | Sequence[Gaussians]) -> Gaussians:
  """The scene with the Gaussians in `remove_mask_n` deactivated and `planes` appended."""
  planes = [planes] if isinstance(planes, Gaussians) else list(planes)
  if np.shape(remove_mask_n) != (scene.num,):
    raise ValueError(
        f"replace_planes: remove_mask_n must have shape [{scene.num}]; got {list(np.shape(remove_mask_n))}")
  kept = select_gaussians(scene, jnp.logical_not(jnp.asarray(remove_mask_n, jnp.bool_)))
  return concat_gaussians([kept, *planes])
