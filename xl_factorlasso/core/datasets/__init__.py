"""Synthetic data with a known factor structure: benchmark panels and the shipped demo panel."""

from ._synthetic import FactorPanel, load_demo_panel, make_factor_panel, recovery_metrics

__all__ = ["FactorPanel", "load_demo_panel", "make_factor_panel", "recovery_metrics"]
