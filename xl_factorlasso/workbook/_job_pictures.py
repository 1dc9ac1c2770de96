"""Which pictures a job places, where, and at what size (the drawing is in :mod:`._plots`).

A picture sits beside (to the right of) or below an output table, at the PNG's own pixel size so
that nothing is stretched. A picture that cannot be drawn is a warning: the numbers are written
anyway.
"""

from __future__ import annotations

import math

from ._results import JobResult, Picture

__all__ = ["PICTURES", "backtest_pictures", "portfolio_pictures", "refit_pictures"]

#: Picture name -> the output it is placed with (``clear_outputs`` removes it from that sheet).
PICTURES = {
    "FL_HEATMAP": "FL_COEF",
    "FL_DENDROGRAM": "FL_COEF",
    "FL_CV_CURVE": "FL_CV",
    "FL_RISK_SPLIT": "FL_RESID_VOL",
    "FL_WEIGHTS_CHART": "FL_WEIGHTS",
    "FL_RISK_CHART": "FL_RISK",
    "FL_BACKTEST_CHART": "FL_BACKTEST",
    "FL_BETA_HISTORY_CHART": "FL_BETA_HISTORY",
}
ROW_PX = 20  # Excel's default row height (15 pt)


def _draw(result: JobResult, name: str, draw, *, row_offset: int = 0, below: bool = False):
    try:
        png = draw()
    except Exception as err:  # noqa: BLE001 - matplotlib can fail in many ways; results stand
        result.warnings.append(f"picture {name} not drawn ({type(err).__name__}: {err})")
        return None
    result.pictures.append(Picture(name, bytes(png), PICTURES[name], row_offset, png.width,
                                   png.height, below))
    return png


def refit_pictures(result: JobResult, model, cvm, vol, assets: list[str]) -> None:
    """Heatmap of the loadings with the dendrogram under it (cluster models), the CV curve
    beside FL_CV, the systematic/residual split beside FL_RESID_VOL."""
    from ._plots import coefficient_heatmap, cv_curve_from_model, dendrogram_png, risk_split_png
    from ._plots._model import distance_name

    heat = _draw(result, "FL_HEATMAP", lambda: coefficient_heatmap(model.coef_))
    if model.linkage_ is not None and len(model.linkage_):
        below = math.ceil(heat.height / ROW_PX) + 1 if heat is not None else 0
        _draw(result, "FL_DENDROGRAM",
              lambda: dendrogram_png(model.linkage_, assets, model.clusters_,
                                     cutoff=getattr(model, "cutoff_", None),
                                     distance=distance_name(model)),
              row_offset=below)
    if cvm is not None:
        _draw(result, "FL_CV_CURVE", lambda: cv_curve_from_model(cvm))
    if vol is not None:
        _draw(result, "FL_RISK_SPLIT",
              lambda: risk_split_png(vol["systematic"], vol["residual"]))


def portfolio_pictures(result: JobResult, weights, lower, upper, attribution) -> None:
    """The weights (bars, bounds marked) under FL_WEIGHTS and, with a factor model, the risk
    attribution under FL_RISK."""
    from ._plots import risk_attribution_png, weights_png

    _draw(result, "FL_WEIGHTS_CHART", lambda: weights_png(weights, lower, upper), below=True)
    if attribution is not None and attribution.factors is not None:
        _draw(result, "FL_RISK_CHART",
              lambda: risk_attribution_png(attribution.factors["contribution"],
                                           attribution.assets["specific"]),
              below=True)


def backtest_pictures(result: JobResult, betas, factor: str, backtest) -> None:
    """The chosen factor's loadings through time beside FL_BETA_HISTORY and, with a
    backtest (``(cumulative, drawdown)`` of the strategies' net returns), their growth and
    drawdown beside FL_BACKTEST."""
    from ._plots import backtest_png, loading_history_png

    _draw(result, "FL_BETA_HISTORY_CHART", lambda: loading_history_png(betas, factor))
    if backtest is not None:
        _draw(result, "FL_BACKTEST_CHART", lambda: backtest_png(*backtest))
