"""Flow matching (rectified flow) as pure functions: sigma schedules, training loss, ODE samplers.

Images and latents are NHWC (`x_bhwc`); x_sigma = (1 - sigma) * x0 + sigma * eps with
sigma = 1 pure noise, and velocity fields predict v = eps - x0.
"""

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

__all__ = [
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
