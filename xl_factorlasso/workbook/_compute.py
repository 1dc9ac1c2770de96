"""Read the FL_* inputs and compute a job's results; nothing here writes to the workbook.

Every problem a job can meet before writing is raised from here as a
:class:`WorkbookInputError` naming the input (and the cell when one cell is at fault), so that
``xl-factorlasso inspect`` can run exactly what the jobs run.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

from ..core import (
    LassoModel,
    LassoModelCV,
    LassoModelType,
    SolveError,
    assemble_factor_covariance,
)
from ._contract import spec
from ._errors import WorkbookInputError
from ._inputs import FitInputs, check_labels, fit_inputs, tag_cell
from ._io import WorkbookIO
from ._job_pictures import portfolio_pictures, refit_pictures
from ._layout import name_problem
from ._plausibility import OVERFLOW_LIMIT, check_plausible
from ._portfolio import (
    covariance_rows,
    read_portfolio_settings,
    returns_problem,
    statistics_table,
    with_annualization,
)
from ._results import (
    JobResult,
    OutputTable,
    cell_value,
    now_text,
    series_table,
    status_message,
    status_table,
    user_notes,
)
from ._settings import read_fit_settings
from ._tables import Block, parse_list, parse_matrix, parse_number, parse_panel, parse_series

__all__ = [
    "FIT_INPUTS",
    "PORTFOLIO_INPUTS",
    "compute_portfolio",
    "compute_refit",
    "fit_fingerprint",
    "read_blocks",
    "workbook_fit_inputs",
]

FIT_INPUTS = ("FL_RETURNS", "FL_FACTORS", "FL_SIGNS", "FL_PRIOR", "FL_GROUPS", "FL_SETTINGS",
              "FL_PRIOR_FACTOR", "FL_EXCLUDED", "FL_EXPOSURE_BUDGET")
PORTFOLIO_INPUTS = FIT_INPUTS + (
    "FL_PORTFOLIO_SETTINGS",
    "FL_CONSTRAINTS",
    "FL_ASSET_GROUPS",
    "FL_PREV_WEIGHTS",
    "FL_STATUS",  # read, not an input: which factor model the sheet shows (see compute_portfolio)
)


#: Short model names for the corner of FL_COEF.
MODEL_LABELS = {"HIERARCHICAL_CLUSTER_GROUP_LASSO": "HCGL", "FACTOR_CLUSTER_GROUP_LASSO": "FCGL",
                "COOPERATIVE_GROUP_LASSO": "COOP", "COOPERATIVE_CLUSTER_GROUP_LASSO": "CCGL"}


# --------------------------------------------------------------------------- reading
def missing_name(name: str) -> str:
    """The message for a required contract name the workbook does not define."""
    return f"the workbook has no name {name} ({spec(name).description})"


def read_blocks(io: WorkbookIO, wanted: tuple[str, ...], required: tuple[str, ...]):
    """Read the named inputs as :class:`Block` s.

    A required name that is missing, and any wanted name that exists but is not one usable
    range (``#REF!``, multi-area, sheet-scoped ...), is an error that says which and why: a
    broken optional input such as FL_SIGNS must not silently fit without constraints.
    """
    names = io.names()
    issues = io.name_issues()
    blocks: dict[str, Block] = {}
    for name in wanted:
        area = names.get(name)
        if area is None:
            reason = name_problem(name, issues)
            if reason is not None:
                raise WorkbookInputError(reason, name=name)
            if name in required:
                raise WorkbookInputError(missing_name(name), name=name)
            continue
        values = io.read(area)
        blocks[name] = Block.of(name, values, area.min_row, area.min_col)
    return blocks


def workbook_fit_inputs(blocks: dict[str, Block], overrides: dict | None = None, *,
                        cv: bool = False) -> FitInputs:
    """The factor-model inputs of a workbook (``FL_*`` blocks), validated and aligned.

    ``overrides`` (:meth:`~._portfolio.PortfolioSettings.model_overrides`: parameter ->
    ``(value, input, cell)``) win over ``FL_SETTINGS``: the ``factor_*`` keys of
    ``FL_PORTFOLIO_SETTINGS`` for the portfolio's factor covariance. ``cv`` also checks the
    cross-validation folds against the dates.
    """
    return fit_inputs(
        parse_panel(blocks["FL_RETURNS"], "asset"),
        parse_panel(blocks["FL_FACTORS"], "factor"),
        signs=blocks.get("FL_SIGNS"),
        prior=blocks.get("FL_PRIOR"),
        groups=blocks.get("FL_GROUPS"),
        settings=blocks.get("FL_SETTINGS"),
        prior_factors=blocks.get("FL_PRIOR_FACTOR"),
        excluded=blocks.get("FL_EXCLUDED"),
        exposure_budget=blocks.get("FL_EXPOSURE_BUDGET"),
        overrides=overrides,
        blocks=(blocks["FL_RETURNS"], blocks["FL_FACTORS"]),
        cv=cv,
    )


def fit_fingerprint(inputs: FitInputs) -> str:
    """A short digest of everything that determines the factor model: the panels, the
    parameters (signs, prior, groups, settings) and the CV settings.

    FL_STATUS records it with every fit, so that a later portfolio run can tell whether the
    loadings the sheet shows were fitted on the inputs it sees (:func:`compute_portfolio`).
    Computed on the parsed inputs, so it does not depend on the engine that read the cells.
    """
    h = hashlib.sha256()

    def frame(obj) -> None:
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
        labels = obj.columns if isinstance(obj, pd.DataFrame) else [obj.name]
        h.update(repr(list(labels)).encode())

    for panel in (inputs.returns, inputs.factors):
        frame(panel)
    for key in sorted(inputs.params):
        value = inputs.params[key]
        h.update(key.encode())
        if isinstance(value, (pd.DataFrame, pd.Series)):
            frame(value)
        else:
            h.update(repr(value).encode())
    h.update(repr(sorted(inputs.cv.items())).encode())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- the factor model
def _core_error(err: Exception, inputs: FitInputs) -> WorkbookInputError:
    """A core ValueError/SolveError as a workbook message naming the input it concerns.

    The core prefixes data problems with ``x:``/``y:`` and parameter problems with the
    parameter's name; ``inputs.sources`` says which range set each parameter.
    """
    text = str(err)
    if isinstance(err, SolveError):
        return WorkbookInputError(f"the solver failed: {text}", name="FL_SETTINGS")
    head, _, rest = text.partition(":")
    if head == "x":
        return WorkbookInputError(rest.strip(), name="FL_FACTORS")
    if head == "y":
        return WorkbookInputError(rest.strip(), name="FL_RETURNS")
    source = next((s for p, s in inputs.sources.items() if text.startswith(p)), None)
    return WorkbookInputError(text, name=source or "FL_SETTINGS")


def _check_finite(model, assets: list[str], notes: list[str]) -> None:
    """A fit whose numbers are not finite is an error, never a result with blanks."""
    coef = model.coef_.to_numpy(dtype=float)
    if not np.isfinite(coef).all() or not np.isfinite(float(model.objective_value_)):
        raise WorkbookInputError(
            "the fit produced non-finite loadings or objective (overflow); check FL_RETURNS "
            "and FL_FACTORS for extreme values",
            name="FL_RETURNS",
        )
    r2 = model.r2_.reindex(assets).to_numpy(dtype=float)
    bad = [a for a, v in zip(assets, r2, strict=True) if not np.isfinite(v)]
    if len(bad) == len(assets):
        raise WorkbookInputError(
            "R^2 is undefined for every asset (no variation left to explain after weighting "
            "and demeaning); check the span and the returns",
            name="FL_RETURNS",
        )
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        notes.append(f"R2 undefined (left blank) for {shown}: no variation to explain")


def _fit(inputs: FitInputs, cv: bool, verbose: bool):
    x, y = inputs.factors, inputs.returns
    with user_notes() as notes:
        base = LassoModel(**inputs.params)
        cvm = None
        if cv:
            cvm = LassoModelCV(
                lambdas=inputs.cv.get("cv_lambdas", "auto"),
                n_splits=inputs.cv.get("cv_splits", 5),
                n_lambdas=inputs.cv.get("cv_n_lambdas", 20),
                lambda_min_ratio=inputs.cv.get("cv_lambda_min_ratio", 1e-3),
                base_model=base,
                verbose=verbose,
            ).fit(x, y)
            model = cvm.best_model_
        else:
            model = base.fit(x, y)
    return model, cvm, notes


def derived_signs_table(model) -> list[list]:
    """FL_DERIVED_SIGNS: the sign the fit imposed on every loading, laid out as FL_SIGNS.

    The solver's sign matrix (``derived_signs_``: explicit signs over derived ones); without
    one, 1 everywhere under ``nonneg`` and blank (free) otherwise.
    """
    coef = model.coef_
    signs = model.derived_signs_
    if signs is None:
        signs = pd.DataFrame(1.0 if model.nonneg else np.nan, index=coef.index,
                             columns=coef.columns)
    return [["asset", *coef.columns],
            *[[a, *(None if np.isnan(v) else float(v) for v in signs.loc[a])]
              for a in coef.index]]


def prior_used_table(model) -> list[list]:
    """FL_PRIOR_USED: the prior centre of every loading, laid out as FL_PRIOR.

    ``effective_beta_prior_`` with an OLS prior (the filled FL_PRIOR cells over it, after the
    signs); the FL_PRIOR cells (blank = 0) without one; all blank when no prior is in force
    (no OLS prior and no nonzero FL_PRIOR cell: every centre is 0).
    """
    coef = model.coef_
    prior = model.effective_beta_prior_
    if prior is None and model.factors_beta_prior is not None:
        prior = model.factors_beta_prior.reindex(index=coef.index, columns=coef.columns)
        prior = prior.astype(float).fillna(0.0)
        if not prior.to_numpy().any():
            prior = None
    corner = "asset" if prior is not None else "asset (no prior in force)"
    if prior is None:
        prior = pd.DataFrame(np.nan, index=coef.index, columns=coef.columns)
    return [[corner, *coef.columns],
            *[[a, *(cell_value(v) if np.isfinite(v) else None for v in prior.loc[a])]
              for a in coef.index]]


def compute_refit(
    blocks: dict[str, Block],
    *,
    cv: bool = False,
    pictures: bool = True,
    verbose: bool = False,
    overrides: dict | None = None,
) -> JobResult:
    """Fit (or cross-validate and fit) the factor model of a workbook's inputs.

    Returns a :class:`JobResult` whose ``outputs`` hold FL_COEF, FL_DERIVED_SIGNS, FL_PRIOR_USED,
    FL_INTERCEPT, FL_R2, FL_CLUSTERS, FL_RESID_VOL, FL_STATUS (and FL_CV with ``cv``).
    """
    inputs = workbook_fit_inputs(blocks, overrides, cv=cv)
    x, y = inputs.factors, inputs.returns
    job = "refit_cv" if cv else "refit"
    result = JobResult(job)
    try:
        model, cvm, notes = _fit(inputs, cv, verbose)
        cov = (
            assemble_factor_covariance(model, x, annualization_factor=inputs.annualization_factor)
            if model.residual_variance_.notna().all()
            else None
        )
    except WorkbookInputError:
        raise
    except (ValueError, SolveError) as err:
        raise _core_error(err, inputs) from None
    assets = list(y.columns)
    _check_finite(model, assets, notes)
    coef = model.coef_
    mt = LassoModelType.parse(model.model_type).name
    result.outputs.append(
        OutputTable(
            "FL_COEF",
            [
                # the corner says which model produced the table (the sheet shows no FL_STATUS)
                [f"asset ({MODEL_LABELS.get(mt, mt)}, lambda {model.reg_lambda:.4g})",
                 *coef.columns],
                *[[a, *(cell_value(v) for v in coef.loc[a])] for a in assets],
            ],
        )
    )
    result.outputs.append(OutputTable("FL_DERIVED_SIGNS", derived_signs_table(model)))
    result.outputs.append(OutputTable("FL_PRIOR_USED", prior_used_table(model)))
    intercept = series_table("asset", {"intercept": model.alpha_const_}, assets)
    result.outputs.append(OutputTable("FL_INTERCEPT", intercept))
    result.outputs.append(OutputTable("FL_R2", series_table("asset", {"r2": model.r2_}, assets)))
    clusters = model.clusters_ if model.clusters_ is not None else pd.Series(dtype=object)
    result.outputs.append(
        OutputTable("FL_CLUSTERS", series_table("asset", {"cluster": clusters}, assets))
    )
    vol = None
    if cov is not None:
        vol = cov.volatility
        columns = {
            "total_vol": vol["total"],
            "systematic_vol": vol["systematic"],
            "residual_vol": vol["residual"],
        }
        result.outputs.append(OutputTable("FL_RESID_VOL", series_table("asset", columns, assets)))
    else:
        notes.append("FL_RESID_VOL not written: some assets have no residual variance (warmup)")
    if cvm is not None:
        scores = cvm.cv_scores_
        table = [["reg_lambda", *scores.columns, "mean", "best"]]
        for lam, row in scores.iterrows():
            table.append(
                [
                    float(lam),
                    *(cell_value(v) for v in row),
                    cell_value(cvm.mean_scores_[lam]),
                    "best" if lam == cvm.best_lambda_ else None,
                ]
            )
        result.outputs.append(OutputTable("FL_CV", table))
    if pictures:
        refit_pictures(result, model, cvm, vol, assets)
    result.notes = list(notes)
    mt = LassoModelType.parse(model.model_type).name
    result.status = {
        "time": now_text(),
        "model": mt,
        "reg_lambda": float(model.reg_lambda),
        "lambda_max": float(model.reg_lambda_max_),
    }
    if cvm is not None:
        result.status["cv_best_score"] = float(cvm.best_score_)
    result.status.update({
        "objective": float(model.objective_value_),
        "solver": f"{model.solver_} {model.solver_status_}",
        "assets x factors x dates": f"{len(assets)} x {coef.shape[1]} x {len(y)}",
        "inputs": fit_fingerprint(inputs),
        "message": status_message(result),
    })
    result.outputs.append(status_table([result]))
    result.model = model
    result.summary = (
        f"{job}: {mt}, lambda={model.reg_lambda:.4g}, {int((coef.to_numpy() != 0).sum())} "
        f"non-zero loadings of {coef.size}, mean R2 {np.nanmean(model.r2_):.3f}"
    )
    return result


# --------------------------------------------------------------------------- the portfolio
def _shown_lambda(status: Block | None, fingerprint: str) -> tuple[float, str] | None:
    """``(reg_lambda, step)`` of the fit FL_STATUS records for inputs with this fingerprint.

    FL_STATUS is our own output; anything in it we do not recognise (an older layout, user
    edits) simply means "no recorded fit".
    """
    if status is None or not status.values or not status.values[0]:
        return None
    header = status.values[0]
    if header[0] != "item":
        return None
    rows = {r[0]: r for r in status.values[1:] if r and isinstance(r[0], str)}
    inputs, lams = rows.get("inputs"), rows.get("reg_lambda")
    if inputs is None or lams is None:
        return None
    for j in range(len(header) - 1, 0, -1):  # the latest step first
        lam = lams[j]
        if (inputs[j] == fingerprint and isinstance(lam, (int, float))
                and not isinstance(lam, bool) and math.isfinite(lam) and lam >= 0):
            return float(lam), str(header[j])
    return None


def _factor_model(blocks: dict[str, Block], ps, fitted):
    """The factor model of ``covariance = factor``: the model the sheet shows.

    * ``factor_*`` keys in FL_PORTFOLIO_SETTINGS ask for a model of its own: fitted with them.
    * Otherwise the model of these very inputs: ``fitted`` (the refit of the same run), else
      the lambda FL_STATUS records for a fit of the same inputs (a cross-validated one
      included), else FL_SETTINGS' own.

    Returns ``(model, fingerprint, note)``.
    """
    overrides = ps.model_overrides()
    if overrides:
        model = compute_refit(blocks, pictures=False, overrides=overrides).model
        return model, None, "factor model with the factor_* keys of FL_PORTFOLIO_SETTINGS"
    fingerprint = fit_fingerprint(workbook_fit_inputs(blocks))
    if fitted is not None and fitted.status.get("inputs") == fingerprint:
        return fitted.model, fingerprint, f"factor model of this run's {fitted.job}"
    shown = _shown_lambda(blocks.get("FL_STATUS"), fingerprint)
    if shown is not None:
        lam, step = shown
        model = compute_refit(blocks, pictures=False,
                              overrides={"reg_lambda": (lam, "FL_STATUS")}).model
        return model, fingerprint, f"factor model of the last {step} (lambda {lam:.4g})"
    model = compute_refit(blocks, pictures=False).model
    return model, fingerprint, (
        "factor model fitted with FL_SETTINGS: FL_STATUS shows no fit of these inputs"
    )


def asset_groups(blocks: dict[str, Block], assets: list[str]) -> dict[str, list[str]] | None:
    """FL_ASSET_GROUPS as ``{asset: [tag, ...]}`` for every asset (checked against
    FL_RETURNS' assets, cells named), or None when the table is absent or empty: blank, or
    its header row alone (a table emptied of its assets, or written without groups)."""
    tag_block = blocks.get("FL_ASSET_GROUPS")
    if tag_block is None or tag_block.trimmed().shape[0] <= 1:
        return None
    tags = parse_matrix(tag_block, cols_what="grouping", cell=tag_cell)
    check_labels(tag_block, tags.index, assets, axis=0, what="asset", source="FL_RETURNS")
    return {a: [t for t in tags.loc[a] if t] if a in tags.index else [] for a in assets}


def _previous_weight(block: Block, i: int, j: int) -> float:
    """A weight of FL_PREV_WEIGHTS: a number whose square does not overflow (1e300 was taken,
    and a turnover of 1e300 written without a word)."""
    w = parse_number(block, i, j)
    if abs(w) > OVERFLOW_LIMIT:  # NaN (blank) compares False
        raise block.error(f"the weight {w:g} is too large to compute with: its square "
                          "overflows; a weight is a fraction of the portfolio (0.05 for 5 %)",
                          i, j)
    return w


def compute_portfolio(blocks: dict[str, Block], fitted: JobResult | None = None, *,
                      pictures: bool = True) -> JobResult:
    """Maximum-diversification weights from the FL_* portfolio inputs, their statistics and
    risk attribution (FL_WEIGHTS, FL_PORTFOLIO_STATS, FL_RISK, FL_RISK_ASSETS, FL_STATUS).

    ``fitted``: the refit (or cross-validation) of the same run, whose model a factor
    covariance then uses (see :func:`_factor_model`).
    """
    from ..core.optimization import (
        EquationError,
        InfeasibleProblemError,
        MaximumDiversification,
        OptimizationError,
        parse_equation,
    )

    result = JobResult("optimise_portfolio")
    returns = parse_panel(blocks["FL_RETURNS"], "asset")
    assets = list(returns.columns)
    ps = read_portfolio_settings(blocks.get("FL_PORTFOLIO_SETTINGS"))
    check_plausible(returns, blocks["FL_RETURNS"], bound=ps.max_abs_return, what="return",
                    source="FL_PORTFOLIO_SETTINGS")
    ps = with_annualization(ps, read_fit_settings(blocks.get("FL_SETTINGS")))
    params = dict(ps.params)
    notes = []

    groups = asset_groups(blocks, assets)
    if groups is not None:
        params["groups"] = groups
    group_labels = {t for ts in (groups or {}).values() for t in ts}

    # Every input is read and checked before the (possibly slow) factor fit.
    constraints = parse_list(blocks["FL_CONSTRAINTS"]) if "FL_CONSTRAINTS" in blocks else []
    prev_block = blocks.get("FL_PREV_WEIGHTS")
    if prev_block is not None and not prev_block.is_empty():
        prev = parse_series(prev_block, value=_previous_weight)
        check_labels(prev_block, prev.index, assets, axis=0, what="asset", source="FL_RETURNS")
        params["previous_weights"] = prev.reindex(assets).fillna(0.0).to_numpy()

    result.status["time"] = now_text()
    result.status["covariance"] = ps.covariance
    if ps.covariance == "factor":
        if "FL_FACTORS" not in blocks:
            raise WorkbookInputError(
                "covariance = factor needs the factor returns FL_FACTORS", "FL_PORTFOLIO_SETTINGS"
            )
        factor_names = set(parse_panel(blocks["FL_FACTORS"], "factor").columns)
        _check_constraints(constraints, set(assets) | group_labels | factor_names, parse_equation,
                           EquationError)
        model, fingerprint, note = _factor_model(blocks, ps, fitted)
        try:
            cov = assemble_factor_covariance(model, parse_panel(blocks["FL_FACTORS"], "factor"))
        except ValueError as err:
            raise WorkbookInputError(str(err), "FL_RETURNS") from None
        params["covariance"] = cov
        x = None
        notes.append(note)
        result.status["model"] = LassoModelType.parse(model.model_type).name
        result.status["reg_lambda"] = float(model.reg_lambda)
        if fingerprint is not None:
            result.status["inputs"] = fingerprint
    else:
        _check_constraints(constraints, set(assets) | group_labels, parse_equation, EquationError)
        x = covariance_rows(returns, ps, "FL_RETURNS", "(fill the gap or use covariance = factor)")
    if constraints:
        params["linear_constraints"] = [t for t, _ in constraints]

    try:
        opt = MaximumDiversification(**params).fit(x)
        complete = returns.dropna()
        portfolio = opt.predict(complete) if len(complete) >= 2 else None
    except InfeasibleProblemError as err:
        cells = {repr(t): c for t, c in constraints}
        named = [cells[c] for c in err.conflicts if c in cells]
        # the settings in conflict ("max_weights", "budget=10 (...)"), by the cells they are in
        keys = [ps.cells[k] for k in dict.fromkeys(c.split("=")[0] for c in err.conflicts)
                if k in ps.cells]
        settings = f"FL_PORTFOLIO_SETTINGS cells {', '.join(k.block.cell(k.i, k.j) for k in keys)}"
        if keys and not named:  # no row of FL_CONSTRAINTS in it: it was named all the same
            first = keys[0]
            raise first.block.error(f"no portfolio satisfies the portfolio settings: {err}"
                                    + (f" ({settings})" if len(keys) > 1 else ""),
                                    first.i, first.j) from None
        parts = ([f"FL_CONSTRAINTS cells {', '.join(named)}"] if named else []) + \
            ([settings] if keys else [])
        where = f" ({'; '.join(parts)})" if parts else ""
        raise WorkbookInputError(
            f"no portfolio satisfies the constraints: {err}{where}", "FL_CONSTRAINTS"
        ) from None
    except OptimizationError as err:
        raise WorkbookInputError(f"the optimiser failed: {err}", "FL_PORTFOLIO_SETTINGS") from None
    except (ValueError, TypeError) as err:
        about_returns = returns_problem(str(err))
        if about_returns is not None:
            raise WorkbookInputError(about_returns, "FL_RETURNS") from None
        raise WorkbookInputError(str(err), "FL_PORTFOLIO_SETTINGS") from None
    weights = opt.weights_.reindex(assets)
    if not np.isfinite(weights.to_numpy(dtype=float)).all():
        raise WorkbookInputError("the optimiser returned non-finite weights",
                                 "FL_PORTFOLIO_SETTINGS")
    result.outputs.append(
        OutputTable("FL_WEIGHTS", series_table("asset", {"weight": weights}, assets))
    )
    stats = [["statistic", "value"], *statistics_table(opt, portfolio, ps, weights)]
    n_invested = stats[-1][1]
    result.outputs.append(OutputTable("FL_PORTFOLIO_STATS", stats))
    attribution = _attribution(opt, weights, ps.annualization_factor, notes)
    if attribution is not None:
        result.outputs += _risk_tables(attribution, assets)
    result.notes = list(notes)
    if pictures:
        portfolio_pictures(result, weights, params.get("min_weights", 0.0),
                           params.get("max_weights", 1.0), attribution)
    result.status.update({
        "assets x dates": f"{len(assets)} x {len(returns)}",
        "message": status_message(result),
    })
    result.outputs.append(status_table([result]))
    result.model = opt
    result.summary = (
        f"optimise_portfolio: {n_invested} of {len(assets)} assets invested "
        f"({ps.covariance} covariance)"
    )
    return result


def _attribution(opt, weights: pd.Series, annualization_factor: float, notes: list[str]):
    """The Euler split of the portfolio's volatility under the covariance it was optimised
    with (per factor and per asset with the factor model; per asset otherwise)."""
    from ..core.covariance import (
        FactorCovariance,
        covariance_risk_attribution,
        risk_attribution,
    )

    cov = opt.covariance_
    try:
        if isinstance(cov, FactorCovariance):
            return risk_attribution(cov, weights, annualization_factor=annualization_factor)
        return covariance_risk_attribution(cov, weights,
                                           annualization_factor=annualization_factor)
    except (ValueError, TypeError) as err:  # e.g. a portfolio of zero variance
        notes.append(f"FL_RISK not written: {err}")
        return None


def _risk_tables(ra, assets: list[str]) -> list[OutputTable]:
    """FL_RISK (per factor, specific, total) and FL_RISK_ASSETS (per asset)."""
    total = ra.total_volatility
    risk = [["risk source", "exposure", "contribution", "share"]]
    if ra.factors is not None:
        for factor, row in ra.factors.iterrows():
            risk.append([factor, cell_value(row["exposure"]), cell_value(row["contribution"]),
                         cell_value(row["share"])])
        specific = float(ra.assets["specific"].sum())
        risk.append(["specific", None, specific, specific / total])
    risk.append(["total", None, total, 1.0])
    columns = [c for c in ("weight", "contribution", "share", "systematic", "specific")
               if c in ra.assets.columns]
    per_asset = series_table("asset", {c: ra.assets[c] for c in columns}, assets)
    return [OutputTable("FL_RISK", risk), OutputTable("FL_RISK_ASSETS", per_asset)]


def _check_constraints(constraints, known: set, parse_equation, error_type) -> None:
    for text, cell in constraints:
        try:
            parse_equation(text, known)
        except error_type as err:
            raise WorkbookInputError(str(err), "FL_CONSTRAINTS", cell) from None
