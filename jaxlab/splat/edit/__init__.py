"""Edits of `jaxlab.splat.Gaussians` for demonstration generation (RoboSplat); pure JAX.

- SH rotation (`rotate_sh`, `sh_rotation_matrices`): view-dependent colour that follows a
  rotation, colour'(R d) = colour(d), in the coefficient order of `sh_basis`.
- Equivariant transform (`transform_gaussians`, `rigid_transform_44`, `yaw_about_point`):
  move a Gaussian set by x -> R (s x) + t, rotations, scales and SH carried along (object pose).
- Composition (`concat_gaussians`, `select_gaussians`): stack sets; deactivate outside a mask.
- Lighting (`LightingRanges`, `sample_lighting`, `relight`): per-channel gain and offset plus
  per-Gaussian noise on the DC colour.
- Appearance (`textured_plane`, `photo_textures`, `replace_planes`): table and walls replaced
  by dense grids of flat Gaussians painted with real photographs.
- Camera view (`SphericalJitter`, `CAMERA_0_JITTER`, `CAMERA_1_JITTER`, `jitter_camera`):
  spherical jitter of a camera about a look-at point, plus roll.
- Object type (`replace_object`): swap an object's Gaussians for another asset standing on
  the same support plane under the same grasp point.
"""

from jaxlab.splat.edit.camera_jitter import CAMERA_0_JITTER, CAMERA_1_JITTER, SphericalJitter, jitter_camera
from jaxlab.splat.edit.lighting import LightingRanges, relight, sample_lighting
from jaxlab.splat.edit.planes import PHOTO_TEXTURE_NAMES, photo_textures, replace_planes, textured_plane
from jaxlab.splat.edit.replace import lowest_point_z, replace_object
from jaxlab.splat.edit.sh_rotation import rotate_sh, sh_rotation_matrices
from jaxlab.splat.edit.transform import (
    concat_gaussians,
    matrix_to_quaternion,
    rigid_transform_44,
    select_gaussians,
    transform_gaussians,
    yaw_about_point,
)

__all__ = [
    "CAMERA_0_JITTER",
    "CAMERA_1_JITTER",
    "PHOTO_TEXTURE_NAMES",
    "LightingRanges",
    "SphericalJitter",
    "concat_gaussians",
    "jitter_camera",
    "lowest_point_z",
    "matrix_to_quaternion",
    "photo_textures",
    "relight",
    "replace_object",
    "replace_planes",
    "rigid_transform_44",
    "rotate_sh",
    "sample_lighting",
    "select_gaussians",
    "sh_rotation_matrices",
    "textured_plane",
    "transform_gaussians",
    "yaw_about_point",
]
