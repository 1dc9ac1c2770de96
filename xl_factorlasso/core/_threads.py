"""One BLAS thread while a model fits.

The fits here are sequences of small dense products (M x M Grams, T x M panels). On the
2-core machine of docs/performance.md, with other programs busy, OpenBLAS's worker threads
made a fit 3-5x slower than one thread (they spin while waiting for a core); with a core to
spare the second thread gained little at these sizes. So every fit runs with one BLAS thread,
restored on return. ``XL_FACTORLASSO_BLAS_THREADS`` (a whole number >= 1, or ``default`` to
leave BLAS alone) changes that for the process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import wraps

__all__ = ["blas_threads", "limit_blas_threads"]

ENV = "XL_FACTORLASSO_BLAS_THREADS"
_controller = None  # threadpoolctl's library scan, done once (a fresh scan costs ~0.7 ms)


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


@contextmanager
def blas_threads():
    """Run the block with the BLAS thread limit of :data:`ENV` (default 1)."""
    global _controller
    limit = _limit()
    if limit is None:
        yield
        return
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    except ImportError:  # threadpoolctl is a dependency; a broken install only loses speed
        yield
        return
    with _controller.limit(limits=limit, user_api="blas"):
        yield


def limit_blas_threads(method):
    """Decorate a ``fit`` so that it runs inside :func:`blas_threads`."""

    @wraps(method)
    def wrapper(*args, **kwargs):
        with blas_threads():
            return method(*args, **kwargs)

    return wrapper
