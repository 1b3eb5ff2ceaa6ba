"""MxMoE's allocation for one MoE layer, solved exactly: one scheme per linear block.

Variables x[b, s] in {0, 1} for block b and scheme s of the menu, with
    sum_s x[b, s] = 1                                   (one scheme per block)
    sum_{b,s} bits(s) * size(b) * x[b, s] <= budget     (budget = avg_bits * sum_b size(b))
and the objective  min L^r * T^(1-r),  L = sum Delta[b, s] x[b, s],  T = sum c[b, s] x[b, s]
(Delta: block sensitivities; c: `CostModel.block_time` at the block's workload rows). Gate and up
are one block ("gate_up"), so they are tied by construction.

r = 1 (min L) and r = 0 (min T) are one integer program each (`scipy.optimize.milp`, HiGHS, with
relative and absolute gap 0). Ties are broken lexicographically by the other term.

0 < r < 1: f(L, T) = L^r T^(1-r) is a weighted geometric mean, hence CONCAVE and non-decreasing
on [0, inf)^2. Let S be the finite set of (L, T) of feasible assignments and P = conv(S) + R_+^2.
  1. min_S f = min_P f: every point of P lies above some point of conv(S) (f is monotone), and a
     concave function attains its minimum over conv(S) at an extreme point, which belongs to S.
  2. A concave f bounded below on the polyhedron P attains its minimum at a vertex of P. The
     vertices of P are the *supported* Pareto points: the two lexicographic minima (L, then T;
     T, then L) and points that uniquely minimise a*L + b*T for some a, b > 0. Unsupported Pareto
     points (inside the hull's "dents") can never beat every vertex, so no epsilon-constraint
     programs are needed.
  3. The vertices are enumerated by dichotomic search (Aneja & Nair, 1979): between two found
     points p, q (p.L < q.L, p.T > q.T) solve min (p.T - q.T) L + (q.L - p.L) T; a solution strictly
     below the segment pq is a new vertex (recurse on both halves), otherwise pq is an edge of P.
     This takes at most 2V - 1 weighted programs for V vertices, plus the 2 + 2 lexicographic ones.
  4. Certificate: each program's dual bound gives a valid inequality a*L + b*T >= lb (with
     L >= lb_L, T >= lb_T from the endpoint programs). Their intersection Q contains S, so
     min_Q f, found by enumerating Q's vertices (2-D, pairwise line intersections), is a lower
     bound on the optimum. `Allocation.gap` = (f(best) - that bound) / f(best): 0 up to solver
     tolerance when every program closes, a provable bound when a time limit cuts one short.
L and T are rescaled to [0, 1] (by sum_b max_s) before solving; the enumeration is invariant
under that scaling. The budget row is exact: bits are multiples of 1/4 and sizes integers, so
the row is solved in integer units and every returned assignment is re-checked exactly.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from jaxlab.mxmoe.blocks import KINDS, LinearBlock, check_blocks
from jaxlab.mxmoe.cost import CostModel, block_times
from jaxlab.quant_formats.scheme import QuantScheme, bits_per_weight, parse_scheme

# Dichotomic search stops splitting a segment when the new point is below it by less than this
# (in the [0, 1]-scaled units); the gap certificate accounts for anything it may leave.
_SPLIT_TOLERANCE = 1e-11
_MAX_PROGRAMS = 400
# A region whose bound is within this relative distance of the best point found is not searched.
_PRUNE_TOLERANCE = 1e-12
BRUTE_FORCE_LIMIT = 2_000_000


def objective(loss: float, time_s: float, r: float) -> float:
  """L^r * T^(1-r), with r = 1 giving L and r = 0 giving T exactly."""
  if r == 1:
    return float(loss)
  if r == 0:
    return float(time_s)
  if loss <= 0 or time_s <= 0:
    return 0.0
  return math.exp(r * math.log(loss) + (1 - r) * math.log(time_s))


@dataclasses.dataclass(frozen=True)
class AllocationProblem:
  """One layer's instance: blocks, scheme menu, loss[b, s] (Delta) and time[b, s] (seconds)."""

  blocks: tuple[LinearBlock, ...]
  menu: tuple[QuantScheme, ...]
  loss_bs: np.ndarray
  time_bs: np.ndarray

  def __post_init__(self):
    object.__setattr__(self, "blocks", check_blocks(self.blocks))
    menu = tuple(parse_scheme(s) for s in self.menu)
    if not menu:
      raise ValueError("the scheme menu is empty")
    if len(set(menu)) != len(menu):
      raise ValueError(f"the scheme menu repeats schemes: {[s.name for s in menu]}")
    object.__setattr__(self, "menu", menu)
    shape = (len(self.blocks), len(menu))
    for name in ("loss_bs", "time_bs"):
      value = np.asarray(getattr(self, name), np.float64)
      if value.shape != shape:
        raise ValueError(
            f"AllocationProblem.{name} must have shape [blocks, schemes] = {shape}, got {value.shape}")
      if not np.all(np.isfinite(value)) or np.any(value < 0):
        raise ValueError(f"AllocationProblem.{name} must be finite and >= 0")
      object.__setattr__(self, name, value)

  @property
  def sizes(self) -> np.ndarray:
    return np.asarray([b.size for b in self.blocks], np.int64)

  @property
  def bits(self) -> tuple[Fraction, ...]:
    return tuple(Fraction(bits_per_weight(s)) for s in self.menu)

  def min_average_bits(self) -> float:
    """The smallest feasible average bits: every block in its lowest-bit scheme, weighted by size."""
    low = min(self.bits)
    return float(low)


def allocation_problem(
    blocks: Sequence[LinearBlock],
    menu: Sequence[QuantScheme | str],
    sensitivities: Mapping[tuple[int, str, str], float],
    cost_model: CostModel,
) -> AllocationProblem:
  """The instance for `blocks`: Delta from `sensitivities[(expert, kind, scheme name)]`, T from `cost_model`.

  Raises:
    ValueError: a (block, scheme) pair has no sensitivity (the message lists a few).
  """
  blocks = check_blocks(blocks)
  menu = tuple(parse_scheme(s) for s in menu)
  if not isinstance(sensitivities, Mapping):
    raise TypeError(
        f"sensitivities must be a mapping (expert, kind, scheme) -> Delta, got {type(sensitivities).__name__}")
  table = {}
  for key, value in sensitivities.items():
    if not (isinstance(key, tuple) and len(key) == 3):
      raise ValueError(f"sensitivity keys are (expert, kind, scheme), got {key!r}")
    table[(key[0], key[1], parse_scheme(key[2]).name)] = float(value)
  missing = [(b.expert, b.kind, s.name) for b in blocks for s in menu if (b.expert, b.kind, s.name) not in table]
  if missing:
    raise ValueError(f"sensitivities lack {len(missing)} (expert, kind, scheme) entries, e.g. {missing[:4]}")
  loss_bs = [[table[(b.expert, b.kind, s.name)] for s in menu] for b in blocks]
  return AllocationProblem(blocks, menu, np.asarray(loss_bs), np.asarray(block_times(cost_model, blocks, menu)))


@dataclasses.dataclass(frozen=True)
class Allocation:
  """The chosen scheme of every block and what it achieves.

  Attributes:
    blocks: the layer's blocks, in the problem's order.
    schemes: scheme name per block.
    loss: L, the summed sensitivities. time_s: T, the summed block times (seconds).
    objective: L^r T^(1-r). r: the trade-off exponent.
    budget_bits: the weight-bit budget (avg_bits * total weights); for a uniform baseline its own bits.
    average_bits: bits per weight achieved.
    status: "optimal" (proven, gap <= 1e-9); "time limit" (a program was cut short; `gap` is still a
      proven bound); "search limit" (too many programs; likewise); "suboptimal" (all programs closed
      but the bound is looser than 1e-9); "budget row tightened" (HiGHS's tolerance forced a
      tighter budget row; no proof); "uniform" for a baseline.
    gap: (objective - lower bound) / objective, 0 when proven optimal (NaN for a baseline).
    lower_bound: proven lower bound on the optimal objective.
    programs: integer programs solved.
  """

  blocks: tuple[LinearBlock, ...]
  schemes: tuple[str, ...]
  loss: float
  time_s: float
  objective: float
  r: float
  budget_bits: float
  average_bits: float
  status: str
  gap: float
  lower_bound: float
  programs: int = 0

  def scheme_of(self, expert: int, kind: str) -> str:
    for block, scheme in zip(self.blocks, self.schemes):
      if block.key == (expert, kind):
        return scheme
    raise KeyError(f"no block ({expert}, {kind!r}) in this allocation")

  def layer_assignment(self) -> dict[str, list[str]]:
    """{"gate_up": [scheme per expert], "down": [...]}, experts 0.. in order (shared experts last)."""
    out = {}
    for kind in KINDS:
      experts = sorted(b.expert for b in self.blocks if b.kind == kind)
      if experts != list(range(len(experts))):
        raise ValueError(f"layer_assignment needs {kind} blocks for experts 0..n-1, got {experts}")
      out[kind] = [self.scheme_of(e, kind) for e in experts]
    return out


# ------------------------------------------------------------------------------------ integer programs


class _Programs:
  """The layer's integer programs over x[b, s]: linear objectives, the budget row, exact checks."""

  def __init__(self, problem: AllocationProblem, budget_bits: Fraction, time_limit_s: float | None):
    from scipy import sparse

    self.problem = problem
    self.time_limit_s = time_limit_s
    self.count = 0
    self.exact = True  # False once a program had to be tightened beyond the exact budget.
    num_blocks, num_schemes = problem.loss_bs.shape
    self.shape = (num_blocks, num_schemes)
    # Integer units for the budget: bits * denominator, sizes / gcd.
    bits = problem.bits
    denominator = math.lcm(*(b.denominator for b in bits))
    sizes = [int(s) for s in problem.sizes]
    unit = math.gcd(*sizes)
    self.weight_bs = np.asarray([[int(b * denominator) * (size // unit) for b in bits] for size in sizes],
                                dtype=np.int64)
    self.budget_units = math.floor(budget_bits * denominator / unit)
    self.one_hot = sparse.kron(sparse.identity(num_blocks, format="csr"), np.ones((1, num_schemes)), format="csr")

  def feasible(self, choice: Sequence[int]) -> bool:
    return int(sum(int(self.weight_bs[b, s]) for b, s in enumerate(choice))) <= self.budget_units

  def argmin(self, c_bs: np.ndarray, extra_rows=()) -> tuple[tuple[int, ...] | None, float, int]:
    """(choice per block, dual bound on sum c x, scipy status) of min c.x; extra rows are (coef_bs, upper).

    The choice is None when a time limit stopped HiGHS before it found any assignment.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    scale = float(np.max(np.abs(c_bs))) or 1.0
    # The row's coefficients are exact integers, so every over-budget assignment exceeds this
    # upper bound by at least one unit, far beyond HiGHS's feasibility tolerance.
    upper = float(self.budget_units)
    for _ in range(4):
      constraints = [
          LinearConstraint(self.one_hot, 1, 1),
          LinearConstraint(self.weight_bs.reshape(1, -1).astype(np.float64), -np.inf, upper),
      ]
      constraints += [LinearConstraint(coef.reshape(1, -1), -np.inf, ub) for coef, ub in extra_rows]
      options = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "presolve": True}
      if self.time_limit_s is not None:
        options["time_limit"] = self.time_limit_s
      with warnings.catch_warnings():
        # mip_abs_gap is passed to HiGHS verbatim; scipy warns about options it does not list.
        warnings.filterwarnings("ignore", message="Unrecognized options", category=RuntimeWarning)
        result = milp((c_bs / scale).ravel(), integrality=np.ones(c_bs.size), bounds=Bounds(0, 1),
                      constraints=constraints, options=options)
      self.count += 1
      if result.x is None:
        if result.status == 1:
          return None, -math.inf, int(result.status)
        raise RuntimeError(f"the allocation program found no assignment (HiGHS status {result.status}: "
                           f"{result.message})")
      choice = tuple(int(i) for i in np.argmax(result.x.reshape(self.shape), axis=1))
      if self.feasible(choice):
        bound = result.mip_dual_bound if result.mip_dual_bound is not None else result.fun
        return choice, float(bound) * scale, int(result.status)
      # Over the exact budget yet accepted: the solver's tolerance exceeds one unit of this row.
      # Tighten it; the bounds of a tightened program are no longer proofs.
      self.exact = False
      upper -= 0.5
    raise RuntimeError("the allocation program kept exceeding the exact bit budget (row too large for the "
                       "solver's feasibility tolerance)")

  def lexicographic(self, primary_bs, secondary_bs) -> tuple[tuple[int, ...], float, int]:
    """min primary, ties broken by min secondary; returns (choice, dual bound on primary, status)."""
    choice, bound, status = self.argmin(primary_bs)
    if choice is None:
      raise RuntimeError(f"no assignment found within the time limit of {self.time_limit_s} s")
    best = _value(primary_bs, choice)
    slack = 1e-12 * max(float(np.sum(np.max(primary_bs, axis=1))), 1e-300)
    tied, _, _ = self.argmin(secondary_bs, extra_rows=[(primary_bs, best + slack)])
    # The tie-break is kept only if it is exactly as good in the primary term.
    if (tied is not None and _value(primary_bs, tied) <= best + slack
        and _value(secondary_bs, tied) < _value(secondary_bs, choice)):
      choice = tied
    return choice, bound, status


def _value(c_bs: np.ndarray, choice: Sequence[int]) -> float:
  return math.fsum(float(c_bs[b, s]) for b, s in enumerate(choice))


def _scale(a_bs: np.ndarray) -> float:
  """sum over blocks of the largest entry: an upper bound on any assignment's total (1 if 0)."""
  total = float(np.sum(np.max(a_bs, axis=1)))
  return total if total > 0 else 1.0


def _min_over_region(inequalities, r: float) -> float:
  """min of l^r t^(1-r) over {l, t >= 0, a l + b t >= c for each (a, b, c)} (inf if empty).

  The region is a polygon whose recession directions (if any) lie in R_+^2; f is concave and
  non-decreasing, so its minimum is at a vertex: a pairwise intersection of the lines.
  """
  lines = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), *inequalities]

  def inside(l, t):
    return all(a * l + b * t >= c - 1e-12 * (abs(c) + abs(a * l) + abs(b * t) + 1e-300) for a, b, c in lines)

  best = math.inf
  for (a1, b1, c1), (a2, b2, c2) in itertools.combinations(lines, 2):
    det = a1 * b2 - a2 * b1
    if abs(det) <= 1e-15 * (abs(a1 * b2) + abs(a2 * b1)):
      continue
    l, t = (c1 * b2 - c2 * b1) / det, (a1 * c2 - a2 * c1) / det
    if inside(l, t):
      best = min(best, objective(max(l, 0.0), max(t, 0.0), r))
  return best


def _budget(problem: AllocationProblem, avg_bits: float) -> Fraction:
  if isinstance(avg_bits, bool) or not isinstance(avg_bits, (int, float)) or not math.isfinite(avg_bits):
    raise TypeError(f"avg_bits must be a finite number, got {avg_bits!r}")
  minimum = min(problem.bits)
  if Fraction(avg_bits) < minimum:
    low = problem.menu[problem.bits.index(minimum)]
    raise ValueError(
        f"budget of {avg_bits} average bits per weight is infeasible: the smallest feasible average for "
        f"menu {[s.name for s in problem.menu]} is {float(minimum)} bits (every block in {low.name})"
    )
  return Fraction(avg_bits) * int(problem.sizes.sum())


def _check_r(r) -> float:
  if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
    raise ValueError(f"r must be a number in [0, 1], got {r!r}")
  return float(r)


def _allocation(problem, choice, r, budget_bits, status, lower_bound, programs) -> Allocation:
  loss = _value(problem.loss_bs, choice)
  time_s = _value(problem.time_bs, choice)
  value = objective(loss, time_s, r)
  sizes = problem.sizes
  bits = problem.bits
  average = float(sum(bits[s] * int(sizes[b]) for b, s in enumerate(choice)) / int(sizes.sum()))
  lower_bound = min(lower_bound, value)
  gap = (value - lower_bound) / value if value > 0 else 0.0
  if status == "optimal" and gap > 1e-9:
    status = "suboptimal"
  return Allocation(
      blocks=problem.blocks, schemes=tuple(problem.menu[s].name for s in choice), loss=loss, time_s=time_s,
      objective=value, r=r, budget_bits=float(budget_bits), average_bits=average, status=status,
      gap=max(gap, 0.0), lower_bound=lower_bound, programs=programs,
  )


def solve(
    problem: AllocationProblem, *, avg_bits: float, r: float, time_limit_s: float | None = 60.0
) -> Allocation:
  """The optimal allocation of `problem` under `avg_bits` bits per weight (module docstring: the method).

  Raises:
    ValueError: r outside [0, 1], or the budget is below the smallest feasible average bits (the
      message states that minimum).
  """
  if not isinstance(problem, AllocationProblem):
    raise TypeError(f"solve needs an AllocationProblem, got {type(problem).__name__}")
  r = _check_r(r)
  budget_bits = _budget(problem, avg_bits)
  programs = _Programs(problem, budget_bits, time_limit_s)
  l_ref, t_ref = _scale(problem.loss_bs), _scale(problem.time_bs)
  l_bs, t_bs = problem.loss_bs / l_ref, problem.time_bs / t_ref
  statuses = []

  if r in (0.0, 1.0):
    primary, secondary, ref = (l_bs, t_bs, l_ref) if r == 1 else (t_bs, l_bs, t_ref)
    choice, bound, status = programs.lexicographic(primary, secondary)
    status_name = "optimal" if status == 0 else "time limit"
    if not programs.exact:
      status_name = "budget row tightened"
    return _allocation(problem, choice, r, budget_bits, status_name, max(bound, 0.0) * ref, programs.count)

  # 0 < r < 1: dichotomic search over the supported Pareto points of (L, T), best bound first.
  left, lb_l, status_l = programs.lexicographic(l_bs, t_bs)
  right, lb_t, status_t = programs.lexicographic(t_bs, l_bs)
  statuses += [status_l, status_t]
  f_scale = objective(l_ref, t_ref, r)
  point = lambda choice: (_value(l_bs, choice), _value(t_bs, choice))
  found = {left: point(left), right: point(right)}
  best = min(found, key=lambda c: (objective(*found[c], r), found[c][1], found[c][0]))
  line_l, line_t = (1.0, 0.0, max(lb_l, 0.0)), (0.0, 1.0, max(lb_t, 0.0))
  inequalities = [line_l, line_t]

  def region_bound(p, q, line_p, line_q):
    """Lower bound on f over where vertices between p and q can lie: below pq, above both lines."""
    (pl, pt), (ql, qt) = found[p], found[q]
    a, b = pt - qt, ql - pl
    return _min_over_region([line_p, line_q, (-a, -b, -(a * pl + b * pt)), (1.0, 0.0, pl), (-1.0, 0.0, -ql)], r)

  heap = [(region_bound(left, right, line_l, line_t), 0, left, right, line_l, line_t)]
  pushed = 1
  while heap and programs.count < _MAX_PROGRAMS:
    bound_pq, _, p, q, line_p, line_q = heapq.heappop(heap)
    if bound_pq >= objective(*found[best], r) * (1 - _PRUNE_TOLERANCE):
      heap.clear()  # Every remaining region is bounded at least as high: none can hold a better point.
      break
    (pl, pt), (ql, qt) = found[p], found[q]
    a, b = pt - qt, ql - pl
    if a <= _SPLIT_TOLERANCE or b <= _SPLIT_TOLERANCE:
      continue  # The points coincide in one coordinate: no edge with positive weights between them.
    choice, bound, status = programs.argmin(a * l_bs + b * t_bs)
    statuses.append(status)
    if choice is None:
      continue  # Timed out empty-handed: the region stays bounded by line_p and line_q only.
    line = (a, b, bound)
    inequalities.append(line)
    value = a * pl + b * pt
    new = point(choice)
    if value - (a * new[0] + b * new[1]) > _SPLIT_TOLERANCE * max(value, 1.0) and choice not in found:
      found[choice] = new
      if (objective(*new, r), new[1], new[0]) < (objective(*found[best], r), found[best][1], found[best][0]):
        best = choice
      for segment in ((p, choice, line_p, line), (choice, q, line, line_q)):
        heapq.heappush(heap, (region_bound(*segment), pushed, *segment))
        pushed += 1
  status_name = "search limit" if heap else "optimal" if all(s == 0 for s in statuses) else "time limit"
  if not programs.exact:
    status_name = "budget row tightened"
  lower = _min_over_region(inequalities, r) * f_scale
  return _allocation(problem, best, r, budget_bits, status_name, lower, programs.count)


def allocate(
    blocks: Sequence[LinearBlock],
    menu: Sequence[QuantScheme | str],
    sensitivities: Mapping[tuple[int, str, str], float],
    cost_model: CostModel,
    *,
    avg_bits: float,
    r: float,
    time_limit_s: float | None = 60.0,
) -> Allocation:
  """One layer's optimal allocation: `allocation_problem` then `solve`."""
  return solve(allocation_problem(blocks, menu, sensitivities, cost_model), avg_bits=avg_bits, r=r,
               time_limit_s=time_limit_s)


def uniform_allocation(problem: AllocationProblem, scheme: QuantScheme | str, *, r: float) -> Allocation:
  """Every block in `scheme` (a baseline): its L, T and objective; budget = its own bits."""
  scheme = parse_scheme(scheme)
  r = _check_r(r)
  if scheme not in problem.menu:
    raise ValueError(f"scheme {scheme.name} is not in the menu {[s.name for s in problem.menu]}")
  choice = (problem.menu.index(scheme),) * len(problem.blocks)
  budget = Fraction(bits_per_weight(scheme)) * int(problem.sizes.sum())
  allocation = _allocation(problem, choice, r, budget, "uniform", math.inf, 0)
  return dataclasses.replace(allocation, gap=math.nan, lower_bound=math.nan)


def brute_force_allocate(problem: AllocationProblem, *, avg_bits: float, r: float) -> Allocation:
  """The optimum by trying every assignment (tiny instances only: at most ~2e6 of them).

  Ties in the objective go to the smaller T, then the smaller L.
  """
  r = _check_r(r)
  budget_bits = _budget(problem, avg_bits)
  num_blocks, num_schemes = problem.loss_bs.shape
  if num_schemes**num_blocks > BRUTE_FORCE_LIMIT:
    raise ValueError(f"brute force over {num_schemes}^{num_blocks} assignments is too many "
                     f"(limit {BRUTE_FORCE_LIMIT})")
  # Every assignment as a row of scheme indices; bits in exact integer units (quarter bits * size).
  grids = np.meshgrid(*[np.arange(num_schemes)] * num_blocks, indexing="ij")
  choices = np.stack(grids, -1).reshape(-1, num_blocks)
  blocks = np.arange(num_blocks)
  quarter_bits = np.asarray([int(b * 4) for b in problem.bits], np.int64)
  used = (quarter_bits[choices] * problem.sizes[None, :]).sum(axis=1)
  choices = choices[used <= math.floor(budget_bits * 4)]
  loss = problem.loss_bs[blocks, choices].sum(axis=1)
  time_s = problem.time_bs[blocks, choices].sum(axis=1)
  with np.errstate(divide="ignore"):
    values = loss if r == 1 else time_s if r == 0 else np.where(
        (loss > 0) & (time_s > 0), np.exp(r * np.log(loss) + (1 - r) * np.log(time_s)), 0.0)
  best = np.lexsort((loss, time_s, values))[0]
  choice = tuple(int(i) for i in choices[best])
  return _allocation(problem, choice, r, budget_bits, "optimal", objective(_value(problem.loss_bs, choice),
                                                                          _value(problem.time_bs, choice), r), 0)
