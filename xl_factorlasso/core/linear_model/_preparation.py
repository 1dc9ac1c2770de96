"""From user inputs to the arrays the solver sees, and their sufficient statistics.

Semantics (factorlasso 1.0.6, reference section 1.2):

* validity ``V_ti = 1`` iff ``y_ti`` is finite and factor row ``t`` is not entirely missing;
* demeaning on NaN-preserved data: the column mean (``span=None``) or the causal EWMA mean
  including the current observation (``span``), whose first row (identically 0) is dropped;
* remaining NaN become 0 (a partly missing factor row is thereby imputed at the mean);
* loss weight of row ``t`` of ``T'`` prepared rows: ``lambda^(T'-1-t) * V_ti``.

Everything the loss needs is then in ``X'WX``, ``X'WY`` and ``sum W Y^2`` per response mask, so
the problem size never depends on T.

Loss normalisation (factorlasso's ``loss_normalization``): ``"sample"`` divides every
response's weighted squared error by ``T'``; ``"weight_sum"`` divides response ``i``'s by its own
weight mass ``S_i = sum_t w_ti``. ``S_i`` depends only on the response's mask (and the EWMA
weights), so ``"weight_sum"`` is the ``"sample"`` loss of statistics scaled by ``T'/S_p`` per mask
pattern: :meth:`SufficientStats.from_panel` applies it there, once, for every model type and
everything built on the statistics (engines, ``lambda_max``, the objective). The diagnostics
(ratios of statistics of one response) are unchanged, as in factorlasso.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._cells import numbers_in
from ..cluster import ewm_lambda, ewm_mean

__all__ = ["LOSS_NORMALIZATIONS", "PreparedPanel", "SufficientStats", "check_loss_normalization",
           "coerce_panel", "coerce_panel_sums", "prepare_panel"]

LOSS_NORMALIZATIONS = ("sample", "weight_sum")


def check_loss_normalization(value) -> str:
    """``value`` if it is ``"sample"`` or ``"weight_sum"``, else a ValueError naming it."""
    if not isinstance(value, str) or value not in LOSS_NORMALIZATIONS:
        raise ValueError(f"loss_normalization must be 'sample' or 'weight_sum', got {value!r}")
    return value


def _to_frame(data, name: str, prefix: str) -> tuple[pd.DataFrame, np.ndarray]:
    """``(frame, column sums of its float values)``: the sums are the pass that refuses
    infinite values (:func:`_refuse_infinite`), and the preparation's first pass too."""
    if isinstance(data, pd.Series):
        frame = data.to_frame(name=data.name if data.name is not None else f"{prefix}0")
    elif isinstance(data, pd.DataFrame):
        frame = data
    else:
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D table, got an array of shape {arr.shape}")
        frame = pd.DataFrame(arr, columns=[f"{prefix}{i}" for i in range(arr.shape[1])])
    if frame.shape[1] == 0:
        raise ValueError(f"{name}: no columns")
    if not frame.columns.is_unique:  # (cached by pandas: the lists only when needed)
        duplicated = frame.columns[frame.columns.duplicated()].unique()
        raise ValueError(f"{name}: duplicate column label(s) {list(duplicated)!r}")
    if not frame.index.is_unique:
        duplicated = frame.index[frame.index.duplicated()].unique()
        raise ValueError(f"{name}: duplicate row label(s) {list(duplicated[:5])!r}")
    values = _float_values(frame)  # the common case, without a Series of dtypes (0.05 ms)
    if values is not None:
        return _refuse_infinite(frame, values, name)
    dtypes = set(frame.dtypes)  # a few distinct types, however many columns
    numeric = all(
        pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
        for dt in dtypes
    )
    if numeric:  # one conversion instead of one per column
        out = frame if dtypes == {np.dtype(float)} else frame.astype(float)
    else:
        values = {}
        for col in frame.columns:
            series = frame[col]
            if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
                series.dtype
            ):
                converted, bad = numbers_in(series)
                if bad.any():
                    row = series.index[bad][0]
                    raise ValueError(
                        f"{name}: column {col!r}, row {row!r}: {series[row]!r} is not a number"
                    )
                series = converted
            values[col] = series.astype(float)
        out = pd.DataFrame(values, index=frame.index)
    return _refuse_infinite(out, out.to_numpy(), name)


def _float_values(frame: pd.DataFrame) -> np.ndarray | None:
    """The frame's values when every column is float64, else None: they come out as float64
    without a copy (one block; a mix of numeric types is copied into a new array, other
    types are not float64)."""
    arr = frame.to_numpy()
    return arr if arr.dtype == np.float64 and np.may_share_memory(arr, frame.to_numpy()) \
        else None


def _refuse_infinite(frame: pd.DataFrame, arr: np.ndarray, name: str):
    """``(frame, arr.sum(axis=0))``, or a ValueError naming the first infinite cell. A column
    whose sum is finite has no infinite (nor missing) value: only the others are scanned, so a
    complete panel costs one pass, whose sums :func:`prepare_panel` reuses."""
    with np.errstate(over="ignore", invalid="ignore"):
        sums = arr.sum(axis=0)
    odd = ~np.isfinite(sums)
    if np.count_nonzero(odd):
        cols = np.flatnonzero(odd)
        bad = np.isinf(arr[:, cols])
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"{name}: column {frame.columns[cols[c]]!r}, row "
                             f"{frame.index[r]!r} is infinite")
    return frame, sums


def coerce_panel(x, y) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Factors and responses as aligned float DataFrames, or a ValueError that names the input.

    numpy inputs get names ``x0, x1, ...`` / ``y0, y1, ...``; an unlabelled side (RangeIndex)
    adopts the other side's row labels; two different labelled indexes are an error.
    """
    return coerce_panel_sums(x, y)[:2]


def coerce_panel_sums(x, y) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """:func:`coerce_panel`, and the column sums of the factors' values (NaN in a column with
    a missing cell), which :func:`prepare_panel` takes as ``x_sum`` instead of a pass of its
    own."""
    xf, x_sum = _to_frame(x, "x", "x")
    yf = _to_frame(y, "y", "y")[0]
    if len(xf) != len(yf):
        raise ValueError(f"x has {len(xf)} rows but y has {len(yf)}: they must be the same dates")
    if not xf.index.equals(yf.index):
        x_plain = isinstance(xf.index, pd.RangeIndex)
        y_plain = isinstance(yf.index, pd.RangeIndex)
        if x_plain and not y_plain:
            xf = xf.set_axis(yf.index, axis=0)
        elif y_plain and not x_plain:
            yf = yf.set_axis(xf.index, axis=0)
        else:
            diff = xf.index.difference(yf.index)
            where = f" (first in x only: {diff[0]!r})" if len(diff) else ""
            raise ValueError(f"x and y have different row labels{where}")
    return xf, yf, x_sum


# Beyond this many factors, and more factors than rows, a single-pattern Gram is deferred
# (SufficientStats): the fast engine then takes no spectra either (its _SPECTRAL_MAX).
DEFER_GRAM_MIN = 600

# From this many factors the Gram is formed by SYRK (half the work; other round-off). Below it
# the Gram costs little beside X'Y and keeps the bits of the general product, which some
# Clarabel solves on flat problems are sensitive to.
_SYRK_MIN = 100


@dataclass(frozen=True, eq=False)
class PreparedPanel:
    """Prepared solver arrays of ``T'`` rows.

    Attributes
    ----------
    x, y : numpy.ndarray, shapes (T', M), (T', N)
        Demeaned (if requested), missing values zero-filled. ``y`` may be a read-only view of
        the caller's data when preparation changes nothing (``demean=False``, no missing
        value). A complete panel demeaned by the column mean defers it: ``y`` is formed from
        ``values`` on first use (the statistics do not need it, see ``y_shift``).
    values : numpy.ndarray, shape (T', N)
        ``y``, or the original responses when ``y_shift`` is set.
    mask : numpy.ndarray of bool, shape (T', N)
        Validity of each response cell.
    row_weight : numpy.ndarray, shape (T',)
        Loss weight per row, ``lambda^(T'-1-t)`` (ones without a span).
    n_obs : numpy.ndarray of int, shape (N,), optional
        Finite observations of each response over the original rows (before a span drops
        the first one).
    means : tuple of numpy.ndarray, optional
        ``(xbar_w, ybar_w)``, shapes (N, M) and (N,): the loss-weighted means of the original
        factors and responses over each response's valid rows (weights ``lambda^(T-1-t)`` on
        the original ``T`` rows, a missing factor cell counting as 0), from which the economic
        intercept ``ybar_w - B xbar_w`` follows. NaN for a response without observation.
    y_shift : numpy.ndarray, shape (N,), optional
        The column means to subtract from ``values`` (``y = values - y_shift``, constant
        columns then zero): the statistics centre in the Gram instead
        (``X'(v - 1 s') = X'v - (X'1) s'``), which :func:`prepare_panel` does only where that
        loses no accuracy against the centred copy.
    """

    x: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    row_weight: np.ndarray
    n_obs: np.ndarray | None = None
    means: tuple[np.ndarray, np.ndarray] | None = None
    y_shift: np.ndarray | None = None
    # products of the one pass over y that the statistics reuse: ``row_ok`` (rows whose
    # factors are not all missing), ``patterns`` (:func:`_mask_patterns` of ``mask``),
    # ``yty`` and ``yw`` (``sum_t w_t y_t^2``, ``sum_t w_t y_t`` on the valid cells),
    # ``zero_columns`` (constant responses, with ``y_shift``) and the deferred ``y``
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def y(self) -> np.ndarray:
        if self.y_shift is None:
            return self.values
        if "y" not in self._cache:  # np.nanmean's demeaning, the same bits
            y = self.values - self.y_shift
            y[:, self._cache["zero_columns"]] = 0.0
            self._cache["y"] = y
        return self._cache["y"]

    @property
    def n_rows(self) -> int:
        return self.x.shape[0]

    def weights(self) -> np.ndarray:
        """Loss weight of every response cell, shape (T', N)."""
        return self.row_weight[:, None] * self.mask

    def mask_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_mask_patterns` of ``mask``, computed once."""
        if "patterns" not in self._cache:
            self._cache["patterns"] = _mask_patterns(self.mask)
        return self._cache["patterns"]

    def _zero_filled(self) -> tuple[np.ndarray, np.ndarray]:
        """``(y, row_ok)`` with ``y`` zero wherever ``mask`` is False except on the rows
        where ``row_ok`` is False (all factors missing: ``x`` is zero there), so that a sum
        over the rows weighted by ``row_weight * row_ok`` is a sum over the valid cells.
        :func:`prepare_panel` makes its panels so; another panel pays one masked copy."""
        if "row_ok" in self._cache:
            return self.y, self._cache["row_ok"]
        return np.where(self.mask, self.values, 0.0), np.ones(self.n_rows, dtype=bool)

    def yty(self) -> np.ndarray:
        """``sum_t w_t y_ti^2`` over the valid cells of each response, shape (N,)."""
        if "yty" not in self._cache:
            y, row_ok = self._zero_filled()
            self._cache["yty"] = _weighted_squares(y, self.row_weight, row_ok)
        return self._cache["yty"]


def _demean(a: np.ndarray, span: float | None) -> np.ndarray:
    """``a`` less its column means (NaN-aware) or its causal EWMA mean; a complete panel
    without a span takes :func:`_demean_complete` instead."""
    if span is None:
        # An all-missing column has no mean; it stays NaN and is zero-filled below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            return a - np.nanmean(a, axis=0)
    return a - ewm_mean(a, span)


def _demean_complete(xa: np.ndarray, col_sum: np.ndarray):
    """``(x - mean, max |x - mean|, max |x|)`` per column of a complete ``xa`` without weights,
    from its column sums (``mean`` is ``xa.mean(axis=0)``, the same bits) and its column
    ranges: ``v -> fl(v - mean)`` is monotone, so the demeaned column's extremes are
    ``fl(hi - mean)`` and ``fl(lo - mean)`` exactly, and an overflow shows there. Two reads
    and the one write, instead of passes for the maxima before and after and for ``isinf``."""
    hi, lo = _column_range(xa)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = col_sum / xa.shape[0]
        centred = xa - mean
        return centred, np.maximum(hi - mean, mean - lo), np.maximum(hi, -lo)


def _weighted_squares(y: np.ndarray, row_weight: np.ndarray, row_ok: np.ndarray) -> np.ndarray:
    """``sum_t w_t y_t^2`` per column of a zero-filled ``y`` on the rows ``row_ok``, without a
    (T, N) temporary (``einsum`` multiplies and adds in one loop)."""
    w = row_weight if row_ok.all() else row_weight * row_ok
    with np.errstate(over="ignore", invalid="ignore"):
        if np.all(w == 1.0):
            return np.einsum("tn,tn->n", y, y)
        return np.einsum("t,tn,tn->n", w, y, y)


def _column_range(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max, min)`` per column of an array without NaN (0, 0 for no row)."""
    if not len(a):
        return np.zeros(a.shape[1]), np.zeros(a.shape[1])
    return np.maximum.reduce(a, axis=0), np.minimum.reduce(a, axis=0)


def _column_max_abs(a: np.ndarray) -> np.ndarray:
    """Largest absolute value per column of an array without NaN, in two reductions instead
    of an ``abs`` copy."""
    hi, lo = _column_range(a)
    return np.maximum(hi, -lo)


def _ewm_demean_rows(a: np.ndarray, finite: np.ndarray, lam: float) -> None:
    """In place: ``a - m`` on the observed cells of a zero-filled ``a`` (C order), ``m`` the
    causal EWMA mean of :func:`~xl_factorlasso.core.cluster.ewm_mean_decay` (same recursion
    and missing-value rules, bit for bit), one row at a time so that ``m`` is never a second
    (T, N) array. Cells that are not ``finite`` are left to the caller to zero."""
    first_ok = finite[0]
    init = np.where(first_ok, a[0], 0.0)
    last = np.where(first_ok, init, np.nan)
    a[0] -= last
    complete = bool(finite.all())
    for t in range(1, a.shape[0]):
        obs = a[t]
        if complete:  # every column started at row 0 and observed everywhere
            current = lam * last + (1.0 - lam) * obs
            last = np.where(np.isfinite(current), current, last)
        else:
            ok = finite[t]
            prev = np.where(~np.isfinite(last) & ok, init, last)
            current = lam * prev + (1.0 - lam) * obs
            last = np.where(ok & np.isfinite(current), current, prev)
        obs -= last


# A demeaned column this small next to its raw values is the round-off of the demeaning (a
# constant column): it is set to exactly zero. Round-off is ~1e-16 relative per operation.
ROUNDOFF = 1e-12


def prepare_panel(
    x: pd.DataFrame, y: pd.DataFrame, *, span: float | None = None, demean: bool = True,
    x_sum: np.ndarray | None = None,
) -> PreparedPanel:
    """Prepared arrays of aligned float frames (see module docstring).

    ``x_sum``: the column sums of ``x``'s values when the caller has them
    (:func:`coerce_panel_sums`), instead of a pass over the factors.

    A column that demeaning turns into round-off (at most ``ROUNDOFF`` times its largest raw
    value: a constant factor or response) becomes exactly zero.

    The responses are read in one pass that makes at most one float copy of them (the
    demeaned, zero-filled ``y``; none for a complete panel whose column means the statistics
    can take out in the Gram, see :class:`PreparedPanel`), their validity mask once, and the
    weighted sums that the statistics and the intercept need from the same arrays.

    Raises
    ------
    ValueError
        A column whose values overflow the demeaning or the weighted sums of squares the fit
        is built on (``X'WX`` or ``y'Wy`` infinite), named.
    """
    xa = x.to_numpy(dtype=float)
    yv = y.to_numpy(dtype=float)  # a view of the caller's data when it is one float block
    t_all = xa.shape[0]
    # no missing factor cell (the usual case): the passes below over x skip their NaN masks
    # (with many factors x is the larger input: at 1000 x 2000 they were most of the set-up).
    # A column's sum is NaN when it has a missing cell (infinite values were refused by
    # coerce_panel), and the demeaning reuses it: one pass instead of a NaN mask's three.
    if x_sum is None:
        with np.errstate(over="ignore", invalid="ignore"):  # (overflow: named later)
            x_sum = xa.sum(axis=0)
    x_complete = not np.isnan(x_sum).any()
    if x_complete:
        x_row_ok = np.ones(t_all, dtype=bool)
    else:
        x_nan = np.isnan(xa)
        x_row_ok = ~x_nan.all(axis=1)
        x_complete = not x_nan.any()  # (finite values whose sum overflowed)
        del x_nan
    # Infinite values were refused by coerce_panel: NaN = missing, and a NaN makes its column's
    # sum NaN. The sums, needed anyway, tell a complete panel apart without a T x N pass of
    # isfinite, and a complete panel's mask is a read-only view of True (no T x N array).
    col_sum = yv.sum(axis=0)
    complete = bool(np.isfinite(col_sum).all())
    if not complete:
        finite = np.isfinite(yv)
        complete = bool(finite.all())  # finite values whose sum overflowed
    if complete:
        finite = np.broadcast_to(np.True_, yv.shape)
    mask = finite if x_row_ok.all() else finite & x_row_ok[:, None]
    n_obs = (np.full(yv.shape[1], t_all) if complete else finite.sum(axis=0))
    w_all = (np.ones(t_all) if span is None
             else ewm_lambda(span) ** np.arange(t_all - 1, -1, -1, dtype=float))
    ya = None  # the one float copy of y, zero-filled (which also makes np.nanmean's sums)
    if not complete:
        ya = np.array(yv, dtype=float, order="C" if span is not None else "K")
        np.copyto(ya, 0.0, where=~finite)
    raw = yv if ya is None else ya
    # the intercept's weighted sums of the original y (without a span and with every factor
    # row present: np.nanmean's sums, which the demeaning reuses)
    plain = span is None and bool(x_row_ok.all())
    if plain:
        y_sum = col_sum if ya is None else raw.sum(axis=0)
    else:
        y_sum = (w_all * x_row_ok) @ raw
    cache: dict = {}
    shift = None
    if demean:
        if x_complete and span is None:
            xa, x_max, raw_x = _demean_complete(xa, x_sum)
        else:
            raw_x = _max_abs(xa, x_complete)
            xa = _demean(xa, span)
            x_max = None
        _check_finite(xa if x_max is None else x_max, x, "x", "when demeaned")
        ya, shift, y_max, raw_y = _demean_responses(yv, ya, finite, complete, n_obs, span,
                                                    y_sum if plain else None, cache)
        if span is not None:
            xa, ya, mask = xa[1:], ya[1:], mask[1:]
        if x_max is None:
            x_max = _max_abs(xa, x_complete)
        xa[:, x_max <= ROUNDOFF * raw_x] = 0.0
        if shift is None:  # (deferred: finite sums of squares, constant columns found there)
            _check_finite(y_max, y, "y", "when demeaned")
            ya[:, y_max <= ROUNDOFF * raw_y] = 0.0
    elif ya is None:
        ya = yv  # nothing to change: no copy
    if not (x_complete and demean):  # (demeaned, xa is already the fit's own copy)
        xa = np.nan_to_num(xa, nan=0.0)
    head = t_all - xa.shape[0]  # the row a span drops (0 or 1)
    row_weight = w_all[head:]
    cache["row_ok"] = row_ok = x_row_ok[head:]
    with np.errstate(over="ignore", invalid="ignore"):
        # (kept: the diagonal of a deferred Gram, :func:`_zero_exact_root`)
        cache["x_squares"] = _weighted_squares(xa, row_weight, row_ok)
        _check_finite(cache["x_squares"], x, "x", "in the weighted sum of squares X'WX")
        if "yty" not in cache:
            cache["yty"] = _weighted_squares(ya, row_weight, row_ok)
        _check_finite(cache["yty"], y, "y", "in the weighted sum of squares y'Wy")
    cache["x_sum"] = x_sum  # (the raw columns' sums: the equal-columns test's)
    if complete and x_row_ok.all():  # one pattern: no column to compare
        patterns = np.ones((1, len(mask)), dtype=bool)
        inverse = np.zeros(mask.shape[1], dtype=np.intp)
    else:
        patterns, inverse = _mask_patterns(mask)
    cache["patterns"] = (patterns, inverse)
    if plain and x_complete and len(patterns) == 1 and patterns[0].all():
        # every cell valid, no weights: the means are the column sums' (the demeaning's own
        # means, bit for bit), not another pass over the factors
        with np.errstate(over="ignore", invalid="ignore"):
            means = np.repeat((x_sum / t_all)[None], len(inverse), axis=0), y_sum / t_all
    else:
        means = _raw_means(x.to_numpy(dtype=float), finite, x_row_ok, w_all, y_sum,
                           patterns, inverse, head, x_complete)
    return PreparedPanel(x=xa, values=ya, mask=mask, row_weight=row_weight, n_obs=n_obs,
                         means=means, y_shift=shift, _cache=cache)


def _demean_responses(yv, ya, finite, complete, count, span, total, cache):
    """``(values, y_shift, max |y - mean|, max |y|)`` per column of the demeaned responses
    (see :class:`PreparedPanel`): ``ya`` (the zero-filled copy, None for a complete panel)
    demeaned in place, or a complete ``yv`` kept as it is with the column means as ``y_shift``
    when :func:`_centred_sums` accepts it (which then leaves its sums and constant columns in
    ``cache``, and the two maxima are None: no pass for them). ``total``: the column sums when
    already made, given only when every factor row is present."""
    if span is not None:
        if ya is None:
            ya = np.array(yv, dtype=float, order="C")
        raw_y = _column_max_abs(ya)
        _ewm_demean_rows(ya, finite, ewm_lambda(span))
        if not complete:
            np.copyto(ya, 0.0, where=~finite)
        return ya, None, _column_max_abs(ya), raw_y
    rows_ok = total is not None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if total is None:
            total = (yv if ya is None else ya).sum(axis=0)
        mean = total / count  # np.nanmean's own sum and division: the same bits
    if ya is None and rows_ok:
        deferred = _centred_sums(yv, mean, total)
        if deferred is not None:
            cache["zero_columns"], cache["yty"], cache["yw"] = deferred
            return yv, mean, None, None
    raw_y = _column_max_abs(yv if ya is None else ya)
    if ya is None:
        ya = yv - mean
    else:
        ya -= mean
        np.copyto(ya, 0.0, where=~finite)  # also an all-missing column (NaN mean)
    return ya, None, _column_max_abs(ya), raw_y


def _centred_sums(yv, mean, total):
    """``(constant columns, sum (y - mean)^2, sum (y - mean) = 0)`` per column of a complete
    ``yv`` from its own sums, without forming ``y - mean``; None when that would lose
    accuracy.

    ``sum (y - m)^2 = sum y^2 - m sum y`` cancels by the factor ``sum y^2 / sum (y - m)^2``:
    it is accepted only while that is at most 2 (``|mean| <= sd``, e.g. returns), so the
    centred sums and ``X'(y - m) = X'y - (X'1) m`` (whose round-off is ``eps |X| |y|``) keep
    the accuracy of the centred copy to a bit. A level far above the variation (prices, a
    1e6 offset) is centred in a copy instead. Accepted, a column is constant only when it is
    all zero (``sum y^2 = 0``): any other has ``max |y - m| >= (1 - 1/sqrt 2) max |y|``, far
    above the ``ROUNDOFF`` test of a centred copy, so no pass for the column ranges is needed.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        squares = np.einsum("tn,tn->n", yv, yv)
        level = mean * total
        if not (np.all(np.isfinite(squares)) and np.all(level <= 0.5 * squares)):
            return None
    zero = squares == 0.0
    yty = np.where(zero, 0.0, np.maximum(squares - level, 0.0))
    # sum (y - mean) is 0 by construction (the centred copy only ever held its round-off)
    return zero, yty, np.zeros_like(mean)


def _raw_means(x_raw, finite, x_row_ok, w_all, y_sum, patterns, inverse, head,
               x_complete=False):
    """``(xbar_w, ybar_w)`` of :class:`PreparedPanel` from the prepared mask's patterns.

    The prepared rows are the original rows from ``head`` on, with the same weights; the
    dropped first row (a span) adds its own term. No (T, N) array is formed.
    """
    xz = x_raw[head:] if x_complete else np.nan_to_num(x_raw[head:], nan=0.0)
    w_rows = w_all[head:]
    x_sum = np.empty((len(patterns), xz.shape[1]))
    mass = np.empty(len(patterns))
    for start in range(0, len(patterns), 256):  # (256, T') weights at a time, never (N, T')
        pat_w = patterns[start:start + 256] * w_rows
        x_sum[start:start + 256] = pat_w @ xz
        mass[start:start + 256] = pat_w.sum(axis=1)
    x_sum, mass = x_sum[inverse], mass[inverse]
    if head:
        valid0 = finite[0] & x_row_ok[0]
        x_sum = x_sum + np.outer(w_all[0] * valid0, np.nan_to_num(x_raw[0], nan=0.0))
        mass = mass + w_all[0] * valid0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return x_sum / mass[:, None], y_sum / mass


def _max_abs(a: np.ndarray, complete: bool = False) -> np.ndarray:
    """Largest absolute value per column, ignoring NaN (0 for an all-missing column);
    ``complete``: ``a`` has no NaN."""
    return np.abs(a if complete else np.where(np.isnan(a), 0.0, a)).max(axis=0, initial=0.0)


def _check_finite(values: np.ndarray, frame: pd.DataFrame, name: str, where: str) -> None:
    """ValueError naming the first column of ``frame`` whose ``values`` overflowed."""
    bad = np.isinf(values)
    if not bad.any():
        return
    col = int(np.flatnonzero(bad.reshape(-1, frame.shape[1]).any(axis=0))[0])
    largest = float(np.nanmax(np.abs(frame.iloc[:, col].to_numpy(dtype=float))))
    raise ValueError(
        f"{name}: column {frame.columns[col]!r} has values up to {largest:.3g} in magnitude, "
        f"which overflow {where}; rescale the column (e.g. returns as decimals)"
    )


def _mask_patterns(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct mask columns (P, T) and the pattern index of every column (N,).

    Columns are compared as packed bytes: ``np.unique(mask.T, axis=0)`` sorts T-long boolean
    rows and costs ~20x more on a 2000 x 500 panel. No rows (one row, whose span drops it):
    one empty pattern (as bytes, the empty keys gave no inverse at all).
    """
    if mask.shape[0] == 0:
        return np.zeros((1, 0), dtype=bool), np.zeros(mask.shape[1], dtype=np.intp)
    packed = np.ascontiguousarray(np.packbits(mask, axis=0).T)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return mask[:, first].T, np.asarray(inverse).reshape(-1)


def _zero_exact_root(root: np.ndarray, xty: np.ndarray, yty: np.ndarray,
                     squares: np.ndarray | None = None):
    """:func:`zero_exact` for a deferred Gram (one pattern): a factor whose sum of squares is
    0 gets an exactly zero root column (a copy then: ``root`` may be the prepared ``x``).
    Returns ``(root, the Gram's diagonal)``; ``squares``: that diagonal when the caller has
    it (the same einsum)."""
    diag = np.einsum("tm,tm->m", root, root) if squares is None else squares.copy()
    zero = diag == 0.0
    if zero.any() and np.any(root[:, zero]):  # (underflow: tiny values, squares of zero)
        root = root.copy()
        root[:, zero] = 0.0
    xty[:, zero] = 0.0
    xty[yty == 0.0] = 0.0
    return root, diag


def zero_exact(grams: np.ndarray, xty: np.ndarray, yty: np.ndarray, pattern: np.ndarray) -> None:
    """In place: a factor whose weighted sum of squares is 0 (identically zero on the mask, or
    underflow) is zero, so its cross products are too, exactly; likewise a zero response.
    (Shared with the rolling fit's carried statistics, which must apply the same rule.)"""
    zero = np.diagonal(grams, axis1=1, axis2=2) == 0.0  # (P, M)
    if zero.any():  # (usually none: no N x M mask to build, at every date of a rolling fit)
        grams[np.broadcast_to(zero[:, :, None], grams.shape)] = 0.0
        grams[np.broadcast_to(zero[:, None, :], grams.shape)] = 0.0
        xty[zero[pattern]] = 0.0
    flat = yty == 0.0
    if flat.any():
        xty[flat] = 0.0


@dataclass(frozen=True)
class SufficientStats:
    """Weighted Gram statistics of a prepared panel, one Gram per distinct response mask.

    With ``w_i`` the loss weights of response ``i`` (column of ``PreparedPanel.weights()``)
    and ``p(i)`` its mask pattern:

    * ``gram[p(i)] = X' diag(w_i) X``   (M x M)
    * ``xty[i]     = X' diag(w_i) y_i`` (M)
    * ``yty[i]     = y_i' diag(w_i) y_i``
    * ``xw[p(i)]   = X' w_i``, ``yw[i] = y_i' w_i``, ``mass[i] = sum w_i``

    so that ``sum_t w_ti (y_ti - x_t b)^2 = yty_i - 2 b'xty_i + b' gram_p b``.

    Many factors on fewer rows (one mask pattern, more than ``DEFER_GRAM_MIN`` factors and
    more factors than rows): the M x M Gram is larger than the design and costs ``T' M^2`` to
    form, more than a sparse answer needs. It is *deferred*: ``root`` holds ``W^(1/2) X``
    (T' x M, ``root'root = gram[0]``), products with the Gram go through it
    (:meth:`gram_times`, ``2 T' M`` per response), the diagonal is its column sums of
    squares, blocks of it come from :class:`GramBlocks`, and ``gram`` is formed on first use
    by whatever needs it whole (Newton systems past the blocks' limits, the exact path, the
    CVXPY formulation, the row and block geometries). Built with ``gram=None``.
    """

    n_rows: int
    gram: np.ndarray | None  # (P, M, M); None: deferred, formed from root on first use
    pattern: np.ndarray  # (N,) index into gram
    xty: np.ndarray  # (N, M)
    yty: np.ndarray  # (N,)
    xw: np.ndarray  # (P, M)
    yw: np.ndarray  # (N,)
    mass: np.ndarray  # (N,)
    root: np.ndarray | None = None  # (T', M), with a deferred gram

    @classmethod
    def from_panel(cls, panel: PreparedPanel,
                   loss_normalization: str = "sample") -> SufficientStats:
        """The statistics of ``panel``; ``"weight_sum"`` scales each mask pattern's by
        ``T'/S_p`` (see the module docstring), so the loss divides response ``i`` by ``S_i``."""
        stats = cls._sample(panel)
        if check_loss_normalization(loss_normalization) == "sample":
            return stats
        return stats._per_mass()

    def _per_mass(self) -> SufficientStats:
        """Statistics scaled by ``T'/S_i`` per response (1 where ``S_i = 0``: all zero)."""
        mass_p = np.zeros(len(self.xw))
        mass_p[self.pattern] = self.mass  # one mass per pattern
        k_p = np.where(mass_p > 0, self.n_rows / np.where(mass_p > 0, mass_p, 1.0), 1.0)
        k = k_p[self.pattern]
        deferred = self.deferred
        return SufficientStats(
            n_rows=self.n_rows,
            gram=None if deferred else self.gram * k_p[:, None, None],
            pattern=self.pattern,
            xty=self.xty * k[:, None],
            yty=self.yty * k,
            xw=self.xw * k_p[:, None],
            yw=self.yw * k,
            mass=self.mass * k,
            root=self.root * np.sqrt(k_p[0]) if deferred else None,
        )

    @classmethod
    def _sample(cls, panel: PreparedPanel) -> SufficientStats:
        # y is zero outside the mask (but on rows without factors, where x is zero), so the
        # sums over y need no per-pattern weights: one pass for y'Wy and y'W1, and for a
        # single pattern (a complete panel) one product for X'WY, no copy of y.
        x = panel.x
        shift = panel.y_shift
        if shift is None:
            y, row_ok = panel._zero_filled()
        else:  # complete, every row valid: centre in the Gram (see prepare_panel)
            y, row_ok = panel.values, panel._cache["row_ok"]
        w_ok = panel.row_weight if row_ok.all() else panel.row_weight * row_ok
        patterns, inverse = panel.mask_patterns()
        m = x.shape[1]
        # many factors on fewer rows: the Gram is deferred (class docstring), its root kept
        defer = len(patterns) == 1 and m > DEFER_GRAM_MIN and m > x.shape[0]
        root = None
        grams = None if defer else np.empty((len(patterns), m, m))
        xw = np.empty((len(patterns), m))
        mass_p = np.empty(len(patterns))
        xty = np.empty((y.shape[1], m))
        # Several patterns: each pattern's columns in their own products, as the statistics
        # were always formed (the solvers' answers on ragged panels stay bit for bit; Clarabel
        # is sensitive to the last bit of X'Y on flat problems), gathering at most ~1/8 of y
        # at a time.
        block = max(16, -(-y.shape[1] // 8))
        for p, pat in enumerate(patterns):
            wp = panel.row_weight * pat
            # W X: for the general Gram product and the patterns' own X'Y only
            xwp = x * wp[:, None] if m < _SYRK_MIN or len(patterns) > 1 else None
            unit = np.all(wp == 1.0)  # (no weights: x itself, no copy; x * 1 has its bits)
            if defer:
                # (the prepared x is the fit's own array: no copy without weights)
                root = x if unit else x * np.sqrt(wp)[:, None]
            elif m >= _SYRK_MIN:
                # X'WX as (W^1/2 X)'(W^1/2 X): NumPy hands A.T @ A to BLAS's SYRK, half the
                # multiply-adds (at (1000,2000,1) the set-up went from 0.19 to 0.13 s)
                half = x if unit else x * np.sqrt(wp)[:, None]
                grams[p] = half.T @ half
            else:  # a few factors: negligible beside X'Y, and the bits as always
                grams[p] = xwp.T @ x
            xw[p] = wp @ x
            mass_p[p] = wp.sum()
            if len(patterns) > 1:
                cols = np.flatnonzero(inverse == p)
                for start in range(0, len(cols), block):
                    part = cols[start:start + block]
                    xty[part] = (xwp.T @ y[:, part]).T
        if len(patterns) == 1:
            # X'Y as an (M, N) product: ~20% faster than Y'X whatever Y's memory order
            xw_ok = x if np.all(w_ok == 1.0) else x * w_ok[:, None]
            xty = np.ascontiguousarray((xw_ok.T @ y).T)
        if shift is not None:
            # (X'W1 with one pattern on every row is xw[0]: the same product, not again)
            xw_all = xw[0] if len(patterns) == 1 and np.array_equal(w_ok, wp) else w_ok @ x
            xty -= np.outer(shift, xw_all)
            xty[panel._cache["zero_columns"]] = 0.0
        if "yw" in panel._cache:
            yw = panel._cache["yw"]
        else:
            yw = y.sum(axis=0) if np.all(w_ok == 1.0) else w_ok @ y
        yty = panel.yty().copy()
        diag = None
        if defer:
            # with unit weights the root is x and its sums of squares the preparation's
            squares = panel._cache.get("x_squares") if root is x else None
            root, diag = _zero_exact_root(root, xty, yty, squares)
        else:
            zero_exact(grams, xty, yty, inverse)
        stats = cls(
            n_rows=panel.n_rows,
            gram=grams,
            pattern=inverse,
            xty=xty,
            yty=yty,
            xw=xw,
            yw=yw,
            mass=mass_p[inverse],
            root=root,
        )
        if diag is not None:  # (gram_diagonal's, kept: the set-up and the engine read it)
            stats.__dict__["_diagonal"] = diag[None, :]
        return stats

    @property
    def deferred(self) -> bool:
        """The Gram is deferred and not formed yet (class docstring)."""
        return self.__dict__["_gram"] is None

    def release_gram(self) -> None:
        """Drop a formed Gram that the root can form again: what a fitted model keeps for its
        ``objective`` is then the root (the design's size), not both."""
        if self.root is not None:
            self.__dict__["_gram"] = None
            self.__dict__.pop("_source", None)

    def gram_diagonal(self) -> np.ndarray:
        """(P, M): the diagonal of every pattern's Gram, without forming a deferred one (its
        root's column sums of squares, computed once)."""
        if self.root is None:
            return np.diagonal(self.gram, axis1=1, axis2=2)
        if "_diagonal" not in self.__dict__:
            self.__dict__["_diagonal"] = np.einsum("tm,tm->m", self.root, self.root)[None, :]
        return self.__dict__["_diagonal"]

    def responses(self, rows: np.ndarray) -> SufficientStats:
        """The statistics of the responses ``rows`` (an index array or mask); the per-pattern
        Grams (or the root) are shared, a deferred Gram stays deferred."""
        sub = SufficientStats(
            n_rows=self.n_rows, gram=self.__dict__["_gram"], pattern=self.pattern[rows],
            xty=self.xty[rows], yty=self.yty[rows], xw=self.xw, yw=self.yw[rows],
            mass=self.mass[rows], root=self.root)
        if sub.deferred:  # formed once, for both, by whichever reads it first
            sub.__dict__["_source"] = self
        if "_diagonal" in self.__dict__:  # (the same root)
            sub.__dict__["_diagonal"] = self.__dict__["_diagonal"]
        return sub

    def zero_cells(self) -> np.ndarray:
        """(N, M) bool: cells whose factor is identically zero on the response's observations,
        so the loss does not depend on them."""
        return (self.gram_diagonal() == 0.0)[self.pattern]

    def rescaled(self, factor_scale: np.ndarray, response_scale: float) -> SufficientStats:
        """The statistics of ``x_j / s_j`` and ``y / c`` (``s = factor_scale``,
        ``c = response_scale``): the loss of ``B~ = B * s / c`` is the loss of ``B`` over
        ``c^2``. Exact when the scales are powers of two."""
        s, c = np.asarray(factor_scale, dtype=float), float(response_scale)
        return SufficientStats(
            n_rows=self.n_rows,
            gram=self.gram / (s[:, None] * s[None, :]),
            pattern=self.pattern,
            xty=self.xty / (s * c),
            yty=self.yty / (c * c),
            xw=self.xw / s,
            yw=self.yw / c,
            mass=self.mass,
        )

    def gram_times(self, coef: np.ndarray) -> np.ndarray:
        """``G_p(i) b_i`` for every response (N x M), without the (N, M, M) array of every
        response's Gram (as large as Y when M^2 ~ T): one product per pattern, or batches of
        at most 256 responses when the patterns are many."""
        coef = np.asarray(coef, dtype=float)
        if self.root is not None:  # (one pattern) G b = X'W X b, without forming G
            return root_times(self.root, coef)
        n_patterns = len(self.gram)
        if n_patterns == 1:
            return coef @ self.gram[0].T  # G b per row (G is symmetric up to round-off)
        out = np.empty_like(coef)
        if n_patterns <= 8:
            for p in range(n_patterns):
                rows = self.pattern == p
                out[rows] = coef[rows] @ self.gram[p].T
            return out
        for start in range(0, len(coef), 256):
            part = slice(start, start + 256)
            out[part] = np.einsum("nmk,nk->nm", self.gram[self.pattern[part]], coef[part])
        return out

    def loss_terms(self, coef: np.ndarray) -> np.ndarray:
        """``sum_t w_ti (y_ti - x_t b_i)^2`` per response for a coefficient matrix (N x M)."""
        if self.root is not None:  # b'Gb = |R b|^2: half the products of G b
            fitted = root_fitted(self.root, np.asarray(coef, dtype=float))
            quad = np.zeros(np.shape(coef)[0]) if fitted is None else \
                np.einsum("nt,nt->n", fitted, fitted)
        else:
            quad = np.einsum("nm,nm->n", coef, self.gram_times(coef))
        return self.yty - 2.0 * np.einsum("nm,nm->n", coef, self.xty) + quad

    def loss(self, coef: np.ndarray, terms: np.ndarray | None = None) -> float:
        """The data term ``(1/T') sum_i sum_t w_ti (y_ti - x_t b_i)^2`` (``terms``: the
        :meth:`loss_terms` of ``coef``, when the caller has them)."""
        return float(np.sum(self.loss_terms(coef) if terms is None else terms) / self.n_rows)

    def gradient(self, coef: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`loss` with respect to ``coef`` (N x M)."""
        return (2.0 / self.n_rows) * (self.gram_times(coef) - self.xty)

    def root_factors(self, rtol: float = 1e-12) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Square-root form of the loss for a sum of squares.

        Returns ``(roots, targets, offset)``: for each pattern ``p`` a matrix ``R_p`` (r_p x M)
        with ``R_p'R_p = gram[p]``; per response ``z_i`` with ``R_p'z_i = xty_i`` (stacked per
        response into a list aligned with ``pattern``); and ``offset_i = yty_i - |z_i|^2 >= 0``.
        Then ``sum_t w_ti (y_ti - x_t b)^2 = |R_p b - z_i|^2 + offset_i``. Built from the
        eigendecomposition so a singular Gram (collinear or constant factors) is fine.
        """
        roots = []
        inv_roots = []
        for g in self.gram:
            vals, vecs = np.linalg.eigh((g + g.T) / 2.0)
            keep = vals > rtol * max(vals.max(initial=0.0), 1e-300)
            sq = np.sqrt(vals[keep])
            roots.append((vecs[:, keep] * sq).T)
            inv_roots.append(vecs[:, keep] / sq)
        targets = [inv_roots[p].T @ self.xty[i] for i, p in enumerate(self.pattern)]
        offset = self.yty - np.array([t @ t for t in targets])
        return roots, targets, np.maximum(offset, 0.0)


# A product R b through the columns where ``b`` is nonzero only while they are at most this
# share of them: gathering them (a copy of ``T' k`` values) and the smaller product cost about
# as much as the whole product at half the columns (1000 x 2000: 0.33 ms at 400 columns
# against 0.53 ms).
_SPARSE_PRODUCT_SHARE = 0.25


def root_times(root: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``R'(R b)`` for every row ``b`` of ``coef`` (N x M), ``R = root`` (T' x M).

    The products are memory-bound passes over ``R``: where ``coef`` is zero (the prior, a fixed
    part without cells, ``lambda_max``'s gradient at zero) no pass is needed, and where a few of
    its columns are nonzero (a sparse answer on many factors) ``R b`` reads only those columns
    of a column-major root (the prepared factors of a DataFrame)."""
    fitted = root_fitted(root, coef)
    return np.zeros(coef.shape) if fitted is None else fitted @ root


def root_fitted(root: np.ndarray, coef: np.ndarray) -> np.ndarray | None:
    """``R b`` for every row ``b`` of ``coef`` (N x T'), through the nonzero columns of
    ``coef`` when they are few (:func:`root_times`); None when ``coef`` is zero."""
    used = coef.any(axis=0)  # (NaN counts as nonzero: it reaches the product)
    k = int(np.count_nonzero(used))
    if k == 0:
        return None
    if k <= _SPARSE_PRODUCT_SHARE * coef.shape[1] and root.flags.f_contiguous:
        cols = np.flatnonzero(used)
        return coef[:, cols] @ root[:, cols].T
    return coef @ root.T


def sub_block(matrix: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``matrix[pos][:, pos]`` of a square ``matrix`` for ``pos`` of shape (k,) or (n, k):
    (k, k) or (n, k, k). One block (one response, many factors) by two takes, 4x faster than
    the general gather at 550 columns."""
    if pos.ndim == 1 or len(pos) == 1:
        one = pos.reshape(-1)
        block = matrix.take(one, axis=0).take(one, axis=1)
        return block if pos.ndim == 1 else block[None]
    return matrix[pos[..., :, None], pos[..., None, :]]


class GramBlocks:
    """Blocks ``G_CC`` of a deferred Gram ``G = R'R`` for growing column sets ``C``: the block
    of the columns seen so far is kept, and a request with new columns costs only their
    products with the others (``T' |new| |C|``), not the whole block again. Past ``limit``
    columns the block starts again from the request's own columns (those seen before may no
    longer be asked for: a working set's early rounds). A request of more than ``limit``
    columns, or one that would bring the products spent past half those of forming the whole
    Gram (``T' M^2 / 4``: several responses whose supports together cover most columns),
    returns None, and so does every later one: the whole Gram, one SYRK, is then the cheaper
    way."""

    def __init__(self, root: np.ndarray, limit: int):
        self.root, self.limit = root, limit
        self.cols = np.empty(0, dtype=np.intp)
        self.block = np.empty((0, 0))
        self.where = np.full(root.shape[1], -1, dtype=np.intp)  # column -> row of block
        t_rows, m = root.shape
        self.budget = 0.25 * t_rows * m * m  # multiply-adds left for blocks
        self.spent = 0.0

    def __call__(self, cols: np.ndarray) -> np.ndarray | None:
        """``G[cols][:, cols]`` (any order, repeats allowed), or None (class docstring)."""
        if not self.grow(cols):
            return None
        return sub_block(self.block, self.where[cols])

    def own_order(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(cols', G[cols'][:, cols'])`` for the distinct columns ``cols``, ``cols'`` their
        order in the kept block: the kept block itself (no copy, exactly symmetric) where it
        holds no other column, as a working set's growing columns do; None where refused."""
        if not self.grow(cols):
            return None
        if len(self.cols) == len(cols):
            return self.cols, self.block
        return cols, sub_block(self.block, self.where[cols])

    def grow(self, cols: np.ndarray) -> bool:
        """Bring ``cols`` into the kept block (class docstring); False where refused. The kept
        block is exactly symmetric and never changed in place (a grown one is a new array)."""
        if self.spent > self.budget:
            return False
        new = np.unique(cols[self.where[cols] < 0])
        if len(new) and len(self.cols) + len(new) > self.limit:
            wanted = np.unique(cols)
            if len(wanted) > self.limit:
                return False
            self.where[self.cols] = -1
            self.cols, self.block, new = self.cols[:0], self.block[:0, :0], wanted
        if len(new):
            k = len(self.cols)
            self.spent += self.root.shape[0] * len(new) * (k + len(new))
            if self.spent > self.budget:
                return False
            every = np.concatenate([self.cols, new])
            fresh = self.root[:, new]
            # the new columns' products with the old ones, and with themselves by SYRK (NumPy
            # hands A.T @ A to it: half of those products; 10-35% of a round's block)
            cross = fresh.T @ self.root[:, self.cols]  # (new, old)
            block = np.empty((len(every), len(every)))
            block[:k, :k] = self.block
            block[k:, :k] = cross
            block[:k, k:] = cross.T
            block[k:, k:] = fresh.T @ fresh
            self.cols, self.block = every, block
            self.where[new] = np.arange(k, len(every))
        return True


def _gram_get(stats: SufficientStats) -> np.ndarray:
    held = stats.__dict__["_gram"]
    if held is None:  # deferred: formed once, by SYRK, on first use
        source = stats.__dict__.get("_source")  # the statistics these are a subset of
        held = source.gram if source is not None else (stats.root.T @ stats.root)[None]
        stats.__dict__["_gram"] = held
    return held


def _gram_set(stats: SufficientStats, value) -> None:
    # (the frozen dataclass's __init__ assigns its fields through object.__setattr__, which
    # reaches this setter; any later assignment is refused by the frozen __setattr__)
    stats.__dict__["_gram"] = value


# ``gram`` is a dataclass field read through a property: a deferred Gram (None at
# construction) is formed from ``root`` the first time anything reads it.
SufficientStats.gram = property(_gram_get, _gram_set, doc="(P, M, M) Grams (class docstring).")
