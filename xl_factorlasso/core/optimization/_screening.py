"""The screened solve: an exact optimum on a working set of assets, for large dense problems.

Max-diversification optima are sparse, and the dense n x n block of the covariance is what
makes a full solve slow. :func:`_solve_screened` solves on a working set and certifies the
result for the full problem with the KKT conditions of the fixed assets (details in its
docstring); :func:`_screenable` says when it is tried.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._exceptions import OptimizationError
from ._formulation import _build_problem
from ._risk import RiskModel
from ._solve import _solve_once
from ._spec import _Spec

__all__: list[str] = []


# Used from this many assets on, abandoned when the working set passes this fraction of them.
_SCREEN_MIN_ASSETS = 200
_SCREEN_MAX_FRACTION = 0.5
_SCREEN_ROUNDS = 8
_SCREEN_TOLERANCE = 1e-7
_SURROGATE_RANK = 20  # rank of the surrogate covariance that proposes the first working set


def _screenable(spec: _Spec) -> bool:
    """Screening needs a dense covariance, an objective whose gradient is known (no
    add_objective), one solve, and y_j = 0 on a lower bound for most assets."""
    return (spec.risk_form in ("qp", "soc-dense") and spec.add_objective is None
            and spec.n >= _SCREEN_MIN_ASSETS
            and not spec.min_return_is_array and spec.lower is not None
            and np.count_nonzero(spec.lower == 0) > spec.n * _SCREEN_MAX_FRACTION)


def _low_rank_plus_diagonal(cov: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``F`` (n x rank) and ``d`` with ``Sigma ~ F F' + diag(d**2)`` and the same diagonal
    (randomised range finder with one power iteration, fixed seed)."""
    n = cov.shape[0]
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(cov @ rng.standard_normal((n, min(rank + 10, n))))[0]
    basis = np.linalg.qr(cov @ basis)[0]
    values, vectors = np.linalg.eigh(basis.T @ cov @ basis)
    top = np.argsort(values)[::-1][:rank]
    root = (basis @ vectors[:, top]) * np.sqrt(np.clip(values[top], 0.0, None))
    diag = np.diag(cov)
    residual = np.clip(diag - np.sum(root**2, axis=1), 1e-6 * diag, None)
    return root, np.sqrt(residual)


def _solve_screened(spec: _Spec, X: np.ndarray | None, target: float | None):
    """Exact solve on a working set of assets, or None to solve the full problem.

    Max-diversification optima are sparse, and the dense n x n block is what makes the full
    solve slow. So: solve once with a rank-20-plus-diagonal surrogate of Sigma (a cheap
    cone, same constraints); take its support (plus every asset whose lower bound is not 0)
    as the working set W; solve exactly with ``y_j = 0`` outside W. That point is optimal
    for the full problem iff, for each fixed asset, the full problem's lower-bound
    multiplier ``d f / d y_j - mu_j`` is >= 0, where ``mu_j`` is the multiplier of
    ``y_j == 0`` (it carries every other constraint's pull on ``y_j``) and ``d f / d y_j``
    the full objective's (sub)gradient: ``2 so^2 (Sigma y)_j`` for the QP form,
    ``so ((Sigma y)_j / ||G'y|| + l1)`` for the cone form (l1's subgradient at 0 may be
    chosen as +l1, l2's gradient is 0 there). Assets failing the test join W and the solve
    repeats. W contains the surrogate's (feasible) support, so each restricted problem is
    feasible.
    """
    n, cov = spec.n, spec.risk.covariance
    required = spec.lower != 0  # y_j = 0 must sit on the lower bound to be excluded
    root, residual = _low_rank_plus_diagonal(cov, _SURROGATE_RANK)
    surrogate = replace(spec, risk=RiskModel(spec.risk.sigma, "surrogate", factor_root=root,
                                             residual_sd=residual),
                        risk_form="soc-factor")
    try:
        w0, _ = _solve_once(surrogate, _build_problem(surrogate), target, X)
    except OptimizationError:
        return None
    working = np.flatnonzero(required | (np.abs(w0) > 1e-6 * np.max(np.abs(w0))))
    so = spec.scale_objective
    for _ in range(_SCREEN_ROUNDS):
        if working.size > n * _SCREEN_MAX_FRACTION:
            return None
        handles = _build_problem(spec, working)
        try:
            w, values = _solve_once(spec, handles, target, X)
        except OptimizationError:
            return None
        y = handles.y.value
        excluded = np.setdiff1d(np.arange(n), working)
        pull = cov[:, working] @ y[working]  # (Sigma y), y = 0 outside W
        if spec.risk_form == "qp":
            gradient = 2.0 * so**2 * pull
            offset = 0.0
        else:
            gradient = so * pull / np.sqrt(max(y[working] @ pull[working], 1e-300))
            offset = so * spec.l1
        multiplier = (gradient[excluded] + offset
                      - np.asarray(handles.fixing.dual_value).reshape(-1))
        scale = np.max(np.abs(gradient[working]))
        violators = excluded[multiplier < -_SCREEN_TOLERANCE * scale]
        if violators.size == 0:
            return w, values, handles
        working = np.union1d(working, violators)
    return None
