"""HiFlow: training-free high-resolution sampling of a rectified-flow model, aligned to a reference flow.

A cascade. Stage 0 samples at the base resolution over the whole schedule and keeps its
clean prediction x̂0 at every step. Stage k (k >= 1) runs at `scale_factor` times the previous
resolution and only the last N_k steps of the same schedule, guided by the previous stage:

- initialization alignment: upsample the previous stage's final sample (bicubic), sharpen it
  with an unsharp mask, re-noise it to the first retained sigma;
- direction alignment at every step: x̂0 <- x̂0 + alpha_i [LP(x0_ref) - LP(x̂0)], x0_ref the
  previous stage's unguided x̂0 at the same step, upsampled; LP a Butterworth low-pass
  (or a Haar approximation band);
- acceleration alignment from the second step: v <- v + beta_i [(v_prev + v_ref - v_ref_prev) - v];
- alpha_i = alpha_k (N - i) / N and beta_i = beta_k (N - i) / N decay linearly over the stage.

The per-step arithmetic is `jaxlab.ops.flow_guidance` (XLA or one fused Pallas kernel). Each
stage's unguided x̂0 per step is the next stage's reference, so a stage's retained steps must
be a subset of the previous stage's: N_k must not increase along the cascade.

Everything is NHWC and works on pixels or on latents alike. `velocity_fn(x_bhwc, sigma_b,
cond)` may be one function for every resolution, or one per stage (e.g. a DiT called with
NTK-scaled RoPE above its training resolution).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.flow.resample import unsharp_mask, upsample_bicubic
from jaxlab.flow.samplers import VelocityFn, euler_sample
from jaxlab.flow.schedules import sigma_schedule
from jaxlab.ops import flow_guidance


@dataclasses.dataclass(frozen=True)
class HiFlowSettings:
  """Cascade and guidance settings (defaults: the HiFlow code's, for 1x -> 2x -> 4x).

  Attributes:
    num_steps: steps of the base schedule; higher stages run its last `stage_steps[k]`.
    stage_steps: N_k for each stage above the base (non-increasing).
    scale_factor: each stage's resolution over the previous one's.
    alpha: direction-alignment strength per stage (decays linearly within the stage).
    beta: acceleration-alignment strength per stage (decays linearly within the stage).
    lowpass: "fft" (Butterworth, `cutoff`, `order`) or "dwt" (Haar approximation band).
    shift: static time shift of the schedule (None: none).
    sharpen_sigma: Gaussian-blur sigma of the unsharp mask; None draws U(0.1, 2) per stage.
  """

  num_steps: int = 30
  stage_steps: tuple[int, ...] = (16, 10)
  scale_factor: int = 2
  alpha: tuple[float, ...] = (1.0, 0.25)
  beta: tuple[float, ...] = (0.5, 0.5)
  lowpass: str = "fft"
  cutoff: float = 0.2
  order: int = 4
  shift: float | None = None
  sharpen_sigma: float | None = None

  def __post_init__(self):
    stages = len(self.stage_steps)
    if len(self.alpha) != stages or len(self.beta) != stages:
      raise ValueError(f"HiFlowSettings: alpha {self.alpha} and beta {self.beta} need one value per stage "
                       f"of stage_steps {self.stage_steps}")
    if any(not 1 <= n <= self.num_steps for n in self.stage_steps):
      raise ValueError(f"HiFlowSettings: every stage runs 1..num_steps={self.num_steps} steps, "
                       f"got stage_steps {self.stage_steps}")
    if any(b > a for a, b in zip(self.stage_steps, self.stage_steps[1:])):
      raise ValueError(f"HiFlowSettings: stage_steps {self.stage_steps} must not increase: each stage's "
                       "reference comes from the steps the previous stage ran")
    if self.scale_factor < 1:
      raise ValueError(f"HiFlowSettings: scale_factor must be >= 1, got {self.scale_factor}")
    if self.lowpass not in ("fft", "dwt"):
      raise ValueError(f"HiFlowSettings: lowpass must be 'fft' or 'dwt', got {self.lowpass!r}")

  @property
  def num_stages(self) -> int:
    """Stages including the base one."""
    return 1 + len(self.stage_steps)

  def sigmas(self) -> np.ndarray:
    """[num_steps + 1] the shared schedule, ending at 0."""
    return sigma_schedule(self.num_steps, shift=self.shift)


class HiFlowResult(NamedTuple):
  """Per stage (index 0 = base): the final sample and the unguided x̂0 of every step run."""

  samples: tuple[jax.Array, ...]  # [B, H_k, W_k, C]
  x0_trajectories: tuple[jax.Array, ...]  # [N_k, B, H_k, W_k, C]; N_0 = num_steps
  first_steps: tuple[int, ...]  # Global index of each stage's first step (0 for the base).


def stage_weights(strength: float, num_steps: int) -> np.ndarray:
  """[N] strength * (N - i) / N for i = 0..N-1: the linear decay over a stage."""
  return strength * (num_steps - np.arange(num_steps, dtype=np.float32)) / num_steps


def initial_latent(previous_final_bhwc, noise_bhwc, sigma: float, scale_factor: int, sharpen_sigma: float):
  """Initialization alignment: sigma * noise + (1 - sigma) * sharpen(upsample(previous final))."""
  reference = unsharp_mask(upsample_bicubic(previous_final_bhwc, scale_factor), sharpen_sigma)
  return sigma * noise_bhwc + (1.0 - sigma) * reference


def guided_stage(velocity_fn: VelocityFn, x_init_bhwc, reference_x0_nbhwc, sigmas_n1, alphas_n, betas_n, cond=None,
                 *, scale_factor: int, lowpass: str = "fft", cutoff: float = 0.2, order: int = 4,
                 implementation=None):
  """One higher stage: N guided Euler steps from `x_init` over `sigmas_n1` ([N + 1]).

  Args:
    velocity_fn: v(x_bhwc, sigma_b, cond) at this stage's resolution.
    x_init_bhwc: the aligned initial latent at sigmas_n1[0].
    reference_x0_nbhwc: [N, B, h, w, C] the previous stage's unguided x̂0 at the same steps,
      at the previous resolution (h * scale_factor = H).
    sigmas_n1: [N + 1] this stage's sigmas, the tail of the shared schedule.
    alphas_n, betas_n: [N] per-step strengths (betas_n[0] is not used: no acceleration term
      without a previous step).
    implementation: for `jaxlab.ops.flow_guidance`.

  Returns:
    (x_final_bhwc, x0_unguided_nbhwc): the sample and this stage's unguided x̂0 per step.
  """
  num_steps = reference_x0_nbhwc.shape[0]
  if sigmas_n1.shape != (num_steps + 1,) or alphas_n.shape != (num_steps,) or betas_n.shape != (num_steps,):
    raise ValueError(f"guided_stage: {num_steps} reference steps need sigmas [{num_steps + 1}] and alphas, betas "
                     f"[{num_steps}], got {sigmas_n1.shape}, {alphas_n.shape}, {betas_n.shape}")
  expected = (x_init_bhwc.shape[0], x_init_bhwc.shape[1] // scale_factor, x_init_bhwc.shape[2] // scale_factor,
              x_init_bhwc.shape[3])
  if reference_x0_nbhwc.shape[1:] != expected or x_init_bhwc.shape[1] % scale_factor:
    raise ValueError(f"guided_stage: reference steps {reference_x0_nbhwc.shape[1:]} do not match the target "
                     f"{x_init_bhwc.shape} at scale factor {scale_factor} (expected {expected})")
  batch = x_init_bhwc.shape[0]
  # No acceleration on the first step: the op's term is scaled by beta_0 = 0 there, and the
  # zero-initialised previous velocities it multiplies are finite, so the step is exact.
  betas_n = jnp.asarray(betas_n, jnp.float32).at[0].set(0.0)

  def step(carry, inputs):
    x, v_prev, v_ref_prev = carry
    sigma, sigma_next, reference_x0, alpha, beta = inputs
    v = velocity_fn(x, jnp.full((batch,), sigma, jnp.float32), cond)
    x0_ref = upsample_bicubic(reference_x0, scale_factor)
    out = flow_guidance(x, v.astype(jnp.float32), x0_ref, v_prev, v_ref_prev, sigma=sigma, sigma_next=sigma_next,
                        alpha=alpha, beta=beta, lowpass=lowpass, cutoff=cutoff, order=order,
                        implementation=implementation)
    return (out.x_next, out.v_guided, out.v_ref), out.x0_unguided

  x0 = x_init_bhwc.astype(jnp.float32)
  zeros = jnp.zeros_like(x0)
  sigmas_n1 = jnp.asarray(sigmas_n1, jnp.float32)
  inputs = (sigmas_n1[:-1], sigmas_n1[1:], reference_x0_nbhwc.astype(jnp.float32), jnp.asarray(alphas_n, jnp.float32),
            betas_n)
  (x_final, _, _), x0_unguided = jax.lax.scan(step, (x0, zeros, zeros), inputs)
  return x_final, x0_unguided


def _velocity_for_stage(velocity_fn, stage: int, num_stages: int) -> VelocityFn:
  if callable(velocity_fn):
    return velocity_fn
  fns = tuple(velocity_fn)
  if len(fns) != num_stages:
    raise ValueError(f"hiflow_sample: {len(fns)} velocity functions for {num_stages} stages")
  return fns[stage]


def hiflow_sample(velocity_fn: VelocityFn | Sequence[VelocityFn], key: jax.Array, base_shape: tuple[int, ...],
                  cond=None, settings: HiFlowSettings = HiFlowSettings(), *, implementation=None) -> HiFlowResult:
  """Samples the whole cascade from `key`.

  Args:
    velocity_fn: one function for every resolution, or a sequence of one per stage.
    key: PRNG key; stage k draws its noise (and its sharpening sigma) from fold_in(key, k).
    base_shape: (B, H, W, C) of the base stage; stage k has H * scale_factor^k.
    cond: passed to every velocity call.
    settings: `HiFlowSettings`.
    implementation: for `jaxlab.ops.flow_guidance` ("xla", "pallas_triton", or None).

  Returns:
    `HiFlowResult`.
  """
  if len(base_shape) != 4:
    raise ValueError(f"hiflow_sample: base_shape must be (B, H, W, C), got {base_shape}")
  factor = settings.scale_factor
  if settings.lowpass == "dwt":
    for stage in range(1, settings.num_stages):
      size = (base_shape[1] * factor**stage, base_shape[2] * factor**stage)
      if size[0] % 2 or size[1] % 2:
        raise ValueError(f"hiflow_sample: the Haar low-pass needs even sizes; stage {stage} is {size}")
  sigmas = settings.sigmas()
  base_fn = _velocity_for_stage(velocity_fn, 0, settings.num_stages)
  noise = jax.random.normal(jax.random.fold_in(key, 0), base_shape, jnp.float32)
  final, trajectory = euler_sample(base_fn, noise, jnp.asarray(sigmas), cond, return_x0=True)
  samples, trajectories, first_steps = [final], [trajectory], [0]

  for stage, num_steps in enumerate(settings.stage_steps, start=1):
    first = settings.num_steps - num_steps
    stage_key = jax.random.fold_in(key, stage)
    noise_key, sharpen_key = jax.random.split(stage_key)
    b, h, w, c = final.shape
    noise = jax.random.normal(noise_key, (b, h * factor, w * factor, c), jnp.float32)
    if settings.sharpen_sigma is None:
      sharpen_sigma = float(jax.random.uniform(sharpen_key, (), minval=0.1, maxval=2.0))
    else:
      sharpen_sigma = settings.sharpen_sigma
    x_init = initial_latent(final, noise, float(sigmas[first]), factor, sharpen_sigma)
    # The previous stage's trajectory starts at its own first step; take the same global steps.
    reference = trajectory[first - first_steps[-1]: first - first_steps[-1] + num_steps]
    final, trajectory = guided_stage(
        _velocity_for_stage(velocity_fn, stage, settings.num_stages), x_init, reference, jnp.asarray(sigmas[first:]),
        stage_weights(settings.alpha[stage - 1], num_steps), stage_weights(settings.beta[stage - 1], num_steps),
        cond, scale_factor=factor, lowpass=settings.lowpass, cutoff=settings.cutoff, order=settings.order,
        implementation=implementation)
    samples.append(final)
    trajectories.append(trajectory)
    first_steps.append(first)
  return HiFlowResult(tuple(samples), tuple(trajectories), tuple(first_steps))
