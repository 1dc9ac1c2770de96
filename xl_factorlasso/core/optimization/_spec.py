"""The specification of one ratio optimisation: validated inputs in weight units.

:func:`specify` turns an estimator's parameters (read, never changed) into a :class:`_Spec`,
raising a ``ValueError`` that names the parameter for anything invalid. Everything downstream
(:mod:`._formulation`, :mod:`._diagnosis`, :mod:`._solve`, :mod:`._screening`, :mod:`._polish`)
reads only the spec. :class:`_Handles` are the variables of one built CVXPY program.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

from ._equations import equations_to_matrix
from ._risk import RiskModel
from ._validation import asset_vector, constraint_names, positive_float, real_float

__all__ = ["specify"]

# A returned solution may violate a constraint by at most this much (weights units, scaled by
# 1 + |right-hand side|); anything worse is a failure, never a result.
_TOLERANCE = 1e-6
# skfolio's guard on the Charnes–Cooper scale.
_MIN_SCALE = 1e-12
_CLARABEL_DEFAULTS = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
_PORTFOLIO_KEYS = ("name", "risk_free_rate", "transaction_costs", "management_fees",
                   "previous_weights")


@dataclass
class _Spec:
    """Validated inputs of one optimisation, in weight units."""

    n: int
    assets: pd.Index | None
    risk: RiskModel
    mu: np.ndarray  # per-asset numerator coefficients (maximum diversification: sigma)
    lower: np.ndarray | None  # may hold -inf
    upper: np.ndarray | None  # may hold +inf
    budget: float | None
    min_budget: float | None
    max_budget: float | None
    max_long: float | None
    max_short: float | None
    costs: np.ndarray | None  # None when all zero
    fees: np.ndarray | None
    previous: np.ndarray  # zeros when previous_weights is None
    previous_given: bool
    A_eq: np.ndarray
    b_eq: np.ndarray
    eq_labels: tuple[str, ...]
    A_ineq: np.ndarray
    b_ineq: np.ndarray
    ineq_labels: tuple[str, ...]
    turnover: float | None
    tracking_error: float | None
    tracking_root: np.ndarray | None  # R with ||R [w; 1]|| = ||X w - b|| (QR of [X, -b])
    tracking_scale: float  # sqrt(T - 1)
    min_returns: list[float] | None
    min_return_is_array: bool
    risk_free_rate: float
    l1: float
    l2: float
    add_objective: Callable | None
    add_constraints: Callable | None
    solver: str
    solver_params: dict
    scale_objective: float
    scale_constraints: float
    h: float  # Charnes–Cooper normalisation: (numerator - r_f) * t == h
    risk_form: str  # "qp", "soc-dense" or "soc-factor"


@dataclass
class _Handles:
    problem: cp.Problem
    y: cp.Expression  # y = t * w, an expression of the variable x (or a stand-in's value)
    t: cp.Variable
    min_return: cp.Parameter | None
    custom_objective: cp.Expression | None
    custom_constraints: list
    fixing: cp.Constraint | None = None  # y[excluded] == 0 in a screened solve
    params: dict = field(default_factory=dict)  # name -> cp.Parameter (a re-usable problem)
    min_return_scale: float = 1.0  # the min_return coefficient is min_return * rc
    x: cp.Variable | None = None  # the solver's variable, y in volatility units
    unscale: np.ndarray | None = None  # y = unscale * x

    def set_y(self, y: np.ndarray | None):
        """Put the variables at ``y`` (the custom objective and constraints are read there)."""
        if self.x is None:
            self.y.value = y
        else:
            self.x.value = None if y is None else np.asarray(y) / self.unscale

    def set_min_return(self, target: float):
        self.min_return.value = self.min_return_scale * target

    def update(self, values: dict):
        """Load new coefficients (same :func:`_signature` as the ones built) into the
        Parameters."""
        for name, param in self.params.items():
            param.value = values[name]
        self.min_return_scale = values["rc"]
        self.unscale = values["unscale"]


@functools.cache
def _installed_solvers() -> tuple[str, ...]:
    """CVXPY's installed solvers, asked once per process (the call probes every solver, and
    every fit checks its solver)."""
    return tuple(cp.installed_solvers())


def _net_numerator(spec: _Spec, w: np.ndarray) -> float:
    """``N(w) = mu'w - fees'w - sum c |w - previous|``, the ratio's numerator before ``r_f``
    (for maximum diversification: the net weighted volatility)."""
    value = spec.mu @ w
    if spec.fees is not None:
        value -= spec.fees @ w
    if spec.costs is not None:
        value -= spec.costs @ np.abs(w - spec.previous)
    return float(value)


def _n_positional(func: Callable, name: str) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    required = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(required) not in (1, 2):
        raise ValueError(
            f"{name} must take 1 argument (y) or 2 arguments (y, t), got {len(required)}"
        )
    return len(required)


def _call_custom(func: Callable, name: str, y: cp.Variable, t: cp.Variable):
    args = (y,) if _n_positional(func, name) == 1 else (y, t)
    try:
        return func(*args)
    except Exception as err:  # noqa: BLE001 - user code: report it with context
        raise ValueError(f"{name} raised {type(err).__name__}: {err}") from err


def specify(est, risk: RiskModel, assets: pd.Index | None, values: np.ndarray | None, y,
            mu: np.ndarray) -> _Spec:
    """Validate the parameters of ``est`` (read as attributes) into a :class:`_Spec`.

    Parameters
    ----------
    est : ConvexRatioOptimization
        The estimator whose ``__init__`` parameters are checked; it is not modified.
    risk : RiskModel
        The resolved covariance; ``assets`` its labels (None when unlabelled).
    values : ndarray of shape (n_observations, n_assets) or None
        The returns ``X``, needed only for ``max_tracking_error``.
    y : array-like of shape (n_observations,) or None
        The benchmark returns given to ``fit``.
    mu : ndarray of shape (n_assets,)
        Per-asset coefficients of the ratio's numerator (the objective's choice).

    Raises
    ------
    ValueError
        Naming the invalid parameter.
    """
    n = risk.sigma.shape[0]
    lower = asset_vector(est.min_weights, "min_weights", n, assets, 0.0,
                         allow_none=True, allow_inf=True)
    upper = asset_vector(est.max_weights, "max_weights", n, assets, 1.0,
                         allow_none=True, allow_inf=True)
    if lower is not None and np.any(lower == np.inf):
        raise ValueError("min_weights cannot be +inf")
    if upper is not None and np.any(upper == -np.inf):
        raise ValueError("max_weights cannot be -inf")
    budget = real_float(est.budget, "budget", allow_none=True)
    min_budget = real_float(est.min_budget, "min_budget", allow_none=True)
    max_budget = real_float(est.max_budget, "max_budget", allow_none=True)
    for name, value in (("min_budget", min_budget), ("max_budget", max_budget)):
        if value is not None and budget is not None:
            raise ValueError(f"budget and {name} cannot both be set; set budget=None to use "
                             f"{name}")
    max_long = positive_float(est.max_long, "max_long")
    max_short = positive_float(est.max_short, "max_short")

    costs = asset_vector(est.transaction_costs, "transaction_costs", n, assets, 0.0)
    if np.any(costs < 0):
        raise ValueError("transaction_costs must be >= 0 (negative costs are not convex)")
    fees = asset_vector(est.management_fees, "management_fees", n, assets, 0.0)
    previous = asset_vector(est.previous_weights, "previous_weights", n, assets, 0.0,
                            allow_none=True)

    A_eq, b_eq, eq_labels, A_ineq, b_ineq, ineq_labels = _linear_rows(est, n, assets, risk)
    turnover = positive_float(est.max_turnover, "max_turnover", strict=False)
    tracking_error = positive_float(est.max_tracking_error, "max_tracking_error")
    tracking_root, tracking_scale = None, 1.0
    if tracking_error is not None:
        tracking_root, tracking_scale = _tracking(values, y)
    min_returns, is_array = _min_returns(est.min_return)

    r_f = real_float(est.risk_free_rate, "risk_free_rate")
    l1 = positive_float(est.l1_coef, "l1_coef", allow_none=False, strict=False)
    l2 = positive_float(est.l2_coef, "l2_coef", allow_none=False, strict=False)
    for name in ("add_objective", "add_constraints"):
        func = getattr(est, name)
        if func is not None:
            if not callable(func):
                raise ValueError(f"{name} must be callable")
            _n_positional(func, name)

    solver = str(est.solver).upper()
    if solver not in _installed_solvers():
        raise ValueError(f"solver {est.solver!r} is not installed; installed: "
                         f"{list(_installed_solvers())}")
    if est.solver_params is not None and not isinstance(est.solver_params, Mapping):
        raise ValueError("solver_params must be a dict")
    solver_params = dict(_CLARABEL_DEFAULTS) if solver == "CLARABEL" else {}
    solver_params.update(est.solver_params or {})

    sigma_bar = float(np.mean(risk.sigma))
    scale_objective = positive_float(est.scale_objective, "scale_objective")
    scale_constraints = positive_float(est.scale_constraints, "scale_constraints")
    if risk.is_factor:
        risk_form = "soc-factor"
    elif l1 == 0 and l2 == 0 and est.add_objective is None:
        risk_form = "qp"
    else:
        risk_form = "soc-dense"

    if est.portfolio_params is not None:
        if not isinstance(est.portfolio_params, Mapping):
            raise ValueError("portfolio_params must be a dict")
        unknown = set(est.portfolio_params) - set(_PORTFOLIO_KEYS)
        if unknown:
            raise ValueError(f"portfolio_params has unknown keys {sorted(unknown)}; allowed: "
                             f"{list(_PORTFOLIO_KEYS)}")
    if not isinstance(est.save_problem, (bool, np.bool_)):
        raise ValueError("save_problem must be a bool")
    if not isinstance(est.polish, (bool, np.bool_)):
        raise ValueError("polish must be a bool")
    if not isinstance(getattr(est, "warm_start", False), (bool, np.bool_)):
        raise ValueError(f"warm_start must be a bool, got {est.warm_start!r}")

    return _Spec(
        n=n, assets=assets, risk=risk, mu=mu, lower=lower, upper=upper, budget=budget,
        min_budget=min_budget, max_budget=max_budget, max_long=max_long, max_short=max_short,
        costs=costs if np.any(costs) else None, fees=fees if np.any(fees) else None,
        previous=previous if previous is not None else np.zeros(n),
        previous_given=previous is not None,
        A_eq=A_eq, b_eq=b_eq, eq_labels=eq_labels, A_ineq=A_ineq, b_ineq=b_ineq,
        ineq_labels=ineq_labels, turnover=turnover, tracking_error=tracking_error,
        tracking_root=tracking_root, tracking_scale=tracking_scale,
        min_returns=min_returns, min_return_is_array=is_array, risk_free_rate=r_f,
        l1=l1, l2=l2, add_objective=est.add_objective, add_constraints=est.add_constraints,
        solver=solver, solver_params=solver_params,
        # sqrt(n) / D is near 1 for a diversified portfolio; below 1 Clarabel's gap tolerances
        # act as absolute ones, so 1 / D (the former default) left 1e-9 D^2 of the objective
        scale_objective=(scale_objective if scale_objective is not None
                         else np.sqrt(n) / sigma_bar),
        scale_constraints=scale_constraints if scale_constraints is not None else 1.0,
        h=sigma_bar, risk_form=risk_form,
    )


def _linear_rows(est, n: int, assets: pd.Index | None, risk: RiskModel) -> tuple:
    """``A_eq, b_eq, eq_labels, A_ineq, b_ineq, ineq_labels`` from ``linear_constraints``
    (names: assets, ``groups``, factors) and ``left_inequality``/``right_inequality``."""
    A_eq, b_eq, eq_labels = np.zeros((0, n)), np.zeros(0), ()
    A_ineq, b_ineq, ineq_labels = np.zeros((0, n)), np.zeros(0), ()
    equations = est.linear_constraints
    if isinstance(equations, str):
        equations = [equations]
    if equations is not None:
        equations = list(np.asarray(equations, dtype=object).reshape(-1))
        names = constraint_names(n, assets, est.groups, risk.loadings)
        if not names and any(isinstance(e, str) and e.strip() for e in equations):
            raise ValueError("linear_constraints need names: pass X (or the covariance) as a "
                             "DataFrame with asset names, or groups")
        parsed = equations_to_matrix(equations, names, n)
        A_eq, b_eq, eq_labels = parsed.A_eq, parsed.b_eq, parsed.equality_labels
        A_ineq, b_ineq, ineq_labels = parsed.A_ineq, parsed.b_ineq, parsed.inequality_labels
    elif est.groups is not None:
        constraint_names(n, assets, est.groups, risk.loadings)  # still validate groups
    if (est.left_inequality is None) != (est.right_inequality is None):
        raise ValueError("left_inequality and right_inequality must be given together")
    if est.left_inequality is not None:
        left = np.asarray(est.left_inequality, dtype=float)
        right = np.asarray(est.right_inequality, dtype=float)
        if left.ndim != 2 or left.shape[1] != n:
            raise ValueError(f"left_inequality must have shape (n_inequalities, {n}), got "
                             f"{left.shape}")
        if right.shape != (left.shape[0],):
            raise ValueError(f"right_inequality must have shape ({left.shape[0]},), got "
                             f"{right.shape}")
        if not (np.all(np.isfinite(left)) and np.all(np.isfinite(right))):
            raise ValueError("left_inequality/right_inequality contain NaN or inf")
        A_ineq = np.vstack([A_ineq, left])
        b_ineq = np.concatenate([b_ineq, right])
        ineq_labels += tuple(f"left_inequality row {i}" for i in range(left.shape[0]))
    return A_eq, b_eq, eq_labels, A_ineq, b_ineq, ineq_labels


def _tracking(values: np.ndarray | None, y) -> tuple[np.ndarray, float]:
    """``(R, sqrt(T - 1))`` with ``||X w - b|| = ||R [w; 1]||`` for ``max_tracking_error``."""
    if values is None:
        raise ValueError("max_tracking_error needs the returns X")
    if y is None:
        raise ValueError("max_tracking_error needs the benchmark returns y in fit(X, y)")
    bench = y.to_numpy(dtype=float) if isinstance(y, (pd.Series, pd.DataFrame)) else (
        np.asarray(y, dtype=float))
    if bench.ndim == 2 and bench.shape[1] == 1:
        bench = bench[:, 0]
    if bench.shape != (values.shape[0],):
        raise ValueError(f"y must be a 1-D benchmark of length {values.shape[0]}, got "
                         f"shape {bench.shape}")
    if not np.all(np.isfinite(bench)):
        raise ValueError("y contains NaN or infinite values")
    # R from a QR of [X, -b]: no T-sized cone.
    root = np.linalg.qr(np.column_stack([values, -bench]), mode="r")
    return root, float(np.sqrt(values.shape[0] - 1))


def _min_returns(min_return) -> tuple[list[float] | None, bool]:
    """``min_return`` as a list of floats, and whether it was given as an array."""
    if min_return is None:
        return None, False
    if np.isscalar(min_return):
        return [real_float(min_return, "min_return")], False
    arr = np.asarray(min_return, dtype=float).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError("min_return must be a finite number or a non-empty array")
    return [float(v) for v in arr], True
