"""The dense and factor paths: maximum diversification without CVXPY.

For per-asset bounds, a budget and linear constraints (:func:`dense_eligible`: a dense
covariance, the risk alone in the denominator, no other constraint family) the homogenised
program of :func:`._formulation._formulate` is the small QP (rows below)::

    minimise  y' Sigma y   subject to   a'y = 1,  lower t <= y <= upper t,  t = 1'y / budget

with ``w = y / t`` and ``a = mu - fees - r_f / budget`` (``r_f t`` folds into ``a``). In the
default family (lower 0, no cap) its optimality conditions on a free set ``F`` (``y_j = 0``
outside) are ``2 Sigma_FF y_F = lam a_F``, ``a_F'y_F = 1`` plus the signs ``y_F >= 0`` and
``2 (Sigma y)_j - lam a_j >= 0`` off ``F``: a linear complementarity problem; caps add an upper
state per asset and a rank-two coupling through ``t`` (:func:`_free_solution`).
:func:`_block_pivoting` solves it by block principal pivoting (Judice and Pires; the
safeguard of Kim and Park: a bounded number of block exchanges that do not reduce the number
of sign violations, then single exchanges of the largest index), started from the answer for
a low-rank surrogate, with one dense Cholesky of ``Sigma_FF`` re-used through Schur
complements while the free set moves little (:class:`_FreeSetSolver`). Transaction costs
(``a'y - c'|y - w_prev t| = 1``) add a kink per asset, a third state (held at the previous
weight) for :func:`_pivoting_with_costs`. Linear constraints (groups, ``linear_constraints``:
:class:`_Rows`) are rows ``E y <= e t`` that both pivotings hold active (with equality) or
not, exchanged beside the assets.

A factor covariance ``Sigma = F F' + diag(d**2)`` (``FactorCovariance``, every ``d > 0``) takes
the same pivoting with Woodbury solves (:class:`LowRankCovariance`): ``|F| k^2`` an exchange,
never an n x n matrix, one stage since the surrogate is then exact (the ``"factor"`` path).

The solves with ``Sigma_FF`` are :mod:`._free_set`'s. The answer is certified by
:func:`._certificate.relative_gap`, which reads only ``Sigma``, ``a``, the constraints and the
point: the Frank-Wolfe (linearised) lower bound of the convex QP for long-only bounds, the
Lagrangian dual bound with short positions, costs or linear constraints, turned into a bound
on the relative loss of diversification ratio. A point whose bound exceeds ``GAP_TOLERANCE``, or
any numerical trouble, gives no answer and the fit takes today's path (screening or the full
CVXPY program) with the same constraint families, messages and diagnosis. ``solve_`` (a
:class:`SolveReport`) says which path answered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._threads import blas_threads
from ._certificate import (  # noqa: F401 (_dual_bound ... _fractional_minimum: tests read them here)
    GAP_TOLERANCE,
    _closed_form_minimum,
    _Costs,
    _dual_bound,
    _fractional_minimum,
    _knapsack,
    _numerator,
    _Rows,
    _rows,
    relative_gap,
)
from ._diagnosis import _violations
from ._feasibility import _Box, _box
from ._free_set import (
    LowRankCovariance,
    _exact_system,
    _FreeSetSolver,
    _IterativeSolver,
    _LowRankSolver,
)
from ._screening import _SURROGATE_RANK, _low_rank_plus_diagonal
from ._spec import _CLARABEL_DEFAULTS, _Handles, _Spec

__all__ = ["GAP_TOLERANCE", "SolveReport", "dense_eligible", "relative_gap"]

# Block exchanges allowed without fewer sign violations before single exchanges (Kim-Park's p).
_BLOCK_TRIES = 3
_MAX_EXCHANGES = 200
# With linear constraints, the violators tried (largest index first) for a single exchange
# that leaves a solution.
_SINGLE_TRIES = 10
# The exchange of a pivoting with two or more rows at which their feasibility LP runs
# (_check_rows); bench_maxdiv_rows's feasible fits: see docs/performance.md.
_ROWS_CHECK_AFTER = 30
# The conjugate-gradient stage of _pivot_dense: from this many free assets, at most this many
# exchanges (its solves: _free_set._IterativeSolver). Measured (one BLAS thread, CPU, dense
# optima at T = 4000): n = 2000 pivoting 0.31 s -> 0.23 s, one factorisation of 1688 assets
# instead of 2000 and 1660; n = 1000 0.052 s -> 0.044 s.
_ITERATIVE_FROM = 400
_ITERATIVE_EXCHANGES = 2
# With transaction costs, when the pivoting from the cost-free optimum does not converge: the
# costs are reached in these fractions, each pivoting from the state of the last.
_COST_STEPS = tuple(k / 10 for k in range(1, 11))


@dataclass(frozen=True)
class SolveReport:
    """Which path solved the fit and how it was certified (``MaximumDiversification.solve_``).

    Attributes
    ----------
    path : {"dense", "factor", "screened", "cvxpy"}
        ``"dense"``: the active-set solver of :mod:`._dense` on a dense covariance;
        ``"factor"``: the same solver on a factor covariance (:class:`LowRankCovariance`, no
        n x n matrix); ``"screened"``: CVXPY on a working set (:mod:`._screening`);
        ``"cvxpy"``: the full CVXPY program.
    relative_gap : float or None
        Dense and factor paths: a certified bound on ``(D* - D(w)) / D(w)``, the relative loss of
        diversification ratio against the optimum (before polishing); above
        :data:`GAP_TOLERANCE` only when the point was kept because CVXPY's answer was lower
        (``note`` says by how much). None on the CVXPY paths, certified by the solver's own
        gap tolerances.
    exchanges : int
        Pivoting exchanges of the dense solver (0 on the other paths).
    note : str
        Why the dense path did not answer, when it was tried and the fit fell back.
    warm_start : bool
        Dense path: the pivoting started from the previous fit's weights
        (``warm_start=True``) and ended there, without the cold start's stages.
    """

    path: str
    relative_gap: float | None = None
    exchanges: int = 0
    note: str = ""
    warm_start: bool = False


FREE, LOW, UP, HOLD = 0, 1, 2, 3  # an asset's state: free, on its lower/upper bound, or (with
# transaction costs) held at its previous weight, the kink of its cost


def dense_eligible(spec: _Spec, save_problem: bool = False) -> bool:
    """Whether the dense path is tried: one solve of the QP form (a dense covariance, or a
    factor covariance for the factor path; no l1, l2 or add_objective), bounds (a finite
    ``min_weights`` for every asset, negative for short positions, ``max_weights`` any,
    ``None`` or ``inf`` for none), ``budget > 0``, and no other constraint family (no
    min/max_budget, max_long/short, tracking error, min_return or add_constraints; a budget
    range comes here through :func:`at_min_budget`). Linear
    constraints (groups, ``linear_constraints``, ``left_inequality``) are rows the pivoting
    holds active or not (:class:`_Rows`); transaction costs are a kink per asset
    (:class:`_Costs`).
    ``max_turnover`` is a box around ``previous_weights`` and folds into the bounds
    (:func:`_box`); fees and the risk-free rate are allowed (they only change ``a``). A
    request addressed to CVXPY keeps today's path: ``save_problem=True`` (the program) or a
    ``solver``/``solver_params`` other than the defaults."""
    if save_problem or spec.min_return_is_array:
        return False
    factor_qp = (spec.risk_form == "soc-factor" and spec.l1 == 0 and spec.l2 == 0
                 and spec.add_objective is None)
    if spec.risk_form != "qp" and not factor_qp:
        return False
    if spec.solver != "CLARABEL" or spec.solver_params != _CLARABEL_DEFAULTS:
        return False
    if spec.budget is None or spec.budget <= 0:
        return False
    if spec.lower is None or not np.all(np.isfinite(spec.lower)):
        return False
    others = (spec.min_budget, spec.max_budget, spec.max_long, spec.max_short,
              spec.tracking_error, spec.min_returns, spec.add_constraints, spec.add_objective)
    return all(v is None for v in others)


def at_min_budget(spec: _Spec) -> _Spec | None:
    """The same problem with ``budget = min_budget`` when a budget range can be solved there,
    else None.

    The ratio is unchanged when the weights are scaled by a positive factor if the numerator
    and the denominator are both 1-homogeneous (no ``r_f``, no ``l2``, transaction costs only
    around zero previous weights). If moreover every constraint still holds when the weights
    shrink (0 inside every bound and turnover box, ``A_ineq w <= b`` with ``b >= 0``, equality
    rows with ``b = 0``), any point of the range ``min_budget > 0 <= sum(w) <= max_budget``
    shrinks to ``sum(w) = min_budget`` with the same ratio, and every point there is in the
    range: the two problems have the same optimal ratio, and the dense path can answer the
    fixed budget one."""
    if spec.budget is not None or spec.min_budget is None or not spec.min_budget > 0:
        return None
    if spec.l2 or not _shrinks(spec):
        return None
    return replace(spec, budget=spec.min_budget, min_budget=None, max_budget=None)


def _shrinks(spec: _Spec) -> bool:
    """Whether shrinking the weights toward 0 keeps every constraint but the budget's and the
    net numerator's homogeneity: no ``r_f`` or ``min_return``, costs and turnover only around
    zero previous weights, 0 inside every bound, rows ``A w <= b`` with ``b >= 0`` and
    equalities with ``b = 0``, no tracking error or ``add_constraints``."""
    if spec.risk_free_rate != 0 or spec.min_returns is not None:
        return False
    if spec.tracking_error is not None or spec.add_constraints is not None:
        return False
    if (spec.costs is not None or spec.turnover is not None) and np.any(spec.previous != 0):
        return False
    if spec.lower is None or np.any(spec.lower > 0):
        return False
    if spec.upper is not None and np.any(spec.upper < 0):
        return False
    return not (np.any(spec.b_ineq < 0) or np.any(spec.b_eq != 0))


def unattained(spec: _Spec) -> str | None:
    """Why no portfolio attains the maximum, or None: with ``l2_coef`` and nothing that keeps
    the weights from shrinking toward 0 (no ``budget``, no ``min_budget > 0``, :func:`_shrinks`),
    ``(N(c w)) / (c sigma_p(w) + c l1 |w|_1 + c^2 l2 |w|^2)`` rises as ``c`` falls to 0, so
    the solver stops at an arbitrary point along the way."""
    if not spec.l2 or spec.budget is not None or spec.add_objective is not None:
        return None
    if spec.min_budget is not None and spec.min_budget > 0:
        return None
    if not _shrinks(spec):
        return None
    return ("l2_coef with budget=None and no min_budget > 0: every constraint still holds as "
            "the weights shrink toward 0, and the penalised ratio rises as they do, so no "
            "portfolio attains the maximum. Set budget or min_budget > 0, or l2_coef=0")


def _coefficients(spec: _Spec) -> np.ndarray:
    """``a`` of the normalisation ``a'y = 1`` in this family."""
    a = spec.mu - (spec.fees if spec.fees is not None else 0.0)
    return a - spec.risk_free_rate / spec.budget


def _free_solution(a: np.ndarray, system, box: _Box, state: np.ndarray,
                   previous: np.ndarray | None = None, rows: _Rows | None = None,
                   active: np.ndarray | None = None):
    """``(y, t, lam, alpha, c, bound, b)`` for the equality-constrained problem of ``state``
    (``alpha = a_B'b``; the rest as below), or None when it is degenerate (no free asset,
    ``c = 0``, ``t <= 0``) or not solvable.

    With bound values ``b`` on the bound set ``B`` and ``c = budget - sum b``, the budget reads
    ``1'y_F = c t`` and ``y_B = b t``, so ``y = M y_F`` and the problem is ``min y_F'Q y_F``
    s.t. ``a~'y_F = 1`` with ``Q = Sigma_FF + (v 1' + 1 v') / c + beta 1 1' / c^2`` (``v =
    Sigma_FB b``, ``beta = b'Sigma_BB b``) and ``a~ = a_F + (a_B'b / c) 1``; Woodbury reduces
    ``Q x = a~`` to three solves with ``Sigma_FF``. With all bound values 0 (long-only) ``Q =
    Sigma_FF``. ``lam = 2 / a~'x`` is the multiplier of ``a'y = 1``; the common value of
    ``(2 Sigma y - lam a)_F`` is ``gamma = (lam alpha - b'(2 Sigma y)_B) / c`` (0 without
    nonzero bound values), computed by the caller. With transaction costs an asset ``HOLD``
    at its previous weight is bound there (``previous``).

    Active linear constraints (``rows``, those of ``active``) hold with equality: ``E y = e t``
    reads ``H y_F = 0`` with ``H = E_F - d 1' / c``, ``d = e - E_B b``; then ``x = Q^-1 a~ -
    Q^-1 H' rho`` with ``(H Q^-1 H') rho = H Q^-1 a~`` (None when ``H x = 0`` cannot be met,
    e.g. an active row on bound assets only)."""
    n = a.size
    free = np.flatnonzero(state == FREE)
    bound = np.flatnonzero(state != FREE)
    if free.size == 0:
        return None
    b = np.where(state[bound] == LOW, box.lower[bound], box.upper[bound])
    if previous is not None:  # held at the previous weight (transaction costs' kink)
        b = np.where(state[bound] == HOLD, previous[bound], b)
    c = box.budget - float(b.sum())
    if not abs(c) > 1e-12 * box.budget:
        return None
    alpha = float(a[bound] @ b)
    a_tilde = a[free] + alpha / c
    if rows is not None and active.any():
        x = _constrained_direction(system, free, bound, b, c, a_tilde, rows, active)
        if x is None:
            return None
    else:
        x = _q_solve(system, free, bound, b, c, a_tilde[:, None])
        if x is None:
            return None
        x = x[:, 0]
    denominator = float(a_tilde @ x)
    if not denominator > 0:
        return None
    y_free = x / denominator
    t = float(y_free.sum()) / c
    if not (t > 0 or _free_of_t(box, previous, rows)):
        return None
    y = np.zeros(n)
    y[free] = y_free
    y[bound] = b * t
    return y, t, 2.0 / denominator, alpha, c, bound, b


def _free_of_t(box: _Box, previous: np.ndarray | None, rows: _Rows | None) -> bool:
    """Whether no condition of the pivoting depends on ``t``: bounds 0 and ``inf``, no rows
    and no costs (the default family). There ``y`` is the same whatever ``t``, the pivoting is
    Judice and Pires's for the complementarity problem ``Sigma x - a >= 0, x >= 0``, and a
    state with ``t <= 0`` (free weights that sum below 0) is a state like any other, whose
    negative weights go to their bound: finite with a positive definite ``Sigma`` only if
    every state is solvable. Rejecting it left a long-only problem of 8 assets with
    volatilities over 2.8 decades (bench_maxdiv_random's 157: ``1'Sigma^-1 a < 0``) without
    an answer from the first state on."""
    return (previous is None and rows is None and not np.any(box.lower)
            and bool(np.all(np.isinf(box.upper))))


def _q_solve(system, free: np.ndarray, bound: np.ndarray, b: np.ndarray, c: float,
             rhs: np.ndarray) -> np.ndarray | None:
    """``Q^-1 rhs`` (``rhs``: (|F|, m)) for the ``Q`` of :func:`_free_solution`: three (here
    ``m + 2``) column solves with ``Sigma_FF`` and a 2 x 2 system (Woodbury), or one solve when
    every bound value is 0."""
    if not np.any(b != 0):
        return system.solve(free, rhs)
    y_bound = np.zeros(system.a.size)
    y_bound[bound] = b
    v = system.product(y_bound)
    beta = float(b @ v[bound])
    v_free = v[free]
    m = rhs.shape[1]
    cols = system.solve(free, np.column_stack([rhs, v_free, np.ones(free.size)]))
    if cols is None:
        return None
    x0, xv, x1 = cols[:, :m], cols[:, m], cols[:, m + 1]
    inner = np.array([[-beta + v_free @ xv, c + v_free @ x1], [c + xv.sum(), x1.sum()]])
    try:
        k = np.linalg.solve(inner, np.vstack([v_free @ x0, x0.sum(axis=0)]))
    except np.linalg.LinAlgError:
        return None
    return x0 - np.outer(xv, k[0]) - np.outer(x1, k[1])


def _held_rows(rows: _Rows, active, free, bound, b, c) -> tuple[np.ndarray, np.ndarray]:
    """``(d, H)`` of the active rows on a state (:func:`_free_solution`): ``d = e - E_B b``,
    ``H = E_F - d 1' / c``."""
    e_rows = rows.matrix[active]
    d = rows.rhs[active] - e_rows[:, bound] @ b
    return d, e_rows[:, free] - np.outer(d, np.ones(free.size)) / c


def _constrained_direction(system, free, bound, b, c, a_tilde, rows: _Rows,
                           active: np.ndarray) -> np.ndarray | None:
    """``x`` of :func:`_free_solution` with the active rows held (``H x = 0``), or None
    (also when the rows force ``t = 0``: :func:`_forces_zero_budget`)."""
    h = _held_rows(rows, active, free, bound, b, c)[1]
    if _forces_zero_budget(h, rows, active, free.size):
        return None
    z = _q_solve(system, free, bound, b, c, np.column_stack([a_tilde, h.T]))
    if z is None or not np.all(np.isfinite(z)):
        return None
    za, zh = z[:, 0], z[:, 1:]
    rho, *_ = np.linalg.lstsq(h @ zh, h @ za, rcond=None)
    x = za - zh @ rho
    # dependent rows are fine (least squares); rows that cannot hold on F are not
    if np.max(np.abs(h @ x), initial=0.0) > 1e-9 * float(np.abs(h).max() * np.abs(x).max()):
        return None
    return x


# An active row whose entries on the free set (relative to its data) are all below this is
# zero there up to round-off (the scale of _constrained_direction's check of H x = 0) ...
_ROW_ZERO = 1e-9
# ... and 1 lies in the active rows' span on F when its part outside is below this (relative).
_IN_SPAN = 1e-8


def _forces_zero_budget(h: np.ndarray, rows: _Rows, active: np.ndarray, n_free: int) -> bool:
    """Whether the held rows ``H x = 0`` of a state imply ``1'x = 0``, i.e. ``t = 0``: ``1``
    lies in the row space of ``H``. E.g. an equality ``G3 == 0.15`` whose assets are all bound
    (two at 0, one at its cap 0.2) reads ``0.2 t = 0.15 t``; two groups that cover every
    asset with right-hand sides that do not add up to the budget likewise.

    Such a state has no solution, but the solve does not say so: the ``t`` it computes is
    round-off, ~1e-15 of ``1'|y|``, whose sign differs between BLAS builds (on draw 154 of
    bench_maxdiv_rows, 20 assets: ``t = -5.1e-13`` with NumPy 2.4's OpenBLAS, ``+5.9e-13``
    with NumPy 2.0's, which the pivoting took as a point, ``w = y / t`` ~1e13, and lost its
    way). The test reads the rows and bound values only: each row of ``H`` divided by the
    scale of its data, singular values below ``_ROW_ZERO`` (per entry) dropped as round-off."""
    if n_free == 0:
        return False
    matrix = rows.matrix[active]
    scale = np.maximum(np.abs(matrix).max(axis=1, initial=0.0), np.abs(rows.rhs[active]))
    scaled = h[scale > 0] / scale[scale > 0, None]
    if scaled.shape[0] == 0:
        return False
    _, singular, basis = np.linalg.svd(scaled, full_matrices=False)
    basis = basis[singular > _ROW_ZERO * np.sqrt(n_free)]
    ones = np.ones(n_free)
    outside = ones - basis.T @ (basis @ ones)
    return bool(np.linalg.norm(outside) <= _IN_SPAN * np.sqrt(n_free))


def _row_multipliers(a, g, lam, gamma, c, free, bound, b, rows: _Rows, active):
    """``(pi, gamma)``: the active rows' multipliers (0 on the others), fitted on the free
    assets where ``(2 Sigma y - lam a)_F = gamma0 1 - H' pi``, and the budget's multiplier
    ``gamma = gamma0 + d'pi / c`` (``gamma0``: the caller's, without rows)."""
    pi = np.zeros(rows.rhs.size)
    if not active.any():
        return pi, gamma
    d, h = _held_rows(rows, active, free, bound, b, c)
    fitted, *_ = np.linalg.lstsq(-h.T, (g - lam * a)[free] - gamma, rcond=None)
    pi[active] = fitted
    return pi, gamma + float(d @ fitted) / c


def _row_breaches(rows: _Rows, active: np.ndarray, y: np.ndarray, t: float, pi: np.ndarray,
                  m_tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(broken, loose, excess)``: the inactive inequalities ``y`` breaks, the active ones
    whose multiplier is negative, and each row's slack relative to its round-off scale."""
    slack, scale = rows.slack(y, t)
    broken = ~active & (slack > 1e-12 * scale)
    loose = active & ~rows.equality & (pi < -m_tol)
    return broken, loose, np.divide(slack, scale, out=np.zeros_like(slack), where=scale > 0)


def _row_violators(rows: _Rows, active: np.ndarray, y: np.ndarray, t: float, pi: np.ndarray,
                   m_tol: float, n: int) -> np.ndarray:
    """The rows to exchange (:func:`_row_breaches`), indexed from ``n``."""
    broken, loose, _ = _row_breaches(rows, active, y, t, pi, m_tol)
    return n + np.flatnonzero(broken | loose)


def _keep_entered(rows: _Rows, active: np.ndarray, entered: np.ndarray) -> bool:
    """After an exchange that leaves no solution: only the equalities and the rows that
    exchange made active stay active (in place); False when that changes nothing."""
    keep = rows.equality.copy()
    keep[entered] = True
    if not np.any(active & ~keep):
        return False
    active[:] = keep
    return True


def _safeguard(violators: np.ndarray, best: int, tries: int) -> tuple[np.ndarray, int, int]:
    """Kim and Park's safeguard of block pivoting: ``(violators to exchange, best, tries)``.
    Every violator while their number falls (or within ``_BLOCK_TRIES`` exchanges that do
    not lower it); then the backup rule, one exchange, the largest index."""
    if violators.size < best:
        return violators, violators.size, _BLOCK_TRIES
    if tries > 0:
        return violators, best, tries - 1
    return violators[-1:], best, tries


def _block_pivoting(a: np.ndarray, system, state: np.ndarray, box: _Box,
                    max_exchanges: int = _MAX_EXCHANGES, rows: _Rows | None = None,
                    active: np.ndarray | None = None, exchange_rows: bool = True
                    ) -> tuple[np.ndarray, int] | None:
    """``(y, exchanges)`` solving the optimality conditions of the module docstring from
    ``state`` (changed in place), or None (no factorable free set, a degenerate one, or no
    convergence within ``max_exchanges``). ``system`` gives ``solve(F, rhs)`` (``Sigma_FF^{-1}
    rhs``, default ``rhs = a_F``) and ``product(y)`` (``Sigma y``).

    Block principal pivoting: every sign violation is exchanged at once (a free weight outside
    ``[lower t, upper t]`` goes to that bound; a bound weight whose multiplier is negative is
    freed), and after ``_BLOCK_TRIES`` exchanges that do not reduce their number, only the
    largest index is. Without upper bounds and with lower bounds 0 this is, up to the positive
    scale, the method for the complementarity problem ``Sigma x - a >= 0, x >= 0, x'(Sigma x -
    a) = 0``, finite for a positive definite ``Sigma`` with that backup rule.

    Linear constraints (``rows``; ``active``, changed in place, says which hold with equality;
    equalities always do) are exchanged with the assets, indexed after them: an inactive
    inequality that the point breaks becomes active, an active one whose multiplier is
    negative inactive. Rows can depend on each other through the budget (two groups that
    cover every asset: ``G1 <= 0.2`` with ``G0 >= 0.6`` active forces ``G0 = 0.8``), or on
    the bound assets (a group whose last free asset reaches a bound), so that an exchange
    leaves no solution with the rows active before it; the inequalities the exchange did not
    make active then leave (they come back if the point breaks them). The problem is no
    P-matrix one and finiteness is not guaranteed; ``max_exchanges`` bounds it, and every
    answer is certified by the caller."""
    n = a.size
    if rows is not None:
        active |= rows.equality
    exchange_rows = rows is not None and exchange_rows  # else the active rows stay as given
    best, tries = n + (0 if rows is None else rows.rhs.size) + 1, _BLOCK_TRIES
    undo = None  # the last exchange (a block, or any with rows): what it moved and why
    entered = np.zeros(0, dtype=int)  # rows the last exchange made active
    ahead = None  # the state's solution when the last exchange already computed it
    seen = set()  # with rows: the states solved so far, which a fallback exchange avoids
    for exchange in range(max_exchanges):
        _check_rows(rows, box, exchange)
        solved = ahead or _free_solution(a, system, box, state, rows=rows, active=active)
        ahead = None
        if solved is None and undo is not None:
            # An exchange can overshoot into a degenerate state (e.g. caps bound for the whole
            # budget): take it back and make only its backup-rule exchange, the largest index
            # (with rows: the largest whose exchange, alone or paired, leaves a solution), then
            # go on with single exchanges.
            moved, before, after, candidates, below, above, r, pi, y, t = undo
            undo, tries = None, 0
            found = None
            if exchange_rows:
                _set_states(state, active, moved, before)
                found = _exchange_leaving_solution(a, system, box, state, rows, active,
                                                   candidates, below, above, r, pi, y, t, seen)
            if found is not None:
                index, target, solved = found
                entered = index[(index >= n) & (target == 1)] - n
            else:  # the backup rule's exchange as it is (the rows' fallback below may save it)
                _set_states(state, active, moved, before)
                _set_states(state, active, moved[-1:], after[-1:])
                entered = entered[entered == moved[-1] - n]
                solved = _free_solution(a, system, box, state, rows=rows, active=active)
        if solved is None and exchange_rows and _keep_entered(rows, active, entered):
            solved = _free_solution(a, system, box, state, rows=rows, active=active)
        if solved is None:
            return None
        y, t = solved[:2]
        if exchange_rows:
            seen.add(_key(state, active))
        r, pi, y_tol, m_tol = _conditions(a, system, solved, state, rows, active)
        is_free = state == FREE
        below = is_free & (y < box.lower * t - y_tol)
        # (no cap: none to break, also where t <= 0 makes inf * t = -inf; _free_of_t)
        above = is_free & np.isfinite(box.upper) & (y > box.upper * t + y_tol)
        wrong = ((state == LOW) & (r < -m_tol)) | ((state == UP) & (r > m_tol))
        violators = np.flatnonzero(below | above | wrong)
        if exchange_rows:
            violators = np.concatenate([violators,
                                        _row_violators(rows, active, y, t, pi, m_tol, n)])
        if violators.size == 0:
            return y, exchange
        candidates = violators
        violators, best, tries = _safeguard(violators, best, tries)
        if exchange_rows and violators.size == 1 < candidates.size:
            found = _exchange_leaving_solution(a, system, box, state, rows, active, candidates,
                                               below, above, r, pi, y, t, seen)
            if found is not None:
                index, target, ahead = found
                undo = None
                entered = index[(index >= n) & (target == 1)] - n
                continue
        target = _targets(violators, below, above, active)
        undo = None
        if violators.size > 1 or exchange_rows:
            undo = (violators, _get_states(state, active, violators), target, candidates, below,
                    above, r, pi, y, t)
        if exchange_rows:
            entered = violators[violators >= n][target[violators >= n] == 1] - n
        _set_states(state, active, violators, target)
    return None


def _exchange_leaving_solution(a, system, box: _Box, state: np.ndarray, rows: _Rows,
                               active: np.ndarray, candidates: np.ndarray, below: np.ndarray,
                               above: np.ndarray, r: np.ndarray, pi: np.ndarray, y: np.ndarray,
                               t: float, seen: set):
    """``(index, target, solved)``: the exchange of a pivoting with rows that leaves a solution
    in a state not ``seen`` before (states changed in place), or None (states unchanged).

    A single exchange with rows can leave no solution (:func:`_block_pivoting`): among the
    last ``_SINGLE_TRIES`` of ``candidates`` (the violators, sorted), largest index first, the
    first whose exchange alone leaves one, or else with a partner (``_SINGLE_TRIES`` such
    pairs at most), as in the pivoting of a complementarity problem whose diagonal pivot is
    zero, for the two ways a single one leaves the active rows unable to hold:

    * a row made active with another active inequality made inactive, the one with the
      smallest multiplier first: rows tied through the budget (three groups that cover every
      asset, ``G1 >= 0.59``, ``G3 >= 0.39``, ``G2 <= 0.13``, cannot all hold with equality);
    * an asset sent to a bound (from ``y``, ``t``) with a bound asset freed whose move off its
      bound offsets the change of an active row they share, the one whose sign condition
      holds by the least margin (``|r|``) first: an equality whose last free asset goes to its
      bound (``G3 == 0.15`` with its other assets at 0 and at the cap 0.2).

    A state ``seen`` before is never returned to by these exchanges (the rows' exchanges
    can cycle)."""
    n = state.size
    loose = np.flatnonzero(active & ~rows.equality)
    matrix = rows.matrix[active]
    direction = np.where(state == LOW, 1.0, np.where(state == UP, -1.0, 0.0))
    pairs = 0
    for j in candidates[::-1][:_SINGLE_TRIES]:
        found = _try_exchange(a, system, box, state, rows, active, np.array([j]), below, above,
                              seen)
        if found is not None:
            return found
        for k in _partners(j, n, state, box, active, loose, matrix, direction, below, above,
                           r, pi, y, t):
            if pairs == _SINGLE_TRIES:
                break
            pairs += 1
            found = _try_exchange(a, system, box, state, rows, active, np.array([j, k]), below,
                                  above, seen)
            if found is not None:
                return found
    return None


def _partners(j, n, state, box, active, loose, matrix, direction, below, above, r, pi, y, t
              ) -> np.ndarray:
    """The indices to exchange with ``j`` when ``j`` alone leaves no solution (see
    :func:`_exchange_leaving_solution`), in the order tried."""
    if j >= n:
        if active[j - n]:
            return np.zeros(0, dtype=int)
        return n + loose[np.argsort(pi[loose], kind="stable")]
    if not (below[j] or above[j]):
        return np.zeros(0, dtype=int)
    # the change of each active row as y_j goes to its bound, and the bound assets whose
    # move off their bound (up from the lower, down from the upper) offsets it in a row
    step = (box.lower[j] if below[j] else box.upper[j]) * t - y[j]
    change = matrix[:, j] * step
    offsets = np.any(np.sign(matrix * direction) * np.sign(change)[:, None] < 0, axis=0)
    partners = np.flatnonzero(offsets & (state != FREE))
    return partners[np.argsort(np.abs(r[partners]), kind="stable")]


def _try_exchange(a, system, box, state, rows, active, index, below, above, seen):
    """``(index, target, solved)`` after exchanging ``index`` (:func:`_targets`) when the new
    state is not in ``seen`` and has a solution; else the states are put back and None."""
    before = _get_states(state, active, index)
    target = _targets(index, below, above, active)
    _set_states(state, active, index, target)
    if _key(state, active) in seen:
        _set_states(state, active, index, before)
        return None
    solved = _free_solution(a, system, box, state, rows=rows, active=active)
    if solved is None:
        _set_states(state, active, index, before)
        return None
    return index, target, solved


def _key(state: np.ndarray, active: np.ndarray | None) -> bytes:
    """A pivoting's state (assets and rows) as a set key."""
    return state.tobytes() + (b"" if active is None else active.tobytes())


def _conditions(a, system, solved, state, rows: _Rows | None, active):
    """The optimality conditions at a state's solution ``solved`` (:func:`_free_solution`):
    ``(r, pi, y_tol, m_tol)``, ``r`` the multiplier of a lower bound (minus that of an upper
    one) on every asset, ``pi`` the active rows' multipliers (None without rows), and the
    round-off thresholds of the weights and the multipliers, relative to the sizes of the
    compared quantities."""
    y, t, lam, alpha, c, bound, b = solved
    g = 2.0 * system.product(y)
    gamma = (lam * alpha - float(b @ g[bound])) / c
    pi = None
    if rows is not None:
        pi, gamma = _row_multipliers(a, g, lam, gamma, c, np.flatnonzero(state == FREE), bound,
                                     b, rows, active)
    r = g - lam * a - gamma
    if rows is not None:
        r = r + rows.matrix.T @ pi
    y_tol = 1e-12 * float(np.max(np.abs(y)))
    m_tol = 1e-11 * float(np.max(np.abs(g)) + abs(lam) * np.max(np.abs(a)) + abs(gamma))
    return r, pi, y_tol, m_tol


def _rows_one_at_a_time(a: np.ndarray, system, state: np.ndarray, box: _Box, rows: _Rows,
                        active: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(y, exchanges)`` where the joint pivoting of assets and rows gives no answer (it
    cycled, or reached a state with no solution): the assets' pivoting with the active rows
    held, then one row exchanged (the inactive inequality broken the most made active, or else
    the active one with the most negative multiplier inactive), until none is to be; None when
    an inner pivoting gives no answer or the rounds run out. ``state`` and ``active`` change
    in place."""
    total = 0
    begin = state.copy()
    for _ in range(4 * rows.rhs.size + 10):
        before = state.copy()
        solved = _block_pivoting(a, system, state, box, rows=rows, active=active,
                                 exchange_rows=False)
        if solved is None and not np.array_equal(before, begin):
            # the assets' last state may admit no solution with the new row: from the start
            state[:] = begin
            solved = _block_pivoting(a, system, state, box, rows=rows, active=active,
                                     exchange_rows=False)
        if solved is None:
            return None
        y, exchanges = solved
        total += exchanges + 1
        t = float(y.sum()) / box.budget
        point = _free_solution(a, system, box, state, rows=rows, active=active)
        if point is None:
            return None
        _, pi, _, m_tol = _conditions(a, system, point, state, rows, active)
        broken, loose, excess = _row_breaches(rows, active, y, t, pi, m_tol)
        if broken.any():
            active[np.argmax(np.where(broken, excess, -np.inf))] = True
        elif loose.any():
            active[np.argmin(np.where(loose, pi, np.inf))] = False
        else:
            return y, total
    return None


def _targets(index: np.ndarray, below: np.ndarray, above: np.ndarray,
             active: np.ndarray | None) -> np.ndarray:
    """The states the exchange of ``index`` gives (see :func:`_get_states`): a free asset
    below or above its bounds to that bound, a bound one free; a row's activity flipped."""
    n = below.size
    on_asset = index < n
    target = np.full(index.size, FREE, dtype=np.int8)
    assets = index[on_asset]
    target[on_asset] = np.select([below[assets], above[assets]], [LOW, UP], FREE)
    if active is not None:
        target[~on_asset] = ~active[index[~on_asset] - n]
    return target


def _get_states(state: np.ndarray, active: np.ndarray | None, index: np.ndarray) -> np.ndarray:
    """The states of ``index`` (assets below ``n = state.size``, rows from ``n``: 1 active)."""
    n = state.size
    out = np.empty(index.size, dtype=state.dtype)
    out[index < n] = state[index[index < n]]
    if active is not None:
        out[index >= n] = active[index[index >= n] - n]
    return out


def _set_states(state: np.ndarray, active: np.ndarray | None, index: np.ndarray,
                values: np.ndarray) -> None:
    """Set the states of ``index`` (see :func:`_get_states`) to ``values``, in place."""
    n = state.size
    state[index[index < n]] = values[index < n]
    if active is not None:
        active[index[index >= n] - n] = values[index >= n].astype(bool)


def _cost_coefficients(a: np.ndarray, state: np.ndarray, side: np.ndarray, box: _Box,
                       costs: _Costs) -> tuple[np.ndarray, float]:
    """``(a^, shift)``: on the piece of ``state`` (a free weight on ``side`` of its previous
    weight, +1 above, -1 below; a bound one on the side of its bound) the numerator is linear,
    ``a'y - sum c s (y - w_prev t) = a^'y`` with ``t = 1'y / budget`` and ``a^ = a - c s +
    shift``, ``shift = (c s)'w_prev / budget``."""
    w0, c = costs.previous, costs.rate
    s = np.where(state == FREE, side, 0.0)
    s = np.where(state == LOW, np.sign(box.lower - w0), s)
    s = np.where(state == UP, np.sign(np.where(np.isfinite(box.upper), box.upper, w0) - w0), s)
    shift = float((c * s) @ w0) / box.budget
    return a - c * s + shift, shift


def _pivoting_with_costs(a: np.ndarray, system, state: np.ndarray, side: np.ndarray,
                         box: _Box, costs: _Costs, max_exchanges: int = _MAX_EXCHANGES,
                         rows: _Rows | None = None, active: np.ndarray | None = None
                         ) -> tuple[np.ndarray, int] | None:
    """:func:`_block_pivoting` with transaction costs: each weight is free on one side of its
    previous weight, on a bound, or held at the previous weight (the kink). On each piece the
    problem is the cost-free one with ``a^`` (:func:`_cost_coefficients`) and the held weights
    bound at ``w_prev``; with ``r = 2 Sigma y - lam a - mu`` (``mu`` the budget's multiplier) a
    free weight has ``r = -lam c s``, and the exchanges are: a free weight past its bounds to
    the bound, past its previous weight to ``HOLD``; a held or bound weight whose move lowers
    the Lagrangian (``r + lam c s' < 0`` upwards, ``> 0`` downwards, ``s'`` the side it moves
    into) to free on that side. ``state`` and ``side`` change in place; linear constraints
    (``rows``, ``active``) are exchanged as in :func:`_block_pivoting`."""
    n = a.size
    c, w0 = costs.rate, costs.previous
    up_side = np.where(box.lower >= w0, 1.0, -1.0)  # leaving the lower bound upwards
    down_side = np.where(box.upper <= w0, -1.0, 1.0)  # leaving the upper bound downwards
    if rows is not None:
        active |= rows.equality
    best, tries = n + (0 if rows is None else rows.rhs.size) + 1, _BLOCK_TRIES
    entered = np.zeros(0, dtype=int)  # rows the last exchange made active
    for exchange in range(max_exchanges):
        _check_rows(rows, box, exchange)
        a_hat, shift = _cost_coefficients(a, state, side, box, costs)
        solved = _free_solution(a_hat, system, box, state, w0, rows=rows, active=active)
        if solved is None and rows is not None and _keep_entered(rows, active, entered):
            solved = _free_solution(a_hat, system, box, state, w0, rows=rows, active=active)
        if solved is None:
            return None
        y, t, lam, alpha, cc, bound, b = solved
        g = 2.0 * system.product(y)
        gamma = (lam * alpha - float(b @ g[bound])) / cc
        if rows is not None:
            pi, gamma = _row_multipliers(a_hat, g, lam, gamma, cc, np.flatnonzero(state == FREE),
                                         bound, b, rows, active)
        r = g - lam * a - (gamma + lam * shift)
        if rows is not None:
            r = r + rows.matrix.T @ pi
        y_tol = 1e-12 * float(np.max(np.abs(y)))
        m_tol = 1e-11 * float(np.max(np.abs(g)) + abs(lam) * np.max(np.abs(a_hat)) + abs(gamma))
        is_free = state == FREE
        below = is_free & (y < box.lower * t - y_tol)
        above = is_free & (y > box.upper * t + y_tol)
        crossed = is_free & ~below & ~above & (side * (y - w0 * t) < -y_tol)
        leave_low = (state == LOW) & (r + lam * c * up_side < -m_tol)
        leave_up = (state == UP) & (r + lam * c * down_side > m_tol)
        buy = (state == HOLD) & (r + lam * c < -m_tol)
        sell = (state == HOLD) & (r - lam * c > m_tol)
        moves = below | above | crossed | leave_low | leave_up | buy | sell
        violators = np.flatnonzero(moves)
        if rows is not None:
            violators = np.concatenate([violators,
                                        _row_violators(rows, active, y, t, pi, m_tol, n)])
        if violators.size == 0:
            return y, exchange
        violators, best, tries = _safeguard(violators, best, tries)
        assets = violators[violators < n]
        new_state = np.select([below, above, crossed], [LOW, UP, HOLD], FREE)[assets]
        new_side = np.select([leave_low, leave_up, buy, sell],
                             [up_side, down_side, 1.0, -1.0], side)[assets]
        state[assets] = new_state
        side[assets] = new_side
        if rows is not None:
            moved = violators[violators >= n] - n
            entered = moved[~active[moved]]
            active[moved] = ~active[moved]
    return None


def _pivot_costs(cov: np.ndarray | LowRankCovariance, a: np.ndarray, box: _Box, costs: _Costs,
                 rows: _Rows | None = None) -> tuple[np.ndarray, int] | None:
    """``(y, exchanges)`` with transaction costs: from the cost-free optimum's bounds, sides
    and tight linear constraints (:func:`_pivot_dense`), :func:`_pivoting_with_costs` on the
    exact covariance."""
    start = _pivot_dense(cov, a, box, rows)
    n = a.size
    state = np.full(n, FREE, dtype=np.int8)
    side = np.ones(n)
    active = None if rows is None else rows.equality.copy()
    if start is not None:
        y0 = start[0]
        t0 = float(y0.sum()) / box.budget
        state = _bound_state(y0, box, t0, 1e-12 * float(np.max(np.abs(y0))))
        side, active = _sides_and_tight_rows(y0, t0, costs, rows, 1e-12)
    system = _exact_system(cov, a)
    solved = _pivoting_with_costs(a, system, state.copy(), side.copy(), box, costs, rows=rows,
                                  active=None if active is None else active.copy())
    if solved is not None:
        return solved
    # The pivoting can cycle with costs (the kinks make the problem no P-matrix one): reach
    # the costs in steps, each from the state of the last.
    total = 0
    for fraction in _COST_STEPS:
        scaled = _Costs(fraction * costs.rate, costs.previous)
        solved = _pivoting_with_costs(a, system, state, side, box, scaled, rows=rows,
                                      active=active)
        if solved is None:
            return None
        total += solved[1]
    return solved[0], total


def _warm_costs(a: np.ndarray, system, start: WarmStart, box: _Box, costs: _Costs,
                rows: _Rows | None) -> tuple[np.ndarray, int] | None:
    """:func:`_pivoting_with_costs` from the previous fit's weights (``t = 1``): their bounds,
    held at the holdings where that fit held its own (in a backtest the holdings are the last
    rebalance's weights drifted by a period's returns: a weight not traded then is usually not
    traded now), each other free weight on the side of the holdings it lies on, and the linear
    constraints tight there active. None when the pivoting gives no answer from there (the
    cold start then runs)."""
    weights, w0 = start.weights, costs.previous
    state = start.state.copy()
    # (held only where the holdings are inside the box: a drift can carry one past its cap)
    inside = (w0 >= box.lower) & (w0 <= box.upper)
    state[(state == FREE) & start.held & inside] = HOLD
    side, active = _sides_and_tight_rows(weights, 1.0, costs, rows, 1e-9)
    return _pivoting_with_costs(a, system, state, side, box, costs, rows=rows, active=active)


def _sides_and_tight_rows(y: np.ndarray, t: float, costs: _Costs, rows: _Rows | None,
                          tol: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Where the costs' pivoting starts at a point ``y`` (``t = 1'y / budget``): each weight
    on the side of its previous weight it lies on (+1 at or above), and the rows active that
    are equalities or tight there (slack within ``tol`` of its round-off scale)."""
    side = np.where(y >= costs.previous * t, 1.0, -1.0)
    if rows is None:
        return side, None
    slack, scale = rows.slack(y, t)
    return side, rows.equality | (np.abs(slack) <= tol * scale)


class WarmStart(NamedTuple):
    """Where a warm-started fit's pivoting starts (:func:`warm_state`)."""

    state: np.ndarray  # the previous weights' bounds under this fit's box (FREE, LOW, UP)
    weights: np.ndarray  # the previous fit's weights
    held: np.ndarray  # bool: those weights were at that fit's previous holdings (costs' kinks)


def warm_state(spec: _Spec, weights, holdings=None) -> WarmStart | None:
    """The start of a fit from ``weights`` (a previous fit's ``weights_``) under ``spec``'s box:
    on a bound where a weight is at or beyond it, free elsewhere; ``holdings``, that fit's
    previous holdings when it had transaction costs, mark the weights it held. None when the
    weights are not one finite vector of the same assets in the same order (a warm start then
    starts cold)."""
    if not isinstance(weights, pd.Series) or len(weights) != spec.n:
        return None
    if spec.assets is not None and not weights.index.equals(pd.Index(spec.assets)):
        return None
    w = weights.to_numpy(dtype=float)
    if not np.all(np.isfinite(w)):
        return None
    held = np.zeros(w.size, dtype=bool)
    if holdings is not None and len(holdings) == w.size:
        held = np.abs(w - holdings) <= 1e-12 * max(float(np.max(np.abs(w))), 1e-300)
    return WarmStart(_bound_state(w, _box(spec), 1.0, 0.0), w, held)


def _bound_state(y: np.ndarray, box: _Box, t: float, tol: float) -> np.ndarray:
    """The pivoting state of a point ``y`` (``t = 1'y / budget``): on its lower or upper bound
    where ``y`` is within ``tol`` of it or beyond, free elsewhere."""
    state = np.full(y.size, FREE, dtype=np.int8)
    state[y <= box.lower * t + tol] = LOW
    state[y >= box.upper * t - tol] = UP
    return state


def _pivot_dense(cov: np.ndarray | LowRankCovariance, a: np.ndarray, box: _Box | None = None,
                 rows: _Rows | None = None) -> tuple[np.ndarray, int] | None:
    """``(y, exchanges)`` on the exact covariance (``box``: default long-only, no upper bound).
    A :class:`LowRankCovariance` takes one stage, the exact pivoting with Woodbury solves.

    Three stages, each starting from the state the previous one ends in: the pivoting on a
    rank-20-plus-diagonal surrogate of ``Sigma`` (the screening's; ``n r^2`` per exchange);
    when more than ``_ITERATIVE_FROM`` assets are then free (a dense optimum), the pivoting on
    ``Sigma`` with preconditioned conjugate-gradient solves (``_ITERATIVE_EXCHANGES``
    exchanges; products with ``Sigma`` only, no factorisation of the full set); and the exact
    pivoting with Cholesky factors and
    Schur-complement updates, which gives the answer (few exchanges remain, usually one
    factorisation at the final size). Every stage passes on the state it reaches. Assets
    with ``a_j <= 0`` and a lower bound 0 (e.g. zero variance) start on it and leave only if
    their sign condition asks. Linear constraints (``rows``) start inactive (equalities
    active); their activity passes from stage to stage with the assets' states."""
    n = a.size
    if box is None:
        box = _Box(np.zeros(n), np.full(n, np.inf), 1.0)
    start = np.where((a <= 0) & (box.lower == 0), LOW, FREE).astype(np.int8)
    active = None if rows is None else rows.equality.copy()
    if isinstance(cov, LowRankCovariance):  # the surrogate is the covariance: one stage
        return _exact_pivoting(a, cov.system(a), start, box, rows, active)
    root, residual = _low_rank_plus_diagonal(cov, _SURROGATE_RANK)
    guess = start.copy()
    tried = None if active is None else active.copy()
    if _block_pivoting(a, _LowRankSolver(root, residual, a), guess, box, rows=rows,
                       active=tried) is not None:
        start, active = guess, tried
    if np.count_nonzero(start == FREE) > _ITERATIVE_FROM:
        # Its exchanges move the state on even when it stops short (any state is a start).
        _block_pivoting(a, _IterativeSolver(cov, a, root, residual), start, box,
                        _ITERATIVE_EXCHANGES, rows=rows, active=active)
    return _exact_pivoting(a, _FreeSetSolver(cov, a), start, box, rows, active)


def _exact_pivoting(a, system, state, box, rows, active) -> tuple[np.ndarray, int] | None:
    """The last stage of :func:`_pivot_dense`: :func:`_block_pivoting` from ``state``; with
    linear constraints, when it gives no answer, :func:`_rows_one_at_a_time` from the same
    start."""
    if rows is None:
        return _block_pivoting(a, system, state, box)
    begin, begin_active = state.copy(), active.copy()
    solved = _block_pivoting(a, system, state, box, rows=rows, active=active)
    if solved is None:
        solved = _rows_one_at_a_time(a, system, begin, box, rows, begin_active)
    return solved


class _Value:
    """A stand-in for a CVXPY variable's ``value`` (what :mod:`._solve` reads)."""

    def __init__(self, value):
        self.value = value


def solve_dense(spec: _Spec, X: np.ndarray | None = None, start: WarmStart | None = None
                ) -> tuple[np.ndarray, float, _Handles, int, bool] | Uncertified | str:
    """The certified weights of the dense path: ``(w, gap, handles, exchanges, warm)``, or a
    string saying why there is none (the caller then takes today's path), or an
    :class:`Uncertified` feasible point with a finite gap above the tolerance.

    ``handles`` carries ``y`` and ``t`` as CVXPY's would after a solve (``a'y = h``, ``t =
    1'y / budget``), so :func:`._solve._measures` and :func:`._solve._polish` apply unchanged.

    ``start`` (:func:`warm_state` of the previous fit's weights): the exact pivoting runs from
    there first, and ``warm`` says it answered. Between neighbouring dates of a backtest few
    assets change state: on 12 month-ends of an EWMA covariance at N = 500 (condition number
    ~2e11, the cold start's stages needing 44-199 exchanges or not answering within 200 on 5
    dates), 6-18 exchanges (once 128) from the previous date's weights. With transaction costs
    the costs' pivoting starts there (:func:`_warm_costs`) instead of at the cost-free optimum,
    which the cold start solves first. The answer is certified as any other.
    """
    risk = spec.risk
    if risk.is_factor:
        if not np.all(risk.residual_sd > 0):
            return "a residual variance is zero: the factor form has no Woodbury solve"
        cov = LowRankCovariance(risk.factor_root, risk.residual_sd)
    else:
        cov = risk.covariance
    a = _coefficients(spec)
    box = _box(spec)
    if _knapsack(np.zeros(spec.n), box) is None or np.any(box.lower > box.upper):
        # (max_turnover around the previous weights can cross a bound: an empty box, which the
        # pivoting does not detect and the certificate's knapsacks cannot price)
        return "the bounds, max_turnover and the budget leave no portfolio"
    rows = _rows(spec)
    unreachable = None if rows is None else _unreachable_row(rows, box)
    if unreachable is not None:
        labels = list(spec.eq_labels) + list(spec.ineq_labels)
        label = labels[unreachable] if unreachable < len(labels) else f"row {unreachable}"
        return f"the linear constraint {label!r} cannot hold within the bounds and the budget"
    costs = None if spec.costs is None else _Costs(spec.costs.astype(float),
                                                   spec.previous.astype(float))
    # One BLAS thread (the package's policy, core/_threads.py): NumPy's products and SciPy's
    # factorisations use two OpenBLAS builds here, and each one's spinning workers slowed the
    # other's calls up to 1000x (a 200 x 200 Cholesky: 0.5 s instead of 0.4 ms).
    with blas_threads():
        try:
            solved, warm = _pivot(cov, a, box, rows, costs, start)
        except _RowsConflict:
            return ("the linear constraints cannot hold together within the bounds and the "
                    "budget")
        if solved is None:
            return ("the active-set solver found no factorable free set or did not "
                    "converge")
        y, exchanges = solved
        # (Sigma^-1 with shorts or costs: a Cholesky, or Woodbury on a factor covariance)
        gap = relative_gap(cov, a, y, box, costs, rows)
    if not np.isfinite(gap):  # a finite gap above the tolerance is Uncertified, below
        return f"the active-set solution was not certified (relative gap {gap:.1e})"
    if np.all(box.lower == 0):
        y = np.clip(y, 0.0, None)
    # the CVXPY program's normalisation: (N - r_f t) = h
    y = spec.h * y / _numerator(a, y, box, costs)
    t = float(y.sum()) / spec.budget
    handles = _Handles(problem=None, y=_Value(y), t=_Value(t), min_return=None,
                       custom_objective=None, custom_constraints=[])
    w = y / t
    if costs is not None:
        # a held asset's y is its previous weight times t by construction, and the division
        # rounds it by an ulp (on an AMD EPYC): back on its kink, no trade and no cost
        ulps = 8.0 * np.finfo(float).eps * np.abs(costs.previous)
        w = np.where(np.abs(w - costs.previous) <= ulps, costs.previous, w)
    broken = _violations(spec, w, handles, None, X)  # the check every CVXPY answer passes
    if broken:
        return f"the active-set solution violates {', '.join(broken)}"
    if not gap <= GAP_TOLERANCE:
        return Uncertified(f"the active-set solution was not certified (relative gap {gap:.1e})",
                           (w, gap, handles, exchanges, warm))
    return w, gap, handles, exchanges, warm


def _pivot(cov, a: np.ndarray, box: _Box, rows: _Rows | None, costs: _Costs | None,
           start: WarmStart | None) -> tuple[tuple[np.ndarray, int] | None, bool]:
    """:func:`solve_dense`'s pivoting: from ``start`` first when given, else (or when that
    gives no answer) cold; ``(solved, warm)``. May raise :class:`_RowsConflict`."""
    solved = None
    if start is not None and costs is None:
        solved = _block_pivoting(a, _exact_system(cov, a), start.state.copy(), box, rows=rows,
                                 active=None if rows is None else rows.equality.copy())
    elif start is not None:
        solved = _warm_costs(a, _exact_system(cov, a), start, box, costs, rows)
    if solved is not None:
        return solved, True
    return (_pivot_dense(cov, a, box, rows) if costs is None
            else _pivot_costs(cov, a, box, costs, rows)), False


def _unreachable_row(rows: _Rows, box: _Box) -> int | None:
    """The first row that no point of the box with the budget satisfies, from its range over
    that set (two fractional knapsacks each), or None; the box holds the budget (the caller
    checked). An infeasible problem otherwise costs the pivoting its whole effort before the
    LP names the conflict (2.7 s at n = 1000 with ``'US >= 0.40'`` against
    ``max_turnover=1e-4``); conflicts between rows: :func:`_rows_conflict`."""
    for j in range(rows.rhs.size):
        scale = 1e-9 * (1.0 + abs(rows.rhs[j]))
        if _knapsack(rows.matrix[j], box)[0] > rows.rhs[j] + scale:
            return j
        if rows.equality[j] and -_knapsack(-rows.matrix[j], box)[0] < rows.rhs[j] - scale:
            return j
    return None


class _RowsConflict(Exception):
    """Raised in a pivoting by :func:`_check_rows`; :func:`solve_dense` turns it into its
    answer "no point" (the caller's LP pre-check then names the conflict)."""


def _check_rows(rows: _Rows | None, box: _Box, exchange: int) -> None:
    """At the ``_ROWS_CHECK_AFTER``-th exchange of a pivoting with two or more rows, the
    feasibility LP of the rows, box and budget (:func:`_rows_conflict`); raises
    :class:`_RowsConflict` when they admit no point.

    A single row is decided exactly before any pivoting (:func:`_unreachable_row`); rows that
    conflict only together made every stage of the pivoting run to its limit, about 800
    exchanges, before the LP of the CVXPY path named the conflict: 0.5-0.7 s at n = 30 to 100,
    3-6 s at n = 1000 (``'US >= 0.6'`` with ``'EU >= 0.6'``, informal timings). Feasible fits
    rarely pivot that long, so they do not pay for the LP (1-4 ms): run before every pivoting
    it added 11% to bench_maxdiv_rows's feasible fits."""
    if (exchange == _ROWS_CHECK_AFTER and rows is not None and rows.rhs.size >= 2
            and _rows_conflict(rows, box)):
        raise _RowsConflict


def _rows_conflict(rows: _Rows, box: _Box) -> bool:
    """Whether the rows admit no point of the box with the budget: the feasibility LP
    (HiGHS); False when it cannot decide."""
    from scipy.optimize import linprog

    eq, ineq = rows.equality, ~rows.equality
    n = box.lower.size
    result = linprog(
        np.zeros(n), A_ub=rows.matrix[ineq] if ineq.any() else None,
        b_ub=rows.rhs[ineq] if ineq.any() else None,
        A_eq=np.vstack([np.ones((1, n)), rows.matrix[eq]]),
        b_eq=np.concatenate([[box.budget], rows.rhs[eq]]),
        bounds=np.column_stack([box.lower, box.upper]), method="highs")
    return result.status == 2


@dataclass(frozen=True)
class Uncertified:
    """A feasible active-set point whose certified gap is above :data:`GAP_TOLERANCE`: the
    caller solves the CVXPY program and keeps this point (``answer``, as
    :func:`solve_dense`'s) when CVXPY's ratio is lower."""

    note: str
    answer: tuple
