"""Synthetic panels: the benchmark design (`make_factor_panel`) and the shipped demo data."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.datasets import FactorPanel, _synthetic, load_demo_panel, make_factor_panel


@pytest.fixture(scope="module")
def panel() -> FactorPanel:
    return make_factor_panel(2000, 12, 200, seed=3)


def test_shapes_labels_and_index():
    p = make_factor_panel(300, 7, 40, seed=1, freq="W-FRI", start="2021-01-01")
    assert p.shape == (300, 7, 40)
    assert p.x.shape == (300, 7) and p.y.shape == (300, 40)
    assert p.coef.shape == (40, 7) and p.signs.shape == (40, 7) and p.prior.shape == (40, 7)
    assert list(p.x.columns) == [f"f{j}" for j in range(7)]
    assert list(p.y.columns) == [f"y{i}" for i in range(40)]
    assert p.coef.index.equals(p.y.columns) and p.coef.columns.equals(p.x.columns)
    assert p.intercept.index.equals(p.y.columns) and p.clusters.index.equals(p.y.columns)
    assert isinstance(p.x.index, pd.DatetimeIndex) and p.x.index.equals(p.y.index)
    assert p.x.index[0] == pd.Timestamp("2021-01-01")
    assert (p.x.index.day_of_week == 4).all()
    assert not p.x.isna().any().any() and not p.y.isna().any().any()


def test_deterministic_for_a_seed():
    a, b = make_factor_panel(200, 5, 20, seed=7), make_factor_panel(200, 5, 20, seed=7)
    for field in ("x", "y", "coef", "signs", "prior"):
        pd.testing.assert_frame_equal(getattr(a, field), getattr(b, field))
    pd.testing.assert_series_equal(a.clusters, b.clusters)
    c = make_factor_panel(200, 5, 20, seed=8)
    assert not np.allclose(a.y.to_numpy(), c.y.to_numpy())


def test_panel_is_frozen():
    p = make_factor_panel(50, 3, 5)
    with pytest.raises(AttributeError):
        p.x = p.x  # type: ignore[misc]


def test_cluster_structure(panel):
    n, m = panel.coef.shape
    k = max(2, n // 10)
    sizes = panel.clusters.value_counts()
    assert sorted(sizes.index) == list(range(1, k + 1))
    assert sizes.max() - sizes.min() <= 1  # balanced
    for _, rows in panel.coef.groupby(panel.clusters):
        active = (rows != 0).any(axis=0)
        assert active.sum() <= max(1, m // 3)
        # Sign-coherent within a cluster: one sign per factor.
        for f in active.index[active]:
            nz = rows[f][rows[f] != 0]
            assert (np.sign(nz) == np.sign(nz.iloc[0])).all()
    assert (panel.support.sum(axis=1) >= 1).all()  # no pure-noise asset
    mags = panel.coef.abs().to_numpy()[panel.support.to_numpy()]
    assert mags.min() >= 0.3 * 0.6 - 1e-12 and mags.max() <= 1.2 * 1.4 + 1e-12


def test_sparsity_near_design(panel):
    n, m = panel.coef.shape
    expected = (max(1, m // 3) / m) * 0.8  # active template share x keep probability
    assert panel.support.to_numpy().mean() == pytest.approx(expected, abs=0.03)


def test_factor_covariance_is_ar1(panel):
    m = panel.x.shape[1]
    j = np.arange(m)
    sigma = 0.3 ** np.abs(j[:, None] - j[None, :])
    np.testing.assert_allclose(panel.factor_cov.to_numpy(), sigma)
    np.testing.assert_allclose(panel.x.cov().to_numpy(), sigma, atol=0.08)


def test_sign_matrix_consistent_with_truth(panel):
    s, b = panel.signs.to_numpy(), panel.coef.to_numpy()
    support = b != 0
    np.testing.assert_array_equal(s[support], np.sign(b[support]))
    assert not np.isnan(s[support]).any()
    assert (s[~support & ~np.isnan(s)] == 0).all()
    assert (s == 0).sum() == (~support).sum() // 2  # a random half of the true zeros
    assert set(np.unique(s[~np.isnan(s)])) <= {-1.0, 0.0, 1.0}


def test_prior_is_noisy_truth_on_support(panel):
    p, b = panel.prior.to_numpy(), panel.coef.to_numpy()
    support = b != 0
    assert (p[~support] == 0).all()
    # Never contradicts a hard sign (the model would reject it).
    s = panel.signs.to_numpy()
    assert not ((s == 1) & (p < 0)).any() and not ((s == -1) & (p > 0)).any()
    kept = support & (p != 0)
    assert kept.sum() >= 0.9 * support.sum()
    assert np.std(p[kept] - b[kept]) == pytest.approx(0.2, abs=0.03)


@pytest.mark.parametrize("r2", [0.3, 0.5, 0.8])
def test_noise_calibrated_to_target_r2(r2):
    p = make_factor_panel(3000, 6, 30, seed=11, noise_r2=r2)
    np.testing.assert_allclose(p.population_r2.to_numpy(), r2)
    # Sample R² of the true signal: residual variance over total variance.
    signal = p.x.to_numpy() @ p.coef.to_numpy().T
    resid = p.y.to_numpy() - signal - p.intercept.to_numpy()
    sample_r2 = 1.0 - resid.var(axis=0) / p.y.to_numpy().var(axis=0)
    assert sample_r2.mean() == pytest.approx(r2, abs=0.02)
    assert np.abs(sample_r2 - r2).max() < 0.1
    # Noise sd equals signal sd when r2 = 0.5.
    if r2 == 0.5:
        np.testing.assert_allclose(p.noise_var, p.signal_var)


def test_intercepts_are_small_and_recoverable(panel):
    assert panel.intercept.abs().max() < 0.1
    signal = panel.x.to_numpy() @ panel.coef.to_numpy().T
    est = (panel.y.to_numpy() - signal).mean(axis=0)
    se = np.sqrt(panel.noise_var.to_numpy() / panel.y.shape[0])
    assert np.mean(np.abs(est - panel.intercept.to_numpy()) < 3 * se) > 0.95


def test_ragged_histories_have_only_leading_nans():
    p = make_factor_panel(400, 5, 30, seed=2, nan_fraction=0.3)
    y = p.y
    ragged = y.columns[y.isna().any()]
    assert len(ragged) == round(0.3 * 30)
    for c in ragged:
        first = y[c].first_valid_index()
        assert y[c].loc[:first].iloc[:-1].isna().all()
        assert y[c].loc[first:].notna().all()  # no gaps after the start
        n_missing = y[c].isna().sum()
        assert 400 // 10 <= n_missing <= 400 // 2
    assert not p.x.isna().any().any()
    # The non-NaN values are those of the balanced panel for the same seed draws.
    full = make_factor_panel(400, 5, 30, seed=2)
    np.testing.assert_array_equal(
        y.notna().to_numpy() * full.y.to_numpy(), np.nan_to_num(y.to_numpy())
    )


def test_tiny_nan_fraction_still_gives_one_ragged_asset():
    p = make_factor_panel(100, 3, 10, seed=0, nan_fraction=0.01)
    assert p.y.isna().any().sum() == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "positive"),
        (dict(n_assets=-1), "positive"),
        (dict(noise_r2=1.0), "noise_r2"),
        (dict(noise_r2=0.0), "noise_r2"),
        (dict(nan_fraction=1.5), "nan_fraction"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_factor_panel(**kwargs)


def test_small_dimensions_follow_the_floors():
    p = make_factor_panel(60, 2, 3, seed=0)
    assert p.clusters.nunique() == 2  # K = max(2, N // 10)
    # max(1, M // 3) = 1 active factor per cluster
    for _, rows in p.coef.groupby(p.clusters):
        assert ((rows != 0).any(axis=0)).sum() == 1


# ---------------------------------------------------------------------------- demo panel


@pytest.fixture(scope="module")
def demo() -> FactorPanel:
    return load_demo_panel()


def test_demo_layout(demo):
    assert demo.shape == (260, 6, 24)
    assert list(demo.x.columns) == ["Equity", "Rates", "Credit", "USD", "Commodities", "Inflation"]
    assert {"SPX", "SX5E", "NKY", "UST10", "BUND10", "US_HY", "GOLD", "BRENT"} <= set(
        demo.y.columns
    )
    assert demo.clusters.value_counts().to_dict() == {
        "Equities": 6,
        "Govies": 6,
        "Credit": 6,
        "Commodities": 6,
    }
    assert (demo.x.index.day_of_week == 4).all()
    assert (np.diff(demo.x.index.to_numpy()) == np.timedelta64(7, "D")).all()
    assert "SYNTHETIC" in demo.description.upper()
    assert not demo.y.isna().any().any()


def test_demo_is_deterministic(demo):
    again = load_demo_panel()
    pd.testing.assert_frame_equal(demo.y, again.y)
    pd.testing.assert_frame_equal(demo.x, again.x)


def test_demo_loadings_sparse_and_sign_coherent(demo):
    active = demo.support.sum(axis=1)
    assert active.between(1, 3).all()
    assert demo.support.to_numpy().mean() < 0.45
    for _, rows in demo.coef.groupby(demo.clusters):
        for f in rows.columns:
            nz = rows[f][rows[f] != 0]
            assert len(np.unique(np.sign(nz))) <= 1


def test_demo_signs_and_prior_consistent(demo):
    s, b, p = demo.signs.to_numpy(), demo.coef.to_numpy(), demo.prior.to_numpy()
    support = b != 0
    np.testing.assert_array_equal(s[support], np.sign(b[support]))
    assert (s[~support & ~np.isnan(s)] == 0).all()
    assert (s == 0).sum() >= 24  # the known-zero blocks are pinned
    np.testing.assert_array_equal(np.sign(p), np.sign(b))


def test_demo_scale_is_weekly_returns(demo):
    ann_vol = demo.y.std() * np.sqrt(52)
    assert 0.12 < ann_vol["SPX"] < 0.22
    assert 0.03 < ann_vol["UST10"] < 0.09
    assert ann_vol["BRENT"] > ann_vol["SPX"]
    # OLS on the true factors recovers the loadings of liquid, high-R² assets.
    x1 = np.column_stack([np.ones(260), demo.x.to_numpy()])
    ols = np.linalg.lstsq(x1, demo.y.to_numpy(), rcond=None)[0][1:].T
    ols = pd.DataFrame(ols, index=demo.y.columns, columns=demo.x.columns)
    assert ols.loc["SPX", "Equity"] == pytest.approx(1.0, abs=0.1)
    assert ols.loc["UST10", "Rates"] == pytest.approx(1.0, abs=0.1)
    assert ols.loc["US_HY", "Credit"] == pytest.approx(1.3, abs=0.25)


def test_docstring_examples():
    result = doctest.testmod(_synthetic, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


def test_a_longer_demo_panel_for_walk_forward_backtests(demo):
    long = load_demo_panel(520)
    assert long.shape == (520, 6, 24)
    assert long.x.index[-1] == demo.x.index[-1] == pd.Timestamp("2023-12-22")
    assert long.x.index[0] == pd.Timestamp("2014-01-10")
    assert (np.diff(long.x.index.to_numpy()) == np.timedelta64(7, "D")).all()
    for part in ("coef", "signs", "prior", "clusters", "factor_cov", "noise_var"):
        a, b = getattr(long, part), getattr(demo, part)
        (pd.testing.assert_series_equal if isinstance(a, pd.Series)
         else pd.testing.assert_frame_equal)(a, b)
    assert "520 weekly returns" in long.description
    pd.testing.assert_frame_equal(long.y, load_demo_panel(520).y)  # deterministic
    assert not np.allclose(long.y.iloc[-260:].to_numpy(), demo.y.to_numpy())  # another draw
    # twice the data: OLS on the true factors lands closer to the true loadings
    def ols_error(panel):
        x1 = np.column_stack([np.ones(len(panel.x)), panel.x.to_numpy()])
        b = np.linalg.lstsq(x1, panel.y.to_numpy(), rcond=None)[0][1:].T
        return np.linalg.norm(b - panel.coef.to_numpy())
    assert ols_error(long) < ols_error(demo)


@pytest.mark.parametrize("n_weeks", [51, 0, 260.0, True, "520"])
def test_demo_panel_length_is_a_whole_number_of_at_least_a_year(n_weeks):
    with pytest.raises(ValueError, match=r"n_weeks must be a whole number >= 52, got "):
        load_demo_panel(n_weeks)
