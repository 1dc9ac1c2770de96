"""skfolio integration: this project's estimators as skfolio estimators.

An optional extra (``pip install "xl-factorlasso[skfolio]"``): importing skfolio costs about
1.5 s and 190 MB, which the workbook and server paths never pay (``import xl_factorlasso``
does not import this package). See ``docs/skfolio.md``.
"""

try:
    import skfolio as _skfolio  # noqa: F401  (the dependency check)
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'xl_factorlasso.skfolio needs skfolio, an optional dependency: '
        'pip install "xl-factorlasso[skfolio]"'
    ) from _err

from ._exceptions import ConvexOptimizationError, InfeasibleProblemError, SolverFailedError
from ._maximum_diversification import MaximumDiversification

__all__ = [
    "ConvexOptimizationError",
    "InfeasibleProblemError",
    "MaximumDiversification",
    "SolverFailedError",
]
