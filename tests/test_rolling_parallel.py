"""RollingLassoModel(n_jobs=2): blocks of dates fitted in real loky processes give the serial
answers (bit for bit without warm starts, to the certified tolerance with them), with the same
failures, policies, stable labels and no look-ahead."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from rolling_helpers import assert_same_rolling, changed_after

from xl_factorlasso import LassoModel, RollingLassoModel, SolveError, make_factor_panel
from xl_factorlasso.core.rolling._estimator import _blocks, _Job

T, M, N = 260, 5, 12

# Warm and cold answers are both certified to a relative duality gap of 1e-8 (the fast engine's
# default); on these unit-scale panels that bounds loading differences far below 1e-8, the
# bound tests/test_rolling.py already uses between warm and cold serial fits.
WARM_ATOL = 1e-8


@pytest.fixture(scope="module")
def panel():
    return make_factor_panel(T, M, N, seed=3, freq="W-FRI", start="2015-01-02")


def _lam(panel):
    return 0.05 * LassoModel().lambda_max(panel.x, panel.y)


def _model(panel, config):
    if config == "hcgl_l1":
        return LassoModel(model_type="HCGL", reg_lambda=_lam(panel), l1_weight=0.1, span=52)
    return LassoModel(reg_lambda=_lam(panel), factors_beta_loading_signs=panel.signs,
                      factors_beta_prior=panel.prior)


# ---------------------------------------------------------------------------- blocks
def test_blocks_have_equal_numbers_of_dates_and_stay_contiguous():
    d = pd.Timestamp("2020-01-31")
    # an expanding window (1, 2, ..., 10 rows): carried statistics make a date cost about the
    # same whatever its rows, so the blocks split the dates, not the rows
    jobs = [_Job(d, 0, k) for k in range(10)]
    assert [len(b) for b in _blocks(jobs, 2)] == [5, 5]
    assert [len(b) for b in _blocks(jobs, 3)] == [4, 3, 3]
    assert [len(b) for b in _blocks(jobs, 4)] == [3, 3, 2, 2]
    for k in (1, 2, 3, 4, 10):
        assert sum(_blocks(jobs, k), []) == jobs
    assert _blocks(jobs, 12) == [[j] for j in jobs]  # never an empty block
    assert _blocks(jobs[:1], 2) == [jobs[:1]]


# ---------------------------------------------------------------------------- failures
def _broken(panel):
    """x with an infinite value on row 130 and eight 30-row windows (two blocks of four):
    the fourth date (last of block 1) and the fifth (first of block 2) hold it."""
    x = panel.x.copy()
    x.iloc[130, 2] = np.inf
    return x, list(x.index[[99, 109, 119, 139, 159, 179, 199, 219]])


@pytest.mark.parametrize("on_failure", ["previous", "skip"])
@pytest.mark.parametrize("warm", [False, True])
def test_failures_inside_blocks_match_serial(panel, on_failure, warm):
    x, dates = _broken(panel)
    kw = dict(rebalance=dates, window=30, on_failure=on_failure, warm_start=warm)
    base = _model(panel, "lasso_signs_prior")
    serial = RollingLassoModel(base, **kw).fit(x, panel.y)
    par = RollingLassoModel(base, n_jobs=2, **kw).fit(x, panel.y)
    assert_same_rolling(serial, par, atol=0.0 if not warm else WARM_ATOL)
    assert list(par.failures_["date"]) == dates[3:5]
    if on_failure == "previous":
        # the date of block 2 keeps the snapshot fitted in block 1's process
        assert par.results_[dates[4]] is par.results_[dates[2]]
        assert list(par.failures_["action"]) == [f"kept previous ({dates[2].date()})"] * 2
    else:
        assert list(par.results_.dates) == dates[:3] + dates[5:]


def test_raise_gives_the_first_failed_date_in_date_order(panel):
    x, dates = _broken(panel)
    # a second, later failure in block 2 only: the first one (block 1) is the one raised
    x.iloc[200, 0] = np.nan
    base = _model(panel, "lasso_signs_prior")
    messages = []
    for n_jobs in (None, 2):
        with pytest.raises(ValueError, match=(
                f"^rebalancing date {dates[3].date()}: x: column 'f2', row .* is infinite$"
        )) as info:
            RollingLassoModel(base, rebalance=dates, window=30, on_failure="raise",
                              n_jobs=n_jobs).fit(x, panel.y)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_solve_error_from_a_worker_keeps_its_attempts(panel):
    # one iteration cannot certify HCGL with an L1 share (LASSO's active-set start would solve
    # these dates before any iteration, and a monkeypatch does not reach the workers)
    model = LassoModel(model_type="HCGL", l1_weight=0.1, span=52, reg_lambda=_lam(panel),
                       engine="fast", engine_params={"max_iter": 1})
    dates = list(panel.x.index[[99, 149, 199, 249]])
    with pytest.raises(SolveError, match=f"^rebalancing date {dates[0].date()}: ") as info:
        RollingLassoModel(model, rebalance=dates, on_failure="raise", n_jobs=2).fit(
            panel.x, panel.y)
    assert info.value.attempts and info.value.gap > 0
    skip = RollingLassoModel(model, rebalance=dates, on_failure="skip", n_jobs=2).fit(
        panel.x, panel.y)
    assert len(skip.results_) == 0 and list(skip.failures_["date"]) == dates
    assert skip.failures_["reason"].str.startswith("SolveError: fast engine not certified").all()


# ---------------------------------------------------------------------------- look-ahead
def test_no_look_ahead_with_two_processes(panel):
    """Rows after d changed and added: every result at or before d is unchanged, bit for bit
    (cold starts: the blocks move when dates are added)."""
    base = _model(panel, "hcgl_l1")
    kw = dict(rebalance="QE", min_history=40, warm_start=False, n_jobs=2)
    first = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
    d = first.results_.dates[-3]
    x2, y2 = changed_after(panel.x, panel.y, d)
    later = RollingLassoModel(base, **kw).fit(x2, y2).results_
    before = [t for t in first.results_.dates if t <= d]
    assert [t for t in later.dates if t <= d] == before and len(before) >= 5
    for t in before:
        a, b = first.results_[t], later[t]
        for name in ("x_covar", "y_betas", "y_variances"):
            pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert not np.allclose(first.results_[first.results_.dates[-1]].y_betas,
                           later[first.results_.dates[-2]].y_betas)


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_n_jobs_is_refused_in_fit(panel, bad):
    model = RollingLassoModel(n_jobs=bad)  # accepted as given (scikit-learn convention)
    message = ("n_jobs must be None, a whole number >= 1 or -1 (one process per core), "
               f"got {bad!r}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.fit(panel.x, panel.y)
    assert not hasattr(model, "results_")


def test_n_jobs_one_and_all_cores(panel):
    base = _model(panel, "lasso_signs_prior")
    kw = dict(rebalance="QE", min_history=52, warm_start=False)
    serial = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
    assert_same_rolling(serial, RollingLassoModel(base, n_jobs=1, **kw).fit(panel.x, panel.y))
    assert_same_rolling(serial, RollingLassoModel(base, n_jobs=-1, **kw).fit(panel.x, panel.y))


def test_a_block_fits_with_one_blas_thread(panel, monkeypatch):
    """The block function (what a worker process runs) limits BLAS itself: a loky worker does
    not go through the parent's decorated ``fit``."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from xl_factorlasso.core.rolling import _estimator

    seen = []
    real = _estimator._fit_date

    def probe(*args):
        seen.append({lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                     if lib["user_api"] == "blas"})
        return real(*args)

    monkeypatch.setattr(_estimator, "_fit_date", probe)
    monkeypatch.delenv("XL_FACTORLASSO_BLAS_THREADS", raising=False)
    jobs = [_Job(panel.x.index[k], 0, k) for k in (99, 149)]
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        fits = _estimator._fit_block(_model(panel, "lasso_signs_prior"), panel.x, panel.y, 0,
                                     jobs, True, 1.0, False)
    assert [f.error for f in fits] == [None, None] and fits[1].warm
    assert seen == [{1}, {1}]
