"""3D Gaussian splatting: Gaussians, cameras, projection, tile binning, rendering, PLY I/O.

`Gaussians` holds a scene in a fixed-capacity buffer; `Camera` a pinhole camera (or a
batch) with OpenCV axes; `project` maps the scene into one camera (2D means, conics,
colours, opacities, depths, radii), differentiably; `bin_gaussians` sorts Gaussian-tile
intersections by (tile, depth); `render` composes them with the `jaxlab.ops.gaussian_raster`
op; `save_ply` / `load_ply` read and write the standard 3DGS PLY layout.
`check_gaussians` / `check_camera` reject malformed input before any kernel runs.
"""

from jaxlab.splat.binning import TileBins, bin_gaussians, estimate_capacity
from jaxlab.splat.camera import Camera, look_at, stack_cameras
from jaxlab.splat.gaussians import (
    Gaussians,
    from_point_cloud,
    normalize_quaternions,
    random_gaussians,
    rotation_matrices,
)
from jaxlab.splat.ply import load_ply, save_ply
from jaxlab.splat.project import Projected, project
from jaxlab.splat.render import IntersectionOverflowError, RenderOutput, estimate_capacity_for, render
from jaxlab.splat.sh import (
    SH_C0,
    rgb_to_sh_dc,
    sh_basis,
    sh_dc_to_rgb,
    sh_degree_from_num_coeffs,
    sh_to_color,
)
from jaxlab.splat.validate import check_camera, check_gaussians

__all__ = [
    "SH_C0",
    "Camera",
    "Gaussians",
    "IntersectionOverflowError",
    "Projected",
    "RenderOutput",
    "TileBins",
    "bin_gaussians",
    "estimate_capacity",
    "estimate_capacity_for",
    "load_ply",
    "render",
    "save_ply",
    "check_camera",
    "check_gaussians",
    "from_point_cloud",
    "look_at",
    "normalize_quaternions",
    "project",
    "random_gaussians",
    "rgb_to_sh_dc",
    "rotation_matrices",
    "sh_basis",
    "sh_dc_to_rgb",
    "sh_degree_from_num_coeffs",
    "sh_to_color",
    "stack_cameras",
]
