"""Shared fixtures: small deterministic panels with a known sparse structure."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# The remote engine (xlwings PRO, PolyForm Noncommercial) needs a key before xlwings is imported;
# this project's own testing is non-commercial. Tests that need it skip when it does not unlock.
os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")

# Tight interior-point tolerances for tests that compare against another solver.
TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def make_panel(T=120, M=4, N=8, seed=0, ragged=False):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=T, freq="W-FRI")
    x = pd.DataFrame(rng.standard_normal((T, M)), index=idx, columns=[f"f{i}" for i in range(M)])
    coef = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5)
    y = pd.DataFrame(
        0.01 + x.to_numpy() @ coef.T + rng.standard_normal((T, N)),
        index=idx,
        columns=[f"a{i}" for i in range(N)],
    )
    if ragged:
        y.iloc[: T // 3, 1] = np.nan
        y.iloc[T // 2 : T // 2 + 4, 2] = np.nan
    return x, y, pd.DataFrame(coef, index=y.columns, columns=x.columns)


@pytest.fixture
def panel():
    return make_panel()


def switch_off_active_set(patch) -> None:
    """With ``patch`` (a monkeypatch or its context): the fast engine's LASSO active-set steps
    off (the cold start's guess and the support corrections of a refused Newton point, before
    or between iterations), leaving the proximal iterations and the plain Newton finish."""
    from xl_factorlasso.core.linear_model import _newton_finish

    patch.setattr(_newton_finish, "_SUPPORT_ROUNDS", 0)
    patch.setattr(_newton_finish, "_START_ROUNDS", 0)
    patch.setattr(_newton_finish._NewtonFinish, "cold_start", lambda self, x, slopes=None: x)


@pytest.fixture
def iterations_only(monkeypatch):
    """:func:`switch_off_active_set` for a whole test: a solve truncated to a few iterations
    stays truncated, for the tests of what happens when nothing can be certified."""
    switch_off_active_set(monkeypatch)


@pytest.fixture
def ragged_panel():
    return make_panel(ragged=True)


# ------------------------------------------------- worksheet-function inputs (udfs tests)
def cells(df: pd.DataFrame, corner: str = "date", dates: str = "datetime") -> list:
    """A DataFrame as the 2-D list a range would arrive as (``None`` for missing values)."""

    def date(d: pd.Timestamp):
        if dates == "datetime":
            return d.to_pydatetime()
        if dates == "iso":
            return d.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if dates == "serial":
            return float((d - pd.Timestamp("1899-12-30")).days)
        raise ValueError(dates)

    body = [[date(d), *(None if np.isnan(v) else float(v) for v in row)]
            for d, row in zip(df.index, df.to_numpy(dtype=float), strict=True)]
    return [[corner, *map(str, df.columns)], *body]


@pytest.fixture(scope="module")
def demo():
    """The demo panel (module scope; a module may define its own ``demo``)."""
    from xl_factorlasso.core import load_demo_panel  # after the environment set above

    return load_demo_panel()


@pytest.fixture(scope="module")
def R(demo):
    return cells(demo.y)


@pytest.fixture(scope="module")
def F(demo):
    return cells(demo.x)


@pytest.fixture
def old_path(monkeypatch):
    """MaximumDiversification fitted with the CVXPY paths: the active-set solver (the dense
    and factor paths) switched off."""
    from xl_factorlasso.core.optimization import MaximumDiversification, _dense

    def fit(X, **params):
        with monkeypatch.context() as patch:
            patch.setattr(_dense, "dense_eligible", lambda spec, save_problem=False: False)
            return MaximumDiversification(**params).fit(X)
    return fit
