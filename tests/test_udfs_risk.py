"""FLASSO_RISK and FLASSO_RISK_ASSETS called directly, with the 2-D lists Excel passes.

The attribution is checked against a direct numpy computation on the dense covariance
(``Sigma = B Sigma_f B' + diag(D)`` formed by hand from the fitted model; the core never forms
it), for the factor, sample and EWMA covariances (the EWMA one from pandas' ``ewm().cov()``);
its parts sum to the total; weights typed by the user (as ``asset | weight`` rows, a column or
a row of numbers) are attributed under the same covariance without optimising; the functions
share FLASSO_MAXDIV's optimisation; bad weights are reported on the argument and the cell.
(That the tables equal the job's FL_RISK and FL_RISK_ASSETS is tests/test_one_answer.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cells
from xl_factorlasso import udfs
from xl_factorlasso.core import LassoModel, assemble_factor_covariance
from xl_factorlasso.core.optimization import MaximumDiversification


def matrix_cells(df: pd.DataFrame) -> list:
    return [["asset", *df.columns],
            *[[a, *(None if isinstance(v, float) and np.isnan(v) else v for v in row)]
              for a, row in zip(df.index, df.to_numpy(dtype=object).tolist(), strict=True)]]


def is_error(out, argument: str, *fragments: str) -> None:
    assert isinstance(out, str) and out.startswith(f"#FLASSO! {argument}:"), out
    for fragment in fragments:
        assert fragment in out, f"{fragment!r} not in {out!r}"

SUM = 1e-12
FACTOR = [["covariance", "factor"], ["reg_lambda", 1e-4], ["max_weights", 0.2],
          ["annualization_factor", 52]]


@pytest.fixture
def fresh_cache():
    udfs.cache_clear()
    yield
    udfs.cache_clear()


def _weights(maxdiv: list) -> pd.Series:
    end = maxdiv.index([None, None])
    return pd.Series({a: w for a, w in maxdiv[1:end]})


def _rows(table: list) -> dict:
    return {r[0]: r[1:] for r in table[1:]}


def _numpy_attribution(B, sigma_f, D, w, af):
    """The Euler split worked on the dense covariance: total, per factor, per asset."""
    B, sigma_f, D, w = (np.asarray(a, dtype=float) for a in (B, sigma_f, D, w))
    sigma = (B @ sigma_f @ B.T + np.diag(D)) * af
    total = math.sqrt(w @ sigma @ w)
    x = B.T @ w
    factor = x * (af * sigma_f @ x) / total
    specific = af * np.sum(w**2 * D) / total
    asset = w * (sigma @ w) / total
    systematic = w * (af * B @ sigma_f @ x) / total
    return total, x, factor, specific, asset, systematic, af * w**2 * D / total


def test_factor_covariance_equals_numpy(demo, R, F):
    risk = udfs.FLASSO_RISK(R, FACTOR, None, None, F)
    per_asset = udfs.FLASSO_RISK_ASSETS(R, FACTOR, None, None, F)
    w = _weights(udfs.FLASSO_MAXDIV(R, FACTOR, None, None, F))
    fc = assemble_factor_covariance(LassoModel(reg_lambda=1e-4).fit(demo.x, demo.y), demo.x)
    total, x, factor, specific, asset, systematic, spec = _numpy_attribution(
        fc.loadings, fc.factor_covariance, fc.residual_variance, w, 52.0)

    assert risk[0] == ["risk source", "exposure", "contribution", "share"]
    assert [r[0] for r in risk[1:]] == [*demo.x.columns, "specific", "total"]
    got = np.array([r[1:] for r in risk[1:-2]], dtype=float)
    np.testing.assert_allclose(got[:, 0], x, rtol=1e-12, atol=1e-15)  # B'w
    np.testing.assert_allclose(got[:, 1], factor, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(got[:, 2], factor / total, rtol=1e-10, atol=1e-15)
    assert risk[-2] == ["specific", None, pytest.approx(specific, rel=1e-12),
                        pytest.approx(specific / total, rel=1e-12)]
    assert risk[-1] == ["total", None, pytest.approx(total, rel=1e-12), 1.0]
    # Euler: the parts sum to the total, per factor and per asset
    assert math.fsum(r[2] for r in risk[1:-1]) == pytest.approx(risk[-1][2], rel=SUM, abs=0)
    assert math.fsum(r[3] for r in risk[1:-1]) == pytest.approx(1.0, rel=SUM, abs=0)

    assert per_asset[0] == ["asset", "weight", "contribution", "share", "systematic", "specific"]
    assert [r[0] for r in per_asset[1:]] == list(demo.y.columns)
    table = np.array([r[1:] for r in per_asset[1:]], dtype=float)
    np.testing.assert_array_equal(table[:, 0], w.to_numpy())  # the optimiser's weights
    np.testing.assert_allclose(table[:, 1], asset, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(table[:, 2], asset / total, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(table[:, 3], systematic, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(table[:, 4], spec, rtol=1e-10, atol=1e-15)
    assert math.fsum(table[:, 1]) == pytest.approx(risk[-1][2], rel=SUM, abs=0)
    np.testing.assert_allclose(table[:, 3] + table[:, 4], table[:, 1], rtol=SUM, atol=1e-16)
    # uninvested assets contribute nothing, and the total is the optimiser's volatility
    assert all(r[2] == 0.0 for r in per_asset[1:] if r[1] == 0.0)
    stats = udfs.FLASSO_MAXDIV(R, FACTOR, None, None, F)
    assert dict(stats[stats.index(["statistic", "value"]) + 1:])["volatility"] == (
        pytest.approx(total, rel=1e-8))


@pytest.mark.parametrize("kind", ["sample", "ewma"])
def test_sample_and_ewma_covariances_equal_numpy(demo, R, kind):
    settings = [["covariance", kind], ["max_weights", 0.2], ["annualization_factor", 12]]
    if kind == "ewma":
        settings.append(["span", 52])
        last = demo.y.index[-1]
        sigma = demo.y.ewm(span=52).cov().loc[last].to_numpy()  # pandas' own estimate
    else:
        sigma = np.cov(demo.y.to_numpy(), rowvar=False, ddof=1)
    risk = udfs.FLASSO_RISK(R, settings)
    per_asset = udfs.FLASSO_RISK_ASSETS(R, settings)
    w = _weights(udfs.FLASSO_MAXDIV(R, settings)).to_numpy()
    total = math.sqrt(12 * w @ sigma @ w)
    # without a factor model: the total only, per asset without the systematic split
    assert risk == [["risk source", "exposure", "contribution", "share"],
                    ["total", None, pytest.approx(total, rel=1e-12), 1.0]]
    assert per_asset[0] == ["asset", "weight", "contribution", "share"]
    table = np.array([r[1:] for r in per_asset[1:]], dtype=float)
    contribution = 12 * w * (sigma @ w) / total
    np.testing.assert_allclose(table[:, 1], contribution, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(table[:, 2], contribution / total, rtol=1e-10, atol=1e-15)
    assert math.fsum(table[:, 1]) == pytest.approx(total, rel=SUM, abs=0)


def test_weights_given_as_rows_a_column_or_a_row(demo, R, F, fresh_cache):
    """The optimiser's own weights, typed back in any accepted layout, give its attribution."""
    for settings, factors in ((FACTOR, F), ([["covariance", "ewma"], ["span", 26]], None),
                              ([["max_weights", 0.25]], None)):
        maxdiv = udfs.FLASSO_MAXDIV(R, settings, None, None, factors)
        w = _weights(maxdiv)
        held = [[a, v] for a, v in w.items() if v != 0.0]  # an asset not listed weighs 0
        layouts = {
            "FLASSO_MAXDIV's rows": maxdiv[: maxdiv.index([None, None])],
            "held assets only": held,
            "a column": [[v] for v in w],
            "a row": [list(w)],
        }
        for function in (udfs.FLASSO_RISK, udfs.FLASSO_RISK_ASSETS):
            optimised = function(R, settings, None, None, factors)
            for label, weights in layouts.items():
                given = function(R, settings, None, None, factors, *[None] * 5, weights)
                assert [r[0] for r in given] == [r[0] for r in optimised], label
                got = np.array([[np.nan if v is None else v for v in r[1:]] for r in given[1:]])
                expected = np.array([[np.nan if v is None else v for v in r[1:]]
                                     for r in optimised[1:]])
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-16,
                                           err_msg=label)


def test_any_portfolio_under_the_factor_model(demo, R, F):
    """A long-short portfolio nobody optimised: constraints, asset groups and previous weights
    play no part (there is no optimisation), the numbers are numpy's."""
    w = pd.Series(0.0, index=demo.y.columns)
    w[["SPX", "NDX", "BUND10"]] = [0.6, -0.2, 0.6]
    weights = [["asset", "weight"], *[[a, v] for a, v in w.items() if v]]
    infeasible = [["SPX >= 0.9"], ["NDX >= 0.9"]]  # would make FLASSO_MAXDIV fail
    risk = udfs.FLASSO_RISK(R, FACTOR, infeasible, None, F, *[None] * 5, weights)
    per_asset = udfs.FLASSO_RISK_ASSETS(R, FACTOR, infeasible, None, F, *[None] * 5, weights)
    assert udfs.FLASSO_RISK(R, FACTOR, infeasible, None, F).startswith("#FLASSO! constraints:")
    fc = assemble_factor_covariance(LassoModel(reg_lambda=1e-4).fit(demo.x, demo.y), demo.x)
    total, x, factor, specific, asset, _sys, _spec = _numpy_attribution(
        fc.loadings, fc.factor_covariance, fc.residual_variance, w, 52.0)
    np.testing.assert_allclose([r[1] for r in risk[1:-2]], x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose([r[2] for r in risk[1:-2]], factor, rtol=1e-10, atol=1e-15)
    assert risk[-1][2] == pytest.approx(total, rel=1e-12)
    assert _rows(per_asset)["NDX"][0] == -0.2
    np.testing.assert_allclose([r[2] for r in per_asset[1:]], asset, rtol=1e-10, atol=1e-15)


def test_annualisation_follows_the_job(demo, R, F):
    """The portfolio settings' annualization_factor, else the model settings' (FL_SETTINGS),
    else 1 -- the rule of the optimise_portfolio job (with_annualization)."""
    plain = [["covariance", "factor"], ["reg_lambda", 1e-4]]
    weekly = udfs.FLASSO_RISK(R, plain, None, None, F)
    from_model = udfs.FLASSO_RISK(R, plain, None, None, F, None, None,
                                  [["annualization_factor", 52]])
    own = udfs.FLASSO_RISK(R, [*plain, ["annualization_factor", 12]], None, None, F, None, None,
                           [["annualization_factor", 52]])
    assert from_model[-1][2] == pytest.approx(weekly[-1][2] * math.sqrt(52), rel=1e-12)
    assert own[-1][2] == pytest.approx(weekly[-1][2] * math.sqrt(12), rel=1e-12)
    # exposures do not scale; shares do not either
    for table in (from_model, own):
        assert [r[1] for r in table[1:]] == [r[1] for r in weekly[1:]]
        np.testing.assert_allclose([r[3] for r in table[1:]], [r[3] for r in weekly[1:]],
                                   rtol=1e-12)


def test_risk_shares_the_optimisation_of_maxdiv(R, F, fresh_cache, monkeypatch):
    calls = []
    original = MaximumDiversification.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MaximumDiversification, "fit", counting)
    udfs.FLASSO_MAXDIV(R, FACTOR, None, None, F)
    udfs.FLASSO_RISK(R, FACTOR, None, None, F)
    udfs.FLASSO_RISK_ASSETS(R, FACTOR, None, None, F)
    assert len(calls) == 1
    weights = [[1 / 24] for _ in range(24)]
    udfs.FLASSO_RISK(R, FACTOR, None, None, F, *[None] * 5, weights)
    udfs.FLASSO_RISK_ASSETS(R, [["max_weights", 0.3]], *[None] * 8, weights)
    assert len(calls) == 1  # given weights: nothing is optimised


def test_errors_of_the_portfolio_are_those_of_maxdiv(R, F):
    infeasible = [["SPX >= 0.6"], ["NDX >= 0.6"]]
    expected = udfs.FLASSO_MAXDIV(R, None, infeasible)
    assert expected.startswith("#FLASSO! constraints: Infeasible")
    assert udfs.FLASSO_RISK(R, None, infeasible) == expected
    assert udfs.FLASSO_RISK_ASSETS(R, None, infeasible) == expected
    is_error(udfs.FLASSO_RISK(R, [["covariance", "factor"]]), "factors",
             "needs the factor returns")
    is_error(udfs.FLASSO_RISK(R, [["covariance", "factor"]], *[None] * 8, [[0.5], [0.5]]),
             "factors", "needs the factor returns")
    short = R[:11]  # 10 dates for 24 assets: no sample covariance, with weights too
    is_error(udfs.FLASSO_RISK(short, None, *[None] * 8, [[1 / 24] * 24]), "returns",
             "10 observations for 24 assets")


def bad_weights(R, F):
    """(label, weights, fragments of the message on the weights argument)."""
    head = ["asset", "weight"]
    return [
        ("unknown asset", [head, ["SPX", 0.5], ["MSFT", 0.5]],
         ["row 3, column 1: asset 'MSFT' is not in returns"]),
        ("text weight", [head, ["SPX", 0.5], ["NDX", "half"]],
         ["row 3, column 2: 'half' is not a weight"]),
        ("decimal comma", [["SPX", "0,5"]], ["row 1, column 2: '0,5' is not a weight: commas"]),
        ("error value", [head, ["SPX", "#N/A"]],
         ["row 2, column 2: #N/A is an Excel error value"]),
        ("blank weight", [head, ["SPX", 0.5], ["NDX", None]],
         ["row 3, column 2: the weight is blank; type 0"]),
        ("duplicate asset", [head, ["SPX", 0.5], ["SPX", 0.5]],
         ["row 3, column 1: duplicate asset name 'SPX' (also at row 2, column 1)"]),
        ("header only", [head], ["no asset | weight rows below the header"]),
        ("too few in a column", [[1 / 23]] * 23,
         ["23 weights for the 24 assets of returns", "(no weight for 'BCOM')"]),
        ("too many in a row", [[1 / 25] * 25],
         ["row 1, column 25: 25 weights for the 24 assets of returns"]),
        ("text in a column", [[0.5], ["x"], *[[0.0]] * 22], ["row 2, column 1: 'x' is not a"]),
        ("three columns", [head + ["x"], ["SPX", 1.0, 2.0]],
         ["expected asset | weight rows (two columns) or one row or column of numbers"]),
        ("zero portfolio", [[0.0]] * 24, ["the portfolio's variance is 0"]),
    ]


def test_bad_weights_name_the_argument_and_the_cell(R, F):
    cases = bad_weights(R, F)
    for label, weights, fragments in cases:
        for settings, factors in ((FACTOR, F), (None, None)):
            out = udfs.FLASSO_RISK(R, settings, None, None, factors, *[None] * 5, weights)
            try:
                is_error(out, "weights", *fragments)
            except AssertionError as err:
                raise AssertionError(f"{label}: {err}") from None
    # FLASSO_MAXDIV's whole spill (weights, a blank row, its statistics): the first stranger
    maxdiv = udfs.FLASSO_MAXDIV(R, [["max_weights", 0.2]])
    is_error(udfs.FLASSO_RISK(R, [["max_weights", 0.2]], *[None] * 8, maxdiv), "weights",
             "row 27, column 1: asset 'statistic' is not in returns")
    # one message, one cell
    out = udfs.FLASSO_RISK_ASSETS(R, None, *[None] * 8, [["asset", "weight"], ["XYZ", 1.0]])
    assert out == "#FLASSO! weights: row 2, column 1: asset 'XYZ' is not in returns"


def test_office_js_cells_and_help_texts(R, F):
    weights = [[{"type": "String", "basicValue": "SPX"}, 0.5], ["NDX", 0.5]]
    got = udfs.FLASSO_RISK_ASSETS(R, FACTOR, None, None, F, *[None] * 5, weights)
    assert _rows(got)["SPX"][0] == 0.5 and _rows(got)["UKX"][0] == 0.0
    for name in ("FLASSO_RISK", "FLASSO_RISK_ASSETS"):
        assert udfs.argument_doc(name, "weights") == udfs.DOCS["weights"]
        assert udfs.argument_doc(name, "settings") == udfs.DOCS["portfolio_settings"]


def test_signs_and_prior_reach_the_factor_model(demo, R, F):
    """covariance = factor attributes under the refit job's model (signs, prior, model
    settings), the model FLASSO_MAXDIV optimises with."""
    signs = matrix_cells(demo.signs)
    with_signs = udfs.FLASSO_RISK(R, FACTOR, None, None, F, signs)
    plain = udfs.FLASSO_RISK(R, FACTOR, None, None, F)
    assert with_signs != plain
    model = LassoModel(reg_lambda=1e-4, factors_beta_loading_signs=demo.signs).fit(demo.x,
                                                                                   demo.y)
    fc = assemble_factor_covariance(model, demo.x)
    w = _weights(udfs.FLASSO_MAXDIV(R, FACTOR, None, None, F, signs))
    total, x, *_ = _numpy_attribution(fc.loadings, fc.factor_covariance, fc.residual_variance,
                                      w, 52.0)
    np.testing.assert_allclose([r[1] for r in with_signs[1:-2]], x, rtol=1e-12, atol=1e-15)
    assert with_signs[-1][2] == pytest.approx(total, rel=1e-12)


def test_an_ewma_span_not_above_the_assets_is_named_on_its_cell(R):
    """The attribution estimates the optimiser's covariance: a span whose weights count as
    no more rows than the 24 assets is the same error on the span's cell (docs/maxdiv.md)."""
    settings = [["covariance", "ewma"], ["span", 24]]
    for function in (udfs.FLASSO_RISK, udfs.FLASSO_RISK_ASSETS, udfs.FLASSO_MAXDIV):
        out = function(R, settings)
        assert isinstance(out, str) and out.startswith(
            "#FLASSO! settings: row 2, column 2: span=24 gives the "), out
        assert out.endswith("give a span above 24 (with more than 24 dates of returns) or use "
                            "covariance = factor"), out
    assert isinstance(udfs.FLASSO_RISK(R, [["covariance", "ewma"], ["span", 26]]), list)


def test_weights_too_large_to_compute_with_are_named(R, F, recwarn):
    """1e300 per asset overflowed the variance: an inf in the table, or 'the portfolio's
    variance is nan', after numpy's overflow warnings."""
    n = len(R[0]) - 1
    for weights, cell in (([[1e300]] * n, "row 1, column 1"),
                          ([["asset", "weight"], ["SPX", 0.5], ["NDX", -1e200]],
                           "row 3, column 2")):
        for fn in (udfs.FLASSO_RISK, udfs.FLASSO_RISK_ASSETS):
            is_error(fn(R, None, *[None] * 8, weights), "weights",
                     f"{cell}: ", "is too large to compute with")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    # weights in currency units (large, but computable) are attributed
    assert isinstance(udfs.FLASSO_RISK(R, None, *[None] * 8, [[1e6]] * n), list)


def test_a_constant_return_column_is_named_on_returns(demo, R):
    """A column with the same return on every date has volatility 0: the sample estimate's
    rounding noise let the optimiser give it an arbitrary weight (0.22 in a fuzzed case), an
    exact 0 was refused as 'settings: the ... covariance has a non-positive variance'."""
    flat = [row[:3] + [0.01] + row[4:] if i else row for i, row in enumerate(R)]
    asset, n = R[0][3], len(R[0]) - 1
    for settings in (None, [["covariance", "ewma"], ["span", 60]]):
        for out in (udfs.FLASSO_MAXDIV(flat, settings), udfs.FLASSO_RISK(flat, settings),
                    udfs.FLASSO_RISK(flat, settings, *[None] * 8, [[1 / n]] * n)):
            is_error(out, "returns", "the range has the same return (0.01) on each of its "
                     f"{len(R) - 1} rows for asset {asset!r}", "drop the column")
    # the factor covariance's residual variance has its own message (no residual variance)
    assert "same return" not in udfs.FLASSO_MAXDIV(flat, [["covariance", "factor"]], None,
                                                   None, cells(demo.x))


def test_returns_too_small_to_square_are_named_on_their_cell(R):
    """Returns of 1e-160: their variances (~1e-320) are subnormal, most of their digits lost;
    the optimiser gave weights 0.04 away from the same returns unscaled, with only NumPy's
    divide warnings (and 1e-200 was "no response varies" to the fit). Refused on the first
    cell, as a return that is not plausible; 1e-140 keeps the answer."""
    def scaled(s):
        return [row if i == 0 else [row[0], *(v * s for v in row[1:])]
                for i, row in enumerate(R)]

    def weights(out):
        return np.array([r[1] for r in out if r and r[0] in R[0][1:]], dtype=float)

    base, small = weights(udfs.FLASSO_MAXDIV(R)), weights(udfs.FLASSO_MAXDIV(scaled(1e-140)))
    assert len(base) == len(R[0]) - 1 and base.sum() == pytest.approx(1.0)
    assert np.abs(small - base).max() < 1e-9  # the weights do not depend on the returns' unit
    first = f"{R[1][1] * 1e-160:g} is too small to compute with"
    for out in (udfs.FLASSO_MAXDIV(scaled(1e-160)), udfs.FLASSO_FIT(scaled(1e-160), R)):
        is_error(out, "returns", "row 2, column 2: " + first, "at least 1e-150 in magnitude")
