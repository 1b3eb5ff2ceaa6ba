r"""Fit a 3D Gaussian scene to posed images (the 3DGS recipe), on the embedded scene by default.

  python -m launch.run --config=configs/splat_fit.py --workdir=runs/splat
  python -m launch.run --config=configs/splat_fit.py --workdir=runs/mine \
      --config.data.path=/data/garden --config.data.format=colmap --config.data.downscale=4

Variants:
  default: the embedded synthetic scene (generated on first use into the cache directory),
           64×64 views, 300 steps of 2 views per device; reaches about 34.1 dB test PSNR
           in about 7 minutes on 2 CPU cores, and 28.3–34.5 dB on object datasets of
           posed RGBA images without points in about 15 minutes (docs/PERFORMANCE.md).
  quality: the same scene and views, 900 steps, densification until step 750, 3DGS's
           learning rates and one view per step; measured 32.8 dB test PSNR at step 600.
  smoke:   tiny images and a few steps, for tests.
"""

import ml_collections

from configs.common import pick_variant

VARIANTS = ("default", "quality", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = ml_collections.ConfigDict()
  c.task = "splat_fit"
  c.seed = 0
  # Two devices when the run is on CPU: the XLA rasterizer keeps about one core busy, so each
  # renders its views on its own core. GPUs and TPUs serve the run with their own devices.
  c.cpu_devices = 2

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, expert=1))

  c.data = ml_collections.ConfigDict(dict(
      path="",  # empty: the embedded synthetic scene
      format="auto",  # auto | blender | nerfstudio | colmap
      downscale=1,
      background=(0.0, 0.0, 0.0),  # black, as 3DGS (a white one adds an opacity reset at densify_from)
      test_every=8,
      views_per_step=0,  # cameras per step, split over the mesh's data axis; 0: views_per_device per device of that axis
      views_per_device=2,
      # The embedded scene's size (used only when `path` is empty).
      synthetic_width=64, synthetic_height=64, synthetic_num_train=64, synthetic_num_test=8, synthetic_num_points=5_000,
  ))
  c.model = ml_collections.ConfigDict(dict(
      capacity=30_000,  # Gaussian slots; densification stops adding when they run out (reported)
      sh_degree=3,
      init_opacity=0.1,  # of every initial Gaussian (3DGS)
      init_num_points=20_000,  # when the dataset has no point cloud (rule: jaxlab.splat.initial_points)
      intersection_margin=1.5,  # intersection capacity = margin x the initial scene's need
  ))
  c.fit = ml_collections.ConfigDict(dict(
      lambda_dssim=0.2,
      # 3DGS's rates x2 (its SH DC rate x4) and position rates as 3DGS: a fit here takes ~1% of
      # 3DGS's 30,000 iterations (docs/PERFORMANCE.md, object datasets).
      position_lr_init=1.6e-4, position_lr_final=1.6e-6,
      sh_dc_lr=1e-2, sh_rest_lr=5e-4, opacity_lr=0.05, scaling_lr=1e-2, rotation_lr=2e-3,
      position_lr_max_steps=300,
      densify_from=100, densify_until=250, densify_every=100, densify_grad_threshold=2e-4,
      opacity_reset_every=3000, sh_increase_every=100, random_background=False,
  ))
  c.train = ml_collections.ConfigDict(dict(num_steps=300, log_every=50, eval_every=100, max_nonfinite_streak=20))
  c.checkpoint = ml_collections.ConfigDict(dict(save_every=100, keep=2, async_save=True))
  # num_tb_views: held-out views shown (render | ground truth) in TensorBoard at each evaluation; 0: none.
  c.outputs = ml_collections.ConfigDict(dict(num_test_renders=4, num_tb_views=4, turntable_frames=36, turntable_fps=12))

  if variant == "quality":
    # 3DGS's learning rates and one view per step on one device: the recipe its figures were measured with.
    c.cpu_devices = 1
    c.data.views_per_device = 1
    c.fit.update(sh_dc_lr=2.5e-3, sh_rest_lr=2.5e-3 / 20, opacity_lr=0.025, scaling_lr=5e-3, rotation_lr=1e-3,
                 position_lr_max_steps=900, densify_until=750)
    c.model.update(capacity=60_000, intersection_margin=2.0)
    c.train.update(num_steps=900, eval_every=300)
    c.checkpoint.save_every = 300
  elif variant == "smoke":
    c.data.update(synthetic_width=32, synthetic_height=32, synthetic_num_train=8, synthetic_num_test=2, synthetic_num_points=1_000,
                  views_per_device=1)
    c.model.update(capacity=4_000, init_num_points=500)
    c.fit.update(position_lr_max_steps=60, densify_from=20, densify_until=50, densify_every=10, opacity_reset_every=1000, sh_increase_every=20)
    c.train.update(num_steps=60, log_every=10, eval_every=30)
    c.checkpoint.update(save_every=20, keep=2)
    c.outputs.update(num_test_renders=2, num_tb_views=2, turntable_frames=4)
  return c


def get_sweep() -> list[dict]:
  """Densification threshold x SSIM weight."""
  return [{"fit.densify_grad_threshold": t, "fit.lambda_dssim": l} for t in (1e-4, 2e-4) for l in (0.1, 0.2)]
