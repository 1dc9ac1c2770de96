"""An independent duality gap for the benchmarks: judges every solver's answer, ours included.

Written from the objective of ``docs/formulation.md`` alone, without the package's engine (its
``duality_gap`` / ``relative_gap`` are never called), so that a wrong certificate there cannot
hide behind itself. On centred data ``X`` (T x M), ``Y`` (T x N) — an intercept is the same as
centring — the problem is::

    F(B) = (1/T) ||Y - X B'||^2 + h(B),   h(B) = lambda P(B - B0) + [lower <= B <= upper]

with ``P`` a sum over *units* u (disjoint sets of cells) of ``alpha_u ||D_u||_2 + beta sum|D|``
(``D = B - B0``):

* ``cell`` (LASSO): every cell its own unit, ``alpha = 0``, ``beta = lambda``;
* ``row`` (GROUP_LASSO, HCGL): unit = a response's row, ``alpha = lambda (1-a) w_g``,
  ``beta = lambda a``;
* ``block`` (FCGL): unit = (cluster g, factor j), the same ``alpha`` and ``beta``.

Dual point. Fenchel duality with ``f(Z) = (1/T)||Y - Z||^2`` gives, for the scaled residual
``Theta = (2 / T) R diag(s)`` (``R = Y - X B'``, ``V_s = Theta' X = -diag(s) grad``)::

    F(B) - D(Theta) = (1/T) sum_i (1 - s_i)^2 ||R_i||^2 + lambda P(D) - <V_s, D>
                      + sum_u phi_u(V_s)

where ``phi_u(v) = sup_{d in box_u} <v, d> - alpha_u ||d|| - beta sum|d_j|`` is the conjugate of
the unit's penalty plus its box (``box = [lower - B0, upper - B0]``, which holds 0). The
conjugate of a sum is an infimal convolution, so

    phi_u(v) = min_{||z||_2 <= alpha_u} sum_j psi_j(v_j - z_j),
    psi_j(c) = (c - beta)_+ hi_j + (-c - beta)_+ (-lo_j)         (inf * 0 = 0).

For a multiplier ``mu`` the minimiser is coordinate-wise ``|z_j| = min(e_j, c_j / mu)`` with
``e_j = (|v_j| - beta)_+`` and ``c_j`` the bound on the side of ``v_j`` (``hi_j`` or ``-lo_j``);
``mu`` is found by bisection so that ``||z|| <= alpha_u`` holds in floating point. Any feasible
``z`` bounds ``phi_u`` from above, so the gap stays an upper bound of ``F(B) - F*`` however
coarse the bisection. Both ``f*`` and ``h*`` separate over *components* (a response for cells
and rows, a cluster for blocks: no unit straddles two), so each component gets its own scale
``s_i``: the largest value in (0, 1] for which its ``phi_u(s_i V)`` are finite (the cells that
an unbounded side lets grow must be absorbed by the ball), also by bisection. At the optimum
every ``s_i = 1`` and the gap is 0.

Only what the benchmarks need: no adaptive weights, no sample weights (``span=None``), no
pinned cells, ``loss_normalization="sample"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GapProblem", "bounds_from_signs", "duality_gap", "objective", "relative_gap"]

_BISECTIONS = 80


@dataclass(frozen=True)
class GapProblem:
    """One problem of the form in the module docstring.

    Attributes
    ----------
    x, y : numpy.ndarray, shapes (T, M) and (T, N)
        Centred factors and responses.
    reg_lambda : float
    geometry : {"cell", "row", "block"}
    groups : numpy.ndarray of int, shape (N,), or None
        Group code ``0..G-1`` of every response (row and block geometries).
    group_weight : numpy.ndarray, shape (G,), or None
        ``w_g`` of every group.
    l1_weight : float
        ``a``; ignored by the cell geometry.
    prior : numpy.ndarray, shape (N, M), or None
        ``B0`` (None: 0).
    lower, upper : numpy.ndarray, shape (N, M), or None
        Box on ``B`` (None: unbounded); must hold ``B0``.
    """

    x: np.ndarray
    y: np.ndarray
    reg_lambda: float
    geometry: str = "cell"
    groups: np.ndarray | None = None
    group_weight: np.ndarray | None = None
    l1_weight: float = 0.0
    prior: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.shape[1], self.x.shape[1]

    def centre(self) -> np.ndarray:
        return np.zeros(self.shape) if self.prior is None else np.asarray(self.prior, float)

    def units(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(unit id per cell (N, M), alpha per unit, beta)``."""
        n, m = self.shape
        lam = float(self.reg_lambda)
        if self.geometry == "cell":
            return np.arange(n * m).reshape(n, m), np.zeros(n * m), lam
        a = float(self.l1_weight)
        w = np.asarray(self.group_weight, float)[np.asarray(self.groups)]  # per response
        if self.geometry == "row":
            return np.repeat(np.arange(n)[:, None], m, axis=1), lam * (1 - a) * w, lam * a
        if self.geometry == "block":
            g = np.asarray(self.groups)
            unit = g[:, None] * m + np.arange(m)[None, :]
            alpha = lam * (1 - a) * np.repeat(np.asarray(self.group_weight, float), m)
            return unit, alpha, lam * a
        raise ValueError(f"unknown geometry {self.geometry!r}")


def bounds_from_signs(signs: np.ndarray | None, shape: tuple[int, int], nonneg: bool = False):
    """``(lower, upper)`` of a sign matrix: 0 fixes a cell at 0, +1 makes it >= 0, -1 <= 0,
    NaN leaves it free; without signs, ``nonneg`` makes every cell >= 0."""
    lower = np.full(shape, -np.inf)
    upper = np.full(shape, np.inf)
    if signs is None:
        if nonneg:
            lower[:] = 0.0
        return lower, upper
    s = np.asarray(signs, float)
    lower[(s == 0) | (s == 1)] = 0.0
    upper[(s == 0) | (s == -1)] = 0.0
    return lower, upper


def _penalty_units(p: GapProblem, d: np.ndarray) -> float:
    unit, alpha, beta = p.units()
    sq = np.bincount(unit.ravel(), weights=(d * d).ravel(), minlength=alpha.size)
    return float(alpha @ np.sqrt(sq) + beta * np.abs(d).sum())


def objective(p: GapProblem, coef: np.ndarray) -> float:
    """``F(B)`` for a ``coef`` inside the box (N x M)."""
    coef = np.asarray(coef, float)
    r = p.y - p.x @ coef.T
    return float(np.sum(r * r)) / p.x.shape[0] + _penalty_units(p, coef - p.centre())


def _box(p: GapProblem) -> tuple[np.ndarray, np.ndarray]:
    b0 = p.centre()
    lo = np.full(p.shape, -np.inf) if p.lower is None else np.asarray(p.lower, float) - b0
    hi = np.full(p.shape, np.inf) if p.upper is None else np.asarray(p.upper, float) - b0
    return lo, hi


def _forced(v: np.ndarray, beta: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``|z_j|`` that an unbounded side imposes: the excess of ``v_j`` over ``beta`` where the
    box lets ``d_j`` grow without limit in the direction of ``v_j``."""
    up = np.where(np.isinf(hi) & (v > 0), np.maximum(v - beta, 0.0), 0.0)
    down = np.where(np.isinf(lo) & (v < 0), np.maximum(-v - beta, 0.0), 0.0)
    return up + down


def _unit_norms(values: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray:
    return np.sqrt(np.bincount(unit.ravel(), weights=(values * values).ravel(),
                               minlength=n_units))


def _components(p: GapProblem, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """``(component of every response, component of every unit)``: the smallest sets of
    responses that no unit straddles (a response for cells and rows, a cluster for blocks);
    each gets its own dual scale."""
    n, m = p.shape
    if p.geometry == "block":
        return np.asarray(p.groups), np.arange(n_units) // m
    return np.arange(n), (np.arange(n_units) // m if p.geometry == "cell" else np.arange(n))


def _feasible_scales(v, unit, alpha, beta, lo, hi, comp_of_response, comp_of_unit):
    """Per component, the largest ``s`` in (0, 1] (to bisection accuracy, on the feasible
    side) with every unit's forced part inside its ball at ``s v``."""
    n_units, n_comp = alpha.size, int(comp_of_unit.max(initial=-1)) + 1

    def ok(s: np.ndarray) -> np.ndarray:
        forced = _forced(s[comp_of_response][:, None] * v, beta, lo, hi)
        bad = _unit_norms(forced, unit, n_units) > alpha
        return np.bincount(comp_of_unit, weights=bad, minlength=n_comp) == 0

    good = np.ones(n_comp)
    if ok(good).all():
        return good
    good = np.where(ok(good), 1.0, 0.0)  # s = 0 is feasible: the forced part vanishes
    bad = np.ones(good.shape)
    todo = good < 1.0
    for _ in range(_BISECTIONS):
        mid = np.where(todo, 0.5 * (good + bad), good)
        fits = ok(mid)
        good = np.where(todo & fits, mid, good)
        bad = np.where(todo & ~fits, mid, bad)
    return good


def _conjugates(v, unit, alpha, beta, lo, hi) -> np.ndarray:
    """``phi_u(v)`` of every unit (an upper bound: see the module docstring)."""
    n_units = alpha.size
    e = np.maximum(np.abs(v) - beta, 0.0)
    cap = np.where(v > 0, hi, -lo)  # how far d_j may go in the direction of v_j
    cap = np.where(e > 0, cap, 0.0)

    def z_of(mu: np.ndarray) -> np.ndarray:
        # |z_j| = min(e_j, c_j / mu): no z where the cap is 0 (psi is flat there), all of e
        # where it is infinite or mu = 0
        m = mu[unit]
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = np.where(cap == 0, 0.0, np.where(np.isinf(cap) | (m == 0), np.inf, cap / m))
        return np.minimum(e, limit)

    # mu = 0: z = e everywhere (psi = 0) when that fits in the ball
    full = _unit_norms(e, unit, n_units)
    need = full > alpha
    mu_hi = np.zeros(n_units)
    if need.any():
        # a mu at which the capped part alone fits: |z_j| <= c_j / mu for finite caps
        forced = _unit_norms(np.where(np.isinf(cap), e, 0.0), unit, n_units)
        finite_sq = np.bincount(unit.ravel(), weights=np.where(np.isinf(cap), 0.0, cap).ravel()
                                ** 2, minlength=n_units)
        room = np.maximum(alpha * alpha - forced * forced, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            top = np.where(room > 0, np.sqrt(finite_sq / room), np.inf)
        top = np.where(need, top, 0.0)
        lo_mu = np.zeros(n_units)
        hi_mu = top.copy()
        finite = np.isfinite(hi_mu) & need
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo_mu + hi_mu)
            fits = _unit_norms(z_of(mid), unit, n_units) <= alpha
            hi_mu = np.where(finite & fits, mid, hi_mu)
            lo_mu = np.where(finite & ~fits, mid, lo_mu)
        mu_hi = np.where(need, hi_mu, 0.0)
    z = np.where(need[unit], z_of(np.where(need, mu_hi, 1.0)), e)
    rest = e - z
    with np.errstate(invalid="ignore"):
        psi = np.where(rest > 0, rest * cap, 0.0)
    return np.bincount(unit.ravel(), weights=psi.ravel(), minlength=n_units)


def duality_gap(p: GapProblem, coef: np.ndarray) -> tuple[float, float]:
    """``(F(B) - D(Theta), F(B))`` for ``coef`` (N x M) inside the box.

    The gap is an upper bound of ``F(B) - min F``; ``inf`` if ``coef`` leaves the box.
    """
    coef = np.asarray(coef, float)
    lo, hi = _box(p)
    d = coef - p.centre()
    if np.any(d < lo) or np.any(d > hi):
        return float("inf"), objective(p, np.clip(coef, lo + p.centre(), hi + p.centre()))
    t = p.x.shape[0]
    r = p.y - p.x @ coef.T
    rr = float(np.sum(r * r))
    v = (2.0 / t) * (r.T @ p.x)  # -grad of the loss, N x M
    unit, alpha, beta = p.units()
    comp_r, comp_u = _components(p, alpha.size)
    s = _feasible_scales(v, unit, alpha, beta, lo, hi, comp_r, comp_u)[comp_r]  # per response
    vs = s[:, None] * v
    penalty = _penalty_units(p, d)
    phi = _conjugates(vs, unit, alpha, beta, lo, hi)
    shrink = float(np.sum((1.0 - s) ** 2 * np.sum(r * r, axis=0))) / t
    gap = shrink + penalty - float(np.sum(vs * d)) + float(phi.sum())
    return max(gap, 0.0), rr / t + penalty


def relative_gap(p: GapProblem, coef: np.ndarray) -> float:
    """``(F(B) - D) / F(B)``: a bound on the relative distance to the optimal objective."""
    gap, obj = duality_gap(p, coef)
    return gap / obj if obj > 0 else gap
