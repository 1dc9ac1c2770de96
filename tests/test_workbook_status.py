"""One answer everywhere in the jobs: the portfolio's factor model is the model the sheet shows,
FL_STATUS keeps a column per step, portfolio statistics have one annualisation convention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.workbook_helpers import demo_memory_book
from xl_factorlasso import (
    LassoModel,
    LassoModelCV,
    MaximumDiversification,
    assemble_factor_covariance,
)
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import optimise_portfolio, refit, refit_cv, run_jobs
from xl_factorlasso.workbook._compute import fit_fingerprint, workbook_fit_inputs

SETTINGS = {"model_type": "HCGL", "reg_lambda": 1e-5, "span": 52, "n_clusters": 4,
            "cv_lambdas": "auto", "cv_n_lambdas": 6, "cv_splits": 3,
            "annualization_factor": 52}


def _book(settings=SETTINGS, portfolio=(("covariance", "factor"), ("max_weights", 0.2))):
    io = demo_memory_book(settings=dict(settings))
    io.put("FL_PORTFOLIO_SETTINGS", "Portfolio", 1, 1, [["key", "value"], *map(list, portfolio)],
           reserve=(10, 2))
    io.defined["FL_WEIGHTS"] = io.defined["FL_R2"].__class__("Portfolio", 1, 8, 25, 9)
    io.defined["FL_PORTFOLIO_STATS"] = io.defined["FL_R2"].__class__("Portfolio", 1, 11, 20, 12)
    return io


def _status(io) -> tuple[list, dict]:
    table = io.read(io.names()["FL_STATUS"])
    return table[0], {r[0]: r[1:] for r in table[1:] if r[0] is not None}


def _weights(io) -> np.ndarray:
    return np.array([r[1] for r in io.read(io.names()["FL_WEIGHTS"])[1:]], dtype=float)


def _cv_model():
    d = load_demo_panel()
    base = LassoModel(model_type="HCGL", reg_lambda=1e-5, span=52, n_clusters=4,
                      factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior)
    cv = LassoModelCV(lambdas="auto", n_lambdas=6, n_splits=3, base_model=base).fit(d.x, d.y)
    return cv, d


def _maxdiv_weights(model, d) -> np.ndarray:
    cov = assemble_factor_covariance(model, d.x)
    return MaximumDiversification(max_weights=0.2, covariance=cov).fit(None).weights_.to_numpy()


def test_cv_then_portfolio_in_one_run_uses_the_cross_validated_model():
    io = _book()
    run_jobs(io, ["refit_cv", "optimise_portfolio"])
    header, status = _status(io)
    assert header == ["item", "refit_cv", "optimise_portfolio"]
    cv, d = _cv_model()
    assert status["reg_lambda"] == [pytest.approx(cv.best_lambda_, rel=1e-12)] * 2
    assert status["reg_lambda"][0] != 1e-5  # not FL_SETTINGS' lambda
    assert status["inputs"][0] == status["inputs"][1]
    assert "factor model of this run's refit_cv" in status["message"][1]
    np.testing.assert_allclose(_weights(io), _maxdiv_weights(cv.best_model_, d), atol=1e-9)


def test_the_portfolio_button_after_cross_validate_uses_the_model_the_sheet_shows():
    chained, fresh = _book(), _book()
    refit_cv(chained)
    optimise_portfolio(chained)
    _, status = _status(chained)
    cv, d = _cv_model()
    assert status["reg_lambda"] == [pytest.approx(cv.best_lambda_, rel=1e-12)]
    assert "factor model of the last refit_cv" in status["message"][0]
    np.testing.assert_allclose(_weights(chained), _maxdiv_weights(cv.best_model_, d), atol=1e-9)
    # pressed again, the portfolio's own column carries the model on
    optimise_portfolio(chained)
    _, again = _status(chained)
    assert again["reg_lambda"] == status["reg_lambda"]
    assert "factor model of the last optimise_portfolio" in again["message"][0]
    # without a fit shown in FL_STATUS: FL_SETTINGS' lambda, and the status says so
    optimise_portfolio(fresh)
    _, alone = _status(fresh)
    assert alone["reg_lambda"] == [1e-5]
    assert "FL_STATUS shows no fit of these inputs" in alone["message"][0]


def test_changed_inputs_after_a_fit_do_not_reuse_its_lambda():
    io = _book()
    refit_cv(io)
    io.cells[("Returns", 5, 3)] = 0.0123  # other data: the loadings shown are out of date
    optimise_portfolio(io)
    _, status = _status(io)
    assert status["reg_lambda"] == [1e-5]
    assert "FL_STATUS shows no fit of these inputs" in status["message"][0]


def test_the_fingerprint_covers_every_model_input():
    io = _book()
    from xl_factorlasso.workbook._compute import FIT_INPUTS, read_blocks

    def fingerprint(book):
        return fit_fingerprint(workbook_fit_inputs(read_blocks(book, FIT_INPUTS, ())))

    base = fingerprint(io)
    assert fingerprint(_book()) == base  # deterministic
    for key, value in [(("Returns", 5, 3), 0.0123), (("Factors", 9, 2), -0.01),
                       (("Signs", 4, 3), 0.0), (("Prior", 2, 3), 0.3),
                       (("Settings", 3, 2), 2e-5)]:
        other = _book()
        other.cells[key] = value
        assert fingerprint(other) != base, key


def test_portfolio_statistics_are_annualised_with_the_factor_stated():
    io = _book(portfolio=(("covariance", "sample"), ("max_weights", 0.2)))
    optimise_portfolio(io)
    stats = {r[0]: r[1] for r in io.read(io.names()["FL_PORTFOLIO_STATS"])[1:]}
    assert stats["annualization_factor"] == 52  # FL_SETTINGS' factor: one convention
    d = load_demo_panel()
    opt = MaximumDiversification(max_weights=0.2).fit(d.y)
    assert stats["volatility"] == pytest.approx(float(opt.problem_values_["risk"]) * math.sqrt(52),
                                                rel=1e-9)
    own = _book(portfolio=(("covariance", "sample"), ("max_weights", 0.2),
                           ("annualization_factor", 12)))
    optimise_portfolio(own)
    stats = {r[0]: r[1] for r in own.read(own.names()["FL_PORTFOLIO_STATS"])[1:]}
    assert stats["annualization_factor"] == 12  # the portfolio's own setting wins


def test_fl_coef_says_which_model_and_lambda_produced_it():
    io = _book()
    refit(io)
    assert io.read(io.names()["FL_COEF"])[0][0] == "asset (HCGL, lambda 1e-05)"
