"""``RollingLassoModel``: a :class:`LassoModel` re-estimated at every rebalancing date."""

from __future__ import annotations

import numbers
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .._base import BaseEstimator, clone
from .._notes import dated_notes, recorded
from .._threads import blas_threads, limit_blas_threads
from ..cluster._hierarchical import compiled_linkage
from ..exceptions import SolveError
from ..linear_model import LassoModel
from ..linear_model._lasso_model import warn_dependent_factors
from ._containers import CLUSTER, CurrentFactorCovarData, RollingFactorCovarData
from ._dates import check_index, rebalance_positions, window_start
from ._incremental import BlockStatistics, Window
from ._labels import stable_cluster_labels

__all__ = ["RollingLassoModel", "ON_FAILURE"]

#: The failure policies of :class:`RollingLassoModel` (parameter ``on_failure``).
ON_FAILURE = ("previous", "skip", "raise")

# What a date's fit may raise about its data; anything else is a bug and propagates.
_FIT_ERRORS = (ValueError, SolveError, np.linalg.LinAlgError)


def _dated(err: Exception, date: pd.Timestamp) -> Exception:
    """The same error, its message prefixed with the rebalancing date."""
    message = f"rebalancing date {date.date()}: {err}"
    if isinstance(err, SolveError):
        return SolveError(message, err.attempts, gap=err.gap)
    return type(err)(message)


@dataclass(frozen=True)
class _Job:
    """One date to fit: its date and its window's rows ``[start, stop]`` (positions)."""

    date: pd.Timestamp
    start: int
    stop: int


@dataclass(frozen=True)
class _DateFit:
    """What the parent needs of one date's fit: the snapshot (raw cluster labels), its
    loadings and solve info — or the error."""

    snapshot: CurrentFactorCovarData | None = None
    clusters: pd.Series | None = None
    n_iter: float = np.nan
    duality_gap: float = np.nan
    solver: str | None = None
    warm: bool = False
    error: Exception | None = None
    notes: tuple[tuple[type[Warning], str], ...] = ()


def _fit_date(model: LassoModel, x: pd.DataFrame, y: pd.DataFrame, coef_init, date,
              annualization_factor: float, window: Window | None = None
              ) -> tuple[_DateFit, np.ndarray | None]:
    """Fit ``model`` (the block's own clone of the base model, fitted again at every date:
    each fit replaces every fitted attribute, and the date's result keeps none of them that
    a later fit could change) on one window.

    Returns the date's result and its loadings (N x M, the next warm start) or None on error.
    ``window``: the window's statistics carried from the previous date
    (:mod:`~xl_factorlasso.core.rolling._incremental`); None prepares ``x``, ``y`` from
    scratch (``LassoModel._setup``). The fit's notes (:mod:`~xl_factorlasso.core._notes`) are
    recorded in the result: in a worker they would never reach the user, and the parent
    gives each once with its dates.
    """
    with recorded() as notes:
        try:
            model._fit_prepared(model._setup(x, y, window=window), coef_init=coef_init)
            del model._fit_setup_  # the window's prepared panel: not kept for every date
            snapshot = CurrentFactorCovarData.from_model(
                model, x, estimation_date=date, annualization_factor=annualization_factor,
                x_covar=None if window is None else window.factor_covariance())
        except _FIT_ERRORS as err:
            return _DateFit(error=err, notes=tuple(notes)), None
    return _DateFit(snapshot=snapshot, clusters=model.clusters_,
                    n_iter=np.nan if model.n_iter_ is None else model.n_iter_,
                    duality_gap=model.duality_gap_, solver=model.solver_,
                    warm=coef_init is not None, notes=tuple(notes)), model.coef_.to_numpy()


def _aligned_cells(base: LassoModel, block: BlockStatistics) -> LassoModel:
    """``base`` with its sign and prior matrices read once for the block (the same numbers
    every date's ``_setup`` would read, already aligned: it then skips the conversion).
    Unchanged when the block's data are not carried or a matrix is refused (each date then
    reports the error)."""
    if block.reason is not None:
        return base
    aligned = {}
    for name in ("factors_beta_loading_signs", "factors_beta_prior"):
        matrix = getattr(base, name)
        if matrix is None:
            continue
        try:
            values = base._cell_matrix(matrix, name, block.y.columns, block.x.columns)
        except ValueError:
            return base
        aligned[name] = pd.DataFrame(values, index=block.y.columns, columns=block.x.columns)
    return clone(base).set_params(**aligned) if aligned else base


def _fit_block(base: LassoModel, x: pd.DataFrame, y: pd.DataFrame, offset: int,
               jobs: list[_Job], warm_start: bool, annualization_factor: float,
               stop_on_error: bool, progress=None) -> list[_DateFit]:
    """Fit consecutive dates on the rows ``x``, ``y`` (position ``offset`` of the panel on).

    The first date starts cold, each later one from the previous successful date's loadings
    when ``warm_start``. The windows' sufficient statistics are carried from date to date
    (:class:`~xl_factorlasso.core.rolling._incremental.BlockStatistics`: rows added and
    removed, EWMA decay), a date that cannot be carried exactly is prepared from scratch.
    With ``stop_on_error`` the block ends at its first failed date (the parent raises it;
    later dates would be discarded). Runs in a worker process or in the parent (serial: one
    block), always with the BLAS thread limit of the fits.
    ``progress(done)``, if given, is called after each date with the dates done so far.
    """
    out: list[_DateFit] = []
    prev_coef = None
    # Many dates: SciPy's compiled linkage (same matrix) is worth its one-off import.
    with blas_threads(), compiled_linkage() if len(jobs) > 1 else nullcontext():
        block = BlockStatistics(base, x, y, [job.start - offset for job in jobs], offset)
        # one clone for the block (cloning copies the sign and prior matrices: 0.3 ms a date
        # at N = 500, M = 30)
        model = clone(_aligned_cells(base, block))
        for job in jobs:
            rows = slice(job.start - offset, job.stop - offset + 1)
            window = block.window(rows.start, rows.stop - 1)
            result, coef = _fit_date(model, x.iloc[rows], y.iloc[rows],
                                     prev_coef if warm_start else None, job.date,
                                     annualization_factor, window)
            out.append(result)
            if progress is not None:
                progress(len(out))
            if coef is not None:
                prev_coef = coef
            elif stop_on_error:
                break
    return out


def _blocks(jobs: list[_Job], n_blocks: int) -> list[list[_Job]]:
    """Contiguous blocks of ``jobs`` with about the same number of dates each (the first ones
    one longer when they do not divide evenly).

    A date costs about the same whatever its window's rows: the statistics are carried from
    date to date (only a block's first window is summed whole) and the certified solve does
    not depend on the rows. Balancing rows instead gave an expanding window's first block
    166 of 240 dates (benchmarks/bench_rolling_dask.py: two workers vs one 1.32-1.34x with
    that cut, 1.62-1.91x with this one).
    """
    n_blocks = max(1, min(int(n_blocks), len(jobs)))
    size, extra = divmod(len(jobs), n_blocks)
    bounds = np.cumsum([0] + [size + (k < extra) for k in range(n_blocks)])
    return [jobs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _numbered_block(number: int, *args) -> tuple[int, list[_DateFit]]:
    """``_fit_block(*args)`` with its block's number (joblib returns blocks as they finish)."""
    return number, _fit_block(*args)


def _in_date_order(arrivals, n_blocks: int, stop_on_error: bool, report) -> list[_DateFit]:
    """Every fit in date order from blocks arriving in any order as ``(number, fits)``.

    ``report(n)`` is called as each block arrives (``n``: its dates). With ``stop_on_error``
    collecting ends once every block up to the first one that stopped at an error is in:
    nothing after that error is used (the parent raises it). ``arrivals`` is closed on the way
    out, so a pool or cluster stops the blocks still running.
    """
    got: dict[int, list[_DateFit]] = {}

    def stops(fits):
        return stop_on_error and bool(fits) and fits[-1].error is not None

    try:
        for number, fits in arrivals:
            got[number] = fits
            report(len(fits))
            k = 0
            while k in got and not stops(got[k]):
                k += 1
            if k in got:  # blocks 0..k are in and block k ended at an error
                break
    finally:
        close = getattr(arrivals, "close", None)
        if close is not None:
            with warnings.catch_warnings():  # joblib's notice that it cancelled the rest
                warnings.filterwarnings("ignore", "[0-9]+ tasks which were still being",
                                        UserWarning)
                close()
    out: list[_DateFit] = []
    for k in range(n_blocks):
        if k not in got:
            break
        out.extend(got[k])
        if stops(got[k]):
            break
    return out


class RollingLassoModel(BaseEstimator):
    """Re-fit a :class:`~xl_factorlasso.LassoModel` at each rebalancing date, without look-ahead.

    At a date whose row is ``d`` the model is fitted on the rows ``[d - window + 1, d]``
    (``window`` an int) or ``[0, d]`` (``"expanding"``) only; nothing after ``d`` is read. Each
    date's model is a clone of ``estimator`` (any model type and option), started from the
    previous date's loadings when ``warm_start`` is on.

    Parameters
    ----------
    estimator : LassoModel, optional
        The model to re-fit (default ``LassoModel()``); it is cloned, never fitted itself.
    rebalance : str or sequence of date-like, default "ME"
        A pandas frequency ("W-FRI", "ME", "QE", ...): the date of each period is its last row
        of data (the last, possibly incomplete, period included). Or explicit dates: each maps
        to the last row at or before it; a date with no row at or before it is a failure
        (reason "no data"), two dates on the same row count once.
    window : "expanding" or int, default "expanding"
        All rows up to the date, or the last ``window`` rows (a positive whole number).
    min_history : int, optional
        Fewest rows a window must have (default: ``window`` for an integer window, so only
        full windows are fitted; 1 for an expanding window, leaving the check to the model).
        A date with fewer rows is a failure (reason "too little history") and has no result.
    on_failure : {"previous", "skip", "raise"}, default "previous"
        What a date whose fit fails (bad data in its window, no certified solution) gets:

        * ``"previous"``: the last successful snapshot, unchanged (its ``estimation_date``
          stays the date it was estimated at); skipped when there is none yet;
        * ``"skip"``: no result for that date;
        * ``"raise"``: the error, prefixed with the date.

        Every failure — also "too little history" and "no data", which are never raised — is
        a row of ``failures_``; none is silent.
    warm_start : bool, default True
        Start each date's solve from the previous successful date's loadings (the answer is
        the same to the solver's certified tolerance; it only takes fewer iterations).
    annualization_factor : float, default 1.0
        Multiplies ``x_covar``, ``residual_var``, ``ewma_var`` and ``insample_alpha`` of the
        snapshots (e.g. 52 for weekly returns); loadings and R² are unchanged.
    n_jobs : int, optional
        Worker processes (joblib's "loky"): None or 1 fits serially; ``k > 1`` splits the
        dates into ``k`` contiguous blocks of about equal numbers of dates, one process each
        (-1: one per core). Each block's first date starts cold, later ones warm; every date
        is certified, so the loadings equal the serial ones to the solver's tolerance
        (bit for bit with ``warm_start=False``). Failures, labels and policies are applied
        in date order in the calling process, as serially. With ``scheduler``: the number of
        blocks (default, or -1: the cluster's worker threads).
    scheduler : dask.distributed.Client or str, optional
        Run the blocks of dates on a Dask cluster (the ``dask`` extra, see
        docs/distributed.md): a ``Client`` (used and left open) or a scheduler's address
        such as ``"tcp://host:8786"`` (connected for the fit only, then closed; no answer
        within 10 s is a ``ConnectionError``). Each block's rows are shipped once; the
        results are those of ``n_jobs`` blocks in processes (the same blocks).

    Attributes
    ----------
    results_ : RollingFactorCovarData
        One :class:`CurrentFactorCovarData` per date that has a result, keyed by the date's
        row. Cluster labels (HCGL/FCGL/GROUP) are stable across dates.
    failures_ : pandas.DataFrame
        One row per failed date: ``date``, ``reason``, ``action`` ("kept previous",
        "skipped").
    fit_info_ : pandas.DataFrame
        One row per fitted date (index ``date``): ``first_row`` (first date of the window),
        ``n_rows``, ``n_iter`` (fast-engine iterations, NaN when another solver answered),
        ``duality_gap``, ``solver``, ``warm`` (whether a warm start was used).
    dates_ : pandas.DatetimeIndex
        Every rebalancing date, fitted or failed.
    notes_ : pandas.DataFrame
        What the dates' fits warned about (a constant factor in a window, responses below
        ``warmup_period``...): one row per date and note, columns ``date``, ``note``. ``fit``
        also warns each distinct note once, prefixed with its dates; the same serially, in
        processes or on a Dask cluster (where a worker's warnings would not reach you).
    """

    _estimator_type = None

    def __init__(self, estimator=None, rebalance="ME", window="expanding", min_history=None,
                 on_failure="previous", warm_start=True, annualization_factor=1.0,
                 n_jobs=None, scheduler=None):
        self.estimator = estimator
        self.rebalance = rebalance
        self.window = window
        self.min_history = min_history
        self.on_failure = on_failure
        self.warm_start = warm_start
        self.annualization_factor = annualization_factor
        self.n_jobs = n_jobs
        self.scheduler = scheduler

    # ------------------------------------------------------------------ validation
    def _checked(self) -> tuple[LassoModel, int]:
        base = LassoModel() if self.estimator is None else self.estimator
        if not isinstance(base, LassoModel):
            raise ValueError(f"estimator must be a LassoModel, got {type(base).__name__}")
        # Parameters are the same at every date: a bad one is reported once, before any fit.
        base._checked_params()
        base._checked_lambda()
        w = self.window
        if w != "expanding" and (isinstance(w, bool) or not isinstance(w, numbers.Integral)
                                 or w < 1):
            raise ValueError(f"window must be 'expanding' or a whole number of rows >= 1, "
                             f"got {w!r}")
        m = self.min_history
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Integral)
                              or m < 1):
            raise ValueError(f"min_history must be a whole number of rows >= 1, got {m!r}")
        if m is None:
            m = 1 if w == "expanding" else int(w)
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {list(ON_FAILURE)}, "
                             f"got {self.on_failure!r}")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False, got {self.warm_start!r}")
        a = self.annualization_factor
        if (isinstance(a, bool) or not isinstance(a, numbers.Real) or not np.isfinite(a)
                or a <= 0):
            raise ValueError(f"annualization_factor must be a number > 0, got {a!r}")
        k = self.n_jobs
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                              or not (k >= 1 or k == -1)):
            raise ValueError(f"n_jobs must be None, a whole number >= 1 or -1 (one process "
                             f"per core), got {k!r}")
        if self.scheduler is not None:
            from ._distributed import check_scheduler

            check_scheduler(self.scheduler)
        return base, int(m)

    @staticmethod
    def _checked_data(x, y) -> pd.DatetimeIndex:
        for name, frame in (("x", x), ("y", y)):
            if not isinstance(frame, pd.DataFrame):
                raise ValueError(f"{name} must be a pandas DataFrame indexed by date, "
                                 f"got {type(frame).__name__}")
        index = check_index(x.index, "x")
        if not y.index.equals(index):
            if len(y.index) != len(index):
                raise ValueError(f"y has {len(y.index)} rows and x {len(index)}: give both on "
                                 "the same dates")
            bad = int(np.flatnonzero(y.index != index)[0])
            raise ValueError(f"y: row {bad} is dated {y.index[bad]!r}, x's is "
                             f"{index[bad]!r}; give both on the same dates")
        return index

    # ------------------------------------------------------------------ fitting
    @limit_blas_threads
    def fit(self, x, y, *, progress=None) -> RollingLassoModel:
        """Fit at every rebalancing date.

        Parameters
        ----------
        x : pandas.DataFrame, shape (T, M)
            Factor returns, indexed by strictly increasing dates.
        y : pandas.DataFrame, shape (T, N)
            Response returns on the same dates (NaN: missing).
        progress : callable, optional
            ``progress(done, total)``, called in this process as dates are fitted: after
            each date serially, as each block completes with ``n_jobs`` or ``scheduler``
            (``done`` cumulative; ``total``: the dates to fit, those with enough history).
            An exception it raises stops the fit and propagates (how a host cancels).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters or inputs (before any fit), or with ``on_failure="raise"`` the
            first failed fit, its message prefixed with the date.
        ImportError
            ``scheduler`` given without Dask installed.
        ConnectionError
            No Dask scheduler at the ``scheduler`` address.
        """
        base, min_history = self._checked()
        if progress is not None and not callable(progress):
            raise ValueError(f"progress must be a function progress(done, total) or None, "
                             f"got {type(progress).__name__}")
        index = self._checked_data(x, y)
        warn_dependent_factors(x, stacklevel=4)  # once (the windows' fits do not prepare x)
        # Plan in date order: each date is a failure known before any fit, or a job.
        plan: list[dict | _Job] = []
        dates: list[pd.Timestamp] = []
        for target in rebalance_positions(index, self.rebalance):
            if target.position is None:
                dates.append(target.requested)
                plan.append({"date": target.requested, "action": "skipped",
                             "reason": f"no data at or before {target.requested.date()} "
                                       f"(the data start on {index[0].date()})"})
                continue
            stop = target.position
            date = index[stop]
            dates.append(date)
            start = window_start(stop, self.window)
            if stop - start + 1 < min_history:
                plan.append({"date": date, "action": "skipped",
                             "reason": f"too little history: {stop - start + 1} rows < "
                                       f"min_history={min_history}"})
                continue
            plan.append(_Job(date, start, stop))
        fits = iter(self._fit_jobs(base, x, y, [p for p in plan if isinstance(p, _Job)],
                                   progress))
        noted = self._assemble(plan, fits, index)
        self.dates_ = pd.DatetimeIndex(dates, name="date")
        for category, text in noted:  # each once, with its dates
            warnings.warn(text, category, stacklevel=3)
        return self

    def _fit_jobs(self, base, x, y, jobs: list[_Job], progress=None) -> list[_DateFit]:
        """Every job's fit, in date order: serially, by blocks in joblib processes, or by
        blocks on a Dask cluster."""
        if not jobs:
            return []
        total, done = len(jobs), 0

        def report(n_dates: int) -> None:  # a block (or the serial run) has n more dates
            nonlocal done
            done += n_dates
            if progress is not None:
                progress(done, total)

        stop_on_error = self.on_failure == "raise"
        args = (bool(self.warm_start), float(self.annualization_factor), stop_on_error)

        def collect(arrivals, n_blocks: int) -> list[_DateFit]:
            return _in_date_order(arrivals, n_blocks, stop_on_error, report)

        if self.scheduler is not None:
            from ._distributed import connected, fit_blocks

            with connected(self.scheduler) as client:
                return fit_blocks(client, self.n_jobs, base, x, y, jobs, args, collect)
        n_blocks = 1
        if self.n_jobs not in (None, 1):
            from joblib import effective_n_jobs

            n_blocks = min(effective_n_jobs(self.n_jobs), len(jobs))
        if n_blocks == 1:
            return _fit_block(base, x, y, 0, jobs, *args,
                              progress=None if progress is None else lambda k: progress(k, total))
        from joblib import Parallel, delayed

        tasks = []
        for number, block in enumerate(_blocks(jobs, n_blocks)):
            lo, hi = min(j.start for j in block), block[-1].stop
            # Each worker gets its block's rows once (not the panel, not once per date).
            tasks.append(delayed(_numbered_block)(number, base, x.iloc[lo:hi + 1],
                                                  y.iloc[lo:hi + 1], lo, block, *args))
        arrivals = Parallel(n_jobs=len(tasks), backend="loky",
                            return_as="generator_unordered")(tasks)
        return collect(arrivals, len(tasks))

    def _assemble(self, plan, fits, index: pd.DatetimeIndex
                  ) -> list[tuple[type[Warning], str]]:
        """Labels, the failure policy, ``results_``, ``failures_``, ``fit_info_`` and
        ``notes_``, in date order (the same whether the fits ran serially or in blocks).
        Returns the notes to warn, dated (:func:`dated_notes`)."""
        results = RollingFactorCovarData()
        failures: list[dict] = []
        info: list[dict] = []
        notes: list[tuple[pd.Timestamp, type[Warning], str]] = []
        last_snapshot = prev_labels = None
        next_label = 1
        for item in plan:
            if not isinstance(item, _Job):
                failures.append(item)
                continue
            date, fit = item.date, next(fits)
            notes.extend((date, category, message) for category, message in fit.notes)
            if fit.error is not None:
                err = fit.error
                if self.on_failure == "raise":
                    raise _dated(err, date) from err
                keep = self.on_failure == "previous" and last_snapshot is not None
                if keep:
                    results.add(date, last_snapshot)
                failures.append({
                    "date": date, "reason": f"{type(err).__name__}: {err}",
                    "action": (f"kept previous ({last_snapshot.estimation_date.date()})"
                               if keep else "skipped")})
                continue
            snapshot = fit.snapshot
            if fit.clusters is not None:
                prev_labels, next_label = stable_cluster_labels(
                    fit.clusters, prev_labels, next_label)
                # The worker recorded the fit's own labels: replace them by the stable ones.
                snapshot = replace(snapshot, clusters=prev_labels,
                                   y_variances=snapshot.y_variances.drop(columns=CLUSTER))
            results.add(date, snapshot)
            last_snapshot = snapshot
            info.append({"date": date, "first_row": index[item.start],
                         "n_rows": item.stop - item.start + 1, "n_iter": fit.n_iter,
                         "duality_gap": fit.duality_gap, "solver": fit.solver,
                         "warm": fit.warm})
        self.results_ = results
        self.failures_ = pd.DataFrame(failures, columns=["date", "reason", "action"])
        self.fit_info_ = pd.DataFrame(
            info, columns=["date", "first_row", "n_rows", "n_iter", "duality_gap", "solver",
                           "warm"]).set_index("date")
        self.notes_ = pd.DataFrame([(d, m) for d, _, m in notes], columns=["date", "note"])
        return dated_notes(notes, sum(isinstance(p, _Job) for p in plan))

    # ------------------------------------------------------------------ shortcuts
    def to_long(self) -> pd.DataFrame:
        """``results_.to_long()``: columns date, asset, factor, beta."""
        return self.results_.to_long()
