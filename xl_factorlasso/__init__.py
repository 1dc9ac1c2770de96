"""xl-factorlasso: sparse factor models and maximum-diversification portfolios for Excel.

The numerical core lives in :mod:`xl_factorlasso.core`; its public names are re-exported here
so that ``from xl_factorlasso import LassoModel, LassoModelType`` works as with factorlasso.
"""

from . import core as _core

__version__ = "0.1.0"
__all__ = [*_core.__all__, "__version__"]


def __getattr__(name):
    # Forwarded rather than star-imported, so the core's lazily loaded names (the
    # optimiser, which imports CVXPY) stay lazy here too.
    if name in _core.__all__:
        value = getattr(_core, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
