"""Expert loading bounds around the OLS prior and hard exclusions, as factorlasso 1.0.6.

*Floors.* Each selected OLS target ``c`` (the univariate slope of the automatic highest-R2
winner, or the slopes of a ``factor_for_prior`` selection) may get the magnitude floor

    floor = max(0, |c| - kappa),   B_ij >= floor if c > 0,   B_ij <= -floor if c < 0,

a hard box on that one loading. The slack ``kappa`` is ``expert_prior_bound_n_std`` times the
Bartlett HAC standard error of ``c`` (:func:`wls_hac`), or, for a response with a declared
``expert_prior_exposure_budget`` row, the exposure-budget slack

    kappa = sum_j (sign(c) Gamma_j s_j)_+ d_j

over the non-selected factors ``j``: ``d_j >= 0`` the budget (missing cells of a declared row
count 0), ``s_j`` the cell's hard sign (free: ``|Gamma_j|``; 0: no exposure) and ``Gamma_j``
the coefficient of the selected factor in the weighted regression of factor ``j`` on the
selected factors (same rows and weights as ``c``). A cell gets no floor when its prior is a
finite explicit ``factors_beta_prior`` cell (it stays soft), when ``c`` is 0 or undefined, when
a hard sign zeroed the centre, or (scope ``"named"``) when the selection is automatic. A floor
never excludes the penalty centre (``|c| >= floor``), so the box of ``B - B0`` contains 0 and
both engines certify the fit as before. ``expert_prior_bound_centre="floor"`` moves the centre
of every floored cell onto its bound.

*Cluster-mean budgets* (``expert_prior_budget_rule="cluster_mean"``, group models): a first
fit at the same ``reg_lambda`` without any prior or floor gives each cell the mean absolute
loading of the other members of its cluster as its budget (clusters of fewer than 3 fall back to
the ``n_std`` slack, one standard error when ``n_std`` is None); finite declared budgets win.

*Exclusions.* ``excluded_factors`` (response -> factor or list) pins those loadings to 0: a
hard zero sign overriding every other layer; excluded factors cannot win the automatic prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = ["BOUND_CENTRES", "BOUND_SCOPES", "BUDGET_RULES", "ExpertBounds", "WlsHac",
           "check_expert_params", "exclusion_mask", "expert_bounds", "floor_centres",
           "leave_one_out_budgets", "wls_hac"]

BOUND_CENTRES = ("prior", "floor")
BOUND_SCOPES = ("all", "named")
BUDGET_RULES = ("n_std", "cluster_mean")

DIAGNOSTIC_COLUMNS = [
    "asset", "factor", "selection", "reference_beta", "se_hac", "floor", "direction", "n_std",
    "hac_lags", "imposed", "status", "observations", "effective_n", "calendar_gaps", "slack",
    "slack_source", "competitor", "competitor_slope", "competitor_correlation",
    "implied_budget"]


def _check_lags(value, name) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")


def check_expert_params(model, apply_ols_prior: bool) -> dict:
    """Validate the expert-bound and exclusion parameters of ``model`` (at ``fit``).

    Returns
    -------
    dict
        ``enabled`` (whether floors are resolved), ``budget`` (the declared budgets as a float
        DataFrame, or None).
    """
    n_std = model.expert_prior_bound_n_std
    if n_std is not None and (isinstance(n_std, (bool, np.bool_)) or not isinstance(n_std, Real)
                              or not np.isfinite(n_std) or n_std < 0):
        raise ValueError(f"expert_prior_bound_n_std must be a finite number >= 0 or None, got "
                         f"{n_std!r}")
    _check_lags(model.expert_prior_hac_lags, "expert_prior_hac_lags")
    freq = model.expert_prior_hac_lags_freq_dict
    if freq is not None:
        if not isinstance(freq, dict) or not freq:
            raise ValueError("expert_prior_hac_lags_freq_dict must be a nonempty dict or None")
        for key, value in freq.items():
            if not isinstance(key, str) or not key:
                raise ValueError("expert_prior_hac_lags_freq_dict: keys must be nonempty "
                                 f"frequency strings, got {key!r}")
            _check_lags(value, f"expert_prior_hac_lags_freq_dict[{key!r}]")
    for name, allowed in (("expert_prior_bound_centre", BOUND_CENTRES),
                          ("expert_prior_bound_scope", BOUND_SCOPES),
                          ("expert_prior_budget_rule", BUDGET_RULES)):
        value = getattr(model, name)
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{name} must be one of {allowed!r}, got {value!r}")
    budget = model.expert_prior_exposure_budget
    if budget is not None:
        if not isinstance(budget, pd.DataFrame):
            raise ValueError("expert_prior_exposure_budget must be a pandas DataFrame "
                             "(responses x factors) or None")
        if budget.index.has_duplicates or budget.columns.has_duplicates:
            raise ValueError("expert_prior_exposure_budget: a response or factor label repeats")
        try:
            budget = budget.astype(float)
        except (TypeError, ValueError):
            raise ValueError("expert_prior_exposure_budget must be numeric") from None
        values = budget.to_numpy()
        if np.isinf(values).any() or (values[np.isfinite(values)] < 0).any():
            raise ValueError("expert_prior_exposure_budget cells must be finite numbers >= 0 "
                             "(or blank)")
    cluster_mean = model.expert_prior_budget_rule == "cluster_mean"
    enabled = n_std is not None or budget is not None or cluster_mean
    for name in ("expert_prior_bound_n_std", "expert_prior_exposure_budget"):
        if getattr(model, name) is not None and not apply_ols_prior:
            raise ValueError(f"{name} requires apply_ols_prior=True")
    if cluster_mean and not apply_ols_prior:
        raise ValueError("expert_prior_budget_rule='cluster_mean' requires apply_ols_prior=True")
    excluded = model.excluded_factors
    if excluded is not None:
        if not isinstance(excluded, (Mapping, pd.Series)):
            raise ValueError("excluded_factors must be a mapping or pandas Series (response -> "
                             f"factor or list of factors), got {type(excluded).__name__}")
        if isinstance(excluded, pd.Series) and excluded.index.has_duplicates:
            raise ValueError("excluded_factors: a response is named twice")
        for response, value in excluded.items():
            _excluded(response, value)
    return {"enabled": enabled, "budget": budget, "cluster_mean": cluster_mean}


def _excluded(response, value) -> tuple:
    """One response's excluded factors as a tuple (empty: none)."""
    if pd.api.types.is_scalar(value):
        return () if pd.isna(value) else (value,)
    if (not isinstance(value, (list, tuple))
            or any(not pd.api.types.is_scalar(v) or pd.isna(v) for v in value)):
        raise ValueError(f"excluded_factors[{response!r}] must be a factor name or a list of "
                         f"factor names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"excluded_factors[{response!r}] names a factor twice: {value!r}")
    return tuple(value)


def exclusion_mask(excluded_factors, x: pd.DataFrame, y: pd.DataFrame, selections: dict,
                   explicit_prior: np.ndarray | None) -> np.ndarray | None:
    """The (N, M) boolean mask of ``excluded_factors`` on this panel, or None.

    Responses absent from ``y`` are ignored (a superset map); an unknown factor, a factor
    also named in ``factor_for_prior`` or carrying a nonzero explicit prior is refused.
    """
    if excluded_factors is None:
        return None
    mask = np.zeros((y.shape[1], x.shape[1]), dtype=bool)
    for response, value in excluded_factors.items():
        factors = _excluded(response, value)
        unknown = [f for f in factors if f not in x.columns]
        if unknown:
            raise ValueError(f"excluded_factors[{response!r}]: {unknown[0]!r} is not a factor "
                             "in x")
        if response not in y.columns or not factors:
            continue
        named = [f for f in factors if f in selections.get(response, ())]
        if named:
            raise ValueError(f"excluded_factors[{response!r}]: {named[0]!r} is also its "
                             "factor_for_prior")
        i, cols = y.columns.get_loc(response), x.columns.get_indexer(list(factors))
        if explicit_prior is not None:
            bad = np.isfinite(explicit_prior[i, cols]) & (explicit_prior[i, cols] != 0)
            if bad.any():
                raise ValueError(f"excluded_factors[{response!r}]: factors_beta_prior"
                                 f"[{response!r}, {factors[int(np.argmax(bad))]!r}] is nonzero")
        mask[i, cols] = True
    return mask


@dataclass(frozen=True)
class WlsHac:
    """A weighted regression with intercept and its Bartlett HAC standard errors.

    ``coef`` and ``se`` are ``(intercept, slopes...)``; NaN with a ``status`` other than
    ``"ok"`` (``"insufficient_observations"``, ``"rank_deficient"``) when not identified.
    """

    coef: np.ndarray
    se: np.ndarray
    observations: int
    effective_n: float
    calendar_gaps: int
    status: str


def wls_hac(x, y, weights, hac_lags: int = 0, min_rows: int = 3) -> WlsHac:
    """Weighted least squares of ``y`` on ``[1, x]`` with a Bartlett (Newey-West) sandwich.

    On the rows where every value is finite and the weight positive, with ``X`` the design,
    ``W`` the weights and ``e`` the residuals, the scores ``s_t = w_t X_t e_t`` live on the
    ORIGINAL row grid (zero at a missing row, so a lag counts calendar rows), and

        V = n/(n-p) (X'WX)^-1 [ sum_l k_l (G_l + G_l') ] (X'WX)^-1,
        G_l = sum_t s_t s_(t-l)',  k_0 = 1/2,  k_l = 1 - l/(L+1)  (l = 1..L).

    Parameters
    ----------
    x : array_like, shape (T, K)
    y : array_like, shape (T,) or (T, R)
        One response, or several regressed on the same design (a row is used only where
        every column is finite: give columns with the same missing rows).
    weights : array_like, shape (T,)
        Nonnegative sampling weights (EWMA ``lambda^(T-1-t)``, or ones).
    hac_lags : int
        Bartlett bandwidth ``L`` (0: heteroskedasticity-robust only).
    min_rows : int
        Fewest usable rows (at least 3, and more than ``p = K + 1``).

    Returns
    -------
    WlsHac
        ``coef`` and ``se`` of shape ``(p,)``, or ``(p, R)`` for a 2-D ``y``.
    """
    xx, yy = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    one = yy.ndim == 1
    y2 = yy[:, None] if one else yy
    w = np.asarray(weights, dtype=float)
    p, r = xx.shape[1] + 1, y2.shape[1]
    valid = np.isfinite(xx).all(axis=1) & np.isfinite(y2).all(axis=1) & (w > 0)
    n = int(valid.sum())
    at = np.flatnonzero(valid)
    gaps = int(at[-1] - at[0] + 1 - n) if n else 0
    wv = w[valid] / w[valid].max() if n else w[valid]
    eff_n = float(wv.sum() ** 2 / (wv @ wv)) if n else 0.0

    def out(coef, se, status):
        return WlsHac(coef[:, 0] if one else coef, se[:, 0] if one else se, n, eff_n, gaps,
                      status)

    def failed(status):
        return out(np.full((p, r), np.nan), np.full((p, r), np.nan), status)

    if n < max(3, min_rows) or n <= p:
        return failed("insufficient_observations")
    # centre on the last row first, then on the weighted mean: no cancellation
    xv = xx[valid] - xx[valid][-1]
    yv = y2[valid] - y2[valid][-1]
    xm, ym = wv @ xv / wv.sum(), wv @ yv / wv.sum()
    xc, yc = xv - xm, yv - ym
    scale = np.sqrt(wv @ (xc * xc) / wv.sum())
    if np.any(scale == 0):
        return failed("rank_deficient")
    design = np.column_stack([np.ones(n), xc / scale])
    root = np.sqrt(wv)
    u, sv, vt = np.linalg.svd(root[:, None] * design, full_matrices=False)
    if sv[-1] <= sv[0] * max(design.shape) * np.finfo(float).eps:
        return failed("rank_deficient")
    beta = vt.T @ ((u.T @ (root[:, None] * yc)) / sv[:, None])  # (p, R)
    bread = (vt.T / sv ** 2) @ vt  # (X'WX)^-1
    resid = yc - design @ beta  # (n, R)
    # influence of each row on each response's coefficients: (T, R, p), zero at gaps
    infl = np.zeros((len(y2), r, p))
    infl[valid] = (wv[:, None] * resid)[:, :, None] * (design @ bread)[:, None, :]
    icpt = infl[:, :, 0] - infl[:, :, 1:] @ ((xx[valid][-1] + xm) / scale)
    stacked = np.concatenate([infl, icpt[:, :, None]], axis=2)  # slopes, then the intercept
    var = np.sum(stacked ** 2, axis=0)
    for lag in range(1, min(hac_lags, len(stacked) - 1) + 1):
        var += 2.0 * (1.0 - lag / (hac_lags + 1)) * np.sum(stacked[lag:] * stacked[:-lag],
                                                           axis=0)
    sd = np.sqrt(np.maximum(var * n / (n - p), 0.0)).T  # (p + 1, R)
    slopes = beta[1:] / scale[:, None]
    origin_x, origin_y = xx[valid][-1] + xm, y2[valid][-1] + ym
    intercept = beta[0] + origin_y - origin_x @ slopes
    se = np.vstack([sd[p], sd[1:p] / scale[:, None]])
    return out(np.vstack([intercept, slopes]), se, "ok")


def _weighted_corr(a, b, w) -> float:
    w = w / w.sum()
    a, b = a - w @ a, b - w @ b
    va, vb = w @ (a * a), w @ (b * b)
    return np.nan if va <= 0 or vb <= 0 else float(w @ (a * b) / np.sqrt(va * vb))


def _slopes_many(xs, ys, w, min_rows):
    """Slopes of each column of ``ys`` on ``[1, xs]`` (one design, complete rows), as
    :func:`wls_hac` computes them; None when the design is not identified."""
    n, p = len(xs), xs.shape[1] + 1
    if n < max(3, min_rows) or n <= p:
        return None
    wv = w / w.max()
    xv, yv = xs - xs[-1], ys - ys[-1]
    xc = xv - wv @ xv / wv.sum()
    yc = yv - wv @ yv / wv.sum()
    scale = np.sqrt(wv @ (xc * xc) / wv.sum())
    if np.any(scale == 0):
        return None
    root = np.sqrt(wv)
    u, sv, vt = np.linalg.svd(root[:, None] * np.column_stack([np.ones(n), xc / scale]),
                              full_matrices=False)
    if sv[-1] <= sv[0] * max(n, p) * np.finfo(float).eps:
        return None
    beta = vt.T @ ((u.T @ (root[:, None] * yc)) / sv[:, None])
    return beta[1:] / scale[:, None]


def _competitors(xa, ya, sel, others, w, min_rows):
    """``Gamma`` (selected x others) and the weighted correlations on the prior's rows."""
    slopes = np.full((len(sel), len(others)), np.nan)
    corr = np.full_like(slopes, np.nan)
    wy = w * np.isfinite(ya)
    xs = xa[:, sel]
    rows = np.isfinite(xs).all(axis=1) & (wy > 0)
    others = np.asarray(others, dtype=int)
    # competitors observed on every row of the selection: one solve for all of them
    whole = np.isfinite(xa[np.ix_(rows, others)]).all(axis=0)
    if whole.any() and rows.any():
        cols = others[whole]
        many = _slopes_many(xs[rows], xa[np.ix_(rows, cols)], wy[rows], min_rows)
        if many is not None:
            slopes[:, whole] = many
        if rows.sum() >= max(3, min_rows):
            wn = wy[rows] / wy[rows].sum()
            a = xs[rows] - wn @ xs[rows]
            b = xa[np.ix_(rows, cols)] - wn @ xa[np.ix_(rows, cols)]
            va, vb = wn @ (a * a), wn @ (b * b)
            cov = (wn[:, None] * a).T @ b
            with np.errstate(invalid="ignore", divide="ignore"):
                c = cov / np.sqrt(np.outer(va, vb))
            corr[:, whole] = np.where((va[:, None] > 0) & (vb[None, :] > 0), c, np.nan)
    for k in np.flatnonzero(~whole):
        j = others[k]
        fit = wls_hac(xs, xa[:, j], wy, 0, min_rows)
        if fit.status == "ok":
            slopes[:, k] = fit.coef[1:]
        ok = np.isfinite(xs).all(axis=1) & np.isfinite(xa[:, j]) & (wy > 0)
        if ok.sum() >= max(3, min_rows):
            for s in range(len(sel)):
                corr[s, k] = _weighted_corr(xs[ok, s], xa[ok, j], wy[ok])
    return slopes, corr


@dataclass(frozen=True)
class ExpertBounds:
    """Per-cell floors (``lower``/``upper``, NaN: none) and factorlasso's diagnostics frame."""

    lower: np.ndarray
    upper: np.ndarray
    diagnostics: pd.DataFrame
    budgets: pd.DataFrame
    budget_sources: pd.DataFrame


def leave_one_out_budgets(coef: pd.DataFrame, clusters: pd.Series):
    """``cluster_mean`` budgets: per cell, the mean absolute first-pass loading of the OTHER
    members of the response's cluster (NaN, status ``cluster_too_small``, below 3 members)."""
    labels = clusters.reindex(coef.index)
    budgets = pd.DataFrame(np.nan, index=coef.index, columns=coef.columns)
    status = pd.Series("cluster_too_small", index=coef.index)
    for label in labels.dropna().unique():
        members = labels.index[labels == label]
        if len(members) < 3:
            continue
        values = coef.loc[members].abs()
        budgets.loc[members] = ((values.sum(axis=0) - values) / (len(members) - 1)).to_numpy()
        status.loc[members] = "cluster_mean"
    return budgets, status


def _resolve_budgets(declared, responses, factors, automatic=None):
    """Declared rows: finite cells as given, missing cells 0 (or the automatic budget); other
    rows the automatic budgets (``cluster_mean``) or NaN (the ``n_std`` slack)."""
    budgets = pd.DataFrame(np.nan, index=responses, columns=factors)
    sources = pd.DataFrame("n_std", index=responses, columns=factors)
    if automatic is not None:
        budgets.loc[:, :] = automatic.reindex(index=responses, columns=factors).to_numpy()
        sources = sources.mask(budgets.notna(), "cluster_mean")
    if declared is None:
        return budgets, sources
    unknown = [f for f in declared.columns if f not in factors]
    if unknown:
        raise ValueError(f"expert_prior_exposure_budget: column {unknown[0]!r} is not a "
                         "factor in x")
    for r in responses.intersection(declared.index):
        row = declared.loc[r].reindex(factors).astype(float)
        if not row.notna().any():
            continue
        missing = budgets.loc[r].isna() & row.isna()
        budgets.loc[r, missing] = 0.0
        sources.loc[r, missing] = "undeclared_zero"
        given = row.notna()
        budgets.loc[r, given] = row[given]
        sources.loc[r, given] = np.where(row[given] == 0, "declared_zero", "declared")
    return budgets, sources


def expert_bounds(x: pd.DataFrame, y: pd.DataFrame, weights: np.ndarray, ols, raw_prior,
                  effective_prior, explicit_prior, signs, *, n_std, hac_lags, min_rows,
                  budget, scope, excluded, automatic=None) -> ExpertBounds:
    """The floors of every selected OLS cell (see the module docstring).

    Parameters
    ----------
    x, y : pandas.DataFrame
        The original panels (T x M, T x N).
    weights : numpy.ndarray, shape (T,)
        The loss's date weights.
    ols : OlsPrior
        The OLS statistics and the named selections.
    raw_prior, effective_prior : numpy.ndarray, shape (N, M)
        The selected OLS centres, and the centre after explicit overrides and signs.
    explicit_prior : numpy.ndarray or None
        ``factors_beta_prior`` (NaN: none): a finite cell stays soft.
    signs : numpy.ndarray or None
        The final sign matrix (orients the budget slack; NaN free).
    n_std, hac_lags, min_rows, budget, scope, excluded
        The settings; ``budget`` the declared DataFrame or None, ``excluded`` a mask or None.
    automatic : pandas.DataFrame, optional
        ``cluster_mean`` budgets (declared finite cells override them).
    """
    xa, ya = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    n, m = ya.shape[1], xa.shape[1]
    lower, upper = np.full((n, m), np.nan), np.full((n, m), np.nan)
    budgets, sources = _resolve_budgets(budget, y.columns, x.columns, automatic)
    bvals = budgets.to_numpy()
    if signs is None:
        signs = np.full((n, m), np.nan)
    records = []
    # Gamma depends on the response only through its observed rows: responses sharing a
    # selection and a missing pattern share it (all of them, on a panel without gaps)
    geometries: dict = {}
    names = list(x.columns)
    position = {f: j for j, f in enumerate(names)}
    chosen, groups, assets = {}, {}, list(y.columns)
    for i, asset in enumerate(assets):
        factors = ols.named.get(asset, ())
        if not factors:
            r2 = np.where(np.isfinite(ols.r2[i]), ols.r2[i], -np.inf)
            if excluded is not None:
                r2 = np.where(excluded[i], -np.inf, r2)
            if not np.isfinite(r2).any():
                continue
            factors = (names[int(np.argmax(r2))],)  # first on ties
        sel = tuple(position[f] for f in factors)
        key = (sel, np.isfinite(ya[:, i]).tobytes())
        chosen[i] = (factors, key)
        groups.setdefault(key, []).append(i)
    # the statistics of responses sharing a selection and missing rows: one batched solve
    batches: dict = {}

    def statistics(i, key):
        if key not in batches:
            members = groups[key]
            batches[key] = (wls_hac(xa[:, list(key[0])], ya[:, members], weights, hac_lags,
                                    min_rows), {r: c for c, r in enumerate(members)})
        fit, column = batches[key]
        c = column[i]
        return WlsHac(fit.coef[:, c], fit.se[:, c], fit.observations, fit.effective_n,
                      fit.calendar_gaps, fit.status)

    for i, (factors, key) in chosen.items():
        asset = assets[i]
        named = bool(ols.named.get(asset, ()))
        sel = list(key[0])
        others = [j for j in range(m) if j not in sel]
        declared = bool(np.isfinite(bvals[i]).any())
        stats = geometry = None
        for k, j in enumerate(sel):
            target = raw_prior[i, j]
            row = dict(asset=asset, factor=names[j], selection=tuple(factors),
                       reference_beta=target, se_hac=np.nan, floor=np.nan,
                       direction=float(np.sign(target)), n_std=n_std, hac_lags=hac_lags,
                       imposed=False, slack=np.nan, slack_source=None, competitor=None,
                       competitor_slope=np.nan, competitor_correlation=np.nan,
                       implied_budget=np.nan)
            if scope == "named" and not named:
                row["status"] = "automatic_selection_not_floored"
            elif explicit_prior is not None and np.isfinite(explicit_prior[i, j]):
                row["status"] = "manual_prior_remains_soft"
            elif not np.isfinite(target) or target == 0:
                row["status"] = "undefined_or_zero_OLS_prior"
            elif effective_prior[i, j] == 0:
                row["status"] = "hard_constraint_has_precedence"
            elif not declared and n_std is None:
                row["status"] = "no_exposure_budget"
            else:
                if stats is None:
                    stats = statistics(i, key)
                row.update(reference_beta=stats.coef[1 + k], se_hac=stats.se[1 + k],
                           observations=stats.observations, effective_n=stats.effective_n,
                           calendar_gaps=stats.calendar_gaps, status=stats.status)
                if stats.status == "ok":
                    if geometry is None:
                        if key not in geometries:
                            geometries[key] = _competitors(xa, ya[:, i], sel, others, weights,
                                                           min_rows)
                        geometry = geometries[key]
                    gamma, corr = geometry[0][k], geometry[1][k]
                    if declared:
                        slack, row["slack_source"] = _budget_slack(
                            gamma, bvals[i, others], signs[i, others], np.sign(target)), "budget"
                    else:
                        slack, row["slack_source"] = n_std * row["se_hac"], "n_std"
                    row["slack"] = slack
                    row.update(_competitor([names[o] for o in others], gamma, corr,
                                           signs[i, others], slack))
                    if not np.isfinite(slack):
                        row["status"] = "budget_slope_undefined"
                    else:
                        floor = max(0.0, abs(target) - slack)
                        row.update(floor=floor, imposed=floor > 0,
                                   status="imposed" if floor > 0 else "zero_floor")
                        if floor > 0:
                            if target > 0:
                                lower[i, j] = floor
                            else:
                                upper[i, j] = -floor
            records.append(row)
    return ExpertBounds(lower, upper, pd.DataFrame(records, columns=DIAGNOSTIC_COLUMNS),
                        budgets, sources)


def _budget_slack(gamma, budgets, signs, direction) -> float:
    total = 0.0
    for g, d, s in zip(gamma, budgets, signs, strict=True):
        if d == 0.0 or s == 0.0:
            continue
        if not np.isfinite(g):
            return np.nan
        total += (abs(g) if not np.isfinite(s) else max(direction * g * s, 0.0)) * d
    return float(total)


def _competitor(names, gamma, corr, signs, slack) -> dict:
    """The most correlated competitor a sign allows, its ``Gamma`` and the implied budget."""
    allowed = [k for k in range(len(names)) if signs[k] != 0.0 and np.isfinite(corr[k])]
    if not allowed:
        return {}
    k = max(allowed, key=lambda a: abs(corr[a]))  # first on ties, as max() keeps the first
    g = gamma[k]
    implied = slack / abs(g) if np.isfinite(g) and g != 0 else np.nan
    return dict(competitor=names[k], competitor_slope=float(g),
                competitor_correlation=float(corr[k]), implied_budget=float(implied))


def floor_centres(prior: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``expert_prior_bound_centre="floor"``: every floored cell's centre moved onto its bound."""
    centre = prior.copy()
    for bound in (lower, upper):
        centre = np.where(np.isfinite(bound), bound, centre)
    return centre
