"""xl-factorlasso: sparse factor models and maximum-diversification portfolios for Excel.

The numerical core lives in :mod:`xl_factorlasso.core`; its public names are re-exported here
so that ``from xl_factorlasso import LassoModel, LassoModelType`` works as with factorlasso.
"""

from .core import *  # noqa: F401,F403
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__"]
