"""Our numpy linkage / fcluster must reproduce scipy.cluster.hierarchy exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster import hierarchy

from xl_factorlasso.core.cluster._linkage import (
    NN_CHAIN_METHODS,
    fcluster_distance,
    fcluster_maxclust,
    linkage,
)

pytestmark = pytest.mark.filterwarnings("error")


def _condensed(d: np.ndarray) -> np.ndarray:
    return d[np.triu_indices(len(d), k=1)]


def _correlation_distance(rng: np.random.Generator, n: int) -> np.ndarray:
    """1 - rho of noisy data with a few common factors, as the product clusters it."""
    t = int(rng.integers(5, 60))
    loadings = rng.standard_normal((int(rng.integers(1, 4)), n))
    x = rng.standard_normal((t, loadings.shape[0])) @ loadings + rng.standard_normal((t, n))
    d = 1.0 - np.corrcoef(x.T)
    np.fill_diagonal(d, 0.0)
    return _condensed((d + d.T) / 2.0)


def _random_condensed(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    m = n * (n - 1) // 2
    if kind == "uniform":
        return rng.random(m)
    if kind == "correlation":
        return _correlation_distance(rng, n)
    if kind == "rounded":  # many exact ties
        return np.round(rng.random(m), 1)
    if kind == "rounded_correlation":
        return np.round(_correlation_distance(rng, n), 1)
    if kind == "zeros":  # duplicated observations: zero distances, also ties among them
        y = rng.integers(0, 3, m).astype(float)
        return y
    if kind == "points":  # Euclidean distances of points with duplicates
        pts = np.round(rng.standard_normal((n, 2)), 0)
        diff = pts[:, None, :] - pts[None, :, :]
        return _condensed(np.sqrt((diff**2).sum(-1)))
    raise AssertionError(kind)


KINDS = ("uniform", "correlation", "rounded", "rounded_correlation", "zeros", "points")


def _assert_same_linkage(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours[:, [0, 1, 3]], ref[:, [0, 1, 3]])
    np.testing.assert_allclose(ours[:, 2], ref[:, 2], rtol=1e-13, atol=0)


def _cutoffs(Z: np.ndarray) -> list[float]:
    heights = Z[:, 2]
    mid = (heights[:-1] + heights[1:]) / 2.0 if len(heights) > 1 else heights
    return [
        0.0,
        -1.0,
        float(heights.max()) + 1.0,
        float(heights.max()),
        float(np.median(heights)),
        *heights[:: max(1, len(heights) // 6)].tolist(),  # exactly a merge height
        *mid[:: max(1, len(mid) // 4)].tolist(),
    ]


def _assert_same_flat(Z: np.ndarray, n: int, ref: np.ndarray | None = None) -> None:
    ref = Z if ref is None else ref
    for cutoff in _cutoffs(ref):
        np.testing.assert_array_equal(
            fcluster_distance(Z, n, cutoff),
            hierarchy.fcluster(ref, cutoff, criterion="distance"),
            err_msg=f"distance cutoff={cutoff!r}",
        )
    for k in range(1, n + 2):
        np.testing.assert_array_equal(
            fcluster_maxclust(Z, n, k),
            hierarchy.fcluster(ref, k, criterion="maxclust"),
            err_msg=f"maxclust k={k}",
        )


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_linkage_and_flat_clusters_match_scipy(method: str, kind: str) -> None:
    rng = np.random.default_rng([sum(map(ord, method)), KINDS.index(kind)])
    sizes = [2, 3, 4, 5, *rng.integers(6, 81, size=21).tolist()]
    for n in sizes:
        y = _random_condensed(rng, n, kind)
        ref = hierarchy.linkage(y, method)
        ours = linkage(y, n, method)
        _assert_same_linkage(ours, ref)
        _assert_same_flat(ours, n, ref)


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
def test_heights_are_bit_identical(method: str) -> None:
    # Same operations in the same order: no rounding difference at all, not just 1e-13.
    rng = np.random.default_rng(7)
    for n in rng.integers(2, 120, size=40):
        y = _correlation_distance(rng, int(n))
        np.testing.assert_array_equal(linkage(y, int(n), method), hierarchy.linkage(y, method))


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_distances_equal(method: str, value: float) -> None:
    for n in (2, 3, 6, 17):
        y = np.full(n * (n - 1) // 2, value)
        ref = hierarchy.linkage(y, method)
        _assert_same_linkage(linkage(y, n, method), ref)
        _assert_same_flat(ref, n)


def test_two_observations() -> None:
    Z = linkage(np.array([0.25]), 2, "ward")
    np.testing.assert_array_equal(Z, [[0.0, 1.0, 0.25, 2.0]])
    np.testing.assert_array_equal(fcluster_maxclust(Z, 2, 1), [1, 1])
    np.testing.assert_array_equal(fcluster_maxclust(Z, 2, 2), [1, 2])
    np.testing.assert_array_equal(fcluster_distance(Z, 2, 0.25), [1, 1])
    np.testing.assert_array_equal(fcluster_distance(Z, 2, 0.2), [1, 2])


def test_single_observation_flat_clusters() -> None:
    empty = np.empty((0, 4))
    np.testing.assert_array_equal(fcluster_distance(empty, 1, 0.5), [1])
    np.testing.assert_array_equal(fcluster_maxclust(empty, 1, 1), [1])


@pytest.mark.parametrize("method", ["single", "centroid", "median"])
def test_flat_clusters_of_other_scipy_linkages(method: str) -> None:
    # The flat-cluster functions take any valid linkage, including non-monotone ones.
    rng = np.random.default_rng(11)
    for n in rng.integers(2, 60, size=30):
        n = int(n)
        y = _random_condensed(rng, n, "points")
        _assert_same_flat(hierarchy.linkage(y, method), n)


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
def test_large_n(method: str) -> None:
    n = 1000
    y = _correlation_distance(np.random.default_rng(3), n)
    ref = hierarchy.linkage(y, method)
    ours = linkage(y, n, method)
    _assert_same_linkage(ours, ref)
    cutoff = 0.5 * float(y.max())
    np.testing.assert_array_equal(
        fcluster_distance(ours, n, cutoff), hierarchy.fcluster(ref, cutoff, "distance")
    )
    for k in (1, 2, 10, 100, 999, 1000):
        np.testing.assert_array_equal(
            fcluster_maxclust(ours, n, k), hierarchy.fcluster(ref, k, "maxclust")
        )


@st.composite
def _distance_problems(draw):
    n = draw(st.integers(2, 25))
    m = n * (n - 1) // 2
    # A small alphabet of values forces ties and zeros; mixed with arbitrary floats.
    values = st.one_of(
        st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        st.floats(0.0, 2.0, allow_nan=False, allow_subnormal=False),
    )
    y = np.array(draw(st.lists(values, min_size=m, max_size=m)), dtype=float)
    return n, y, draw(st.sampled_from(NN_CHAIN_METHODS))


@settings(max_examples=300, deadline=None)
@given(_distance_problems())
def test_property_matches_scipy(problem) -> None:
    n, y, method = problem
    ref = hierarchy.linkage(y, method)
    ours = linkage(y, n, method)
    _assert_same_linkage(ours, ref)
    _assert_same_flat(ours, n, ref)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.array([1.0]), 2, "single"), "method"),
        ((np.array([1.0]), 2, "centroid"), "method"),
        ((np.array([]), 1, "ward"), "at least 2"),
        ((np.array([1.0, 2.0]), 3, "ward"), "expected"),
        ((np.array([1.0, np.nan, 2.0]), 3, "ward"), "finite"),
        ((np.array([1.0, np.inf, 2.0]), 3, "average"), "finite"),
    ],
)
def test_linkage_rejects_bad_input(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        linkage(*args)


def test_flat_clusters_reject_bad_input() -> None:
    Z = linkage(np.array([1.0, 2.0, 3.0]), 3, "ward")
    with pytest.raises(ValueError, match="k >= 1"):
        fcluster_maxclust(Z, 3, 0)
    with pytest.raises(ValueError, match="shape"):
        fcluster_distance(Z, 4, 1.0)


def test_input_not_modified() -> None:
    y = np.random.default_rng(5).random(45)
    before = y.copy()
    linkage(y, 10, "ward")
    np.testing.assert_array_equal(y, before)


@pytest.mark.parametrize("method", NN_CHAIN_METHODS)
def test_compiled_linkage_gives_the_same_clusters_and_is_used(method, monkeypatch) -> None:
    """Inside ``compiled_linkage`` (the rolling fits) SciPy's linkage answers, with the same
    matrix and labels as the numpy chain outside it."""
    import pandas as pd

    from xl_factorlasso.core.cluster._hierarchical import (
        cluster_from_correlation,
        compiled_linkage,
    )

    rng = np.random.default_rng(7)
    x = rng.standard_normal((80, 3)) @ rng.standard_normal((3, 40)) + rng.standard_normal((80, 40))
    corr = pd.DataFrame(np.corrcoef(x.T))
    plain = cluster_from_correlation(corr, linkage_method=method, n_clusters=5)
    calls = []
    original = hierarchy.linkage
    monkeypatch.setattr(hierarchy, "linkage",
                        lambda *a, **k: calls.append(k["method"]) or original(*a, **k))
    with compiled_linkage():
        compiled = cluster_from_correlation(corr, linkage_method=method, n_clusters=5)
    after = cluster_from_correlation(corr, linkage_method=method, n_clusters=5)
    assert calls == [method]  # once inside, never after the block
    assert np.array_equal(compiled.linkage, plain.linkage)
    assert compiled.labels.equals(plain.labels) and after.labels.equals(plain.labels)
