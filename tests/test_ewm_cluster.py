"""EWMA primitives and hierarchical clustering against pandas, scipy and plain-Python recursions.

Every expected value here is computed independently in the test: pandas ``ewm(adjust=False)``,
scipy's ``linkage``/``fcluster`` called directly, or an explicit loop written from the reference
text (factorlasso.md sections 1.2 and 1.6). Nothing is copied from the package's output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from xl_factorlasso import LassoModel, LassoModelType
from xl_factorlasso.core.cluster import (
    cluster_from_correlation,
    ewm_correlation,
    ewm_covariance,
    ewm_lambda,
    ewm_mean,
    response_correlation,
)

SPANS = [1.0, 3.0, 12.5, 60.0]
METHODS = ["single", "complete", "average", "weighted", "centroid", "median", "ward"]


# ---------------- references
def lam_of(span):
    return 1.0 - 2.0 / (span + 1.0)


def ref_ewm_mean(a, span):
    """Causal EWMA mean, one scalar at a time.

    m_0 = z_0 if the first row is observed; a column that starts late starts from 0 at its
    first observation (m = (1-lam) z there); a missing value carries the last mean.
    """
    lam = lam_of(span)
    a = np.asarray(a, dtype=float)
    one_d = a.ndim == 1
    a2 = a[:, None] if one_d else a
    t_rows, n = a2.shape
    out = np.full((t_rows, n), np.nan)
    for j in range(n):
        m = None
        for t in range(t_rows):
            z = a2[t, j]
            if np.isfinite(z):
                if m is None:
                    m = z if t == 0 else (1.0 - lam) * z
                else:
                    m = lam * m + (1.0 - lam) * z
            out[t, j] = np.nan if m is None else m
    return out[:, 0] if one_d else out


def ref_ewm_cov(a, span):
    """S_t = lam S_{t-1} + (1-lam) a_ti a_tj per pair, from 0; a pair with a NaN is left as is."""
    lam = lam_of(span)
    a = np.asarray(a, dtype=float)
    t_rows, n = a.shape
    s = [[0.0] * n for _ in range(n)]
    for t in range(t_rows):
        for i in range(n):
            for j in range(n):
                ai, aj = a[t, i], a[t, j]
                if np.isfinite(ai) and np.isfinite(aj):
                    s[i][j] = lam * s[i][j] + (1.0 - lam) * ai * aj
    return np.array(s)


def ref_corr_from_cov(c):
    n = c.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                out[i, j] = 1.0
            elif c[i, i] > 1e-12 and c[j, j] > 1e-12:
                out[i, j] = c[i, j] / np.sqrt(c[i, i] * c[j, j])
    return out


def pandas_ewm_cov(a, span):
    """EWMA (adjust=False) mean of the outer products a_t a_t' with a zero row prepended."""
    a = np.asarray(a, dtype=float)
    t_rows, n = a.shape
    outer = np.einsum("ti,tj->tij", a, a).reshape(t_rows, n * n)
    frame = pd.DataFrame(np.vstack([np.zeros((1, n * n)), outer]))
    return (
        frame.ewm(alpha=1.0 - lam_of(span), adjust=False).mean().iloc[-1].to_numpy().reshape(n, n)
    )


def scipy_clusters(corr, cutoff_fraction=0.5, method="ward"):
    d = 1.0 - np.asarray(corr, dtype=float)
    condensed = squareform(d, checks=False)
    link = linkage(condensed, method)
    cutoff = cutoff_fraction * condensed.max()
    return fcluster(link, cutoff, "distance"), link, cutoff


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :]))


def clustered_returns(t_rows=200, n=9, k=3, seed=0, noise=0.7):
    """Responses in k blocks sharing a block driver, plus noise."""
    rng = np.random.default_rng(seed)
    drivers = rng.standard_normal((t_rows, k))
    member = np.arange(n) % k
    rng.shuffle(member)
    y = drivers[:, member] + noise * rng.standard_normal((t_rows, n))
    return pd.DataFrame(y, columns=[f"r{i}" for i in range(n)]), member


# ---------------- ewm_lambda
@pytest.mark.parametrize("span", SPANS)
def test_ewm_lambda_value(span):
    assert ewm_lambda(span) == pytest.approx(1.0 - 2.0 / (span + 1.0), abs=1e-15)


@pytest.mark.parametrize("span", [0.5, 0.0, -3.0, np.nan, np.inf])
def test_ewm_lambda_rejects_bad_span(span):
    with pytest.raises(ValueError, match="span"):
        ewm_lambda(span)


# ---------------- ewm_mean
@pytest.mark.parametrize("span", SPANS)
def test_ewm_mean_equals_pandas_complete_2d(span):
    rng = np.random.default_rng(1)
    idx = pd.date_range("2020-01-31", periods=80, freq="ME")
    df = pd.DataFrame(rng.standard_normal((80, 5)) + 3.0, index=idx, columns=list("abcde"))
    got = ewm_mean(df, span)
    expected = df.ewm(alpha=1.0 - lam_of(span), adjust=False).mean()
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_index_equal(got.index, df.index)
    pd.testing.assert_index_equal(got.columns, df.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-13, atol=1e-13)
    # ndarray in, ndarray out, same numbers
    arr = ewm_mean(df.to_numpy(), span)
    assert isinstance(arr, np.ndarray) and arr.shape == df.shape
    np.testing.assert_allclose(arr, expected.to_numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("span", SPANS)
def test_ewm_mean_equals_pandas_complete_1d(span):
    rng = np.random.default_rng(2)
    s = pd.Series(rng.standard_normal(50) - 1.0, index=pd.RangeIndex(10, 60), name="zz")
    got = ewm_mean(s, span)
    expected = s.ewm(alpha=1.0 - lam_of(span), adjust=False).mean()
    assert isinstance(got, pd.Series)
    assert got.name == "zz"
    pd.testing.assert_index_equal(got.index, s.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-13, atol=1e-13)
    arr = ewm_mean(s.to_numpy(), span)
    assert isinstance(arr, np.ndarray) and arr.shape == (50,)
    np.testing.assert_allclose(arr, expected.to_numpy(), rtol=1e-13, atol=1e-13)


def test_ewm_mean_late_start_and_gap_by_hand():
    # span 3 -> lambda 0.5. Column b starts late: m = (1 - 0.5) * 3 = 1.5 at its first value.
    a = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 5.0], [4.0, np.nan], [1.0, 2.0]])
    expected = np.array([[1.0, np.nan], [1.5, 1.5], [1.5, 3.25], [2.75, 3.25], [1.875, 2.625]])
    np.testing.assert_allclose(ewm_mean(a, 3.0), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("span", SPANS)
def test_ewm_mean_missing_values_match_recursion(span):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((60, 6)) + np.arange(6)
    a[:7, 1] = np.nan  # starts late
    a[:30, 2] = np.nan  # starts very late
    a[20:26, 3] = np.nan  # gap
    a[50:, 4] = np.nan  # trailing missing
    a[::5, 5] = np.nan  # scattered, including the first row
    a[:, 0][[10, 11]] = np.inf  # non-finite counts as missing
    got = ewm_mean(a, span)
    expected = ref_ewm_mean(np.where(np.isfinite(a), a, np.nan), span)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)
    # the rule spelled out: first observation of a late column is (1 - lambda) * z
    lam = lam_of(span)
    assert got[7, 1] == pytest.approx((1.0 - lam) * a[7, 1], rel=1e-14, abs=1e-15)
    assert np.all(np.isnan(got[:7, 1]))
    # a gap carries the last mean
    np.testing.assert_allclose(got[20:26, 3], np.full(6, got[19, 3]), rtol=0, atol=0)
    np.testing.assert_allclose(got[50:, 4], np.full(10, got[49, 4]), rtol=0, atol=0)


def test_ewm_mean_late_column_differs_from_pandas():
    # Guards the test above against being vacuous: pandas starts a late column at its first
    # value (m = z), the reference semantics start it at (1 - lambda) z.
    a = pd.DataFrame({"a": [np.nan, np.nan, 2.0, 4.0, 1.0]})
    got = ewm_mean(a, 3.0)
    assert got["a"].iloc[2] == pytest.approx(1.0)
    assert a.ewm(alpha=0.5, adjust=False).mean()["a"].iloc[2] == pytest.approx(2.0)


def test_ewm_mean_does_not_modify_input():
    a = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 5.0]])
    before = a.copy()
    ewm_mean(a, 4.0)
    np.testing.assert_array_equal(a, before)


# ---------------- ewm_covariance
@pytest.mark.parametrize("span", SPANS)
def test_ewm_covariance_complete_equals_pandas_and_recursion(span):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((70, 4)) @ rng.standard_normal((4, 4))
    got = ewm_covariance(a, span)
    np.testing.assert_allclose(got, pandas_ewm_cov(a, span), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, ref_ewm_cov(a, span), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, got.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize("span", SPANS)
def test_ewm_covariance_leading_nan_fast_path(span):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((70, 5)) @ rng.standard_normal((5, 5))
    a[:10, 1] = np.nan
    a[:35, 3] = np.nan
    a[:69, 4] = np.nan  # one observation only, the last row
    got = ewm_covariance(a, span)
    np.testing.assert_allclose(got, ref_ewm_cov(a, span), rtol=1e-12, atol=1e-14)
    # pandas: before a pair starts its value is 0, so zero-filling the products is exact
    np.testing.assert_allclose(got, pandas_ewm_cov(np.nan_to_num(a), span), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("span", SPANS)
def test_ewm_covariance_gaps_and_trailing_nan_loop_path(span):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((60, 5)) @ rng.standard_normal((5, 5))
    a[:8, 0] = np.nan  # leading
    a[20:27, 1] = np.nan  # gap
    a[52:, 2] = np.nan  # trailing
    a[::7, 3] = np.nan  # scattered
    got = ewm_covariance(a, span)
    expected = ref_ewm_cov(a, span)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    if span > 1:
        # no decay across a pair's missing steps, so this is NOT the zero-filled EWMA
        assert np.max(np.abs(got - pandas_ewm_cov(np.nan_to_num(a), span))) > 1e-3


def test_ewm_covariance_1d_input():
    rng = np.random.default_rng(7)
    a = rng.standard_normal(40)
    got = ewm_covariance(a, 10.0)
    assert got.shape == (1, 1)
    np.testing.assert_allclose(got, ref_ewm_cov(a[:, None], 10.0), rtol=1e-12)


# ---------------- ewm_correlation
@pytest.mark.parametrize("span", [3.0, 24.0])
@pytest.mark.parametrize("gaps", [False, True])
def test_ewm_correlation_is_normalised_covariance(span, gaps):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((80, 5)) @ rng.standard_normal((5, 5))
    if gaps:
        a[:12, 0] = np.nan
        a[30:36, 2] = np.nan
    cov = ref_ewm_cov(a, span)
    d = np.sqrt(np.diag(cov))
    got = ewm_correlation(a, span)
    np.testing.assert_allclose(got, cov / np.outer(d, d), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(got), 1.0, rtol=0, atol=1e-14)


def test_ewm_correlation_zero_variance_column():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((50, 4))
    a[:, 1] = np.nan  # never observed
    a[:, 3] = 0.0  # observed, no variance
    got = ewm_correlation(a, 12.0)
    expected = ref_corr_from_cov(ref_ewm_cov(a, 12.0))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    for col in (1, 3):
        assert got[col, col] == 1.0
        np.testing.assert_array_equal(np.delete(got[col], col), 0.0)
        np.testing.assert_array_equal(np.delete(got[:, col], col), 0.0)
    assert abs(got[0, 2]) > 1e-3  # the others are real correlations
    assert not np.isnan(got).any()


def test_ewm_correlation_all_zero_data_is_identity():
    got = ewm_correlation(np.zeros((20, 3)), 5.0)
    np.testing.assert_array_equal(got, np.identity(3))


# ---------------- response_correlation
def test_response_correlation_without_span_is_pandas_corr():
    y, _ = clustered_returns(120, 6, 2, seed=10)
    y.iloc[:30, 1] = np.nan
    y.iloc[50:60, 4] = np.nan
    got = response_correlation(y)
    pd.testing.assert_frame_equal(got, y.corr(), rtol=1e-14, atol=1e-15)


def test_response_correlation_with_span_is_ewm_recursion():
    y, _ = clustered_returns(120, 6, 2, seed=11)
    y.iloc[:30, 1] = np.nan
    y.iloc[50:60, 4] = np.nan
    got = response_correlation(y, span=20.0)
    assert list(got.index) == list(y.columns) and list(got.columns) == list(y.columns)
    expected = ref_corr_from_cov(ref_ewm_cov(y.to_numpy(), 20.0))
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12, atol=1e-14)


# ---------------- cluster_from_correlation
@pytest.mark.parametrize("cutoff_fraction", [0.2, 0.5, 0.8, 1.0])
def test_cluster_ward_cutoff_equals_scipy(cutoff_fraction):
    y, _ = clustered_returns(200, 10, 3, seed=12)
    corr = y.corr()
    res = cluster_from_correlation(corr, cutoff_fraction=cutoff_fraction)
    labels, link, cutoff = scipy_clusters(corr.to_numpy(), cutoff_fraction)
    np.testing.assert_array_equal(res.labels.to_numpy(), labels)
    pd.testing.assert_index_equal(res.labels.index, corr.index)
    np.testing.assert_allclose(res.linkage, link, rtol=1e-12, atol=1e-14)
    assert res.cutoff == pytest.approx(cutoff, rel=1e-14)
    assert res.labels.min() == 1  # 1-based


def test_cluster_recovers_planted_blocks():
    y, member = clustered_returns(400, 9, 3, seed=13, noise=0.5)
    res = cluster_from_correlation(y.corr(), n_clusters=3)
    assert same_partition(res.labels.to_numpy(), member)
    assert not same_partition(res.labels.to_numpy(), np.roll(member, 1))


@pytest.mark.parametrize("method", METHODS)
def test_cluster_other_linkage_methods_equal_scipy(method):
    y, _ = clustered_returns(150, 8, 3, seed=14)
    corr = y.corr()
    res = cluster_from_correlation(corr, cutoff_fraction=0.4, linkage_method=method)
    labels, link, cutoff = scipy_clusters(corr.to_numpy(), 0.4, method)
    np.testing.assert_allclose(res.linkage, link, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(res.labels.to_numpy(), labels)
    assert res.cutoff == pytest.approx(cutoff, rel=1e-14)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 8, 20])
def test_cluster_n_clusters_maxclust(k):
    y, _ = clustered_returns(150, 8, 3, seed=15)
    corr = y.corr()
    n = corr.shape[0]
    res = cluster_from_correlation(corr, n_clusters=k)
    link = linkage(squareform(1.0 - corr.to_numpy(), checks=False), "ward")
    expected = fcluster(link, min(k, n), "maxclust")
    np.testing.assert_array_equal(res.labels.to_numpy(), expected)
    n_found = len(np.unique(expected))
    assert n_found == min(k, n)
    heights = np.sort(link[:, 2])
    merges = n - n_found
    expected_cutoff = heights[merges - 1] if merges > 0 else 0.0
    assert res.cutoff == pytest.approx(expected_cutoff, rel=1e-14, abs=0)
    # the cut height reproduces the same partition (up to label names) by the distance criterion
    assert same_partition(fcluster(link, res.cutoff, "distance"), expected)


def test_cluster_n_clusters_ignores_cutoff_fraction():
    y, _ = clustered_returns(150, 8, 3, seed=16)
    a = cluster_from_correlation(y.corr(), n_clusters=3, cutoff_fraction=0.1)
    b = cluster_from_correlation(y.corr(), n_clusters=3, cutoff_fraction=0.9)
    pd.testing.assert_series_equal(a.labels, b.labels)
    assert a.cutoff == b.cutoff


def test_cluster_single_response():
    corr = pd.DataFrame([[1.0]], index=["only"], columns=["only"])
    res = cluster_from_correlation(corr)
    assert list(res.labels.index) == ["only"] and list(res.labels) == [1]
    assert res.linkage.shape == (0, 4)
    assert res.cutoff == 0.0


def test_cluster_nan_correlation_counts_as_zero():
    y, _ = clustered_returns(150, 6, 2, seed=17)
    corr = y.corr()
    corr.iloc[0, 3] = corr.iloc[3, 0] = np.nan
    res = cluster_from_correlation(corr, cutoff_fraction=0.6)
    labels, link, _ = scipy_clusters(np.nan_to_num(corr.to_numpy(), nan=0.0), 0.6)
    np.testing.assert_array_equal(res.labels.to_numpy(), labels)
    np.testing.assert_allclose(res.linkage, link, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs", [{"cutoff_fraction": 0.0}, {"cutoff_fraction": 1.5}, {"linkage_method": "nope"}]
)
def test_cluster_bad_arguments(kwargs):
    corr = pd.DataFrame(np.identity(3))
    with pytest.raises(ValueError):
        cluster_from_correlation(corr, **kwargs)


# ---------------- LassoModel HCGL
def hcgl_panel(seed=20):
    rng = np.random.default_rng(seed)
    t_rows, m = 160, 3
    idx = pd.date_range("2015-01-02", periods=t_rows, freq="W-FRI")
    x = pd.DataFrame(rng.standard_normal((t_rows, m)), index=idx, columns=["mkt", "val", "mom"])
    y, _ = clustered_returns(t_rows, 9, 3, seed=seed + 1, noise=0.8)
    y.index = idx
    y = y + 3.0 + x.to_numpy() @ rng.standard_normal((m, 9)) * 0.3
    y.iloc[:25, 2] = np.nan  # ragged start
    y.iloc[70:80, 5] = np.nan  # gap
    y.iloc[150:, 7] = np.nan  # trailing
    x.iloc[40, 1] = np.nan  # partly missing factor row: y kept
    x.iloc[90, :] = np.nan  # wholly missing factor row: y masked
    return x, y


def observed_prepared_y(x, y, span):
    """Prepared responses with every masked cell set back to NaN (written from section 1.2)."""
    ya = y.to_numpy(dtype=float)
    x_missing = np.isnan(x.to_numpy(dtype=float)).all(axis=1)
    valid = np.isfinite(ya) & ~x_missing[:, None]
    if span is None:
        dem = ya - np.nanmean(ya, axis=0)
    else:
        dem = (ya - ref_ewm_mean(ya, span))[1:]
        valid = valid[1:]
    return np.where(valid, dem, np.nan)


@pytest.mark.parametrize("span", [None, 26.0])
@pytest.mark.parametrize(
    "cluster_arg", [{"cutoff_fraction": 0.5}, {"cutoff_fraction": 0.25}, {"n_clusters": 3}]
)
@pytest.mark.parametrize(
    "model_type",
    [LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO, LassoModelType.FACTOR_CLUSTER_GROUP_LASSO],
)
def test_lasso_model_clusters_equal_scipy(span, cluster_arg, model_type):
    x, y = hcgl_panel()
    model = LassoModel(model_type=model_type, reg_lambda=1e-3, span=span, **cluster_arg)
    model.fit(x, y)
    obs = observed_prepared_y(x, y, span)
    if span is None:
        corr = pd.DataFrame(obs).corr().to_numpy()
    else:
        corr = ref_corr_from_cov(ref_ewm_cov(obs, span))
    condensed = squareform(1.0 - np.clip(corr, -1, 1), checks=False)
    link = linkage(condensed, "ward")
    if "n_clusters" in cluster_arg:
        labels = fcluster(link, cluster_arg["n_clusters"], "maxclust")
        cutoff = np.sort(link[:, 2])[y.shape[1] - len(np.unique(labels)) - 1]
    else:
        cutoff = cluster_arg["cutoff_fraction"] * condensed.max()
        labels = fcluster(link, cutoff, "distance")
    assert isinstance(model.clusters_, pd.Series)
    assert list(model.clusters_.index) == list(y.columns)
    np.testing.assert_array_equal(model.clusters_.to_numpy(), labels)
    np.testing.assert_allclose(model.linkage_, link, rtol=1e-10, atol=1e-12)
    assert model.cutoff_ == pytest.approx(cutoff, rel=1e-10)


def test_lasso_model_cluster_correlation_ignores_masked_cells():
    # Guards observed_prepared_y: with the wholly-missing factor row the y cells there are
    # masked; treating them as observed changes the correlation, hence (here) the linkage.
    x, y = hcgl_panel()
    model = LassoModel(model_type="hcgl", reg_lambda=1e-3, span=None).fit(x, y)
    ya = y.to_numpy()
    wrong = pd.DataFrame(ya - np.nanmean(ya, axis=0)).corr().to_numpy()
    wrong_link = linkage(squareform(1.0 - wrong, checks=False), "ward")
    assert np.max(np.abs(model.linkage_ - wrong_link)) > 1e-6


@pytest.mark.parametrize("method", ["average", "complete"])
def test_lasso_model_linkage_method(method):
    x, y = hcgl_panel(seed=30)
    model = LassoModel(
        model_type="hcgl", reg_lambda=1e-3, linkage_method=method, cutoff_fraction=0.6
    ).fit(x, y)
    corr = pd.DataFrame(observed_prepared_y(x, y, None)).corr().to_numpy()
    labels, link, cutoff = scipy_clusters(corr, 0.6, method)
    np.testing.assert_array_equal(model.clusters_.to_numpy(), labels)
    np.testing.assert_allclose(model.linkage_, link, rtol=1e-10, atol=1e-12)
    assert model.cutoff_ == pytest.approx(cutoff, rel=1e-10)
