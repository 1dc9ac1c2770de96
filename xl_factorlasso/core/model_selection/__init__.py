"""Model selection: time-series cross-validation of the penalty."""

from ._lasso_cv import LassoModelCV, default_lambda_grid, expanding_window_splits

__all__ = ["LassoModelCV", "default_lambda_grid", "expanding_window_splits"]
