"""Worksheet functions called directly, with the 2-D lists Excel passes (plain Linux).

On plain Linux ``from xlwings import func, arg`` are pass-through decorators, so each FLASSO_*
function is an ordinary callable. Inputs are built as the classic add-in delivers them after
its conversion (``ndim=2``: a list of rows; dates as ``datetime``; blanks as ``None``; error
cells as ``"#N/A"`` text with ``err_to_str=True``). Every result is compared with the core called
directly on the same data: labels and numbers.
"""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import math
import os
import threading

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cells
from xl_factorlasso import __version__, udfs
from xl_factorlasso.core import (
    LassoModel,
    LassoModelCV,
    assemble_factor_covariance,
    load_demo_panel,
)
from xl_factorlasso.core.optimization import MaximumDiversification
from xl_factorlasso.workbook._tables import Block, panel_fast, parse_panel

RTOL = 1e-10


# --------------------------------------------------------------------------- helpers
def matrix_cells(df: pd.DataFrame, corner: str = "asset") -> list:
    return [[corner, *df.columns],
            *[[a, *[None if (isinstance(v, float) and np.isnan(v)) else v for v in row]]
              for a, row in zip(df.index, df.to_numpy(dtype=object).tolist(), strict=True)]]


def body(table: list) -> pd.DataFrame:
    """A spilled labelled table back to a DataFrame (first column = index)."""
    header, *rows = table
    frame = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=header[1:])
    return frame


def assert_table(table, expected: pd.DataFrame, corner: str = "asset"):
    assert isinstance(table, list), table
    assert table[0][0] == corner
    assert table[0][1:] == [str(c) for c in expected.columns]
    assert [r[0] for r in table[1:]] == list(expected.index)
    got = np.array([[np.nan if v is None else v for v in r[1:]] for r in table[1:]], dtype=float)
    np.testing.assert_allclose(got, expected.to_numpy(dtype=float), rtol=RTOL, atol=1e-14)
    for row in table:  # NaN never reaches a cell
        for v in row:
            assert not (isinstance(v, float) and math.isnan(v))


def is_error(out, argument: str, *fragments: str) -> None:
    assert isinstance(out, str), f"expected a #FLASSO! cell, got a {type(out).__name__}"
    assert out.startswith(f"#FLASSO! {argument}:"), out
    for fragment in fragments:
        assert fragment in out, f"{fragment!r} not in {out!r}"
    assert "\n" not in out and "Traceback" not in out


@pytest.fixture
def fresh_cache():
    udfs.cache_clear()
    yield
    udfs.cache_resize(udfs.CACHE_SIZE)
    udfs.cache_clear()


@pytest.fixture
def fit_counter(monkeypatch):
    """Count LassoModel.fit calls (the expensive part every FLASSO fit function shares)."""
    calls = []
    original = LassoModel.fit

    def counting(self, x, y):
        calls.append(1)
        return original(self, x, y)

    monkeypatch.setattr(LassoModel, "fit", counting)
    return calls


# --------------------------------------------------------------------------- the functions
FIT = ["returns", "factors", "reg_lambda", "model_type", "signs", "prior", "settings", "groups"]
CV = ["returns", "factors", "lambdas", "n_splits", "settings", "signs", "prior", "groups"]
SIGNATURES = {
    "FLASSO_FIT": FIT,
    "FLASSO_R2": FIT,
    "FLASSO_INTERCEPT": FIT,
    "FLASSO_CLUSTERS": FIT,
    "FLASSO_RESID_VOL": FIT,
    "FLASSO_PREDICT": [*FIT[:2], "new_factors", *FIT[2:]],
    "FLASSO_CV": CV,
    "FLASSO_BEST_LAMBDA": CV,
    "FLASSO_COV": FIT,
    "FLASSO_NOTES": FIT,
    # new arguments go at the end: existing formulas keep their meaning
    "FLASSO_MAXDIV": ["returns", "settings", "constraints", "groups", "factors", "signs", "prior",
                      "model_settings", "model_groups", "previous_weights"],
    # the inputs of FLASSO_MAXDIV (whose portfolio they attribute), then the weights to
    # attribute instead
    "FLASSO_RISK": ["returns", "settings", "constraints", "groups", "factors", "signs", "prior",
                    "model_settings", "model_groups", "previous_weights", "weights"],
    "FLASSO_RISK_ASSETS": ["returns", "settings", "constraints", "groups", "factors", "signs",
                           "prior", "model_settings", "model_groups", "previous_weights",
                           "weights"],
    "FLASSO_RETURNS": ["prices", "method", "span_gaps"],
    # the rolling fit's own arguments, then FLASSO_FIT's model options
    "FLASSO_BETA_HISTORY": ["returns", "factors", "factor", "rebalance", "window", "min_history",
                            *FIT[2:]],
    "FLASSO_VERSION": [],
}
REQUIRED = {"FLASSO_MAXDIV": {"returns"}, "FLASSO_RISK": {"returns"},
            "FLASSO_RISK_ASSETS": {"returns"}, "FLASSO_RETURNS": {"prices"},
            "FLASSO_BETA_HISTORY": {"returns", "factors", "factor"}}


def test_public_functions_and_signatures():
    assert sorted(udfs.__all__) == sorted(SIGNATURES)
    for name, params in SIGNATURES.items():
        sig = inspect.signature(getattr(udfs, name))
        assert list(sig.parameters) == params, name
        required = REQUIRED.get(name, {"returns", "factors", "new_factors"})
        for p in sig.parameters.values():  # optional arguments default to None
            assert (p.default is inspect.Parameter.empty) == (p.name in required), (name, p.name)


def test_help_texts_fit_the_function_wizard():
    for name in udfs.__all__:
        doc = getattr(udfs, name).__doc__
        assert doc and "\n" not in doc.strip() and len(doc) <= 255, name
    for text in udfs.DOCS.values():
        assert 20 < len(text) <= 255
    used = set()
    for name in udfs.__all__:  # every argument has its text; no text is left unused
        for param in inspect.signature(getattr(udfs, name)).parameters:
            used.add(udfs.argument_doc(name, param))
    assert used == set(udfs.DOCS.values())


@pytest.mark.skipif(os.environ.get("XLWINGS_ON_SERVER") == "true", reason="server decorators")
def test_decorators_are_no_ops_on_plain_linux():
    assert not hasattr(udfs.FLASSO_FIT, "__xlfunc__")


def test_version():
    assert udfs.FLASSO_VERSION() == __version__


def test_fit_equals_core(demo, R, F):
    expected = LassoModel().fit(demo.x, demo.y)
    assert_table(udfs.FLASSO_FIT(R, F), expected.coef_)


def test_fit_with_every_argument_equals_core(demo, R, F):
    signs = demo.signs.iloc[:10]  # a subset of assets: the others stay free
    prior = demo.prior.iloc[:10]
    settings = [["key", "value"], ["span", 52], ["l1_weight", 0.3], ["cutoff_fraction", 0.6]]
    out = udfs.FLASSO_FIT(R, F, 1e-4, "HCGL", matrix_cells(signs), matrix_cells(prior),
                          settings)
    expected = LassoModel(
        reg_lambda=1e-4, model_type="HCGL", span=52, l1_weight=0.3, cutoff_fraction=0.6,
        factors_beta_loading_signs=signs.reindex(demo.y.columns),
        factors_beta_prior=prior.reindex(demo.y.columns),
    ).fit(demo.x, demo.y)
    assert_table(out, expected.coef_)


def test_signs_as_text_and_prior_numbers(demo, R, F):
    signs = demo.signs.iloc[:6]
    text = signs.replace({1.0: "+", -1.0: "-"})
    out = udfs.FLASSO_FIT(R, F, 1e-4, None, matrix_cells(text))
    expected = LassoModel(reg_lambda=1e-4, factors_beta_loading_signs=signs.reindex(
        demo.y.columns)).fit(demo.x, demo.y)
    assert_table(out, expected.coef_)


@pytest.mark.parametrize("name, attribute, column", [
    ("FLASSO_R2", "r2_", "r2"), ("FLASSO_INTERCEPT", "alpha_const_", "intercept")])
def test_per_asset_statistics_equal_core(demo, R, F, name, attribute, column):
    model = LassoModel(reg_lambda=1e-4).fit(demo.x, demo.y)
    out = getattr(udfs, name)(R, F, 1e-4)
    assert_table(out, getattr(model, attribute).to_frame(column))


def test_clusters_equal_core(demo, R, F):
    for mt in ("HCGL", "FCGL"):
        model = LassoModel(model_type=mt, n_clusters=4).fit(demo.x, demo.y)
        out = udfs.FLASSO_CLUSTERS(R, F, None, mt, None, None, [["n_clusters", 4]])
        assert out[0] == ["asset", "cluster"]
        assert [r[0] for r in out[1:]] == list(demo.y.columns)
        assert [r[1] for r in out[1:]] == [int(v) for v in model.clusters_]


def test_resid_vol_and_cov_equal_core(demo, R, F):
    settings = [["annualization_factor", 52], ["span", 104]]
    model = LassoModel(span=104).fit(demo.x, demo.y)
    cov = assemble_factor_covariance(model, demo.x, annualization_factor=52)
    vol = cov.volatility.rename(columns=lambda c: f"{c}_vol")
    assert_table(udfs.FLASSO_RESID_VOL(R, F, None, None, None, None, settings), vol)
    assert_table(udfs.FLASSO_COV(R, F, None, None, None, None, settings), cov.covariance)


def test_predict_equals_core(demo, R, F):
    new = demo.x.iloc[-8:] * 1.5
    model = LassoModel(reg_lambda=1e-4).fit(demo.x, demo.y)
    out = udfs.FLASSO_PREDICT(R, F, cells(new), 1e-4)
    expected = model.predict(new)
    assert_table(out, expected.set_axis([d.to_pydatetime() for d in new.index]), corner="date")
    assert all(isinstance(r[0], dt.datetime) for r in out[1:])


def test_predict_columns_in_any_order_and_missing_values(demo, R, F):
    new = demo.x.iloc[-3:][list(reversed(demo.x.columns))].copy()
    new.iloc[1, 2] = np.nan
    out = udfs.FLASSO_PREDICT(R, F, cells(new))
    model = LassoModel().fit(demo.x, demo.y)
    expected = model.predict(new[demo.x.columns])
    assert all(v is None for v in out[2][1:])  # a missing factor value: blank predictions
    assert_table(out, expected.set_axis([d.to_pydatetime() for d in new.index]), corner="date")


def test_cv_equals_core(demo, R, F):
    grid = [1e-5, 1e-4, 1e-3]
    out = udfs.FLASSO_CV(R, F, [[g] for g in grid], 3)
    cv = LassoModelCV(lambdas=grid, n_splits=3, refit=False).fit(demo.x, demo.y)
    assert out[0] == ["reg_lambda", "fold_0", "fold_1", "fold_2", "mean", "best"]
    assert [r[0] for r in out[1:]] == grid
    scores = np.array([r[1:4] for r in out[1:]], dtype=float)
    np.testing.assert_allclose(scores, cv.cv_scores_.to_numpy(), rtol=RTOL)
    np.testing.assert_allclose([r[4] for r in out[1:]], cv.mean_scores_.to_numpy(), rtol=RTOL)
    assert [r[0] for r in out[1:] if r[5] == "best"] == [cv.best_lambda_]


def test_cv_auto_grid_from_settings(demo, R, F):
    settings = [["cv_lambdas", "auto"], ["cv_n_lambdas", 4], ["cv_splits", 2],
                ["cv_lambda_min_ratio", 0.01], ["span", 52]]
    out = udfs.FLASSO_CV(R, F, None, None, settings)
    cv = LassoModelCV(lambdas="auto", n_lambdas=4, n_splits=2, lambda_min_ratio=0.01,
                      base_model=LassoModel(span=52), refit=False).fit(demo.x, demo.y)
    np.testing.assert_allclose([r[0] for r in out[1:]], cv.lambdas_, rtol=RTOL)
    np.testing.assert_allclose([r[3] for r in out[1:]], cv.mean_scores_.to_numpy(), rtol=RTOL)
    # explicit arguments override the settings
    out2 = udfs.FLASSO_CV(R, F, "0.001, 0.01", 3, settings)
    assert [r[0] for r in out2[1:]] == [0.001, 0.01] and out2[0][1:4] == [
        "fold_0", "fold_1", "fold_2"]


def _stats(table) -> dict:
    i = table.index(["statistic", "value"])
    return {k: v for k, v in table[i + 1:]}


def _weights(table) -> pd.Series:
    i = table.index([None, None])
    assert table[0] == ["asset", "weight"]
    return pd.Series({a: w for a, w in table[1:i]})


def test_maxdiv_sample_equals_core(demo, R):
    out = udfs.FLASSO_MAXDIV(R)
    est = MaximumDiversification().fit(demo.y)
    summary = est.predict(demo.y).summary()
    weights = _weights(out)
    assert list(weights.index) == list(demo.y.columns)
    np.testing.assert_allclose(weights.to_numpy(), est.weights_.to_numpy(), rtol=RTOL, atol=1e-14)
    stats = _stats(out)
    assert stats["diversification_ratio"] == pytest.approx(
        est.problem_values_["diversification_ratio"], rel=RTOL)
    assert stats["volatility"] == pytest.approx(est.problem_values_["risk"], rel=RTOL)
    for key in ("mean", "standard_deviation", "sharpe_ratio", "diversification", "turnover",
                "effective_number_assets"):
        assert stats[key] == pytest.approx(summary[key], rel=RTOL), key
    assert stats["covariance"] == "sample" and stats["observations"] == len(demo.y)


def test_maxdiv_ewma_settings_and_annualisation(demo, R):
    settings = [["key", "value"], ["covariance", "ewma"], ["span", 52], ["max_weights", 0.2],
                ["annualization_factor", 52], ["risk_free_rate", 0.0001]]
    out = udfs.FLASSO_MAXDIV(R, settings)
    est = MaximumDiversification(span=52, max_weights=0.2, risk_free_rate=0.0001).fit(demo.y)
    summary = est.predict(demo.y).summary()
    np.testing.assert_allclose(_weights(out).to_numpy(), est.weights_.to_numpy(), rtol=RTOL,
                               atol=1e-14)
    stats = _stats(out)
    assert stats["volatility"] == pytest.approx(est.problem_values_["risk"] * math.sqrt(52))
    assert stats["mean"] == pytest.approx(summary["mean"] * 52)
    assert stats["sharpe_ratio"] == pytest.approx(summary["sharpe_ratio"] * math.sqrt(52))
    assert max(_weights(out)) <= 0.2 + 1e-9


def test_maxdiv_factor_covariance_constraints_groups(demo, R, F):
    groups = pd.DataFrame({"Block": demo.clusters.map(lambda b: f"{b}_block"),
                           "Region": ["US", "US", "EU", "EU", "JP", "EM"] * 4},
                          index=demo.y.columns)
    constraints = [["constraint"], ["Equities_block <= 0.3"], ["US >= 0.1"], ["Equity <= 0.2"]]
    settings = [["covariance", "factor"], ["reg_lambda", 1e-4], ["factor_span", 104]]
    out = udfs.FLASSO_MAXDIV(R, settings, constraints, matrix_cells(groups), F)
    model = LassoModel(reg_lambda=1e-4, span=104).fit(demo.x, demo.y)
    fc = assemble_factor_covariance(model, demo.x)
    est = MaximumDiversification(
        covariance=fc, linear_constraints=["Equities_block <= 0.3", "US >= 0.1", "Equity <= 0.2"],
        groups={a: list(row) for a, row in groups.iterrows()},
    ).fit(None)
    weights = _weights(out)
    np.testing.assert_allclose(weights.to_numpy(), est.weights_.to_numpy(), rtol=RTOL,
                               atol=1e-14)
    assert weights[groups.index[groups["Region"] == "US"]].sum() >= 0.1 - 1e-7
    assert _stats(out)["covariance"] == "factor"


def _group_cells(groups: pd.Series) -> list:
    return [["asset", "group"], *[[a, g] for a, g in groups.items()]]


def test_cv_with_signs_prior_and_groups_equals_core(demo, R, F):
    """FLASSO_CV takes the model inputs of the fit functions (those of the refit_cv job)."""
    signs, prior = demo.signs.iloc[:12], demo.prior.iloc[:12]
    settings = [["span", 52], ["cv_n_lambdas", 5], ["cv_splits", 3]]
    out = udfs.FLASSO_CV(R, F, None, None, settings, matrix_cells(signs), matrix_cells(prior))
    base = LassoModel(span=52, factors_beta_loading_signs=signs.reindex(demo.y.columns),
                      factors_beta_prior=prior.reindex(demo.y.columns))
    cv = LassoModelCV(lambdas="auto", n_lambdas=5, n_splits=3, base_model=base,
                      refit=False).fit(demo.x, demo.y)
    np.testing.assert_allclose([r[0] for r in out[1:]], cv.lambdas_, rtol=RTOL)
    np.testing.assert_allclose(np.array([r[1:4] for r in out[1:]], dtype=float),
                               cv.cv_scores_.to_numpy(), rtol=RTOL)
    assert udfs.FLASSO_BEST_LAMBDA(R, F, None, None, settings, matrix_cells(signs),
                                   matrix_cells(prior)) == cv.best_lambda_
    # without the signs and prior the scores are those of another model
    plain = udfs.FLASSO_CV(R, F, None, None, settings)
    assert [r[1:4] for r in plain[1:]] != [r[1:4] for r in out[1:]]
    # GROUP_LASSO with the groups argument: the base model of every fold groups the assets
    grouped = udfs.FLASSO_CV(R, F, [[1e-5], [1e-4]], 2, [["model_type", "GROUP_LASSO"]], None,
                             None, _group_cells(demo.clusters))
    cvg = LassoModelCV(lambdas=[1e-5, 1e-4], n_splits=2, refit=False, base_model=LassoModel(
        model_type="GROUP_LASSO", group_data=demo.clusters)).fit(demo.x, demo.y)
    np.testing.assert_allclose([r[3] for r in grouped[1:]], cvg.mean_scores_.to_numpy(),
                               rtol=RTOL)


def test_best_lambda_is_the_best_row_and_shares_the_cross_validation(R, F, fresh_cache):
    grid = [[1e-6], [1e-5], [1e-4], [1e-3]]
    table = udfs.FLASSO_CV(R, F, grid, 3)
    best = udfs.FLASSO_BEST_LAMBDA(R, F, grid, 3)
    assert isinstance(best, float)
    assert best == next(r[0] for r in table[1:] if r[-1] == "best")
    assert best == max(table[1:], key=lambda r: r[-2])[0]  # the highest mean score
    info = udfs.cache_info()
    assert (info.computations, info.hits) == (1, 1)  # one cross-validation for both
    assert udfs.FLASSO_BEST_LAMBDA(R, F, [[1e-4], ["x"]]) == (
        "#FLASSO! lambdas: row 2, column 1: 'x' is not a number or 'auto'")


def test_a_changed_sign_cell_changes_the_cross_validation(demo, R, F, fresh_cache):
    """Every argument is part of the cache key: one sign cell more is a new result."""
    grid = [[1e-6], [1e-5], [1e-4]]
    signs = matrix_cells(demo.signs)
    first = udfs.FLASSO_CV(R, F, grid, 3, None, signs)
    changed = copy.deepcopy(signs)
    row = next(i for i, r in enumerate(changed) if r[0] == "SPX")
    col = changed[0].index("Equity")
    assert changed[row][col] != 0
    changed[row][col] = 0  # SPX may not load on Equity any more
    second = udfs.FLASSO_CV(R, F, grid, 3, None, changed)
    assert udfs.cache_info().computations == 2
    assert [r[1:4] for r in second[1:]] != [r[1:4] for r in first[1:]]
    assert second[1][4] < first[1][4]  # SPX's out-of-sample fit is worse without its equity beta
    assert udfs.FLASSO_CV(R, F, grid, 3, None, copy.deepcopy(changed)) == second
    assert udfs.cache_info().computations == 2  # the same content: answered from the cache
    assert udfs.FLASSO_CV(R, F, grid, 3, None, signs) == first


def test_fit_with_groups_equals_core_group_lasso(demo, R, F):
    out = udfs.FLASSO_FIT(R, F, 1e-4, "GROUP_LASSO", None, None, None,
                          _group_cells(demo.clusters))
    model = LassoModel(reg_lambda=1e-4, model_type="GROUP_LASSO",
                       group_data=demo.clusters).fit(demo.x, demo.y)
    assert_table(out, model.coef_)
    clusters = udfs.FLASSO_CLUSTERS(R, F, 1e-4, "GROUP_LASSO", None, None, None,
                                    _group_cells(demo.clusters))
    assert [r[1] for r in clusters[1:]] == list(demo.clusters)
    partial = _group_cells(demo.clusters.iloc[:-1])
    is_error(udfs.FLASSO_FIT(R, F, None, "GROUP_LASSO", None, None, None, partial), "groups",
             f"needs a group for every asset; {demo.y.columns[-1]!r} has none")
    is_error(udfs.FLASSO_FIT(R, F, None, None, None, None, [["model_type", "GROUP_LASSO"]]),
             "settings", "give them in the groups argument")


def _maxdiv_model(demo, **params) -> MaximumDiversification:
    model = LassoModel(**params).fit(demo.x, demo.y)
    return MaximumDiversification(covariance=assemble_factor_covariance(model, demo.x),
                                  max_weights=0.2).fit(None)


def test_maxdiv_factor_model_from_signs_prior_and_model_settings(demo, R, F):
    """covariance = factor fits the model of the refit job: signs, prior and the model settings
    (FL_SETTINGS), with the factor_* keys of the portfolio settings on top."""
    signs, prior = demo.signs, demo.prior
    model_settings = [["key", "value"], ["model_type", "HCGL"], ["n_clusters", 4],
                      ["reg_lambda", 1e-5], ["span", 52], ["annualization_factor", 52]]
    settings = [["covariance", "factor"], ["max_weights", 0.2], ["factor_reg_lambda", 1e-4]]
    out = udfs.FLASSO_MAXDIV(R, settings, None, None, F, matrix_cells(signs),
                             matrix_cells(prior), model_settings)
    est = _maxdiv_model(demo, model_type="HCGL", n_clusters=4, reg_lambda=1e-4, span=52,
                        factors_beta_loading_signs=signs, factors_beta_prior=prior)
    np.testing.assert_allclose(_weights(out).to_numpy(), est.weights_.to_numpy(), rtol=RTOL,
                               atol=1e-14)
    # the statistics use the model settings' annualization_factor (the portfolio settings set
    # none), as the job uses FL_SETTINGS'; the covariance the optimiser sees is not scaled
    assert _stats(out)["annualization_factor"] == 52
    assert _stats(out)["volatility"] == pytest.approx(
        est.problem_values_["risk"] * math.sqrt(52), rel=RTOL)
    # without them it is another model, and other weights
    plain = udfs.FLASSO_MAXDIV(R, settings, None, None, F)
    assert np.abs(_weights(plain).to_numpy() - _weights(out).to_numpy()).max() > 1e-3
    # GROUP_LASSO needs the model's groups, in model_groups (groups are the asset tags)
    group = [["covariance", "factor"], ["max_weights", 0.2], ["model_type", "GROUP_LASSO"]]
    is_error(udfs.FLASSO_MAXDIV(R, group, None, None, F), "settings",
             "give them in the model_groups argument")
    is_error(udfs.FLASSO_MAXDIV(R, group, None, None, F, None, None, None,
                                _group_cells(demo.clusters.iloc[1:])), "model_groups",
             "needs a group for every asset; 'SPX' has none")
    grouped = udfs.FLASSO_MAXDIV(R, group, None, None, F, None, None, None,
                                 _group_cells(demo.clusters))
    est = _maxdiv_model(demo, model_type="GROUP_LASSO", group_data=demo.clusters)
    np.testing.assert_allclose(_weights(grouped).to_numpy(), est.weights_.to_numpy(),
                               rtol=RTOL, atol=1e-14)
    # a bad model setting is reported on its cell of model_settings
    is_error(udfs.FLASSO_MAXDIV(R, settings, None, None, F, None, None,
                                [["n_clusters", 99]]), "model_settings",
             "row 1, column 2: n_clusters 99 is more than the 24 assets")


def test_maxdiv_previous_weights_turnover_and_costs(demo, R):
    prev = pd.Series(1 / 6, index=demo.y.columns[:6])
    settings = [["max_turnover", 0.1], ["transaction_costs", 0.002]]
    out = udfs.FLASSO_MAXDIV(R, settings, None, None, None, None, None, None, None,
                             [["asset", "weight"], *[[a, w] for a, w in prev.items()]])
    previous = prev.reindex(demo.y.columns).fillna(0.0).to_numpy()
    est = MaximumDiversification(max_turnover=0.1, transaction_costs=0.002,
                                 previous_weights=previous).fit(demo.y)
    weights = _weights(out)
    np.testing.assert_allclose(weights.to_numpy(), est.weights_.to_numpy(), rtol=RTOL,
                               atol=1e-14)
    moves = np.abs(weights.to_numpy() - previous)  # max_turnover caps each asset's move
    assert moves.max() <= 0.1 + 1e-7 and moves.max() == pytest.approx(0.1, abs=1e-7)
    summary = est.predict(demo.y).summary()
    assert _stats(out)["turnover"] == pytest.approx(summary["turnover"], rel=RTOL)
    is_error(udfs.FLASSO_MAXDIV(R, None, None, None, None, None, None, None, None,
                                [["asset", "weight"], ["MSFT", 1.0]]), "previous_weights",
             "row 2, column 1: asset 'MSFT' is not in returns")


def test_maxdiv_statistics_rows_are_those_of_the_job(demo, R, F):
    """covariance first and n_invested last, as FL_PORTFOLIO_STATS; factor-model inputs are
    not used with another covariance (as the job ignores FL_FACTORS then)."""
    out = udfs.FLASSO_MAXDIV(R, [["max_weights", 0.2]])
    rows = out[out.index(["statistic", "value"]) + 1:]
    assert rows[0] == ["covariance", "sample"]
    assert rows[1] == ["annualization_factor", 1.0]  # stated, as in FL_PORTFOLIO_STATS
    assert [r[0] for r in rows[2:4]] == ["diversification_ratio", "volatility"]
    weights = _weights(out).to_numpy()
    assert rows[-1] == ["n_invested", int((np.abs(weights) > 1e-6).sum())]
    assert udfs.FLASSO_MAXDIV(R, [["max_weights", 0.2]], None, None, F, matrix_cells(
        demo.signs), None, [["span", 52]], _group_cells(demo.clusters)) == out


# --------------------------------------------------------------------------- settings override
def test_explicit_arguments_override_settings(demo, R, F):
    settings = [["reg_lambda", 1e-3], ["model_type", "HCGL"]]
    from_settings = udfs.FLASSO_FIT(R, F, None, None, None, None, settings)
    assert_table(from_settings, LassoModel(reg_lambda=1e-3, model_type="HCGL").fit(
        demo.x, demo.y).coef_)
    overridden = udfs.FLASSO_FIT(R, F, 1e-2, "LASSO", None, None, settings)
    assert_table(overridden, LassoModel(reg_lambda=1e-2).fit(demo.x, demo.y).coef_)
    # a blank cell for an optional argument means "not given": settings apply
    blank = udfs.FLASSO_FIT(R, F, [[None]], "", None, None, settings)
    assert blank == from_settings


def test_settings_keys_are_case_and_space_insensitive(demo, R, F):
    out = udfs.FLASSO_R2(R, F, None, None, None, None, [["Reg Lambda", 1e-3], ["SPAN", 52]])
    model = LassoModel(reg_lambda=1e-3, span=52).fit(demo.x, demo.y)
    assert_table(out, model.r2_.to_frame("r2"))


# --------------------------------------------------------------------------- dates and blanks
@pytest.mark.parametrize("dates", ["iso", "serial"])
def test_dates_as_the_server_sends_them(demo, R, F, dates):
    """ISO strings (remote engine) and Excel serial numbers (Office.js) give the same fit."""
    out = udfs.FLASSO_FIT(cells(demo.y, dates=dates), cells(demo.x, dates=dates))
    assert out == udfs.FLASSO_FIT(R, F)
    pred = udfs.FLASSO_PREDICT(cells(demo.y, dates=dates), cells(demo.x, dates=dates),
                               cells(demo.x.iloc[:2], dates=dates))
    if dates == "serial":  # periods come back as the numbers they were
        assert pred[0][0] == "period" and pred[1][0] == 43469.0
    else:
        assert pred[1][0] == dt.datetime(2019, 1, 4)


@pytest.mark.filterwarnings("ignore:1 of 24 responses have fewer than warmup_period")
def test_missing_values_and_nan_outputs_are_blank(demo, F):
    y = demo.y.copy()
    y.iloc[:250, 3] = np.nan  # UKX: 10 observations < warmup_period 12
    y.iloc[5, 0] = np.nan  # one missing return
    R = cells(y)
    assert R[6][1] is None and R[1][4] is None
    out = udfs.FLASSO_R2(R, F)
    model = LassoModel().fit(demo.x, y)
    assert_table(out, model.r2_.to_frame("r2"))
    assert out[4] == ["UKX", None]
    assert udfs.FLASSO_INTERCEPT(R, F)[4] == ["UKX", None]
    assert udfs.FLASSO_FIT(R, F)[4][1:] == [0.0] * 6


def test_office_js_cell_objects_are_understood(R, F, fresh_cache):
    """Office.js error objects and Pyodide's JsNull, as the server passes them "raw"."""

    class JsNull:  # stands for pyodide.ffi.JsNull (a JS proxy: not picklable)
        def __reduce__(self):
            raise TypeError("cannot pickle JsNull")

    na = {"type": "Error", "basicValue": "#N/A", "errorType": "NotAvailable"}
    is_error(udfs.FLASSO_FIT(_set(R, 2, 2, na), F), "returns",
             "row 3, column 3: #N/A is an Excel error value")
    is_error(udfs.FLASSO_FIT(_set(R, 2, 2, {"type": "Error", "errorType": "Div0"}), F),
             "returns", "#DIV/0! is an Excel error value")
    is_error(udfs.FLASSO_FIT(R, F, na), "reg_lambda", "#N/A is an Excel error value")
    with_null = [*R[:2], [*R[2][:2], JsNull(), *R[2][3:]], *R[3:]]
    assert udfs.FLASSO_FIT(with_null, F) == udfs.FLASSO_FIT(_set(R, 2, 2, None), F)
    hits = udfs.cache_info().hits
    udfs.FLASSO_FIT(with_null, F)  # cached although the raw cells cannot be pickled
    assert udfs.cache_info().hits == hits + 1
    assert udfs.FLASSO_FIT(R, F, JsNull(), [[JsNull()]]) == udfs.FLASSO_FIT(R, F)
    number = {"type": "FormattedNumber", "basicValue": 1e-4, "numberFormat": "0.00E+00"}
    assert udfs.FLASSO_FIT(R, F, number) == udfs.FLASSO_FIT(R, F, 1e-4)


def test_trailing_blank_rows_and_columns_are_ignored(R, F):
    padded = [row + [None, ""] for row in R] + [[None] * (len(R[0]) + 2)] * 3
    assert udfs.FLASSO_FIT(padded, F) == udfs.FLASSO_FIT(R, F)


def test_fast_panel_reader_matches_parse_panel(demo):
    y = demo.y.copy()
    y.iloc[:30, 2] = np.nan
    cases = [cells(y), cells(y, dates="serial"), cells(y, dates="iso"),
             [row + [None] for row in cells(demo.x)],
             [[None, "a", "b"], [1, 2, None], [2.5, 3, 4]],
             [["d", "a"], [dt.datetime(2020, 1, 1), 1.0], [dt.datetime(2020, 1, 2), None]]]
    for values in cases:
        block = Block.of("returns", values)
        expected = parse_panel(block, what="asset")
        got = udfs._panel("returns", values, "asset")
        pd.testing.assert_frame_equal(got, expected)
    # the fast path declines what needs a message, a conversion or a decision
    for values in ([["d", "a"], [dt.datetime(2020, 1, 1), "1.5"]],
                   [["d", "a"], [dt.datetime(2020, 1, 2), 1.0], [dt.datetime(2020, 1, 1), 2.0]],
                   [["d", "a"], [dt.datetime(2020, 1, 1), True]],
                   [["d", 1.0], [dt.datetime(2020, 1, 1), 2.0]],
                   [["d", "a"], [None, 1.0]],
                   [["d", "a"], [dt.datetime(2020, 1, 1), float("inf")]]):
        assert panel_fast(Block.of("returns", values).trimmed()) is None


# --------------------------------------------------------------------------- the cache
def test_functions_on_the_same_inputs_share_one_fit(R, F, fresh_cache, fit_counter):
    udfs.FLASSO_FIT(R, F, 1e-4)
    udfs.FLASSO_R2(R, F, 1e-4)
    udfs.FLASSO_INTERCEPT(R, F, [[1e-4]])  # a 1x1 range hashes like the number
    udfs.FLASSO_RESID_VOL(R, F, 1e-4)
    udfs.FLASSO_COV(R, F, 1e-4)
    udfs.FLASSO_PREDICT(R, F, F[:5], 1e-4)
    udfs.FLASSO_FIT(copy.deepcopy(R), copy.deepcopy(F), 1e-4)  # same content, new objects
    assert len(fit_counter) == 1
    info = udfs.cache_info()
    assert (info.misses, info.hits, info.currsize) == (1, 6, 1)


def test_notes_give_the_fits_warnings_from_the_same_fit(demo, R, F, fresh_cache, fit_counter):
    """A spilled table has no room for the fit's warnings (a factor that is a combination of
    others, one with a single value...): FLASSO_NOTES shows them, from the cached fit, once
    each; "ok" without any; FLASSO_FIT's message on bad input."""
    assert udfs.FLASSO_NOTES(R, F, 1e-4) == [["notes"], ["ok"]]
    x = demo.x.copy()
    first = x.columns[0]
    x["double"] = 2.0 * x[first]
    x["flat"] = 0.01
    G = cells(x)
    fit = udfs.FLASSO_FIT(R, G, 1e-4)
    assert isinstance(fit, list) and len(fit) == len(R[0])  # the table, as before
    count = len(fit_counter)
    notes = udfs.FLASSO_NOTES(R, G, 1e-4)
    assert len(fit_counter) == count  # the same fit
    assert notes == [["notes"],
                     ["x: factor 'flat' is constant on every row of the fit: its loadings stay "
                      "at the prior (0 without one)"],
                     [f"x: factors {first!r} and 'double' are proportional on the rows of the "
                      "fit, once demeaned: their loadings are not unique (moving them along "
                      "that combination leaves the objective unchanged) and fits can split them "
                      "differently; drop one of them"]]
    bad = copy.deepcopy(R)
    bad[3][2] = "abc"
    assert udfs.FLASSO_NOTES(bad, F) == udfs.FLASSO_FIT(bad, F)
    assert udfs.FLASSO_NOTES(bad, F).startswith("#FLASSO! returns: row 4, column 3")


def test_different_content_misses(R, F, fresh_cache, fit_counter):
    udfs.FLASSO_FIT(R, F)
    changed = copy.deepcopy(R)
    changed[10][3] += 1e-9
    udfs.FLASSO_FIT(changed, F)
    udfs.FLASSO_FIT(R, F, 2e-5)
    udfs.FLASSO_FIT(R, F, None, None, None, None, [["span", 52]])
    assert len(fit_counter) == 4
    udfs.FLASSO_FIT(changed, F)
    assert len(fit_counter) == 4 and udfs.cache_info().hits == 1


def test_cache_is_bounded_lru(R, F, fresh_cache, fit_counter):
    udfs.cache_resize(3)
    lambdas = [1e-5, 2e-5, 3e-5, 4e-5]
    for lam in lambdas:
        udfs.FLASSO_FIT(R, F, lam)
    assert udfs.cache_info().currsize == 3 and len(fit_counter) == 4
    udfs.FLASSO_FIT(R, F, 4e-5)  # most recent: kept
    assert len(fit_counter) == 4
    udfs.FLASSO_FIT(R, F, 1e-5)  # least recent: evicted, fitted again
    assert len(fit_counter) == 5 and udfs.cache_info().currsize == 3


def test_cache_is_thread_safe_and_fits_once(R, F, fresh_cache, fit_counter):
    barrier = threading.Barrier(8)
    results = []

    def worker(fn):
        barrier.wait()
        results.append(fn(R, F, 3e-4))

    fns = [udfs.FLASSO_FIT, udfs.FLASSO_R2] * 4
    threads = [threading.Thread(target=worker, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fit_counter) == 1 and len(results) == 8
    assert all(isinstance(r, list) for r in results)


def test_input_errors_are_cached_too(R, F, fresh_cache):
    bad = [["sign"], ["x"]]
    first = udfs.FLASSO_FIT(R, F, -1)
    assert udfs.FLASSO_FIT(R, F, -1) == first
    assert udfs.cache_info().hits == 1
    assert isinstance(udfs.FLASSO_FIT(R, F, None, None, bad), str)


def test_maxdiv_and_cv_are_cached(R, F, fresh_cache, monkeypatch):
    calls = []
    original = MaximumDiversification.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MaximumDiversification, "fit", counting)
    first = udfs.FLASSO_MAXDIV(R, [["max_weights", 0.3]])
    assert udfs.FLASSO_MAXDIV(copy.deepcopy(R), [["max_weights", 0.3]]) == first
    assert len(calls) == 1
    udfs.FLASSO_CV(R, F, [[1e-4], [1e-3]], 2)
    udfs.FLASSO_CV(R, F, [[1e-4], [1e-3]], 2)
    assert udfs.cache_info().computations == 2


def test_unexpected_errors_become_one_cell_and_are_not_cached(R, F, fresh_cache, monkeypatch):
    def boom(self, x, y):
        raise RuntimeError("boom")

    monkeypatch.setattr(LassoModel, "fit", boom)
    out = udfs.FLASSO_FIT(R, F)
    assert out == "#FLASSO! internal error (RuntimeError: boom); please report it"
    assert udfs.cache_info().currsize == 0


# --------------------------------------------------------------------------- bad inputs
def _set(table, i, j, value):
    out = copy.deepcopy(table)
    out[i][j] = value
    return out


def _short(table, n):
    return table[: n + 1]


SIGN_HEADER = ["asset", "Equity", "Rates", "Credit"]


def bad_cases(R, F):
    """(label, call, argument named, fragments of the message)."""
    fit = udfs.FLASSO_FIT
    flipped = [R[0], R[2], R[1], *R[3:]]
    return [
        ("text in returns", lambda: fit(_set(R, 3, 2, "abc"), F), "returns",
         ["row 4, column 3: 'abc' is not a number"]),
        ("#N/A in returns", lambda: fit(_set(R, 3, 2, "#N/A"), F), "returns",
         ["row 4, column 3: #N/A is an Excel error value"]),
        ("#DIV/0! in factors", lambda: fit(R, _set(F, 5, 1, "#DIV/0!")), "factors",
         ["row 6, column 2: #DIV/0! is an Excel error value"]),
        ("TRUE in returns", lambda: fit(_set(R, 2, 2, True), F), "returns",
         ["TRUE/FALSE"]),
        ("infinite return", lambda: fit(_set(R, 2, 2, float("inf")), F), "returns",
         ["not a finite number"]),
        ("blank asset name", lambda: fit(_set(R, 0, 3, None), F), "returns",
         ["row 1, column 4: the asset name is blank"]),
        ("duplicate asset", lambda: fit(_set(R, 0, 3, "SPX"), F), "returns",
         ["row 1, column 4: duplicate asset name 'SPX' (also at row 1, column 2)"]),
        ("duplicate factor", lambda: fit(R, _set(F, 0, 2, "Equity")), "factors",
         ["duplicate factor name 'Equity'"]),
        ("error value as a label", lambda: fit(_set(R, 0, 2, "#REF!"), F), "returns",
         ["error value #REF!"]),
        ("date only in returns", lambda: fit(R, F[:-1]), "returns",
         ["date 2023-12-22 has no row in factors", "260 vs 259 rows"]),
        ("date only in factors", lambda: fit(_short(R, 200), F), "factors",
         ["has no row in returns"]),
        ("dates not increasing", lambda: fit(flipped, F), "returns",
         ["row 3, column 1", "dates must increase"]),
        ("dates and numbers", lambda: fit(R, cells(load_demo_panel().x, dates="serial")),
         "returns", ["first column holds dates but that of factors holds numbers"]),
        ("text date", lambda: fit(_set(R, 4, 0, "yesterday"), F), "returns",
         ["'yesterday' is not a date"]),
        ("empty returns", lambda: fit(None, F), "returns", ["the range is empty"]),
        ("header only", lambda: fit(R[:1], F[:1]), "returns", ["found 1 row(s)"]),
        ("too few rows", lambda: fit(_short(R, 3), _short(F, 3)), "returns",
         ["returns and factors have 3 dates; the fit needs at least 5"]),
        ("unknown sign value", lambda: fit(R, F, None, None,
                                           [SIGN_HEADER, ["SPX", 1, "x", None]]), "signs",
         ["row 2, column 3: 'x' is not one of blank, 0, 1, -1, +, -"]),
        ("sign 2", lambda: fit(R, F, None, None, [SIGN_HEADER, ["SPX", 2, None, None]]),
         "signs", ["row 2, column 2: 2 is not one of"]),
        ("sign for an unknown asset", lambda: fit(R, F, None, None,
                                                  [SIGN_HEADER, ["MSFT", 1, None, None]]),
         "signs", ["row 2, column 1: asset 'MSFT' is not in returns"]),
        ("sign for an unknown factor", lambda: fit(
            R, F, None, None, [["asset", "Momentum"], ["SPX", 1]]), "signs",
         ["row 1, column 2: factor 'Momentum' is not in factors"]),
        ("duplicate sign row", lambda: fit(R, F, None, None,
                                           [SIGN_HEADER, ["SPX", 1, None, None],
                                            ["SPX", 1, None, None]]), "signs",
         ["duplicate asset name 'SPX'"]),
        ("prior contradicts sign", lambda: fit(
            R, F, None, None, [SIGN_HEADER, ["SPX", 1, None, None]],
            [["asset", "Equity"], ["SPX", -0.5]]), "prior",
         ["row 2, column 2: the prior -0.5 for (SPX, Equity) contradicts the sign 1",
          "signs (row 2, column 2)"]),
        ("text in prior", lambda: fit(R, F, None, None, None,
                                      [["asset", "Equity"], ["SPX", "high"]]), "prior",
         ["'high' is not a number"]),
        ("prior for an unknown asset", lambda: fit(R, F, None, None, None,
                                                   [["asset", "Equity"], ["XYZ", 1]]), "prior",
         ["asset 'XYZ' is not in returns"]),
        ("unknown setting", lambda: fit(R, F, None, None, None, None, [["foo", 1]]),
         "settings", ["row 1, column 1: unknown setting 'foo'", "known settings:"]),
        ("bad setting value", lambda: fit(R, F, None, None, None, None,
                                          [["key", "value"], ["span", "long"]]), "settings",
         ["row 2, column 2: span:"]),
        ("setting out of range", lambda: fit(R, F, None, None, None, None,
                                             [["span", 52], ["l1_weight", 2]]), "settings",
         ["row 2, column 2: l1_weight must be in [0, 1], got 2"]),
        ("repeated setting", lambda: fit(R, F, None, None, None, None,
                                         [["span", 52], ["span", 26]]), "settings",
         ["given twice"]),
        ("settings with one column", lambda: fit(R, F, None, None, None, None, [["span"]]),
         "settings", ["expected two columns"]),
        ("negative lambda", lambda: fit(R, F, -1), "reg_lambda", ["must be >= 0, got -1"]),
        ("text lambda", lambda: fit(R, F, "big"), "reg_lambda", ["'big' is not a number"]),
        ("#N/A lambda", lambda: fit(R, F, "#N/A"), "reg_lambda", ["Excel error value"]),
        ("range as lambda", lambda: fit(R, F, [[1e-4], [1e-3]]), "reg_lambda",
         ["expected a single value"]),
        ("unknown model type", lambda: fit(R, F, None, "ridge"), "model_type",
         ["'ridge' is not one of LASSO, UNILASSO, GROUP_LASSO, HCGL, FCGL"]),
        ("group lasso without groups", lambda: fit(R, F, None, "GROUP_LASSO"), "model_type",
         ["needs a group for every asset"]),
        ("group lasso in settings", lambda: fit(R, F, None, None, None, None,
                                                [["model_type", "group"]]), "settings",
         ["GROUP_LASSO needs a group"]),
        ("clusters of a LASSO", lambda: udfs.FLASSO_CLUSTERS(R, F), "model_type",
         ["LASSO does not group the assets"]),
        ("resid vol without residuals", lambda: udfs.FLASSO_RESID_VOL(
            [[*r[:2], None if 0 < i < 255 else r[2], *r[3:]] for i, r in enumerate(R)], F),
         "returns", ["no residual variance for NDX (fewer"]),
        ("predict: unknown factor", lambda: udfs.FLASSO_PREDICT(
            R, F, [[*F[0], "Momentum"], [*F[1], 0.1]]), "new_factors",
         ["row 1, column 8: factor 'Momentum' is not in factors"]),
        ("predict: no header row", lambda: udfs.FLASSO_PREDICT(R, F, F[-3:]), "new_factors",
         ["row 1, column 2: factor '0.0158", "is the header row of factor names missing?"]),
        ("predict: missing factor", lambda: udfs.FLASSO_PREDICT(
            R, F, [row[:-1] for row in F[:3]]), "new_factors",
         ["factor 'Inflation' of factors has no column"]),
        ("cv: text lambdas", lambda: udfs.FLASSO_CV(R, F, [[1e-4], ["abc"]]), "lambdas",
         ["row 2, column 1: 'abc' is not a number or 'auto'"]),
        ("cv: negative lambdas", lambda: udfs.FLASSO_CV(R, F, [[1e-4, -2]]), "lambdas",
         ["-2 is not a number >= 0"]),
        ("cv: zero folds", lambda: udfs.FLASSO_CV(R, F, None, 0), "n_splits",
         ["must be a whole number >= 2, got 0"]),
        ("cv: fractional folds", lambda: udfs.FLASSO_CV(R, F, None, 2.5), "n_splits",
         ["must be a whole number >= 2, got 2.5"]),
        ("cv: too many folds", lambda: udfs.FLASSO_CV(_short(R, 60), _short(F, 60),
                                                      [[1e-4]], 20), "n_splits",
         ["20 is too many for the 60 dates: the first training window would have 2 rows and "
          "needs 12 (warmup_period 12); use at most 4 (or lower warmup_period)"]),
        ("cv: bad cv setting", lambda: udfs.FLASSO_CV(R, F, None, None, [["cv_splits", "x"]]),
         "settings", ["cv_splits"]),
    ]


def maxdiv_cases(R, F):
    md = udfs.FLASSO_MAXDIV
    return [
        ("infeasible constraints", lambda: md(R, None, [["SPX >= 0.6"], ["NDX >= 0.6"]]),
         "constraints", ["Infeasible", "'SPX >= 0.6'", "cells row 1, column 1, row 2, column 1"]),
        ("infeasible settings", lambda: md(R, [["min_weights", 0.5]]), "settings",
         ["Infeasible", "min_weights"]),
        ("constraint syntax", lambda: md(R, None, [["constraint"], ["SPX <= 0.5"],
                                                   ["SPX >== 0.6"]]), "constraints",
         ["row 3, column 1: linear constraint 'SPX >== 0.6'"]),
        ("unknown name in a constraint", lambda: md(R, None, ["Tech <= 0.3"]), "constraints",
         ["row 1, column 1", "unknown asset, group or factor name 'Tech'"]),
        ("#N/A constraint", lambda: md(R, None, [["#N/A"]]), "constraints",
         ["Excel error value"]),
        ("unknown portfolio setting", lambda: md(R, [["risk_aversion", 2]]), "settings",
         ["row 1, column 1: unknown setting 'risk_aversion'"]),
        ("bad covariance", lambda: md(R, [["covariance", "ledoit"]]), "settings",
         ["'ledoit' is not one of sample, ewma, factor"]),
        ("ewma without span", lambda: md(R, [["covariance", "ewma"]]), "settings",
         ["needs a span"]),
        ("ewma span not above the assets", lambda: md(R, [["covariance", "ewma"],
                                                          ["span", 20]]), "settings",
         ["row 2, column 2: span=20 gives the", "20.0 equal ones", "not more than the 24 assets",
          "give a span above 24 (with more than 24 dates of returns) or use covariance = "
          "factor"]),
        ("span with sample", lambda: md(R, [["span", 52]]), "settings",
         ["row 1, column 1: span is the EWMA span"]),
        ("model key without factor covariance", lambda: md(R, [["reg_lambda", 1e-3]]),
         "settings", ["reg_lambda is a factor-model setting"]),
        ("factor covariance without factors", lambda: md(R, [["covariance", "factor"]]),
         "factors", ["needs the factor returns"]),
        ("factor dates differ", lambda: md(R, [["covariance", "factor"]], None, None, F[:-3]),
         "returns", ["has no row in factors"]),
        ("missing return with sample covariance", lambda: md(_set(R, 7, 2, None)), "returns",
         ["'NDX' has no return on 2019-02-15"]),
        ("group for an unknown asset", lambda: md(R, None, None,
                                                  [["asset", "Sector"], ["MSFT", "Tech"]]),
         "groups", ["row 2, column 1: asset 'MSFT' is not in returns"]),
        ("group tag equals an asset", lambda: md(R, None, ["SPX <= 0.3"],
                                                 [["asset", "Sector"], ["NDX", "SPX"]]),
         "groups", ["'SPX' is both"]),
        ("negative max_long", lambda: md(R, [["budget", "none"], ["max_long", -1]]), "settings",
         ["row 2, column 2", "max_long"]),
        ("bad weight bound text", lambda: md(R, [["max_weights", "lots"]]), "settings",
         ["row 1, column 2: max_weights:"]),
        ("too few return rows", lambda: md(_short(R, 1)), "returns",
         ["only 1 date: a covariance of the returns needs at least 2"]),
    ]


@pytest.mark.filterwarnings("ignore:1 of 24 responses have fewer than warmup_period")
def test_bad_input_corpus(R, F, fresh_cache):
    cases = bad_cases(R, F) + maxdiv_cases(R, F)
    assert len(cases) >= 25
    for label, call, argument, fragments in cases:
        try:
            is_error(call(), argument, *fragments)
        except AssertionError as err:
            raise AssertionError(f"{label}: {err}") from None


def test_error_messages_are_one_readable_cell(R, F):
    out = udfs.FLASSO_FIT(R, F, None, None, [SIGN_HEADER, ["SPX", 1, "x", None]])
    assert out == ("#FLASSO! signs: row 2, column 3: 'x' is not one of blank, 0, 1, -1, +, -")


# --------------------------------------------------------------------------- found by fuzzing
def test_a_repeated_lambda_is_named(R, F):
    """A repeated value gave the scores two rows with one label: FLASSO_CV spilled pandas
    Series objects into its 'mean' column."""
    is_error(udfs.FLASSO_CV(R, F, [[1e-4], [1e-3], [1e-4]], 2), "lambdas",
             "row 3, column 1: 0.0001 is given twice (also at row 1, column 1)")
    is_error(udfs.FLASSO_BEST_LAMBDA(R, F, [[0, 0]], 2), "lambdas",
             "row 1, column 2: 0 is given twice (also at row 1, column 1)")
    is_error(udfs.FLASSO_CV(R, F, "0.001; 0.01; 0.001", 2), "lambdas", "0.001 is given twice")
    is_error(udfs.FLASSO_CV(R, F, None, 2, [["cv_lambdas", "0.01, 0.01"]]), "settings",
             "row 1, column 2: cv_lambdas: 0.01 is given twice")


def test_a_prior_too_large_to_compute_with_is_named(R, F, recwarn):
    """A prior of 1e300 overflowed inside the solver: numpy warnings, then 'settings: the
    solver failed' or 'returns: Eigenvalues did not converge' (or minutes of refits)."""
    for value in (1e300, -1e160):
        prior = [["asset", "Equity", "Rates"], ["SPX", None, None], ["NDX", 0.5, value]]
        for fn in (udfs.FLASSO_FIT, udfs.FLASSO_CLUSTERS):
            is_error(fn(R, F, None, "HCGL", None, prior), "prior",
                     f"row 3, column 3: the prior {value:g} for (NDX, Rates) is too large to "
                     "compute with")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    big = [["asset", "Equity"], ["SPX", 1e10]]  # absurd, but computable
    assert isinstance(udfs.FLASSO_FIT(R, F, None, None, None, big), list)


def test_model_type_argument_is_read_as_the_setting(R, F):
    """TRUE and dates were shown as Python writes them ('True is not a LassoModelType',
    'datetime.datetime(2020, 1, 1, 0, 0) is not one of ...')."""
    names = "is not one of LASSO, UNILASSO, GROUP_LASSO, HCGL, FCGL"
    assert udfs.FLASSO_FIT(R, F, None, True).startswith(f"#FLASSO! model_type: True {names}")
    assert udfs.FLASSO_FIT(R, F, None, dt.datetime(2020, 1, 1)).startswith(
        f"#FLASSO! model_type: 2020-01-01 {names}")
    assert udfs.FLASSO_FIT(R, F, None, "hcgl") == udfs.FLASSO_FIT(R, F, None, "HCGL")


def test_a_message_that_starts_with_the_argument_keeps_no_equals_sign(demo, R, F):
    """The core's "lambdas='auto': ..." became "lambdas: ='auto': ..."."""
    zero = [["asset", *demo.x.columns], *([a, *[0] * demo.x.shape[1]] for a in demo.y.columns)]
    out = udfs.FLASSO_CV(R, F, "auto", 2, None, zero)  # every loading held at 0
    is_error(out, "lambdas", "'auto': lambda_max is 0")
    assert ": =" not in out


def test_an_unknown_asset_on_the_first_row_of_asset_rows_is_located(R, F):
    """asset | group rows without a header row: the first row is data, and its stranger was
    named without its cell."""
    groups = [["Tech", "G1"], ["SPX", "G2"]]
    is_error(udfs.FLASSO_FIT(R, F, None, None, None, None, None, groups), "groups",
             "row 1, column 1: asset 'Tech' is not in returns")
    is_error(udfs.FLASSO_MAXDIV(R, None, None, None, None, None, None, None, None,
                                [[1, 0.5]]), "previous_weights",
             "row 1, column 1: asset '1' is not in returns (a number as an asset name")


def test_an_office_js_data_type_without_a_basic_value_is_not_a_blank(R, F):
    """A linked data type (an Entity: a stock, a geography) arrives as a dict without
    basicValue; it was read as a blank cell, i.e. a missing return, and the fit went on."""
    entity = {"type": "Entity", "text": "MSFT", "properties": {}}
    is_error(udfs.FLASSO_FIT(_set(R, 5, 2, entity), F), "returns",
             "row 6, column 3: #VALUE! is an Excel error value")
    is_error(udfs.FLASSO_RETURNS([["date", "A"], [dt.datetime(2020, 1, 1), 100.0],
                                  [dt.datetime(2020, 1, 2), entity]]), "prices",
             "row 3, column 2: #VALUE! is an Excel error value")
