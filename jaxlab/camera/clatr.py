"""CLaTr-style contrastive text-trajectory embedding, trained here, and the metrics read from it.

The embedding (after E.T., Courant et al. 2024, whose CLaTr the GenDoP paper retrains on DataDoP
for its CLaTr-CLIP / Coverage / CLaTr-FID columns):
- text side: `jaxlab.camera.text.TextEncoder` ([B, 77] int ids, pad 0 -> [B, 77, d_text]),
  mean-pooled over the non-pad tokens;
- trajectory side: `TrajectoryEncoder`, a small pre-LN transformer over the 30 poses x 10
  normalized values of the GenDoP tokenizer (`pose_features` / `features_from_tokens`),
  mean-pooled over the valid poses;
- each side projected to a shared `embed_dim` (256) space and L2-normalised;
- `contrastive_loss`: symmetric InfoNCE with a learned log-temperature (pairs known to be
  positives, e.g. identical captions, can be left out of the negatives, as E.T. filters
  near-duplicate captions).
This is a smaller, purely contrastive stand-in for the released CLaTr (a TMR-style VAE with
reconstruction and KL terms over rot6d features); its numbers are not comparable to the paper's.

Metrics (numpy, float64; inputs [N, D] embeddings):
- `clatr_clip`: max(mean_i 100 * cos(text_i, traj_i), 0): the released E.T. / GenDoP
  `CLaTrScore` clips the mean, not each pair; `clip_per_pair=True` gives the CLIPScore form
  mean_i max(100 * cos_i, 0) instead.
- `coverage`: Naeem et al. 2020: the fraction of real samples whose k-NN ball (radius: distance
  to their k-th nearest other real sample, Euclidean) holds at least one generated sample.
- `frechet_distance`: ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)), unbiased covariances.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab import ops
from jaxlab.camera import text, tokenizer, trajectory
from jaxlab.camera.tokenizer import NUM_POSES, VALUES_PER_POSE
from jaxlab.nn.attention import dot_product_attention
from jaxlab.nn.dense import Dense
from jaxlab.nn.mlp import GeluMLP
from jaxlab.nn.norm import LayerNorm
from jaxlab.sharding import axes
from jaxlab.sharding.annotate import param_with_axes

# A temperature below this would make the logits explode; CLIP caps its logit scale at 100 too.
MIN_TEMPERATURE = 0.01


# ----------------------------------------------------------------------------- pose features


def pose_features(c2w_30x44: np.ndarray, fl_ratios_30x2: np.ndarray, scale: float | None = None) -> np.ndarray:
  """The tokenizer's 10 continuous values per pose, before quantization: float32 [30, 10].

  Per pose: quaternion (w, x, y, z; w >= 0) of the rotation relative to frame 0, translation
  relative to frame 0 divided by `scale`, the two focal ratios as given, and log10(scale)
  repeated. Relative poses are inv(c2w_0) @ c2w_i, so the poses that `tokenizer.decode` returns
  (already relative, scale multiplied back) and raw world poses both work. `scale=None` computes
  the spec's s = max_i ||t_i|| + 1e-5 from the relative translations.
  """
  c2w = trajectory.check_trajectory(c2w_30x44)  # shape, finiteness, rotations (repaired if slightly off)
  fl = np.asarray(fl_ratios_30x2, np.float64)
  if fl.shape != (c2w.shape[0], 2):
    raise trajectory.TrajectoryError(f"fl_ratios_30x2 must be [{c2w.shape[0]}, 2], got shape {list(fl.shape)}")
  rel = np.linalg.inv(c2w[0]) @ c2w
  t_n3 = rel[:, :3, 3]
  if scale is None:
    scale = float(np.linalg.norm(t_n3, axis=-1).max()) + 1e-5
  if not (np.isfinite(scale) and scale > 0):
    raise trajectory.TrajectoryError(f"scale must be finite and > 0, got {scale}")
  q_n4 = trajectory.matrix_to_quaternion(rel[:, :3, :3])
  log_s = np.full((c2w.shape[0], 1), math.log10(scale))
  feats = np.concatenate([q_n4, t_n3 / scale, fl, log_s], axis=-1)
  if not np.all(np.isfinite(feats)):
    raise trajectory.TrajectoryError("pose features are not finite (NaN/inf in the focal ratios)")
  return feats.astype(np.float32)


def features_from_tokens(tokens_b300: np.ndarray) -> np.ndarray:
  """Pose tokens [B, 300] (or [300]) -> float32 [B, 30, 10] in `pose_features`' units.

  The tokenizer's inverse maps on the bin b = token - OFFSET: quaternion and translation
  b / 128 - 1, focal ratios b / 25.6, log10(scale) b / 64 - 2 (= b / 256 * 4 - 2).
  """
  tokens = np.asarray(tokens_b300)
  squeeze = tokens.ndim == 1
  tokens = tokens[None] if squeeze else tokens
  if tokens.ndim != 2 or tokens.shape[1] != NUM_POSES * VALUES_PER_POSE:
    raise trajectory.TrajectoryError(f"tokens must be [B, {NUM_POSES * VALUES_PER_POSE}], "
                                     f"got shape {np.shape(tokens_b300)}")
  bins = tokens.astype(np.int64) - tokenizer.OFFSET
  if bins.min() < 0 or bins.max() > tokenizer.NUM_BINS:
    bad = int(tokens[(bins < 0) | (bins > tokenizer.NUM_BINS)][0])
    raise trajectory.TrajectoryError(f"token {bad} is not a pose token (expected [{tokenizer.OFFSET}, "
                                     f"{tokenizer.OFFSET + tokenizer.NUM_BINS}])")
  bins = bins.reshape(tokens.shape[0], NUM_POSES, VALUES_PER_POSE).astype(np.float64)
  feats = np.concatenate([bins[..., :7] / 128.0 - 1.0, bins[..., 7:9] / 25.6, bins[..., 9:] / 64.0 - 2.0], -1)
  feats = feats.astype(np.float32)
  return feats[0] if squeeze else feats


# ----------------------------------------------------------------------------------- model


@dataclasses.dataclass(frozen=True)
class ClatrConfig:
  """Sizes of the embedding. `d_text`, `text_layers`, `text_heads`, `text_vocab_size` build the
  default `text.TextEncoder`; with another text encoder, `d_text` must be its output width."""

  d_text: int = 256
  text_layers: int = 2
  text_heads: int = 4
  text_vocab_size: int = 2000
  traj_width: int = 128
  traj_layers: int = 2
  traj_heads: int = 4
  embed_dim: int = 256
  init_temperature: float = 0.1  # E.T.'s CLaTr config uses a (fixed) temperature of 0.1

  @classmethod
  def tiny(cls, text_vocab_size: int = 2000) -> "ClatrConfig":
    return cls(d_text=32, text_layers=1, text_heads=2, text_vocab_size=text_vocab_size, traj_width=32,
               traj_layers=1, traj_heads=2, embed_dim=32)


class _SelfAttention(nn.Module):
  """Bidirectional multi-head attention; keys at index >= kv_length are padding."""

  num_heads: int

  @nn.compact
  def __call__(self, x_btd: jax.Array, kv_length_b: jax.Array) -> jax.Array:
    d, h = x_btd.shape[-1], self.num_heads
    if d % h:
      raise ValueError(f"width {d} is not divisible by {h} heads")
    k = d // h
    in_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
    out_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)

    def project(name):
      w_dhk = self.param(name, param_with_axes(in_init, (axes.EMBED, axes.HEADS, axes.HEAD_DIM)), (d, h, k))
      return jnp.einsum("btd,dhk->bthk", x_btd, w_dhk)

    out_bthk = dot_product_attention(project("wq"), project("wk"), project("wv"),
                                     ops.AttentionMask(kv_length=kv_length_b), context_parallel=False)
    w_hkd = self.param("wo", param_with_axes(out_init, (axes.HEADS, axes.HEAD_DIM, axes.EMBED)), (h, k, d))
    return jnp.einsum("bthk,hkd->btd", out_bthk, w_hkd)


class TrajectoryEncoder(nn.Module):
  """[B, P, 10] pose values -> [B, P, width] hidden states (pre-LN transformer, learned positions).

  `valid_bp` marks real poses; they must be a prefix of each row (generated rows that end early
  are padded at the end), since padding is expressed as a key length. No dropout: the embedding
  is a deterministic measuring tool, trained on small sets.
  """

  width: int = 128
  num_layers: int = 2
  num_heads: int = 4
  max_poses: int = NUM_POSES

  @nn.compact
  def __call__(self, poses_bpv: jax.Array, valid_bp: jax.Array) -> jax.Array:
    p = poses_bpv.shape[1]
    if p > self.max_poses:
      raise ValueError(f"{p} poses exceed max_poses={self.max_poses}")
    x = Dense(self.width, (None, axes.EMBED), name="in_proj")(poses_bpv.astype(jnp.float32))
    pos_pd = self.param("positions", param_with_axes(nn.initializers.normal(0.02), (None, axes.EMBED)),
                        (self.max_poses, self.width))
    x = x + pos_pd[:p]
    kv_length_b = valid_bp.sum(-1).astype(jnp.int32)
    for i in range(self.num_layers):
      x = x + _SelfAttention(self.num_heads, name=f"attn_{i}")(LayerNorm(name=f"ln_attn_{i}")(x), kv_length_b)
      x = x + GeluMLP(4 * self.width, name=f"mlp_{i}")(LayerNorm(name=f"ln_mlp_{i}")(x))
    return LayerNorm(name="ln_out")(x)


def _masked_mean(x_btd: jax.Array, valid_bt: jax.Array) -> jax.Array:
  w_bt = valid_bt.astype(x_btd.dtype)
  # max(., 1) keeps an all-padding row finite (its embedding is then the projection's bias).
  return jnp.einsum("btd,bt->bd", x_btd, w_bt) / jnp.maximum(w_bt.sum(-1, keepdims=True), 1.0)


def _unit(x_be: jax.Array) -> jax.Array:
  return x_be / jnp.maximum(jnp.linalg.norm(x_be, axis=-1, keepdims=True), 1e-12)


class ClatrModel(nn.Module):
  """Unit embeddings [B, embed_dim] for captions and trajectories, plus the learned log-temperature.

  `text_encoder`: a Linen module mapping int32 ids [B, 77] (pad 0) to [B, 77, d_text]
  (normally `jaxlab.camera.text.TextEncoder`; see `make_model`).
  """

  config: ClatrConfig
  text_encoder: nn.Module

  def setup(self):
    c = self.config
    self.trajectory_encoder = TrajectoryEncoder(c.traj_width, c.traj_layers, c.traj_heads)
    self.text_proj = Dense(c.embed_dim, (axes.EMBED, None))
    self.traj_proj = Dense(c.embed_dim, (axes.EMBED, None))
    self.log_temperature = self.param("log_temperature", nn.initializers.constant(math.log(c.init_temperature)), ())

  def encode_text(self, text_ids_bt: jax.Array) -> jax.Array:
    hidden_btd = self.text_encoder(text_ids_bt)
    if hidden_btd.shape[-1] != self.config.d_text:
      raise ValueError(f"text encoder gives width {hidden_btd.shape[-1]}, config.d_text is {self.config.d_text}")
    return _unit(self.text_proj(_masked_mean(hidden_btd, text_ids_bt != 0)))

  def encode_trajectory(self, poses_bpv: jax.Array, valid_bp: jax.Array | None = None) -> jax.Array:
    if poses_bpv.ndim != 3 or poses_bpv.shape[-1] != VALUES_PER_POSE:
      raise ValueError(f"poses must be [B, P, {VALUES_PER_POSE}], got shape {poses_bpv.shape}")
    if valid_bp is None:
      valid_bp = jnp.ones(poses_bpv.shape[:2], bool)
    hidden_bpw = self.trajectory_encoder(poses_bpv, valid_bp)
    return _unit(self.traj_proj(_masked_mean(hidden_bpw, valid_bp)))

  def __call__(self, text_ids_bt, poses_bpv, valid_bp=None):
    """-> (text_emb [B, E], traj_emb [B, E], log_temperature [])."""
    return self.encode_text(text_ids_bt), self.encode_trajectory(poses_bpv, valid_bp), self.log_temperature


def make_model(config: ClatrConfig | None = None, text_encoder: nn.Module | None = None) -> ClatrModel:
  """A `ClatrModel`; without `text_encoder`, a `text.TextEncoder` sized by `config`."""
  config = config or ClatrConfig()
  if text_encoder is None:
    text_encoder = text.TextEncoder(vocab_size=config.text_vocab_size, width=config.d_text,
                                    num_layers=config.text_layers, num_heads=config.text_heads)
  return ClatrModel(config, text_encoder)


def contrastive_loss(text_emb_be: jax.Array, traj_emb_be: jax.Array, log_temperature: jax.Array,
                     exclude_bb: jax.Array | None = None) -> jax.Array:
  """Symmetric InfoNCE over a batch of matched pairs (row i of each side is a pair).

  logits = text @ traj^T / T with T = exp(log_temperature) floored at `MIN_TEMPERATURE`; the loss
  is the mean of the text->trajectory and trajectory->text cross-entropies with the diagonal as
  target. `exclude_bb` [B, B] bool marks off-diagonal pairs that are not true negatives (e.g. the
  same caption twice); they are removed from both softmaxes. The diagonal is never removed.
  Embeddings are expected unit-norm (the model's outputs are).
  """
  temperature = jnp.maximum(jnp.exp(log_temperature), MIN_TEMPERATURE)
  logits_bb = (text_emb_be @ traj_emb_be.T).astype(jnp.float32) / temperature
  if exclude_bb is not None:
    b = logits_bb.shape[0]
    drop_bb = jnp.asarray(exclude_bb, bool) & ~jnp.eye(b, dtype=bool)
    logits_bb = jnp.where(drop_bb, -1e9, logits_bb)  # finite: no inf * 0 in the gradient
  labels = jnp.arange(logits_bb.shape[0])
  t2m = optax.softmax_cross_entropy_with_integer_labels(logits_bb, labels)
  m2t = optax.softmax_cross_entropy_with_integer_labels(logits_bb.T, labels)
  return 0.5 * (t2m.mean() + m2t.mean())


def _same_caption(text_ids_bt: jax.Array) -> jax.Array:
  return jnp.all(text_ids_bt[:, None, :] == text_ids_bt[None, :, :], axis=-1)


def train_clatr(texts_ids: np.ndarray, poses: np.ndarray, *, steps: int, batch_size: int,
                learning_rate: float, seed: int, config: ClatrConfig | None = None,
                text_encoder: nn.Module | None = None, weight_decay: float = 0.01):
  """Trains the embedding on matched (caption ids [N, 77], poses [N, 30, 10]) pairs.

  AdamW (b2 0.98, gradient clip 1.0, decay on matrices only) on `contrastive_loss`; batches drawn
  without replacement, reshuffled every epoch; identical captions in a batch are not used as each
  other's negatives.
  Returns (model, params, losses float32 [steps]).
  """
  ids = np.asarray(texts_ids)
  poses = np.asarray(poses, np.float32)
  if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"texts_ids must be int [N, L], got {ids.dtype} {ids.shape}")
  if poses.ndim != 3 or poses.shape[0] != ids.shape[0] or poses.shape[-1] != VALUES_PER_POSE:
    raise ValueError(f"poses must be [{ids.shape[0]}, P, {VALUES_PER_POSE}], got {poses.shape}")
  if not np.all(np.isfinite(poses)):
    raise ValueError("poses contain NaN or inf")
  if not 2 <= batch_size <= ids.shape[0]:
    raise ValueError(f"batch_size must be in [2, {ids.shape[0]}] (the number of pairs), got {batch_size}")
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  ids = ids.astype(np.int32)
  model = make_model(config, text_encoder)
  vocab_size = getattr(model.text_encoder, "vocab_size", None)
  if vocab_size is not None and (ids.min() < 0 or ids.max() >= vocab_size):
    raise ValueError(f"caption ids must lie in [0, {vocab_size}) (the text encoder's vocabulary), "
                     f"got [{ids.min()}, {ids.max()}]")
  # Jitted: one compile instead of one per operation.
  params = nn.unbox(jax.jit(model.init)(jax.random.key(seed), ids[:batch_size], poses[:batch_size]))
  # No weight decay on vectors and scalars (biases, norms, the log-temperature).
  decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adamw(learning_rate, b1=0.9, b2=0.98, weight_decay=weight_decay, mask=decay_mask))
  opt_state = jax.jit(tx.init)(params)

  @jax.jit
  def step(params, opt_state, ids_bt, poses_bpv):
    def loss_fn(p):
      text_be, traj_be, log_t = model.apply(p, ids_bt, poses_bpv)
      return contrastive_loss(text_be, traj_be, log_t, _same_caption(ids_bt))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  order, cursor, losses = rng.permutation(ids.shape[0]), 0, []
  for _ in range(steps):
    if cursor + batch_size > len(order):
      order, cursor = rng.permutation(ids.shape[0]), 0
    batch = order[cursor:cursor + batch_size]
    cursor += batch_size
    params, opt_state, loss = step(params, opt_state, ids[batch], poses[batch])
    losses.append(loss)
  return model, params, np.asarray(jax.device_get(losses), np.float32)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(model: ClatrModel, method: str, params, *inputs):
  # Modules hash by value, so every call with an equal model and shapes reuses one compile.
  return model.apply(params, *inputs, method=method)


def _embed(model: ClatrModel, params, method: str, inputs: tuple[np.ndarray, ...], batch_size: int) -> np.ndarray:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  total, out = inputs[0].shape[0], []
  for start in range(0, total, batch_size):
    chunks = [x[start:start + batch_size] for x in inputs]
    n = chunks[0].shape[0]
    if n < batch_size:  # pad to the one compiled shape
      chunks = [np.concatenate([c, np.repeat(c[-1:], batch_size - n, axis=0)]) for c in chunks]
    out.append(np.asarray(_apply(model, method, params, *chunks))[:n])
  return np.concatenate(out).astype(np.float64)


def embed_texts(model: ClatrModel, params, texts_ids: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
  """Caption ids [N, 77] -> unit embeddings float64 [N, E]."""
  return _embed(model, params, "encode_text", (np.asarray(texts_ids, np.int32),), batch_size)


def embed_trajectories(model: ClatrModel, params, poses: np.ndarray, valid: np.ndarray | None = None, *,
                       batch_size: int = 256) -> np.ndarray:
  """Pose values [N, 30, 10] -> unit embeddings float64 [N, E]. `valid` [N, 30] bool marks real
  poses (a prefix of each row); None: all."""
  poses = np.asarray(poses, np.float32)
  valid = np.ones(poses.shape[:2], bool) if valid is None else np.asarray(valid, bool)
  if valid.shape != poses.shape[:2]:
    raise ValueError(f"valid must be {list(poses.shape[:2])}, got {list(valid.shape)}")
  if np.any(valid != (np.arange(valid.shape[1]) < valid.sum(1, keepdims=True))):
    raise ValueError("valid poses must be a prefix of each row (padding at the end)")
  return _embed(model, params, "encode_trajectory", (poses, valid), batch_size)


# --------------------------------------------------------------------------------- metrics


def _as_embeddings(x, name: str, min_rows: int = 1) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name} must be [N, D], got shape {x.shape}")
  if x.shape[0] < min_rows:
    raise ValueError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contains NaN or inf")
  return x


def clatr_clip(text_emb, traj_emb, *, clip_per_pair: bool = False) -> float:
  """CLaTr-CLIP of matched pairs (row i of each): max(mean_i 100 * cos(text_i, traj_i), 0).

  Both sides are L2-normalised first. The released E.T. / GenDoP score clips the mean at 0
  (so it is 0 whenever the average cosine is negative); `clip_per_pair=True` gives the CLIPScore
  form, mean_i max(100 * cos_i, 0).
  """
  a = _as_embeddings(text_emb, "text_emb")
  b = _as_embeddings(traj_emb, "traj_emb")
  if a.shape != b.shape:
    raise ValueError(f"text_emb {a.shape} and traj_emb {b.shape} must pair row by row")
  norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
  if np.any(norms == 0):
    raise ValueError("an embedding is all zeros; its cosine is undefined")
  cos_n = np.sum(a * b, axis=-1) / norms
  if clip_per_pair:
    return float(np.mean(np.maximum(100.0 * cos_n, 0.0)))
  return float(max(100.0 * np.mean(cos_n), 0.0))


def _pairwise_distances(x_nd: np.ndarray, y_md: np.ndarray) -> np.ndarray:
  sq = (x_nd * x_nd).sum(-1)[:, None] + (y_md * y_md).sum(-1)[None, :] - 2.0 * x_nd @ y_md.T
  return np.sqrt(np.maximum(sq, 0.0))


def coverage(real_emb, gen_emb, k: int = 5, *, num_splits: int = 1) -> float:
  """Coverage (Naeem et al. 2020): fraction of real samples with a generated sample strictly
  inside their k-NN ball, the ball's radius being the Euclidean distance to the k-th nearest
  other real sample.

  k = 5 is Naeem et al.'s recommendation. The released E.T. / GenDoP evaluation uses k = 3 and
  averages the value over 5 contiguous chunks of the (real, generated) lists: `k=3, num_splits=5`
  reproduces that protocol (chunks from `np.array_split`, which sizes them slightly differently
  from torch.chunk when N is not a multiple of 5).
  """
  real = _as_embeddings(real_emb, "real_emb")
  gen = _as_embeddings(gen_emb, "gen_emb")
  if real.shape[1] != gen.shape[1]:
    raise ValueError(f"real_emb width {real.shape[1]} != gen_emb width {gen.shape[1]}")
  if k < 1 or num_splits < 1:
    raise ValueError(f"k and num_splits must be >= 1, got {k}, {num_splits}")
  values = []
  for real_c, gen_c in zip(np.array_split(real, num_splits), np.array_split(gen, num_splits)):
    if real_c.shape[0] <= k or gen_c.shape[0] < 1:
      raise ValueError(f"each split needs more than k={k} real samples and one generated sample, "
                       f"got {real_c.shape[0]} and {gen_c.shape[0]}")
    # Index k of the sorted row skips the sample itself (distance 0 at index 0).
    radii_n = np.sort(_pairwise_distances(real_c, real_c), axis=1)[:, k]
    nearest_gen_n = _pairwise_distances(real_c, gen_c).min(axis=1)
    values.append(np.mean(nearest_gen_n < radii_n))
  return float(np.mean(values))


def frechet_distance(real_emb, gen_emb) -> float:
  """||mu_r - mu_g||^2 + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^(1/2)), covariances with N - 1.

  tr((S_r S_g)^(1/2)) is the sum of the square roots of the eigenvalues of S_r S_g (real and
  >= 0 for covariance matrices, as S_r S_g is similar to S_r^(1/2) S_g S_r^(1/2)); this equals the
  scipy.linalg.sqrtm form and stays stable when N < D makes the covariances singular.
  """
  real = _as_embeddings(real_emb, "real_emb", min_rows=2)
  gen = _as_embeddings(gen_emb, "gen_emb", min_rows=2)
  if real.shape[1] != gen.shape[1]:
    raise ValueError(f"real_emb width {real.shape[1]} != gen_emb width {gen.shape[1]}")
  mu_r, mu_g = real.mean(0), gen.mean(0)
  cov_r, cov_g = np.cov(real, rowvar=False, ddof=1), np.cov(gen, rowvar=False, ddof=1)
  cov_r, cov_g = np.atleast_2d(cov_r), np.atleast_2d(cov_g)
  eig = np.linalg.eigvals(cov_r @ cov_g)
  # Rounding leaves tiny negative or imaginary parts on what are exact zeros.
  tr_sqrt = np.sqrt(np.maximum(eig.real, 0.0)).sum()
  fd = np.sum((mu_r - mu_g) ** 2) + np.trace(cov_r) + np.trace(cov_g) - 2.0 * tr_sqrt
  return float(max(fd, 0.0))
