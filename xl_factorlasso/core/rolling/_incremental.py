"""A rolling window's sufficient statistics carried from date to date.

Every date of a rolling fit needs the statistics of its window (``X'WX`` per response mask,
``X'WY``, ``Y'WY`` diagonals, weighted sums and counts; see
:class:`~xl_factorlasso.core.linear_model._preparation.SufficientStats`). From one date to the
next a window gains rows at its end, loses rows at its start (fixed windows), and an
EWMA-weighted window's weights all shrink by ``lambda`` per new row. So the sums are carried
instead of recomputed: rows are summed once per chunk of ``CHUNK`` rows (aligned on absolute
positions), and a window's sums are the decayed sum of its whole chunks (kept up to date as
chunks complete) plus the few rows before the first and after the last whole chunk. Rows leave
a fixed window by chunks dropping out of the sum — nothing is subtracted, so there is no drift
to reset, and a window's sums are the same bits whatever dates were fitted before it (a
parallel block's first date equals the serial one).

What is summed (:class:`_Sums`), over rows ``t`` of the window with weights ``w_t =
lambda^(last - t)`` (1 without a span) and validity ``v_ti``: ``sum w``, ``sum w x``,
``sum w x x'`` (all rows), and per response ``sum w v``, ``sum v``, ``sum w v x``,
``sum w v x y``, ``sum w v y``, ``sum w v y^2`` — plus ``sum w y y'`` (N x N) when the HCGL/FCGL
clustering reads the Pearson correlation of the responses.

How a date's statistics follow from the sums (:class:`Window`):

* ``span=None``: the rows are the raw data; demeaning by the window's column means is applied
  algebraically (``X'Y - n xbar ybar'`` and alike);
* a span without demeaning: the raw data, EWMA-weighted;
* a span with demeaning and an expanding window: the causal EWMA mean of a row does not depend
  on later rows and every window starts at the same row, so the demeaned rows are computed
  once for the block and summed.

The snapshot's factor covariance, the economic intercept's weighted means, the observation
counts and (Pearson, no span, no gaps) the responses' correlation for the clustering come from
the same sums. A Gram of a response mask other than "every row" (a response with gaps in the
window) is summed directly over that mask's rows (M^2 per row, small next to ``X'WY``).

Not carried — the date is prepared from scratch instead, never approximated
(:attr:`BlockStatistics.last_reason` says why): UNILASSO and derived signs (they read the
prepared panel row by row), a window holding a missing factor value (the demeaning imputes it
per window), a span with demeaning on a fixed window (the causal EWMA mean restarts at each
window's first row), a column the demeaning would turn into round-off (constant in the
window), a demeaning whose correction cancels more than ``1 - 1/CANCELLATION`` of a sum of
squares, sums that are not finite (the preparation reports the overflow), and a window
holding data that do not coerce (the date then reports its own error). Everything else of a
fit (signs, prior, OLS prior, expert bounds, clustering linkage, solve) is computed per date as
before, from the window's statistics.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..cluster import ewm_lambda, ewm_mean
from ..cluster._choices import DependenceMeasure
from ..cluster._hierarchical import correlation_from_gram
from ..linear_model import LassoModel, LassoModelType
from ..linear_model._preparation import (
    ROUNDOFF,
    SufficientStats,
    _mask_patterns,
    coerce_panel,
    zero_exact,
)

__all__ = ["BlockStatistics", "Window", "CHUNK", "CANCELLATION"]

#: Rows per cached chunk of sums (aligned on absolute row positions).
CHUNK = 16
#: Largest ratio of a raw sum of squares to its demeaned value: beyond it the correction
#: ``sum x^2 - n xbar^2`` cancels too much (round-off ~1e-16 times this stays below 1e-10).
CANCELLATION = 1e5


_FIELDS = ("w_sum", "a", "A", "n", "s", "c", "u_sum", "q", "uu")


class _Sums:
    """Weighted sums over the rows ``[lo, hi)`` of ``z`` (T, M) and ``u`` (T, N; 0 where not
    valid) with validity ``v`` (T, N), weights ``lam ** (hi - 1 - t)``.

    The rows are cut into chunks of ``CHUNK`` rows aligned on absolute positions (``offset`` is
    the absolute position of row 0). A window's sums are ``head + lam^k R + tail``: the rows
    before its first whole chunk, the whole chunks (``R``, summed in chunk order, each chunk's
    sums computed once and reused by every later date), the rows after the last one. Nothing is
    ever subtracted, so nothing drifts, and the sums of a window are the same bits whatever
    dates came before it (serial, or a parallel block starting at that date). Attributes after
    :meth:`move_to`: ``w_sum`` (sum w), ``a`` (sum w x), ``A`` (sum w x x'), ``n`` (sum w v),
    ``count`` (sum v), ``s`` (sum w v x), ``c`` (sum w v y x), ``u_sum`` (sum w v y), ``q``
    (sum w v y^2), ``uu`` (sum w y y', with ``cross``).
    """

    def __init__(self, z, u, v, lam: float, cross: bool, offset: int = 0):
        self.z, self.u, self.v = z, u, v
        self.vf = v.astype(float)
        self.count_cum = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(self.vf, axis=0)])
        self.lam, self.cross, self.offset = lam, cross, offset
        self.lo = self.hi = 0
        self._chunks: dict[int, dict] = {}
        self._run = None  # (first chunk, number of chunks, their sums R)
        self.chunks_summed = 0  # chunks whose rows were summed (tests: each once)

    def _partial(self, lo: int, hi: int, ref: int) -> dict:
        """Sums of the rows ``[lo, hi)`` with weights ``lam ** (ref - 1 - t)``."""
        z, u, vf = self.z[lo:hi], self.u[lo:hi], self.vf[lo:hi]
        w = self.lam ** np.arange(ref - 1 - lo, ref - 1 - hi, -1, dtype=float)
        if self.lam == 1.0:  # equal weights (no span): w == 1 exactly, the same numbers
            zw, wv, uw = z, vf, u
        else:
            zw, wv, uw = z * w[:, None], vf * w[:, None], u * w[:, None] if self.cross else None
        wvu = wv * u
        return {"w_sum": w.sum(), "a": zw.sum(axis=0), "A": zw.T @ z, "n": wv.sum(axis=0),
                "s": wv.T @ z, "c": wvu.T @ z, "u_sum": wvu.sum(axis=0),
                "q": np.einsum("tn,tn->n", wvu, u),
                "uu": uw.T @ u if self.cross else None}

    def _chunk(self, k: int) -> dict:
        """Sums of absolute chunk ``k``, weights relative to its end (computed once)."""
        if k not in self._chunks:
            lo = k * CHUNK - self.offset
            self._chunks[k] = self._partial(lo, lo + CHUNK, lo + CHUNK)
            self.chunks_summed += 1
        return self._chunks[k]

    @staticmethod
    def _combine(parts: list[tuple[float, dict]]) -> dict:
        """``sum_i scale_i * part_i``, in the order given."""
        out = {}
        for name in _FIELDS:
            total = None
            for scale, part in parts:
                value = part[name]
                if value is None:
                    continue
                term = value if scale == 1.0 else value * scale
                total = term if total is None else total + term
            out[name] = total
        return out

    def move_to(self, lo: int, hi: int) -> None:
        """Set the sums to those of the rows ``[lo, hi)`` (windows only move forward)."""
        first = -(-(lo + self.offset) // CHUNK)  # first whole chunk at or after lo
        last = (hi + self.offset) // CHUNK  # chunks [first, last) are whole in the window
        for k in [k for k in self._chunks if k < first]:
            del self._chunks[k]  # behind every later window
        parts = []
        if last <= first:  # no whole chunk: the rows themselves
            parts.append((1.0, self._partial(lo, hi, hi)))
        else:
            head_end = first * CHUNK - self.offset
            tail_start = last * CHUNK - self.offset
            run = self._run
            if run is None or run[0] != first or run[1] > last - first:
                run = (first, 1, self._chunk(first))
            decay = self.lam ** CHUNK
            while run[0] + run[1] < last:  # R <- lam^CHUNK R + next chunk
                nxt = self._chunk(run[0] + run[1])
                run = (run[0], run[1] + 1, self._combine([(decay, run[2]), (1.0, nxt)]))
            self._run = run
            if head_end > lo:
                parts.append((1.0, self._partial(lo, head_end, hi)))
            parts.append((self.lam ** (hi - tail_start), run[2]))
            if hi > tail_start:
                parts.append((1.0, self._partial(tail_start, hi, hi)))
        sums = self._combine(parts)
        for name in _FIELDS:
            setattr(self, name, sums[name])
        self.count = self.count_cum[hi] - self.count_cum[lo]
        self.lo, self.hi = lo, hi

    def finite(self) -> bool:
        parts = [self.A, self.s, self.c, self.q, self.u_sum]
        if self.cross:
            parts.append(self.uu)
        # a finite sum means every term is finite (NaN and inf propagate); only a sum that is
        # not (an overflow of finite terms, or a non-finite one) needs the cell-wise test
        with np.errstate(over="ignore", invalid="ignore"):
            return all(np.isfinite(p.sum()) or np.isfinite(p).all() for p in parts)


class BlockStatistics:
    """The carried statistics of one block of consecutive dates (one model, one data block).

    Parameters
    ----------
    model : LassoModel
        The block's model (its parameters are checked by the rolling fit).
    x, y : pandas.DataFrame
        The block's rows.
    starts : collection of int
        The windows' first rows (positions in ``x``): one value for an expanding window.
    offset : int, default 0
        Absolute position of ``x``'s first row in the whole panel (chunks are aligned on
        absolute positions, so every block sums a window the same way).

    Attributes
    ----------
    reason : str or None
        Why no date of the block can be carried (None: dates may be).
    """

    def __init__(self, model: LassoModel, x: pd.DataFrame, y: pd.DataFrame, starts,
                 offset: int = 0):
        self.model = model
        self._memo: dict[str, tuple] = {}  # (key, value) per name: see once
        self.reason = self._block_reason(model, starts)
        if self.reason is not None:
            return
        # Only rows up to a date may decide how it is prepared (no look-ahead): data that do
        # not coerce end the carried rows at the first bad row, a missing factor value sends
        # the windows that hold it to the preparation.
        self.x, self.y = _coerced_prefix(x, y)
        self.n_carried = len(self.x)
        if not self.n_carried:
            self.reason = "the block's first row does not coerce (each date reports its error)"
            return
        self.xa = xa = self.x.to_numpy(dtype=float)
        ya = self.y.to_numpy(dtype=float)
        x_gap = np.isnan(xa).any(axis=1)
        self.x_gaps = np.concatenate([[0], np.cumsum(x_gap)])  # rows with a gap before t
        valid = np.isfinite(ya) & ~np.isnan(xa).all(axis=1)[:, None]
        xa = np.where(np.isnan(xa), 0.0, xa)  # those windows are never carried
        self.span = None if model.span is None else float(model.span)
        self.demean = bool(model.demean)
        lam = 1.0 if self.span is None else ewm_lambda(self.span)
        params = model._checked_params()
        self.cross = (params["model_type"].discovers_clusters and y.shape[1] > 1
                      and self.span is None and params["cluster_span"] is None
                      and params["dependence_measure"] is DependenceMeasure.PEARSON)
        raw = _Sums(xa, np.where(valid, ya, 0.0), valid, lam, self.cross, offset)
        self.raw, self.prep = raw, raw
        self.ya = np.where(np.isfinite(ya), ya, np.nan)
        starts = sorted(set(starts))
        self.extremes = None
        if len(starts) == 1 and self.span is None and self.demean:
            # one first row (expanding): running extremes give each window's spread
            first = starts[0]
            self.extremes = (first, [(_running(np.fmax, a, first), _running(np.fmin, a, first))
                                     for a in (xa, self.ya)])
        if self.span is not None and self.demean:
            # expanding only (see _block_reason): the demeaned rows are the same in every
            # window, its first row (identically 0) dropped
            with np.errstate(invalid="ignore", over="ignore"):
                px = xa - ewm_mean(xa, self.span)
                py = self.ya - ewm_mean(self.ya, self.span)
            self.prep = _Sums(px, np.where(valid, np.nan_to_num(py), 0.0), valid, lam, False,
                              offset)
            # running maxima of the raw and demeaned magnitudes: the round-off rule of the
            # preparation compares them over the window
            self.max_raw = (np.maximum.accumulate(np.abs(xa), axis=0),
                            np.fmax.accumulate(np.abs(self.ya), axis=0))
            self.max_prep = (_cummax_from(np.abs(px), 1), _cummax_from(np.abs(py), 1))

    @staticmethod
    def _block_reason(model: LassoModel, starts) -> str | None:
        params = model._checked_params()
        if params["model_type"] is LassoModelType.UNILASSO:
            return "UNILASSO prepares its own design from the panel's rows"
        if model.auto_sign_constraints:
            return "derived signs read the prepared panel row by row"
        if model.span is not None and model.demean and len(set(starts)) > 1:
            return ("a span with demeaning on a fixed window: the causal EWMA mean restarts at "
                    "every window's first row")
        return None

    def once(self, name: str, key: tuple, compute):
        """``compute()``, computed once for the block while ``key`` holds the same objects
        (compared by identity; pandas Index by value): what a date's fit derives from the
        model's parameters and the labels alone (its sign and prior matrices, read and checked
        at every date before: 0.5 ms a date at N = 500, M = 30). An error is not kept (each
        date raises it again). Arrays are the caller's to copy."""
        held = self._memo.get(name)
        if held is not None and len(held[0]) == len(key) and all(
                a.equals(b) if isinstance(a, pd.Index) else a is b
                for a, b in zip(held[0], key, strict=True)):
            return held[1]
        value = compute()
        self._memo[name] = (key, value)
        return value

    def window(self, start: int, stop: int) -> Window | None:
        """The statistics of the rows ``[start, stop]`` (positions in the block), or None when
        this date must be prepared from scratch (``self.last_reason`` says why)."""
        self.last_reason = self.reason
        if self.reason is not None:
            return None
        if stop >= self.n_carried:
            self.last_reason = "the window holds data that do not coerce"
            return None
        if self.x_gaps[stop + 1] > self.x_gaps[start]:
            self.last_reason = "a factor value is missing (the demeaning imputes it per window)"
            return None
        self.raw.move_to(start, stop + 1)
        ewm_demeaned = self.prep is not self.raw
        if ewm_demeaned:
            self.prep.move_to(start + 1, stop + 1)
        if not (self.raw.finite() and (not ewm_demeaned or self.prep.finite())):
            self.last_reason = "a sum overflows (the preparation reports it)"
            return None
        if self.demean and self._roundoff_column(start, stop, ewm_demeaned):
            self.last_reason = "a column is constant in the window (demeaned to round-off)"
            return None
        win = Window(self, start, stop, ewm_demeaned)
        if win.cancelled:
            self.last_reason = "the demeaning cancels a sum (its round-off would show)"
            return None
        return win

    def _roundoff_column(self, start: int, stop: int, ewm_demeaned: bool) -> bool:
        """Whether the preparation's round-off rule could zero a column of this window."""
        # A column that is 0 wherever observed (or never observed) is 0 either way: exempt.
        if ewm_demeaned:  # start == 0: running maxima, exactly the rule
            for raw, prep in zip(self.max_raw, self.max_prep, strict=True):
                top = np.nan_to_num(raw[stop])
                if np.any((top > 0) & (np.nan_to_num(prep[stop]) <= ROUNDOFF * top)):
                    return True
            return False
        # column means: the rule can only fire when the column's spread is within
        # 2 ROUNDOFF of its magnitude
        if self.extremes is not None and self.extremes[0] == start:
            spans = [(hi[stop], lo[stop]) for hi, lo in self.extremes[1]]
        else:
            rows = slice(start, stop + 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)  # all-missing column
                spans = [(np.nanmax(a, axis=0), np.nanmin(a, axis=0))
                         for a in (self.xa[rows], self.ya[rows])]
        for hi, lo in spans:
            top = np.nan_to_num(np.maximum(np.abs(hi), np.abs(lo)))
            if np.any((top > 0) & (hi - lo <= 2.0 * ROUNDOFF * top)):
                return True
        return False


def _coerced_prefix(x: pd.DataFrame, y: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The longest first rows of ``x``, ``y`` that :func:`coerce_panel` accepts (a bad cell
    stays bad in every longer prefix, so a bisection finds it); the error is each date's."""
    try:
        return coerce_panel(x, y)
    except ValueError:
        pass
    good, bad = 0, len(x)  # prefix of `good` rows coerces, of `bad` does not
    while bad - good > 1:
        mid = (good + bad) // 2
        try:
            coerce_panel(x.iloc[:mid], y.iloc[:mid])
            good = mid
        except ValueError:
            bad = mid
    if good == 0:
        return x.iloc[:0], y.iloc[:0]
    return coerce_panel(x.iloc[:good], y.iloc[:good])


def _running(ufunc, a: np.ndarray, first: int) -> np.ndarray:
    """Running NaN-ignoring ``ufunc`` (fmax, fmin) of the rows ``first`` on (before: NaN)."""
    out = np.full_like(a, np.nan)
    out[first:] = ufunc.accumulate(a[first:], axis=0)
    return out


def _cummax_from(a: np.ndarray, first: int) -> np.ndarray:
    return _running(np.fmax, a, first)


class Window:
    """One date's statistics, as :meth:`LassoModel._setup` takes them (its ``window=``)."""

    def __init__(self, block: BlockStatistics, start: int, stop: int, ewm_demeaned: bool):
        raw, prep = block.raw, block.prep
        self.block = block
        self.n_rows = prep.hi - prep.lo
        self.any_valid = bool(np.any(prep.count > 0))
        self.n_obs = raw.count.astype(np.int64)
        self._ewm_demeaned = ewm_demeaned
        n_resp = prep.u.shape[1]
        # demeaning by the window's column means, applied to the raw sums
        self._center = block.demean and block.span is None
        with np.errstate(invalid="ignore", divide="ignore"):
            self.x_mean = prep.a / prep.w_sum if self._center else np.zeros(prep.z.shape[1])
            y_mean = np.where(prep.count > 0, prep.u_sum / np.where(prep.n > 0, prep.n, 1.0),
                              0.0)
        self.y_mean = y_mean if self._center else np.zeros(n_resp)
        xm, ym, n = self.x_mean, self.y_mean, prep.n
        self.xty = (prep.c - prep.s * ym[:, None] - np.outer(prep.u_sum, xm)
                    + (n * ym)[:, None] * xm)
        self.yty = prep.q - prep.u_sum * ym
        self.yw = prep.u_sum - n * ym
        self.gram_all = prep.A - np.outer(prep.a, xm) - np.outer(xm, prep.a) + prep.w_sum * \
            np.outer(xm, xm)
        self.cancelled = False
        if self._center:
            # relative round-off of a corrected sum ~ 1e-16 * raw / corrected
            self.cancelled = bool(
                np.any(np.diag(prep.A) > CANCELLATION * np.abs(np.diag(self.gram_all)))
                or np.any((prep.q > 0) & (prep.q > CANCELLATION * np.abs(self.yty))))
        self._prep, self._start, self._stop = prep, start, stop

    # ------------------------------------------------------------------ for _setup
    def stats(self, loss_normalization: str = "sample") -> SufficientStats:
        """The :class:`SufficientStats` of the window (what ``SufficientStats.from_panel`` of
        the prepared window gives, to round-off)."""
        prep = self._prep
        full = prep.count == self.n_rows
        partial = np.flatnonzero(~full)
        pattern = np.zeros(len(full), dtype=np.int64)
        grams, xw = [], []
        if full.any():
            grams.append(self.gram_all)
            xw.append(self._xw(int(np.flatnonzero(full)[0])))
        if len(partial):
            mask = prep.v[prep.lo:prep.hi][:, partial]
            patterns, inverse = _mask_patterns(mask)
            pattern[partial] = inverse + len(grams)
            z = prep.z[prep.lo:prep.hi]
            w = prep.lam ** np.arange(self.n_rows - 1, -1, -1, dtype=float)
            for p, pat in enumerate(patterns):
                zp = z[pat] - self.x_mean
                grams.append((zp * w[pat][:, None]).T @ zp)
                xw.append(self._xw(partial[int(np.flatnonzero(inverse == p)[0])]))
        grams = np.array(grams)
        xty, yty = self.xty.copy(), np.maximum(self.yty, 0.0)
        zero_exact(grams, xty, yty, pattern)
        stats = SufficientStats(n_rows=self.n_rows, gram=grams, pattern=pattern, xty=xty,
                                yty=yty, xw=np.array(xw), yw=self.yw.copy(),
                                mass=prep.n.copy())
        return stats if loss_normalization == "sample" else stats._per_mass()

    def _xw(self, i: int) -> np.ndarray:
        """Response ``i``'s ``sum w (x - xbar)`` (only one response per mask is read: not
        formed for all N)."""
        return self._prep.s[i] - self._prep.n[i] * self.x_mean

    def dependence(self, params: dict) -> np.ndarray | None:
        """The Pearson correlation of the prepared responses (what the clustering computes
        from the panel), or None when it must be computed from the panel."""
        prep = self._prep
        if not self.block.cross or not np.all(prep.count == self.n_rows):
            return None
        centred = prep.uu - np.outer(prep.u_sum, prep.u_sum) / self.n_rows
        if np.any(np.diag(prep.uu) > CANCELLATION * np.abs(np.diag(centred))):
            return None
        return correlation_from_gram(centred, self.n_rows)

    # ------------------------------------------------------------------ for _install
    def weighted_means(self) -> tuple[np.ndarray, np.ndarray]:
        """``(xbar_w, ybar_w)`` per response over its valid raw rows, weights
        ``lambda^(T-1-t)`` (the economic intercept's means)."""
        raw = self.block.raw
        with np.errstate(invalid="ignore", divide="ignore"):
            return raw.s / raw.n[:, None], raw.u_sum / raw.n

    def factor_covariance(self) -> np.ndarray:
        """``Sigma_x`` of the window in the fit's convention (see
        :func:`~xl_factorlasso.core.covariance._factor_covariance.fit_factor_covariance`)."""
        return self.gram_all / self._prep.w_sum
