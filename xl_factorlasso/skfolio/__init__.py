"""skfolio integration (the optional extra ``xl-factorlasso[skfolio]``)."""

try:
    import skfolio  # noqa: F401
except ImportError as err:  # the extra is optional: say how to get it
    raise ImportError(
        'xl_factorlasso.skfolio needs skfolio: pip install "xl-factorlasso[skfolio]"'
    ) from err

from ._loading_matrix import LassoLoadingMatrix

__all__ = ["LassoLoadingMatrix"]
