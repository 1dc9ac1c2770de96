"""Pictures of a fitted factor model: loadings heatmap, cluster dendrogram, CV curve."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._base import (
    AXIS_FONT,
    GREY,
    MIN_FONT,
    MISSING,
    Png,
    axes_size,
    cluster_colours,
    new_figure,
    picture_size,
    render,
    set_ticks,
    tick_text,
    title,
)

__all__ = [
    "coefficient_heatmap",
    "cv_curve_from_model",
    "cv_curve_png",
    "dendrogram_layout",
    "dendrogram_png",
    "distance_name",
]


# --------------------------------------------------------------------------- heatmap
def _diverging():
    """Blue - white - red with white exactly at the middle: a zero loading is white.

    An odd number of levels puts one level on 0.5 (a 256-level map has none there).
    """
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "loading", ["#2166ac", "#67a9cf", "#ffffff", "#ef8a62", "#b2182b"], N=255
    ).with_extremes(bad=MISSING)


def coefficient_heatmap(coef: pd.DataFrame, width_px: int | None = None,
                        height_px: int | None = None) -> Png:
    """Loadings as a diverging heatmap: assets down, factors across, zero white.

    Parameters
    ----------
    coef : pandas.DataFrame
        Loadings, assets (rows) x factors (columns). NaN cells are drawn light grey.
    width_px, height_px : int, optional
        Picture size (160..1600 pixels); by default it grows with the number of factors and
        assets (about 15 pixels per asset, up to 1200), and tick labels shrink, then thin out,
        to fit.

    Returns
    -------
    Png
        The picture with its true pixel size.
    """
    if not isinstance(coef, pd.DataFrame):
        raise ValueError(f"coef must be a pandas DataFrame, got {type(coef).__name__}")
    n, k = coef.shape
    if n == 0 or k == 0:
        raise ValueError(f"coef: nothing to draw ({n} assets x {k} factors)")
    values = np.asarray(coef.to_numpy(), dtype=float)
    finite = np.isfinite(values)
    bound = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    bound = bound if bound > 0 else 1.0
    width, height = picture_size(width_px, height_px, 230 + 48 * k, max(125 + 15 * n, 220))

    fig = new_figure(width, height)
    ax = fig.add_subplot()
    image = ax.imshow(np.where(finite, values, np.nan), cmap=_diverging(), vmin=-bound,
                      vmax=bound, aspect="auto", interpolation="nearest")
    set_ticks(ax.yaxis, list(coef.index), height - 125)
    set_ticks(ax.xaxis, list(coef.columns), width - 230, spread=1.6, rotation=45,
              ha="right", rotation_mode="anchor")
    ax.tick_params(length=2, pad=2)
    ax.set_xlabel("factor", fontsize=AXIS_FONT)
    ax.set_ylabel("asset", fontsize=AXIS_FONT)
    nonzero = int(np.count_nonzero(values[finite]))
    note = f"{nonzero} of {int(finite.sum())} non-zero"
    note += "" if finite.all() else "; grey: no value"
    title(ax, f"Factor loadings ({note})")
    bar = fig.colorbar(image, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label("loading", fontsize=AXIS_FONT)
    bar.ax.tick_params(labelsize=MIN_FONT + 1)
    ax_width, ax_height = axes_size(ax)  # again, on the axes as laid out
    set_ticks(ax.yaxis, list(coef.index), ax_height)
    set_ticks(ax.xaxis, list(coef.columns), ax_width, spread=1.6, rotation=45, ha="right",
              rotation_mode="anchor")
    return render(fig)


# --------------------------------------------------------------------------- dendrogram
def _check_linkage(linkage, n_labels: int) -> np.ndarray:
    z = np.asarray(linkage, dtype=float)
    if z.size == 0:
        z = z.reshape(0, 4)
    if z.ndim != 2 or z.shape[1] != 4:
        raise ValueError(f"linkage must have 4 columns (a SciPy linkage matrix), got shape "
                         f"{z.shape}")
    n = len(z) + 1
    if n != n_labels:
        raise ValueError(f"linkage joins {n} leaves but {n_labels} labels were given")
    if not np.isfinite(z).all():
        raise ValueError("linkage holds a missing or infinite value")
    children = z[:, :2]
    limit = n + np.arange(len(z))[:, None]  # row i may only join leaves and earlier rows
    if (children != np.round(children)).any() or (children < 0).any() or (children >= limit).any():
        raise ValueError("linkage: a row joins a cluster that does not exist yet")
    if len(np.unique(children)) != children.size:
        raise ValueError("linkage: a cluster is joined twice")
    return z


def dendrogram_layout(linkage, n: int) -> tuple[list[int], list[tuple[int, list, list]]]:
    """Leaf order and link coordinates of a dendrogram, leaves at distance 0.

    The order is SciPy's (``scipy.cluster.hierarchy.dendrogram`` without sorting: each row's
    first child before its second); drawing it needs neither SciPy's clustering module nor
    recursion (a 500-leaf chain is 500 levels deep).

    Returns
    -------
    order : list of int
        Leaf indices, first to last.
    links : list of (node, positions, distances)
        One 4-point polyline per row of ``linkage`` (node ``n + row``): from the first child's
        height up to the join's, across, and back to the second child's. Positions are leaf
        slots ``0 .. n-1`` (a join sits midway between its children).
    """
    z = _check_linkage(linkage, n)
    order: list[int] = []
    stack = [2 * n - 2] if n > 1 else [0]
    while stack:
        node = stack.pop()
        if node < n:
            order.append(node)
        else:
            a, b = int(z[node - n, 0]), int(z[node - n, 1])
            stack += [b, a]  # first child first
    position = np.zeros(2 * n - 1)
    height = np.zeros(2 * n - 1)
    position[order] = np.arange(n)
    links = []
    for row, (a, b, h, _) in enumerate(z):
        a, b = int(a), int(b)
        position[n + row] = (position[a] + position[b]) / 2
        height[n + row] = h
        links.append((n + row, [position[a], position[a], position[b], position[b]],
                      [height[a], h, h, height[b]]))
    return order, links


def _leaf_clusters(clusters, labels: list) -> list:
    """The cluster of each leaf (None when the model gives it none)."""
    if clusters is None:
        return [None] * len(labels)
    if isinstance(clusters, pd.Series):
        if clusters.index.has_duplicates:
            raise ValueError("clusters: an asset appears twice")
        found = clusters.reindex(pd.Index(labels, dtype=object))
        return [None if pd.isna(c) else c for c in found.tolist()]
    values = list(clusters)
    if len(values) != len(labels):
        raise ValueError(f"clusters: {len(values)} values for {len(labels)} assets")
    return [None if pd.isna(c) else c for c in values]


def _cluster_name(c) -> str:
    if isinstance(c, (float, np.floating)) and float(c).is_integer():
        c = int(c)
    return f"cluster {tick_text(c)}"


_MEASURE_NAMES = {"pearson": "correlation", "spearman": "rank correlation",
                  "gerber": "Gerber statistic"}


def distance_name(model=None) -> str:
    """The distance a model's linkage merges on, in words (``"1 - correlation"`` by default).

    Reads ``dependence_measure``, ``cluster_correlation_transform`` and ``distance_transform``
    of a :class:`~xl_factorlasso.core.linear_model.LassoModel` (missing ones: the defaults).
    """
    from ...core.cluster import (
        ClusterCorrelationTransform,
        DependenceMeasure,
        DistanceTransform,
    )
    from ...core.cluster._choices import parse_choice

    measure = parse_choice(DependenceMeasure, getattr(model, "dependence_measure", "pearson"),
                           "dependence_measure")
    rho = _MEASURE_NAMES[measure.value]
    transform = parse_choice(ClusterCorrelationTransform,
                             getattr(model, "cluster_correlation_transform", "none"),
                             "cluster_correlation_transform")
    if transform is ClusterCorrelationTransform.REMOVE_PC1:
        rho = f"{rho} without its first component"
    distance = parse_choice(DistanceTransform, getattr(model, "distance_transform",
                                                       "one_minus_rho"), "distance_transform")
    if distance is DistanceTransform.CHORD:
        return f"sqrt(2 (1 - {rho}))"
    if distance is DistanceTransform.ARCCOS:
        return f"arccos({rho})"
    return f"1 - {rho}"


def dendrogram_png(linkage, labels, clusters=None, *, cutoff: float | None = None,
                   width_px: int | None = None, height_px: int | None = None,
                   distance: str = "1 - correlation") -> Png:
    """The clustering of the assets as a dendrogram coloured by the model's clusters.

    Leaves run down the left edge (labelled, in the dendrogram's order) and joins grow to the
    right with their distance. A leaf, and every link whose leaves are all in one cluster, has
    that cluster's colour; links joining different clusters are grey. A legend names the
    clusters ``cluster 1 .. K`` as FL_CLUSTERS does.

    Parameters
    ----------
    linkage : array-like of shape (n - 1, 4)
        SciPy linkage matrix (``LassoModel.linkage_``).
    labels : sequence of length n
        Asset names in the order of the linkage's leaves 0..n-1.
    clusters : pandas.Series or sequence, optional
        Cluster label per asset (``LassoModel.clusters_``): a Series is matched to ``labels``
        by name (an asset it lacks has no cluster and is drawn grey), a sequence by position.
    cutoff : float, optional
        Height at which the tree was cut (``LassoModel.cutoff_``), drawn as a dashed line.
    width_px, height_px : int, optional
        Picture size; by default about 15 pixels per asset in height.
    distance : str, default "1 - correlation"
        What the linkage merged on, for the axis label (:func:`distance_name` of the model).

    Returns
    -------
    Png
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    labels = list(labels)
    n = len(labels)
    if n == 0:
        raise ValueError("dendrogram: no assets")
    z = _check_linkage(linkage, n)
    order, links = dendrogram_layout(z, n)
    leaf_cluster = _leaf_clusters(clusters, labels)
    names = sorted({c for c in leaf_cluster if c is not None}, key=_sort_key)
    colour_of = dict(zip(names, cluster_colours(len(names)), strict=True))

    # A node's cluster: that of its leaves when they all share one, else none (grey).
    node_cluster = list(leaf_cluster) + [None] * (n - 1)
    same = [c is not None for c in leaf_cluster] + [False] * (n - 1)
    for row, (a, b, _, _) in enumerate(z):
        a, b, node = int(a), int(b), n + row
        same[node] = same[a] and same[b] and node_cluster[a] == node_cluster[b]
        node_cluster[node] = node_cluster[a] if same[node] else None
    link_colours = [colour_of[node_cluster[node]] if same[node] else GREY
                    for node, _, _ in links]
    leaf_colours = [GREY if leaf_cluster[i] is None else colour_of[leaf_cluster[i]]
                    for i in order]

    width, height = picture_size(width_px, height_px, 560, max(100 + 15 * n, 200))
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    segments = [np.column_stack([d, p]) for _, p, d in links]
    ax.add_collection(LineCollection(segments, colors=link_colours, linewidths=1.2,
                                     gid="links"))
    pitch = (height - 100) / n
    ax.scatter(np.zeros(n), np.arange(n), c=leaf_colours, s=min(max(pitch, 2), 9) ** 2 * 0.5,
               marker="s", zorder=3, linewidths=0, gid="leaves")
    top = float(z[:, 2].max()) if len(z) else 1.0
    top = top if top > 0 else 1.0
    room = 0.0  # above the first leaf, for the cut's label: about 16 pixels
    if cutoff is not None and np.isfinite(cutoff) and cutoff > 0:
        room = 16 / pitch
        ax.axvline(float(cutoff), color="black", lw=0.8, ls="--", gid="cutoff")
        ax.text(float(cutoff), -0.5 - room / 2, " cut", fontsize=MIN_FONT + 1, va="center")
        top = max(top, float(cutoff))
    ax.set_xlim(-0.02 * top, 1.05 * top)
    ax.set_ylim(n - 0.5, -0.5 - room)  # first leaf on top
    set_ticks(ax.yaxis, [labels[i] for i in order], height - 100)
    ax.tick_params(axis="y", length=0, pad=3)
    ax.tick_params(axis="x", labelsize=MIN_FONT + 1)
    ax.spines[["top", "right", "left"]].set_visible(False)
    # the linkage merges on the distance; a ward or average height is not itself one
    ax.set_xlabel(f"merge height (linkage of {distance})", fontsize=AXIS_FONT)
    title(ax, f"Asset clusters: {len(names)} cluster{'s' if len(names) != 1 else ''}")
    if names:
        handles = [Line2D([], [], color=colour_of[c], lw=3) for c in names[:12]]
        texts = [_cluster_name(c) for c in names[:12]]
        if any(c is None for c in leaf_cluster):
            handles.append(Line2D([], [], color=GREY, lw=3))
            texts.append("no cluster")
        if len(names) > 12:
            handles.append(Line2D([], [], color="white"))
            texts.append(f"... {len(names) - 12} more")
        fig.legend(handles, texts, loc="outside right upper", fontsize=MIN_FONT + 1,
                   frameon=False, handlelength=1.2)
    _, step = set_ticks(ax.yaxis, [labels[i] for i in order], axes_size(ax)[1])  # as laid out
    for tick, i in zip(ax.yaxis.get_ticklabels(), order[::step], strict=True):
        tick.set_color("black" if leaf_cluster[i] is None else colour_of[leaf_cluster[i]])
    return render(fig)


def _sort_key(c):
    """Clusters 1, 2, 10 in numeric order; labels of mixed types by text."""
    if isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool):
        return (0, float(c), "")
    return (1, 0.0, str(c))


# --------------------------------------------------------------------------- CV curve
def cv_curve_png(lambdas, mean_scores, fold_scores=None, *, best_lambda: float | None = None,
                 lambda_max: float | None = None, width_px: int | None = None,
                 height_px: int | None = None) -> Png:
    """Mean out-of-sample R² against ``reg_lambda`` (log axis), the chosen lambda marked.

    Parameters
    ----------
    lambdas : array-like of shape (L,)
        The grid.
    mean_scores : array-like of shape (L,)
        Mean test score per lambda (NaN where every fold failed).
    fold_scores : array-like of shape (L, F), optional
        Test score per lambda and fold, drawn faint.
    best_lambda : float, optional
        The chosen lambda; by default the first lambda of highest mean score, as
        ``LassoModelCV`` chooses.
    lambda_max : float, optional
        The smallest lambda that sets every loading to the prior, drawn as a dotted line.
    width_px, height_px : int, optional

    Returns
    -------
    Png
    """
    lam = np.asarray(lambdas, dtype=float).reshape(-1)
    mean = np.asarray(mean_scores, dtype=float).reshape(-1)
    if lam.size == 0:
        raise ValueError("lambdas: nothing to draw (an empty grid)")
    if mean.shape != lam.shape:
        raise ValueError(f"mean_scores: {mean.size} values for {lam.size} lambdas")
    if not np.isfinite(lam).all():
        raise ValueError("lambdas: every lambda must be a finite number")
    folds = None
    if fold_scores is not None:
        folds = np.asarray(fold_scores, dtype=float)
        folds = folds.reshape(-1, 1) if folds.ndim == 1 else folds
        if folds.ndim != 2 or folds.shape[0] != lam.size:
            raise ValueError(f"fold_scores: shape {folds.shape} does not match {lam.size} "
                             "lambdas")
    ok = np.isfinite(mean)
    if not ok.any():
        raise ValueError("mean_scores: no finite score to draw")
    if best_lambda is None:
        best_lambda = float(lam[int(np.nanargmax(mean))])
    best_lambda = float(best_lambda)
    where = np.flatnonzero(lam == best_lambda)
    best_score = float(mean[where[0]]) if where.size else np.nan

    width, height = picture_size(width_px, height_px, 540, 340)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    sort = np.argsort(lam, kind="stable")
    xs = [lam]
    if lambda_max is not None and np.isfinite(lambda_max):
        xs.append(np.array([float(lambda_max)]))
    xs.append(np.array([best_lambda]))
    every = np.concatenate(xs)
    lo, hi = float(every.min()), float(every.max())
    if lo > 0:
        ax.set_xscale("log")
        scale = "log scale"
        ax.set_xlim(lo / 1.4, hi * 1.4)
    else:  # a zero lambda (no penalty) has no place on a log axis
        positive = every[every > 0]
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1e-12)
        scale = "symmetric log scale"
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_xlim(lo - pad, hi + pad)
    if folds is not None:
        for j in range(folds.shape[1]):
            ax.plot(lam[sort], folds[sort, j], color="#7f9fbf", lw=0.8, alpha=0.45,
                    label="fold" if j == 0 else None, gid=f"fold_{j}")
    ax.plot(lam[sort], mean[sort], color="#1f4e8c", lw=1.8, marker="o", ms=3,
            label="mean", gid="mean")
    ax.axvline(best_lambda, color="#c0392b", lw=1.2, ls="--", gid="best_lambda")
    if np.isfinite(best_score):
        ax.plot([best_lambda], [best_score], marker="o", ms=7, color="#c0392b", zorder=4,
                gid="best_point")
    text = f"best \u03bb = {best_lambda:.3g}" + (
        f"\nR\u00b2 = {best_score:.3f}" if np.isfinite(best_score) else "")
    # The note reads right of the line, or left of it in the right third of the axis (it
    # would run off the picture); lambda_max's note then moves to the bottom, out of its way.
    right_third = (ax.transData + ax.transAxes.inverted()).transform((best_lambda, 0))[0] > 0.65
    ax.annotate(text, xy=(best_lambda, 1), xycoords=("data", "axes fraction"),
                xytext=(-4 if right_third else 4, -4), textcoords="offset points", va="top",
                ha="right" if right_third else "left", fontsize=AXIS_FONT, color="#c0392b")
    if lambda_max is not None and np.isfinite(lambda_max):
        ax.axvline(float(lambda_max), color="#555555", lw=1.0, ls=":", gid="lambda_max")
        ax.annotate(f"\u03bb_max\n{float(lambda_max):.3g}",
                    xy=(float(lambda_max), 0 if right_third else 1),
                    xycoords=("data", "axes fraction"), xytext=(-4, 4 if right_third else -4),
                    textcoords="offset points", ha="right",
                    va="bottom" if right_third else "top", fontsize=MIN_FONT + 1,
                    color="#555555")
    ax.set_ylim(*_score_limits(mean, folds))
    ax.set_xlabel(f"reg_lambda ({scale})", fontsize=AXIS_FONT)
    ax.set_ylabel("out-of-sample R\u00b2", fontsize=AXIS_FONT)
    ax.tick_params(labelsize=MIN_FONT + 1)
    ax.grid(True, which="major", color="#e5e5e5", lw=0.6)
    n_folds = folds.shape[1] if folds is not None else None
    title(ax, "Cross-validation: mean R\u00b2" + (f" over {n_folds} folds" if n_folds else ""))
    ax.legend(loc="best", fontsize=MIN_FONT + 1, frameon=False)
    return render(fig)


def _score_limits(mean: np.ndarray, folds: np.ndarray | None) -> tuple[float, float]:
    """A y range showing the whole mean curve and most fold scores (one wild fold is cut)."""
    m = mean[np.isfinite(mean)]
    lo, hi = float(m.min()), float(m.max())
    if folds is not None and np.isfinite(folds).any():
        f = folds[np.isfinite(folds)]
        lo = min(lo, float(np.percentile(f, 10)))
        hi = max(hi, float(np.percentile(f, 90)))
    pad = (hi - lo) * 0.12 if hi > lo else max(abs(hi) * 0.05, 0.05)
    return lo - pad, hi + pad * 1.8  # room above for the best-lambda note


def cv_curve_from_model(cv, *, width_px: int | None = None,
                        height_px: int | None = None) -> Png:
    """:func:`cv_curve_png` of a fitted ``LassoModelCV``: its grid, scores and lambdas."""
    if not hasattr(cv, "mean_scores_"):
        raise ValueError(f"{type(cv).__name__} is not a fitted LassoModelCV")
    return cv_curve_png(
        cv.lambdas_, np.asarray(cv.mean_scores_, dtype=float),
        np.asarray(cv.cv_scores_, dtype=float), best_lambda=cv.best_lambda_,
        lambda_max=cv.lambda_max_, width_px=width_px, height_px=height_px,
    )
