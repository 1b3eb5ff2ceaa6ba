"""Tests for `jaxlab.mxmoe.solver`: the integer program against brute force, budgets, errors."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from jaxlab.mxmoe import (
    AllocationProblem,
    CostModel,
    LinearBlock,
    allocate,
    allocation_problem,
    brute_force_allocate,
    moe_layer_blocks,
    solve,
    uniform_allocation,
)
from jaxlab.quant_formats.scheme import bits_per_weight

MENU = ("bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w2a16_g128_asym", "w8a8_g-1_sym", "w4a4_g-1_sym")


def _random_problem(seed, num_blocks=6, num_schemes=4, ties=False):
  """Random sizes, losses and times; with `ties`, repeated values and all-zero rows (empty experts)."""
  rng = np.random.default_rng(seed)
  menu = tuple(rng.choice(MENU, size=num_schemes, replace=False))
  blocks = [LinearBlock(b // 2, ("gate_up", "down")[b % 2], 128 * int(rng.integers(1, 4)),
                        int(rng.integers(64, 512)),
                        int(rng.integers(0, 300))) for b in range(num_blocks)]
  loss = rng.lognormal(size=(num_blocks, num_schemes))
  time_s = rng.lognormal(size=(num_blocks, num_schemes)) * 1e-5
  if ties:
    loss = np.round(loss * 2) / 2
    time_s = np.round(time_s * 4e5) / 4e5
    loss[1] = 0.0
    time_s[1] = 0.0
    loss[:, 0] = 0.0
  return AllocationProblem(blocks, menu, loss, time_s)


def _naive_optimum(problem, avg_bits, r):
  """Independent enumeration: min L^r T^(1-r) over assignments within the budget (exact bit sums)."""
  bits = [Fraction(bits_per_weight(s)) for s in problem.menu]
  sizes = [b.k * b.n for b in problem.blocks]
  budget = Fraction(avg_bits) * sum(sizes)
  best = math.inf
  for choice in itertools.product(range(len(bits)), repeat=len(sizes)):
    loss = sum(problem.loss_bs[b, s] for b, s in enumerate(choice))
    time_s = sum(problem.time_bs[b, s] for b, s in enumerate(choice))
    value = loss**r * time_s ** (1 - r)
    if value < best and sum(bits[s] * size for s, size in zip(choice, sizes)) <= budget:
      best = value
  return best


def _feasible_budgets(problem, rng):
  low = min(bits_per_weight(s) for s in problem.menu)
  high = max(bits_per_weight(s) for s in problem.menu)
  return [low, float(rng.uniform(low, high)), float(rng.uniform(low, high)), high]


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0])
def test_brute_force_helper_matches_naive_enumeration(r):
  for seed in (0, 101):
    problem = _random_problem(seed, num_blocks=5, ties=seed > 100)
    for avg_bits in _feasible_budgets(problem, np.random.default_rng(seed))[1:3]:
      want = _naive_optimum(problem, avg_bits, r)
      assert brute_force_allocate(problem, avg_bits=avg_bits, r=r).objective == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("r", [0.0, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_brute_force(r, ties):
  for seed in range(5):
    problem = _random_problem(seed + (100 if ties else 0), num_blocks=5 + seed % 3, ties=ties)
    for avg_bits in _feasible_budgets(problem, np.random.default_rng(seed)):
      got = solve(problem, avg_bits=avg_bits, r=r)
      want = brute_force_allocate(problem, avg_bits=avg_bits, r=r)
      assert got.objective == pytest.approx(want.objective, rel=1e-9, abs=1e-300), (seed, avg_bits)
      assert got.status == "optimal" and got.gap <= 1e-9
      assert got.lower_bound <= got.objective * (1 + 1e-12)
      # The reported numbers are those of the reported schemes.
      index = {name: i for i, name in enumerate(s.name for s in problem.menu)}
      choice = [index[name] for name in got.schemes]
      loss = sum(problem.loss_bs[b, s] for b, s in enumerate(choice))
      time_s = sum(problem.time_bs[b, s] for b, s in enumerate(choice))
      assert got.loss == pytest.approx(loss, rel=1e-12) and got.time_s == pytest.approx(time_s, rel=1e-12)


@pytest.mark.parametrize("r", [0.0, 0.75, 1.0])
def test_budget_respected_exactly(r):
  problem = _random_problem(7, num_blocks=8, num_schemes=5)
  sizes = [b.k * b.n for b in problem.blocks]
  for avg_bits in (2.25, 3.0, 4.25, 4.26, 6.0, 8.0, 16.0):
    if avg_bits < min(bits_per_weight(s) for s in problem.menu):
      continue
    allocation = solve(problem, avg_bits=avg_bits, r=r)
    used = sum(Fraction(bits_per_weight(s)) * size for s, size in zip(allocation.schemes, sizes))
    assert used <= Fraction(avg_bits) * sum(sizes)
    assert allocation.average_bits == pytest.approx(float(used / sum(sizes)))
    assert allocation.budget_bits == pytest.approx(avg_bits * sum(sizes))


def test_infeasible_budget_states_the_minimum():
  problem = _random_problem(3)
  names = [s.name for s in problem.menu]
  minimum = min(bits_per_weight(s) for s in names)
  with pytest.raises(ValueError, match=rf"smallest feasible average .* is {minimum} bits"):
    solve(problem, avg_bits=minimum - 0.01, r=0.5)
  solve(problem, avg_bits=minimum, r=0.5)  # Exactly the minimum is feasible.


def test_gate_and_up_are_one_block():
  """One variable set per fused gate/up block: one scheme, charged for both halves (D * 2F weights)."""
  d_model, d_ff, shared = 256, 384, 512
  blocks = moe_layer_blocks(d_model=d_model, d_ff=d_ff, rows_per_expert=[5, 0, 40], shared_d_ff=shared,
                            shared_rows=64)
  assert [b.key for b in blocks] == [(e, kind) for e in range(4) for kind in ("gate_up", "down")]
  gate_up = [b for b in blocks if b.kind == "gate_up"]
  assert [b.size for b in gate_up] == [d_model * 2 * d_ff] * 3 + [d_model * 2 * shared]
  assert [b.m_rows for b in gate_up] == [5, 0, 40, 64]
  rng = np.random.default_rng(0)
  menu = ("w8a16_g-1_asym", "w4a16_g128_asym")
  problem = AllocationProblem(blocks, menu, rng.random((8, 2)), rng.random((8, 2)))
  allocation = solve(problem, avg_bits=6.0, r=1.0)
  per_kind = allocation.layer_assignment()
  assert set(per_kind) == {"gate_up", "down"} and all(len(v) == 4 for v in per_kind.values())


def test_uniform_baseline_and_optimum_beats_it():
  rng = np.random.default_rng(5)
  blocks = moe_layer_blocks(d_model=256, d_ff=128, rows_per_expert=rng.integers(0, 200, size=6).tolist(),
                            shared_d_ff=256, shared_rows=128)
  menu = ("bf16", "w8a16_g-1_asym", "w4a16_g128_asym", "w8a8_g-1_sym", "w4a4_g-1_sym")
  cost = CostModel.roofline("H100 SXM")
  sensitivities = {(b.expert, b.kind, s): 0.0 if s == "bf16" else rng.lognormal() * 2.0 ** -bits_per_weight(s)
                   for b in blocks for s in menu}
  problem = allocation_problem(blocks, menu, sensitivities, cost)
  for scheme in menu:
    base = uniform_allocation(problem, scheme, r=0.75)
    assert set(base.schemes) == {scheme}
    want_loss = sum(sensitivities[(b.expert, b.kind, scheme)] for b in blocks)
    want_time = sum(cost.block_time(scheme, b.m_rows, b.k, b.n) for b in blocks)
    assert base.loss == pytest.approx(want_loss) and base.time_s == pytest.approx(want_time)
    assert base.objective == pytest.approx(want_loss**0.75 * want_time**0.25)
    best = allocate(blocks, menu, sensitivities, cost, avg_bits=bits_per_weight(scheme), r=0.75)
    assert best.objective <= base.objective * (1 + 1e-12)


def test_layer_sized_instance_is_proven_optimal_quickly():
  """64 routed experts + shared, 6 schemes (780 binaries): proven optimal, not worse than any uniform scheme."""
  rng = np.random.default_rng(1)
  rows = np.floor(512 * 6 * rng.dirichlet(np.ones(64))).astype(int).tolist()
  blocks = moe_layer_blocks(d_model=2048, d_ff=1408, rows_per_expert=rows, shared_d_ff=2816, shared_rows=512)
  cost = CostModel.roofline("H200")
  scale = {s: rng.uniform(0.5, 2.0) for s in MENU}
  sensitivities = {
      (b.expert, b.kind, s): 0.0 if s == "bf16" else scale[s] * rng.lognormal() * 2.0 ** -bits_per_weight(s)
      for b in blocks for s in MENU}
  problem = allocation_problem(blocks, MENU, sensitivities, cost)
  allocation = solve(problem, avg_bits=4.25, r=0.75, time_limit_s=30)
  assert allocation.status == "optimal" and allocation.gap <= 1e-9
  assert allocation.average_bits <= 4.25
  for scheme in MENU:
    if bits_per_weight(scheme) <= 4.25:
      assert allocation.objective <= uniform_allocation(problem, scheme, r=0.75).objective


def test_bad_arguments():
  problem = _random_problem(0)
  with pytest.raises(ValueError, match="r must be a number in"):
    solve(problem, avg_bits=8, r=1.5)
  with pytest.raises(TypeError, match="avg_bits"):
    solve(problem, avg_bits="8", r=0.5)
  with pytest.raises(ValueError, match="shape"):
    AllocationProblem(problem.blocks, problem.menu, np.zeros((2, 2)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match="finite and >= 0"):
    AllocationProblem(problem.blocks, problem.menu, -problem.loss_bs, problem.time_bs)
  with pytest.raises(ValueError, match="sensitivities lack"):
    allocation_problem(problem.blocks, problem.menu, {}, CostModel.roofline("cpu"))
  with pytest.raises(ValueError, match="brute force"):
    brute_force_allocate(_random_problem(0, num_blocks=12, num_schemes=6), avg_bits=16, r=1)
