"""Channel layout: the selection checks, the per-modality encodings, splitting and decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.video.clip import NUM_KEYPOINTS, ClipError, VideoClip
from jaxlab.video.modalities import (
    MODALITIES,
    MODALITY_CHANNELS,
    channels_of,
    check_modalities,
    decode_depth,
    decode_normal,
    decode_rgb,
    encode_modalities,
    split_modalities,
)

# Depth in metres of a 2-frame, 2 x 3 clip; inverse depth runs from 1 (1 m, nearest) to 0.25 (4 m, farthest).
DEPTH_FHW = np.array([[[1.0, 2.0, 4.0], [2.0, 2.0, 2.0]],
                      [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]], np.float32)
# Encoded by hand: 2 * (1 / d - 0.25) / 0.75 - 1, so 1 m -> 1, 2 m -> -1/3, 4 m -> -1. Frame 1 is all
# far: the range is the clip's, not the frame's.
DEPTH_CODE_FHW = np.array([[[1.0, -1 / 3, -1.0], [-1 / 3, -1 / 3, -1 / 3]],
                           [[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]], np.float32)


def _clip(depth=DEPTH_FHW, normal=True):
  f, h, w = 2, 2, 3
  rgb = np.linspace(0.0, 1.0, f * h * w * 3, dtype=np.float32).reshape(f, h, w, 3)
  normals = None
  if normal:
    tilt = np.linspace(0.0, 1.0, f * h * w).reshape(f, h, w)
    normals = np.stack([np.sin(tilt), np.zeros_like(tilt), -np.cos(tilt)], axis=-1).astype(np.float32)
  return VideoClip(
      rgb_fhwc=rgb, masks_fhw=np.zeros((f, h, w), np.int32), poses_fpk3=np.zeros((f, 1, NUM_KEYPOINTS, 3)),
      intrinsics_f33=np.tile(np.diag([4.0, 4.0, 1.0]), (f, 1, 1)), cam_to_world_f44=np.tile(np.eye(4), (f, 1, 1)),
      reference_hwc=rgb[0], num_identities=1, depth_fhw=depth, normal_fhwc=normals, name="tiny")


def test_channel_counts():
  assert MODALITIES == ("rgb", "depth", "normal")
  assert MODALITY_CHANNELS == {"rgb": 3, "depth": 1, "normal": 3}
  assert channels_of(("rgb",)) == 3
  assert channels_of(["rgb", "depth"]) == 4
  assert channels_of(("rgb", "normal")) == 6
  assert channels_of(MODALITIES) == 7
  assert check_modalities(["rgb", "depth"]) == ("rgb", "depth")


@pytest.mark.parametrize("bad, words", [
    (("rgb", "flow"), "unknown modality 'flow'"),
    (("depth",), "start with 'rgb'"),
    (("depth", "rgb"), "start with 'rgb'"),
    (("rgb", "depth", "depth"), "twice"),
    (("rgb", "normal", "depth"), "order"),
    ((), "start with 'rgb'"),
    ("rgb", "tuple"),
])
def test_bad_selections_raise(bad, words):
  with pytest.raises(ValueError, match=words):
    check_modalities(bad)
  with pytest.raises(ValueError, match=words):
    channels_of(bad)


def test_encode_all_modalities_by_hand():
  clip = _clip()
  x = encode_modalities(clip, MODALITIES)
  assert x.shape == (2, 2, 3, 7) and x.dtype == np.float32
  rgb = np.linspace(0.0, 1.0, 36).reshape(2, 2, 3, 3)
  np.testing.assert_allclose(x[..., :3], 2 * rgb - 1, atol=1e-6)
  np.testing.assert_allclose(x[..., 3], DEPTH_CODE_FHW, atol=1e-6)
  np.testing.assert_allclose(x[..., 4:], clip.normal_fhwc, atol=0)
  # Subsets keep the fixed order: rgb then normal.
  np.testing.assert_allclose(encode_modalities(clip, ("rgb", "normal"))[..., 3:], clip.normal_fhwc, atol=0)
  assert encode_modalities(clip, ("rgb",)).shape == (2, 2, 3, 3)


def test_depth_code_is_relative():
  # Scaling the scene's depth leaves the relative encoding unchanged; one constant depth encodes as 0.
  np.testing.assert_allclose(encode_modalities(_clip(depth=3.5 * DEPTH_FHW), ("rgb", "depth"))[..., 3],
                             DEPTH_CODE_FHW, atol=1e-6)
  flat = encode_modalities(_clip(depth=np.full((2, 2, 3), 2.0, np.float32)), ("rgb", "depth"))
  np.testing.assert_array_equal(flat[..., 3], 0.0)


def test_missing_modalities_raise_clip_error():
  with pytest.raises(ClipError, match="tiny.*'depth'.*no depth"):
    encode_modalities(_clip(depth=None), ("rgb", "depth"))
  with pytest.raises(ClipError, match="tiny.*'normal'.*no normals"):
    encode_modalities(_clip(normal=False), ("rgb", "depth", "normal"))
  assert encode_modalities(_clip(depth=None, normal=False), ("rgb",)).shape == (2, 2, 3, 3)


def test_split_numpy_and_jax_with_leading_axes():
  x = np.arange(2 * 3 * 7, dtype=np.float32).reshape(2, 3, 7)
  parts = split_modalities(x, MODALITIES)
  assert list(parts) == ["rgb", "depth", "normal"]
  np.testing.assert_array_equal(parts["rgb"], x[..., 0:3])
  np.testing.assert_array_equal(parts["depth"], x[..., 3:4])
  np.testing.assert_array_equal(parts["normal"], x[..., 4:7])
  assert isinstance(parts["rgb"], np.ndarray)
  jparts = split_modalities(jnp.asarray(x[None, ..., :4]), ("rgb", "depth"))
  assert isinstance(jparts["depth"], jax.Array) and jparts["depth"].shape == (1, 2, 3, 1)
  np.testing.assert_array_equal(jparts["depth"][0, ..., 0], x[..., 3])
  with pytest.raises(ValueError, match="need 4 channels.*shape \\(2, 3, 7\\)"):
    split_modalities(x, ("rgb", "depth"))


def test_decoders_invert_the_encoding():
  clip = _clip()
  parts = split_modalities(encode_modalities(clip, MODALITIES), MODALITIES)
  np.testing.assert_allclose(decode_rgb(parts["rgb"]), clip.rgb_fhwc, atol=1e-6)
  # Relative inverse depth in [0, 1]: (1 / d - 1 / 4) / (1 - 1 / 4).
  depth = decode_depth(parts["depth"])
  assert depth.shape == (2, 2, 3)
  np.testing.assert_allclose(depth, (1 / DEPTH_FHW - 0.25) / 0.75, atol=1e-6)
  np.testing.assert_allclose(decode_normal(parts["normal"]), clip.normal_fhwc, atol=1e-6)


def test_decoders_clip_renormalize_and_keep_array_type():
  np.testing.assert_allclose(decode_rgb(np.array([-3.0, 0.0, 5.0])), [0.0, 0.5, 1.0])
  np.testing.assert_allclose(decode_depth(np.array([[-2.0], [0.5], [2.0]])), [0.0, 0.75, 1.0])
  normals = np.array([[0.0, 0.0, -2.0], [3.0, 0.0, 4.0], [0.0, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(decode_normal(normals), [[0, 0, -1], [0.6, 0, 0.8], [0, 0, 0]], atol=1e-7)
  decoded = decode_normal(jnp.asarray(normals))
  assert isinstance(decoded, jax.Array)
  np.testing.assert_allclose(decoded, [[0, 0, -1], [0.6, 0, 0.8], [0, 0, 0]], atol=1e-7)
  # Finite gradients through a zero vector, so a loss on decoded normals cannot turn NaN.
  grad = jax.grad(lambda n: jnp.sum(decode_normal(n)))(jnp.asarray(normals))
  assert bool(jnp.all(jnp.isfinite(grad)))
  with pytest.raises(ValueError, match="decode_depth needs 1 channel"):
    decode_depth(np.zeros((2, 3)))
  with pytest.raises(ValueError, match="decode_normal needs 3 channel"):
    decode_normal(np.zeros((2, 4)))


def test_generated_clip_encodes_into_the_layout():
  synthetic = pytest.importorskip("jaxlab.video.synthetic")
  clip = synthetic.generate_clip(3, num_frames=4, height=16, width=16)
  x = encode_modalities(clip, MODALITIES)
  assert x.shape == (4, 16, 16, 7) and x.dtype == np.float32
  assert x.min() >= -1.0 and x.max() <= 1.0
  # The depth channel is the clip's inverse depth mapped onto [-1, 1] (near = +1).
  inverse = 1.0 / clip.depth_fhw.astype(np.float64)
  np.testing.assert_allclose(x[..., 3], 2 * (inverse - inverse.min()) / np.ptp(inverse) - 1, atol=1e-5)
  np.testing.assert_allclose(decode_rgb(x[..., :3]), clip.rgb_fhwc, atol=1e-6)
  np.testing.assert_allclose(decode_normal(x[..., 4:]), clip.normal_fhwc, atol=1e-6)
