"""The convex programme of :class:`LassoModel`, written once.

For coefficients ``B`` (N x M, responses x factors), prior centre ``B0``, ``D = B - B0``,
``lambda = reg_lambda`` and ``a = l1_weight``::

    minimise   (1/T') sum_i sum_t w_ti (y_ti - x_t b_i)^2  +  lambda * P(D)
    subject to B_ij = 0 where sign 0,  B_ij >= 0 where sign +1,  B_ij <= 0 where sign -1
               (B >= 0 everywhere with ``nonneg`` and no sign matrix;
                B_ij = B0_ij where factor j is identically zero on response i's observations)

    cell  (LASSO):          P(D) = sum_ij omega_ij |D_ij|
    row   (GROUP, HCGL):    P(D) = (1-a) sum_i w_g(i) rho_i ||D_i.||_2
                                   + a sum_ij omega_ij |D_ij|
    block (FCGL):           P(D) = (1-a) sum_g w_g sum_j kappa_gj ||D_{g,j}||_2
                                   + a sum_ij omega_ij |D_ij|
    cooperative (COOPERATIVE_GROUP_LASSO, COOPERATIVE_CLUSTER_GROUP_LASSO):
                            P(D) = (1-a) sum_g w_g sum_j (||(D_{g,j})+||_2 + ||(D_{g,j})-||_2)
                                   + a sum_ij |D_ij|

with group weights ``w_g = sqrt(|g| / G)`` ("normalized") or ``sqrt(|g|)`` ("yuan_lin").
The adaptive weights (``auto_sign_adaptive_weights``, Zou 2006; Wang and Leng 2008) are 1
unless set: ``omega_ij = 1 / max(|beta_uni_ij|, floor)^gamma`` from the univariate slopes
(1 on a cell whose detected sign is 0), ``rho_i`` the root mean square of ``omega_i.`` over the
cells of row ``i`` whose detected sign is not 0, ``kappa_gj`` the same over the members of
cluster ``g`` in column ``j`` (1 where no cell qualifies).

The data term is never written on the T x N residual matrix: with ``R_p'R_p = X'W_pX`` for each
distinct response mask ``p`` and ``R_p'z_i = X'W_i y_i`` it equals
``sum_i ||R_p(i) b_i - z_i||^2`` plus a constant, so the programme's size is independent of T.
``lambda`` is a CVXPY parameter: one compiled problem serves a whole grid of penalties.

UniLasso (``model_type=UNILASSO``) has no programme of its own: its stage two is this cell
programme in ``theta`` (no prior, ``theta >= 0`` as ``nonneg``) on the per-response statistics
of :func:`~xl_factorlasso.core.linear_model._unilasso.unilasso_design` (one Gram per response),
so the same :class:`LassoProblem` is its CVXPY reference, of a size independent of T.

Scaling. An interior-point solver works to tolerances relative to the numbers it is given, so
the programme is posed in units where they are of order one: factor ``j`` divided by
``s_j`` (its weighted root mean square), responses by ``c``, their root mean square or, when
larger, that of their residuals at the prior, ``y - X B0``, over ``PRIOR_SCALE_RATIO`` (1e4),
both rounded to powers of two so that the change of units is exact. (The residuals matter
where the prior's fitted values dwarf the responses: with ``c`` from ``y`` alone, ``y x 1e-8``
and a prior of order one put Clarabel's objective at ~5e14, and it called the programme
"infeasible". The ratio is not smaller because a larger ``c`` shrinks a small penalty's
objective below Clarabel's absolute tolerance; docs/formulation.md has the figures.) With
``B~ = B s / c`` (column-wise) the objective is ``c^2`` times

    L~(B~) + (lambda / c) * P((B~ - B~0) / s),

the penalty acting on ``D~ / s``: a weight ``1 / s_j`` per factor column inside the same norms.
(The cooperative norms are written directly, ``||pos(D)||_2 + ||neg(D)||_2``: a norm of a
nonnegative convex argument is convex and DCP, so no ``P - Q`` split doubles the variables.)
Sign bounds (0 or infinite) are unchanged. :meth:`LassoProblem.solve` maps the answer back.
Those weights are why a programme for ``lambda > 0`` keeps every ``s_j`` within a factor
``PENALTY_SCALE_RATIO`` (1e4) of the largest: penalty weights spanning more than that cost an
interior-point solver more accuracy than the factor scales it equalises (measured on factors
1e8 apart and a factor of variance 1e-15). Without a penalty (``lambda = 0``) nothing limits
the scales (``max_ratio=None``).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ._penalty import DENSE_CLUSTER_CELLS, PenaltySpec
from ._preparation import SufficientStats

__all__ = ["PENALTY_SCALE_RATIO", "PRIOR_SCALE_RATIO", "LassoProblem", "problem_scales"]

PENALTY_SCALE_RATIO = 1e4
PRIOR_SCALE_RATIO = 1e4

# Statuses whose point is worth certifying (the caller checks it with the duality gap):
# "user_limit" is an iteration or time limit, whose last iterate may still be good enough.
_HAS_POINT = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT)


def _power_of_two(value: np.ndarray) -> np.ndarray:
    return np.exp2(np.round(np.log2(value)))


def problem_scales(
    stats: SufficientStats, max_ratio: float | None = PENALTY_SCALE_RATIO,
    prior: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """``(s, c)``: per-factor and response scales, powers of two (see module docstring).

    ``s_j`` is the largest weighted root mean square of factor ``j`` over the response masks,
    at least ``max(s) / max_ratio`` (when given); a factor that is zero everywhere (its cells
    are pinned at the prior) gets the largest scale. ``c`` is the root mean square of all
    weighted responses or, when larger, that of their residuals at ``prior`` (N x M; none:
    zero) over ``PRIOR_SCALE_RATIO``, 1 when both are zero.
    """
    t_rows = float(stats.n_rows)
    ms = np.diagonal(stats.gram, axis1=1, axis2=2).max(axis=0) / t_rows
    pos = ms > 0.0
    s = np.ones(ms.shape)
    s[pos] = _power_of_two(np.sqrt(ms[pos]))
    top = s[pos].max(initial=1.0)
    s[~pos] = top
    if max_ratio is not None:
        s = np.maximum(s, _power_of_two(top / max_ratio))
    total = float(np.sum(stats.yty))
    if prior is not None and np.any(prior):
        total = max(total, float(np.sum(stats.loss_terms(prior))) / PRIOR_SCALE_RATIO**2)
    total /= t_rows * max(len(stats.yty), 1)
    c = float(_power_of_two(np.sqrt(total))) if total > 0.0 else 1.0
    return s, c


def _kkt_method(stats: SufficientStats, spec: PenaltySpec) -> str:
    """Clarabel's factorisation for this programme: QDLDL (chosen when Clarabel's default,
    faer, was 3x slower on FCGL blocks), except for an FCGL cluster of
    ``|g| M >= DENSE_CLUSTER_CELLS`` cells on a wide panel (more factors than rows), whose
    cones couple every member on every factor and make the factor dense in ``|g| M``: there
    faer's dense kernels took 3.9 and 7.8 CPU s per solve against 11.8 and 20.8 (one cluster at
    (60,100,20) and (250,500,5)). Elsewhere the measurements were mixed: QDLDL 4.5x faster on
    one cluster at (500,30,50) (0.37 against 1.65 s) and 1.3x at (120,200,10) with found
    clusters, faer 1.7x faster on found clusters at (2000,30,500) (1.53 against 2.60 s)."""
    if spec.geometry != "block" or spec.groups is None or spec.prior.shape[1] < stats.n_rows:
        return "qdldl"
    return "faer" if spec.largest_cluster_cells() >= DENSE_CLUSTER_CELLS else "qdldl"


class LassoProblem:
    """The compiled CVXPY programme for one data set and penalty geometry, in scaled units.

    Parameters
    ----------
    stats : SufficientStats
    spec : PenaltySpec
    max_ratio : float or None, default PENALTY_SCALE_RATIO
        Largest ratio between two factor scales (see the module docstring); None for a
        programme that is only solved at ``lambda = 0``.

    Notes
    -----
    Responses are permuted so that each group is a contiguous slice; :meth:`solve` returns
    coefficients in the caller's order and original units.
    """

    def __init__(self, stats: SufficientStats, spec: PenaltySpec,
                 max_ratio: float | None = PENALTY_SCALE_RATIO):
        self.stats = stats
        self.spec = spec
        n, m = spec.prior.shape
        order = spec.order()
        self.order = order
        s, c = problem_scales(stats, max_ratio, spec.prior)
        self.factor_scale, self.response_scale = s, c
        # Penalty weights 1/s_j, divided by their largest value (absorbed into lambda).
        omega = s.min() / s
        self._lambda_unit = c * s.min()  # lambda in the programme = reg_lambda / _lambda_unit
        roots, targets, _ = stats.rescaled(s, c).root_factors()
        to_scaled = s[None, :] / c  # B~ = B * s / c, column-wise

        # Data term: blockdiag(R_p(i)) @ vec(rows of B~) - stacked z_i, in permuted order.
        K = sp.block_diag([roots[stats.pattern[i]] for i in order], format="csc")
        z = np.concatenate([targets[i] for i in order]) if n else np.zeros(0)

        B = cp.Variable((n, m), name="coef")
        b = cp.vec(B.T, order="F")  # row i of B occupies b[i*m:(i+1)*m]
        lam = cp.Parameter(nonneg=True, name="reg_lambda")
        D = B - (spec.prior * to_scaled)[order]
        loss = cp.sum_squares(K @ b - z) / stats.n_rows

        a = spec.l1_weight
        if spec.cell_weight is None:
            l1 = cp.sum(cp.abs(D) @ omega)
        else:  # adaptive L1 weights, in the permuted order, times the unit change
            l1 = cp.sum(cp.multiply(cp.abs(D), spec.cell_weight[order] * omega[None, :]))
        if spec.geometry == "cell":
            penalty = l1
        else:
            groups = spec.groups[order]
            weight = spec.group_weight
            if spec.geometry == "row":
                norms = cp.norm(cp.multiply(D, omega[None, :]), 2, axis=1)
                rows = weight[groups] if spec.row_weight is None else spec.row_weights()[order]
                group_term = cp.sum(cp.multiply(rows, norms))
            else:  # a block lies in one factor column: its weight stays outside the norm
                bounds = np.flatnonzero(np.diff(np.r_[-1, groups, -2]))
                blocks = None if spec.block_weight is None else spec.block_weights()
                group_term = 0
                for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                    g = groups[start]
                    if spec.cooperative:  # the block's positive and negative parts
                        block = D[start:stop, :]
                        norms = cp.norm(cp.pos(block), 2, axis=0) + cp.norm(
                            cp.neg(block), 2, axis=0)
                    else:
                        norms = cp.norm(D[start:stop, :], 2, axis=0)
                    if blocks is None:
                        group_term += weight[g] * (norms @ omega)
                    else:
                        group_term += norms @ (blocks[g] * omega)
            penalty = (1.0 - a) * group_term
            if a > 0.0:
                penalty = penalty + a * l1

        constraints = []
        lower, upper = spec.lower_upper()
        lower = (lower * to_scaled)[order].reshape(-1)
        upper = (upper * to_scaled)[order].reshape(-1)
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
        self.kkt_method = _kkt_method(stats, spec)

    def solve(
        self,
        reg_lambda: float,
        solver: str = "CLARABEL",
        solver_params: dict | None = None,
        verbose: bool = False,
    ) -> tuple[str, np.ndarray | None]:
        """One solve at ``reg_lambda`` with ``solver``: ``(status, coef)``.

        ``status`` is CVXPY's status, or ``"error: ..."`` when the solver raised; ``coef`` is
        the point in original units, projected onto the sign constraints (interior-point
        round-off), when the status has one ("optimal", "optimal_inaccurate" or
        "user_limit"), else None.
        Nothing here decides whether the point is good enough: the caller certifies it with
        the duality gap (:meth:`FastEngine.relative_gap`), whatever the status says.
        """
        self.reg_lambda.value = float(reg_lambda) / self._lambda_unit
        params = dict(solver_params or {})
        if str(solver).upper() == "CLARABEL":
            # (_kkt_method); a user's own choice wins
            params = {"direct_solve_method": self.kkt_method, **params}
        try:
            self.problem.solve(solver=solver, verbose=verbose, **params)
        except (cp.error.SolverError, ValueError, ArithmeticError) as err:
            return f"error: {err}", None
        status = self.problem.status
        value = self.coef.value
        if status not in _HAS_POINT or value is None or not np.all(np.isfinite(value)):
            return status, None
        coef = np.empty_like(value)
        coef[self.order] = value * (self.response_scale / self.factor_scale)[None, :]
        lower, upper = self.spec.lower_upper()
        return status, np.clip(coef, lower, upper)

    def snapped(self, coef: np.ndarray, eps: float) -> np.ndarray:
        """``coef`` with every cell within ``eps`` (in the programme's scaled units) of its
        prior or of a sign bound moved onto it.

        An interior-point solution approaches the faces of the optimum (zeros of ``B - B0``,
        active sign bounds) without reaching them; the duality gap of such a point is poor
        even when its objective is excellent. Snapping lands on the face, and the certificate
        then judges the snapped point like any other.
        """
        to_scaled = self.factor_scale[None, :] / self.response_scale
        lower, upper = self.spec.lower_upper()
        out = np.where(np.abs((coef - self.spec.prior) * to_scaled) <= eps, self.spec.prior, coef)
        for bound in (lower, upper):
            near = np.isfinite(bound) & (np.abs((out - bound) * to_scaled) <= eps)
            out = np.where(near, bound, out)
        return np.clip(out, lower, upper)
