"""``MaximumDiversification`` as a skfolio optimisation estimator, solved by the core optimiser.

skfolio's ``BaseOptimization`` supplies the ecosystem behaviour (``predict`` to ``Portfolio`` /
``Population`` / ``FailedPortfolio``, ``fallback`` / ``raise_on_failure``, investable-asset
masks, ``score``); this module fits the prior, restricts its return distribution to the
investable assets, translates the parameters into the core's (arrays over those assets) and
lets :class:`xl_factorlasso.core.optimization.MaximumDiversification` solve.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import skfolio
import sklearn.base as skb
import sklearn.utils.metadata_routing as skm
from skfolio.optimization import BaseOptimization
from skfolio.prior import BasePrior, EmpiricalPrior
from skfolio.utils.tools import _get_liquidation_turnover_and_cost
from sklearn.utils.validation import validate_data

from ..core.optimization import MaximumDiversification as _CoreMaximumDiversification
from ..core.optimization import OptimizationError as _CoreOptimizationError
from ..core.optimization._exceptions import rescued_message
from ._convert import core_covariance
from ._exceptions import ConvexOptimizationError, translate

__all__ = ["MaximumDiversification"]

# skfolio's wording, so that code matching skfolio's messages keeps working.
_MIP_MESSAGE = (
    "You are using constraints that require a mixed-integer solver and {solver} doesn't "
    "support MIP problems. For an open-source option, we recommend using SCIP by setting "
    "`solver='SCIP'`. To install it, use: `pip install cvxpy[SCIP]`. For commercial "
    "solvers, supported options include MOSEK, GUROBI, or CPLEX."
)
_MIP_SOLVERS = ("SCIP", "MOSEK", "GUROBI", "CPLEX")
# Core warnings that the adapter reports differently (or not at all when it raises).
_ROWS_FAILED = "min_return values failed"
_NOT_PD = "not positive definite"


class MaximumDiversification(BaseOptimization):
    r"""Maximum-diversification portfolio, a skfolio estimator backed by this project's solver.

    Maximises :math:`D(w) = (\sigma^\top w - \text{costs} - f^\top w - r_f) / (\sqrt{w^\top
    \Sigma w} + l_1\lVert w\rVert_1 + l_2\lVert w\rVert_2^2)` with :math:`\Sigma` from
    ``prior_estimator`` and :math:`\sigma = \sqrt{\operatorname{diag}\Sigma}`. Parameters,
    defaults and attributes are skfolio's ``MaximumDiversification``'s (read its documentation);
    the optimum is the same. With a factor-model prior (e.g. ``TimeSeriesFactorModel``) the
    cone uses the factor structure, never an n x n factor, and factor names and factor families
    are usable in ``linear_constraints`` (``"MTUM == 0"``, ``"style <= -0.05"``).

    Deliberate differences from skfolio (``docs/skfolio.md``):

    * ``l2_coef`` adds ``l2 |w|^2`` to the ratio's denominator, independent of the level of
      mean returns (skfolio's effective penalty scales with them);
    * inputs skfolio silently drops are errors: an unknown name in ``linear_constraints`` or in
      a ``min_weights`` / ``max_weights`` / ``transaction_costs`` / ``management_fees`` /
      ``groups`` dict, ``left_inequality`` without ``right_inequality``;
    * asset names are usable in ``linear_constraints`` also alongside array ``groups``;
    * the mixed-integer parameters (``cardinality``, ``group_cardinalities``,
      ``threshold_long``, ``threshold_short``) raise skfolio's "requires a mixed-integer solver"
      ``ValueError``: no MIP solver is used;
    * ``solver_params`` for Clarabel are merged over ``{"tol_gap_abs": 1e-9, "tol_gap_rel":
      1e-9, "tol_feas": 1e-9}`` (skfolio replaces its defaults);
    * failures raise :class:`~xl_factorlasso.skfolio.InfeasibleProblemError` /
      :class:`~xl_factorlasso.skfolio.SolverFailedError` (both skfolio
      ``ConvexOptimizationError``\ s) with skfolio's message; their ``diagnosis`` (and the
      estimator's ``diagnosis_``) names the conflicting constraints;
    * a fit rescued by a fallback warns, quoting the diagnosis (skfolio is silent);
    * ``add_objective`` / ``add_constraints`` get ``w`` (the homogenised weights, as in skfolio)
      and optionally the estimator; terms that are not positively homogeneous of degree one
      depend on the homogenisation scale, which differs from skfolio's;
    * ``problem_values_["factor"]`` and ``["objective"]`` are in this solver's homogenisation
      (``sigma'y = mean(sigma)``); it also has ``"ratio"`` (the maximised ratio) and
      ``"diversification_ratio"`` (``sigma'w / sigma_p``).

    Parameters
    ----------
    prior_estimator : BasePrior, optional
        Supplies the return distribution; default ``EmpiricalPrior()``. Cloned in ``fit``.
    min_weights, max_weights, budget, min_budget, max_budget, max_short, max_long
        Weight bounds and budget, as skfolio.
    cardinality, group_cardinalities, threshold_long, threshold_short
        Mixed-integer constraints: not supported (``ValueError`` when active).
    transaction_costs, management_fees, previous_weights
        As skfolio; they enter the numerator (``previous_weights`` naming assets outside ``X``
        or non-investable assets count as a full liquidation, as skfolio).
    groups, linear_constraints, left_inequality, right_inequality
        Linear constraints, as skfolio (stricter, see above).
    l1_coef, l2_coef, risk_free_rate, min_return, max_tracking_error, max_turnover
        As skfolio (``l2_coef``: see above). ``min_return`` bounds the net weighted volatility.
    solver, solver_params, scale_objective, scale_constraints, save_problem
        Passed to the solver.
    add_objective, add_constraints : callable, optional
        ``f(w)`` or ``f(w, estimator)``; three positional arguments are an error.
    portfolio_params, fallback, previous_weights, raise_on_failure
        skfolio's ``BaseOptimization`` semantics.

    Attributes
    ----------
    weights_ : ndarray of shape (n_assets,) or (n_min_return, n_assets), or None
        Over the full universe of ``X``; non-investable assets get 0.
    problem_values_ : dict or list of dict or None
        ``expected_return``, ``risk``, ``mu_uncertainty_set`` (0), ``regularization``,
        ``factor``, ``objective``, ``ratio``, ``diversification_ratio``.
    prior_estimator_ : BasePrior
        The fitted prior.
    investable_mask_ : ndarray of bool or None
    polish_ : PolishReport, list or None
        The core's corner polishing (see ``docs/maxdiv.md``).
    solve_ : SolveReport or None
        Which path answered (``"dense"``, ``"factor"``, ``"screened"``, ``"cvxpy"``) and its
        certificate (see ``docs/maxdiv.md``, "Dense path").
    problem_ : cvxpy.Problem
        With ``save_problem=True``.
    diagnosis_ : str or None
        Why the last solve failed, in this project's words (the constraints that conflict);
        None when it succeeded. ``error_`` holds skfolio's message.
    n_features_in_, feature_names_in_, fallback_, fallback_chain_, error_
        As skfolio.
    """

    def __init__(
        self,
        prior_estimator: BasePrior | None = None,
        min_weights=0.0,
        max_weights=1.0,
        budget: float | None = 1.0,
        min_budget: float | None = None,
        max_budget: float | None = None,
        max_short: float | None = None,
        max_long: float | None = None,
        cardinality: int | None = None,
        group_cardinalities: dict | None = None,
        threshold_long=None,
        threshold_short=None,
        transaction_costs=0.0,
        management_fees=0.0,
        previous_weights=None,
        groups=None,
        linear_constraints=None,
        left_inequality=None,
        right_inequality=None,
        l1_coef: float = 0.0,
        l2_coef: float = 0.0,
        risk_free_rate: float = 0.0,
        min_return=None,
        max_tracking_error=None,
        max_turnover=None,
        solver: str = "CLARABEL",
        solver_params: dict | None = None,
        scale_objective: float | None = None,
        scale_constraints: float | None = None,
        save_problem: bool = False,
        add_objective: Callable | None = None,
        add_constraints: Callable | None = None,
        portfolio_params: dict | None = None,
        fallback=None,
        raise_on_failure: bool = True,
    ):
        super().__init__(portfolio_params=portfolio_params, fallback=fallback,
                         previous_weights=previous_weights, raise_on_failure=raise_on_failure)
        self.prior_estimator = prior_estimator
        self.min_weights = min_weights
        self.max_weights = max_weights
        self.budget = budget
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.max_short = max_short
        self.max_long = max_long
        self.cardinality = cardinality
        self.group_cardinalities = group_cardinalities
        self.threshold_long = threshold_long
        self.threshold_short = threshold_short
        self.transaction_costs = transaction_costs
        self.management_fees = management_fees
        self.groups = groups
        self.linear_constraints = linear_constraints
        self.left_inequality = left_inequality
        self.right_inequality = right_inequality
        self.l1_coef = l1_coef
        self.l2_coef = l2_coef
        self.risk_free_rate = risk_free_rate
        self.min_return = min_return
        self.max_tracking_error = max_tracking_error
        self.max_turnover = max_turnover
        self.solver = solver
        self.solver_params = solver_params
        self.scale_objective = scale_objective
        self.scale_constraints = scale_constraints
        self.save_problem = save_problem
        self.add_objective = add_objective
        self.add_constraints = add_constraints

    # ------------------------------------------------------------------ public API

    def get_metadata_routing(self) -> skm.MetadataRouter:
        """Metadata passed to ``fit`` / ``partial_fit`` goes to the same method of
        ``prior_estimator`` (e.g. ``factors`` for ``TimeSeriesFactorModel``)."""
        return skm.MetadataRouter(owner=type(self).__name__).add(
            prior_estimator=self.prior_estimator,
            method_mapping=skm.MethodMapping()
            .add(caller="fit", callee="fit")
            .add(caller="partial_fit", callee="partial_fit"),
        )

    def fit(self, X, y=None, **fit_params) -> MaximumDiversification:
        """Fit the prior on ``X`` and find the maximum-diversification weights.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_assets)
            Asset returns; an all-NaN column is a non-investable asset (weight 0).
        y : array-like of shape (n_observations,), optional
            Benchmark returns for ``max_tracking_error`` (also passed to the prior).
        **fit_params
            Routed to ``prior_estimator.fit`` (metadata routing), e.g. ``factors=F``.

        Returns
        -------
        self
        """
        if hasattr(self, "weights_"):
            del self.weights_  # a fresh fit: new prior, new asset schema
        return self._fit(X, y, "fit", **fit_params)

    def partial_fit(self, X, y=None, **fit_params) -> MaximumDiversification:
        """Update the prior with new observations (its ``partial_fit``) and solve afresh.

        Only ``fallback=None`` or ``"previous_weights"`` is allowed, as in skfolio (other
        fallbacks have not seen the earlier observations). Each call must receive only new
        observations.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_assets)
            New asset returns.
        y : array-like, optional
            Benchmark returns for ``max_tracking_error``.
        **fit_params
            Routed to ``prior_estimator.partial_fit``.

        Returns
        -------
        self
        """
        return self._fit(X, y, "partial_fit", **fit_params)

    def _run_fallback_chain(self, X, y, primary_error: Exception, **fit_params) -> None:
        """skfolio's chain, plus the core's warning when a fallback rescues the fit: the
        weights are then not the ones asked for (skfolio says nothing)."""
        super()._run_fallback_chain(X, y, primary_error, **fit_params)
        chain = self.fallback_chain_
        owner = f"{type(self).__name__}.{getattr(self, '_method', 'fit')}"
        error = getattr(primary_error, "diagnosis", str(primary_error))
        warnings.warn(rescued_message(owner, error, chain[-1][0], len(chain) - 2), UserWarning,
                      stacklevel=_caller_level())

    # ------------------------------------------------------------------ fitting

    def _fit(self, X, y, method: str, **fit_params) -> MaximumDiversification:
        routed = skm.process_routing(self, method, **fit_params)
        self._method = method  # for the rescue warning's wording
        first_call = not hasattr(self, "weights_")
        validate_data(self, X, skip_check_array=True, reset=first_call,
                      ensure_all_finite="allow-nan")
        if first_call:
            prior = EmpiricalPrior() if self.prior_estimator is None else self.prior_estimator
            if not isinstance(prior, BasePrior):
                raise TypeError(f"prior_estimator must be a skfolio BasePrior, got "
                                f"{type(prior).__name__}")
            self.prior_estimator_ = skb.clone(prior)
        if method == "partial_fit":
            self._validate_partial_fit_fallback()

        call = getattr(self.prior_estimator_, method, None)
        if call is None:
            raise TypeError(f"{type(self.prior_estimator_).__name__} does not implement "
                            f"{method}; use a prior that does, or call fit")
        with warnings.catch_warnings(record=True) as prior_warnings:
            warnings.simplefilter("always")
            call(X, y, **routed.prior_estimator[method])
        _replay(prior_warnings)
        prior_repaired = any(_NOT_PD in str(w.message) for w in prior_warnings)
        distribution = self._prepare_investable_distribution(
            self.prior_estimator_.return_distribution_, slim=True)
        # Batch failures reach the fit wrapper (which runs the fallback chain once, on the
        # original inputs); online ones are handled here, after the prior has learnt.
        with self._handle_optimization_errors(X, y, method=method,
                                              enabled=method == "partial_fit"):
            self._solve(distribution, y, prior_repaired)
        return self

    def _solve(self, distribution, y, prior_repaired: bool):
        # never a previous fit's after a failure
        self.problem_values_, self.polish_, self.diagnosis_ = None, None, None
        self.solve_ = None
        mask = getattr(self, "investable_mask_", None)
        names = getattr(self, "feature_names_in_", None)
        n_full = len(mask) if mask is not None else distribution.returns.shape[1]
        assets = names[mask] if names is not None and mask is not None else names
        n = distribution.returns.shape[1]
        self._check_mixed_integer(n)

        liquidation = 0.0
        if self.previous_weights is not None and self.transaction_costs is not None:
            _, liquidation = _get_liquidation_turnover_and_cost(
                previous_weights=self.previous_weights, transaction_costs=self.transaction_costs,
                assets_names=names, investable_mask=mask)
            liquidation = float(liquidation)
        # A full liquidation costs a constant per period: in the ratio's numerator it acts
        # exactly like a higher risk-free rate (skfolio's ``liq * t`` in the homogenised form).
        risk_free_rate = self.risk_free_rate
        min_return = self.min_return
        if liquidation:
            risk_free_rate = float(risk_free_rate) + liquidation
            if min_return is not None:
                min_return = np.asarray(min_return, dtype=float) + liquidation
                min_return = float(min_return) if min_return.ndim == 0 else min_return

        vector = _AssetInputs(names, mask, n_full)
        returns = distribution.returns
        X_core = pd.DataFrame(returns, columns=pd.Index(assets)) if assets is not None else returns
        core = _CoreMaximumDiversification(
            covariance=core_covariance(distribution, assets),
            min_weights=vector(self.min_weights, "min_weights", 0.0),
            max_weights=vector(self.max_weights, "max_weights", 1.0),
            budget=self.budget, min_budget=self.min_budget, max_budget=self.max_budget,
            max_short=self.max_short, max_long=self.max_long,
            # costs may price the liquidation of previous holdings outside X (as skfolio)
            transaction_costs=vector(self.transaction_costs, "transaction_costs", 0.0,
                                     outside=frozenset(self.previous_weights)
                                     if isinstance(self.previous_weights, Mapping)
                                     else frozenset()),
            management_fees=vector(self.management_fees, "management_fees", 0.0),
            previous_weights=vector(self.previous_weights, "previous_weights", 0.0,
                                    strict=False),
            groups=vector.groups(self.groups),
            linear_constraints=self.linear_constraints,
            left_inequality=vector.matrix(self.left_inequality),
            right_inequality=self.right_inequality,
            l1_coef=self.l1_coef, l2_coef=self.l2_coef, risk_free_rate=risk_free_rate,
            min_return=min_return, max_tracking_error=self.max_tracking_error,
            max_turnover=self.max_turnover, solver=self.solver,
            solver_params=self.solver_params, scale_objective=self.scale_objective,
            scale_constraints=self.scale_constraints, save_problem=self.save_problem,
            add_objective=self._custom(self.add_objective, "add_objective"),
            add_constraints=self._custom(self.add_constraints, "add_constraints"),
        )
        try:
            with warnings.catch_warnings(record=True) as core_warnings:
                warnings.simplefilter("always")
                core.fit(X_core, _benchmark(y) if self.max_tracking_error is not None else None)
        except _CoreOptimizationError as err:
            self.diagnosis_ = str(err)
            raise translate(err, self.solver) from err
        finally:
            if self.save_problem and hasattr(core, "problem_"):
                self.problem_ = core.problem_
            errors = getattr(core, "error_", None)
            raising = isinstance(errors, list) and self.raise_on_failure
            # outside the recording block: a replayed warning must not be recorded again
            _replay(w for w in core_warnings
                    if not (prior_repaired and _NOT_PD in str(w.message))
                    and not (raising and _ROWS_FAILED in str(w.message)))
        self.polish_ = core.polish_
        self.solve_ = getattr(core, "solve_", None)
        if isinstance(core.weights_, pd.DataFrame):  # an array of min_return values
            failed = [e is not None for e in errors] if errors is not None else [False] * len(
                core.weights_)
            if any(failed) and self.raise_on_failure:
                first = next(e for e in errors if e is not None)
                raise ConvexOptimizationError(first)
            weights = self._expand_weights_to_full_universe(
                np.array(core.weights_, dtype=float))
            weights[np.asarray(failed)] = np.nan
            self.problem_values_ = [None if v is None else _problem_values(v, liquidation)
                                    for v in core.problem_values_]
            self.error_ = list(errors) if errors is not None else [None] * len(failed)
        else:
            weights = self._expand_weights_to_full_universe(
                np.array(core.weights_, dtype=float))
            self.problem_values_ = _problem_values(core.problem_values_, liquidation)
        self.weights_ = weights

    def _check_mixed_integer(self, n_assets: int):
        def active(value) -> bool:
            if value is None:
                return False
            if isinstance(value, Mapping):
                return any(v != 0 for v in value.values())
            return bool(np.any(np.asarray(value, dtype=float) != 0))

        if ((self.cardinality is not None and self.cardinality < n_assets)
                or self.group_cardinalities is not None
                or active(self.threshold_long) or active(self.threshold_short)):
            if str(self.solver).upper() not in _MIP_SOLVERS:
                raise ValueError(_MIP_MESSAGE.format(solver=self.solver))
            raise ValueError("cardinality, group_cardinalities and thresholds are not supported "
                             "by xl_factorlasso's MaximumDiversification; use "
                             "skfolio.optimization.MaximumDiversification with a MIP solver")

    def _custom(self, func: Callable | None, name: str) -> Callable | None:
        """skfolio's ``f(w)`` / ``f(w, estimator)`` as the core's one-argument callable."""
        if func is None:
            return None
        try:
            count = func.__code__.co_argcount
        except AttributeError as err:
            raise ValueError(f"{name} is not a Python function (no __code__)") from err
        if count not in (1, 2):
            raise ValueError(f"Custom functions must have 1 or 2 positional arguments, got "
                             f"{count}")
        estimator = self

        def adapted(w):
            try:
                return func(w) if count == 1 else func(w, estimator)
            except Exception as err:  # noqa: BLE001 - user code: say which callable failed
                raise TypeError(f"Error while calling {name}: {type(err).__name__}: {err}. "
                                f"{name} must take the weight variable, or the weight "
                                "variable and the estimator") from err

        return adapted


class _AssetInputs:
    """Per-asset parameters (scalar, dict by asset name, or array over the full universe) as
    scalars or arrays over the investable assets, the core's input."""

    def __init__(self, names: np.ndarray | None, mask: np.ndarray | None, n_full: int):
        self.names, self.mask, self.n_full = names, mask, n_full

    def _dict(self, value: Mapping, name: str, fill: float, strict: bool,
              outside: frozenset = frozenset()) -> np.ndarray:
        if self.names is None:
            raise ValueError(f"If `{name}` is provided as a dictionary, you must input `X` as a "
                             "DataFrame with assets names in columns")
        known = set(self.names) | outside
        unknown = [k for k in value if k not in known]
        if unknown and strict:  # skfolio drops them silently
            raise ValueError(f"{name} refers to unknown assets {unknown[:10]}")
        return np.array([value.get(a, fill) for a in self.names], dtype=float)

    def _restrict(self, array: np.ndarray) -> np.ndarray:
        if self.mask is not None and array.shape[-1] == self.n_full:
            return array[..., self.mask]
        return array

    def __call__(self, value, name: str, fill: float, strict: bool = True,
                 outside: frozenset = frozenset()):
        """``outside``: names allowed although not in ``X`` (ignored here)."""
        if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            return value
        if isinstance(value, Mapping):
            return self._restrict(self._dict(value, name, fill, strict, outside))
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return value  # the core names the parameter in its error
        return self._restrict(array) if array.ndim == 1 else value

    def matrix(self, value):
        if value is None:
            return None
        array = np.asarray(value)
        return self._restrict(array) if array.ndim == 2 else value

    def groups(self, value):
        if value is None:
            return None
        if isinstance(value, Mapping):
            if self.names is None:
                raise ValueError("If `groups` is provided as a dictionary, you must input `X` "
                                 "as a DataFrame with assets names in columns")
            unknown = [k for k in value if k not in set(self.names)]
            if unknown:
                raise ValueError(f"groups refers to unknown assets {unknown[:10]}")
            keep = set(self.names if self.mask is None else self.names[self.mask])
            return {k: v for k, v in value.items() if k in keep}
        array = np.asarray(value, dtype=object)
        return self._restrict(array) if array.ndim in (1, 2) else value


def _benchmark(y):
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError("If `max_tracking_error` is provided, `y` must be a 1d-array, a "
                             "single-column DataFrame or a Series")
        return y.iloc[:, 0]
    return y


def _problem_values(values: dict, liquidation: float) -> dict:
    """The core's ``problem_values_`` under skfolio's keys (and the core's extra ones)."""
    return {
        "expected_return": float(values["expected_return"]) - liquidation,
        "risk": float(values["risk"]),
        "mu_uncertainty_set": 0.0,
        "regularization": float(values["regularization"]),
        "factor": float(values["factor"]),
        "objective": float(values["objective"]),
        "ratio": float(values["ratio"]),
        "diversification_ratio": float(values["diversification_ratio"]),
    }


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside skfolio, contextlib and this package: the
    user's ``fit`` call, however deep skfolio's fit wrapper nests the fallback chain."""
    inside = (os.path.dirname(skfolio.__file__), os.path.dirname(contextlib.__file__) +
              os.sep + "contextlib", os.path.dirname(os.path.dirname(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _replay(records) -> None:
    """Re-issue recorded warnings (they were recorded to drop duplicates)."""
    for record in records:
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


