"""Blocks of rebalancing dates on a Dask cluster: ``RollingLassoModel(scheduler=...)``.

The same blocks as the joblib path (``_blocks``), each fitted by ``_fit_block`` in a Dask
worker. Every block's rows are scattered once, before any task runs, so a task's only inline
arguments are its dates; the scheduler then runs each task where its rows already are. Dask is
imported inside the functions: the core imports (and fits serially) without it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["CONNECT_TIMEOUT", "INSTALL_HINT", "check_scheduler", "connected", "fit_blocks"]

#: Seconds to wait for a scheduler given by address before giving up (not a hang).
CONNECT_TIMEOUT = 10.0
# xl-factorlasso is not on PyPI (tests/test_install_text.py): name what is.
INSTALL_HINT = ('pip install "dask[distributed]" (or the dask extra: pip install ".[dask]" '
                'in a checkout)')
# The address schemes of distributed's comms (a user's typo such as "localhost:8786" or
# "http://..." — the dashboard — is refused before any connection attempt).
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")


def _distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError(f"scheduler: Dask is not installed; {INSTALL_HINT}") from err
    return distributed


def check_scheduler(scheduler) -> None:
    """Refuse anything but None, a ``dask.distributed.Client`` or a Dask address string.

    Raises
    ------
    ValueError
        Neither a Client nor an address such as ``"tcp://host:8786"``.
    ImportError
        A scheduler was given but Dask is not installed.
    """
    if scheduler is None:
        return
    if isinstance(scheduler, str):
        if not _ADDRESS.match(scheduler):
            raise ValueError(f"scheduler must be a dask.distributed.Client or a Dask scheduler "
                             f"address such as 'tcp://host:8786' (tcp://, tls://, inproc://, "
                             f"ucx://, ws://, wss://), got {scheduler!r}")
        _distributed()
        return
    if not isinstance(scheduler, _distributed().Client):
        raise ValueError(f"scheduler must be a dask.distributed.Client or a Dask scheduler "
                         f"address such as 'tcp://host:8786', got {type(scheduler).__name__}")


@contextmanager
def connected(scheduler, timeout: float | None = None) -> Iterator:
    """The Client to run on: the user's own (left open), or one connected to an address for
    the ``with`` block only (always closed afterwards).

    Raises
    ------
    ConnectionError
        No scheduler answered at the address within ``timeout`` seconds (default
        :data:`CONNECT_TIMEOUT`), or the user's Client is closed.
    """
    if not isinstance(scheduler, str):
        if scheduler.status not in ("running", "connecting"):
            raise ConnectionError(f"scheduler: the dask.distributed.Client is {scheduler.status}; "
                                  "give an open Client or the scheduler's address")
        yield scheduler
        return
    distributed = _distributed()
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"scheduler {scheduler!r}: no Dask scheduler answered within "
                              f"{timeout:g} s ({type(err).__name__}: {err})") from err
    try:
        yield client
    finally:
        client.close()


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_DEFAULT = 128 * 1024
_heap_lock = threading.Lock()
_heap_users = 0


def _glibc():
    """The C library when it is glibc (Linux), else None."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextmanager
def _heap_for_arrays() -> Iterator[None]:
    """Let malloc reuse its heap for a block's arrays, then restore the worker's settings.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory
    back to the system). That also fixes glibc's mmap threshold at 128 KiB, so every array of
    a fit above that size is a fresh mmap, zeroed page by page: measured on issue 11's panel
    (48 dates, N=500, M=30) 75 times the page faults and 1.7-1.8x the CPU time of the fits
    with the heap reused. For the duration of the blocks the thresholds are raised; when the
    last block of the process ends they are set back and the memory is returned
    (``malloc_trim``). Nothing happens outside glibc or without that variable.
    """
    global _heap_users
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    libc = _glibc() if trim is not None else None
    try:
        restore = (int(trim), int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _MMAP_DEFAULT)))
    except (TypeError, ValueError):
        libc = None
    if libc is None:
        yield
        return
    with _heap_lock:  # blocks may run in several threads of one worker
        if _heap_users == 0:
            libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
            libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        _heap_users += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users -= 1
            if _heap_users == 0:
                libc.mallopt(_M_TRIM_THRESHOLD, restore[0])
                libc.mallopt(_M_MMAP_THRESHOLD, restore[1])
                libc.malloc_trim(0)


def _fit_scattered(base, xy, offset, jobs, *args):
    """``_fit_block`` on a block's scattered ``(x, y)`` rows (runs in a worker)."""
    from ._estimator import _fit_block

    with _heap_for_arrays():
        return _fit_block(base, xy[0], xy[1], offset, jobs, *args)


def fit_blocks(client, n_jobs: int | None, base, x, y, jobs, args: tuple,
               collect: Callable) -> list:
    """Every job's fit, in date order, from blocks of dates run on ``client``'s cluster.

    Parameters
    ----------
    client : dask.distributed.Client
    n_jobs : int or None
        Number of blocks; None or -1: the cluster's worker threads (at most one per date).
    base, x, y, jobs, args
        As for ``_fit_block`` (``args``: warm_start, annualization_factor, stop_on_error).
    collect : callable
        ``collect(arrivals, n_blocks)`` -> fits in date order, where ``arrivals`` yields
        ``(block number, fits)`` as blocks complete (``_in_date_order`` with the progress and
        the stop-on-error rule bound).

    Returns
    -------
    list of _DateFit
    """
    from ._estimator import _blocks

    distributed = _distributed()
    n_threads = sum(client.nthreads().values())
    if n_threads == 0:
        raise ConnectionError(f"scheduler {client.scheduler.address}: the Dask cluster has no "
                              "workers")
    n_blocks = n_threads if n_jobs in (None, -1) else n_jobs
    blocks = _blocks(jobs, min(n_blocks, len(jobs)))
    spans = [(min(job.start for job in block), block[-1].stop) for block in blocks]
    run = uuid.uuid4().hex  # unique task keys: a rerun recomputes, never reuses
    # Ship each block's rows once (one scatter, spread over the workers) and the model once.
    data = client.scatter([(x.iloc[lo:hi + 1], y.iloc[lo:hi + 1]) for lo, hi in spans],
                          broadcast=False, hash=False)
    model = client.scatter(base, broadcast=False, hash=False)
    futures = [client.submit(_fit_scattered, model, data[k], spans[k][0], block, *args,
                             key=f"xl-factorlasso-rolling-{run}-{k}", pure=False)
               for k, block in enumerate(blocks)]
    number = {future.key: k for k, future in enumerate(futures)}
    try:
        # result() raises a worker's exception with its own type and message
        arrivals = ((number[f.key], f.result())
                    for f in distributed.as_completed(futures, loop=client.loop))
        return collect(arrivals, len(blocks))
    finally:
        # Free the cluster: unfinished blocks stop, results and scattered rows are released.
        client.cancel([*futures, *data, model])
