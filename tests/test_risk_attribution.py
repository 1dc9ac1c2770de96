"""Risk attribution: a closed form worked by hand, a direct numpy computation on the dense
covariance, skfolio's predicted_factor_attribution (live), the sums, invariances, a property of
the maximum-diversification portfolio, and every input error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import (
    FactorCovariance,
    RiskAttribution,
    covariance_risk_attribution,
    risk_attribution,
)

SUM = 1e-12


def two_assets():
    """B = [1, 0.5]', Sigma_f = 0.04, D = (0.01, 0.02), w = (0.6, 0.4)."""
    return FactorCovariance(
        loadings=pd.DataFrame([[1.0], [0.5]], index=["a", "b"], columns=["f"]),
        factor_covariance=pd.DataFrame([[0.04]], index=["f"], columns=["f"]),
        residual_variance=pd.Series([0.01, 0.02], index=["a", "b"]),
    )


def random_model(n=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    assets = [f"A{i}" for i in range(n)]
    factors = [f"F{j}" for j in range(k)]
    root = rng.normal(0, 0.02, (k, k))
    return FactorCovariance(
        loadings=pd.DataFrame(rng.normal(0.3, 0.8, (n, k)), index=assets, columns=factors),
        factor_covariance=pd.DataFrame(root @ root.T + 1e-4 * np.eye(k), index=factors,
                                       columns=factors),
        residual_variance=pd.Series(rng.uniform(1e-4, 9e-4, n), index=assets),
    ), pd.Series(rng.normal(1.0 / n, 0.1, n), index=assets)


# ------------------------------------------------------------------------ closed form


def test_two_assets_one_factor_by_hand():
    # x = 0.6 + 0.2 = 0.8; systematic 0.64 * 0.04 = 0.0256; specific 0.36*0.01 + 0.16*0.02 =
    # 0.0068; total 0.0324, sigma_p = 0.18. Sigma = [[0.05, 0.02], [0.02, 0.03]], Sigma w =
    # (0.038, 0.024): asset parts 0.0228/0.18 and 0.0096/0.18.
    r = risk_attribution(two_assets(), [0.6, 0.4])
    assert isinstance(r, RiskAttribution)
    assert r.exposures["f"] == pytest.approx(0.8, abs=1e-15)
    assert r.systematic_variance == pytest.approx(0.0256, abs=1e-15)
    assert r.specific_variance == pytest.approx(0.0068, abs=1e-15)
    assert r.total_variance == pytest.approx(0.0324, abs=1e-15)
    assert r.total_volatility == pytest.approx(0.18, abs=1e-15)
    assert r.systematic_volatility == pytest.approx(0.16, abs=1e-15)
    assert r.specific_volatility == pytest.approx(np.sqrt(0.0068), abs=1e-15)
    f = r.factors.loc["f"]
    assert f["contribution"] == pytest.approx(0.0256 / 0.18, abs=1e-15)
    assert f["share"] == pytest.approx(0.0256 / 0.0324, abs=1e-15)
    assert f["volatility"] == pytest.approx(0.2, abs=1e-15)
    assert f["correlation"] == pytest.approx(0.04 * 0.8 / (0.2 * 0.18), abs=1e-15)
    a = r.assets
    np.testing.assert_allclose(a["contribution"], [0.0228 / 0.18, 0.0096 / 0.18], atol=1e-15)
    np.testing.assert_allclose(a["systematic"], [0.0192 / 0.18, 0.0064 / 0.18], atol=1e-15)
    np.testing.assert_allclose(a["specific"], [0.0036 / 0.18, 0.0032 / 0.18], atol=1e-15)
    np.testing.assert_allclose(a["volatility"], [np.sqrt(0.05), np.sqrt(0.03)], atol=1e-15)
    summary = r.summary()
    assert list(summary.index) == ["systematic", "specific", "total"]
    assert list(summary.columns) == ["variance", "volatility", "contribution", "share"]
    np.testing.assert_allclose(summary["contribution"], [0.0256 / 0.18, 0.0068 / 0.18, 0.18],
                               atol=1e-15)
    np.testing.assert_allclose(summary["share"], [0.0256 / 0.0324, 0.0068 / 0.0324, 1.0],
                               atol=1e-15)


def test_annualization_scales_variance_and_volatility():
    r = risk_attribution(two_assets(), [0.6, 0.4], annualization_factor=4.0)
    assert r.total_variance == pytest.approx(0.1296, abs=1e-15)
    assert r.total_volatility == pytest.approx(0.36, abs=1e-15)
    assert r.factors.loc["f", "contribution"] == pytest.approx(2 * 0.0256 / 0.18, abs=1e-15)
    assert r.factors.loc["f", "share"] == pytest.approx(0.0256 / 0.0324, abs=1e-15)
    assert r.exposures["f"] == pytest.approx(0.8, abs=1e-15)
    assert r.annualization_factor == 4.0


# --------------------------------------------------------------- direct numpy and skfolio


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_direct_numpy_on_the_dense_covariance(seed):
    cov, w = random_model(seed=seed)
    r = risk_attribution(cov, w, annualization_factor=52)
    B = cov.loadings.to_numpy()
    F = 52 * cov.factor_covariance.to_numpy()
    D = np.diag(52 * cov.residual_variance.to_numpy())
    wv = w.to_numpy()
    sigma = B @ F @ B.T + D
    vol = np.sqrt(wv @ sigma @ wv)
    x = B.T @ wv
    np.testing.assert_allclose(r.exposures, x, rtol=1e-13)
    assert r.total_volatility == pytest.approx(vol, rel=1e-13)
    assert r.systematic_variance == pytest.approx(x @ F @ x, rel=1e-13)
    assert r.specific_variance == pytest.approx(wv @ D @ wv, rel=1e-13)
    np.testing.assert_allclose(r.factors["contribution"], x * (F @ x) / vol, rtol=1e-12,
                               atol=1e-16)
    np.testing.assert_allclose(r.assets["contribution"], wv * (sigma @ wv) / vol, rtol=1e-12,
                               atol=1e-16)
    np.testing.assert_allclose(r.assets["systematic"], wv * (B @ F @ B.T @ wv) / vol,
                               rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(r.assets["specific"], wv * (D @ wv) / vol, rtol=1e-12)
    np.testing.assert_allclose(r.assets["volatility"], np.sqrt(np.diag(sigma)), rtol=1e-13)
    np.testing.assert_allclose(r.assets["share"], wv * (sigma @ wv) / vol**2, rtol=1e-12,
                               atol=1e-16)
    plain = covariance_risk_attribution(pd.DataFrame(sigma / 52, index=w.index,
                                                     columns=w.index), w,
                                        annualization_factor=52)
    np.testing.assert_allclose(plain.assets["contribution"], r.assets["contribution"],
                               rtol=1e-11, atol=1e-16)
    assert plain.total_volatility == pytest.approx(vol, rel=1e-13)


@pytest.mark.parametrize("seed", [0, 3])
def test_sums_equal_totals(seed):
    cov, w = random_model(n=40, k=5, seed=seed)
    r = risk_attribution(cov, w)
    total = r.total_volatility
    assert abs(r.factors["contribution"].sum() + r.assets["specific"].sum() - total) <= SUM * total
    assert abs(r.assets["contribution"].sum() - total) <= SUM * total
    assert abs(r.factors["contribution"].sum() - r.systematic_variance / total) <= SUM * total
    assert abs(r.assets["systematic"].sum() - r.factors["contribution"].sum()) <= SUM * total
    np.testing.assert_allclose(r.assets["systematic"] + r.assets["specific"],
                               r.assets["contribution"], rtol=0, atol=SUM * total)
    assert abs(r.assets["share"].sum() - 1) <= SUM
    assert abs(r.factors["share"].sum() + r.summary().loc["specific", "share"] - 1) <= SUM
    assert abs(r.summary()["contribution"].iloc[:2].sum() - total) <= SUM * total


def test_equals_skfolio_predicted_factor_attribution():
    attribution = pytest.importorskip("skfolio.attribution")
    cov, w = random_model(n=15, k=4, seed=5)
    ours = risk_attribution(cov, w, annualization_factor=252)
    sk = attribution.predicted_factor_attribution(
        weights=w.to_numpy(), loading_matrix=cov.loadings.to_numpy(),
        factor_covariance=cov.factor_covariance.to_numpy(),
        idio_covariance=cov.residual_variance.to_numpy(), asset_names=list(cov.assets),
        factor_names=list(cov.factors), annualization_factor=252)
    assert ours.total_volatility == pytest.approx(sk.total.vol, rel=1e-13)
    assert ours.systematic_volatility == pytest.approx(sk.systematic.vol, rel=1e-13)
    assert ours.specific_volatility == pytest.approx(sk.idio.vol, rel=1e-13)
    summary = ours.summary()
    assert summary.loc["systematic", "contribution"] == pytest.approx(sk.systematic.vol_contrib,
                                                                      rel=1e-13)
    assert summary.loc["specific", "share"] == pytest.approx(sk.idio.pct_total_variance,
                                                             rel=1e-13)
    np.testing.assert_allclose(ours.exposures, sk.factors.exposure, rtol=1e-13)
    np.testing.assert_allclose(ours.factors["contribution"], sk.factors.vol_contrib, rtol=1e-12)
    np.testing.assert_allclose(ours.factors["share"], sk.factors.pct_total_variance, rtol=1e-12)
    np.testing.assert_allclose(ours.factors["correlation"], sk.factors.corr_with_ptf, rtol=1e-12)
    np.testing.assert_allclose(ours.assets["contribution"], sk.assets.vol_contrib, rtol=1e-12)
    np.testing.assert_allclose(ours.assets["systematic"], sk.assets.systematic_vol_contrib,
                               rtol=1e-12)
    np.testing.assert_allclose(ours.assets["specific"], sk.assets.idio_vol_contrib, rtol=1e-12)


# ------------------------------------------------------------------------ invariances


def test_zero_weight_and_zero_exposure_contribute_nothing():
    cov, w = random_model(seed=4)
    w = w.copy()
    w.iloc[[2, 7]] = 0.0
    r = risk_attribution(cov, w)
    assert (r.assets.iloc[[2, 7]][["contribution", "systematic", "specific", "share"]]
            .to_numpy() == 0.0).all()
    # A factor nobody loads on gets no exposure, hence no contribution.
    loadings = cov.loadings.copy()
    loadings["F1"] = 0.0
    r = risk_attribution(FactorCovariance(loadings, cov.factor_covariance,
                                          cov.residual_variance), w)
    assert r.exposures["F1"] == 0.0 and r.factors.loc["F1", "contribution"] == 0.0


def test_scaling_weights_scales_contributions_and_keeps_shares():
    cov, w = random_model(seed=6)
    r, r3 = risk_attribution(cov, w), risk_attribution(cov, 3 * w)
    assert r3.total_volatility == pytest.approx(3 * r.total_volatility, rel=1e-14)
    np.testing.assert_allclose(r3.assets["contribution"], 3 * r.assets["contribution"],
                               rtol=1e-13)
    np.testing.assert_allclose(r3.factors["share"], r.factors["share"], rtol=1e-12)


def test_series_weights_are_aligned_by_label():
    cov, w = random_model(seed=7)
    shuffled = w.iloc[::-1]
    by_label = risk_attribution(cov, shuffled)
    by_position = risk_attribution(cov, w.to_numpy())
    pd.testing.assert_frame_equal(by_label.assets, by_position.assets)
    assert list(by_label.assets.index) == list(cov.assets)


def test_maximum_diversification_portfolio_shares_are_its_weighted_volatilities():
    # At the long-only maximum-diversification optimum Sigma w = (sigma_p^2 / sigma'w) sigma on
    # the held assets, so each asset's share of risk is w_i sigma_i / sigma'w.
    from xl_factorlasso import MaximumDiversification

    cov, _ = random_model(n=30, k=3, seed=8)
    w = MaximumDiversification(covariance=cov).fit().weights_
    r = risk_attribution(cov, w)
    sigma = r.assets["volatility"].to_numpy()
    expected = w.to_numpy() * sigma / (sigma @ w.to_numpy())
    # to the solver's accuracy on the weights (a flat optimum: about 1e-6)
    np.testing.assert_allclose(r.assets["share"], expected, atol=5e-6)
    assert np.count_nonzero(w.to_numpy() == 0.0) > 0
    assert (r.assets["contribution"][w == 0.0] == 0.0).all()


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "weights, message",
    [
        (pd.Series([0.5, 0.5], index=["a", "z"]), "weights: asset 'z' is not in the covariance"),
        (pd.Series([1.0], index=["a"]), "weights: no weight for asset 'b'"),
        (pd.Series([0.5, 0.3, 0.2], index=["a", "b", "a"]), "weights: asset 'a' appears twice"),
        ([0.5, np.nan], "weights: asset 'b' has a non-finite weight nan"),
        ([0.2, 0.3, 0.5], r"weights must have one value per asset \(2\), got shape \(3,\)"),
        ([0.0, 0.0], "the portfolio's variance is 0"),
        (["x", "y"], "weights must be numbers"),
    ],
)
def test_weight_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        risk_attribution(two_assets(), weights)


def test_model_and_covariance_errors():
    cov = two_assets()
    with pytest.raises(ValueError, match="annualization_factor must be a number > 0, got 0"):
        risk_attribution(cov, [0.5, 0.5], annualization_factor=0)
    with pytest.raises(ValueError, match="cov must be a FactorCovariance, got ndarray"):
        risk_attribution(np.eye(2), [0.5, 0.5])
    bad = FactorCovariance(cov.loadings, cov.factor_covariance,
                           pd.Series([0.01, -0.02], index=["a", "b"]))
    with pytest.raises(ValueError, match="negative .*-0.02.* for asset 'b'"):
        risk_attribution(bad, [0.5, 0.5])
    nan = FactorCovariance(cov.loadings.replace(0.5, np.nan), cov.factor_covariance,
                           cov.residual_variance)
    with pytest.raises(ValueError, match="cov.loadings has a non-finite value at 'b', 'f'"):
        risk_attribution(nan, [0.5, 0.5])
    with pytest.raises(ValueError, match="use risk_attribution for the factor split"):
        covariance_risk_attribution(cov, [0.5, 0.5])
    with pytest.raises(ValueError, match="covariance is not symmetric"):
        covariance_risk_attribution([[1.0, 0.2], [0.1, 1.0]], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"square matrix, got shape \(2, 3\)"):
        covariance_risk_attribution(np.ones((2, 3)), [0.5, 0.5])
    with pytest.raises(ValueError, match="negative variance -1 for asset 1"):
        covariance_risk_attribution([[1.0, 0.0], [0.0, -1.0]], [0.5, 0.5])
    frame = pd.DataFrame(np.eye(2), index=["a", "b"], columns=["b", "a"])
    with pytest.raises(ValueError, match="its columns must be the same assets"):
        covariance_risk_attribution(frame, [0.5, 0.5])


def test_plain_covariance_has_asset_parts_only():
    frame = pd.DataFrame([[0.05, 0.02], [0.02, 0.03]], index=["a", "b"], columns=["a", "b"])
    r = covariance_risk_attribution(frame, pd.Series({"b": 0.4, "a": 0.6}))
    assert r.factors is None and r.exposures is None and r.systematic_variance is None
    assert list(r.assets.columns) == ["weight", "volatility", "contribution", "share"]
    np.testing.assert_allclose(r.assets["contribution"], [0.0228 / 0.18, 0.0096 / 0.18],
                               atol=1e-15)
    assert list(r.summary().index) == ["total"]
    assert r.summary().loc["total", "volatility"] == pytest.approx(0.18, abs=1e-15)
