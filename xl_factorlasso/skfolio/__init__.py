"""skfolio integration (the optional ``[skfolio]`` extra; xl-factorlasso is not on PyPI)."""

try:
    import skfolio  # noqa: F401
except ImportError as err:  # the extra is optional: say how to get it
    raise ImportError(
        "xl_factorlasso.skfolio needs skfolio (the [skfolio] extra): pip install skfolio, "
        'or pip install ".[skfolio]" in a checkout of xl-factorlasso'
    ) from err

from ._loading_matrix import LassoLoadingMatrix

__all__ = ["LassoLoadingMatrix"]
