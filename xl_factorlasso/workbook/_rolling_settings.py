"""``FL_ROLLING_SETTINGS``: the walk-forward backtest's ``key | value`` settings, checked on
their cells.

The keys say when the factor model is re-estimated (``rebalance``, ``window``,
``min_history``), what a failed date gets (``on_failure``), what the factor strategy is compared
with (``benchmarks``, ``ewma_span``), what trading costs (``transaction_cost_bps``), which
factor's loadings are drawn (``history_factor``) and where the fits run (``scheduler``,
``n_jobs``). The model itself is ``FL_SETTINGS``'s and the portfolio's bounds
``FL_PORTFOLIO_SETTINGS``'; rules that need the data (``history_factor`` against the factors,
``min_history`` against the dates) are checked by the job (:mod:`._backtest`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ._settings import SettingCell, _choice, _is_off, _ranged, check_setting
from ._tables import Block, is_blank, parse_keyvalue, shown

__all__ = ["BENCHMARKS", "ON_FAILURE", "ROLLING_KEYS", "RollingSettings",
           "read_rolling_settings"]

#: The benchmark strategies the factor strategy can be compared with.
BENCHMARKS = ("sample", "ewma", "equal_weight")
#: The sheet's words for what a failed date gets -> the core's ``on_failure``.
ON_FAILURE = {"previous": "previous", "skip": "skip", "stop": "raise"}
_FREQUENCY_HINT = ("a pandas frequency such as W-FRI (weekly, Fridays), ME (month end), QE "
                   "(quarter end) or YE (year end)")
_LIST_SEPARATORS = re.compile(r"[;,]")
# host:port after a Dask protocol (the core also takes inproc://, which a sheet has no use for)
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):\d{1,5}$")


def _rebalance(v, key: str) -> str:
    """A pandas frequency of at least a day, written in capitals (``W-FRI``, ``ME``, ``QE``)."""
    offset = None
    written = v.strip() if isinstance(v, str) else ""
    # As written, then in capitals (me -> ME); a deprecated alias is refused, not guessed.
    for text in dict.fromkeys((written, written.upper())):
        if not text:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                offset = pd.tseries.frequencies.to_offset(text)
            break
        except (ValueError, Warning):
            offset = None
    if offset is None:
        raise ValueError(f"{key}: {shown(v)} is not a rebalancing frequency; write "
                         f"{_FREQUENCY_HINT}")
    if offset.n < 1:
        raise ValueError(f"{key}: {shown(v)} does not move forward in time; write "
                         f"{_FREQUENCY_HINT}")
    if isinstance(offset, pd.offsets.Tick) and pd.Timedelta(offset) < pd.Timedelta(days=1):
        raise ValueError(f"{key}: {shown(v)} is shorter than a day; write {_FREQUENCY_HINT}")
    return text


_rebalance.rule = "a pandas frequency"


_ROWS = _ranged(">= 2", lambda f: f >= 2, whole=True)


def _window(v, key: str):
    """``expanding`` or a whole number of rows >= 2."""
    if isinstance(v, str) and v.strip().lower() == "expanding":
        return "expanding"
    if isinstance(v, str) and not re.fullmatch(r"\s*[0-9.eE+-]+\s*", v):
        raise ValueError(f"{key}: {shown(v)} is neither expanding nor a number of rows")
    return _ROWS(v, key)


_window.rule = ">= 2"


def _benchmarks(v, key: str) -> tuple[str, ...]:
    """``none`` or benchmark names separated by ``,`` or ``;``."""
    if _is_off(v):
        return ()
    if not isinstance(v, str):
        raise ValueError(f"{key}: {shown(v)} is not a list of benchmarks ({', '.join(BENCHMARKS)}"
                         " or none)")
    names = [part.strip().lower() for part in _LIST_SEPARATORS.split(v)]
    if any(not name for name in names):
        raise ValueError(f"{key}: {v!r} has an empty name between separators")
    for name in names:
        if name not in BENCHMARKS:
            raise ValueError(f"{key}: {name!r} is not one of {', '.join(BENCHMARKS)} (or none)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{key}: {twice[0]!r} is named twice")
    return tuple(names)


def _factor(v, key: str) -> str:
    """A factor name (checked against FL_FACTORS by the job)."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{key}: {shown(v)} is not a factor name")
    return v.strip()


def _scheduler(v, key: str):
    """A Dask scheduler's address ``tcp://host:port`` (``none``: the fits run here)."""
    if _is_off(v):
        return None
    text = v.strip() if isinstance(v, str) else None
    if text is None or not _ADDRESS.match(text):
        raise ValueError(f"{key}: {shown(v)} is not a Dask scheduler address such as "
                         "tcp://10.0.0.5:8786 (or none)")
    return text


def _n_jobs(v, key: str):
    """A whole number >= 1, or -1 (one process per core)."""
    if _is_off(v):
        return None
    return _N_JOBS(v, key)


_N_JOBS = _ranged(">= 1 or -1", lambda f: f >= 1 or f == -1, whole=True, optional=True)
_n_jobs.rule = ">= 1 or -1"

#: The keys of ``FL_ROLLING_SETTINGS`` with their validators (the order of the documentation).
ROLLING_KEYS: dict[str, Callable] = {
    "rebalance": _rebalance,
    "window": _window,
    "min_history": _ranged(">= 2", lambda f: f >= 2, whole=True, optional=True),
    "on_failure": _choice(tuple(ON_FAILURE)),
    "benchmarks": _benchmarks,
    "ewma_span": _ranged(">= 2", lambda f: f >= 2, optional=True,
                         hint=" (a span below 2 puts nearly all the weight on the last row)"),
    "transaction_cost_bps": _ranged(">= 0", lambda f: 0 <= f < float("inf")),
    "history_factor": _factor,
    "scheduler": _scheduler,
    "n_jobs": _n_jobs,
}


@dataclass
class RollingSettings:
    """Parsed ``FL_ROLLING_SETTINGS``.

    Attributes
    ----------
    rolling : dict
        ``RollingLassoModel`` parameters: ``rebalance``, ``window``, ``min_history``,
        ``on_failure`` (core spelling: ``"raise"`` for the sheet's ``stop``).
    benchmarks : tuple of str
    ewma_span : float or None
    transaction_cost_bps : float or None
        None when not given (the portfolio settings' ``transaction_costs`` may then set it).
    history_factor : str or None
    scheduler : str or None
    n_jobs : int or None
    cells : dict
        Key -> :class:`~._settings.SettingCell` of every value given.
    block : Block or None
    """

    rolling: dict = field(default_factory=lambda: {"rebalance": "ME", "window": "expanding",
                                                   "min_history": None,
                                                   "on_failure": "previous"})
    benchmarks: tuple[str, ...] = BENCHMARKS
    ewma_span: float | None = None
    transaction_cost_bps: float | None = None
    history_factor: str | None = None
    scheduler: str | None = None
    n_jobs: int | None = None
    cells: dict = field(default_factory=dict)
    block: Block | None = None
    arguments: set = field(default_factory=set)

    def where(self, key: str) -> str:
        """The cell of ``key``'s value (``FL_ROLLING_SETTINGS!B4``), or the name when unset."""
        c = self.cells.get(key)
        if c is None:
            return f"{self.block.name if self.block is not None else 'FL_ROLLING_SETTINGS'} " \
                   f"({key} not set)"
        return f"{c.block.name}!{c.block.cell(c.i, c.j)}"

    def error(self, key: str, message: str):
        """A :class:`~._errors.WorkbookInputError` on ``key``'s cell (or on the block)."""
        from ._errors import WorkbookInputError

        if key in self.arguments:  # the job's argument overrode the sheet
            return WorkbookInputError(f"the {key} argument: {key} {message}")
        c = self.cells.get(key)
        if c is None:
            return WorkbookInputError(f"{key} {message}", name="FL_ROLLING_SETTINGS")
        return c.error(message)


def read_rolling_settings(block: Block | None) -> RollingSettings:
    """Parse ``FL_ROLLING_SETTINGS`` (a missing or empty block: every default).

    Each value is checked with its key's rule, and ``min_history`` against an integer
    ``window`` (a window of fewer rows than ``min_history`` could never be fitted), naming
    the cell.
    """
    out = RollingSettings(block=block)
    if block is None:
        return out
    values: dict = {}
    for key, (value, _cell, (i, j)) in parse_keyvalue(block).items():
        if key not in ROLLING_KEYS:
            known = ", ".join(ROLLING_KEYS)
            raise block.error(f"unknown setting {key!r}; known settings: {known}", i, 0)
        if is_blank(value):
            continue
        try:
            values[key] = check_setting(ROLLING_KEYS, key, value)
        except ValueError as err:
            raise block.error(str(err), i, j) from None
        out.cells[key] = SettingCell(block, i, j, key)
    window = values.get("window", "expanding")
    low = values.get("min_history")
    if low is not None and window != "expanding" and low > window:
        raise out.cells["min_history"].error(
            f"{low} is more than the window's {window} rows ({out.where('window')}): no date "
            "could be fitted; lower it or widen the window")
    for key in ("rebalance", "window", "min_history"):
        if key in values:
            out.rolling[key] = values[key]
    if "on_failure" in values:
        out.rolling["on_failure"] = ON_FAILURE[values["on_failure"]]
    if "benchmarks" in values:
        out.benchmarks = values["benchmarks"]
    out.ewma_span = values.get("ewma_span")
    out.transaction_cost_bps = values.get("transaction_cost_bps")
    out.history_factor = values.get("history_factor")
    out.scheduler = values.get("scheduler")
    out.n_jobs = values.get("n_jobs")
    return out
