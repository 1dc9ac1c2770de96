"""RollingLassoModel.fit(x, y, progress=...): the calls a host sees serially and with joblib
blocks (the Dask path: tests/test_rolling_dask.py), and cancelling by raising."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xl_factorlasso import LassoModel, RollingLassoModel, make_factor_panel
from xl_factorlasso.core.rolling._estimator import _blocks, _in_date_order, _Job

T, M, N = 200, 4, 8


@pytest.fixture(scope="module")
def panel():
    return make_factor_panel(T, M, N, seed=5, freq="W-FRI", start="2016-01-01")


def _base(panel):
    return LassoModel(reg_lambda=0.05 * LassoModel().lambda_max(panel.x, panel.y))


class Cancel(Exception):
    pass


def test_serial_progress_after_every_date_counts_only_dates_to_fit(panel):
    calls = []
    # 46 month-ends; the first 11 have fewer than 52 rows: failures planned, never fitted
    model = RollingLassoModel(_base(panel), min_history=52).fit(
        panel.x, panel.y, progress=lambda done, total: calls.append((done, total)))
    n = len(model.fit_info_)
    assert n == len(model.dates_) - 11 == 35 and len(model.failures_) == 11
    assert calls == [(k, n) for k in range(1, n + 1)]


def test_joblib_progress_once_per_block_cumulative(panel):
    calls = []
    model = RollingLassoModel(_base(panel), min_history=52, n_jobs=2).fit(
        panel.x, panel.y, progress=lambda done, total: calls.append((done, total)))
    info = model.fit_info_
    jobs = [_Job(d, 0, int(k) - 1) for d, k in zip(info.index, info["n_rows"], strict=True)]
    sizes = sorted(len(b) for b in _blocks(jobs, 2))
    assert len(calls) == 2 and {t for _, t in calls} == {35}
    assert calls[-1] == (35, 35) and calls[0][0] in sizes


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_an_exception_from_progress_stops_the_fit(panel, n_jobs):
    seen = []

    def cancel(done, total):
        seen.append(done)
        raise Cancel(f"cancelled at {done}/{total}")

    model = RollingLassoModel(_base(panel), min_history=52, n_jobs=n_jobs)
    with pytest.raises(Cancel, match=r"^cancelled at \d+/35$"):
        model.fit(panel.x, panel.y, progress=cancel)
    assert len(seen) == 1 and not hasattr(model, "results_")
    if n_jobs is None:
        assert seen == [1]  # the first date, not the whole run


def test_raise_policy_progress_stops_at_the_failed_date(panel):
    x = panel.x.copy()
    x.iloc[120, 1] = np.inf
    dates = list(x.index[[99, 109, 119, 129, 139]])
    calls = []
    with pytest.raises(ValueError, match=f"^rebalancing date {dates[3].date()}: "):
        RollingLassoModel(_base(panel), rebalance=dates, window=30, on_failure="raise").fit(
            x, panel.y, progress=lambda done, total: calls.append((done, total)))
    # the window of the third date (rows 90..119) is clean; the fourth holds row 120
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5)]


@pytest.mark.parametrize("bad", [1, "report"])
def test_progress_must_be_callable(panel, bad):
    model = RollingLassoModel(_base(panel))
    message = f"progress must be a function progress(done, total) or None, got {type(bad).__name__}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.fit(panel.x, panel.y, progress=bad)


def test_blocks_arriving_out_of_order_come_back_in_date_order():
    from xl_factorlasso.core.rolling._estimator import _DateFit

    ok, bad = _DateFit(n_iter=1.0), _DateFit(error=ValueError("x"))
    reported = []
    got = _in_date_order(iter([(2, [ok]), (0, [ok, ok]), (1, [ok, ok, ok])]), 3, False,
                         reported.append)
    assert reported == [1, 2, 3] and len(got) == 6
    # stopping: block 1 ended at an error; block 0 arrives later, block 2 is never waited for
    arrivals = iter([(1, [ok, bad]), (0, [ok]), (2, [ok])])
    got = _in_date_order(arrivals, 3, True, reported.append)
    assert [f.error is None for f in got] == [True, True, False]
    assert next(arrivals) == (2, [ok])  # not consumed
