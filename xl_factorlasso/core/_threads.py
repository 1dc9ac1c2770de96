"""One BLAS thread while a model fits.

The fits here are sequences of small dense products (M x M Grams, T x M panels). On the
2-core machine of docs/performance.md with one other busy process (load average about 1),
OpenBLAS's second thread made fits at (T, M, N) = (2000, 30, 500) 3x slower (LASSO, FCGL) and
up to 10x slower (UniLasso) than one thread: its workers spin while they wait for a core. An
Excel user's machine is rarely idle, so every fit runs with one BLAS thread, restored on
return. ``XL_FACTORLASSO_BLAS_THREADS`` (a whole number >= 1, or ``default`` to leave BLAS
alone) changes that for the process. BLAS libraries loaded during a fit (a solver's own build,
imported on first use) are limited from the next fit on.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from functools import wraps

__all__ = ["blas_threads", "limit_blas_threads"]

ENV = "XL_FACTORLASSO_BLAS_THREADS"
_controller = None  # threadpoolctl's library scan (see _current_controller)
_modules_seen = 0


def _limit() -> int | None:
    value = os.environ.get(ENV, "1").strip().lower()
    if value == "default":
        return None
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: give a whole number >= 1 or 'default'") from None
    if limit < 1:
        raise ValueError(f"{ENV}={value!r}: give a whole number >= 1 or 'default'")
    return limit


def _current_controller():
    """threadpoolctl's view of the loaded BLAS libraries, scanned again only after an import
    (a library arrives with the module that loads it; a scan costs ~0.7 ms)."""
    global _controller, _modules_seen
    if _controller is None or len(sys.modules) != _modules_seen:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, which the fits use, first)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
        _modules_seen = len(sys.modules)
    return _controller


@contextmanager
def blas_threads():
    """Run the block with the BLAS thread limit of :data:`ENV` (default 1)."""
    limit = _limit()
    if limit is None:
        yield
        return
    try:
        controller = _current_controller()
    except ImportError:  # threadpoolctl is a dependency; a broken install only loses speed
        yield
        return
    if all(lib.num_threads == limit for lib in controller.lib_controllers
           if lib.user_api == "blas"):
        # already in force (an outer limit, OPENBLAS_NUM_THREADS=1, a nested fit): setting
        # and restoring it would change no library's threads, and cost ~35 us a fit
        # (threadpoolctl's info on every library, then a set and a restore of each)
        yield
        return
    with controller.limit(limits=limit, user_api="blas"):
        yield


def limit_blas_threads(method):
    """Decorate a ``fit`` so that it runs inside :func:`blas_threads`."""

    @wraps(method)
    def wrapper(*args, **kwargs):
        with blas_threads():
            return method(*args, **kwargs)

    return wrapper
