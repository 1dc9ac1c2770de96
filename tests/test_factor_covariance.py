"""Factor covariance assembly: closed forms and consistency with the fit's own convention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_panel
from xl_factorlasso import FactorCovariance, LassoModel, assemble_factor_covariance, ewm_lambda


def test_unpenalised_fit_reproduces_sample_variance():
    x, y, _ = make_panel(T=150, M=4, N=6, seed=7)
    m = LassoModel(reg_lambda=0.0).fit(x, y)
    cov = assemble_factor_covariance(m, x)
    # OLS: var(y) = b' var(x) b + var(e) exactly, with ddof=0 everywhere
    np.testing.assert_allclose(np.diag(cov.covariance), y.var(ddof=0), rtol=1e-6)
    np.testing.assert_allclose(cov.factor_covariance, x.cov(ddof=0), rtol=1e-12)
    assert cov.covariance.index.equals(y.columns) and cov.covariance.columns.equals(y.columns)


def test_ewma_convention_matches_loss_weights():
    x, y, _ = make_panel(T=150, M=3, N=4, seed=8)
    span = 30
    m = LassoModel(reg_lambda=0.01, span=span).fit(x, y)
    cov = assemble_factor_covariance(m, x, annualization_factor=52)
    lam = ewm_lambda(span)
    xa = x.to_numpy()
    mean = np.empty_like(xa)
    mean[0] = xa[0]
    for t in range(1, len(xa)):
        mean[t] = lam * mean[t - 1] + (1 - lam) * xa[t]
    xd = (xa - mean)[1:]
    w = lam ** np.arange(len(xd) - 1, -1, -1)
    w /= w.sum()
    np.testing.assert_allclose(cov.factor_covariance, 52 * (xd * w[:, None]).T @ xd, rtol=1e-10)
    b = m.coef_.to_numpy()
    expected = 52 * (b @ ((xd * w[:, None]).T @ xd) @ b.T + np.diag(m.residual_variance_))
    np.testing.assert_allclose(cov.covariance, expected, rtol=1e-10)


def test_volatility_split_and_sqrt_components():
    rng = np.random.default_rng(0)
    assets, factors = ["a", "b", "c"], ["f", "g"]
    B = pd.DataFrame(rng.standard_normal((3, 2)), index=assets, columns=factors)
    A = rng.standard_normal((2, 2))
    S = pd.DataFrame(A @ A.T + 0.1 * np.eye(2), index=factors, columns=factors)
    D = pd.Series([0.1, 0.2, 0.3], index=assets)
    fc = FactorCovariance(B, S, D)
    total = B.to_numpy() @ S.to_numpy() @ B.to_numpy().T + np.diag(D)
    np.testing.assert_allclose(fc.covariance, total)
    vol = fc.volatility
    np.testing.assert_allclose(vol["total"] ** 2, np.diag(total))
    np.testing.assert_allclose(vol["systematic"] ** 2 + vol["residual"] ** 2, np.diag(total))
    F, d = fc.sqrt_components()
    np.testing.assert_allclose(F @ F.T + np.diag(d**2), total, atol=1e-12)
    # a singular factor covariance still factors (eigen fallback)
    S0 = pd.DataFrame(np.ones((2, 2)), index=factors, columns=factors)
    F0, _ = FactorCovariance(B, S0, D).sqrt_components()
    np.testing.assert_allclose(F0 @ F0.T, B.to_numpy() @ S0.to_numpy() @ B.to_numpy().T, atol=1e-12)


def test_assembly_errors():
    x, y, _ = make_panel(T=40, M=3, N=4)
    with pytest.raises(ValueError, match="not fitted"):
        assemble_factor_covariance(LassoModel(), x)
    y = y.copy()
    y.iloc[:35, 2] = np.nan
    with pytest.warns(UserWarning):
        m = LassoModel(reg_lambda=0.01).fit(x, y)
    with pytest.raises(ValueError, match="no residual variance for a2 "):
        assemble_factor_covariance(m, x)
    m2 = LassoModel(reg_lambda=0.01, warmup_period=None).fit(x, y)
    with pytest.raises(ValueError, match="factor 'f1'"):
        assemble_factor_covariance(m2, x.drop(columns="f1"))
