"""Pictures: true pixel sizes, what each one draws (read from matplotlib's artists and pixels),
and odd inputs that must still give a picture or a plain error."""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import make_panel
from xl_factorlasso import LassoModel, LassoModelCV, assemble_factor_covariance
from xl_factorlasso.core.cluster import cluster_from_correlation, response_correlation
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import JobResult, OutputTable, XlsxFileIO, apply_result
from xl_factorlasso.workbook import _plots as plots
from xl_factorlasso.workbook._plots import _model, _portfolio
from xl_factorlasso.workbook._plots._base import GREY, MISSING, cluster_colours
from xl_factorlasso.workbook._results import Picture

PNG_BUDGET = 200_000
LONG = "L" * 32_767


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo():
    """The demo panel's HCGL fit (4 clusters), its factor covariance and a portfolio."""
    d = load_demo_panel()
    model = LassoModel(model_type="HCGL", reg_lambda=1e-5, span=52, n_clusters=4,
                       factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior
                       ).fit(d.x, d.y)
    cov = assemble_factor_covariance(model, d.x, annualization_factor=52)
    return d, model, cov


@pytest.fixture(scope="module")
def cv_fit():
    x, y, _ = make_panel(T=150, M=3, N=6, seed=3)
    return LassoModelCV(lambdas="auto", n_splits=4, n_lambdas=8).fit(x, y)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the picture functions render, for reading their artists."""
    figures = []
    for module in (_model, _portfolio):
        real = module.render
        monkeypatch.setattr(module, "render",
                            lambda fig, real=real: figures.append(fig) or real(fig))
    return figures


def artist(fig, gid):
    found = fig.findobj(lambda a: a.get_gid() == gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def bars(fig, gid) -> list:
    """The rectangles of one ``barh`` call (each bar carries the call's gid), in row order."""
    return fig.findobj(lambda a: a.get_gid() == gid)


def rgb(colour) -> tuple:
    from matplotlib.colors import to_rgb

    return tuple(round(c, 4) for c in to_rgb(colour))


def pixels(png) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def shown_ticks(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def contributions(cov, weights):
    """Euler contributions to volatility per factor and the specific part, in plain numpy."""
    b, s = cov.loadings.to_numpy(), cov.factor_covariance.to_numpy()
    d = cov.residual_variance.to_numpy()
    w = weights.reindex(cov.assets).to_numpy()
    vol = np.sqrt(w @ (b @ s @ b.T + np.diag(d)) @ w)
    e = b.T @ w
    return pd.Series(e * (s @ e) / vol, index=cov.factors), float(w**2 @ d / vol), vol


def all_pictures(demo, cv_fit):
    d, model, cov = demo
    vol = cov.volatility
    weights = pd.Series(np.r_[0.15, 0.15, 0.1, np.zeros(21)] + np.r_[np.zeros(3), [0.6 / 21] * 21],
                        index=cov.assets)
    factor_part, specific, _ = contributions(cov, weights)
    return {
        "heatmap": lambda: plots.coefficient_heatmap(model.coef_),
        "dendrogram": lambda: plots.dendrogram_png(model.linkage_, model.coef_.index,
                                                   model.clusters_, cutoff=model.cutoff_),
        "cv": lambda: plots.cv_curve_from_model(cv_fit),
        "weights": lambda: plots.weights_png(weights, upper=0.15),
        "risk_split": lambda: plots.risk_split_png(vol["systematic"], vol["residual"]),
        "attribution": lambda: plots.risk_attribution_png(factor_part, specific),
    }


# --------------------------------------------------------------------------- sizes
def test_a_png_knows_the_size_in_its_header():
    png = plots.coefficient_heatmap(pd.DataFrame(np.eye(2)), width_px=333, height_px=222)
    assert isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (png.width, png.height) == (333, 222) == plots.png_size(png)
    assert Image.open(io.BytesIO(png)).size == (333, 222)
    assert png.data == bytes(png) and type(png.data) is bytes
    again = pickle.loads(pickle.dumps(png))
    assert again == png and (again.width, again.height) == (333, 222)
    assert repr(png) == f"Png(333x222 px, {len(png)} bytes)"
    with pytest.raises(ValueError, match="not a PNG image"):
        plots.Png(b"GIF89a" + bytes(30))
    with pytest.raises(ValueError, match="not a PNG image"):
        plots.png_size(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("name", ["heatmap", "dendrogram", "cv", "weights", "risk_split",
                                  "attribution"])
def test_every_picture_is_drawn_at_the_size_it_returns(demo, cv_fit, name):
    png = all_pictures(demo, cv_fit)[name]()
    image = Image.open(io.BytesIO(png))
    assert image.size == (png.width, png.height)
    # 96 dpi is the resolution at which Excel shows one image pixel per screen pixel
    assert tuple(round(v) for v in image.info["dpi"]) == (96, 96)
    assert 160 <= png.width <= 1200 and 160 <= png.height <= 1200
    assert len(png) < PNG_BUDGET


def test_a_placed_picture_keeps_its_pixel_size(tmp_path, demo):
    from xl_factorlasso.cli import build_demo_workbook

    _, model, _ = demo
    path = tmp_path / "book.xlsx"
    build_demo_workbook(str(path))
    png = plots.coefficient_heatmap(model.coef_)
    coef = [["asset", *model.coef_.columns]] + [[a, *row] for a, row in
                                                zip(model.coef_.index, model.coef_.to_numpy().tolist(),
                                                    strict=True)]
    result = JobResult("refit", outputs=[OutputTable("FL_COEF", coef)],
                       pictures=[Picture("FL_HEATMAP", png, "FL_COEF", width=png.width,
                                         height=png.height)])
    apply_result(XlsxFileIO(path), result)
    assert result.warnings == []
    with zipfile.ZipFile(path) as z:
        drawing = next(z.read(n).decode() for n in z.namelist()
                       if n.startswith("xl/drawings/drawing") and b"FL_HEATMAP" in z.read(n))
        media = [z.read(n) for n in z.namelist() if n.startswith("xl/media/")]
    cx, cy = map(int, re.search(r'<xdr:ext cx="(\d+)" cy="(\d+)"', drawing).groups())
    assert (cx, cy) == (png.width * 9525, png.height * 9525)  # 9525 EMU per pixel at 96 dpi
    assert [plots.png_size(m) for m in media] == [(png.width, png.height)]


def test_sizes_a_caller_gives_are_used_or_refused():
    coef = pd.DataFrame(np.eye(3))
    png = plots.coefficient_heatmap(coef, 400, 300)
    assert (png.width, png.height) == (400, 300)
    for bad, message in ((10, "between 160 and 1600"), (5000, "between 160 and 1600"),
                         (2.5, "whole number"), (True, "whole number")):
        with pytest.raises(ValueError, match=f"width_px must be .*{message}"):
            plots.weights_png(pd.Series([1.0]), width_px=bad)


# --------------------------------------------------------------------------- heatmap
def test_heatmap_zero_is_white_on_a_symmetric_scale(demo, drawn):
    _, model, _ = demo
    coef = model.coef_.copy()
    png = plots.coefficient_heatmap(coef)
    fig = drawn[-1]
    ax = fig.axes[0]
    image = ax.get_images()[0]
    bound = np.abs(coef.to_numpy()).max()
    assert (image.norm.vmin, image.norm.vmax) == (-bound, bound)
    assert image.cmap(image.norm(0.0)) == (1.0, 1.0, 1.0, 1.0)
    assert ax.get_xlabel() == "factor" and ax.get_ylabel() == "asset"
    assert fig.axes[1].get_ylabel() == "loading"  # the colour bar
    # 24 assets and 6 factors: every label shown, none smaller than 7 points
    assert shown_ticks(ax.yaxis) == list(coef.index)
    assert shown_ticks(ax.xaxis) == list(coef.columns)
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 7
    # the rendered pixels: a zero loading's cell is white, the largest one is dark red
    px = pixels(png)
    values = coef.to_numpy()
    for (i, j), expected in (
        (tuple(np.argwhere(values == 0)[0]), (255, 255, 255)),
        (np.unravel_index(np.argmax(values), values.shape), (178, 24, 43)),  # #b2182b
    ):
        x, y = ax.transData.transform((j, i))
        assert tuple(px[int(png.height - y), int(x)]) == expected


def test_heatmap_draws_missing_cells_grey_and_survives_no_numbers(drawn):
    coef = pd.DataFrame([[np.nan, 1.0], [0.0, -2.0]], index=["a", "b"], columns=["f", "g"])
    png = plots.coefficient_heatmap(coef)
    image = drawn[-1].axes[0].get_images()[0]
    assert rgb(image.cmap.get_bad()) == rgb(MISSING)
    assert np.ma.getmaskarray(image.get_array()).tolist() == [[True, False], [False, False]]
    assert drawn[-1].axes[0].get_title(loc="left") == ("Factor loadings (2 of 3 non-zero; "
                                                       "grey: no value)")
    assert len(png) < PNG_BUDGET
    for values in (np.full((3, 2), np.nan), np.zeros((3, 2)), np.full((3, 2), np.inf)):
        png = plots.coefficient_heatmap(pd.DataFrame(values))
        assert plots.png_size(png) == (png.width, png.height)
    with pytest.raises(ValueError, match=r"coef: nothing to draw \(0 assets x 2 factors\)"):
        plots.coefficient_heatmap(pd.DataFrame(np.zeros((0, 2))))
    with pytest.raises(ValueError, match="coef must be a pandas DataFrame"):
        plots.coefficient_heatmap(np.eye(2))


def test_heatmap_of_500_assets_thins_labels_so_they_do_not_overlap(drawn):
    rng = np.random.default_rng(0)
    index = [LONG] + [f"asset_{i}" for i in range(1, 500)]
    plots.coefficient_heatmap(pd.DataFrame(rng.normal(size=(500, 6)), index=index))
    ax = drawn[-1].axes[0]
    labels = ax.get_yticklabels()
    assert 20 < len(labels) < 500 and labels[0].get_text() == "L" * 23 + "\u2026"
    assert all(len(t.get_text()) <= 24 for t in labels)
    step = np.diff(ax.get_yticks())[0]
    gap = abs(ax.transData.transform((0, step))[1] - ax.transData.transform((0, 0))[1])
    assert gap >= labels[0].get_fontsize() * 96 / 72  # at least one line of text apart


# --------------------------------------------------------------------------- dendrogram
@pytest.mark.parametrize("method", ["ward", "single", "average", "complete"])
def test_dendrogram_layout_equals_scipys(method):
    from scipy.cluster.hierarchy import dendrogram, linkage

    rng = np.random.default_rng(1)
    z = linkage(rng.normal(size=(60, 3)), method=method)
    ref = dendrogram(z, no_plot=True)
    order, links = plots.dendrogram_layout(z, 60)
    assert order == ref["leaves"]
    # scipy draws leaf slot k at 10 k + 5; both list the links in linkage order
    ours = sorted((tuple(np.round(np.array(p) * 10 + 5, 9)), tuple(np.round(d, 9)))
                  for _, p, d in links)
    theirs = sorted((tuple(np.round(i, 9)), tuple(np.round(d, 9)))
                    for i, d in zip(ref["icoord"], ref["dcoord"], strict=True))
    assert ours == theirs


def test_dendrogram_colours_are_the_models_clusters(demo, drawn):
    from scipy.cluster.hierarchy import dendrogram, to_tree

    _, model, _ = demo
    assets = list(model.coef_.index)
    clusters = model.clusters_
    assert clusters.nunique() == 4
    plots.dendrogram_png(model.linkage_, assets, clusters, cutoff=model.cutoff_)
    fig = drawn[-1]
    ax = fig.axes[0]
    order = [assets.index(t.get_text()) for t in ax.get_yticklabels()]
    assert sorted(order) == list(range(len(assets)))  # 24 leaves, every label shown
    leaf_colour = {assets[i]: rgb(c) for i, c in
                   zip(order, artist(fig, "leaves").get_facecolors(), strict=True)}
    # as many colours as clusters, one per cluster, none grey
    by_cluster = {c: {leaf_colour[a] for a in clusters.index[clusters == c]}
                  for c in clusters.unique()}
    assert all(len(v) == 1 for v in by_cluster.values())
    assert len({next(iter(v)) for v in by_cluster.values()}) == 4
    assert rgb(GREY) not in leaf_colour.values()
    # the label text has its leaf's colour
    assert all(rgb(t.get_color()) == leaf_colour[t.get_text()] for t in ax.get_yticklabels())
    # a link is its cluster's colour when every leaf below it is in that cluster, else grey
    nodes = to_tree(model.linkage_, rd=True)[1]
    expected = []
    for row in range(len(model.linkage_)):
        below = {clusters.iloc[k] for k in nodes[len(assets) + row].pre_order()}
        expected.append(next(iter(by_cluster[below.pop()])) if len(below) == 1 else rgb(GREY))
    links = [rgb(c) for c in artist(fig, "links").get_colors()]
    assert links == expected
    assert len(set(links) - {rgb(GREY)}) == 4
    # the legend reads as FL_CLUSTERS does
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "cluster 1", "cluster 2", "cluster 3", "cluster 4"]
    assert {rgb(h.get_color()) for h in fig.legends[0].legend_handles} == {
        next(iter(by_cluster[c])) for c in (1, 2, 3, 4)}
    assert ax.get_xlabel() == "merge height (linkage of 1 - correlation)"
    # SciPy's own colouring cut at the model's height finds the same four groups
    ref = dendrogram(model.linkage_, no_plot=True, color_threshold=model.cutoff_ * (1 + 1e-9))
    scipy_groups = {frozenset(assets[k] for k, c in zip(ref["leaves"], ref["leaves_color_list"],
                                                        strict=True) if c == col)
                    for col in set(ref["leaves_color_list"])}
    assert scipy_groups == {frozenset(clusters.index[clusters == c]) for c in (1, 2, 3, 4)}
    assert artist(fig, "cutoff").get_xdata()[0] == model.cutoff_


def test_dendrogram_leaves_without_a_cluster_are_grey_and_singletons_coloured(drawn):
    rng = np.random.default_rng(2)
    names = [f"a{i}" for i in range(8)]
    found = cluster_from_correlation(
        response_correlation(pd.DataFrame(rng.normal(size=(80, 8)), columns=names)), n_clusters=8)
    clusters = found.labels.drop("a3")  # e.g. dropped by the warm-up period
    plots.dendrogram_png(found.linkage, names, clusters)
    fig = drawn[-1]
    order = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    colours = dict(zip(order, map(rgb, artist(fig, "leaves").get_facecolors()), strict=True))
    assert colours["a3"] == rgb(GREY)
    assert len({colours[a] for a in names if a != "a3"}) == 7  # 7 singleton clusters
    assert set(rgb(c) for c in artist(fig, "links").get_colors()) == {rgb(GREY)}
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[-1] == "no cluster" and len(texts) == 8


def test_cluster_colours_are_distinct_and_never_grey():
    for k in (1, 4, 9, 10, 18, 19, 40, 500):
        colours = cluster_colours(k)
        assert len(colours) == len(set(colours)) == k
        assert all(len(set(rgb(c))) > 1 for c in colours)  # no grey (r == g == b)


@pytest.mark.parametrize("linkage, labels, message", [
    (np.zeros((2, 3)), ["a", "b", "c"], "linkage must have 4 columns"),
    (np.array([[0, 1, 0.5, 2]]), ["a", "b", "c"], "joins 2 leaves but 3 labels"),
    (np.array([[0, 1, np.nan, 2]]), ["a", "b"], "missing or infinite"),
    (np.array([[0, 3, 0.5, 2], [1, 2, 1.0, 3]]), list("abc"), "does not exist yet"),
    (np.array([[0, 1, 0.5, 2], [0, 2, 1.0, 3]]), list("abc"), "joined twice"),
    (np.array([[0, 1.5, 0.5, 2]]), ["a", "b"], "does not exist yet"),
])
def test_dendrogram_refuses_a_broken_linkage(linkage, labels, message):
    with pytest.raises(ValueError, match=message):
        plots.dendrogram_png(linkage, labels)


def test_dendrogram_clusters_must_match_the_assets():
    z = np.array([[0, 1, 0.5, 2]])
    with pytest.raises(ValueError, match="clusters: 3 values for 2 assets"):
        plots.dendrogram_png(z, ["a", "b"], [1, 1, 2])
    with pytest.raises(ValueError, match="clusters: an asset appears twice"):
        plots.dendrogram_png(z, ["a", "b"], pd.Series([1, 2], index=["a", "a"]))


# --------------------------------------------------------------------------- CV curve
def test_cv_curve_marks_the_chosen_lambda(cv_fit, drawn):
    plots.cv_curve_from_model(cv_fit)
    fig = drawn[-1]
    ax = fig.axes[0]
    best = artist(fig, "best_lambda")
    assert list(best.get_xdata()) == [cv_fit.best_lambda_] * 2
    assert (list(artist(fig, "best_point").get_xdata()), list(artist(fig, "best_point")
                                                             .get_ydata())) == (
        [cv_fit.best_lambda_], [cv_fit.best_score_])
    assert list(artist(fig, "lambda_max").get_xdata()) == [cv_fit.lambda_max_] * 2
    mean = artist(fig, "mean")
    order = np.argsort(cv_fit.lambdas_)
    np.testing.assert_array_equal(mean.get_xdata(), cv_fit.lambdas_[order])
    np.testing.assert_array_equal(mean.get_ydata(), cv_fit.mean_scores_.to_numpy()[order])
    for k in range(cv_fit.n_splits):
        np.testing.assert_array_equal(artist(fig, f"fold_{k}").get_ydata(),
                                      cv_fit.cv_scores_.iloc[order, k].to_numpy())
        assert artist(fig, f"fold_{k}").get_alpha() < 0.5  # faint
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "reg_lambda (log scale)"
    assert ax.get_ylabel() == "out-of-sample R\u00b2"
    lo, hi = ax.get_xlim()
    assert lo < cv_fit.lambdas_.min() and hi > cv_fit.lambda_max_


def test_cv_curve_from_arrays_takes_the_first_best_like_lassomodelcv(drawn):
    plots.cv_curve_png([1e-4, 1e-3, 1e-2, 1e-1], [0.2, 0.5, 0.5, np.nan])
    assert list(artist(drawn[-1], "best_lambda").get_xdata()) == [1e-3, 1e-3]
    assert list(artist(drawn[-1], "best_point").get_ydata()) == [0.5]
    # a zero lambda (no penalty) cannot sit on a log axis
    plots.cv_curve_png([0.0, 1e-3, 1e-2], [0.3, 0.2, 0.1], best_lambda=0.0)
    assert drawn[-1].axes[0].get_xscale() == "symlog"
    assert list(artist(drawn[-1], "best_lambda").get_xdata()) == [0.0, 0.0]
    for args, message in (
        (([1e-3, 1e-2], [np.nan, np.nan]), "mean_scores: no finite score"),
        (([1e-3, 1e-2], [0.1]), "mean_scores: 1 values for 2 lambdas"),
        (([], []), "lambdas: nothing to draw"),
        (([1e-3, np.inf], [0.1, 0.2]), "lambdas: every lambda must be a finite number"),
        (([1e-3, 1e-2], [0.1, 0.2], np.zeros((3, 2))), "fold_scores: shape"),
    ):
        with pytest.raises(ValueError, match=message):
            plots.cv_curve_png(*args)
    with pytest.raises(ValueError, match="LassoModelCV is not a fitted LassoModelCV"):
        plots.cv_curve_from_model(LassoModelCV())


# --------------------------------------------------------------------------- portfolio
def test_weights_are_the_invested_assets_largest_first_with_their_bounds(drawn):
    weights = pd.Series({"A": 0.1, "B": 0.0, "C": 0.5, "D": 1e-9, "E": 0.4, "F": np.nan,
                         "G": -0.05})
    upper = pd.Series({"A": 0.2, "B": 0.2, "C": 0.5, "D": 0.2, "E": np.inf, "F": 0.2, "G": 0.2})
    plots.weights_png(weights, lower=0.0, upper=upper)
    fig = drawn[-1]
    ax = fig.axes[0]
    assert shown_ticks(ax.yaxis) == ["C", "E", "A", "G"]
    assert [b.get_width() for b in bars(fig, "weights")] == [0.5, 0.4, 0.1, -0.05]
    marks = artist(fig, "upper_bound").get_offsets()
    assert marks.tolist() == [[0.5, 0.0], [0.2, 2.0], [0.2, 3.0]]  # E has no finite bound
    assert not fig.findobj(lambda a: a.get_gid() == "lower_bound")  # 0 is the zero line
    assert ax.get_title(loc="left") == "Portfolio weights: 4 of 7 assets invested"
    assert [t.get_text() for t in fig.findobj(lambda a: a.get_gid() == "value")] == [
        "50.0%", "40.0%", "10.0%", "-5.0%"]
    with pytest.raises(ValueError, match=r"weights: no asset is invested \(every weight is 0 "
                                         r"or missing\)"):
        plots.weights_png(pd.Series([0.0, np.nan, 1e-12]))
    with pytest.raises(ValueError, match="upper: 2 values for 3 assets"):
        plots.weights_png([0.2, 0.3, 0.5], upper=[0.5, 0.5])
    with pytest.raises(ValueError, match="lower: every bound must be a number"):
        plots.weights_png([0.2, 0.8], lower=["a", "b"])
    with pytest.raises(ValueError, match="weights: every value must be a number"):
        plots.weights_png(pd.Series(["a", "b"]))


def test_risk_split_bars_are_total_volatility_split_by_variance(demo, drawn):
    _, _, cov = demo
    vol = cov.volatility
    plots.risk_split_png(vol["systematic"], vol["residual"])
    fig = drawn[-1]
    sys_bars = [b.get_width() for b in bars(fig, "systematic")]
    res_bars = [b.get_width() for b in bars(fig, "residual")]
    total = np.sqrt(np.diag(cov.covariance.to_numpy()))  # independent of the volatility table
    systematic_var = np.diag(cov.systematic_covariance.to_numpy())
    np.testing.assert_allclose(np.add(sys_bars, res_bars), total, rtol=1e-12)
    np.testing.assert_allclose(np.array(sys_bars) / total, systematic_var / total**2, rtol=1e-9)
    assert [b.get_x() for b in bars(fig, "residual")] == sys_bars  # stacked
    assert shown_ticks(fig.axes[0].yaxis) == list(cov.assets)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["systematic (factors)",
                                                                 "residual (specific)"]
    with pytest.raises(ValueError, match="residual: a volatility cannot be negative"):
        plots.risk_split_png(pd.Series({"a": 0.1}), pd.Series({"a": -0.1}))
    with pytest.raises(ValueError, match="must name the same assets"):
        plots.risk_split_png(pd.Series({"a": 0.1}), pd.Series({"b": 0.1}))


def test_risk_attribution_bars_add_up_to_the_portfolio_volatility(demo, drawn):
    _, _, cov = demo
    weights = pd.Series(1 / len(cov.assets), index=cov.assets)
    factor_part, specific, vol = contributions(cov, weights)
    per_asset = pd.Series(weights.to_numpy() ** 2 * cov.residual_variance.to_numpy() / vol,
                          index=cov.assets)
    plots.risk_attribution_png(factor_part, per_asset)  # per-asset specific parts are summed
    fig = drawn[-1]
    widths = [b.get_width() for b in bars(fig, "contributions")]
    np.testing.assert_allclose(widths[:-2], factor_part.to_numpy(), rtol=1e-12)
    assert widths[-2] == pytest.approx(specific, rel=1e-12)
    assert widths[-1] == pytest.approx(vol, rel=1e-12)  # Euler: the parts sum to the whole
    assert shown_ticks(fig.axes[0].yaxis) == [*cov.factors, "specific", "total"]
    assert fig.axes[0].get_title(loc="left") == f"Risk attribution: portfolio volatility " \
                                                f"{vol * 100:.1f}%"
    with pytest.raises(ValueError, match="specific_contribution: must be a number"):
        plots.risk_attribution_png(factor_part, "x")


# --------------------------------------------------------------------------- odd input
def _odd_inputs():
    rng = np.random.default_rng(4)
    cases = []
    for label, n in (("one asset", 1), ("500 assets", 500)):
        names = [LONG] + [f"a{i}$" for i in range(1, n)]
        coef = pd.DataFrame(rng.normal(size=(n, 3)), index=names, columns=["f", "$g", "h"])
        coef.iloc[0, 0] = np.nan
        s = pd.Series(rng.uniform(0, 0.2, n), index=names)
        r = s.copy()
        r.iloc[0] = np.nan
        w = pd.Series(rng.dirichlet(np.ones(n)), index=names)
        if n == 1:  # 500 assets: test_heatmap_of_500_assets_thins_labels_...
            cases.append((f"heatmap, {label}", lambda coef=coef: plots.coefficient_heatmap(coef)))
        cases += [
            (f"weights, {label}", lambda w=w: plots.weights_png(w, upper=0.5)),
            (f"risk split, {label}", lambda s=s, r=r: plots.risk_split_png(s, r)),
            (f"attribution, {label}",
             lambda s=s: plots.risk_attribution_png(s.rename(index=str), np.nan)),
        ]
        if n > 1:
            found = cluster_from_correlation(
                response_correlation(pd.DataFrame(rng.normal(size=(60, n)), columns=names)),
                n_clusters=40)
            cases.append((f"dendrogram, {label}", lambda f=found, names=names: plots.dendrogram_png(
                f.linkage, names, f.labels, cutoff=f.cutoff)))
        else:
            cases.append((f"dendrogram, {label}", lambda names=names: plots.dendrogram_png(
                np.empty((0, 4)), names, pd.Series([1], index=names))))
    cases += [
        ("heatmap, constant", lambda: plots.coefficient_heatmap(pd.DataFrame(np.ones((4, 2))))),
        ("weights, one constant", lambda: plots.weights_png(pd.Series([0.25] * 4))),
        ("risk split, zeros", lambda: plots.risk_split_png([0.0, 0.0], [0.0, 0.0])),
        ("attribution, zeros", lambda: plots.risk_attribution_png({"f": 0.0}, 0.0)),
        ("cv, constant", lambda: plots.cv_curve_png([1e-3, 1e-2], [0.5, 0.5], [[0.5], [0.5]])),
        ("cv, one lambda", lambda: plots.cv_curve_png([1e-3], [0.5], lambda_max=1.0)),
        ("cv, wild folds", lambda: plots.cv_curve_png(
            np.logspace(-6, -1, 40), np.linspace(0.5, -3, 40), rng.normal(size=(40, 8)) * 1e3)),
        ("heatmap, 2000 factors", lambda: plots.coefficient_heatmap(
            pd.DataFrame(rng.normal(size=(30, 2000))))),
    ]
    return cases


@pytest.mark.parametrize("case", _odd_inputs(), ids=lambda c: c[0])
def test_odd_input_still_gives_a_picture_within_budget(case, recwarn):
    png = case[1]()
    assert plots.png_size(png) == (png.width, png.height)
    assert 160 <= png.width <= 1200 and 160 <= png.height <= 1200
    assert len(png) < PNG_BUDGET
    assert not [w for w in recwarn if "matplotlib" in str(w.filename) or
                issubclass(w.category, RuntimeWarning)]


def test_labels_are_one_short_line_and_dollars_stay_text():
    assert plots.short_label("a\x00b\tc\nd") == "ab c d"
    assert plots.short_label(3.5) == "3.5"
    png = plots.weights_png(pd.Series({"$unbalanced": 0.5, "two $ signs $": 0.5}))
    assert plots.png_size(png) == (png.width, png.height)


def test_drawing_the_dendrogram_does_not_load_scipys_clustering():
    """The fast fit avoids scipy.cluster (~25 MB, see test_imports); so does its picture."""
    script = (
        "import sys, numpy as np\n"
        "from xl_factorlasso.workbook._plots import dendrogram_png\n"
        "png = dendrogram_png(np.array([[0, 1, 0.2, 2], [2, 3, 0.9, 3]]), list('abc'), [1, 1, 2])\n"
        "print(png.width, 'scipy.cluster' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout.split() == ["560", "False"]
