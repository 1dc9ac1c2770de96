"""LassoModel against scikit-learn and against itself (reference section 1.3 equivalences).

* LASSO(lambda)              == sklearn Lasso(alpha=lambda/2) with intercept (span=None)
* EWMA LASSO(lambda, span)   == sklearn Lasso(alpha=lambda*T'/(2*sum w), fit_intercept=False,
                                sample_weight=w) on the prepared arrays
* FCGL, one cluster          == MultiTaskLasso(alpha=lambda*sqrt(N)/2)
* FCGL, clusters g           == per cluster MultiTaskLasso(alpha=lambda*sqrt(|g|/G)/2)
* yuan_lin(lambda)           == normalized(lambda*sqrt(G))
* l1_weight=1                == LASSO; equal-size groups: the partition does not matter (row)
* lambda_max: closed forms, and the fit at 1.0001*lambda_max is the prior, at 0.9*... it is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Lasso, MultiTaskLasso

from xl_factorlasso import LassoModel, LassoModelType, lambda_max
from xl_factorlasso.core.linear_model import prepare_panel

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
SK = {"tol": 1e-12, "max_iter": 100000}
COEF_TOL = 1e-5  # group models (second-order cones converge more slowly)
LASSO_TOL = 1e-6  # LASSO against sklearn measured ~1e-8

# At tolerances of 1e-10 Clarabel sometimes stops at "optimal_inaccurate" (a second-order cone
# whose argument is ~0 at the optimum); the coefficients are still checked to COEF_TOL below.
pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]

LASSO = LassoModelType.LASSO
GROUP = LassoModelType.GROUP_LASSO
HCGL = LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO
FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO


def make_data(t_rows=150, m=5, n=6, k=3, seed=0):
    """Factors, and responses in k correlated blocks with a sparse loading matrix."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2012-01-06", periods=t_rows, freq="W-FRI")
    x = pd.DataFrame(
        rng.standard_normal((t_rows, m)) @ np.linalg.cholesky(0.3 + 0.7 * np.eye(m)).T + 0.2,
        index=idx,
        columns=[f"f{j}" for j in range(m)],
    )
    coef = rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.6)
    block = np.arange(n) % k
    drivers = rng.standard_normal((t_rows, k))
    y = pd.DataFrame(
        1.5
        + x.to_numpy() @ coef.T
        + 0.8 * drivers[:, block]
        + 0.6 * rng.standard_normal((t_rows, n)),
        index=idx,
        columns=[f"y{i}" for i in range(n)],
    )
    return x, y


def prepared(x, y, span=None):
    """Demeaned arrays and row weights of a complete panel, computed here with pandas:
    column means (span=None) or x_t - EWMA_t (adjust=False, includes x_t), first row dropped."""
    if span is None:
        return (x - x.mean()).to_numpy(), (y - y.mean()).to_numpy(), np.ones(len(x))
    alpha = 2.0 / (span + 1.0)
    xd = (x - x.ewm(alpha=alpha, adjust=False).mean()).to_numpy()[1:]
    yd = (y - y.ewm(alpha=alpha, adjust=False).mean()).to_numpy()[1:]
    w = (1.0 - alpha) ** np.arange(len(xd) - 1, -1, -1)
    return xd, yd, w


def gradient_at_zero(x, y, span=None):
    """(2/T') X~' diag(w) Y~, shape (M, N): the loss gradient at B = 0, up to sign."""
    xd, yd, w = prepared(x, y, span)
    return (2.0 / len(xd)) * (xd * w[:, None]).T @ yd


def fit(model_type=LASSO, x=None, y=None, **kw):
    model = LassoModel(model_type=model_type, solver_params=TIGHT, warmup_period=None, **kw)
    return model.fit(x, y)


@pytest.fixture(scope="module")
def data():
    return make_data()


# ---------------- LASSO == sklearn
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.4, 0.8, 0.99])
def test_lasso_equals_sklearn(data, fraction):
    x, y = data
    lam = fraction * np.abs(gradient_at_zero(x, y)).max()
    model = fit(LASSO, x, y, reg_lambda=lam)
    sk = Lasso(alpha=lam / 2.0, **SK).fit(x.to_numpy(), y.to_numpy())
    assert np.abs(model.coef_.to_numpy() - sk.coef_).max() <= LASSO_TOL
    np.testing.assert_allclose(model.alpha_const_.to_numpy(), sk.intercept_, rtol=0, atol=LASSO_TOL)
    if fraction == 0.99:
        assert np.abs(sk.coef_).max() > 1e-4  # not all zero yet
        assert (np.abs(sk.coef_) < 1e-12).sum() >= 20  # and almost empty


def test_lasso_equals_sklearn_numpy_input(data):
    x, y = data
    lam = 0.05
    model = fit(LASSO, x.to_numpy(), y.to_numpy(), reg_lambda=lam)
    sk = Lasso(alpha=lam / 2.0, **SK).fit(x.to_numpy(), y.to_numpy())
    assert list(model.coef_.index) == [f"y{i}" for i in range(y.shape[1])]
    assert np.abs(model.coef_.to_numpy() - sk.coef_).max() <= LASSO_TOL


def test_lasso_objective_value_matches_sklearn_objective(data):
    x, y = data
    lam = 0.08
    model = fit(LASSO, x, y, reg_lambda=lam)
    sk = Lasso(alpha=lam / 2.0, **SK).fit(x.to_numpy(), y.to_numpy())
    resid = y.to_numpy() - x.to_numpy() @ sk.coef_.T - sk.intercept_
    sk_obj = (resid**2).sum() / len(y) + lam * np.abs(sk.coef_).sum()
    assert model.objective_value_ == pytest.approx(sk_obj, rel=1e-8)
    assert model.objective(sk.coef_) == pytest.approx(sk_obj, rel=1e-10)


# ---------------- EWMA LASSO
@pytest.mark.parametrize("span", [12.0, 36.0])
def test_prepared_arrays_are_causal_ewma_residuals(data, span):
    x, y = data
    p = prepare_panel(x, y, span=span)
    alpha = 2.0 / (span + 1.0)
    ex = (x - x.ewm(alpha=alpha, adjust=False).mean()).to_numpy()[1:]
    ey = (y - y.ewm(alpha=alpha, adjust=False).mean()).to_numpy()[1:]
    assert p.x.shape == (len(x) - 1, x.shape[1])
    np.testing.assert_allclose(p.x, ex, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(p.y, ey, rtol=1e-12, atol=1e-13)
    assert p.mask.all()
    lam_w = 1.0 - alpha
    np.testing.assert_allclose(p.row_weight, lam_w ** np.arange(len(x) - 2, -1, -1), rtol=1e-13)
    assert p.row_weight[-1] == 1.0


@pytest.mark.parametrize("span", [12.0, 36.0])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.9])
def test_ewma_lasso_equals_weighted_sklearn(data, span, fraction):
    x, y = data
    lam = fraction * np.abs(gradient_at_zero(x, y, span)).max()
    model = fit(LASSO, x, y, reg_lambda=lam, span=span)
    xd, yd, w = prepared(x, y, span)
    t_prime = len(xd)
    sk = Lasso(alpha=lam * t_prime / (2.0 * w.sum()), fit_intercept=False, **SK)
    sk.fit(xd, yd, sample_weight=w)
    assert np.abs(model.coef_.to_numpy() - sk.coef_).max() <= LASSO_TOL
    assert np.abs(sk.coef_).max() > 1e-3
    # alpha_const_: full-sample weighted means, weights lam_w^(T-1-t) on the original data
    wt = (1.0 - 2.0 / (span + 1.0)) ** np.arange(len(x) - 1, -1, -1)
    xbar = wt @ x.to_numpy() / wt.sum()
    ybar = wt @ y.to_numpy() / wt.sum()
    np.testing.assert_allclose(
        model.alpha_const_.to_numpy(), ybar - sk.coef_ @ xbar, rtol=0, atol=1e-5
    )


# ---------------- FCGL == MultiTaskLasso
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9])
def test_fcgl_one_cluster_equals_multitask_lasso(data, fraction):
    x, y = data
    n = y.shape[1]
    # one block per factor: lambda_max = max_j ||grad_j|| / sqrt(N)
    lam = fraction * np.linalg.norm(gradient_at_zero(x, y), axis=1).max() / np.sqrt(n)
    model = fit(FCGL, x, y, reg_lambda=lam, n_clusters=1)
    assert model.clusters_.nunique() == 1
    mtl = MultiTaskLasso(alpha=lam * np.sqrt(n) / 2.0, **SK).fit(x.to_numpy(), y.to_numpy())
    assert np.abs(model.coef_.to_numpy() - mtl.coef_).max() <= COEF_TOL
    np.testing.assert_allclose(model.alpha_const_.to_numpy(), mtl.intercept_, atol=COEF_TOL)
    # block sparsity: a factor is in for all responses or for none
    zero_cols = np.all(np.abs(mtl.coef_) < 1e-10, axis=0)
    if fraction >= 0.5:
        assert zero_cols.any() and not zero_cols.all()
        assert np.abs(model.coef_.to_numpy()[:, zero_cols]).max() <= COEF_TOL


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_fcgl_clusters_equal_per_cluster_multitask_lasso(data, k, lam):
    x, y = data
    model = fit(FCGL, x, y, reg_lambda=lam, n_clusters=k)
    clusters = model.clusters_
    groups = clusters.unique()
    assert len(groups) == k
    expected = np.full((y.shape[1], x.shape[1]), np.nan)
    for g in groups:
        members = np.flatnonzero((clusters == g).to_numpy())
        alpha = lam * np.sqrt(len(members) / len(groups)) / 2.0
        mtl = MultiTaskLasso(alpha=alpha, **SK).fit(x.to_numpy(), y.to_numpy()[:, members])
        expected[members] = mtl.coef_
    assert np.abs(model.coef_.to_numpy() - expected).max() <= COEF_TOL


# ---------------- yuan_lin
def _group_kw(model_type, y):
    if model_type is GROUP:
        return {"group_data": pd.Series(["a", "b", "b", "c", "c", "c"], index=y.columns)}, 3
    return {"n_clusters": 4}, 4


@pytest.mark.parametrize("model_type", [HCGL, GROUP, FCGL])
def test_yuan_lin_equals_normalized_scaled(data, model_type):
    x, y = data
    kw, n_groups = _group_kw(model_type, y)
    lam = 0.1
    yl = fit(model_type, x, y, reg_lambda=lam, group_penalty="yuan_lin", **kw)
    nm = fit(model_type, x, y, reg_lambda=lam * np.sqrt(n_groups), **kw)
    assert yl.clusters_.nunique() == n_groups
    assert np.abs(yl.coef_.to_numpy() - nm.coef_.to_numpy()).max() <= 1e-6
    assert yl.objective_value_ == pytest.approx(nm.objective_value_, rel=1e-8)
    # and it is a different model from normalized at the same lambda
    same_lam = fit(model_type, x, y, reg_lambda=lam, **kw)
    assert np.abs(yl.coef_.to_numpy() - same_lam.coef_.to_numpy()).max() > 1e-3


@pytest.mark.parametrize("model_type", [HCGL, GROUP, FCGL])
def test_yuan_lin_with_l1_mix_equals_normalized_remixed(data, model_type):
    # yuan_lin(lam, a): group term lam (1-a) sqrt(G) sqrt(|g|/G), L1 term lam a. The same
    # objective under "normalized" needs lam' (1-a') = lam (1-a) sqrt(G) and lam' a' = lam a.
    x, y = data
    kw, n_groups = _group_kw(model_type, y)
    lam, a = 0.1, 0.3
    lam2 = lam * ((1 - a) * np.sqrt(n_groups) + a)
    a2 = lam * a / lam2
    yl = fit(model_type, x, y, reg_lambda=lam, l1_weight=a, group_penalty="yuan_lin", **kw)
    nm = fit(model_type, x, y, reg_lambda=lam2, l1_weight=a2, **kw)
    assert np.abs(yl.coef_.to_numpy() - nm.coef_.to_numpy()).max() <= 1e-6
    naive = fit(model_type, x, y, reg_lambda=lam * np.sqrt(n_groups), l1_weight=a, **kw)
    assert np.abs(yl.coef_.to_numpy() - naive.coef_.to_numpy()).max() > 1e-3


# ---------------- l1_weight = 1
@pytest.mark.parametrize("model_type", [GROUP, HCGL, FCGL])
@pytest.mark.parametrize("span", [None, 24.0])
def test_l1_weight_one_equals_lasso(data, model_type, span):
    x, y = data
    kw = (
        {"group_data": pd.Series([1, 1, 2, 2, 2, 3], index=y.columns)}
        if model_type is GROUP
        else {}
    )
    lam = 0.15
    group = fit(model_type, x, y, reg_lambda=lam, l1_weight=1.0, span=span, **kw)
    lasso = fit(LASSO, x, y, reg_lambda=lam, span=span)
    assert np.abs(group.coef_.to_numpy() - lasso.coef_.to_numpy()).max() <= 1e-6
    pure_group = fit(model_type, x, y, reg_lambda=lam, l1_weight=0.0, span=span, **kw)
    assert np.abs(pure_group.coef_.to_numpy() - lasso.coef_.to_numpy()).max() > 1e-3


def test_lasso_ignores_l1_weight(data):
    x, y = data
    a = fit(LASSO, x, y, reg_lambda=0.1, l1_weight=0.0)
    b = fit(LASSO, x, y, reg_lambda=0.1, l1_weight=0.7)
    assert np.abs(a.coef_.to_numpy() - b.coef_.to_numpy()).max() <= 1e-9


def test_l1_weight_one_equals_lasso_with_signs_and_prior(data):
    x, y = data
    rng = np.random.default_rng(5)
    signs = pd.DataFrame(
        rng.choice([np.nan, 1.0, -1.0, 0.0], size=(6, 5)), index=y.columns, columns=x.columns
    )
    prior = pd.DataFrame(
        np.where(np.isnan(signs), 0.3, 0.2 * signs.fillna(0)), index=y.columns, columns=x.columns
    )
    kw = {"factors_beta_loading_signs": signs, "factors_beta_prior": prior}
    group = fit(HCGL, x, y, reg_lambda=0.1, l1_weight=1.0, **kw)
    lasso = fit(LASSO, x, y, reg_lambda=0.1, **kw)
    assert np.abs(group.coef_.to_numpy() - lasso.coef_.to_numpy()).max() <= 1e-6


# ---------------- partitions
def test_equal_size_groups_partition_irrelevant_for_row_geometry():
    x, y = make_data(n=6, k=3, seed=3)
    lam = 0.25
    hcgl = fit(HCGL, x, y, reg_lambda=lam, n_clusters=3)
    sizes = hcgl.clusters_.value_counts()
    assert (sizes == 2).all() and len(sizes) == 3  # precondition: three planted pairs
    found = hcgl.clusters_.to_numpy()
    # another partition into three pairs, different from the one found
    other = pd.Series([1, 1, 2, 2, 3, 3], index=y.columns)
    if np.array_equal(found[:, None] == found, other.to_numpy()[:, None] == other.to_numpy()):
        other = pd.Series([1, 2, 3, 1, 2, 3], index=y.columns)
    group = fit(GROUP, x, y, reg_lambda=lam, group_data=other)
    assert np.abs(group.coef_.to_numpy() - hcgl.coef_.to_numpy()).max() <= 1e-6
    third = fit(GROUP, x, y, reg_lambda=lam, group_data=pd.Series(list("pqrqrp"), index=y.columns))
    assert np.abs(third.coef_.to_numpy() - hcgl.coef_.to_numpy()).max() <= 1e-6
    # unequal sizes do matter
    unequal = fit(
        GROUP, x, y, reg_lambda=lam, group_data=pd.Series([1, 1, 1, 1, 2, 3], index=y.columns)
    )
    assert np.abs(unequal.coef_.to_numpy() - hcgl.coef_.to_numpy()).max() > 1e-3


# ---------------- lambda_max
@pytest.mark.parametrize("span", [None, 20.0])
def test_lambda_max_lasso_closed_form(data, span):
    x, y = data
    expected = np.abs(gradient_at_zero(x, y, span)).max()
    assert lambda_max(x, y, span=span) == pytest.approx(expected, rel=1e-12)
    assert LassoModel(span=span).lambda_max(x, y) == pytest.approx(expected, rel=1e-12)
    assert fit(LASSO, x, y, span=span).reg_lambda_max_ == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("group_penalty", ["normalized", "yuan_lin"])
def test_lambda_max_pure_group_closed_form(data, group_penalty):
    x, y = data
    grad = gradient_at_zero(x, y).T  # (N, M)
    groups = pd.Series(["a", "a", "b", "c", "c", "c"], index=y.columns)
    size = groups.map(groups.value_counts()).to_numpy().astype(float)
    n_groups = groups.nunique()
    w = np.sqrt(size / n_groups) if group_penalty == "normalized" else np.sqrt(size)
    row_expected = max(np.linalg.norm(grad[i]) / w[i] for i in range(len(w)))
    got = lambda_max(x, y, model_type=GROUP, group_data=groups, group_penalty=group_penalty)
    assert got == pytest.approx(row_expected, rel=1e-10)
    # FCGL: blocks cluster x factor
    model = fit(FCGL, x, y, reg_lambda=1.0, n_clusters=3, group_penalty=group_penalty)
    cl = model.clusters_.to_numpy()
    block_expected = 0.0
    for g in np.unique(cl):
        members = cl == g
        wg = (
            np.sqrt(members.sum() / 3.0)
            if group_penalty == "normalized"
            else np.sqrt(members.sum())
        )
        for j in range(grad.shape[1]):
            block_expected = max(block_expected, np.linalg.norm(grad[members, j]) / wg)
    assert model.reg_lambda_max_ == pytest.approx(block_expected, rel=1e-10)


def signs_and_prior(y, x, seed=11):
    rng = np.random.default_rng(seed)
    s = rng.choice(
        [np.nan, 1.0, -1.0, 0.0], size=(y.shape[1], x.shape[1]), p=[0.4, 0.25, 0.2, 0.15]
    )
    prior = np.where(
        np.isnan(s), rng.normal(0, 0.3, s.shape), np.nan_to_num(s) * rng.uniform(0, 0.5, s.shape)
    )
    prior[rng.random(s.shape) < 0.3] = 0.0  # many sign cells sit at their bound
    prior[np.nan_to_num(s) == 0] = 0.0
    return (
        pd.DataFrame(s, index=y.columns, columns=x.columns),
        pd.DataFrame(prior, index=y.columns, columns=x.columns),
    )


CASES = [
    (LASSO, {}),
    (GROUP, {"group_data": "abbccc"}),
    (HCGL, {"n_clusters": 3}),
    (HCGL, {"cutoff_fraction": 0.5}),
    (FCGL, {"n_clusters": 3}),
]


LMAX_CASES = [
    (model_type, extra, l1_weight)
    for model_type, extra in CASES
    for l1_weight in ([0.0] if model_type is LASSO else [0.0, 0.2])
]


@pytest.mark.parametrize("model_type,extra,l1_weight", LMAX_CASES)
@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("span", [None, 30.0])
def test_fit_at_lambda_max_is_prior(data, model_type, extra, l1_weight, constrained, span):
    x, y = data
    kw = dict(extra)
    if "group_data" in kw:
        kw["group_data"] = pd.Series(list(kw["group_data"]), index=y.columns)
    kw.update(l1_weight=l1_weight, span=span)
    prior = np.zeros((y.shape[1], x.shape[1]))
    if constrained:
        signs, prior_df = signs_and_prior(y, x)
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior_df)
        prior = prior_df.to_numpy()
    lmax = lambda_max(x, y, model_type=model_type, **kw)
    assert lmax > 0
    above = fit(model_type, x, y, reg_lambda=1.0001 * lmax, **kw)
    assert above.reg_lambda_max_ == pytest.approx(lmax, rel=1e-12)
    # interior point: the kink at the prior is reached to ~1e-6
    assert np.abs(above.coef_.to_numpy() - prior).max() <= 1e-5
    # just below, the fit leaves the prior: lambda_max is sharp (not merely an upper bound)
    just_below = fit(model_type, x, y, reg_lambda=0.999 * lmax, **kw)
    assert np.abs(just_below.coef_.to_numpy() - prior).max() > 1e-4
    below = fit(model_type, x, y, reg_lambda=0.9 * lmax, **kw)
    assert np.abs(below.coef_.to_numpy() - prior).max() > 1e-2
    if constrained:
        s = kw["factors_beta_loading_signs"].to_numpy()
        b = below.coef_.to_numpy()
        assert np.all(b[s == 0] == 0) and np.all(b[s == 1] >= 0) and np.all(b[s == -1] <= 0)
