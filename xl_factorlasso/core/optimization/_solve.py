"""One solve of a built program: status checks, certification, measures and polishing.

:func:`_solve_once` turns a CVXPY status into a result or an :class:`OptimizationError` that
says what failed, and certifies the weights with :func:`._diagnosis._violations`;
:func:`_measures` is ``problem_values_``; :func:`_polish` is the glue to :mod:`._polish`, which
makes weights at a corner of the problem exact and keeps them only when they pass every check.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np

from ._diagnosis import _violations
from ._exceptions import InfeasibleProblemError, SolverFailedError
from ._polish import RATIO_TOLERANCE, PolishReport, repair_cost, snap_and_restore, strict_violations
from ._spec import _MIN_SCALE, _Handles, _net_numerator, _Spec

__all__: list[str] = []


def _solve_once(spec: _Spec, handles: _Handles, min_return: float | None,
                X: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Solve the built program: the certified weights and their ``problem_values_``, or an
    :class:`OptimizationError` (infeasible, or a numerical failure with a hint)."""
    problem = handles.problem
    hint = ("; try solver_params (e.g. max_iter), scale_objective/scale_constraints, or "
            "another solver")
    # warm_start=False: a kept program's data enter a new solver object, exactly as in a
    # fresh build (CVXPY would otherwise update Clarabel's data in place, keeping the first
    # fit's equilibration, and the result would depend on the earlier fits).
    options = {"warm_start": False, **spec.solver_params}
    try:
        problem.solve(solver=spec.solver, **options)
    except cp.error.SolverError as err:
        raise SolverFailedError(f"Numerical failure: solver {spec.solver} failed ({err})"
                                f"{hint}", status=problem.status) from err
    status = problem.status
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        nonlinear = [name for name, on in (
            ("max_tracking_error", spec.tracking_error is not None),
            ("add_constraints", spec.add_constraints is not None),
        ) if on]
        if nonlinear:
            raise InfeasibleProblemError(
                f"Infeasible: the solver proves no portfolio satisfies all constraints. The "
                f"bounds, budget and linear constraints are feasible together (LP check), so "
                f"the conflict involves {' and '.join(nonlinear)}",
                conflicts=tuple(nonlinear),
            )
        raise SolverFailedError(
            f"Numerical failure: solver {spec.solver} reports status {status!r} although the "
            f"constraints are feasible (LP check){hint}", status=status)
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or handles.y.value is None:
        raise SolverFailedError(
            f"Numerical failure: solver {spec.solver} returned status {status!r}{hint}",
            status=status)
    t = float(handles.t.value)
    if not np.isfinite(t) or t <= _MIN_SCALE:
        raise SolverFailedError(
            f"Numerical failure: degenerate Charnes–Cooper scale t={t:.3g}. With budget=None "
            "and unbounded weights the weight scale is undefined; set budget, "
            "min_budget/max_budget or bounds", status=status)
    w = handles.y.value / t
    if not np.all(np.isfinite(w)):
        raise SolverFailedError("Numerical failure: non-finite weights", status=status)
    broken = _violations(spec, w, handles, min_return, X)
    if broken:
        raise SolverFailedError(
            f"Numerical failure: solver {spec.solver} returned status {status!r} but the "
            f"solution violates {', '.join(broken)}{hint}", status=status)
    if status == cp.OPTIMAL_INACCURATE:
        warnings.warn(f"Solver {spec.solver} reports an inaccurate solution; the constraints "
                      "hold within tolerance but the ratio may be suboptimal", UserWarning,
                      stacklevel=4)

    return w, _measures(spec, w, handles, t)


def _measures(spec: _Spec, w: np.ndarray, handles: _Handles, t: float) -> dict:
    """``problem_values_`` of the weights ``w`` (a custom objective is read at the
    variables' current values, which must be ``y = t w``)."""
    risk = spec.risk.volatility(w)
    net = _net_numerator(spec, w)
    regularization = spec.l1 * np.abs(w).sum() + spec.l2 * (w @ w)
    custom = 0.0
    if handles.custom_objective is not None:
        custom = float(handles.custom_objective.value)
    return {
        "expected_return": net,
        "risk": risk,
        "regularization": float(regularization),
        "ratio": (net - spec.risk_free_rate) / (risk + regularization + custom / t),
        "diversification_ratio": float(spec.risk.sigma @ w / risk),
        "factor": t,
        "objective": t * (risk + regularization) + custom,
    }


def _polish(spec: _Spec, w: np.ndarray, values: dict, handles: _Handles,
            min_return: float | None, X: np.ndarray | None, enabled: bool = True
            ) -> tuple[np.ndarray, dict, PolishReport]:
    """Weights at a corner made exact (see :mod:`._polish`), or the raw ones with a note.

    The polished point must satisfy the bounds exactly, every other built-in constraint to
    1e-12 relative, the certified checks of :func:`._diagnosis._violations`, each
    ``add_constraints`` constraint at least as well as the raw point, and keep the ratio within
    ``RATIO_TOLERANCE`` (relative) of the raw one, plus what the raw point gains from its own
    violations (:func:`._polish.repair_cost`). ``enabled=False`` (``polish=False``) returns
    the raw point with that note."""
    if not enabled:
        return w, values, PolishReport(False, 0, 0.0, 0.0, "polish=False")
    t = values["factor"]
    raw_y = None if handles.y.value is None else np.array(handles.y.value, copy=True)
    raw_custom = [_custom_excess(c, t) for c in handles.custom_constraints]
    polished, n_snapped = snap_and_restore(spec, w, min_return)
    handles.set_y(t * polished)  # custom objective/constraints are read at y = t w
    new_values = _measures(spec, polished, handles, t)
    problems = strict_violations(spec, polished, min_return)
    problems += _violations(spec, polished, handles, min_return, X)
    for i, c in enumerate(handles.custom_constraints):
        if _custom_excess(c, t) > raw_custom[i] + 1e-12:
            problems.append(f"add_constraints[{i}] would hold less well")
    raw_ratio, new_ratio = values["ratio"], new_values["ratio"]
    change = (new_ratio - raw_ratio) / abs(raw_ratio)
    allowed = RATIO_TOLERANCE
    gradient = _ratio_gradient(spec, w, values)
    if gradient is not None:
        allowed += repair_cost(spec, w, min_return, gradient) / abs(raw_ratio)
    if not np.isfinite(change) or change < -allowed:
        problems.append(f"the ratio, which would drop by {-change:.1e} (relative; "
                        f"{allowed:.1e} allowed)")
    if problems:
        handles.set_y(raw_y)
        note = ("kept the solver's weights: the polished point breaks "
                + "; ".join(problems))
        return w, values, PolishReport(False, 0, 0.0, 0.0, note)
    return polished, new_values, PolishReport(
        True, n_snapped, float(np.max(np.abs(polished - w), initial=0.0)), float(change))


def _ratio_gradient(spec: _Spec, w: np.ndarray, values: dict) -> np.ndarray | None:
    """``d ratio / d w`` (a subgradient at a kink), or None with ``add_objective``, whose
    gradient is not known here."""
    if spec.add_objective is not None:
        return None
    risk = spec.risk
    if risk.is_factor:
        cov_w = risk.factor_root @ (risk.factor_root.T @ w) + risk.residual_sd**2 * w
    else:
        cov_w = risk.covariance @ w
    numerator = spec.mu - (spec.fees if spec.fees is not None else 0.0)
    if spec.costs is not None:
        numerator = numerator - spec.costs * np.sign(w - spec.previous)
    denominator = values["risk"] + values["regularization"]
    slope = cov_w / values["risk"] + spec.l1 * np.sign(w) + 2.0 * spec.l2 * w
    return (numerator - values["ratio"] * slope) / denominator


def _custom_excess(constraint, t: float) -> float:
    violation = constraint.violation()
    if violation is None or np.any(~np.isfinite(violation)):
        return np.inf
    return float(np.max(violation)) / max(t, 1.0)
