"""Data preparation: prices to returns."""

from ._returns import PricesError, prices_to_returns

__all__ = ["PricesError", "prices_to_returns"]
