"""The one-pass preparation (issue 14): statistics, intercept means and memory.

Every statistic is checked against a direct computation on explicitly centred, masked and
weighted arrays (the module docstring's definitions, written out with numpy); the centring in
the Gram against an 80-bit (``np.longdouble``) reference on badly centred data; the memory of a
preparation by tracemalloc (allocations, not time: deterministic).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from conftest import make_panel

from xl_factorlasso import LassoModel
from xl_factorlasso.core.cluster import ewm_lambda, ewm_mean
from xl_factorlasso.core.linear_model import SufficientStats, coerce_panel, prepare_panel
from xl_factorlasso.core.linear_model._lasso_model import _weighted_means

FCGL = "FACTOR_CLUSTER_GROUP_LASSO"
HCGL = "HIERARCHICAL_CLUSTER_GROUP_LASSO"


def _panel(kind: str, seed: int = 0, T: int = 150, M: int = 5, N: int = 12):
    x, y, _ = make_panel(T=T, M=M, N=N, seed=seed)
    x, y = x.copy(), y.copy()
    if kind == "ragged":
        y.iloc[:30, 1] = np.nan
        y.iloc[70:75, 2:6] = np.nan
        y.iloc[::11, 7] = np.nan
        x.iloc[40, :] = np.nan  # an all-missing factor row masks every response there
        x.iloc[90, 3] = np.nan  # a partly missing one is mean-imputed
    elif kind == "fortran":
        y = pd.DataFrame(np.asfortranarray(y.to_numpy()), index=y.index, columns=y.columns)
    elif kind == "constant":
        y["a3"] = 2.5
    return x, y


def _reference(x: pd.DataFrame, y: pd.DataFrame, span, demean: bool):
    """The prepared arrays and statistics by their definitions, with (T, N) weights."""
    xa, ya = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    mask = np.isfinite(ya) & ~np.isnan(xa).all(axis=1)[:, None]
    if demean:
        with np.errstate(invalid="ignore"):
            xa = xa - (np.nanmean(xa, axis=0) if span is None else ewm_mean(xa, span))
            ya = ya - (np.nanmean(ya, axis=0) if span is None else ewm_mean(ya, span))
        if span is not None:
            xa, ya, mask = xa[1:], ya[1:], mask[1:]
    xa, ya = np.nan_to_num(xa), np.nan_to_num(ya)
    t_rows = len(xa)
    rw = np.ones(t_rows) if span is None else ewm_lambda(span) ** np.arange(t_rows - 1, -1, -1.0)
    w = rw[:, None] * mask  # (T, N)
    gram = np.einsum("tn,tm,tk->nmk", w, xa, xa)
    return {
        "x": xa, "y": ya, "mask": mask, "gram": gram,
        "xty": np.einsum("tn,tm,tn->nm", w, xa, ya), "yty": np.einsum("tn,tn,tn->n", w, ya, ya),
        "xw": w.T @ xa, "yw": (w * ya).sum(axis=0), "mass": w.sum(axis=0),
    }


def _scaled_close(actual, expected, rtol):
    """Equal to ``rtol`` relative to the largest magnitude of ``expected``."""
    scale = max(np.abs(expected).max(), 1e-300)
    assert np.abs(np.asarray(actual) - expected).max() <= rtol * scale


@pytest.mark.parametrize("kind", ["complete", "ragged", "fortran", "constant"])
@pytest.mark.parametrize("span", [None, 20.0])
@pytest.mark.parametrize("demean", [True, False])
def test_statistics_equal_their_definitions(kind, span, demean):
    x, y = _panel(kind)
    ref = _reference(x, y, span, demean)
    panel = prepare_panel(*coerce_panel(x, y), span=span, demean=demean)
    stats = SufficientStats.from_panel(panel)
    np.testing.assert_array_equal(panel.mask, ref["mask"])
    # the prepared responses on their valid cells: the same bits as the reference's
    np.testing.assert_array_equal(np.where(panel.mask, panel.y, 0.0),
                                  np.where(ref["mask"], ref["y"], 0.0))
    np.testing.assert_array_equal(panel.x, ref["x"])
    x_sums = ref["mask"].T @ np.abs(ref["x"])  # (N, M): the magnitudes xw sums over
    for i, p in enumerate(stats.pattern):
        _scaled_close(stats.gram[p], ref["gram"][i], 1e-13)
        # a sum of demeaned values: round-off next to the sum of their magnitudes
        assert np.abs(stats.xw[p] - ref["xw"][i]).max() <= 1e-13 * x_sums[i].max()
    for name in ("xty", "yty", "mass"):
        _scaled_close(getattr(stats, name), ref[name], 1e-13)
    scale = (np.abs(ref["y"]) * ref["mask"]).sum(axis=0).max()
    assert np.abs(stats.yw - ref["yw"]).max() <= 1e-13 * scale


@pytest.mark.parametrize("kind", ["complete", "ragged"])
@pytest.mark.parametrize("span", [None, 20.0])
def test_intercept_means_and_counts_come_with_the_preparation(kind, span):
    x, y = _panel(kind)
    xf, yf = coerce_panel(x, y)
    panel = prepare_panel(xf, yf, span=span)
    x_means, y_means = _weighted_means(xf, yf, span)  # the direct (T, N) computation
    _scaled_close(panel.means[0], x_means, 1e-14)
    _scaled_close(panel.means[1], y_means, 1e-14)
    np.testing.assert_array_equal(panel.n_obs, np.isfinite(y.to_numpy()).sum(axis=0))
    model = LassoModel(reg_lambda=1e-3, span=span, warmup_period=None).fit(x, y)
    coef = model.coef_.to_numpy()
    _scaled_close(model.alpha_const_.to_numpy(), y_means - np.einsum("nm,nm->n", coef, x_means),
                  1e-13)
    np.testing.assert_array_equal(model.n_obs_.to_numpy(), panel.n_obs)


@pytest.mark.parametrize("span", [None, 20.0])
def test_diagnostics_equal_the_residuals_of_the_prepared_panel(span):
    x, y = _panel("ragged")
    ref = _reference(x, y, span, True)
    model = LassoModel(reg_lambda=2e-3, span=span, warmup_period=None).fit(x, y)
    coef = model.coef_.to_numpy()
    t_rows = len(ref["x"])
    rw = np.ones(t_rows) if span is None else ewm_lambda(span) ** np.arange(t_rows - 1, -1, -1.0)
    w = rw[:, None] * ref["mask"]
    resid = ref["y"] - ref["x"] @ coef.T
    mass = w.sum(axis=0)
    ybar = (w * ref["y"]).sum(axis=0) / mass
    ss_total = (w * ref["y"] ** 2).sum(axis=0) / mass - ybar**2
    np.testing.assert_allclose(model.residual_variance_, (w * resid**2).sum(axis=0) / mass,
                               rtol=1e-12)
    np.testing.assert_allclose(model.total_variance_, ss_total, rtol=1e-11)
    np.testing.assert_allclose(model.r2_, 1.0 - (w * resid**2).sum(axis=0) / mass / ss_total,
                               rtol=1e-11)


def _longdouble_stats(x: np.ndarray, y: np.ndarray):
    """``X~'Y~`` and ``Y~'Y~`` of the column-centred panel in 80-bit arithmetic."""
    xl, yl = x.astype(np.longdouble), y.astype(np.longdouble)
    xc = xl - xl.mean(axis=0)
    yc = yl - yl.mean(axis=0)
    return (yc.T @ xc).astype(float), np.einsum("tn,tn->n", yc, yc).astype(float)


@pytest.mark.parametrize("level", [0.0, 0.5, 1e6])
def test_centring_keeps_every_digit_whatever_the_level(level):
    """A complete panel is centred in the Gram only when that cancels at most a factor 2
    (``|mean| <= sd``); a 1e6 level over a 1e-3 variation is centred in a copy. Either way the
    statistics agree with 80-bit arithmetic to 1e-12, where centring in the Gram at the 1e6
    level would have lost everything (shown below with the same formula)."""
    rng = np.random.default_rng(7)
    T, M, N = 400, 4, 6
    x = rng.standard_normal((T, M))
    scale = 1e-3 if level >= 1e6 else 1.0
    y = level + scale * (x @ rng.standard_normal((M, N)) + rng.standard_normal((T, N)))
    xf, yf = coerce_panel(x, y)
    panel = prepare_panel(xf, yf)
    assert (panel.y_shift is None) == (level >= 1e6)
    stats = SufficientStats.from_panel(panel)
    xty, yty = _longdouble_stats(x, y)
    _scaled_close(stats.xty, xty, 1e-12)
    np.testing.assert_allclose(stats.yty, yty, rtol=1e-12)
    # the deferred y equals the centred copy (of the same memory layout) bit for bit
    values = yf.to_numpy(dtype=float)
    np.testing.assert_array_equal(panel.y, values - np.nanmean(values, axis=0))
    naive = np.einsum("tn,tn->n", y, y) - y.mean(axis=0) * y.sum(axis=0)
    if level >= 1e6:
        assert np.abs(naive - yty).max() > 1e-6 * np.abs(yty).max()


def test_a_complete_panel_is_prepared_without_a_copy_of_y():
    x, y, _ = make_panel(T=2000, M=5, N=300, seed=3)
    y_bytes = y.to_numpy().nbytes
    xf, yf = coerce_panel(x, y)

    def peak(fn):
        tracemalloc.start()
        try:
            out = fn()
            return out, tracemalloc.get_traced_memory()[1] / y_bytes
        finally:
            tracemalloc.stop()

    panel, complete = peak(lambda: prepare_panel(xf, yf))
    _, stats = peak(lambda: SufficientStats.from_panel(panel))
    assert panel.y_shift is not None and complete < 0.3 and stats < 0.1
    # a ragged panel: one zero-filled copy (and its masks)
    y2 = yf.copy()
    y2.iloc[:100, 0] = np.nan
    _, ragged = peak(lambda: prepare_panel(xf, y2))
    assert 1.0 <= ragged < 1.4
    # a span: the one copy, demeaned in place (no EWMA-mean array beside it)
    _, spanned = peak(lambda: prepare_panel(xf, yf, span=30.0))
    assert 1.0 <= spanned < 1.4
    # a whole set-up (coercion, preparation, statistics, penalty, lambda_max) copies no y
    # either, and the fitted model keeps the statistics, not the prepared panel (the solve's
    # own arrays are the engine's: not bounded here)
    model = LassoModel(reg_lambda=1e-3, model_type=FCGL, n_clusters=1, warmup_period=None)
    _, setup_peak = peak(lambda: model._setup(x, y))
    assert setup_peak < 0.5
    model.fit(x, y)
    assert model._fit_setup_.panel is None


@pytest.mark.parametrize("model_type", [FCGL, HCGL])
def test_one_cluster_skips_the_clustering_and_changes_no_answer(model_type, monkeypatch):
    x, y, _ = make_panel(T=150, M=5, N=10, seed=4, ragged=True)
    lam = 0.05
    one = LassoModel(model_type=model_type, reg_lambda=lam, n_clusters=1, l1_weight=0.2)
    from xl_factorlasso.core.linear_model import _lasso_model

    def refuse(*args, **kwargs):
        raise AssertionError("the dependence of the responses was computed")

    with monkeypatch.context() as patch:
        patch.setattr(_lasso_model, "compute_dependence_matrix", refuse)
        one.fit(x, y)
    assert (one.clusters_ == 1).all() and one.linkage_ is None and one.cutoff_ is None
    # the clustering, cut into one cluster, finds the same partition: the same problem
    xf, yf = coerce_panel(x, y)
    found = one._discover_clusters(xf, yf, prepare_panel(xf, yf), one._checked_params())
    pd.testing.assert_series_equal(found.labels, one.clusters_)
    assert len(found.linkage) == len(y.columns) - 1  # what is no longer computed
    if model_type == HCGL:  # rows on one cluster: GROUP_LASSO on one group, end to end
        ref = LassoModel(model_type="GROUP_LASSO", group_data=pd.Series("g", index=y.columns),
                         reg_lambda=lam, l1_weight=0.2).fit(x, y)
        np.testing.assert_allclose(one.coef_, ref.coef_, rtol=0, atol=1e-9)
        np.testing.assert_allclose(one.objective_value_, ref.objective_value_, rtol=1e-9)


@pytest.mark.parametrize("level", [0.0, 1e6])
def test_a_complete_factor_panel_is_demeaned_bit_for_bit(level):
    """A complete factor panel (no span) is demeaned from its column sums, and its maxima before
    and after come from its column ranges: the prepared factors equal ``x - x.mean(axis=0)``
    bit for bit, a constant factor is exactly zero (it is round-off once demeaned), and one
    that overflows when demeaned is named."""
    rng = np.random.default_rng(3)
    x = level + rng.standard_normal((120, 6)) * np.array([1.0, 1e-3, 1e3, 1.0, 1.0, 1.0])
    x[:, 4] = level + 0.1  # a constant factor, whose mean is not exactly 0.1
    x = np.asfortranarray(x)
    y = rng.standard_normal((120, 3))
    xf, yf = coerce_panel(x, y)
    panel = prepare_panel(xf, yf)
    expected = x - x.mean(axis=0)
    assert expected[:, 4].any()  # round-off, which the preparation sets to zero
    expected[:, 4] = 0.0
    np.testing.assert_array_equal(panel.x, expected)
    assert (panel.x[:, 4] == 0.0).all()
    huge = x.copy()
    huge[:60, 1] = 1e308
    huge[60:, 1] = -1e308
    with pytest.raises(ValueError, match="column 'x1' has values up to 1e\\+308"):
        prepare_panel(*coerce_panel(huge, y))


def test_sub_block_equals_the_general_gather():
    """``sub_block``'s two takes (one block) give what the general gather gives."""
    from xl_factorlasso.core.linear_model._preparation import sub_block

    rng = np.random.default_rng(0)
    g = rng.standard_normal((9, 9))
    one = rng.permutation(9)[:5]
    np.testing.assert_array_equal(sub_block(g, one), g[np.ix_(one, one)])
    np.testing.assert_array_equal(sub_block(g, one[None]), g[np.ix_(one, one)][None])
    many = np.array([rng.permutation(9)[:4] for _ in range(3)])
    np.testing.assert_array_equal(sub_block(g, many),
                                  np.stack([g[np.ix_(r, r)] for r in many]))


def test_coerce_panel_frames_of_every_layout():
    """``coerce_panel`` hands a frame of one float64 block back as it is (no Series of dtypes,
    no copy) and converts every other layout: floats in several blocks, ints beside floats,
    float32, a nullable Float64 column; each comes back float64 with the same values, and an
    infinite value is named whichever path found it."""
    base = pd.DataFrame(np.arange(12.0).reshape(4, 3) / 7.0, columns=["a", "b", "c"])
    y = pd.DataFrame({"y0": np.linspace(-1.0, 1.0, 4)})
    split = base[["a"]].copy()
    split["b"], split["c"] = base["b"], base["c"]  # three float64 blocks
    ints = base.copy()
    ints["c"] = np.arange(4)
    nullable = base.copy()
    nullable["b"] = nullable["b"].astype("Float64")
    for frame in (base, split, ints, base.astype(np.float32), nullable):
        xf, _ = coerce_panel(frame, y)
        assert set(xf.dtypes) == {np.dtype(float)}
        np.testing.assert_array_equal(xf.to_numpy(), frame.to_numpy(dtype=float))
    assert coerce_panel(base, y)[0] is base
    for frame in (base.copy(), ints.copy()):
        frame.iloc[2, 1] = np.inf
        with pytest.raises(ValueError, match=r"x: column 'b', row 2 is infinite"):
            coerce_panel(frame, y)


def test_coerce_sums_are_the_preparations_first_pass():
    """``coerce_panel_sums``: the factors' column sums of the infinite-value check (NaN in a
    column with a gap), which the preparation then takes instead of its own pass: the same
    arrays bit for bit, a deferred Gram's diagonal included (the preparation's sums of
    squares), and the equal-columns test finds the same pair from them."""
    from xl_factorlasso.core.linear_model._collinearity import equal_columns
    from xl_factorlasso.core.linear_model._preparation import coerce_panel_sums

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.standard_normal((40, 700)) * 0.01)
    x[5] = x[9]  # two equal columns
    y = pd.DataFrame(rng.standard_normal((40, 2)))
    for gap in (False, True):
        xg = x.copy()
        if gap:
            xg.iloc[3, 7] = np.nan
        xf, yf, sums = coerce_panel_sums(xg, y)
        assert xf is xg
        np.testing.assert_array_equal(sums, xg.to_numpy().sum(axis=0))
        given = prepare_panel(xf, yf, x_sum=sums)
        own = prepare_panel(xf, yf)
        for name in ("x", "values", "mask", "row_weight"):
            np.testing.assert_array_equal(getattr(given, name), getattr(own, name))
        for a, b in zip(given.means, own.means, strict=True):
            np.testing.assert_array_equal(a, b)
        lazy, direct = SufficientStats.from_panel(given), SufficientStats.from_panel(own)
        for name in ("xty", "yty", "xw", "yw", "mass"):
            np.testing.assert_array_equal(getattr(lazy, name), getattr(direct, name))
        if not gap:  # one pattern on every row: the Gram deferred, its diagonal the squares'
            assert lazy.deferred
            np.testing.assert_array_equal(
                lazy.gram_diagonal()[0], np.einsum("tm,tm->m", given.x, given.x))
        before = sums.copy()
        assert equal_columns(xg.to_numpy(), sums) == equal_columns(xg.to_numpy()) == [5, 9]
        np.testing.assert_array_equal(sums, before)  # (the caller's sums are not changed)


@pytest.mark.parametrize("cells", [[(4, 2)], [(4, 2), (6, 2)], [(1, 0), (4, 2)]])
def test_infinite_cells_are_refused_from_the_sums(cells):
    """An infinite cell is named (the first in row order) whether its column's sum is infinite
    or NaN (+inf and -inf, a missing cell beside it); finite values whose sum overflows are
    not refused here (the preparation names them)."""
    x = pd.DataFrame(np.ones((8, 4)), columns=list("abcd"))
    x.iloc[0, 1] = np.nan
    for r, c in cells:
        x.iloc[r, c] = np.inf if r != 6 else -np.inf
    with pytest.raises(ValueError, match="infinite") as err:
        coerce_panel(x, np.ones(8))
    r, c = min(cells)
    assert f"column {x.columns[c]!r}, row {r!r} is infinite" in str(err.value)
    big = pd.DataFrame(np.full((8, 2), 1e308))
    assert coerce_panel(big, np.ones(8))[0] is big


def test_complete_panel_means_are_the_demeaning_means():
    """Every cell valid and no span: the intercept's means are the column sums over the rows,
    the demeaning's own means bit for bit (no other pass), and equal NumPy's means; with a gap
    or a span the weighted sums of the general rule, the same values to round-off."""
    x, y, _ = make_panel(T=150, M=5, N=3, seed=4)
    panel = prepare_panel(x, y)
    xbar, ybar = panel.means
    sums = x.to_numpy().sum(axis=0)
    np.testing.assert_array_equal(xbar, np.repeat((sums / len(x))[None], 3, axis=0))
    np.testing.assert_array_equal(panel.x, x.to_numpy() - sums / len(x))
    np.testing.assert_allclose(xbar, np.tile(x.to_numpy().mean(axis=0), (3, 1)), rtol=1e-14)
    np.testing.assert_allclose(ybar, y.to_numpy().mean(axis=0), rtol=1e-14)
    assert xbar.flags.writeable
    gap = y.copy()
    gap.iloc[3, 1] = np.nan
    xg, yg = prepare_panel(x, gap).means
    np.testing.assert_allclose(xg[0], xbar[0], rtol=1e-14)
    np.testing.assert_allclose(xg[1], x.drop(index=x.index[3]).mean().to_numpy(), rtol=0,
                               atol=1e-14 * np.abs(x.to_numpy()).max())
