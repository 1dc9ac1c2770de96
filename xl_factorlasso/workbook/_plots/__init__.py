"""Pictures placed beside a workbook's outputs (matplotlib, rendered off-screen to PNG).

Every picture function takes plain pandas / numpy inputs and returns a :class:`Png`: the PNG's
bytes with its true ``width`` and ``height`` in pixels. Pictures are rendered at 96 dpi, the
resolution at which Excel shows a picture's pixels 1:1, so placing one at ``png.width`` x
``png.height`` neither stretches it nor changes its text size (a 9-point label is as large as
9-point text in the cells). Sizes grow with the content (about 15-18 pixels per asset row)
within 160..1200 pixels (a caller may ask for 160..1600 with ``width_px``/``height_px``);
labels are shortened to 24 characters and thinned when there are more than fit; a PNG stays
under 200 KB. A picture that cannot be drawn raises an ordinary exception (``ValueError``
for input it cannot draw).

=============================  =====================================================
function                       picture
=============================  =====================================================
:func:`coefficient_heatmap`    loadings, assets x factors, zero white
:func:`dendrogram_png`         asset clustering, coloured by the model's clusters
:func:`cv_curve_png`           CV score against lambda (also :func:`cv_curve_from_model`)
:func:`weights_png`            invested weights as bars, bounds marked
:func:`risk_split_png`         volatility per asset: systematic vs residual
:func:`risk_attribution_png`   contributions to portfolio volatility per factor + specific
:func:`backtest_png`           strategies' cumulative return and drawdown through time
:func:`loading_history_png`    one factor's loadings through time (lines or a heatmap)
=============================  =====================================================
"""

from ._base import LABEL_CHARS, Png, png_size, short_label
from ._history import backtest_png, loading_history_png
from ._model import (
    coefficient_heatmap,
    cv_curve_from_model,
    cv_curve_png,
    dendrogram_layout,
    dendrogram_png,
)
from ._portfolio import risk_attribution_png, risk_split_png, weights_png

__all__ = [
    "LABEL_CHARS",
    "Png",
    "backtest_png",
    "coefficient_heatmap",
    "cv_curve_from_model",
    "cv_curve_png",
    "dendrogram_layout",
    "dendrogram_png",
    "loading_history_png",
    "png_size",
    "risk_attribution_png",
    "risk_split_png",
    "short_label",
    "weights_png",
]
