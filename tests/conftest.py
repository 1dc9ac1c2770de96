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


@pytest.fixture
def ragged_panel():
    return make_panel(ragged=True)
