"""UniLasso (Chatterjee, Hastie and Tibshirani 2025): stage one and the stage-two design.

For each response ``k`` on its valid rows ``t in V_k`` (``T_k`` of them) of the prepared panel
(demeaned as every model, with the fit's span; rows *unweighted*, as factorlasso 1.0.6):

1. univariate slopes ``b_kj = s_xy / s_xx`` with ``s_xx = sum_t x_tj^2``,
   ``s_xy = sum_t x_tj y_tk`` (0 where ``s_xx = 0``);
2. the stage-two design ``eta_tj = x_tj b_kj`` (in-sample, ``loo=False``) or
   ``eta_tj = x_tj b_kj^(-t)`` with the leave-one-out slope of row ``t`` removed,
   ``b_kj^(-t) = (s_xy - x_tj y_tk) / (s_xx - x_tj^2)`` (0 where the denominator is not
   positive): the slope refitted without row ``t``, in closed form;
3. ``min_theta (1/T_k) ||y_k - eta theta||^2 + lambda ||theta||_1`` (``theta >= 0`` when
   non-negative), and ``beta_kj = theta_j b_kj`` (the full-sample slope).

Stage three is a LASSO in ``theta`` whose design differs per response. It is handed to the
solvers of every other model (:class:`CertifiedSolver`: the fast engine, the CVXPY model of
:mod:`._formulation` as reference, the duality-gap certificate) as sufficient statistics
with one "mask pattern" per response: ``gram[k] = c_k eta'eta``, ``xty[k] = c_k eta'y``,
``yty[k] = c_k y'y`` with ``c_k = T'/T_k``, so that their data term
``(1/T') sum_k (...)`` is ``sum_k (1/T_k) ||y_k - eta theta_k||^2``: the responses are
separate problems and their sum has the same minimiser.

A response with fewer than :data:`MIN_RESPONSE_ROWS` valid rows gets a zero design, hence
``theta = 0`` and ``beta = 0`` (factorlasso skips it the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._penalty import PenaltySpec
from ._preparation import PreparedPanel, SufficientStats, _mask_patterns

__all__ = [
    "MIN_RESPONSE_ROWS",
    "UniLassoDesign",
    "UniLassoSolver",
    "leave_one_out_slopes",
    "unilasso_design",
    "unilasso_spec",
    "univariate_slopes",
]

#: Fewest valid rows a response needs to be fitted (factorlasso: ``tk < 5`` is skipped).
MIN_RESPONSE_ROWS = 5

# Elements of one (T, responses, M) block of leave-one-out fits (8 MB of float64; a few such
# arrays are alive at once).
_BLOCK_ELEMENTS = 1 << 20

# Responses sharing a missing-row pattern take the product route of _pattern_stats from this
# many on; alone (or nearly), the explicit design costs less than the pattern's outer products.
_SHARED_PATTERN_MIN = 2


@dataclass(frozen=True)
class UniLassoDesign:
    """Stage one of UniLasso on a prepared panel.

    Attributes
    ----------
    slopes : numpy.ndarray, shape (N, M)
        Full-sample univariate slopes ``b`` (``beta = theta * b``).
    stats : SufficientStats
        Stage-two statistics in ``theta``, one pattern per response (module docstring).
    n_valid : numpy.ndarray of int, shape (N,)
        ``T_k``, the valid rows of each response.
    loo : bool
        Whether the design uses the leave-one-out slopes.
    """

    slopes: np.ndarray
    stats: SufficientStats
    n_valid: np.ndarray
    loo: bool

    def theta(self, coef: np.ndarray) -> np.ndarray:
        """``theta = beta / b`` (0 where ``b = 0``; such a ``beta`` must be 0).

        Raises
        ------
        ValueError
            ``beta`` is nonzero on a cell whose univariate slope is 0 (no ``theta`` gives it).
        """
        coef = np.asarray(coef, dtype=float)
        zero = self.slopes == 0.0
        if np.any(zero & (coef != 0.0)):
            raise ValueError("UniLasso: a coefficient is nonzero where its univariate slope is "
                             "0, which beta = theta * b cannot produce")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(zero, 0.0, coef / np.where(zero, 1.0, self.slopes))


def univariate_slopes(x: np.ndarray, y: np.ndarray, mask: np.ndarray):
    """``(s_xx, s_xy, b)``, each (N, M): unweighted sums over each response's valid rows.

    ``x`` (T, M) and ``y`` (T, N) are the prepared (zero-filled) arrays, ``mask`` (T, N).
    """
    w = mask.astype(float)
    s_xx = w.T @ (x * x)
    s_xy = (w * y).T @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(s_xx > 0.0, s_xy / np.where(s_xx > 0.0, s_xx, 1.0), 0.0)
    return s_xx, s_xy, b


def leave_one_out_slopes(x: np.ndarray, y: np.ndarray, s_xx: np.ndarray,
                         s_xy: np.ndarray) -> np.ndarray:
    """Leave-one-out slopes ``b^(-t)`` (T, n, M) of responses ``y`` (T, n) whose sums over
    their valid rows are ``s_xx``, ``s_xy`` (n, M); 0 where ``s_xx - x_tj^2 <= 0``.

    Removing row ``t`` from the sums is exact: ``(s_xy - x_t y_t) / (s_xx - x_t^2)`` is the
    slope refitted on the other valid rows (rows outside the mask are not in the sums and
    their values here are not used).
    """
    num = x[:, None, :] * y[:, :, None]
    np.subtract(s_xy[None, :, :], num, out=num)
    den = s_xx[None, :, :] - (x * x)[:, None, :]
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0.0)
    return out


def unilasso_design(panel: PreparedPanel, loo: bool) -> UniLassoDesign:
    """Stage one and the stage-two statistics of a prepared panel (module docstring).

    Responses that share their missing-row pattern with at least
    :data:`_SHARED_PATTERN_MIN` - 1 others get their statistics from products over that
    pattern (:func:`_pattern_stats`: BLAS products of cost O(T M^2) per response, no
    (T, n, M) array); the others from their explicit design, built in blocks of responses so
    that no (T, N, M) array is held at once (:func:`_explicit_stats`).
    """
    x, y, mask = panel.x, panel.y, panel.mask
    t_rows, m = x.shape
    n = y.shape[1]
    n_valid = mask.sum(axis=0).astype(int)
    s_xx, s_xy, b = univariate_slopes(x, y, mask)
    w = mask.astype(float)
    yty = np.einsum("tn,tn->n", w * y, y)
    grams = np.empty((n, m, m))
    xty = np.empty((n, m))
    patterns, inverse = _mask_patterns(mask)
    counts = np.bincount(inverse, minlength=len(patterns))
    for p, pat in enumerate(patterns):
        if counts[p] >= _SHARED_PATTERN_MIN:
            cols = np.flatnonzero(inverse == p)
            grams[cols], xty[cols] = _pattern_stats(x, y[:, cols], pat, s_xy[cols], b[cols],
                                                    loo)
    alone = np.flatnonzero(counts[inverse] < _SHARED_PATTERN_MIN)
    if len(alone):
        grams[alone], xty[alone] = _explicit_stats(x, y[:, alone], w[:, alone], s_xx[alone],
                                                   s_xy[alone], b[alone], loo)
    short = n_valid < MIN_RESPONSE_ROWS
    with np.errstate(divide="ignore"):
        scale = np.where(short, 0.0, t_rows / np.maximum(n_valid, 1))
    grams *= scale[:, None, None]
    xty *= scale[:, None]
    yty = yty * scale
    # exact zeros where the design column vanishes, as SufficientStats.from_panel does
    zero = np.diagonal(grams, axis1=1, axis2=2) <= 0.0
    grams[np.broadcast_to(zero[:, :, None], grams.shape)] = 0.0
    grams[np.broadcast_to(zero[:, None, :], grams.shape)] = 0.0
    xty[zero] = 0.0
    xty[yty == 0.0] = 0.0
    stats = SufficientStats(
        n_rows=t_rows, gram=grams, pattern=np.arange(n), xty=xty, yty=yty,
        xw=np.zeros((n, m)), yw=np.zeros(n), mass=n_valid.astype(float),
    )
    return UniLassoDesign(slopes=b, stats=stats, n_valid=n_valid, loo=bool(loo))


def _pattern_stats(x, y, pat, s_xy, b, loo):
    """``(eta'eta, eta'y)`` of responses ``y`` (T, n) that share the row mask ``pat``.

    In-sample, ``eta_k = X diag(b_k)`` on the rows of ``pat``. Leave-one-out, with
    ``r_tj = 1 / (s_xx_j - x_tj^2)`` (0 where not positive) the same for all of them,
    ``eta_k = A diag(s_xy_k) - diag(y_k) C`` with ``A = w x r`` and ``C = w x^2 r``, so

        eta_k'eta_k = S_k A'A S_k - S_k Q_k - (S_k Q_k)' + R_k,
        eta_k'y_k = S_k A'y_k - C'(y_k^2),

    ``S_k = diag(s_xy_k)``, ``Q_k = A' diag(y_k) C`` and ``R_k = C' diag(y_k^2) C``: two
    (n, T) x (T, M^2) products for all the responses at once. The first term dominates
    (``C`` is ``O(1/T)`` relative to ``A``), so nothing cancels.
    """
    w = pat.astype(float)
    t_rows, m = x.shape
    n = y.shape[1]
    xw = x * w[:, None]
    if not loo:
        gram = xw.T @ x
        return gram[None, :, :] * (b[:, :, None] * b[:, None, :]), b * (y.T @ xw)
    s_xx = w @ (x * x)
    den = s_xx[None, :] - x * x
    r = np.zeros_like(den)
    np.divide(w[:, None], den, out=r, where=den > 0.0)
    a = x * r
    c = x * a
    q = (y.T @ (a[:, :, None] * c[:, None, :]).reshape(t_rows, m * m)).reshape(n, m, m)
    y2 = (y * y).T
    rr = (y2 @ (c[:, :, None] * c[:, None, :]).reshape(t_rows, m * m)).reshape(n, m, m)
    sq = s_xy[:, :, None] * q
    gram = (s_xy[:, :, None] * (a.T @ a)[None] * s_xy[:, None, :]) - sq
    gram -= sq.transpose(0, 2, 1)
    gram += rr
    return gram, s_xy * (y.T @ a) - y2 @ c


def _explicit_stats(x, y, w, s_xx, s_xy, b, loo):
    """``(eta'eta, eta'y)`` of responses with any masks ``w`` (T, n), from the design itself."""
    t_rows, m = x.shape
    n = y.shape[1]
    if not loo:
        # X'W_kX for every response in one product: (n, T) @ (T, M*M)
        outer = (x[:, :, None] * x[:, None, :]).reshape(t_rows, m * m)
        return (w.T @ outer).reshape(n, m, m) * (b[:, :, None] * b[:, None, :]), b * s_xy
    grams = np.empty((n, m, m))
    xty = np.empty((n, m))
    step = max(1, _BLOCK_ELEMENTS // max(1, t_rows * m))
    for lo in range(0, n, step):
        cols = slice(lo, min(n, lo + step))
        # eta[k, t, j] on valid rows, 0 elsewhere (those rows are not in the loss)
        eta = leave_one_out_slopes(x, y[:, cols], s_xx[cols], s_xy[cols])
        eta *= x[:, None, :]
        eta *= w[:, cols, None]
        eta = np.ascontiguousarray(eta.transpose(1, 0, 2))
        grams[cols] = np.matmul(eta.transpose(0, 2, 1), eta)
        xty[cols] = np.einsum("ktj,tk->kj", eta, y[:, cols])
    return grams, xty


def unilasso_spec(design: UniLassoDesign, non_negative: bool) -> PenaltySpec:
    """The stage-two penalty: ``lambda ||theta||_1`` per cell, ``theta >= 0`` when
    ``non_negative``; a cell whose design column is zero is held at 0."""
    n, m = design.slopes.shape
    return PenaltySpec(
        geometry="cell", groups=None, group_weight=None, l1_weight=1.0,
        prior=np.zeros((n, m)), signs=None, nonneg=bool(non_negative),
        pinned=design.stats.zero_cells(),
    )


class UniLassoSolver:
    """A :class:`CertifiedSolver` of stage two that answers in ``beta = theta * b``.

    Same interface as the solver it wraps (``solve(reg_lambda, coef_init)``), so a fit and
    every fold of :class:`LassoModelCV` use it unchanged; ``coef_init`` is a ``beta`` (the
    previous answer) and is mapped back to ``theta``. The duality gap reported is stage
    two's.
    """

    def __init__(self, design: UniLassoDesign, certified):
        self.design, self.certified = design, certified

    def solve(self, reg_lambda: float, coef_init: np.ndarray | None = None):
        """The certified stage-two solution at ``reg_lambda``, its ``coef`` in ``beta``."""
        theta_init = None if coef_init is None else self.design.theta(coef_init)
        solution = self.certified.solve(reg_lambda, coef_init=theta_init)
        return replace(solution, coef=solution.coef * self.design.slopes)
