"""What the dates' fits of a rolling fit warn about reaches the user once per note, with its
dates, whether the dates ran serially, in processes or on a Dask cluster (a worker's own
warnings never reach the caller), and notes recorded in one thread stay in that thread."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from rolling_helpers import assert_same_rolling

from xl_factorlasso import LassoModel, RollingLassoModel, make_factor_panel
from xl_factorlasso.core._notes import dated_notes, note, recorded, user_warnings

WINDOW = 60
FLAT_ROWS = 120  # factor f2 is 0.01 on the first rows: constant in the windows inside them


@pytest.fixture(scope="module")
def data():
    panel = make_factor_panel(300, 4, 6, seed=1, freq="W-FRI", start="2010-01-01")
    x = panel.x.copy()
    x.iloc[:FLAT_ROWS, 2] = 0.01
    return x, panel.y


def _flat_dates(x: pd.DataFrame, roll: RollingLassoModel) -> list:
    """The fitted dates whose window (the last WINDOW rows up to the date) holds one value
    of f2: computed from the data, not from the fit."""
    out = []
    for d in roll.fit_info_.index:
        stop = x.index.get_loc(d)
        if x["f2"].iloc[stop - WINDOW + 1:stop + 1].nunique() == 1:
            out.append(d)
    return out


def _fit(x, y, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        roll = RollingLassoModel(LassoModel(reg_lambda=1e-4), rebalance="QE", window=WINDOW,
                                 **kw).fit(x, y)
    return roll, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


FLAT = ("x: factor 'f2' is constant on every row of the fit: its loadings stay at the prior "
        "(0 without one)")


def test_one_warning_with_its_dates_and_notes_by_date(data):
    x, y = data
    roll, caught = _fit(x, y)
    flat = _flat_dates(x, roll)
    assert len(flat) == 5 and len(roll.fit_info_) == 19
    assert caught == [f"5 of 19 rebalancing dates, from {flat[0].date()} to "
                      f"{flat[-1].date()}: {FLAT}"]
    expected = pd.DataFrame({"date": flat, "note": [FLAT] * len(flat)})
    pd.testing.assert_frame_equal(roll.notes_, expected)
    # the flat factor's loadings stay at 0 exactly at those dates, and only there
    for d in roll.fit_info_.index:
        assert (roll.results_[d].y_betas["f2"] == 0).all() == (d in flat)


def test_two_processes_give_the_same_warning_and_notes(data):
    x, y = data
    serial, caught = _fit(x, y)
    parallel, caught2 = _fit(x, y, n_jobs=2)
    assert caught2 == caught and len(caught) == 1
    assert_same_rolling(serial, parallel, atol=1e-8)


def test_without_notes_the_table_is_empty(data):
    x, y = data
    roll, caught = _fit(x.iloc[FLAT_ROWS:], y.iloc[FLAT_ROWS:])
    assert caught == []
    assert list(roll.notes_.columns) == ["date", "note"] and roll.notes_.empty


def test_dated_notes_reads_the_dates():
    d = list(pd.to_datetime(["2020-01-31", "2020-02-28", "2020-03-31", "2020-04-30",
                             "2020-05-29"]))
    w = UserWarning
    notes = [(d[0], w, "a"), (d[0], w, "a"), (d[1], w, "b"), (d[2], w, "b"), (d[1], w, "c"),
             (d[2], w, "c"), (d[3], w, "c"), (d[4], w, "c")] + [(t, w, "e") for t in d]
    assert dated_notes(notes, 5) == [
        (w, "rebalancing date 2020-01-31: a"),
        (w, "rebalancing dates 2020-02-28 and 2020-03-31: b"),
        (w, "4 of 5 rebalancing dates, from 2020-02-28 to 2020-05-29: c"),
        (w, "every rebalancing date (5, 2020-01-31 to 2020-05-29): e"),
    ]
    three = dated_notes([(t, w, "f") for t in d[:3]], 5)
    assert three == [(w, "rebalancing dates 2020-01-31, 2020-02-28 and 2020-03-31: f")]


def test_notes_outside_a_recording_are_warnings():
    with pytest.warns(UserWarning, match="^plain$"):
        note("plain")
    with recorded() as got, warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would fail the test
        note("kept", RuntimeWarning)
    assert got == [(RuntimeWarning, "kept")]


class _Mine(UserWarning):
    pass


def test_user_warnings_each_once_in_order_and_the_others_passed_on():
    with pytest.warns(RuntimeWarning, match="^overflow here$") as outside:
        with user_warnings() as got:
            warnings.warn("b", UserWarning, stacklevel=1)
            warnings.warn("overflow here", RuntimeWarning, stacklevel=1)
            note("a", _Mine)
            warnings.warn("b", UserWarning, stacklevel=1)  # a repeat (another fold, another date)
            assert got == []  # filled when the block ends
    assert got == [(UserWarning, "b"), (_Mine, "a")]
    assert [str(w.message) for w in outside] == ["overflow here"]


def test_user_warnings_can_drop_the_others():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning passed on would fail the test
        with user_warnings(others="drop") as got:
            warnings.warn("overflow here", RuntimeWarning, stacklevel=1)
            warnings.warn("kept", UserWarning, stacklevel=1)
    assert got == [(UserWarning, "kept")]
    with pytest.raises(ValueError, match="others must be 'pass' or 'drop'"):
        with user_warnings(others="print"):
            pass


def test_two_threads_record_their_own_notes():
    """Interleaved: each thread enters, then both note, then both leave in the order they
    entered — the order in which ``warnings.catch_warnings`` (process-wide) mixes them up."""
    entered, noted = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)
    got: dict[str, list] = {}

    def run(name: str, first: bool):
        with recorded() as notes:
            entered.wait()
            note(f"{name} 1")
            noted.wait()
            note(f"{name} 2")
        got[name] = [m for _, m in notes]

    threads = [threading.Thread(target=run, args=(n, n == "a")) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == {"a": ["a 1", "a 2"], "b": ["b 1", "b 2"]}


def test_the_flat_factor_warning_is_raised_for_carried_windows_too():
    """demean=False: a factor at 0 in the first windows is carried (its statistics are
    exact), and still named, at its dates only."""
    panel = make_factor_panel(200, 3, 4, seed=2, freq="W-FRI", start="2012-01-06")
    x = panel.x.copy()
    x.iloc[:90, 1] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        roll = RollingLassoModel(LassoModel(reg_lambda=1e-4, demean=False), rebalance="ME",
                                 window=52).fit(x, panel.y)
    zero = [d for d in roll.fit_info_.index
            if np.all(x["f1"].iloc[x.index.get_loc(d) - 51:x.index.get_loc(d) + 1] == 0)]
    assert len(zero) >= 2
    assert list(roll.notes_["date"]) == zero
    assert set(roll.notes_["note"]) == {"x: factor 'f1' is 0 on every row of the fit: its "
                                        "loadings stay at the prior (0 without one)"}
    assert sum("f1" in str(w.message) for w in caught) == 1
