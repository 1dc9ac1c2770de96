"""The base of the ratio optimisers: parameters -> spec -> solve -> weights, fallback, predict.

:class:`ConvexRatioOptimization` maximises ``(N(w) - r_f) / (sigma_p(w) + l1 |w|_1 + l2
|w|_2^2)`` with ``N(w) = mu'w - fees'w - costs(w)`` under skfolio's constraint set. It owns
everything but the choice of ``mu``, which a thin subclass makes in :meth:`_numerator` (for
:class:`~._maximum_diversification.MaximumDiversification`, ``mu = sigma``). The pieces:
validation (:mod:`._spec`), the CVXPY model (:mod:`._formulation`), feasibility diagnosis
(:mod:`._diagnosis`), one solve and its polishing (:mod:`._solve`), the dense path for long-only
bounds and a budget (:mod:`._dense`) and the screened solve for large dense problems
(:mod:`._screening`).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd

from .._base import BaseEstimator, clone
from . import _dense, _screening
from ._diagnosis import _check_min_return, _precheck, _precheck_holds_at
from ._exceptions import OptimizationError, rescued_message
from ._formulation import _build_parametric, _build_problem, _coefficients, _reusable, _signature
from ._portfolio import Population, Portfolio
from ._risk import RiskModel, resolve_risk_model
from ._screening import _screenable
from ._solve import _measures, _polish, _solve_once
from ._spec import _Handles, _Spec, specify
from ._validation import asset_vector, check_returns, real_float

__all__ = ["ConvexRatioOptimization", "NotFittedError"]

# An objective below this is solved again with scale_objective raised to bring it near 1.
_SMALL_OBJECTIVE = 1e-2
# When CVXPY fails, an active-set point certified within this (relative ratio) is returned,
# with a warning, instead of the failure.
_KEPT_GAP = 1e-6


class NotFittedError(ValueError, AttributeError):
    """``predict``/``score`` called before ``fit``."""


class ConvexRatioOptimization(BaseEstimator):
    """Base of the convex ratio optimisers (not to be instantiated).

    Subclasses define ``__init__`` with the parameters documented on
    :class:`~._maximum_diversification.MaximumDiversification` (stored untouched) and
    :meth:`_numerator`. Fitted attributes are documented there too.
    """

    _estimator_type = None  # an optimiser: y (benchmark returns) is optional

    def _numerator(self, risk: RiskModel) -> np.ndarray:
        """Per-asset coefficients ``mu`` of the ratio's numerator ``mu'w``, shape (n_assets,)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ validation

    def _validate(self, X, y) -> tuple[_Spec, np.ndarray | None]:
        """The validated :class:`._spec._Spec` and the returns as an array (None without X);
        sets ``covariance_``."""
        values, assets = None, None
        if X is not None:
            values, assets, _ = check_returns(X)
        elif self.covariance is None or isinstance(self.covariance, str):
            raise ValueError("X is required unless a covariance matrix or FactorCovariance is "
                             "given")
        risk, assets, fitted_cov = resolve_risk_model(self.covariance, self.span, values, assets)
        self.covariance_ = fitted_cov
        return specify(self, risk, assets, values, y, self._numerator(risk)), values

    def _fallbacks(self) -> list:
        fallback = self.fallback
        if fallback is None:
            return []
        items = list(fallback) if isinstance(fallback, (list, tuple)) else [fallback]
        for item in items:
            if isinstance(item, str):
                if item != "previous_weights":
                    raise ValueError(f"fallback string {item!r} is not supported; only "
                                     "'previous_weights' is")
            elif not (hasattr(item, "fit") and hasattr(item, "get_params")):
                raise ValueError(f"fallback must be an estimator, 'previous_weights' or a list of "
                                 f"them, got {type(item).__name__}")
        return items

    # ------------------------------------------------------------------ solve

    def _optimize(self, spec: _Spec, X: np.ndarray | None):
        reason = _dense.unattained(spec)
        if reason is not None:
            raise ValueError(reason)
        if not spec.min_return_is_array:
            target = spec.min_returns[0] if spec.min_returns else None
            reduced = _dense.at_min_budget(spec)
            dense = self._solve_dense(reduced or spec, X)
            if not (isinstance(dense, tuple) and _precheck_holds_at(spec, dense[0])):
                # (a dense answer is a feasible point with a positive net ratio: what the
                # pre-check's LP would establish; with linear constraints that LP can take
                # longer than the solve)
                _check_min_return(spec, target, _precheck(spec))
            if isinstance(dense, tuple):
                w, values, handles = dense
            elif isinstance(dense, _dense.Uncertified):
                w, values, handles = self._better_of(spec, X, target, dense)
            else:
                w, values, handles = self._solve_single(spec, X, target, dense or "")
            if reduced is not None and self.solve_.path in ("dense", "factor"):
                said = f"{self.solve_.note}; " if self.solve_.note else ""
                self.solve_ = dataclasses.replace(self.solve_, note=(
                    f"{said}the budget range was solved at min_budget (the same optimal ratio)"))
            if self.save_problem:
                self.problem_ = handles.problem
            w, values, self.polish_ = _polish(spec, w, values, handles, target, X, self.polish)
            return self._label(spec, w), values, None

        top = _precheck(spec)
        self.solve_ = _dense.SolveReport("cvxpy")
        handles = self._problem(spec, "full")
        if self.save_problem:
            self.problem_ = handles.problem
        rows, all_values, errors, reports = [], [], [], []
        for target in spec.min_returns:
            try:
                _check_min_return(spec, target, top)
                handles.set_min_return(target)
                w, values = _solve_once(spec, handles, target, X)
                w, values, report = _polish(spec, w, values, handles, target, X, self.polish)
                rows.append(w)
                all_values.append(values)
                errors.append(None)
                reports.append(report)
            except OptimizationError as err:
                rows.append(np.full(spec.n, np.nan))
                all_values.append(None)
                errors.append(str(err))
                reports.append(None)
        self.polish_ = reports
        failed = [e for e in errors if e is not None]
        if len(failed) == len(errors):
            raise OptimizationError(f"All {len(errors)} optimisations (one per min_return) failed; "
                                    f"last error: {failed[-1]}")
        if failed:
            warnings.warn(f"{len(failed)} of {len(errors)} min_return values failed; their rows of "
                          "weights_ are NaN (see error_)", UserWarning, stacklevel=3)
        index = pd.Index(spec.min_returns, name="min_return")
        weights = pd.DataFrame(np.vstack(rows), index=index, columns=self._columns(spec))
        return weights, all_values, errors if failed else None

    def _solve_dense(self, spec: _Spec, X: np.ndarray | None):
        """The dense active-set solver's ``(w, problem_values, handles)`` (setting ``solve_``),
        or why it gave none (a note), or a point it could not certify
        (:class:`._dense.Uncertified`), or None when the family is not its
        (:func:`._dense.dense_eligible`)."""
        if not _dense.dense_eligible(spec, self.save_problem):
            return None
        previous = getattr(self, "_warm_weights", None)
        start = None if previous is None else _dense.warm_state(
            spec, previous, getattr(self, "_warm_holdings", None))
        dense = _dense.solve_dense(spec, X, start)
        if isinstance(dense, (str, _dense.Uncertified)):
            return dense
        w, gap, handles, exchanges, warm = dense
        path = "factor" if spec.risk.is_factor else "dense"
        self.solve_ = _dense.SolveReport(path, gap, exchanges, warm_start=warm)
        return w, _measures(spec, w, handles, handles.t.value), handles

    def _better_of(self, spec: _Spec, X: np.ndarray | None, target: float | None,
                   point: _dense.Uncertified):
        """CVXPY's answer, or the active-set ``point`` when its ratio is higher by more than
        the gap tolerance (its gap, above the tolerance, is still a certified bound; CVXPY's
        answer has none), or when CVXPY fails and the point is certified within
        ``_KEPT_GAP`` (with a warning)."""
        w, gap, handles, exchanges, warm = point.answer
        values = _measures(spec, w, handles, handles.t.value)
        path = "factor" if spec.risk.is_factor else "dense"
        try:
            answer, caught = _recording(self._solve_single, spec, X, target, point.note)
        except OptimizationError as err:
            if not gap <= _KEPT_GAP:
                raise
            warnings.warn(f"The solver failed ({err}); the weights are the active-set solver's, "
                          f"within {gap:.1e} of the optimal ratio (certified)", UserWarning,
                          stacklevel=4)
            self.solve_ = _dense.SolveReport(path, gap, exchanges, warm_start=warm,
                                             note=f"{point.note}; kept: CVXPY failed")
            return w, values, handles
        if answer[1]["ratio"] >= values["ratio"] * (1.0 - _dense.GAP_TOLERANCE):
            _reemit(caught)  # CVXPY's warnings (an inaccurate solution) concern its answer
            return answer
        self.solve_ = _dense.SolveReport(
            path, gap, exchanges, warm_start=warm,
            note=f"{point.note}; kept: CVXPY's answer was lower by "
                 f"{(values['ratio'] - answer[1]['ratio']) / values['ratio']:.1e} (relative)")
        return w, values, handles

    def _solve_single(self, spec: _Spec, X: np.ndarray | None, target: float | None,
                      note: str = ""):
        """``(w, problem_values, handles)`` of one solve on the CVXPY paths, the screened solve
        or the full program (after :meth:`_solve_dense`, whose ``note`` says why it gave no
        answer). Sets ``solve_`` (which path, why the dense one did not answer)."""
        screened = self._solve_screened(spec, X, target) if _screenable(spec) else None
        if screened is not None:
            self.solve_ = _dense.SolveReport("screened", note=note)
            return screened
        self.solve_ = _dense.SolveReport("cvxpy", note=note)
        handles = self._problem(spec, "full")
        if self.save_problem:
            self.problem_ = handles.problem
        (w, values), caught = _recording(_solve_once, spec, handles, target, X)
        value = handles.problem.value
        if self.scale_objective is None and value is not None and 0 < value < _SMALL_OBJECTIVE:
            # the gap tolerances act absolutely below 1: solve again with the objective near 1
            degree = 2 if spec.risk_form == "qp" else 1
            again = dataclasses.replace(spec, scale_objective=spec.scale_objective
                                        * float(value) ** (-1.0 / degree))
            retry = _build_problem(again)
            try:
                (w2, values2), caught2 = _recording(_solve_once, again, retry, target, X)
            except OptimizationError:
                w2 = None
            if w2 is not None and values2["ratio"] > values["ratio"]:
                w, values, handles, caught = w2, values2, retry, caught2
                if self.save_problem:
                    self.problem_ = retry.problem
        _reemit(caught)
        return w, values, handles

    def _problem(self, spec: _Spec, role: str) -> _Handles:
        """The program for ``spec``.

        The first fit of a structure (:func:`_signature`) is built with constants: compiling
        the parametric program costs 2.5-7x a constant build, a loss for a one-off fit (a
        worksheet function, a ribbon button). When the same structure comes back, the parametric
        program is compiled and kept; from then on a fit only updates its Parameter values.
        Only :func:`_reusable` programs are kept; the others (dense covariance, user callables,
        tracking error) are built with constants each fit."""
        if not _reusable(spec):
            return _build_problem(spec)
        values, _ = _coefficients(spec, None)
        key = _signature(spec, role, values)
        cache = self.__dict__.setdefault("_compiled", {})
        kept = cache.get(role)
        if kept is None or kept[0] != key:
            cache[role] = (key, None)  # seen once: a repeat will compile the parametric program
            return _build_problem(spec)
        if kept[1] is not None:
            kept[1].update(values)
            return kept[1]
        handles = _build_parametric(spec, values)
        if not handles.problem.is_dpp():  # defensive: every coefficient is parameter x variable
            return _build_problem(spec)
        cache[role] = (key, handles)
        return handles

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state.pop("_compiled", None)  # a compiled CVXPY program: rebuilt on the next fit
        return state

    def _solve_screened(self, spec: _Spec, X: np.ndarray | None, target: float | None):
        """Exact solve on a working set of assets, or None to solve the full problem (see
        :func:`._screening._solve_screened`)."""
        return _screening._solve_screened(spec, X, target)

    @staticmethod
    def _columns(spec: _Spec) -> pd.Index:
        return spec.assets if spec.assets is not None else pd.RangeIndex(spec.n)

    def _label(self, spec: _Spec, w: np.ndarray) -> pd.Series:
        return pd.Series(w, index=self._columns(spec), name="weights")

    # ------------------------------------------------------------------ public API

    def _reset(self):
        for name in ("weights_", "problem_values_", "problem_", "n_features_in_",
                     "feature_names_in_", "fallback_", "fallback_chain_", "error_",
                     "covariance_", "asset_volatilities_", "polish_", "solve_", "_spec"):
            if hasattr(self, name):
                delattr(self, name)

    def fit(self, X=None, y=None) -> Self:
        """Find the weights that maximise the ratio.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_observations, n_assets), optional
            Asset returns. May be omitted when ``covariance`` is a matrix or a FactorCovariance
            (no ``max_tracking_error`` then).
        y : Series or array-like of shape (n_observations,), optional
            Benchmark returns for ``max_tracking_error``; ignored otherwise.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid inputs (always raised, never handled by ``fallback``).
        OptimizationError
            :class:`InfeasibleProblemError` or :class:`SolverFailedError` when no fallback
            succeeds and ``raise_on_failure=True``.
        """
        # warm_start: the previous fit's weights, read before the reset (see _solve_single)
        previous = getattr(self, "weights_", None) if getattr(self, "warm_start", False) else None
        # ... and its previous holdings where it had costs (the weights it held, see warm_state)
        last = getattr(self, "_spec", None) if previous is not None else None
        holdings = None if last is None or last.costs is None else last.previous
        self._reset()
        spec, values = self._validate(X, y)
        fallbacks = self._fallbacks()
        self._spec = spec
        self.n_features_in_ = spec.n
        if spec.assets is not None and all(isinstance(a, str) for a in spec.assets.tolist()):
            self.feature_names_in_ = np.asarray(spec.assets, dtype=object)
        self.asset_volatilities_ = pd.Series(spec.risk.sigma, index=self._columns(spec),
                                             name="volatility")
        self.fallback_, self.fallback_chain_, self.error_ = None, None, None
        self.polish_ = self.solve_ = None
        self._warm_weights, self._warm_holdings = previous, holdings
        try:
            weights, problem_values, errors = self._optimize(spec, values)
        except OptimizationError as err:
            self._recover(err, X, y, spec, fallbacks)
            return self
        finally:
            del self._warm_weights, self._warm_holdings  # only this fit's start
        self.weights_, self.problem_values_, self.error_ = weights, problem_values, errors
        return self

    def _recover(self, err: OptimizationError, X, y, spec: _Spec, fallbacks: list):
        """Run the fallback chain after a failed optimisation.

        A success sets ``weights_`` from the fallback and warns (``UserWarning``) naming the
        primary error and the fallback; ``fallback_chain_`` lists every attempt. Without
        fallbacks ``fallback_chain_`` stays None and the error is raised or, with
        ``raise_on_failure=False``, warned about."""
        chain = [(repr(self), str(err))]
        for item in fallbacks:
            name = item if isinstance(item, str) else repr(item)
            try:
                if isinstance(item, str):
                    if not spec.previous_given:
                        raise OptimizationError("Fallback 'previous_weights' requested, but "
                                                "previous_weights is None")
                    weights, fitted = spec.previous.copy(), "previous_weights"
                else:
                    fitted = clone(item)
                    params = fitted.get_params(deep=False)
                    if "previous_weights" in params and self.previous_weights is not None:
                        if params["previous_weights"] is not None:
                            warnings.warn(f"fallback {name} has its own previous_weights; they are "
                                          "replaced by the primary estimator's", UserWarning,
                                          stacklevel=3)
                        fitted.set_params(previous_weights=self.previous_weights)
                    fitted.fit(X, y)
                    weights = self._fallback_weights(spec, getattr(fitted, "weights_", None))
            except Exception as fallback_error:  # noqa: BLE001 - any failure moves down the chain
                chain.append((name, str(fallback_error)))
                continue
            chain.append((name, "success"))
            self.weights_ = self._label(spec, weights)
            self.problem_values_ = None
            self.fallback_, self.fallback_chain_, self.error_ = fitted, chain, None
            # A rescued fit returns other weights than the ones asked for: say so, once.
            warnings.warn(rescued_message(f"{type(self).__name__}.fit", str(err), name,
                                          len(chain) - 2), UserWarning, stacklevel=3)
            return
        # As skfolio: a chain only when fallbacks were tried.
        self.fallback_chain_, self.error_ = (chain if fallbacks else None), str(err)
        if self.raise_on_failure:
            if fallbacks:  # same exception type and attributes, with the chain in the message
                tried = "; ".join(f"{n}: {o}" for n, o in chain[1:])
                augmented = copy.copy(err)
                augmented.args = (f"{err} [fallbacks failed too: {tried}]",)
                raise augmented from err
            raise err
        warnings.warn(f"{type(self).__name__}.fit failed: {str(err).rstrip('.')}. Because "
                      "raise_on_failure=False, "
                      "weights_ is None; see error_ and fallback_chain_.", UserWarning,
                      stacklevel=3)
        self.weights_, self.problem_values_ = None, None

    @staticmethod
    def _fallback_weights(spec: _Spec, weights) -> np.ndarray:
        if weights is None:
            raise OptimizationError("the fallback estimator produced no weights")
        if isinstance(weights, pd.Series) and spec.assets is not None and (
                set(weights.index) == set(spec.assets)):
            weights = weights.reindex(spec.assets)
        w = np.asarray(weights, dtype=float)
        if w.shape != (spec.n,) or not np.all(np.isfinite(w)):
            raise OptimizationError(f"the fallback weights have shape {w.shape} or non-finite "
                                    f"values; expected ({spec.n},)")
        return w

    @property
    def needs_previous_weights(self) -> bool:
        """Whether ``previous_weights`` matter: transaction costs, a turnover cap, or the
        ``"previous_weights"`` fallback."""
        costs = self.transaction_costs
        has_costs = costs is not None and (
            any(v != 0 for v in costs.values()) if isinstance(costs, Mapping)
            else bool(np.any(np.asarray(costs, dtype=float) != 0)))
        fallback = self.fallback if isinstance(self.fallback, (list, tuple)) else [self.fallback]
        return bool(has_costs or self.max_turnover is not None
                    or any(isinstance(f, str) and f == "previous_weights" for f in fallback))

    def _check_fitted(self):
        if not hasattr(self, "weights_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call "
                                 "fit first")

    def predict(self, X) -> Portfolio | Population:
        """Evaluate the fitted weights on returns ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_observations, n_assets)
            Aligned to the fitted assets by name when both are labelled.

        Returns
        -------
        Portfolio or Population
            A :class:`Portfolio` (a failed one, with NaN measures, if ``weights_`` is None), or a
            :class:`Population` when ``min_return`` is an array.
        """
        self._check_fitted()
        spec: _Spec = self._spec
        values, assets, index = check_returns(X)
        if values.shape[1] != spec.n:
            raise ValueError(f"X has {values.shape[1]} assets, the estimator was fitted on "
                             f"{spec.n}")
        columns = self._columns(spec)
        if assets is not None and spec.assets is not None and not assets.equals(spec.assets):
            missing = [a for a in spec.assets if a not in assets]
            if missing:
                raise ValueError(f"X lacks fitted assets {missing[:10]}")
            values = values[:, assets.get_indexer(spec.assets)]
        frame = pd.DataFrame(values, index=index, columns=columns)
        params: dict[str, Any] = {
            "name": type(self).__name__,
            "risk_free_rate": spec.risk_free_rate,
            "transaction_costs": spec.costs if spec.costs is not None else 0.0,
            "management_fees": spec.fees if spec.fees is not None else 0.0,
            "previous_weights": spec.previous,
        }
        for key, value in (self.portfolio_params or {}).items():
            if key in ("transaction_costs", "management_fees", "previous_weights"):
                value = asset_vector(value, f"portfolio_params[{key!r}]", spec.n, spec.assets, 0.0)
            elif key == "risk_free_rate":
                value = real_float(value, "portfolio_params['risk_free_rate']")
            params[key] = value
        if self.weights_ is None:
            return Portfolio(frame, None, optimization_error=self.error_,
                             fallback_chain=self.fallback_chain_, **params)
        if isinstance(self.weights_, pd.DataFrame):
            name = params.pop("name")
            return Population(
                Portfolio(frame, None if np.isnan(row).any() else row,
                          name=f"{name}[min_return={m:g}]", fallback_chain=self.fallback_chain_,
                          **params)
                for m, row in zip(self.weights_.index, self.weights_.to_numpy(), strict=True)
            )
        return Portfolio(frame, self.weights_.to_numpy(), fallback_chain=self.fallback_chain_,
                         **params)

    def fit_predict(self, X, y=None) -> Portfolio | Population:
        """``fit(X, y).predict(X)``."""
        return self.fit(X, y).predict(X)

    def score(self, X, y=None) -> float:
        """Sharpe ratio of ``predict(X)`` (mean over a Population), per period, net of costs and
        fees, as skfolio."""
        prediction = self.predict(X)
        if isinstance(prediction, Population):
            return float(np.nanmean([p.sharpe_ratio for p in prediction]))
        return float(prediction.sharpe_ratio)


def _recording(solve, *args):
    """``solve(*args)`` and the warnings it raised, held back: the caller re-emits them only
    for the answer it returns (an "inaccurate" warning concerns one solver answer). When
    ``solve`` raises, they are re-emitted at once."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = solve(*args)
    except Exception:
        _reemit(caught)
        raise
    return result, caught


def _reemit(caught: list) -> None:
    for item in caught:
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
