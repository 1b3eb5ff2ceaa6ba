"""Flow matching (rectified flow): schedules, training loss, ODE samplers, a DiT, HiFlow sampling, image statistics.

Images and latents are NHWC (`x_bhwc`); x_sigma = (1 - sigma) * x0 + sigma * eps with
sigma = 1 pure noise, and velocity fields predict v = eps - x0.

- `matching`, `samplers`, `schedules`: the loss, Euler/Heun sampling, sigma schedules.
- `dit`, `dit_io`: the diffusion transformer and its save/load.
- `hiflow`: training-free high-resolution sampling guided by a lower-resolution flow; its
  low-pass filters are the guidance op's (`jaxlab.ops.flow_guidance_op.spectral`).
- `image_stats`: statistics of generated images (structure, spectrum, repetition).

Importing this package defines functions and classes only; nothing is computed or compiled.
"""

from jaxlab.flow.dit import DiT, DiTConfig
from jaxlab.flow.dit_io import load_dit, save_dit
from jaxlab.flow.hiflow import (
    HiFlowResult,
    HiFlowSettings,
    guided_stage,
    hiflow_sample,
    initial_latent,
    stage_weights,
)
from jaxlab.flow.image_stats import (
    highfreq_energy,
    lowfreq_error,
    neighbor_correlation,
    radial_power,
    repetition_score,
    spectrum_slope,
)
from jaxlab.flow.matching import (
    flow_matching_loss,
    noise_from_velocity,
    noisy_sample,
    sample_sigmas,
    velocity_target,
    x0_from_velocity,
)
from jaxlab.flow.samplers import VelocityFn, classifier_free_guidance, euler_sample, heun_sample
from jaxlab.flow.schedules import exponential_time_shift, resolution_shift_mu, sigma_schedule, time_shift
from jaxlab.ops.flow_guidance_op.spectral import (
    LOWPASS_KINDS,
    butterworth_mask,
    haar_dwt2,
    haar_idwt2,
    lowpass,
    lowpass_dwt,
    lowpass_fft,
)

__all__ = [
    # dit, dit_io
    "DiT",
    "DiTConfig",
    "load_dit",
    "save_dit",
    # hiflow
    "HiFlowResult",
    "HiFlowSettings",
    "guided_stage",
    "hiflow_sample",
    "initial_latent",
    "stage_weights",
    # image_stats
    "highfreq_energy",
    "lowfreq_error",
    "neighbor_correlation",
    "radial_power",
    "repetition_score",
    "spectrum_slope",
    # low-pass filters (jaxlab.ops.flow_guidance_op.spectral)
    "LOWPASS_KINDS",
    "butterworth_mask",
    "haar_dwt2",
    "haar_idwt2",
    "lowpass",
    "lowpass_dwt",
    "lowpass_fft",
    # matching
    "flow_matching_loss",
    "noise_from_velocity",
    "noisy_sample",
    "sample_sigmas",
    "velocity_target",
    "x0_from_velocity",
    # samplers
    "VelocityFn",
    "classifier_free_guidance",
    "euler_sample",
    "heun_sample",
    # schedules
    "exponential_time_shift",
    "resolution_shift_mu",
    "sigma_schedule",
    "time_shift",
]
