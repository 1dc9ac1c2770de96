"""A bounded, thread-safe LRU cache keyed on the *content* of worksheet-function arguments.

Excel calls a worksheet function once per formula cell, so ``=FLASSO_FIT(R, F)`` and
``=FLASSO_R2(R, F)`` on the same ranges would fit the same model twice. The functions in
:mod:`xl_factorlasso.udfs` instead ask this cache for the fit, keyed on a digest of the cell
values they were given (not on the cells' addresses), so every formula with the same inputs
shares one computation, whatever cell or sheet it sits in.

* The key is ``blake2b(pickle.dumps(parts))``: two argument lists with the same values give
  the same key; anything that cannot be pickled is simply not cached.
* At most ``maxsize`` results are kept (least recently used evicted first).
* One lock guards the table; a computation runs *outside* it. Concurrent requests for the same
  key wait for the first one instead of computing it again (the classic add-in can call
  functions from several threads; xlwings Server may serve requests concurrently).
* Errors the user must fix (deterministic for the same content) are cached like results, so a
  bad input is reported at once by every cell; unexpected exceptions are not cached.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["CacheInfo", "ContentCache", "content_key"]


class CacheInfo(NamedTuple):
    """Counters of a :class:`ContentCache` (like ``functools.lru_cache``'s)."""

    hits: int
    misses: int
    maxsize: int
    currsize: int
    computations: int


def content_key(*parts: Any) -> bytes | None:
    """A 16-byte digest of ``parts`` (picklable values), or ``None`` if they cannot be pickled."""
    try:
        data = pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exotic value (e.g. a COM object): do not cache
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


class ContentCache:
    """Bounded LRU map ``key -> result or cached error``, safe to share between threads.

    Parameters
    ----------
    maxsize : int, default 64
    cache_errors : tuple of exception types
        Exceptions raised by ``compute`` that are stored and re-raised on later hits.
    """

    def __init__(self, maxsize: int = 64, cache_errors: tuple[type[BaseException], ...] = ()):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        self._maxsize = int(maxsize)
        self._cache_errors = tuple(cache_errors)
        self._lock = threading.Lock()
        self._data: OrderedDict[bytes, tuple[bool, Any]] = OrderedDict()
        self._inflight: dict[bytes, threading.Event] = {}
        self._hits = self._misses = self._computations = 0

    # ------------------------------------------------------------------ use
    def get_or_compute(self, key: bytes | None, compute: Callable[[], Any]) -> Any:
        """The cached result for ``key``, or ``compute()`` stored under it.

        ``key=None`` computes without caching. A cached error is raised again.
        """
        if key is None:
            with self._lock:
                self._misses += 1
                self._computations += 1
            return compute()
        while True:
            with self._lock:
                entry = self._data.get(key)
                if entry is not None:
                    self._data.move_to_end(key)
                    self._hits += 1
                    return _unpack(entry)
                event = self._inflight.get(key)
                if event is None:  # nobody computes it: this thread does
                    event = self._inflight[key] = threading.Event()
                    self._misses += 1
                    self._computations += 1
                    break
            event.wait()  # another thread computes the same key; then look again
        try:
            entry = (True, compute())
        except self._cache_errors as err:
            entry = (False, err)
        except BaseException:
            with self._lock:
                self._inflight.pop(key).set()
            raise
        with self._lock:
            self._data[key] = entry
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)
            self._inflight.pop(key).set()
        return _unpack(entry)

    # ------------------------------------------------------------------ admin
    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, self._maxsize, len(self._data),
                             self._computations)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self._hits = self._misses = self._computations = 0

    def resize(self, maxsize: int) -> None:
        """Change the bound, evicting the least recently used entries if needed."""
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        with self._lock:
            self._maxsize = int(maxsize)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


def _unpack(entry: tuple[bool, Any]) -> Any:
    ok, value = entry
    if ok:
        return value
    raise value.with_traceback(None)
