"""Feasibility diagnosis: why a ratio optimisation has no answer, in the user's words.

:func:`_precheck` solves the linear part of the constraints as an LP (:mod:`._feasibility`)
before any cone is built: an infeasible set is reported with an irreducible conflict (the
constraints that cannot hold together), a ratio that cannot be positive with the risk-free rate.
:func:`_violations` certifies a returned solution: every constraint the weights break by more
than ``_TOLERANCE`` is named, and the solve is then a failure, never a result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ._exceptions import InfeasibleProblemError
from ._feasibility import (
    LinearBlock,
    LinearSystem,
    _box,
    box_budget_maximum,
    irreducible_conflict,
)
from ._spec import _TOLERANCE, _Handles, _net_numerator, _Spec

__all__: list[str] = []


def _linear_system(spec: _Spec) -> LinearSystem:
    """The linear part of the constraints as an LP in ``w`` (see :mod:`._feasibility`).

    Variables: ``w`` (free), then, when needed, ``p >= w`` (long parts, for ``max_long``),
    ``q >= -w`` (short parts, for ``max_short``) and ``z >= |w - previous|`` (for costs), all
    auxiliaries >= 0.
    """
    n = spec.n
    aux = [key for key, on in (("long", spec.max_long is not None),
                               ("short", spec.max_short is not None),
                               ("cost", spec.costs is not None)) if on]
    n_vars = n * (1 + len(aux))
    eye = sp.identity(n, format="csr")
    ones = sp.csr_matrix(np.ones((1, n)))

    def rows(w=None, **parts) -> sp.csr_matrix:
        """Stack per-variable blocks (same row count) into rows over all variables."""
        m = (w if w is not None else next(iter(parts.values()))).shape[0]
        blocks = [w if w is not None else sp.csr_matrix((m, n))]
        blocks += [parts.get(key, sp.csr_matrix((m, n))) for key in aux]
        return sp.hstack(blocks, format="csr")

    system = LinearSystem(n_vars=n_vars, n_assets=n)
    add = system.blocks.append
    if spec.lower is not None and np.isfinite(spec.lower).any():
        add(LinearBlock("min_weights", lower=spec.lower))
    if spec.upper is not None and np.isfinite(spec.upper).any():
        add(LinearBlock("max_weights", upper=spec.upper))
    if spec.budget is not None:
        add(LinearBlock(f"budget={spec.budget:g}", A_eq=rows(ones),
                        b_eq=np.array([spec.budget])))
    if spec.min_budget is not None:
        add(LinearBlock(f"min_budget={spec.min_budget:g}", A_ub=rows(-ones),
                        b_ub=np.array([-spec.min_budget])))
    if spec.max_budget is not None:
        add(LinearBlock(f"max_budget={spec.max_budget:g}", A_ub=rows(ones),
                        b_ub=np.array([spec.max_budget])))
    if spec.max_long is not None:  # w - p <= 0, sum(p) <= max_long
        add(LinearBlock(f"max_long={spec.max_long:g}",
                        A_ub=sp.vstack([rows(eye, long=-eye), rows(long=ones)], format="csr"),
                        b_ub=np.r_[np.zeros(n), spec.max_long]))
    if spec.max_short is not None:  # -w - q <= 0, sum(q) <= max_short
        add(LinearBlock(f"max_short={spec.max_short:g}",
                        A_ub=sp.vstack([rows(-eye, short=-eye), rows(short=ones)],
                                       format="csr"),
                        b_ub=np.r_[np.zeros(n), spec.max_short]))
    for i, text in enumerate(spec.eq_labels):
        add(LinearBlock(repr(text), A_eq=rows(sp.csr_matrix(spec.A_eq[i:i + 1])),
                        b_eq=spec.b_eq[i:i + 1]))
    for i, text in enumerate(spec.ineq_labels):
        name = text if text.startswith("left_inequality row") else repr(text)
        add(LinearBlock(name, A_ub=rows(sp.csr_matrix(spec.A_ineq[i:i + 1])),
                        b_ub=spec.b_ineq[i:i + 1]))
    if spec.turnover is not None:  # per asset: previous - turnover <= w <= previous + turnover
        add(LinearBlock(f"max_turnover={spec.turnover:g}",
                        lower=spec.previous - spec.turnover,
                        upper=spec.previous + spec.turnover))
    objective = np.zeros(n_vars)  # maximise N(w) = (mu - fees)'w - costs'z
    objective[:n] = spec.mu - (spec.fees if spec.fees is not None else 0.0)
    if spec.costs is not None:
        system.structural.append(LinearBlock(
            "costs", A_ub=sp.vstack([rows(eye, cost=-eye), rows(-eye, cost=-eye)],
                                    format="csr"),
            b_ub=np.r_[spec.previous, -spec.previous]))
        start = n * (1 + aux.index("cost"))
        objective[start:start + n] = -spec.costs
    system.objective = objective
    return system


def _asset_label(spec: _Spec) -> Callable[[int], str]:
    return (lambda i: repr(spec.assets[i])) if spec.assets is not None else (lambda i: f"#{i}")


def _explain_conflict(spec: _Spec, conflict: list[str]) -> str:
    """Extra detail for the common bound/budget conflicts."""
    names = {c.split("=")[0] for c in conflict}
    label = _asset_label(spec)
    details = []
    if names == {"min_weights", "max_weights"}:
        bad = np.flatnonzero(spec.lower > spec.upper)
        if bad.size:
            details.append("min_weights > max_weights for " +
                           ", ".join(label(i) for i in bad[:10]))
    if names == {"min_weights", "budget"} or names == {"min_weights", "max_budget"}:
        details.append(f"sum(min_weights) = {spec.lower.sum():g}")
    if names == {"max_weights", "budget"} or names == {"max_weights", "min_budget"}:
        details.append(f"sum(max_weights) = {spec.upper.sum():g}")
    return f" ({'; '.join(details)})" if details else ""


def _box_budget_top(spec: _Spec) -> float | None:
    """The largest net weighted volatility when the linear part is only per-asset bounds
    (finite lower ones), ``max_turnover`` and a budget (the dense path's family), in closed
    form (:func:`._feasibility.box_budget_maximum`); None for any other family or an empty
    set (the LP then decides, and names the conflict)."""
    if spec.budget is None or spec.lower is None or spec.A_eq.size or spec.A_ineq.size:
        return None
    if any(v is not None for v in (spec.min_budget, spec.max_budget, spec.max_long,
                                   spec.max_short)):
        return None
    box = _box(spec)  # (the caps it drops cannot bind: the maximum is the same)
    if not np.all(np.isfinite(box.lower)):
        return None
    a = spec.mu - (spec.fees if spec.fees is not None else 0.0)
    return box_budget_maximum(a, box, spec.costs, spec.previous)


def _precheck(spec: _Spec) -> float:
    """Raise InfeasibleProblemError if the linear constraints admit no portfolio with a
    positive ratio; return the largest attainable net weighted volatility."""
    top = _box_budget_top(spec)
    status = "optimal"
    if top is None:  # another family, or no portfolio: the LP (and its conflict)
        system = _linear_system(spec)
        status, top = system.maximum()
    if status == "infeasible":
        conflict = irreducible_conflict(system) or [b.name for b in system.blocks]
        raise InfeasibleProblemError(
            "Infeasible: no portfolio satisfies these constraints together: "
            f"{', '.join(conflict)}{_explain_conflict(spec, conflict)}. Dropping or "
            "relaxing any one of them makes the rest feasible.",
            conflicts=tuple(conflict),
        )
    if status == "optimal" and top - spec.risk_free_rate <= _margin(spec):
        raise InfeasibleProblemError(
            f"Infeasible: risk_free_rate={spec.risk_free_rate:g} is not below the largest net "
            f"weighted volatility the constraints allow ({top:.6g}), so the diversification "
            "ratio cannot be positive",
            conflicts=("risk_free_rate",),
        )
    return top


def _margin(spec: _Spec) -> float:
    """How far the net weighted volatility must exceed ``risk_free_rate`` for a positive
    ratio that round-off cannot flip."""
    return 1e-9 * float(np.max(spec.mu))


def _precheck_holds_at(spec: _Spec, w: np.ndarray) -> bool:
    """Whether ``w``, a feasible portfolio (an answer that passed :func:`_violations`),
    settles what :func:`_precheck` establishes: the constraints admit a portfolio, and its net
    weighted volatility exceeds ``risk_free_rate`` (so the largest one does)."""
    return _net_numerator(spec, w) - spec.risk_free_rate > _margin(spec)


def _check_min_return(spec: _Spec, target: float | None, top: float):
    """Raise InfeasibleProblemError when ``min_return`` exceeds ``top``, the largest net
    numerator the linear constraints allow (from :func:`_precheck`)."""
    if target is not None and target > top + _TOLERANCE * (1 + abs(top)):
        raise InfeasibleProblemError(
            f"Infeasible: min_return={target:g} exceeds the largest net weighted volatility "
            f"the constraints allow ({top:.6g}); min_return bounds sigma'w - costs - fees",
            conflicts=("min_return",),
        )


def _violations(spec: _Spec, w: np.ndarray, handles: _Handles,
                min_return: float | None, X: np.ndarray | None) -> list[str]:
    """Every constraint the weights break by more than the tolerance."""
    out: list[str] = []

    def check(name: str, excess: np.ndarray | float, rhs: np.ndarray | float = 0.0):
        excess = np.atleast_1d(np.asarray(excess, dtype=float))
        limit = _TOLERANCE * (1.0 + np.abs(np.broadcast_to(rhs, excess.shape)))
        if excess.size and np.any(excess > limit):
            out.append(f"{name} by {float(np.max(excess)):.2e}")

    label = _asset_label(spec)
    for bound, sign, name in ((spec.lower, 1.0, "min_weights"),
                              (spec.upper, -1.0, "max_weights")):
        if bound is not None:
            finite = np.isfinite(bound)
            excess = sign * (bound[finite] - w[finite])
            limit = _TOLERANCE * (1 + np.max(np.abs(bound[finite]), initial=0.0))
            if excess.size and np.max(excess) > limit:
                i = np.flatnonzero(finite)[int(np.argmax(excess))]
                out.append(f"{name} for {label(i)} by {float(np.max(excess)):.2e}")
    total = w.sum()
    if spec.budget is not None:
        check(f"budget={spec.budget:g}", abs(total - spec.budget), spec.budget)
    if spec.min_budget is not None:
        check("min_budget", spec.min_budget - total, spec.min_budget)
    if spec.max_budget is not None:
        check("max_budget", total - spec.max_budget, spec.max_budget)
    if spec.max_long is not None:
        check("max_long", np.clip(w, 0, None).sum() - spec.max_long, spec.max_long)
    if spec.max_short is not None:
        check("max_short", np.clip(-w, 0, None).sum() - spec.max_short, spec.max_short)
    for i, text in enumerate(spec.eq_labels):
        check(repr(text), abs(spec.A_eq[i] @ w - spec.b_eq[i]), spec.b_eq[i])
    for i, text in enumerate(spec.ineq_labels):
        check(repr(text), spec.A_ineq[i] @ w - spec.b_ineq[i], spec.b_ineq[i])
    if spec.turnover is not None:
        check("max_turnover", np.abs(w - spec.previous) - spec.turnover, spec.turnover)
    if spec.tracking_error is not None:
        te = np.linalg.norm(spec.tracking_root @ np.r_[w, 1.0]) / spec.tracking_scale
        check("max_tracking_error", te - spec.tracking_error, spec.tracking_error)
    if min_return is not None:
        check("min_return", min_return - _net_numerator(spec, w), min_return)
    for i, c in enumerate(handles.custom_constraints):
        violation = c.violation()
        scale = max(float(handles.t.value), 1.0)
        if violation is None or np.any(~np.isfinite(violation)):
            out.append(f"add_constraints[{i}] could not be evaluated")
        else:
            check(f"add_constraints[{i}]", np.max(violation) / scale)
    return out

