"""HiFlow guidance op: the step's identities, a NumPy re-derivation, the Pallas kernels (interpreted) against XLA.

Pallas runs go through the interpreter on tiny shapes; `tests/kernels_pallas/
test_flow_guidance_triton_lowering.py` checks that the same kernels lower through Triton.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import ops
from jaxlab.ops import registry
from kernels_pallas.flow_guidance.config import FlowGuidanceConfig

SCALARS = dict(sigma=0.7, sigma_next=0.55, alpha=0.8, beta=0.3)


def _arrays(shape, count=5, seed=0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.standard_normal(shape), jnp.float32) for _ in range(count)]


def _step(arrays, implementation="xla", *, interpret=False, config=None, **kwargs):
  """The op under jit (one compile instead of one per eager operation)."""
  kwargs = {**SCALARS, **kwargs}
  fn = lambda *a: ops.flow_guidance(*a, implementation=implementation, interpret=interpret, config=config, **kwargs)
  return jax.jit(fn)(*arrays)


def _relative_error(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _numpy_step(x_t, v, x0_ref, v_prev=None, v_ref_prev=None, *, sigma, sigma_next, alpha, beta, lowpass,
                cutoff=0.2, order=4):
  """The spec's step in float64 NumPy: literal shifted-spectrum Butterworth, or 2x2 block means."""
  x_t, v, x0_ref = (np.asarray(a, np.float64) for a in (x_t, v, x0_ref))
  x0_hat = x_t - sigma * v
  diff = x0_ref - x0_hat
  batch, height, width, channels = diff.shape
  if lowpass == "fft":
    u_h, u_w = 2.0 * np.arange(height) / height - 1.0, 2.0 * np.arange(width) / width - 1.0
    mask = 1.0 / (1.0 + ((u_h[:, None] ** 2 + u_w[None, :] ** 2) / cutoff**2) ** order)
    spectrum = np.fft.fftshift(np.fft.fft2(diff, axes=(1, 2)), axes=(1, 2)) * mask[None, :, :, None]
    lp = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(1, 2)), axes=(1, 2)))
  else:
    blocks = diff.reshape(batch, height // 2, 2, width // 2, 2, channels)
    lp = np.broadcast_to(blocks.mean(axis=(2, 4), keepdims=True), blocks.shape).reshape(diff.shape)
  inv = 1.0 / (sigma + 1e-6)
  v_g = (x_t - (x0_hat + alpha * lp)) * inv
  v_ref = (x_t - x0_ref) * inv
  if v_prev is not None:
    v_g = v_g + beta * ((np.asarray(v_prev) + v_ref - np.asarray(v_ref_prev)) - v_g)
  return x_t + (sigma_next - sigma) * v_g, v_g, v_ref, x0_hat


# --- The XLA step against the spec and its identities ---------------------------------------


@pytest.mark.parametrize("lowpass, shape", [("fft", (2, 6, 5, 3)), ("fft", (1, 8, 8, 16)), ("dwt", (2, 4, 6, 3))])
@pytest.mark.parametrize("accelerate", [False, True])
def test_xla_step_matches_numpy(lowpass, shape, accelerate):
  arrays = _arrays(shape, 5 if accelerate else 3)
  got = _step(arrays, lowpass=lowpass)
  want = _numpy_step(*arrays, **SCALARS, lowpass=lowpass)
  assert type(got).__name__ == "FlowGuidanceOutput"
  for name, g, w in zip(got._fields, got, want):
    assert g.shape == shape and g.dtype == jnp.float32, name
    assert _relative_error(g, w) < 1e-5, name


@pytest.mark.parametrize("implementation", ["xla", "pallas_triton"])
@pytest.mark.parametrize("lowpass", ["fft", "dwt"])
def test_zero_strengths_give_a_plain_euler_step(implementation, lowpass):
  x_t, v, x0_ref, v_prev, v_ref_prev = _arrays((1, 4, 6, 3), seed=1)
  sigma, sigma_next = 0.8, 0.6
  out = _step([x_t, v, x0_ref, v_prev, v_ref_prev], implementation, interpret=True, lowpass=lowpass,
              sigma=sigma, sigma_next=sigma_next, alpha=0.0, beta=0.0)
  # sigma / (sigma + 1e-6) is 1 - 1.25e-6 here: the Euler step holds to 1e-5, not exactly.
  assert _relative_error(out.x_next, x_t + (sigma_next - sigma) * v) < 1e-5
  assert _relative_error(out.v_guided, v) < 1e-5
  np.testing.assert_allclose(np.asarray(out.x0_unguided), np.asarray(x_t - sigma * v), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lowpass", ["fft", "dwt"])
def test_acceleration_vanishes_when_the_flows_coincide(lowpass):
  x_t, v, x0_ref, v_ref_prev = _arrays((2, 4, 6, 3), 4, seed=2)
  plain = _step([x_t, v, x0_ref], lowpass=lowpass)
  # v_prev - v_ref_prev = v_g - v_ref: the target v_prev + v_ref - v_ref_prev is v_g itself.
  v_prev = v_ref_prev + (plain.v_guided - plain.v_ref)
  accelerated = _step([x_t, v, x0_ref, v_prev, v_ref_prev], lowpass=lowpass, beta=0.9)
  assert _relative_error(accelerated.v_guided, plain.v_guided) < 1e-5
  assert _relative_error(accelerated.x_next, plain.x_next) < 1e-5


def test_full_acceleration_takes_the_shifted_previous_flow():
  x_t, v, x0_ref, v_prev, v_ref_prev = _arrays((1, 4, 4, 2), seed=3)
  out = _step([x_t, v, x0_ref, v_prev, v_ref_prev], beta=1.0)
  want = v_prev + out.v_ref - v_ref_prev
  assert _relative_error(out.v_guided, want) < 1e-5
  sigma, sigma_next = SCALARS["sigma"], SCALARS["sigma_next"]
  assert _relative_error(out.x_next, x_t + (sigma_next - sigma) * want) < 1e-5
  np.testing.assert_allclose(np.asarray(out.v_ref), np.asarray((x_t - x0_ref) / (sigma + 1e-6)), rtol=1e-5)


@pytest.mark.parametrize("lowpass", ["fft", "dwt"])
def test_full_guidance_of_a_low_frequency_gap_lands_on_the_reference(lowpass):
  # x0_ref - x0_hat constant over each 2x2 block (dwt) or over the image (fft, even sizes):
  # the low-pass keeps it whole, so alpha = 1 moves x0_hat onto x0_ref and v_g onto v_ref.
  x_t, v = _arrays((2, 4, 6, 3), 2, seed=4)
  sigma = SCALARS["sigma"]
  if lowpass == "dwt":
    gap = jnp.repeat(jnp.repeat(_arrays((2, 2, 3, 3), 1, seed=5)[0], 2, axis=1), 2, axis=2)
  else:
    gap = jnp.broadcast_to(jnp.asarray([0.3, -1.0, 2.0]), x_t.shape)
  x0_ref = (x_t - sigma * v) + gap
  out = _step([x_t, v, x0_ref], lowpass=lowpass, alpha=1.0)
  assert _relative_error(out.v_guided, out.v_ref) < 1e-5


def test_traced_and_array_scalars_match_python_floats():
  arrays = _arrays((1, 4, 4, 3), seed=6)
  want = _step(arrays)
  names = tuple(SCALARS)

  def with_traced_scalars(scalars, *a):
    return ops.flow_guidance(*a, **dict(zip(names, scalars)), implementation="xla")

  got = jax.jit(with_traced_scalars)(tuple(jnp.float32(SCALARS[n]) for n in names), *arrays)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)


# --- Pallas (interpreted) against XLA ------------------------------------------------------


# Both kernel variants at C = 3; the C = 16 cases (slower to interpret) only with acceleration,
# which the zero-strength test above also runs for both low-passes.
@pytest.mark.parametrize(
    "lowpass, shape, block_size, accelerate",
    [
        ("fft", (2, 5, 7, 3), 64, False),  # 210 elements: four blocks and a masked tail.
        ("fft", (2, 5, 7, 3), 64, True),
        ("fft", (1, 4, 4, 16), None, True),
        pytest.param("dwt", (2, 4, 6, 3), 16, False, marks=pytest.mark.slow),  # C = 3 padded to 4; [1, 4, 4] tiles.
        ("dwt", (2, 4, 6, 3), 16, True),
        pytest.param("dwt", (1, 6, 10, 16), 64, True, marks=pytest.mark.slow),  # W/2 = 5: a partial column tile.
    ],
)
def test_pallas_matches_xla(lowpass, shape, block_size, accelerate):
  arrays = _arrays(shape, 5 if accelerate else 3, seed=7)
  config = None if block_size is None else FlowGuidanceConfig(block_size=block_size, num_warps=1)
  want = _step(arrays, lowpass=lowpass)
  got = _step(arrays, "pallas_triton", interpret=True, config=config, lowpass=lowpass)
  for name, g, w in zip(got._fields, got, want):
    assert g.shape == shape and g.dtype == jnp.float32, name
    assert _relative_error(g, w) <= 1e-5, name


def test_pallas_takes_traced_scalars():
  arrays = _arrays((1, 4, 4, 3), seed=8)
  names = tuple(SCALARS)

  def run(scalars, *a):
    return ops.flow_guidance(*a, **dict(zip(names, scalars)), implementation="pallas_triton", interpret=True)

  got = jax.jit(run)(tuple(jnp.float32(SCALARS[n]) for n in names), *arrays)
  want = _step(arrays)
  for g, w in zip(got, want):
    assert _relative_error(g, w) <= 1e-5


# --- Dispatch and bad input ----------------------------------------------------------------


def test_resolve_and_fallback_on_cpu():
  x = jax.ShapeDtypeStruct((1, 4, 4, 3), jnp.float32)
  assert ops.resolve_flow_guidance(x, x, x) == "xla"
  assert ops.resolve_flow_guidance(x, x, x, implementation="pallas_triton", interpret=True) == "pallas_triton"
  assert ops.resolve_flow_guidance(x, x, x, implementation=("pallas_triton", "xla")) == "xla"
  with pytest.raises(registry.NoImplementationError, match="needs a GPU"):
    ops.resolve_flow_guidance(x, x, x, implementation="pallas_triton")


def _bad(**changes):
  x = jnp.zeros((1, 4, 4, 3), jnp.float32)
  kwargs = dict(x_t=x, v=x, x0_ref=x, **SCALARS)
  kwargs.update(changes)
  return kwargs


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(v=jnp.zeros((1, 4, 5, 3))), ValueError, "v of x_t's shape"),
        (dict(x0_ref=jnp.zeros((1, 4, 4, 2))), ValueError, "x0_ref"),
        (dict(x_t=jnp.zeros((4, 4, 3)), v=jnp.zeros((4, 4, 3)), x0_ref=jnp.zeros((4, 4, 3))), ValueError, "4-D"),
        (dict(v=jnp.zeros((1, 4, 4, 3), jnp.int32)), TypeError, "floating"),
        (dict(x0_ref=np.zeros((1, 4, 4, 3)).tolist()), TypeError, "x0_ref as an array"),
        (dict(v_prev=jnp.zeros((1, 4, 4, 3))), ValueError, "v_prev without v_ref_prev"),
        (dict(v_ref_prev=jnp.zeros((1, 4, 4, 3))), ValueError, "v_ref_prev without v_prev"),
        (dict(v_prev=jnp.zeros((1, 4, 4, 3)), v_ref_prev=jnp.zeros((1, 2, 4, 3))), ValueError, "v_ref_prev of"),
        (dict(x_t=jnp.zeros((1, 5, 4, 3)), v=jnp.zeros((1, 5, 4, 3)), x0_ref=jnp.zeros((1, 5, 4, 3)),
              lowpass="dwt"), ValueError, "even H and W"),
        (dict(lowpass="wavelet"), ValueError, "'fft', 'dwt'"),
        (dict(sigma=jnp.ones(2)), ValueError, "sigma as a 0-d array"),
        (dict(alpha="strong"), TypeError, "alpha"),
        (dict(beta=True), TypeError, "beta"),
        (dict(cutoff=0.0), ValueError, "cutoff"),
        (dict(order=0), ValueError, "order"),
        (dict(config=(1024, 4)), TypeError, "FlowGuidanceConfig"),
        (dict(implementation="cuda"), ValueError, "unknown implementation"),
    ],
)
def test_bad_input_raises(changes, error, match):
  with pytest.raises(error, match=match):
    ops.flow_guidance(**_bad(**changes))


# --- Config --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 256, 256, 16), (4, 512, 512, 16), (1, 3, 5, 3), (2, 64, 48, 200)])
@pytest.mark.parametrize("lowpass", ["fft", "dwt"])
def test_heuristic_gives_power_of_two_blocks_and_tiles(shape, lowpass):
  config = FlowGuidanceConfig.heuristic(shape, lowpass)
  size = config.block_size
  assert size & (size - 1) == 0 and 128 <= size <= 1024
  assert config.num_warps * 32 * 4 <= size  # At least one 16-byte vector per thread.
  block_rows, block_w, block_c = config.dwt_tile(shape)
  for extent in (block_rows, block_w, block_c):
    assert extent & (extent - 1) == 0
  assert block_c >= shape[3] and block_c < 2 * shape[3]
  assert block_rows * block_w * block_c == max(size, block_c)
  assert block_w < 2 * max(1, shape[2] // 2)  # No tile wider than the padded row of blocks.


def test_config_rejects_bad_settings():
  with pytest.raises(ValueError, match="block_size"):
    FlowGuidanceConfig(block_size=100)
  with pytest.raises(ValueError, match="num_warps"):
    FlowGuidanceConfig(block_size=128, num_warps=3)
