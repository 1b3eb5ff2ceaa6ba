"""The video denoiser: parameter tree and logical axes, the zero-initialised identity path, modality
branches around shared blocks, reference attention, conditions, and input and config errors.

Parameters are drawn at random from the abstract tree (`jax.eval_shape`, nothing compiled), so no
zero-initialised layer hides the rest of the model; two forward programs are compiled (with and
without identities) and reused by every numeric test.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxlab.sharding import logical_rules, logical_to_shardings, make_mesh
from jaxlab.video.identity import IdentityEmbedding
from jaxlab.video.model import VideoCondition, VideoDenoiser, VideoDenoiserConfig, example_inputs

CONFIG = VideoDenoiserConfig(image_size=8, num_frames=4, patch_size=4, width=16, depth=3, num_heads=2,
                             modalities=("rgb", "depth", "normal"), num_identities=3)
NO_IDENTITY = dataclasses.replace(CONFIG, num_identities=0)
B, F, H, W = 2, 4, 8, 8
CHANNELS = {"rgb": slice(0, 3), "depth": slice(3, 4), "normal": slice(4, 7)}
_BOXED = lambda leaf: isinstance(leaf, nn.LogicallyPartitioned)


@functools.cache
def _abstract(config):
  """The boxed abstract parameter tree of `config` (shapes only, nothing compiled)."""
  return jax.eval_shape(VideoDenoiser(config).init, jax.random.key(0), *example_inputs(config))["params"]


def _random_like(tree, seed, scale=0.3):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), tree)


@pytest.fixture(scope="module")
def params():
  """CONFIG's parameters, all random except the identity path, which is as `IdentityEmbedding` initialises it."""
  abstract = nn.unbox(_abstract(CONFIG))
  drawn = _random_like(abstract, 1)
  identity = IdentityEmbedding(CONFIG.num_identities, CONFIG.identity_channels, {"rgb": 3, "depth": 1, "normal": 3})
  drawn["identity"] = nn.unbox(identity.init(jax.random.key(2), jnp.zeros((1, 1, H, W), jnp.int32))["params"])
  assert jax.tree.structure(drawn["identity"]) == jax.tree.structure(abstract["identity"])
  return drawn


def _inputs(seed, config=CONFIG):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((B, F, H, W, config.channels)), jnp.float32)
  sigma = jnp.asarray(rng.uniform(0.1, 0.9, B), jnp.float32)
  cond = VideoCondition(
      reference_bhwc=jnp.asarray(rng.uniform(-1, 1, (B, H, W, 3)), jnp.float32),
      pose_bfhwc=jnp.asarray(rng.uniform(0, 1, (B, F, H, W, 3)), jnp.float32),
      plucker_bfhw6=jnp.asarray(rng.standard_normal((B, F, H, W, 6)), jnp.float32),
      identity_bfhw=jnp.asarray(rng.integers(0, config.num_identities + 1, (B, F, H, W)), jnp.int32)
      if config.num_identities else None)
  return x, sigma, cond


@functools.partial(jax.jit, static_argnums=0)
def _apply(config, params, x, sigma, cond):
  # Compiled: op-by-op dispatch of the whole model is far slower on CPU than one compile.
  return VideoDenoiser(config).apply({"params": params}, x, sigma, cond)


def _apply_eager(params, x, sigma, cond, config=CONFIG):
  """Uncompiled, so that checks on concrete values run; for argument errors only."""
  return VideoDenoiser(config).apply({"params": params}, x, sigma, cond)


def _replace(tree, path, value):
  """A copy of nested dict `tree` with tree[path[0]][path[1]]... = value."""
  head, *rest = path
  return {**tree, head: value if not rest else _replace(tree[head], rest, value)}


def _paths(tree, prefix=()):
  for key, value in tree.items():
    yield from _paths(value, prefix + (key,)) if isinstance(value, dict) else [(prefix + (key,), value)]


def test_output_has_the_input_shape_and_depends_on_the_input(params):
  x, sigma, cond = _inputs(0)
  v = _apply(CONFIG, params, x, sigma, cond)
  assert v.shape == x.shape and v.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(v))) and float(jnp.std(v)) > 0
  # Temporal attention mixes frames: a change to frame 0 reaches every frame's output.
  moved = _apply(CONFIG, params, x.at[:, 0].add(1.0), sigma, cond)
  for f in range(F):
    assert float(jnp.max(jnp.abs(moved[:, f] - v[:, f]))) > 1e-4, f


def test_parameter_tree_has_branches_around_the_shared_middle():
  boxed = _abstract(CONFIG)
  assert set(boxed) == {"sigma_embed_0", "sigma_embed_1", "frame_embed", "identity", "pose_guider", "camera_encoder",
                        "reference", "branch_rgb", "branch_depth", "branch_normal", "shared_block_1"}
  for m, channels in (("rgb", 3), ("depth", 1), ("normal", 3)):
    branch = boxed[f"branch_{m}"]
    assert set(branch) == {"patch_embed", "block_first", "block_last", "final_modulation", "final_proj"}
    assert branch["patch_embed"]["kernel"].value.shape == (4 * 4 * channels, 16)
    assert branch["final_proj"]["kernel"].value.shape == (16, 4 * 4 * channels)
    assert set(branch["block_first"]) == {"modulation", "spatial_attention", "temporal_attention", "mlp"}
  assert set(boxed["identity"]) == {"table", "zero_conv_rgb", "zero_conv_depth", "zero_conv_normal"}
  assert set(boxed["reference"]) == {"patch_embed", "block_0", "block_1", "block_2"}
  # The reference net's last block only provides features: no attention that nobody reads.
  assert set(boxed["reference"]["block_2"]) == {"modulation"}
  assert boxed["shared_block_1"]["modulation"]["kernel"].value.shape == (16, 9, 16)


def test_parameters_carry_logical_axes_that_shard_them():
  boxed = _abstract(CONFIG)
  leaves = jax.tree.leaves(boxed, is_leaf=_BOXED)
  assert leaves and all(isinstance(leaf, nn.LogicallyPartitioned) for leaf in leaves)
  attention = boxed["shared_block_1"]["temporal_attention"]
  assert attention["wq"].names == ("embed", "heads", "head_dim")
  assert attention["wo"].names == ("heads", "head_dim", "embed")
  # The shardings `init_sharded` would create: heads over "tensor", embed over "fsdp".
  mesh = make_mesh({"fsdp": 2, "tensor": 2, "data": 2})
  shardings = logical_to_shardings(boxed, mesh, logical_rules(("fsdp", "tensor")))
  assert shardings["shared_block_1"]["temporal_attention"]["wq"].spec == P("fsdp", "tensor", None)
  assert shardings["branch_depth"]["block_last"]["mlp"]["fc_in"]["kernel"].spec == P("fsdp", "tensor")
  assert shardings["reference"]["block_0"]["spatial_attention"]["wo"].spec == P("tensor", None, "fsdp")


def test_one_modality_has_plain_blocks_and_any_depth():
  config = dataclasses.replace(CONFIG, modalities=("rgb",), depth=2, num_identities=0)
  boxed = _abstract(config)
  assert {"block_0", "block_1", "branch_rgb"} <= set(boxed)
  assert not any(k.startswith("shared_block") or k in ("branch_depth", "branch_normal") for k in boxed)
  assert set(boxed["branch_rgb"]) == {"patch_embed", "final_modulation", "final_proj"}


def test_rgb_and_depth_without_normals():
  config = dataclasses.replace(CONFIG, modalities=("rgb", "depth"))
  assert config.channels == 4
  boxed = _abstract(config)
  assert {"branch_rgb", "branch_depth"} <= set(boxed) and "branch_normal" not in boxed
  assert set(boxed["identity"]) == {"table", "zero_conv_rgb", "zero_conv_depth"}
  x, sigma, cond = _inputs(3, config)
  out = jax.eval_shape(functools.partial(_apply, config), nn.unbox(boxed), x, sigma, cond)
  assert out.shape == (B, F, H, W, 4) and out.dtype == jnp.float32
  with pytest.raises(ValueError, match=r"x_bfhwc must be \[batch, frames, H, W, 4\]"):
    _apply_eager(nn.unbox(boxed), jnp.zeros((B, F, H, W, 7)), sigma, cond, config)


def test_zero_initialised_identity_path_leaves_the_model_as_without_identities(params):
  x, sigma, cond = _inputs(4)
  with_identities = _apply(CONFIG, params, x, sigma, cond)
  rest = {k: v for k, v in params.items() if k != "identity"}
  without = _apply(NO_IDENTITY, rest, x, sigma, cond._replace(identity_bfhw=None))
  assert float(jnp.std(without)) > 0.1
  np.testing.assert_allclose(with_identities, without, rtol=0, atol=1e-6)

  # Once a modality's zero conv has learned something, the identities reach that modality alone:
  # the others sit in their own batch entries of the shared blocks.
  for m in ("rgb", "depth"):
    kernel = params["identity"][f"zero_conv_{m}"]["conv"]["kernel"]
    moved = _replace(params, ("identity", f"zero_conv_{m}", "conv", "kernel"), _random_like(kernel, 5))
    out = _apply(CONFIG, moved, x, sigma, cond)
    for other, channels in CHANNELS.items():
      diff = float(jnp.max(jnp.abs(out[..., channels] - without[..., channels])))
      assert diff > 1e-3 if other == m else diff == 0.0, (m, other, diff)


def test_depth_output_ignores_the_rgb_and_normal_branches(params):
  # The exact form of "their gradients of a depth-only loss are zero": the depth output does not
  # depend on those parameters at all.
  x, sigma, cond = _inputs(6)
  base = _apply(CONFIG, params, x, sigma, cond)
  moved = dict(params)
  for m in ("rgb", "normal"):
    moved[f"branch_{m}"] = _random_like(params[f"branch_{m}"], 7)
    moved = _replace(moved, ("identity", f"zero_conv_{m}"), _random_like(params["identity"][f"zero_conv_{m}"], 8))
  out = _apply(CONFIG, moved, x, sigma, cond)
  np.testing.assert_array_equal(out[..., CHANNELS["depth"]], base[..., CHANNELS["depth"]])
  assert float(jnp.max(jnp.abs(out[..., CHANNELS["rgb"]] - base[..., CHANNELS["rgb"]]))) > 1e-3
  assert float(jnp.max(jnp.abs(out[..., CHANNELS["normal"]] - base[..., CHANNELS["normal"]]))) > 1e-3


def test_every_shared_and_depth_branch_parameter_moves_the_depth_output(params):
  # The non-zero half: each parameter of the shared block and of the depth branch, nudged alone,
  # changes the depth output.
  x, sigma, cond = _inputs(9)
  base = _apply(CONFIG, params, x, sigma, cond)[..., CHANNELS["depth"]]
  rng = np.random.default_rng(10)
  checked = 0
  for top in ("shared_block_1", "branch_depth", "reference", "pose_guider", "camera_encoder", "sigma_embed_0",
              "sigma_embed_1"):
    for path, leaf in _paths(params[top], (top,)):
      nudged = leaf + jnp.asarray(0.5 * rng.standard_normal(leaf.shape), leaf.dtype)
      out = _apply(CONFIG, _replace(params, path, nudged), x, sigma, cond)[..., CHANNELS["depth"]]
      assert float(jnp.max(jnp.abs(out - base))) > 1e-6, "/".join(path)
      checked += 1
  assert checked > 100


def test_the_reference_image_reaches_every_modality(params):
  x, sigma, cond = _inputs(11)
  base = _apply(CONFIG, params, x, sigma, cond)
  other = _apply(CONFIG, params, x, sigma, cond._replace(reference_bhwc=-cond.reference_bhwc))
  for m, channels in CHANNELS.items():
    assert float(jnp.max(jnp.abs(other[..., channels] - base[..., channels]))) > 1e-3, m


def test_pose_maps_and_cameras_change_the_output(params):
  x, sigma, cond = _inputs(12)
  base = _apply(CONFIG, params, x, sigma, cond)
  for field in ("pose_bfhwc", "plucker_bfhw6"):
    changed = cond._replace(**{field: 1.0 - getattr(cond, field)})
    assert float(jnp.max(jnp.abs(_apply(CONFIG, params, x, sigma, changed) - base))) > 1e-3, field


def test_without_use_reference_there_are_no_reference_params_and_no_reference_input(params):
  config = dataclasses.replace(CONFIG, use_reference=False)
  boxed = _abstract(config)
  assert "reference" not in boxed
  x, sigma, cond = _inputs(13)
  with pytest.raises(ValueError, match="cond.reference_bhwc was given but the config does not read it"):
    _apply_eager(nn.unbox(boxed), x, sigma, cond, config)


@pytest.mark.parametrize("change,match", [
    (dict(reference_bhwc=None), r"cond.reference_bhwc is missing.*use_reference=True"),
    (dict(pose_bfhwc=None), r"cond.pose_bfhwc is missing.*use_pose=True"),
    (dict(plucker_bfhw6=None), r"cond.plucker_bfhw6 is missing.*use_camera=True"),
    (dict(identity_bfhw=None), r"cond.identity_bfhw is missing.*num_identities=3"),
    (dict(pose_bfhwc=jnp.zeros((B, F - 1, H, W, 3))),
     r"cond.pose_bfhwc has shape \(2, 3, 8, 8, 3\) but x_bfhwc has shape \(2, 4, 8, 8, 7\).*\(2, 4, 8, 8, 3\)"),
    (dict(reference_bhwc=jnp.zeros((B, 2 * H, W, 3))),
     r"cond.reference_bhwc has shape \(2, 16, 8, 3\) but x_bfhwc has shape \(2, 4, 8, 8, 7\).*\(2, 8, 8, 3\)"),
    (dict(plucker_bfhw6=jnp.zeros((B, F, H, W, 3))), r"cond.plucker_bfhw6 has shape \(2, 4, 8, 8, 3\)"),
    (dict(identity_bfhw=jnp.zeros((B, F, H, W))), r"identity_bfhw must hold integer labels"),
    (dict(identity_bfhw=jnp.full((B, F, H, W), 4, jnp.int32)), r"max label 4"),
])
def test_bad_conditions_are_rejected(params, change, match):
  x, sigma, cond = _inputs(14)
  with pytest.raises(ValueError, match=match):
    _apply_eager(params, x, sigma, cond._replace(**change))


def test_bad_call_arguments_are_rejected(params):
  x, sigma, cond = _inputs(15)
  with pytest.raises(ValueError, match="cond must be a VideoCondition"):
    _apply_eager(params, x, sigma, tuple(cond))
  with pytest.raises(ValueError, match=r"sigma_b must have shape \(2,\)"):
    _apply_eager(params, x, sigma[:1], cond)
  with pytest.raises(ValueError, match=r"has 5 frames.*num_frames = 4"):
    _apply_eager(params, jnp.zeros((B, 5, H, W, 7)), sigma, cond)
  with pytest.raises(ValueError, match=r"height 8 and width 10.*patch_size 4"):
    _apply_eager(params, jnp.zeros((B, F, H, 10, 7)), sigma, cond)
  with pytest.raises(ValueError, match="cond.identity_bfhw was given but the config does not read it"):
    _apply_eager({k: v for k, v in params.items() if k != "identity"}, x, sigma, cond, NO_IDENTITY)


@pytest.mark.parametrize("fields,match", [
    (dict(modalities=("rgb", "depth"), depth=2), r"depth must be >= 3 with several modalities"),
    (dict(modalities=("depth",)), r"modalities: .*start with 'rgb'"),
    (dict(modalities=("rgb", "albedo")), r"modalities: unknown modality 'albedo'"),
    (dict(width=30, num_heads=4), "not divisible by num_heads"),
    (dict(width=24, num_heads=4), "divisible by 4"),
    (dict(image_size=10), r"image_size 10 is not divisible by patch_size 4"),
    (dict(image_size=(8, 10)), r"image_size \(8, 10\) is not divisible"),
    (dict(image_size=(8,)), "image_size must be"),
    (dict(num_identities=-1), "num_identities"),
    (dict(num_frames=0), "num_frames"),
    (dict(use_pose=1), "use_pose must be a bool"),
    (dict(rope_theta=0.0), "rope_theta"),
    (dict(mlp_ratio=0.0), "mlp_ratio"),
    (dict(dtype="int32"), "floating dtype"),
    (dict(attention_implementation="nope"), "attention_implementation"),
])
def test_config_validation(fields, match):
  base = dict(image_size=8, num_frames=4, patch_size=4, width=16, depth=3, num_heads=2)
  with pytest.raises(ValueError, match=match):
    VideoDenoiserConfig(**{**base, **fields})


def test_config_accessors():
  config = VideoDenoiserConfig(image_size=(8, 12), num_frames=4, patch_size=4, width=32, depth=3, num_heads=2,
                               modalities=["rgb", "normal"])
  assert config.modalities == ("rgb", "normal") and config.image_hw == (8, 12) and config.channels == 6
  assert config.head_dim == 16 and config.mlp_dim == 128
  square = VideoDenoiserConfig(image_size=8, num_frames=4, patch_size=4, width=32, depth=1, num_heads=2)
  assert square.image_hw == (8, 8) and square.modalities == ("rgb",) and square.channels == 3
