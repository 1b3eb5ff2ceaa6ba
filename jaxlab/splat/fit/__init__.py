"""Fitting 3D Gaussian scenes to posed images with the 3DGS recipe, as pure jittable functions.

`FitSettings` (the 3DGS defaults), `init_fit_state` and `make_fit_step` give a step
`(state, batch, rng) -> (state, metrics)` that `jaxlab.train.train_loop` can drive: render
a batch of views, (1 - 0.2) L1 + 0.2 (1 - SSIM), Adam with per-parameter learning rates,
non-finite steps skipped, and densification / pruning / opacity reset / SH-degree increase
inside the same compiled step (a fixed-capacity buffer with an `active` mask).
`evaluate` scores held-out views; `losses` holds L1, SSIM and PSNR; `densify` and `optim`
the pieces, usable on their own.
"""

from jaxlab.splat.fit.densify import (
    DensifyReport,
    DensifyStats,
    accumulate_stats,
    densify_and_prune,
    reset_opacity,
    sh_band_mask,
    sh_degree_for_iteration,
)
from jaxlab.splat.fit.evaluate import evaluate
from jaxlab.splat.fit.losses import l1, psnr, ssim
from jaxlab.splat.fit.optim import (
    TRAINABLE_FIELDS,
    learning_rates,
    make_optimizer,
    position_lr_at_iteration,
    trainable_params,
    with_trainable,
    zero_moment_rows,
)
from jaxlab.splat.fit.state import FitSettings, FitState, scene_extent_from_cameras
from jaxlab.splat.fit.step import fit_step_fn, init_fit_state, make_fit_step

__all__ = [
    "TRAINABLE_FIELDS",
    "DensifyReport",
    "DensifyStats",
    "FitSettings",
    "FitState",
    "accumulate_stats",
    "densify_and_prune",
    "evaluate",
    "fit_step_fn",
    "init_fit_state",
    "l1",
    "learning_rates",
    "make_fit_step",
    "make_optimizer",
    "position_lr_at_iteration",
    "psnr",
    "reset_opacity",
    "scene_extent_from_cameras",
    "sh_band_mask",
    "sh_degree_for_iteration",
    "ssim",
    "trainable_params",
    "with_trainable",
    "zero_moment_rows",
]
