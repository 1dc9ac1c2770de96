"""The cheap cluster-discovery path (issue 14) gives the answers of the plain computations.

Pearson by SYRK on row blocks, normalised in place, a square distance built from the upper
triangle and a linkage that drops merged slots: each is checked against an independent
reference -- pandas ``DataFrame.corr``, scipy's ``linkage`` / ``fcluster`` on
``squareform``'s condensed vector -- at sizes where the blocks, tiles and compactions happen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from xl_factorlasso import LassoModel, LassoModelType
from xl_factorlasso.core.cluster import (
    _hierarchical,
    _linkage,
    cluster_from_correlation,
    compute_dependence_matrix,
    correlation_distance,
    pairwise_correlation,
)
from xl_factorlasso.core.cluster._hierarchical import correlation_from_gram
from xl_factorlasso.core.cluster._linkage import NN_CHAIN_METHODS, linkage, mirror_upper
from xl_factorlasso.core.datasets import make_factor_panel


def _panel(t_rows: int, n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Returns with a few common factors, shifted away from zero mean and scaled."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((t_rows, 3)) @ rng.standard_normal((3, n))
    return scale * (common + rng.standard_normal((t_rows, n)) + rng.normal(0, 5, n))


def _ragged(a: np.ndarray, seed: int) -> np.ndarray:
    """Late starts, a gap, scattered holes and one column with a single observation."""
    rng = np.random.default_rng(seed)
    a = a.copy()
    t_rows, n = a.shape
    for j in rng.choice(n, n // 3, replace=False):
        a[: rng.integers(1, t_rows // 2), j] = np.nan
    a[t_rows // 3 : t_rows // 3 + 7, 1] = np.nan
    a[rng.random(a.shape) < 0.02] = np.nan
    a[1:, -1] = np.nan
    return a


@pytest.fixture
def small_blocks(monkeypatch):
    """Centre a few rows at a time, so every Gram below is summed over several SYRK calls."""
    monkeypatch.setattr(_hierarchical, "_CENTRING_BLOCK_BYTES", 8 * 7 * 300)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e5])
def test_complete_panel_equals_pandas(seed, scale, small_blocks):
    a = _panel(400, 300, seed, scale)
    got = pairwise_correlation(a)
    expected = pd.DataFrame(a).corr().to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(got, got.T)  # exactly symmetric
    assert got.flags.c_contiguous


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ragged_panel_equals_pandas(seed):
    a = _ragged(_panel(300, 120, seed), seed)
    got = pairwise_correlation(a)
    expected = pd.DataFrame(a).corr().to_numpy()
    # the one-observation column: no pair has two common rows
    assert np.isnan(got[-1]).all() and np.isnan(expected[-1]).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(got), np.isnan(expected))


def test_fortran_ordered_and_integer_panels(small_blocks):
    a = _panel(250, 40, 5)
    expected = pd.DataFrame(a).corr().to_numpy()
    np.testing.assert_allclose(pairwise_correlation(np.asfortranarray(a)), expected, atol=1e-12)
    ints = np.round(a * 10).astype(np.int64)
    np.testing.assert_allclose(pairwise_correlation(ints),
                               pd.DataFrame(ints.astype(float)).corr().to_numpy(), atol=1e-12)


def test_constant_column_and_infinite_values():
    a = _panel(60, 6, 3)
    a[:, 2] = 4.0  # no variance: NaN row and column, as pandas
    got = pairwise_correlation(a)
    expected = pd.DataFrame(a).corr().to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert np.isnan(got[2]).all() and np.isnan(got[:, 2]).all()
    # an infinite value is a missing one (as it always was here; pandas would keep it)
    b = a.copy()
    b[5, 0] = np.inf
    c = a.copy()
    c[5, 0] = np.nan
    np.testing.assert_array_equal(pairwise_correlation(b), pairwise_correlation(c))


@pytest.mark.parametrize("t_rows", [0, 1])
def test_fewer_than_two_rows_is_all_nan(t_rows):
    got = pairwise_correlation(np.ones((t_rows, 4)))
    assert got.shape == (4, 4) and np.isnan(got).all()
    assert pairwise_correlation(np.ones((5, 0))).shape == (0, 0)


def test_correlation_from_gram_keeps_its_input_and_contract():
    a = _panel(200, 30, 7)
    c = a - a.mean(axis=0)
    gram = c.T @ c
    held = gram.copy()
    got = correlation_from_gram(gram, len(a))
    np.testing.assert_array_equal(gram, held)  # a carried Gram is not consumed
    np.testing.assert_allclose(got, pd.DataFrame(a).corr().to_numpy(), atol=1e-12)
    assert np.array_equal(got, got.T)
    zero = gram.copy()
    zero[3, :] = zero[:, 3] = 0.0  # a column without variance
    z = correlation_from_gram(zero, len(a))
    assert np.isnan(z[3]).all() and np.isnan(z[:, 3]).all() and np.isfinite(z[0, 1])
    assert np.isnan(correlation_from_gram(gram, 1)).all()
    # a carried Gram whose diagonal cancelled to 0 (or below) while a product did not: the
    # ratio is infinite (or NaN), and either is missing, never clipped to +-1
    bad = gram.copy()
    bad[3, 3] = 0.0
    bad[4, 4] = -1e-9
    b = correlation_from_gram(bad, len(a))
    assert np.isnan(b[3, [0, 1, 2, 5]]).all() and np.isnan(b[[0, 1, 2, 5], 4]).all()
    assert np.isfinite(b[0, 1]) and b[0, 1] == got[0, 1]


def test_mirror_upper_copies_the_upper_triangle():
    rng = np.random.default_rng(0)
    for n in (1, 5, 256, 257, 600):
        a = rng.standard_normal((n, n))
        want = np.triu(a) + np.triu(a, 1).T
        np.testing.assert_array_equal(mirror_upper(a.copy(), tile=64), want)


@pytest.mark.parametrize("transform", ["one_minus_rho", "chord", "arccos"])
def test_cluster_from_correlation_reads_the_upper_triangle(transform):
    # An asymmetric input with missing and out-of-range entries: the clustering must be
    # scipy's on the condensed upper triangle of the distance of the cleaned correlation.
    rng = np.random.default_rng(4)
    a = _panel(80, 300, 4)
    corr = np.corrcoef(a.T) + 0.02 * rng.standard_normal((300, 300))  # not symmetric
    corr[3, 9] = np.nan
    corr[9, 3] = 0.9
    corr[5, 6], corr[7, 8] = np.inf, -np.inf
    corr[0, 1] = 1.5
    cleaned = np.clip(np.nan_to_num(corr, nan=0.0), -1.0, 1.0)
    condensed = squareform(correlation_distance(cleaned, transform), checks=False)
    upper = np.concatenate([correlation_distance(cleaned, transform)[i, i + 1:]
                            for i in range(299)])
    assert np.array_equal(condensed, upper)  # squareform reads the upper triangle
    ref = hierarchy.linkage(condensed, "ward")
    got = cluster_from_correlation(pd.DataFrame(corr), distance_transform=transform)
    np.testing.assert_array_equal(got.linkage, ref)
    cutoff = 0.5 * condensed.max()
    assert got.cutoff == cutoff
    np.testing.assert_array_equal(got.labels.to_numpy(),
                                  hierarchy.fcluster(ref, cutoff, "distance"))
    assert np.isinf(corr[5, 6])  # the caller's matrix is not modified


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_linkage_with_early_compaction_is_scipy_bit_for_bit(method, kind, monkeypatch):
    # Compacting from 3 slots on makes every small problem go through many compactions,
    # with chains that span them and exact ties among the survivors.
    monkeypatch.setattr(_linkage, "_COMPACT_MIN", 2)
    rng = np.random.default_rng(9)
    for n in [2, 3, 4, 7, 16, 33, 90]:
        for _ in range(3):
            y = rng.random(n * (n - 1) // 2)
            if kind == "ties":
                y = np.round(y, 1)
            np.testing.assert_array_equal(linkage(y, n, method), hierarchy.linkage(y, method))


def _reference_partition(observed: np.ndarray, cutoff_fraction: float = 0.5):
    """pandas correlation, then scipy: the clustering as written in the documentation."""
    corr = pd.DataFrame(observed).corr().to_numpy()
    condensed = squareform(1.0 - np.clip(np.nan_to_num(corr), -1, 1), checks=False)
    link = hierarchy.linkage(condensed, "ward")
    cutoff = cutoff_fraction * condensed.max()
    return hierarchy.fcluster(link, cutoff, "distance"), link, cutoff


@pytest.mark.parametrize(
    "model_type",
    [LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO, LassoModelType.FACTOR_CLUSTER_GROUP_LASSO],
)
@pytest.mark.parametrize("shape,seed,nan_fraction,constant", [((600, 5, 300), 0, 0.0, ""),
                                                              ((400, 4, 150), 1, 0.0, "zero"),
                                                              ((400, 4, 150), 3, 0.0, "levels"),
                                                              ((500, 4, 200), 2, 0.05, "")])
def test_fit_partition_equals_pandas_and_scipy(model_type, shape, seed, nan_fraction, constant,
                                               small_blocks):
    # "" and "zero": complete panels whose demeaning is deferred (the correlation is read
    # from the raw values); "levels": constant columns, which the preparation centres in a
    # copy; a ragged panel last.
    panel = make_factor_panel(*shape, seed=seed, nan_fraction=nan_fraction)
    y = panel.y.copy()
    if constant:  # no correlation with anything: a missing one, read as 0
        y.iloc[:, 3] = 0.0
    if constant == "levels":
        # neither mean is exact in floating point: centred, both columns would be constants
        # of opposite signs, correlated at -1 with each other
        y.iloc[:, 7] = 0.1
        y.iloc[:, 11] = 0.7
    model = LassoModel(model_type=model_type, reg_lambda=1e-3, warmup_period=None)
    setup = model._setup(panel.x, y)
    # the responses the clustering reads: demeaned over each one's observed rows
    observed = np.where(panel.x.notna().all(axis=1).to_numpy()[:, None], y.to_numpy(), np.nan)
    observed = observed - np.nanmean(observed, axis=0)
    if constant:
        observed[:, [3, 7, 11] if constant == "levels" else [3]] = 0.0  # 0.1 - mean: not 0
    labels, link, cutoff = _reference_partition(observed)
    np.testing.assert_array_equal(np.asarray(setup.clusters.loc[panel.y.columns]), labels)
    np.testing.assert_allclose(setup.linkage, link, rtol=0, atol=1e-12)
    assert setup.cutoff == pytest.approx(cutoff, rel=1e-13)
    assert len(np.unique(labels)) > 1


def test_dependence_matrix_with_other_measures_unchanged_by_the_blocks(small_blocks):
    a = _ragged(_panel(200, 40, 8), 8)
    ranks = pd.DataFrame(a).rank().to_numpy()
    np.testing.assert_allclose(compute_dependence_matrix(a, "spearman"),
                               pd.DataFrame(ranks).corr().to_numpy(), atol=1e-12)
    complete = _panel(200, 40, 8)
    np.testing.assert_allclose(compute_dependence_matrix(complete, "pearson"),
                               pd.DataFrame(complete).corr().to_numpy(), atol=1e-12)
