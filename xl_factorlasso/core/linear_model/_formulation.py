"""The convex programme of :class:`LassoModel`, written once.

For coefficients ``B`` (N x M, responses x factors), prior centre ``B0``, ``D = B - B0``,
``lambda = reg_lambda`` and ``a = l1_weight``::

    minimise   (1/T') sum_i sum_t w_ti (y_ti - x_t b_i)^2  +  lambda * P(D)
    subject to B_ij = 0 where sign 0,  B_ij >= 0 where sign +1,  B_ij <= 0 where sign -1
               (B >= 0 everywhere with ``nonneg`` and no sign matrix)

    cell  (LASSO):          P(D) = sum_ij |D_ij|
    row   (GROUP, HCGL):    P(D) = (1-a) sum_i w_g(i) ||D_i.||_2        + a sum_ij |D_ij|
    block (FCGL):           P(D) = (1-a) sum_g w_g sum_j ||D_{g,j}||_2  + a sum_ij |D_ij|

with group weights ``w_g = sqrt(|g| / G)`` ("normalized") or ``sqrt(|g|)`` ("yuan_lin").

The data term is never written on the T x N residual matrix: with ``R_p'R_p = X'W_pX`` for each
distinct response mask ``p`` and ``R_p'z_i = X'W_i y_i`` it equals
``sum_i ||R_p(i) b_i - z_i||^2`` plus a constant, so the programme's size is independent of T.
``lambda`` is a CVXPY parameter: one compiled problem serves a whole grid of penalties.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..exceptions import SolveError
from ._penalty import PenaltySpec
from ._preparation import SufficientStats

__all__ = ["LassoProblem"]

_OK = (cp.OPTIMAL,)
_INACCURATE = (cp.OPTIMAL_INACCURATE,)


class LassoProblem:
    """The compiled CVXPY programme for one data set and penalty geometry.

    Parameters
    ----------
    stats : SufficientStats
    spec : PenaltySpec

    Notes
    -----
    Responses are permuted so that each group is a contiguous slice; :meth:`solve` returns
    coefficients in the caller's order.
    """

    def __init__(self, stats: SufficientStats, spec: PenaltySpec):
        self.stats = stats
        self.spec = spec
        n, m = spec.prior.shape
        order = spec.order()
        self.order = order
        roots, targets, _ = stats.root_factors()

        # Data term: blockdiag(R_p(i)) @ vec(rows of B) - stacked z_i, in permuted order.
        K = sp.block_diag([roots[stats.pattern[i]] for i in order], format="csc")
        z = np.concatenate([targets[i] for i in order]) if n else np.zeros(0)

        B = cp.Variable((n, m), name="coef")
        b = cp.vec(B.T, order="F")  # row i of B occupies b[i*m:(i+1)*m]
        lam = cp.Parameter(nonneg=True, name="reg_lambda")
        D = B - spec.prior[order]
        loss = cp.sum_squares(K @ b - z) / stats.n_rows

        a = spec.l1_weight
        if spec.geometry == "cell":
            penalty = cp.sum(cp.abs(D))
        else:
            groups = spec.groups[order]
            weight = spec.group_weight
            if spec.geometry == "row":
                group_term = cp.sum(cp.multiply(weight[groups], cp.norm(D, 2, axis=1)))
            else:
                bounds = np.flatnonzero(np.diff(np.r_[-1, groups, -2]))
                group_term = 0
                for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                    g = groups[start]
                    group_term += weight[g] * cp.sum(cp.norm(D[start:stop, :], 2, axis=0))
            penalty = (1.0 - a) * group_term
            if a > 0.0:
                penalty = penalty + a * cp.sum(cp.abs(D))

        constraints = []
        lower, upper = spec.lower_upper()
        lower, upper = lower[order].reshape(-1), upper[order].reshape(-1)
        fixed = np.flatnonzero(lower == upper)
        only_lower = np.flatnonzero(np.isfinite(lower) & (lower != upper))
        only_upper = np.flatnonzero(np.isfinite(upper) & (lower != upper))
        if fixed.size:
            constraints.append(b[fixed] == lower[fixed])
        if only_lower.size:
            constraints.append(b[only_lower] >= lower[only_lower])
        if only_upper.size:
            constraints.append(b[only_upper] <= upper[only_upper])

        self.coef = B
        self.reg_lambda = lam
        self.problem = cp.Problem(cp.Minimize(loss + lam * penalty), constraints)

    def solve(
        self,
        reg_lambda: float,
        solver: str = "CLARABEL",
        solver_params: dict | None = None,
        solver_fallbacks: list[str] | tuple[str, ...] | None = None,
        verbose: bool = False,
    ) -> tuple[np.ndarray, str, str]:
        """Solve at ``reg_lambda``; return ``(coef, status, solver used)``.

        Each solver in ``[solver, *solver_fallbacks]`` is tried in turn until one reports an
        optimal status (``solver_params`` go to ``solver`` only; fallbacks use their defaults);
        an "optimal_inaccurate" answer is kept only if no later solver does better (with a
        warning). Raises :class:`SolveError` listing every attempt otherwise.
        The returned coefficients satisfy the sign constraints exactly (interior-point round-off
        is projected away).
        """
        self.reg_lambda.value = float(reg_lambda)
        attempts: list[tuple[str, str]] = []
        inaccurate = None
        chain = [(solver, solver_params or {})] + [(f, {}) for f in (solver_fallbacks or [])]
        for name, params in chain:
            if str(name).upper() == "CLARABEL":
                # QDLDL factors this KKT structure 1.2-3x faster than Clarabel's default (faer),
                # most of all for FCGL blocks; a user's own choice still wins.
                params = {"direct_solve_method": "qdldl", **params}
            try:
                self.problem.solve(solver=name, verbose=verbose, **params)
            except (cp.error.SolverError, ValueError, ArithmeticError) as err:
                attempts.append((name, f"error: {err}"))
                continue
            status = self.problem.status
            attempts.append((name, status))
            if status in _OK and self.coef.value is not None:
                return self._extract(), status, name
            if status in _INACCURATE and self.coef.value is not None and inaccurate is None:
                inaccurate = (self._extract(), status, name)
        if inaccurate is not None:
            warnings.warn(
                f"solver {inaccurate[2]} returned an inaccurate solution "
                f"(attempts: {attempts})",
                RuntimeWarning,
                stacklevel=3,
            )
            return inaccurate
        detail = "; ".join(f"{n}: {s}" for n, s in attempts)
        raise SolveError(f"the LASSO problem could not be solved ({detail})", attempts)

    def _extract(self) -> np.ndarray:
        coef = np.empty_like(self.coef.value)
        coef[self.order] = self.coef.value
        lower, upper = self.spec.lower_upper()
        return np.clip(coef, lower, upper)
