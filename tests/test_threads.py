"""Fits run with one BLAS thread (xl_factorlasso.core._threads) and restore the setting."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from xl_factorlasso import LassoModel, LassoModelCV, RollingLassoModel
from xl_factorlasso.core import _threads
from xl_factorlasso.core.datasets import make_factor_panel


def _blas_threads() -> dict[str, int]:
    """Threads of every loaded BLAS library (some builds are single-threaded whatever the
    limit, e.g. a solver's own OpenBLAS), by file."""
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"}


@pytest.fixture
def seen(monkeypatch):
    """The BLAS thread counts in force inside LassoModel._setup, one dict per call."""
    calls: list[dict[str, int]] = []
    original = LassoModel._setup

    def spy(self, x, y, **kwargs):  # kwargs: the rolling fit's carried window
        calls.append(_blas_threads())
        return original(self, x, y, **kwargs)

    monkeypatch.setattr(LassoModel, "_setup", spy)
    return calls


def _panel():
    p = make_factor_panel(80, 3, 4, seed=1)
    return p.x, p.y


@pytest.mark.parametrize("make", [
    lambda: LassoModel(reg_lambda=1e-4),
    lambda: LassoModelCV(lambdas=[1e-4, 1e-3], n_splits=2, base_model=LassoModel()),
    lambda: RollingLassoModel(LassoModel(reg_lambda=1e-4), rebalance="QE"),
])
def test_fits_run_with_one_blas_thread_and_restore_it(seen, monkeypatch, make):
    monkeypatch.delenv(_threads.ENV, raising=False)
    x, y = _panel()
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        make().fit(x, y)
        assert _blas_threads() == before  # restored on return
    assert seen and all(set(s.values()) == {1} for s in seen)


def test_restored_when_the_fit_raises(seen, monkeypatch):
    monkeypatch.delenv(_threads.ENV, raising=False)
    x, y = _panel()
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with pytest.raises(ValueError):
            LassoModel(reg_lambda=1e-4, model_type="ridge").fit(x, y)
        assert _blas_threads() == before


def test_environment_variable_sets_or_lifts_the_limit(seen, monkeypatch):
    x, y = _panel()
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        monkeypatch.setenv(_threads.ENV, "2")
        LassoModel(reg_lambda=1e-4).fit(x, y)
        monkeypatch.setenv(_threads.ENV, "default")
        LassoModel(reg_lambda=1e-4).fit(x, y)
    assert 2 in before.values()
    assert seen == [before, before]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_environment_value_is_named(monkeypatch, value):
    monkeypatch.setenv(_threads.ENV, value)
    x, y = _panel()
    with pytest.raises(ValueError) as err:
        LassoModel(reg_lambda=1e-4).fit(x, y)
    assert str(err.value) == (f"XL_FACTORLASSO_BLAS_THREADS={value!r}: give a whole number >= 1 "
                              "or 'default'")


def test_same_answer_with_one_or_two_threads(monkeypatch):
    x, y = _panel()
    monkeypatch.setenv(_threads.ENV, "1")
    one = LassoModel(reg_lambda=1e-4).fit(x, y).coef_.to_numpy()
    monkeypatch.setenv(_threads.ENV, "default")
    two = LassoModel(reg_lambda=1e-4).fit(x, y).coef_.to_numpy()
    np.testing.assert_allclose(one, two, atol=1e-10)


def test_a_limit_already_in_force_is_left_alone(seen, monkeypatch):
    """Every BLAS library already at the limit (an outer limit, OPENBLAS_NUM_THREADS=1): the
    fit neither sets nor restores it, and runs with the same threads; otherwise it does."""
    from threadpoolctl import ThreadpoolController

    monkeypatch.delenv(_threads.ENV, raising=False)
    x, y = _panel()
    limits = []
    original = ThreadpoolController.limit

    def spy(self, **kwargs):
        limits.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(ThreadpoolController, "limit", spy)
    with threadpool_limits(limits=1, user_api="blas"):
        before = _blas_threads()
        LassoModel(reg_lambda=1e-4).fit(x, y)
        assert _blas_threads() == before
    assert limits == []
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        LassoModel(reg_lambda=1e-4).fit(x, y)
        assert _blas_threads() == before
    assert limits == [{"limits": 1, "user_api": "blas"}]
    assert [set(s.values()) for s in seen] == [{1}, {1}]
