"""Cluster-discovery options of factorlasso 1.0.6: dependence measures, distance transforms,
common-mode removal and the clustering span, against factorlasso live and closed forms.

factorlasso's partitions are SciPy's ``fcluster`` labels, a deterministic numbering; ours are
compared label for label (not up to renaming).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import xl_factorlasso as xf
from xl_factorlasso import LassoModel, LassoModelCV
from xl_factorlasso.core.linear_model._preparation import prepare_panel

fl = pytest.importorskip("factorlasso")

MEASURES = ["pearson", "spearman", "gerber"]
DISTANCES = ["one_minus_rho", "chord", "arccos"]


def blocks(seed=0, T=150, N=12, k=3, gaps=True):
    """Responses in ``k`` correlated blocks on a common mode, with ragged starts and a gap."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((T, 1))
    block = rng.standard_normal((T, k))
    member = np.arange(N) % k
    a = 0.5 * common + block[:, member] + rng.standard_normal((T, N)) * 0.9
    a += rng.standard_t(3, size=(T, N)) * 0.2  # some fat tails, where the measures differ
    if gaps:
        a[: T // 5, 2] = np.nan  # late start
        a[T // 3: T // 3 + 8, min(5, N - 1)] = np.nan  # a gap
        a[-T // 6:, N - 1] = np.nan  # stops early
    return a


def panel(seed=1, T=150, M=4, N=12, gaps=True):
    rng = np.random.default_rng(seed + 100)
    idx = pd.date_range("2020-01-03", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)), index=idx, columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.6)
    noise = blocks(seed, T, N, gaps=gaps)
    y = pd.DataFrame(x.to_numpy() @ b.T + noise, index=idx, columns=[f"y{i}" for i in range(N)])
    return x, y


DATA = [
    pytest.param(dict(seed=1, T=150, N=12), id="150x12"),
    pytest.param(dict(seed=2, T=260, N=25, k=5), id="260x25"),
    pytest.param(dict(seed=3, T=60, N=5, k=2), id="60x5"),
    pytest.param(dict(seed=4, T=120, N=9, gaps=False), id="120x9-complete"),
]


# ------------------------------------------------------------------ dependence matrices
@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("span", [None, 20.0])
def test_dependence_matrix_equals_factorlasso(data, measure, span):
    a = blocks(**data)
    for c in (0.5, 0.0, 1.0):
        ours = xf.compute_dependence_matrix(a, measure, span=span, gerber_threshold=c)
        if measure == "spearman" and span is not None:
            # documented difference (test_spearman_with_span_centres_the_ranks): factorlasso's
            # EWMA Pearson of the centred ranks
            ranks = pd.DataFrame(a).rank().to_numpy()
            theirs = fl.compute_dependence_matrix(ranks - np.nanmean(ranks, axis=0), span=span)
        else:
            theirs = fl.compute_dependence_matrix(a, measure, span=span, gerber_threshold=c)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        if measure != "gerber":
            break
    off = ours[~np.eye(len(ours), dtype=bool)]
    assert np.nanmax(off) > 0.3 and np.nanmin(off) < 0.3  # not a degenerate matrix


@pytest.mark.parametrize("backfill", ["FFILL", "DEFLATED_FFILL", "ZERO_FILL", "NAN_FILL"])
def test_nan_backfill_equals_factorlasso(backfill):
    a = blocks(seed=5, T=120, N=8)
    theirs_enum = getattr(fl.utils._ewm.NanBackfill, backfill)
    for measure in ("pearson",):  # spearman with a span: a documented difference
        theirs = fl.compute_dependence_matrix(a, measure, span=15, nan_backfill=theirs_enum)
        for given in (theirs_enum, backfill.lower()):
            ours = xf.compute_dependence_matrix(a, measure, span=15, nan_backfill=given)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    gapped = xf.compute_dependence_matrix(a, span=15, nan_backfill=backfill)
    assert (backfill == "FFILL") == np.allclose(gapped, xf.compute_dependence_matrix(a, span=15))


def gerber_by_counting(a, c):
    """The published (equal-weight) Gerber statistic, one pair and one row at a time."""
    t_rows, n = a.shape
    sd = []
    for i in range(n):
        col = a[np.isfinite(a[:, i]), i]
        sd.append(np.sqrt(np.mean((col - col.mean()) ** 2)))
    g = np.eye(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            concord = discord = neither = both = 0
            for t in range(t_rows):
                u, v = a[t, i], a[t, j]
                if not (np.isfinite(u) and np.isfinite(v)):
                    continue
                both += 1
                su = 1 if u >= c * sd[i] else -1 if u <= -c * sd[i] else 0
                sv = 1 if v >= c * sd[j] else -1 if v <= -c * sd[j] else 0
                concord += su * sv == 1
                discord += su * sv == -1
                neither += su == 0 and sv == 0
            g[i, j] = (concord - discord) / (both - neither) if both > neither else 0.0
    return g


@pytest.mark.parametrize("c", [0.0, 0.3, 0.5, 1.0])
def test_gerber_matrix_is_the_published_statistic(c):
    a = blocks(seed=6, T=70, N=6)
    np.testing.assert_allclose(xf.compute_gerber_matrix(a, gerber_threshold=c),
                               gerber_by_counting(a, c), rtol=0, atol=1e-13)


def test_gerber_with_span_weights_each_count():
    """With a span each row counts ``lambda^(T-1-t)``: one row repeated k times == weight k."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((40, 4))
    lam = 1 - 2 / (9 + 1)
    w = lam ** np.arange(39, -1, -1.0)
    # integer weights by repetition are exact only for uniform weights; check the identity
    # sum_t w_t s_ti s_tj / sum_t w_t [not both still] on the definition instead
    sd = np.sqrt(np.average((a - np.average(a, axis=0, weights=w)) ** 2, axis=0, weights=w))
    s = np.where(a >= 0.5 * sd, 1.0, np.where(a <= -0.5 * sd, -1.0, 0.0))
    num = np.einsum("t,ti,tj->ij", w, s, s)
    den = np.einsum("t,ti,tj->ij", w, np.ones_like(s), np.ones_like(s)) - np.einsum(
        "t,ti,tj->ij", w, (s == 0) * 1.0, (s == 0) * 1.0)
    expected = num / den
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(xf.compute_gerber_matrix(a, span=9), expected, atol=1e-13)


def test_spearman_is_pearson_of_ranks():
    a = blocks(seed=8, T=90, N=5)
    ranks = pd.DataFrame(a).rank().to_numpy()
    np.testing.assert_allclose(xf.compute_dependence_matrix(a, "spearman"),
                               pd.DataFrame(ranks).corr().to_numpy(), atol=1e-14)
    # invariant to a monotone transform of a column, unlike Pearson
    b = a.copy()
    b[:, 1] = np.exp(3 * b[:, 1])
    np.testing.assert_allclose(xf.compute_dependence_matrix(b, "spearman"),
                               xf.compute_dependence_matrix(a, "spearman"), atol=1e-14)
    assert not np.allclose(xf.compute_dependence_matrix(b), xf.compute_dependence_matrix(a))


def test_spearman_with_span_centres_the_ranks():
    """Documented difference: factorlasso 1.0.6 runs the EWMA recursion (a second moment of
    centred data) on the raw ranks 1..T, so independent series look strongly correlated.
    Here the ranks are centred at their mean first."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))  # independent
    theirs = fl.compute_dependence_matrix(a, "spearman", span=300)
    ours = xf.compute_dependence_matrix(a, "spearman", span=300)
    off = ~np.eye(4, dtype=bool)
    assert theirs[off].min() > 0.6  # the case: no dependence, yet "correlation" > 0.6
    assert np.abs(ours[off]).max() < 0.15
    ranks = pd.DataFrame(a).rank().to_numpy()
    np.testing.assert_allclose(ours, xf.ewm_correlation(ranks - ranks.mean(axis=0), 300),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: xf.compute_dependence_matrix(np.ones((5, 2)), "kendall"),
         "dependence_measure must be one of 'pearson', 'spearman', 'gerber', got 'kendall'"),
        (lambda: xf.compute_dependence_matrix(np.ones(5)), "a must be 2-dimensional"),
        (lambda: xf.compute_gerber_matrix(np.ones((5, 2)), gerber_threshold=1.5),
         "gerber_threshold must lie in [0, 1], got 1.5"),
        (lambda: xf.compute_gerber_matrix(np.ones((0, 2))), "a has no rows"),
        (lambda: xf.compute_dependence_matrix(np.ones((5, 2)), span=0.5), "span must be"),
        (lambda: xf.compute_dependence_matrix(np.ones((5, 2)), span=3, nan_backfill="bfill"),
         "nan_backfill must be one of 'ffill'"),
    ],
)
def test_dependence_bad_arguments(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# ------------------------------------------------------------------ common-mode removal
def labelled(matrix, prefix="a"):
    names = [f"{prefix}{i}" for i in range(len(matrix))]
    return pd.DataFrame(matrix, index=names, columns=names)


@pytest.mark.parametrize("rho, n", [(0.3, 4), (0.6, 7), (-0.1, 5)])
def test_remove_pc1_equicorrelation_closed_form(rho, n):
    """``R = (1-rho) I + rho 11'``: with rho > 0 the common mode is ``1/sqrt(n)`` with
    eigenvalue ``1 + (n-1) rho``; the restandardised residual has off-diagonal ``-1/(n-1)``."""
    r = (1 - rho) * np.eye(n) + rho
    res = xf.remove_first_principal_component(labelled(r))
    if rho > 0:
        expected = np.full((n, n), -1 / (n - 1))
        np.fill_diagonal(expected, 1.0)
        np.testing.assert_allclose(res.correlation.to_numpy(), expected, atol=1e-12)
        assert res.removed_eigenvalue == pytest.approx(1 + (n - 1) * rho, abs=1e-12)
        assert res.removed_variance_share == pytest.approx((1 + (n - 1) * rho) / n, abs=1e-12)
        assert res.eigengap == pytest.approx(n * rho, abs=1e-12)
        assert res.dominant_component_unique
    else:  # the top eigenvalue 1 - rho is repeated: no unique common mode
        assert res.removed_eigenvalue == pytest.approx(1 - rho, abs=1e-12)
        assert not res.dominant_component_unique


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("measure", MEASURES)
def test_remove_pc1_equals_factorlasso(data, measure):
    a = blocks(**data)
    dep = labelled(xf.compute_dependence_matrix(a, measure))
    dep.iloc[0, 1] = dep.iloc[1, 0] = np.nan  # a missing pair counts as 0
    ours, theirs = xf.remove_first_principal_component(dep), fl.remove_first_principal_component(dep)
    np.testing.assert_allclose(ours.correlation, theirs.correlation, rtol=0, atol=1e-12)
    pd.testing.assert_index_equal(ours.correlation.index, theirs.correlation.index)
    for name in ("removed_eigenvalue", "removed_variance_share", "minimum_residual_variance",
                 "eigengap"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), abs=1e-12), name
    assert ours.dominant_component_unique == theirs.dominant_component_unique
    assert ours.missing_offdiagonal_pairs == theirs.missing_offdiagonal_pairs == 1
    assert ours.isolated_assets == theirs.isolated_assets
    applied = xf.apply_cluster_correlation_transform(dep, "remove_pc1")
    pd.testing.assert_frame_equal(applied, ours.correlation)
    assert xf.apply_cluster_correlation_transform(dep, "none") is dep


def test_remove_pc1_isolates_a_response_spanned_by_the_common_mode():
    # two identical responses and nothing else: the residual of both is exactly zero
    r = labelled(np.ones((2, 2)))
    ours, theirs = xf.remove_first_principal_component(r), fl.remove_first_principal_component(r)
    assert ours.isolated_assets == theirs.isolated_assets == ("a0", "a1")
    np.testing.assert_array_equal(ours.correlation.to_numpy(), np.eye(2))
    single = xf.remove_first_principal_component(labelled([[1.0]]))
    assert single.correlation.to_numpy().tolist() == [[1.0]] and np.isnan(single.eigengap)


@pytest.mark.parametrize(
    "matrix, error, message",
    [
        (np.eye(3), TypeError, "corr_matrix must be a pandas DataFrame"),
        (pd.DataFrame(np.eye(3), index=list("abc"), columns=list("abd")), ValueError,
         "index and column labels must match"),
        (labelled(np.array([[1.0, 1.5], [1.5, 1.0]])), ValueError,
         "materially outside [-1, 1]: maximum absolute value 1.5"),
        (labelled(np.array([[1.0, np.inf], [0.2, 1.0]])), ValueError, "must be finite or NaN"),
        (labelled(np.array([[np.nan, 0.2], [0.2, 1.0]])), ValueError, "diagonal must be finite"),
    ],
)
def test_remove_pc1_bad_matrix(matrix, error, message):
    with pytest.raises(error) as err:
        xf.remove_first_principal_component(matrix)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="cluster_correlation_transform must be one of 'none', "
                                         "'remove_pc1', got 'pc2'"):
        xf.apply_cluster_correlation_transform(labelled(np.eye(2)), "pc2")


# ------------------------------------------------------------------ distances and cuts
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("cut", [dict(), dict(cutoff_fraction=0.3), dict(n_clusters=4),
                                 dict(linkage_method="average", cutoff_fraction=0.6),
                                 dict(linkage_method="complete", n_clusters=3),
                                 dict(linkage_method="single", cutoff_fraction=0.8),
                                 dict(linkage_method="centroid", cutoff_fraction=0.5)])
@pytest.mark.parametrize("data", DATA[:2])
def test_clusters_from_corr_matrix_equal_factorlasso(distance, cut, data):
    dep = labelled(xf.compute_dependence_matrix(blocks(**data), "gerber"), "y")
    ours = xf.compute_clusters_from_corr_matrix(dep, distance_transform=distance, **cut)
    theirs = fl.compute_clusters_from_corr_matrix(dep, distance_transform=distance, **cut)
    pd.testing.assert_series_equal(ours[0], theirs[0])  # labels, numbering, index, dtype
    np.testing.assert_allclose(ours[1], theirs[1], rtol=0, atol=1e-10)
    assert ours[2] == pytest.approx(theirs[2], abs=1e-12)


def test_distance_transforms_closed_form():
    rho = np.array([[1.0, 0.5, -0.5], [0.5, 1.0, 1.0 + 1e-15], [-0.5, 1.0 + 1e-15, 1.0]])
    one = xf.core.cluster.correlation_distance(rho, "one_minus_rho")
    chord = xf.core.cluster.correlation_distance(rho, "chord")
    angle = xf.core.cluster.correlation_distance(rho, "arccos")
    np.testing.assert_allclose(one[0], [0, 0.5, 1.5])
    np.testing.assert_allclose(chord[0], [0, 1.0, np.sqrt(3.0)])
    np.testing.assert_allclose(angle[0], [0, np.pi / 3, 2 * np.pi / 3])
    assert one[1, 2] == chord[1, 2] == angle[1, 2] == 0.0  # round-off above 1 is clipped
    # single and complete linkage read ranks only: the three transforms give the same tree
    dep = labelled(xf.compute_dependence_matrix(blocks(seed=9, T=100, N=10)))
    merges = {d: xf.compute_clusters_from_corr_matrix(
        dep, linkage_method="complete", distance_transform=d, n_clusters=3) for d in DISTANCES}
    for d in DISTANCES[1:]:
        pd.testing.assert_series_equal(merges[d][0], merges["one_minus_rho"][0])
        np.testing.assert_array_equal(merges[d][1][:, :2], merges["one_minus_rho"][1][:, :2])


def test_clusters_from_corr_matrix_bad_arguments():
    dep = labelled(np.eye(3))
    for kw, message in [
        (dict(distance_transform="euclidean"),
         "distance_transform must be one of 'one_minus_rho', 'chord', 'arccos', got 'euclidean'"),
        (dict(n_clusters=2.5), "n_clusters must be an integer or None, got 2.5"),
        (dict(n_clusters=True), "n_clusters must be an integer or None"),
        (dict(n_clusters=0), "n_clusters must be at least 1"),
        (dict(cutoff_fraction=0), "cutoff_fraction must be in (0, 1]"),
    ]:
        with pytest.raises(ValueError) as err:
            xf.compute_clusters_from_corr_matrix(dep, **kw)
        assert message in str(err.value)


# ------------------------------------------------------------------ fitted models
def fit_both(x, y, model_type, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(x, y)
        ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    return ours, theirs


def assert_same_partition(ours, theirs):
    pd.testing.assert_index_equal(ours.clusters_.index, theirs.clusters_.index)
    np.testing.assert_array_equal(ours.clusters_.to_numpy(), theirs.clusters_.to_numpy())
    np.testing.assert_allclose(ours.linkage_, theirs.linkage_, rtol=0, atol=1e-10)
    assert ours.cutoff_ == pytest.approx(theirs.cutoff_, abs=1e-12)
    assert ours.effective_cluster_correlation_span_ == theirs.effective_cluster_correlation_span_


def assert_same_fit(ours, theirs):
    # factorlasso stops at Clarabel's tolerance; ours is certified: never worse in objective
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=2e-4)


OPTIONS = [
    pytest.param(dict(dependence_measure="spearman"), id="spearman"),
    pytest.param(dict(dependence_measure="gerber"), id="gerber"),
    pytest.param(dict(dependence_measure="gerber", gerber_threshold=0.2, n_clusters=4),
                 id="gerber-0.2-k4"),
    pytest.param(dict(distance_transform="chord", cutoff_fraction=0.7), id="chord"),
    pytest.param(dict(distance_transform="arccos", cutoff_fraction=0.6), id="arccos"),
    pytest.param(dict(cluster_correlation_transform="remove_pc1"), id="remove_pc1"),
    pytest.param(dict(dependence_measure="gerber", distance_transform="chord",
                      cluster_correlation_transform="remove_pc1", n_clusters=3), id="all"),
    pytest.param(dict(cluster_correlation_span=20), id="ccspan-only"),
    pytest.param(dict(span=30, cluster_correlation_span=12, dependence_measure="gerber"),
                 id="span30-ccspan12-gerber"),
    pytest.param(dict(span=26, distance_transform="arccos", cutoff_fraction=0.6),
                 id="span26-arccos"),
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("model_type", ["HIERARCHICAL_CLUSTER_GROUP_LASSO",
                                        "FACTOR_CLUSTER_GROUP_LASSO"])
def test_fit_with_cluster_options_equals_factorlasso(options, model_type):
    x, y = panel(seed=11, T=180, N=14)
    kw = dict(reg_lambda=0.03, l1_weight=0.2, **options)
    ours, theirs = fit_both(x, y, model_type, **kw)
    assert_same_partition(ours, theirs)
    assert 1 < ours.clusters_.nunique() < y.shape[1]  # a real partition, not a trivial one
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("data", DATA[1:])
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("span", [None, 40])
def test_partition_equals_factorlasso_on_other_panels(data, measure, span):
    x, y = panel(**{k: v for k, v in data.items() if k != "k"})
    kw = dict(reg_lambda=0.02, dependence_measure=measure, span=span)
    if measure == "spearman" and span is not None:
        # documented difference in the dependence (centred ranks): same fit on our partition
        ours = LassoModel(model_type="HCGL", **kw).fit(x, y)
        prepared = prepare_panel(x, y, span=span)
        dep = xf.compute_dependence_matrix(np.where(prepared.mask, prepared.y, np.nan),
                                           "spearman", span=span)
        labels, _, _ = xf.compute_clusters_from_corr_matrix(labelled(dep, "y"))
        np.testing.assert_array_equal(ours.clusters_.to_numpy(), labels.to_numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = fl.LassoModel(
                model_type=fl.LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO, **kw
            ).fit(x, y, external_clusters=ours.clusters_)
        assert_same_fit(ours, theirs)
        return
    ours, theirs = fit_both(x, y, "HIERARCHICAL_CLUSTER_GROUP_LASSO", **kw)
    assert_same_partition(ours, theirs)
    assert_same_fit(ours, theirs)


def test_options_change_the_partition():
    """The options reach the clustering (a test that could not fail otherwise)."""
    x, y = panel(seed=11, T=180, N=14)
    base = LassoModel(model_type="HCGL", reg_lambda=0.03, n_clusters=4).fit(x, y)
    seen = set()
    for kw in (dict(), dict(dependence_measure="gerber", gerber_threshold=0.9),
               dict(cluster_correlation_transform="remove_pc1"),
               dict(distance_transform="chord", n_clusters=None, cutoff_fraction=0.5)):
        model = LassoModel(model_type="HCGL", reg_lambda=0.03, n_clusters=4).set_params(**kw)
        seen.add(tuple(model.fit(x, y).clusters_))
    assert len(seen) >= 3 and tuple(base.clusters_) in seen


def test_cluster_span_prepares_the_responses_again():
    """A clustering span other than the fit's demeans with it and drops its first row: the
    dependence is that of the panel prepared with the clustering span."""
    x, y = panel(seed=12, T=120, N=8)
    model = LassoModel(model_type="HCGL", reg_lambda=0.01, dependence_measure="gerber",
                       cluster_correlation_span=15, n_clusters=3).fit(x, y)
    prepared = prepare_panel(x, y, span=15)
    dep = xf.compute_gerber_matrix(np.where(prepared.mask, prepared.y, np.nan), span=15)
    labels, link, _ = xf.compute_clusters_from_corr_matrix(labelled(dep), n_clusters=3)
    np.testing.assert_array_equal(model.clusters_.to_numpy(), labels.to_numpy())
    np.testing.assert_array_equal(model.linkage_, link)
    assert model.effective_cluster_correlation_span_ == 15.0
    assert LassoModel(span=30).fit(x, y).effective_cluster_correlation_span_ == 30.0


def test_factorlasso_enum_members_are_accepted():
    x, y = panel(seed=13, T=100, N=8)
    by_name = LassoModel(model_type="FCGL", reg_lambda=0.02, dependence_measure="Gerber ",
                         distance_transform="CHORD", cutoff_fraction=0.7).fit(x, y)
    by_enum = LassoModel(model_type="FCGL", reg_lambda=0.02,
                         dependence_measure=fl.DependenceMeasure.GERBER,
                         distance_transform=fl.DistanceTransform.CHORD,
                         cutoff_fraction=0.7).fit(x, y)
    ours_enum = LassoModel(model_type="FCGL", reg_lambda=0.02,
                           dependence_measure=xf.DependenceMeasure.GERBER,
                           distance_transform=xf.DistanceTransform.CHORD,
                           cutoff_fraction=0.7).fit(x, y)
    for other in (by_enum, ours_enum):
        pd.testing.assert_series_equal(other.clusters_, by_name.clusters_)
        pd.testing.assert_frame_equal(other.coef_, by_name.coef_)


# ------------------------------------------------------------------ edge cases
def test_zero_variance_response_as_factorlasso():
    x, y = panel(seed=14, T=100, N=7)
    y = y.copy()
    y["y3"] = 0.25  # its mean is exact, so both demean it to exactly 0
    for measure in MEASURES:
        ours, theirs = fit_both(x, y, "HIERARCHICAL_CLUSTER_GROUP_LASSO", reg_lambda=0.02,
                                dependence_measure=measure, n_clusters=3)
        assert_same_partition(ours, theirs)
        dep = xf.compute_dependence_matrix(np.where(np.isfinite(y), y - y.mean(), np.nan),
                                           measure)
        # no variance: no correlation (NaN, read as 0) for Pearson/Spearman, 0 for Gerber
        assert np.all(np.nan_to_num(dep[3, np.arange(7) != 3]) == 0.0)
    # a constant response has no loading
    assert (ours.coef_.loc["y3"] == 0).all()


def test_single_response_has_no_partition():
    x, y = panel(seed=15, T=80, N=3)
    for model_type in ("HIERARCHICAL_CLUSTER_GROUP_LASSO", "FACTOR_CLUSTER_GROUP_LASSO"):
        ours, theirs = fit_both(x, y[["y0"]], model_type, reg_lambda=0.02,
                                dependence_measure="gerber",
                                cluster_correlation_transform="remove_pc1")
        assert ours.clusters_ is None and theirs.clusters_ is None
        assert ours.linkage_ is None and theirs.linkage_ is None
        assert_same_fit(ours, theirs)
    labels, link, cutoff = xf.compute_clusters_from_corr_matrix(labelled([[1.0]]))
    assert labels.tolist() == [1] and link.shape == (0, 4) and cutoff == 0.0


def test_pair_never_observed_together_as_factorlasso():
    x, y = panel(seed=16, T=140, N=8, gaps=False)
    y = y.copy()
    y.iloc[60:, 1] = np.nan  # y1 stops before y4 starts: the pair has no common row
    y.iloc[:80, 4] = np.nan
    for measure in MEASURES:
        for span in (None, 25) if measure != "spearman" else (None,):
            ours, theirs = fit_both(x, y, "FACTOR_CLUSTER_GROUP_LASSO", reg_lambda=0.02,
                                    dependence_measure=measure, span=span, n_clusters=3)
            assert_same_partition(ours, theirs)
            assert_same_fit(ours, theirs)
    dep = xf.compute_dependence_matrix(y.to_numpy(), "gerber")
    assert dep[1, 4] == 0.0
    assert np.isnan(xf.compute_dependence_matrix(y.to_numpy(), "pearson")[1, 4])


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(dependence_measure="kendall"),
         "dependence_measure must be one of 'pearson', 'spearman', 'gerber', got 'kendall'"),
        (dict(dependence_measure=None), "dependence_measure must be one of"),
        (dict(gerber_threshold=1.5), "gerber_threshold must lie in [0, 1], got 1.5"),
        (dict(gerber_threshold=True), "gerber_threshold must lie in [0, 1], got True"),
        (dict(gerber_threshold="0.5"), "gerber_threshold must lie in [0, 1], got '0.5'"),
        (dict(distance_transform="euclidean"),
         "distance_transform must be one of 'one_minus_rho', 'chord', 'arccos', got 'euclidean'"),
        (dict(cluster_correlation_transform="pc1"),
         "cluster_correlation_transform must be one of 'none', 'remove_pc1', got 'pc1'"),
        (dict(cluster_correlation_span=0.5),
         "cluster_correlation_span must be a finite number >= 1 or None, got 0.5"),
        (dict(cluster_correlation_span=float("nan")), "cluster_correlation_span must be"),
    ],
)
@pytest.mark.parametrize("model_type", ["LASSO", "HCGL"])
def test_bad_cluster_options_are_refused_in_fit(kw, message, model_type):
    x, y = panel(seed=17, T=60, N=4)
    model = LassoModel(model_type=model_type, **kw)  # the constructor stores, fit validates
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert message in str(err.value)
    assert not hasattr(model, "coef_")


def test_parameters_round_trip_and_defaults_match_factorlasso():
    import inspect

    ours = inspect.signature(LassoModel.__init__).parameters
    theirs = inspect.signature(fl.LassoModel.__init__).parameters
    for name in ("dependence_measure", "gerber_threshold", "distance_transform",
                 "cluster_correlation_transform", "cluster_correlation_span"):
        assert ours[name].default == theirs[name].default, name
    model = LassoModel(dependence_measure="gerber", gerber_threshold=0.3,
                       distance_transform="arccos", cluster_correlation_transform="remove_pc1",
                       cluster_correlation_span=40)
    from sklearn.base import clone

    assert clone(model).get_params() == model.get_params()


def test_cross_validation_clusters_with_the_options():
    x, y = panel(seed=18, T=160, N=10)
    kw = dict(model_type="HCGL", dependence_measure="gerber", distance_transform="chord",
              n_clusters=3, cluster_correlation_transform="remove_pc1")
    cv = LassoModelCV(lambdas=[1e-3, 1e-2, 1e-1], n_splits=3,
                      base_model=LassoModel(**kw)).fit(x, y)
    direct = LassoModel(reg_lambda=cv.best_lambda_, **kw).fit(x, y)
    pd.testing.assert_series_equal(cv.best_model_.clusters_, direct.clusters_)
    pearson = LassoModelCV(lambdas=[1e-3, 1e-2, 1e-1], n_splits=3,
                           base_model=LassoModel(model_type="HCGL", n_clusters=3)).fit(x, y)
    assert not pearson.best_model_.clusters_.equals(direct.clusters_)


# ------------------------------------------------------------------ workbook and functions
def _cells(frame: pd.DataFrame) -> list[list]:
    return [["date", *frame.columns]] + [[d.to_pydatetime(), *map(float, row)]
                                         for d, row in zip(frame.index, frame.to_numpy(),
                                                           strict=True)]


def test_worksheet_function_settings_reach_the_clustering():
    from xl_factorlasso import udfs

    demo = xf.load_demo_panel()
    settings = [["key", "value"], ["dependence_measure", "Gerber"], ["gerber_threshold", 0.3],
                ["distance_transform", "chord"], ["cluster_correlation_transform", "remove_pc1"],
                ["cluster_correlation_span", 26], ["n_clusters", 4]]
    out = udfs.FLASSO_CLUSTERS(_cells(demo.y), _cells(demo.x), 1e-4, "HCGL", None, None,
                               settings)
    direct = LassoModel(reg_lambda=1e-4, model_type="HCGL", dependence_measure="gerber",
                        gerber_threshold=0.3, distance_transform="chord",
                        cluster_correlation_transform="remove_pc1", cluster_correlation_span=26,
                        n_clusters=4).fit(demo.x, demo.y)
    assert [r[0] for r in out[1:]] == list(direct.clusters_.index)
    assert [r[1] for r in out[1:]] == direct.clusters_.tolist()
    default = LassoModel(reg_lambda=1e-4, model_type="HCGL", n_clusters=4).fit(demo.x, demo.y)
    assert not direct.clusters_.equals(default.clusters_)  # the settings did something
    bad = udfs.FLASSO_CLUSTERS(_cells(demo.y), _cells(demo.x), 1e-4, "HCGL", None, None,
                               [["key", "value"], ["dependence_measure", "kendall"]])
    assert bad == ("#FLASSO! settings: row 2, column 2: dependence_measure: 'kendall' is not "
                   "one of pearson, spearman, gerber")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("dependence_measure", "kendall",
         "dependence_measure: 'kendall' is not one of pearson, spearman, gerber"),
        ("gerber_threshold", 1.5, "gerber_threshold must be in [0, 1], got 1.5"),
        ("distance_transform", "euclid",
         "distance_transform: 'euclid' is not one of one_minus_rho, chord, arccos"),
        ("cluster_correlation_transform", "pc1",
         "cluster_correlation_transform: 'pc1' is not one of none, remove_pc1"),
        ("cluster_correlation_span", 1, "cluster_correlation_span must be >= 2 (or none), got 1"),
    ],
)
def test_fl_settings_refuse_a_bad_value_naming_the_cell(tmp_path, key, value, message):
    import openpyxl

    from xl_factorlasso.cli import build_demo_workbook
    from xl_factorlasso.workbook import WorkbookInputError, XlsxFileIO, refit

    book = Path(build_demo_workbook(tmp_path / "demo.xlsx"))
    wb = openpyxl.load_workbook(book)
    ws = wb["Settings"]
    row = 2
    while ws[f"A{row}"].value is not None:
        row += 1
    ws[f"A{row}"], ws[f"B{row}"] = key, value
    wb.save(book)
    before = book.read_bytes()
    with pytest.raises(WorkbookInputError) as info:
        refit(XlsxFileIO(book))
    assert f"FL_SETTINGS!B{row}: {message}" in str(info.value)
    assert book.read_bytes() == before  # nothing written


def test_refit_with_cluster_settings_equals_direct_fit(tmp_path):
    import openpyxl

    from xl_factorlasso.cli import build_demo_workbook
    from xl_factorlasso.workbook import XlsxFileIO, refit

    book = Path(build_demo_workbook(tmp_path / "demo.xlsx"))
    wb = openpyxl.load_workbook(book)
    ws = wb["Settings"]
    row = 2
    while ws[f"A{row}"].value is not None:
        row += 1
    for key, value in (("dependence_measure", "spearman"), ("distance_transform", "arccos")):
        ws[f"A{row}"], ws[f"B{row}"] = key, value
        row += 1
    wb.save(book)
    refit(XlsxFileIO(book))
    d = xf.load_demo_panel()
    ref = LassoModel(model_type="HCGL", span=52, n_clusters=4, l1_weight=0.1, reg_lambda=1e-5,
                     factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior,
                     dependence_measure="spearman", distance_transform="arccos").fit(d.x, d.y)
    wb = openpyxl.load_workbook(book)
    coef = np.array([[c.value or 0.0 for c in r[1:]]
                     for r in wb["Results"].iter_rows(min_row=2, max_row=25, max_col=7)])
    np.testing.assert_allclose(coef, ref.coef_.to_numpy(), atol=1e-9)


def test_dendrogram_axis_names_the_distance_of_the_fit():
    from xl_factorlasso.workbook._plots._model import distance_name

    assert distance_name(LassoModel()) == "1 - correlation"
    assert distance_name(LassoModel(dependence_measure="gerber", distance_transform="chord")) == (
        "sqrt(2 (1 - Gerber statistic))")
    assert distance_name(LassoModel(dependence_measure="spearman", distance_transform="arccos",
                                    cluster_correlation_transform="remove_pc1")) == (
        "arccos(rank correlation without its first component)")


def test_skfolio_loading_matrix_forwards_the_cluster_options():
    pytest.importorskip("skfolio")
    from xl_factorlasso.skfolio import LassoLoadingMatrix

    x, y = panel(seed=19, T=120, N=8)
    kw = dict(model_type="HCGL", reg_lambda=0.02, dependence_measure="gerber",
              distance_transform="arccos", cluster_correlation_transform="remove_pc1",
              cluster_correlation_span=30, gerber_threshold=0.3, n_clusters=3)
    est = LassoLoadingMatrix(**kw).fit(y.fillna(0.0), x)
    direct = LassoModel(**kw).fit(x, y.fillna(0.0))
    pd.testing.assert_series_equal(est.model_.clusters_, direct.clusters_)
    assert est.model_.effective_cluster_correlation_span_ == 30.0


def test_remove_pc1_on_a_matrix_that_is_no_correlation_is_refused_as_factorlasso():
    """With gaps and a span, pairs are estimated over different rows and a "correlation" can
    exceed 1: factorlasso refuses the common-mode removal, and so does the fit here, saying
    why."""
    x, y = panel(seed=1)
    kw = dict(reg_lambda=0.02, span=20, cluster_correlation_transform="remove_pc1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="materially outside"):
            fl.LassoModel(model_type=fl.LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO,
                          **kw).fit(x, y)
    model = LassoModel(model_type="HCGL", **kw)
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert str(err.value).startswith(
        "cluster_correlation_transform='remove_pc1' cannot be applied: corr_matrix contains a "
        "correlation materially outside [-1, 1]: maximum absolute value 1.35071694651")
    assert "use it without a span, or on responses without gaps" in str(err.value)
    assert not hasattr(model, "coef_")
    LassoModel(model_type="HCGL", **{**kw, "span": None}).fit(x, y)  # without a span: fine
