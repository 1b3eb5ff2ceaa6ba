r"""Build a V3DG level-of-detail bundle from one 3DGS asset (an INRIA PLY, or an embedded one).

  python -m launch.run --config=configs/v3dg_build.py --workdir=runs/v3dg_scene
  python -m launch.run --config=configs/v3dg_build.py --workdir=runs/my_asset \
      --config.input.ply=runs/splat/point_cloud/iteration_300/point_cloud.ply

With no PLY the asset is embedded: `scene` (the procedural scene configs/splat_fit.py fits,
as 16,384 Gaussians on its surfaces) or `donut` (the asset of the composed DonutSea scene).
Writes `bundle.npz` (load with jaxlab.splat.lod.load_bundle), `report.json` (levels, local
splatting losses, build time) and `levels.png` (each level rendered from one camera).

Variants:
  default: V3DG's recipe (n_g = 4096, n_c = 2, 640 local-splatting iterations at 64x64).
  smoke:   a 2,000-Gaussian asset, clusters of 256 and 8 iterations, for tests.
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "v3dg_build"
  c.seed = 0
  c.cpu_devices = 1  # the build runs one group program at a time; more devices are allowed and idle
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))
  c.input = ml_collections.ConfigDict(dict(
      ply="",  # an INRIA 3DGS PLY (any SH degree; bundles keep degree 0); empty: the embedded asset
      embedded="scene",  # scene | donut
      num_points=16_384,  # Gaussians of the embedded asset
  ))
  c.build = ml_collections.ConfigDict(dict(
      max_cluster_size=4096,  # n_g
      max_group_size=2,  # n_c
      top_level_clusters=2,
      groups_per_batch=1,  # groups fine-tuned at once (vmapped); raise on GPUs
  ))
  c.local_splat = ml_collections.ConfigDict(dict(
      iterations=640, image_size=64, focal=1111.11 * 64 / 800, distance_factor=4.0,
      lambda_dssim=0.2, lambda_alpha=0.1,
      lr_means=1.6e-5, lr_log_scales=5e-3, lr_quats=1e-3, lr_opacity_logits=5e-2, lr_sh=2.5e-3, adam_eps=1e-15,
      intersections_per_gaussian=4,
  ))
  c.outputs = ml_collections.ConfigDict(dict(preview_size=128))
  if variant == "smoke":
    c.input.num_points = 2_000
    c.build.max_cluster_size = 256
    c.local_splat.update(iterations=8, image_size=32, focal=1111.11 * 32 / 800)
    c.outputs.preview_size = 48
  return c
