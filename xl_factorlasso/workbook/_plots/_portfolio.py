"""Pictures of a portfolio and its risk: weights, volatility split per asset, risk attribution."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._base import (
    AXIS_FONT,
    MIN_FONT,
    Png,
    as_series,
    axes_size,
    new_figure,
    percent,
    percent_axis,
    picture_size,
    render,
    set_ticks,
    share_text,
    title,
)

__all__ = ["risk_attribution_png", "risk_split_png", "weights_png"]

#: Bars get their value written at the end up to this many rows (beyond, the labels would
#: be smaller than the ticks' and add nothing).
VALUE_LABELS_UP_TO = 40
LONG, SHORT, SYSTEMATIC, RESIDUAL, TOTAL = "#2f6aa3", "#c0392b", "#2f6aa3", "#e0a458", "#444444"


def _bar_height(n: int) -> float:
    """18 pixels a row, and room for the title, the axis and the legend below it."""
    return max(130 + 18 * n, 210)


def _bar_axes(fig, labels, height: int):
    """Axes with one labelled row per item, first item on top."""
    ax = fig.add_subplot()
    n = len(labels)
    font, _ = set_ticks(ax.yaxis, labels, height - 130)
    ax.set_ylim(n - 0.5, -0.5)
    ax.tick_params(axis="y", length=0, pad=3)
    ax.tick_params(axis="x", labelsize=MIN_FONT + 1)
    ax.axvline(0, color="black", lw=0.8)
    ax.grid(True, axis="x", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    percent_axis(ax.xaxis)
    return ax, font


def _value_labels(ax, at: np.ndarray, texts: list[str], font: float) -> None:
    """``texts`` just right of ``at`` on each row (a negative bar's text starts at zero, clear
    of the asset labels on the left)."""
    if len(texts) > VALUE_LABELS_UP_TO:
        return
    lo, hi = ax.get_xlim()
    span = hi - lo
    ax.set_xlim(lo, hi + 0.22 * span)  # room for the texts
    for i, (x, text) in enumerate(zip(at, texts, strict=True)):
        x = max(x, 0.0) if np.isfinite(x) else 0.0
        ax.annotate(text, xy=(x, i), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=max(font - 0.5, MIN_FONT), color="#333333", gid="value")


def _finish(fig, ax, labels) -> None:
    """Asset labels fitted to the axes as laid out, and the legend below the picture."""
    handles, texts = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, texts, loc="outside lower center", ncols=len(handles),
                   fontsize=MIN_FONT + 1, frameon=False)
    set_ticks(ax.yaxis, labels, axes_size(ax)[1])


def _per_asset(bound, index: pd.Index, what: str) -> np.ndarray:
    """A bound (number, Series, dict or array) as one float per asset; NaN where none."""
    if bound is None:
        return np.full(len(index), np.nan)
    if np.ndim(bound) == 0 and not isinstance(bound, dict):
        try:
            return np.full(len(index), float(bound))
        except (TypeError, ValueError):
            raise ValueError(f"{what}: must be a number, got {bound!r}") from None
    if isinstance(bound, (pd.Series, dict)):
        values = as_series(bound, what)
        if values.index.has_duplicates:
            raise ValueError(f"{what}: an asset appears twice")
        return values.reindex(index).to_numpy(dtype=float)
    try:
        values = np.asarray(bound, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: every bound must be a number") from None
    if values.size != len(index):
        raise ValueError(f"{what}: {values.size} values for {len(index)} assets")
    return values


def weights_png(weights, lower=None, upper=None, *, invested_tol: float = 1e-6,
                width_px: int | None = None, height_px: int | None = None) -> Png:
    """The invested assets' weights as horizontal bars, largest on top, bounds marked.

    Parameters
    ----------
    weights : pandas.Series, dict or array-like
        Weight per asset (an array is labelled 1..n).
    lower, upper : float, pandas.Series, dict or array-like, optional
        Bounds (``min_weights``, ``max_weights``): a number for every asset, or one per asset
        (by name for a Series or dict, by position for an array). Finite non-zero bounds of
        the drawn assets are marked with a black tick (0 is the zero line).
    invested_tol : float, default 1e-6
        A weight of at most this size is not invested (as FL_PORTFOLIO_STATS' ``n_invested``
        counts).
    width_px, height_px : int, optional

    Returns
    -------
    Png
    """
    w = as_series(weights, "weights")
    lo = _per_asset(lower, w.index, "lower")
    hi = _per_asset(upper, w.index, "upper")
    values = w.to_numpy()
    invested = np.isfinite(values) & (np.abs(values) > invested_tol)
    if not invested.any():
        raise ValueError("weights: no asset is invested (every weight is 0 or missing)")
    order = np.flatnonzero(invested)[np.argsort(-values[invested], kind="stable")]
    shown = values[order]
    labels = list(w.index[order])

    width, height = picture_size(width_px, height_px, 470, _bar_height(len(order)))
    fig = new_figure(width, height)
    ax, font = _bar_axes(fig, labels, height)
    rows = np.arange(len(order))
    ax.barh(rows, shown, height=0.7, color=np.where(shown >= 0, LONG, SHORT), gid="weights")
    text_at = shown.copy()
    for bound, name in ((lo[order], "lower bound"), (hi[order], "upper bound")):
        has = np.isfinite(bound) & (bound != 0)  # a bound of 0 is the zero line itself
        if has.any():
            ax.scatter(bound[has], rows[has], marker="|", s=150, color="black", lw=1.6,
                       zorder=3, gid=name.replace(" ", "_"), label=name)
            text_at[has] = np.maximum(text_at[has], bound[has])  # the text clears the mark
    _value_labels(ax, text_at, [percent(v) for v in shown], font)
    ax.set_xlabel("weight", fontsize=AXIS_FONT)
    title(ax, f"Portfolio weights: {len(order)} of {len(values)} assets invested")
    _finish(fig, ax, labels)
    return render(fig)


def risk_split_png(systematic, residual, *, width_px: int | None = None,
                   height_px: int | None = None) -> Png:
    """Each asset's volatility as one bar, split into its systematic and residual parts.

    Volatilities do not add (``total² = systematic² + residual²``): each bar is the total
    volatility, divided in proportion to the two parts' shares of the variance. Assets are
    drawn in the order given, first on top (the order of the FL_RESID_VOL table).

    Parameters
    ----------
    systematic, residual : pandas.Series, dict or array-like
        Systematic (factor) and residual (specific) volatility per asset, e.g. the columns of
        ``FactorCovariance.volatility``; matched by name. NaN draws an empty row ("n/a").
    width_px, height_px : int, optional

    Returns
    -------
    Png
    """
    s = as_series(systematic, "systematic")
    r = as_series(residual, "residual")
    if s.index.has_duplicates or r.index.has_duplicates or set(s.index) != set(r.index):
        raise ValueError("systematic and residual must name the same assets, each once")
    r = r.reindex(s.index)
    sv, rv = s.to_numpy(), r.to_numpy()
    for name, v in (("systematic", sv), ("residual", rv)):
        if (v[np.isfinite(v)] < 0).any():
            raise ValueError(f"{name}: a volatility cannot be negative")
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.sqrt(sv**2 + rv**2)
        sys_share = np.where(total > 0, sv**2 / total**2, 0.0)
    sys_part = np.where(np.isfinite(total), total * sys_share, 0.0)
    res_part = np.where(np.isfinite(total), total - sys_part, 0.0)

    labels = list(s.index)
    width, height = picture_size(width_px, height_px, 540, _bar_height(len(labels)))
    fig = new_figure(width, height)
    ax, font = _bar_axes(fig, labels, height)
    rows = np.arange(len(labels))
    ax.barh(rows, sys_part, height=0.7, color=SYSTEMATIC, label="systematic (factors)",
            gid="systematic")
    ax.barh(rows, res_part, left=sys_part, height=0.7, color=RESIDUAL,
            label="residual (specific)", gid="residual")
    texts = [f"{percent(t)} ({share_text(sys_share[i])} syst.)" if np.isfinite(t) else "n/a"
             for i, t in enumerate(total)]
    _value_labels(ax, total, texts, font)
    ax.set_xlabel("volatility (bar: total, split by share of variance)", fontsize=AXIS_FONT)
    title(ax, "Volatility per asset: systematic vs residual")
    _finish(fig, ax, labels)
    return render(fig)


def risk_attribution_png(factor_contributions, specific_contribution, *,
                         width_px: int | None = None, height_px: int | None = None) -> Png:
    """The portfolio's volatility as the sum of its factors' and its specific contribution.

    Parameters
    ----------
    factor_contributions : pandas.Series, dict or array-like
        Contribution to volatility per factor (Euler: they and the specific part sum to the
        portfolio volatility); drawn in the order given. A negative one (a hedge) goes left.
    specific_contribution : float or pandas.Series
        The specific (residual) part: a number, or per-asset contributions, which are summed.
    width_px, height_px : int, optional

    Returns
    -------
    Png
    """
    f = as_series(factor_contributions, "factor_contributions")
    if np.ndim(specific_contribution) == 0:
        try:
            specific = float(specific_contribution)
        except (TypeError, ValueError):
            raise ValueError("specific_contribution: must be a number") from None
    else:
        spec = as_series(specific_contribution, "specific_contribution").to_numpy()
        specific = float(spec.sum()) if np.isfinite(spec).all() else np.nan
    values = np.append(f.to_numpy(), specific)
    total = float(values.sum()) if np.isfinite(values).all() else np.nan
    values = np.append(values, total)
    labels = [*f.index, "specific", "total"]

    width, height = picture_size(width_px, height_px, 480, _bar_height(len(labels)))
    fig = new_figure(width, height)
    ax, font = _bar_axes(fig, labels, height)
    colours = [LONG if v >= 0 else SHORT for v in values[:-2]] + [RESIDUAL, TOTAL]
    drawn = np.where(np.isfinite(values), values, 0.0)
    ax.barh(np.arange(len(labels)), drawn, height=0.7, color=colours, gid="contributions")
    ax.axhline(len(labels) - 1.5, color="#bbbbbb", lw=0.8)  # the total is not a contribution
    shares = values / total if np.isfinite(total) and total != 0 else np.full(len(values), np.nan)
    texts = [percent(v) + (f" ({share_text(shares[i])})" if np.isfinite(shares[i]) else "")
             for i, v in enumerate(values[:-1])] + [percent(total)]
    _value_labels(ax, drawn, texts, font)
    ax.set_xlabel("contribution to volatility (share of total)", fontsize=AXIS_FONT)
    title(ax, f"Risk attribution: portfolio volatility {percent(total)}")
    _finish(fig, ax, labels)
    return render(fig)
