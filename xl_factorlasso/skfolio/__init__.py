"""skfolio integration: the sparse factor model as a skfolio loading matrix
(:class:`LassoLoadingMatrix`) and the optimiser as a skfolio estimator
(:class:`MaximumDiversification`).

An optional extra (``skfolio``, on the wheel or ``pip install ".[skfolio]"``): importing
skfolio costs about 1.5 s and 190 MB, which the workbook and server paths never pay
(``import xl_factorlasso`` does not import this package). See ``docs/skfolio.md``.
"""

try:
    import skfolio as _skfolio  # noqa: F401  (the dependency check)
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests
    # The package is not on PyPI: name the extra on the wheel or the checkout, never by name.
    raise ImportError(
        'xl_factorlasso.skfolio needs skfolio, an optional dependency: pip install '
        '"skfolio>=1.12", or install with the extra: pip install '
        '"xl_factorlasso-<version>-py3-none-any.whl[skfolio]" (or ".[skfolio]" in a checkout)'
    ) from _err

from ._exceptions import ConvexOptimizationError, InfeasibleProblemError, SolverFailedError
from ._loading_matrix import LassoLoadingMatrix
from ._maximum_diversification import MaximumDiversification

__all__ = [
    "ConvexOptimizationError",
    "InfeasibleProblemError",
    "LassoLoadingMatrix",
    "MaximumDiversification",
    "SolverFailedError",
]
