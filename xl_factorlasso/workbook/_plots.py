"""Pictures a refit places beside its outputs (matplotlib, rendered off-screen to PNG)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

__all__ = ["coefficient_heatmap", "dendrogram_png", "short_label"]

#: Characters of a label kept in a picture (the cells keep the whole label): a 32,767-character
#: asset name would otherwise make matplotlib lay out a gigantic text and run out of memory.
LABEL_CHARS = 24


def short_label(label, limit: int = LABEL_CHARS) -> str:
    """``label`` as text of at most ``limit`` characters, on one line (ellipsis when cut)."""
    text = " ".join(str(label).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _figure(width_px: int, height_px: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    dpi = 100
    return Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def coefficient_heatmap(coef: pd.DataFrame, width_px: int = 480, height_px: int = 360) -> bytes:
    """Loadings as a diverging heatmap (zeros white), assets down, factors across."""
    fig = _figure(width_px, height_px)
    ax = fig.add_subplot()
    values = coef.to_numpy(dtype=float)
    bound = float(np.nanmax(np.abs(values))) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(
        range(coef.shape[1]), [short_label(c) for c in coef.columns], rotation=45, ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(coef.shape[0]), [short_label(i) for i in coef.index], fontsize=6)
    ax.set_title("Factor loadings", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def dendrogram_png(linkage: np.ndarray, labels, width_px: int = 480, height_px: int = 300) -> bytes:
    """The response clustering dendrogram."""
    from scipy.cluster.hierarchy import dendrogram

    fig = _figure(width_px, height_px)
    ax = fig.add_subplot()
    dendrogram(
        linkage, labels=[short_label(a) for a in labels], ax=ax, leaf_font_size=6,
        color_threshold=None,
    )
    ax.set_title("Asset clusters (1 - correlation)", fontsize=9)
    return _png(fig)
