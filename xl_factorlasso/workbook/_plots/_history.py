"""Pictures of the walk-forward backtest: strategies' growth and drawdown, and one factor's
loadings through time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._base import (
    AXIS_FONT,
    MIN_FONT,
    Png,
    axes_size,
    cluster_colours,
    new_figure,
    percent_axis,
    picture_size,
    render,
    set_ticks,
    title,
)
from ._model import _diverging

__all__ = ["backtest_png", "loading_history_png"]

#: Up to this many assets the loadings are lines (one per asset, with a legend); beyond, a
#: heatmap (dates across, assets down), where every asset stays readable.
LINES_UP_TO = 12


def _dated_frame(frame, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
        raise ValueError(f"{what} must be a DataFrame indexed by dates")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{what}: nothing to draw ({frame.shape[0]} dates x "
                         f"{frame.shape[1]} columns)")
    return frame.astype(float)


def backtest_png(cumulative: pd.DataFrame, drawdown: pd.DataFrame,
                 width_px: int | None = None, height_px: int | None = None) -> Png:
    """Cumulative return (top) and drawdown (bottom) of each strategy, net of costs.

    Parameters
    ----------
    cumulative, drawdown : pandas.DataFrame
        Dates x strategies (fractions: 0.1 = 10%), the same columns; the first column (the
        factor strategy) is drawn thicker.
    width_px, height_px : int, optional
        Picture size (160..1600 pixels); 720 x 480 by default.
    """
    cumulative = _dated_frame(cumulative, "cumulative")
    drawdown = _dated_frame(drawdown, "drawdown")
    width, height = picture_size(width_px, height_px, 720, 480)
    fig = new_figure(width, height)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    colours = cluster_colours(cumulative.shape[1])
    for j, name in enumerate(cumulative.columns):
        lw = 2.0 if j == 0 else 1.2
        top.plot(cumulative.index, cumulative[name].to_numpy(), color=colours[j], lw=lw,
                 label=str(name))
        if name in drawdown.columns:
            bottom.plot(drawdown.index, drawdown[name].to_numpy(), color=colours[j], lw=lw)
    for ax in (top, bottom):
        ax.axhline(0, color="black", lw=0.7)
        ax.grid(True, color="#e5e5e5", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=MIN_FONT + 1)
        percent_axis(ax.yaxis)
    title(top, "Cumulative return, net of costs")
    title(bottom, "Drawdown")
    top.legend(fontsize=MIN_FONT + 1, frameon=False, loc="upper left")
    return render(fig)


def loading_history_png(betas: pd.DataFrame, factor: str, width_px: int | None = None,
                        height_px: int | None = None) -> Png:
    """One factor's loadings at each estimation date: a line per asset (up to
    :data:`LINES_UP_TO` assets), else a heatmap of dates across and assets down (zero white).

    Parameters
    ----------
    betas : pandas.DataFrame
        Dates x assets, the loadings on ``factor``.
    factor : str
        Its name, for the title.
    width_px, height_px : int, optional
        Picture size (160..1600 pixels); by default it grows with the assets for a heatmap.
    """
    betas = _dated_frame(betas, "betas")
    n_dates, n_assets = betas.shape
    values = betas.to_numpy()
    if n_assets <= LINES_UP_TO:
        width, height = picture_size(width_px, height_px, 720, 400)
        fig = new_figure(width, height)
        ax = fig.add_subplot()
        colours = cluster_colours(n_assets)
        for j, asset in enumerate(betas.columns):
            ax.plot(betas.index, values[:, j], color=colours[j], lw=1.3, label=str(asset),
                    marker="o" if n_dates <= 3 else None, ms=3)
        ax.axhline(0, color="black", lw=0.7)
        ax.grid(True, color="#e5e5e5", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=MIN_FONT + 1)
        ax.set_ylabel("loading", fontsize=AXIS_FONT)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper",
                   fontsize=MIN_FONT + 1, frameon=False)
        title(ax, f"Loadings on {factor} through time")
        return render(fig)
    finite = np.isfinite(values)
    bound = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    bound = bound if bound > 0 else 1.0
    width, height = picture_size(width_px, height_px, 720, max(125 + 15 * n_assets, 260))
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    image = ax.imshow(np.where(finite, values, np.nan).T, cmap=_diverging(), vmin=-bound,
                      vmax=bound, aspect="auto", interpolation="nearest")
    labels = [d.date().isoformat() for d in betas.index]
    set_ticks(ax.yaxis, list(betas.columns), height - 125)
    set_ticks(ax.xaxis, labels, width - 230, spread=4.0, rotation=45, ha="right",
              rotation_mode="anchor")
    ax.tick_params(length=2, pad=2)
    ax.set_ylabel("asset", fontsize=AXIS_FONT)
    title(ax, f"Loadings on {factor} through time")
    bar = fig.colorbar(image, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label("loading", fontsize=AXIS_FONT)
    bar.ax.tick_params(labelsize=MIN_FONT + 1)
    ax_width, ax_height = axes_size(ax)
    set_ticks(ax.yaxis, list(betas.columns), ax_height)
    set_ticks(ax.xaxis, labels, ax_width, spread=4.0, rotation=45, ha="right",
              rotation_mode="anchor")
    return render(fig)
