"""Helpers shared by the rolling-fit tests (serial, processes, Dask)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assert_same_rolling(a, b, atol: float = 0.0) -> None:
    """Two fitted RollingLassoModels have the same dates, snapshots (exactly when atol == 0),
    labels and failures."""
    assert list(a.results_.dates) == list(b.results_.dates)
    pd.testing.assert_index_equal(a.dates_, b.dates_)
    pd.testing.assert_frame_equal(a.failures_, b.failures_)
    pd.testing.assert_frame_equal(a.notes_, b.notes_)  # dated notes, wherever the dates ran
    for d in a.results_.dates:
        sa, sb = a.results_[d], b.results_[d]
        assert sa.estimation_date == sb.estimation_date
        pd.testing.assert_frame_equal(sa.x_covar, sb.x_covar, check_exact=True)
        for name in ("y_betas", "y_variances"):
            pd.testing.assert_frame_equal(getattr(sa, name), getattr(sb, name),
                                          check_exact=atol == 0, rtol=0, atol=atol)
        if sa.clusters is None:
            assert sb.clusters is None
        else:
            pd.testing.assert_series_equal(sa.clusters, sb.clusters, check_exact=True)


def changed_after(x: pd.DataFrame, y: pd.DataFrame, d) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``x``, ``y`` with every row after date ``d`` changed and 30 weekly rows added: what a
    no-look-ahead test refits on (nothing at or before ``d`` may move)."""
    cut = x.index.get_loc(d) + 1
    rng = np.random.default_rng(0)
    extra = pd.date_range(x.index[-1] + pd.Timedelta(weeks=1), periods=30, freq="W-FRI")
    x2 = pd.concat([x, pd.DataFrame(rng.normal(size=(30, x.shape[1])), index=extra,
                                    columns=x.columns)])
    y2 = pd.concat([y, pd.DataFrame(rng.normal(size=(30, y.shape[1])), index=extra,
                                    columns=y.columns)])
    x2.iloc[cut:] = x2.iloc[cut:] * rng.uniform(0.5, 2.0, size=x2.iloc[cut:].shape) + 0.01
    y2.iloc[cut:] = -y2.iloc[cut:]
    return x2, y2
