"""Damped-least-squares IK on the Panda: reachable targets are hit, far ones are flagged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.robosplat import ik, kinematics, urdf

pytest.importorskip("pybullet")

_NUM_REACHABLE = 12


@pytest.fixture(name="solved", scope="module")
def _solved():
  """One batched solve: random reachable targets, then one target 3 m away."""
  model = kinematics.panda_model()
  movable = urdf.movable_joints(model)
  lower = np.array([j.lower for j in movable])
  upper = np.array([j.upper for j in movable])
  rng = np.random.default_rng(0)
  qpos = np.clip(kinematics.INIT_QPOS + rng.uniform(-1.0, 1.0, (_NUM_REACHABLE, 9)),
                 lower, upper)
  targets = np.asarray(kinematics.end_effector_pose(model, qpos))
  far = targets[0].copy()
  far[:3, 3] += [3.0, 0.0, 0.0]
  targets = np.concatenate([targets, far[None]])
  result = ik.solve_ik(model, targets, kinematics.INIT_QPOS)
  return model, targets, result, lower, upper


def test_reaches_fk_targets(solved):
  model, targets, result, _, _ = solved
  reached = jax.tree.map(lambda x: x[:_NUM_REACHABLE], result)
  assert reached.qpos.shape == (_NUM_REACHABLE, 9)
  assert float(reached.position_error.max()) < 1e-3
  assert float(reached.rotation_error.max()) < 1e-2
  assert bool(reached.converged.all()) and bool(ik.ik_reachable(reached).all())
  # The reported errors are the true ones.
  ee = kinematics.end_effector_pose(model, reached.qpos)
  distance = np.linalg.norm(np.asarray(ee)[:, :3, 3] - targets[:_NUM_REACHABLE, :3, 3], axis=-1)
  np.testing.assert_allclose(distance, reached.position_error, atol=1e-6)


def test_far_target_not_converged(solved):
  _, _, result, _, _ = solved
  assert not bool(result.converged[-1])
  assert not bool(ik.ik_reachable(result)[-1])
  assert float(result.position_error[-1]) > 1.5


def test_limits_respected_and_fingers_kept(solved):
  _, _, result, lower, upper = solved
  qpos = np.asarray(result.qpos)
  assert np.all(qpos >= lower - 1e-6) and np.all(qpos <= upper + 1e-6)
  np.testing.assert_array_equal(qpos[:, 7:], np.broadcast_to(kinematics.INIT_QPOS[7:], (13, 2)))
  assert ik.chain_qpos_indices(kinematics.panda_model()) == tuple(range(7))


def test_vmap_over_targets(solved):
  model, targets, result, _, _ = solved
  batched = jax.vmap(lambda t: ik.solve_ik(model, t, kinematics.INIT_QPOS))(targets[:2])
  np.testing.assert_allclose(batched.qpos, result.qpos[:2], atol=1e-4)


def test_reachable_tolerances():
  result = ik.IkResult(qpos=jnp.zeros((3, 9)), position_error=jnp.array([1e-3, 1e-2, 1e-3]),
                       rotation_error=jnp.array([0.01, 0.01, 0.1]),
                       converged=jnp.ones(3, bool))
  np.testing.assert_array_equal(ik.ik_reachable(result), [True, False, False])
  np.testing.assert_array_equal(ik.ik_reachable(result, pos_tol=0.02, rot_tol=0.2), [True] * 3)


def test_rotation_log_exp_round_trip():
  rng = np.random.default_rng(3)
  axes = rng.normal(size=(64, 3))
  axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
  # Angles up to (almost) π, where the log switches to the symmetric-part branch.
  angles = np.concatenate([rng.uniform(0, np.pi, 60), [0.0, 1e-5, np.pi - 1e-3, 3.1]])
  w = axes * angles[:, None]
  r = ik.rotation_exp(w)
  np.testing.assert_allclose(np.asarray(r) @ np.swapaxes(np.asarray(r), -1, -2),
                             np.broadcast_to(np.eye(3), (64, 3, 3)), atol=1e-5)
  np.testing.assert_allclose(ik.rotation_log(r), w, atol=2e-3)
  np.testing.assert_allclose(ik.rotation_angle(r), angles, atol=2e-3)
