"""xlwings-server's ``custom_functions``: exactly the FLASSO_* worksheet functions.

xlwings-server registers every ``@func`` visible at package level; the names are imported
explicitly (never ``import *``) so the list is reviewable here and checked by tests_server
against ``xl_factorlasso.server.FUNCTIONS`` and ``xl_factorlasso.udfs.__all__``.
"""

from xl_factorlasso.udfs import (
    FLASSO_BEST_LAMBDA,
    FLASSO_BETA_HISTORY,
    FLASSO_CLUSTERS,
    FLASSO_COV,
    FLASSO_CV,
    FLASSO_FIT,
    FLASSO_INTERCEPT,
    FLASSO_MAXDIV,
    FLASSO_NOTES,
    FLASSO_PREDICT,
    FLASSO_R2,
    FLASSO_RESID_VOL,
    FLASSO_RETURNS,
    FLASSO_RISK,
    FLASSO_RISK_ASSETS,
    FLASSO_VERSION,
)

__all__ = [
    "FLASSO_BEST_LAMBDA",
    "FLASSO_BETA_HISTORY",
    "FLASSO_CLUSTERS",
    "FLASSO_COV",
    "FLASSO_CV",
    "FLASSO_FIT",
    "FLASSO_INTERCEPT",
    "FLASSO_MAXDIV",
    "FLASSO_NOTES",
    "FLASSO_PREDICT",
    "FLASSO_R2",
    "FLASSO_RESID_VOL",
    "FLASSO_RETURNS",
    "FLASSO_RISK",
    "FLASSO_RISK_ASSETS",
    "FLASSO_VERSION",
]
