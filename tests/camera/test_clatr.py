"""CLaTr embedding and metrics: known answers for CLaTr-CLIP, coverage and the Frechet distance,
the pose features against the tokenizer, the contrastive loss, and a short training run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxlab.camera import clatr, text, tokenizer, trajectory


# ---------------------------------------------------------------------------------- metrics


def test_frechet_distance_known_answers():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
  assert clatr.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-8)
  shift = np.array([0.5, -1.0, 2.0, 0.0, 0.25, 1.5])
  assert clatr.frechet_distance(real, real + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-6)
  # Against the textbook sqrtm form on two different full-rank sets.
  gen = 0.7 * rng.normal(size=(250, 6)) + 0.3
  mu_r, mu_g = real.mean(0), gen.mean(0)
  cov_r, cov_g = np.cov(real, rowvar=False), np.cov(gen, rowvar=False)
  ref = np.sum((mu_r - mu_g) ** 2) + np.trace(cov_r + cov_g - 2 * scipy.linalg.sqrtm(cov_r @ cov_g).real)
  assert clatr.frechet_distance(real, gen) == pytest.approx(ref, rel=1e-6)
  # Fewer samples than dimensions (singular covariances) still gives ~0 for identical sets.
  few = rng.normal(size=(10, 32))
  assert clatr.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
  with pytest.raises(ValueError, match="width"):
    clatr.frechet_distance(real, gen[:, :5])


def test_coverage_known_answers():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(60, 8))
  assert clatr.coverage(real, real, k=5) == 1.0
  assert clatr.coverage(real, real + 100.0, k=5) == 0.0
  assert clatr.coverage(real, real, k=3, num_splits=5) == 1.0
  # Two far clusters of 20; generating only the first covers exactly half of the real samples.
  two = np.concatenate([rng.normal(size=(20, 4)), rng.normal(size=(20, 4)) + 50.0])
  assert clatr.coverage(two, two[:20] + 0.01, k=5) == 0.5
  # Points 0..9 on a line, k = 2: radius 2 at the ends (neighbours 1 and 2 away), 1 inside.
  line = np.arange(10.0)[:, None]
  assert clatr.coverage(line, [[0.5]], k=2) == pytest.approx(0.2)  # covers points 0 and 1
  assert clatr.coverage(line, [[-1.5]], k=2) == pytest.approx(0.1)  # inside point 0's radius only
  assert clatr.coverage(line, [[2.0]], k=2) == pytest.approx(0.1)  # 1 and 3 sit on their radius: strict
  with pytest.raises(ValueError, match="more than k"):
    clatr.coverage(real[:5], real, k=5)


def test_clatr_clip_known_answers():
  rng = np.random.default_rng(2)
  emb = rng.normal(size=(16, 8))
  assert clatr.clatr_clip(emb, 3.0 * emb) == pytest.approx(100.0)
  e = np.eye(4)
  assert clatr.clatr_clip(e[:2], e[2:]) == pytest.approx(0.0, abs=1e-12)
  assert clatr.clatr_clip(emb, -emb) == 0.0
  # Cosines +0.5 and -0.5: the released score clips the mean (0), CLIPScore clips each pair (25).
  text = np.array([[1.0, 0.0], [1.0, 0.0]])
  traj = np.array([[0.5, np.sqrt(0.75)], [-0.5, np.sqrt(0.75)]])
  assert clatr.clatr_clip(text, traj) == pytest.approx(0.0, abs=1e-9)
  assert clatr.clatr_clip(text, traj, clip_per_pair=True) == pytest.approx(25.0)
  cos = np.array([0.9, 0.2, 0.6])
  pairs_t = np.tile([1.0, 0.0], (3, 1))
  pairs_m = np.stack([cos, np.sqrt(1 - cos ** 2)], 1)
  assert clatr.clatr_clip(pairs_t, pairs_m) == pytest.approx(100 * cos.mean())
  with pytest.raises(ValueError, match="pair row by row"):
    clatr.clatr_clip(emb, emb[:3])


def test_contrastive_loss_known_answers():
  b = 6
  loss = jax.jit(clatr.contrastive_loss)  # two compiles (with and without exclusions), not one per op
  same = jnp.ones((b, b)) / np.sqrt(b)  # all embeddings equal: every logit ties, loss = log B
  assert float(loss(same, same, jnp.log(0.1))) == pytest.approx(np.log(b), rel=1e-5)
  # Leaving every off-diagonal pair out of the negatives leaves nothing to confuse: loss 0.
  assert float(loss(same, same, jnp.log(0.1), jnp.ones((b, b), bool))) == pytest.approx(0.0, abs=1e-6)
  eye = jnp.eye(b)
  # Orthonormal matched pairs: logits 1/T on the diagonal, 0 elsewhere.
  t = 0.5
  expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + b - 1))
  assert float(loss(eye, eye, jnp.log(t))) == pytest.approx(expected, rel=1e-5)
  # Excluding pair (0, 1) removes one exp(0) term from row 0 and from column 1's softmax.
  exclude = jnp.zeros((b, b), bool).at[0, 1].set(True)
  fewer = -np.log(np.exp(1 / t) / (np.exp(1 / t) + b - 2))
  assert float(loss(eye, eye, jnp.log(t), exclude)) == pytest.approx((10 * expected + 2 * fewer) / 12, rel=1e-5)
  # The temperature floor keeps a huge learned scale from exploding the logits.
  floor = float(loss(eye, eye[::-1], jnp.log(1e-6)))
  assert np.isfinite(floor) and floor == pytest.approx(1 / clatr.MIN_TEMPERATURE, rel=1e-3)


# ---------------------------------------------------------------------------------- features


def _trajectory(seed: int, n: int = 120) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = np.linspace(0, 1, n)
  axis = rng.normal(size=3)
  axis /= np.linalg.norm(axis)
  angle = 0.8 * t
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  rot = np.eye(3) + np.sin(angle)[:, None, None] * k + (1 - np.cos(angle))[:, None, None] * (k @ k)
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, :3] = rot  # a growing rotation about `axis`
  c2w[:, :3, 3] = np.stack([np.sin(3 * t), t ** 2, 2 * t], 1) * 3.0 + rng.normal(size=3)
  return c2w


def test_pose_features_match_tokenizer_bins():
  c2w = _trajectory(3)
  fl_x, fl_y, w, h = 500.0, 450.0, 640.0, 480.0
  tokens = tokenizer.encode(c2w, fl_x, fl_y, w, h)
  feats = clatr.pose_features(tokenizer.select_poses(c2w), np.tile([fl_x / w, fl_y / h], (30, 1)))
  assert feats.shape == (30, 10) and feats.dtype == np.float32
  # Tokens decode to their bin's left edge: the continuous value lies within one bin above it.
  bin_width = np.array([2 / 256] * 7 + [10 / 256] * 2 + [4 / 256])
  gap = feats - clatr.features_from_tokens(tokens)
  assert np.all(gap >= -1e-5) and np.all(gap <= bin_width + 1e-5)
  # Relative to pose 0, unit max translation, w >= 0, log10 of the spec's scale.
  np.testing.assert_allclose(feats[0, :7], [1, 0, 0, 0, 0, 0, 0], atol=1e-6)
  assert np.linalg.norm(feats[:, 4:7], axis=1).max() == pytest.approx(1.0, abs=1e-4)
  rel = np.linalg.inv(c2w[0]) @ c2w[116]
  _, scale = tokenizer.normalize(tokenizer.select_poses(c2w))
  np.testing.assert_allclose(feats[:, 9], np.log10(scale), atol=1e-6)
  np.testing.assert_allclose(feats[-1, :4], trajectory.matrix_to_quaternion(rel[:3, :3]), atol=1e-6)
  # Decoded poses (scale multiplied back) give the same features when told the scale.
  c2w_d, fl_d, s_d = tokenizer.decode(tokens)
  again = clatr.pose_features(c2w_d, fl_d, s_d)
  np.testing.assert_allclose(again[:, 4:], clatr.features_from_tokens(tokens)[:, 4:], atol=1e-5)
  batch = clatr.features_from_tokens(np.stack([tokens, tokens]))
  assert batch.shape == (2, 30, 10)
  with pytest.raises(trajectory.TrajectoryError, match="not a pose token"):
    clatr.features_from_tokens(np.concatenate([tokens[:-1], [tokenizer.EOS]]))


# ---------------------------------------------------------------------------------- model


_MOTIONS = ("trucks right", "pedestals down", "dollies in", "trucks left")
_FILLERS = ("slowly", "smoothly", "steadily", "gently", "past the tree", "toward the house")


def _toy_pairs(n: int, seed: int):
  """Class c: a caption naming motion c among filler words; a trajectory translating along that
  motion's camera axis (x right, y down, z forward), plus noise."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % len(_MOTIONS)
  captions = [f"the camera {_MOTIONS[c]} {rng.choice(_FILLERS)} and {rng.choice(_FILLERS)}" for c in labels]
  directions = np.eye(3)[labels % 3] * np.where(labels < 3, 1.0, -1.0)[:, None]
  poses = 0.05 * rng.normal(size=(n, 30, 10))
  poses[:, :, 0] += 1.0
  poses[:, :, 4:7] += np.linspace(0, 1, 30)[None, :, None] * directions[:, None, :]
  return captions, poses.astype(np.float32), labels


def test_train_clatr_learns_toy_pairs():
  captions, poses, labels = _toy_pairs(64, seed=0)
  tok = text.train_caption_tokenizer(captions, vocab_size=100)
  ids = text.encode_captions(tok, captions)
  config = clatr.ClatrConfig.tiny(text_vocab_size=tok.get_vocab_size())
  model, params, losses = clatr.train_clatr(ids, poses, steps=30, batch_size=16, learning_rate=3e-3, seed=0,
                                            config=config)
  assert losses.shape == (30,) and np.all(np.isfinite(losses))
  # From about log(16) (chance) towards log(4): same-class pairs in a batch stay confusable.
  assert losses[0] > 0.9 * np.log(16) and losses[-10:].mean() < 0.7 * losses[0]
  text_e = clatr.embed_texts(model, params, ids, batch_size=32)
  traj_e = clatr.embed_trajectories(model, params, poses, batch_size=32)
  assert text_e.shape == traj_e.shape == (64, config.embed_dim)
  np.testing.assert_allclose(np.linalg.norm(text_e, axis=1), 1.0, atol=1e-5)
  # Text -> trajectory retrieval: the nearest trajectory has the caption's class (chance 1/4).
  hits = labels[np.argmax(text_e @ traj_e.T, axis=1)] == labels
  assert hits.mean() > 0.6
  assert clatr.clatr_clip(text_e, traj_e) > clatr.clatr_clip(text_e, np.roll(traj_e, 1, axis=0))
  # Padded poses do not move the embedding; changing a valid pose does.
  valid = np.ones((4, 30), bool)
  valid[:, 20:] = False
  edited = np.concatenate([poses[:2], poses[:2]])
  edited[:2, 20:] += 5.0
  edited[2:, 5] += 5.0
  out = clatr.embed_trajectories(model, params, edited, valid, batch_size=32)
  ref = clatr.embed_trajectories(model, params, np.concatenate([poses[:2], poses[:2]]), valid, batch_size=32)
  np.testing.assert_allclose(out[:2], ref[:2], atol=1e-5)
  assert np.abs(out[2:] - ref[2:]).max() > 1e-3


def test_train_clatr_rejects_bad_input():
  captions, poses, _ = _toy_pairs(8, seed=1)
  ids = np.zeros((8, 77), np.int32)
  ids[:, :3] = [2, 10, 3]
  kw = dict(steps=1, learning_rate=1e-3, seed=0, config=clatr.ClatrConfig.tiny(text_vocab_size=50))
  with pytest.raises(ValueError, match="batch_size"):
    clatr.train_clatr(ids, poses, batch_size=16, **kw)
  with pytest.raises(ValueError, match="vocabulary"):
    clatr.train_clatr(ids + 60, poses, batch_size=4, **kw)
  poses[0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    clatr.train_clatr(ids, poses, batch_size=4, **kw)
